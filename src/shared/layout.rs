//! The shared store's tables in PostgreSQL: the cache's own tables (same names and columns, so the
//! same questions read both), `changes` partitioned by month of its transaction's commit time, and
//! a view in Bemi's `changes` layout.

/// The schema that holds the store.
pub const SCHEMA: &str = "rowtrail";

/// The schema whose `changes` view has Bemi's layout (tools that read Bemi's table read it).
pub const BEMI_SCHEMA: &str = "rowtrail_bemi";

/// The layout this build writes; `store_info.format_version` of a store it created.
pub const FORMAT_VERSION: i32 = 1;

/// Creates the store's schema and tables. Each statement is idempotent except the schema's own
/// creation, which `ensure` guards with a look at the catalog, all in one transaction.
pub(super) const CREATE: &str = r#"
CREATE SCHEMA rowtrail;
COMMENT ON SCHEMA rowtrail IS 'rowtrail''s shared history store (written by rowtrail capture --into / rowtrail publish)';

CREATE TABLE rowtrail.store_info (
    id             integer PRIMARY KEY CHECK (id = 1),
    format_version integer NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now()
);

-- Where the history comes from: the same row as the cache's.
CREATE TABLE rowtrail.source (
    id                integer PRIMARY KEY CHECK (id = 1),
    kind              text NOT NULL,
    system_identifier text NOT NULL,
    database          text NOT NULL,
    display           text NOT NULL,
    server_version    text NOT NULL,
    created_at        text NOT NULL
);

-- The capture that feeds the store; position = every change committed before it is in the store.
CREATE TABLE rowtrail.capture_state (
    id               integer PRIMARY KEY CHECK (id = 1),
    slot             text NOT NULL,
    publication      text NOT NULL,
    baseline         text NOT NULL,
    position         bigint NOT NULL,
    updated_at       text NOT NULL,
    schema_log_since bigint
);

-- Or the import that feeds it.
CREATE TABLE rowtrail.import_state (
    id         integer PRIMARY KEY CHECK (id = 1),
    format     text NOT NULL,
    source     text NOT NULL,
    cursor     text NOT NULL,
    lacking    text NOT NULL,
    updated_at text NOT NULL
);

-- How far the store holds the journal (the capture's cache file): advanced in the same
-- transaction as the rows it covers, so each change arrives exactly once.
CREATE TABLE rowtrail.publish_state (
    id                 integer PRIMARY KEY CHECK (id = 1),
    through_tx         bigint NOT NULL,
    through_change     bigint NOT NULL,
    through_commit_lsn bigint NOT NULL,
    journal            text NOT NULL,
    published_at       timestamptz NOT NULL
);

CREATE TABLE rowtrail.tables (
    id             bigint PRIMARY KEY,
    oid            bigint NOT NULL UNIQUE,
    schema_name    text NOT NULL,
    name           text NOT NULL,
    change_count   bigint NOT NULL DEFAULT 0,
    dropped_change bigint
);
CREATE INDEX tables_by_name ON rowtrail.tables (schema_name, name);

CREATE TABLE rowtrail.relations (
    id         bigint PRIMARY KEY,
    table_id   bigint NOT NULL REFERENCES rowtrail.tables (id),
    definition text NOT NULL,
    first_lsn  bigint NOT NULL
);
CREATE INDEX relations_by_table ON rowtrail.relations (table_id, id);

CREATE TABLE rowtrail.contexts (
    id   bigint PRIMARY KEY,
    body text NOT NULL
);

-- committed_at: microseconds since 1970-01-01 UTC, as in the cache.
CREATE TABLE rowtrail.transactions (
    id           bigint PRIMARY KEY,
    xid          bigint,
    commit_lsn   bigint NOT NULL,
    end_lsn      bigint NOT NULL,
    committed_at bigint NOT NULL,
    change_count bigint NOT NULL,
    context_id   bigint REFERENCES rowtrail.contexts (id),
    origin       text,
    is_baseline  bigint NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX transactions_by_commit ON rowtrail.transactions (commit_lsn) WHERE is_baseline = 0;
CREATE INDEX transactions_by_time ON rowtrail.transactions (committed_at);
CREATE INDEX transactions_by_xid ON rowtrail.transactions (xid);

-- Row changes, id order is commit order. `commit_time` (the transaction's commit time) is the
-- partition key: one partition per month, created as changes arrive; old history goes by
-- dropping a month's partition.
CREATE TABLE rowtrail.changes (
    id          bigint NOT NULL,
    tx_id       bigint NOT NULL,
    lsn         bigint NOT NULL,
    table_id    bigint NOT NULL,
    relation_id bigint NOT NULL,
    op          text NOT NULL CHECK (op IN ('I', 'U', 'D', 'T', 'S', 'L', 'G')),
    key         text COLLATE "C" NOT NULL,  -- byte order, as in a cache file: pages of keys agree
    old_key     text COLLATE "C",
    before      text,
    after       text,
    unavailable text,
    context_id  bigint,
    commit_time timestamptz NOT NULL,
    PRIMARY KEY (id, commit_time)
) PARTITION BY RANGE (commit_time);
CREATE INDEX changes_by_record ON rowtrail.changes (table_id, key, id);
CREATE INDEX changes_moved_in ON rowtrail.changes (table_id, key, id) WHERE old_key IS NOT NULL;
CREATE INDEX changes_moved_out ON rowtrail.changes (table_id, old_key, id) WHERE old_key IS NOT NULL;
CREATE INDEX changes_by_table ON rowtrail.changes (table_id, id);
CREATE INDEX changes_by_tx ON rowtrail.changes (tx_id);

CREATE TABLE rowtrail.change_minutes (
    table_id bigint NOT NULL,
    op       text NOT NULL,
    minute   bigint NOT NULL,
    count    bigint NOT NULL,
    PRIMARY KEY (table_id, op, minute)
);
CREATE INDEX change_minutes_by_minute ON rowtrail.change_minutes (minute);

-- What readers add: links between tables, saved views, the index of references.
CREATE TABLE rowtrail.links (
    id         bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    definition text NOT NULL UNIQUE,
    created_at text NOT NULL
);
CREATE TABLE rowtrail.views (
    name       text PRIMARY KEY,
    definition text NOT NULL,
    saved_at   text NOT NULL
);
CREATE TABLE rowtrail.ref_links (
    id         bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    definition text NOT NULL UNIQUE,
    indexed_to bigint NOT NULL
);
CREATE TABLE rowtrail.refs (
    link_id   bigint NOT NULL,
    value     text NOT NULL,
    change_id bigint NOT NULL,
    PRIMARY KEY (link_id, value, change_id)
);

INSERT INTO rowtrail.store_info (id, format_version) VALUES (1, 1);
"#;

/// Bemi's `changes` layout over the store, as a view (replaced on every start, so a newer build
/// brings its own). Images become JSON objects from column name to value: numbers and booleans as
/// JSON numbers and booleans, json and jsonb as JSON, everything else as PostgreSQL's text form;
/// `{}` where there is no image, as Bemi writes. An update's `before` is its `after` with the old
/// values laid over. Values the change did not carry (unchanged TOAST, key-only deletes) are left
/// out. `primary_key` is the key's values joined by commas; `position` the change's WAL position;
/// `id` a UUID made from the change's id.
pub(super) const BEMI_VIEW: &str = r#"
CREATE SCHEMA IF NOT EXISTS rowtrail_bemi;
COMMENT ON SCHEMA rowtrail_bemi IS 'rowtrail''s history in Bemi''s changes layout (a view over schema rowtrail)';

CREATE OR REPLACE FUNCTION rowtrail_bemi.value(base_type oid, value jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN value IS NULL OR jsonb_typeof(value) = 'null' THEN 'null'::jsonb
        WHEN jsonb_typeof(value) = 'object' THEN to_jsonb('\x' || (value ->> 'x'))
        -- int2, int4, int8, float4, float8, numeric: numbers (NaN and infinities stay text)
        WHEN base_type IN (21, 23, 20, 700, 701, 1700)
             AND (value #>> '{}') ~ '^-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?$'
            THEN to_jsonb((value #>> '{}')::numeric)
        WHEN base_type = 16 THEN to_jsonb((value #>> '{}') IN ('true', 't'))
        WHEN base_type IN (114, 3802) THEN (value #>> '{}')::jsonb
        ELSE value
    END
$$;

-- A row image (a JSON array by column position) as an object from column name to value, without
-- the positions listed as unavailable.
CREATE OR REPLACE FUNCTION rowtrail_bemi.image(definition jsonb, image jsonb, missing jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT coalesce(jsonb_object_agg(col.value ->> 'name',
                                     rowtrail_bemi.value((col.value ->> 'base_type_oid')::oid, image -> (col.ordinality::int - 1))),
                    '{}'::jsonb)
    FROM jsonb_array_elements(definition -> 'columns') WITH ORDINALITY AS col
    WHERE image IS NOT NULL AND jsonb_typeof(image) = 'array'
      AND NOT coalesce(missing @> to_jsonb(col.ordinality::int - 1), false)
$$;

-- An update's before: its after with the old values (an object by column position) laid over.
CREATE OR REPLACE FUNCTION rowtrail_bemi.before(op text, before jsonb, after jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN before IS NULL THEN NULL
        WHEN op = 'U' AND jsonb_typeof(before) = 'object' THEN (
            SELECT jsonb_agg(CASE WHEN before ? (element.ordinality - 1)::text
                                  THEN before -> (element.ordinality - 1)::text
                                  ELSE element.value END ORDER BY element.ordinality)
            FROM jsonb_array_elements(after) WITH ORDINALITY AS element)
        ELSE before
    END
$$;

CREATE OR REPLACE VIEW rowtrail_bemi.changes AS
SELECT md5('rowtrail change ' || c.id)::uuid AS id,
       (SELECT string_agg(part #>> '{}', ',') FROM jsonb_array_elements(c.key::jsonb) AS part) AS primary_key,
       rowtrail_bemi.image(r.definition::jsonb,
                           rowtrail_bemi.before(c.op, c.before::jsonb, c.after::jsonb),
                           c.unavailable::jsonb -> 'b') AS before,
       rowtrail_bemi.image(r.definition::jsonb, c.after::jsonb, c.unavailable::jsonb -> 'a') AS after,
       coalesce(ctx.body::jsonb, '{}'::jsonb) AS context,
       s.database AS database,
       t.schema_name AS schema,
       t.name AS "table",
       CASE c.op WHEN 'I' THEN 'CREATE' WHEN 'U' THEN 'UPDATE'
                 WHEN 'D' THEN 'DELETE' WHEN 'T' THEN 'TRUNCATE' END AS operation,
       c.commit_time AS committed_at,
       tx.xid AS transaction_id,
       c.lsn AS position
FROM rowtrail.changes c
JOIN rowtrail.transactions tx ON tx.id = c.tx_id
JOIN rowtrail.tables t ON t.id = c.table_id
JOIN rowtrail.relations r ON r.id = c.relation_id
LEFT JOIN rowtrail.contexts ctx ON ctx.id = c.context_id
CROSS JOIN rowtrail.source s
WHERE c.op IN ('I', 'U', 'D', 'T');
"#;

/// The name of the partition of `changes` for the month that starts at `year`-`month`-01.
pub(super) fn partition_name(year: i32, month: u32) -> String {
    format!("changes_{year:04}_{month:02}")
}

/// The statement that creates that month's partition if it is missing.
pub(super) fn create_partition(year: i32, month: u32) -> String {
    let (next_year, next_month) = match month {
        12 => (year + 1, 1),
        _ => (year, month + 1),
    };
    format!(
        "CREATE TABLE IF NOT EXISTS rowtrail.{} PARTITION OF rowtrail.changes
         FOR VALUES FROM ('{year:04}-{month:02}-01 00:00:00+00') TO ('{next_year:04}-{next_month:02}-01 00:00:00+00')",
        partition_name(year, month)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_cover_one_month_each_across_the_year_end() {
        assert_eq!(partition_name(2026, 3), "changes_2026_03");
        let december = create_partition(2026, 12);
        assert!(december.contains("rowtrail.changes_2026_12 PARTITION OF"));
        assert!(december.contains("FROM ('2026-12-01 00:00:00+00') TO ('2027-01-01 00:00:00+00')"));
    }
}
