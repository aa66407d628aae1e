//! The schema log: an event trigger on the source that writes each change of a table's definition
//! into the WAL, as a transactional logical decoding message, at the moment it happens.
//!
//! pgoutput describes a table (a relation message) with its columns and, under `REPLICA IDENTITY
//! DEFAULT` or `USING INDEX`, which of them are the key; but under `FULL` it flags every column,
//! and it never says what command changed the table or when a table was dropped. Reading that
//! from the catalog when a change is decoded is reading it late: a key added after 80,000 inserts
//! would be applied to them, and a dropped table has no catalog entry at all. With the schema log
//! installed, capture reads every table's definition (columns with their `attnum`, types, primary
//! key, replica identity index, foreign keys) and each `DROP TABLE` in the stream, in commit order
//! with the changes. Installing it takes a superuser; capture does it when it runs as one, and
//! `teardown` removes it with the last slot. Without it, keys under `FULL` are marked *read later*.
//!
//! The trigger functions catch their own errors while they read the catalog and only warn: a
//! failure to record a schema change must never make the application's DDL fail. They write the
//! messages outside that guard: a message written in a subtransaction is queued by logical
//! decoding at the position where the next record begins, so the change that follows could be
//! decoded first.

use crate::model::Lsn;

use super::error::CaptureError;
use super::session::SqlSession;

/// The prefix of the schema log's messages.
pub const PREFIX: &str = "rowtrail.ddl";

/// Bumped whenever the functions change, so capture replaces an older installation.
const VERSION: &str = "rowtrail schema log 3";

/// Whether the schema log is in place on the source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SchemaLogState {
    /// Both event triggers exist, are enabled, and run the current functions.
    Current,
    /// Installed by another version of rowtrail, or disabled.
    Outdated,
    Missing,
}

pub async fn state(sql: &SqlSession) -> Result<SchemaLogState, CaptureError> {
    let row = sql
        .query_one(
            "checking the schema log",
            "SELECT (SELECT count(*) FROM pg_event_trigger
                     WHERE evtname IN ('rowtrail_ddl', 'rowtrail_drop') AND evtenabled <> 'D')::int4,
                    (SELECT count(*) FROM pg_event_trigger
                     WHERE evtname IN ('rowtrail_ddl', 'rowtrail_drop'))::int4,
                    (SELECT obj_description(p.oid, 'pg_proc') FROM pg_proc p
                     JOIN pg_namespace n ON n.oid = p.pronamespace
                     WHERE n.nspname = 'rowtrail' AND p.proname = 'record_ddl')",
            &[],
        )
        .await?;
    let (enabled, present, version): (i32, i32, Option<String>) =
        (row.get(0), row.get(1), row.get(2));
    Ok(match (enabled, present, version.as_deref()) {
        (2, _, Some(VERSION)) => SchemaLogState::Current,
        (_, 0, _) => SchemaLogState::Missing,
        _ => SchemaLogState::Outdated,
    })
}

/// Installs (or replaces) the schema log and, in the same transaction, writes a message saying
/// schema changes are recorded from there on. Needs a superuser.
pub async fn install(sql: &SqlSession, server_version_num: i32) -> Result<(), CaptureError> {
    sql.execute(
        "installing the schema log (an event trigger)",
        &format!(
            "BEGIN;\n{}\nSELECT pg_logical_emit_message(true, '{PREFIX}', '{{\"v\":1,\"tracking\":true}}');\nCOMMIT;",
            install_sql(server_version_num)
        ),
    )
    .await
}

/// Writes the message that says schema changes are recorded from here on, for a schema log that
/// was installed before (by another capture). Returns where the message lies.
pub async fn mark_tracking(sql: &SqlSession) -> Result<Lsn, CaptureError> {
    let row = sql
        .query_one(
            "marking where the schema log starts",
            &format!(
                "SELECT pg_logical_emit_message(true, '{PREFIX}', '{{\"v\":1,\"tracking\":true}}')::text"
            ),
            &[],
        )
        .await?;
    row.get::<_, String>(0)
        .parse()
        .map_err(|_| CaptureError::Protocol {
            what: "pg_logical_emit_message returned something that is not a WAL position".into(),
        })
}

/// Removes the schema log.
pub async fn remove(sql: &SqlSession) -> Result<(), CaptureError> {
    sql.execute(
        "removing the schema log",
        "DROP EVENT TRIGGER IF EXISTS rowtrail_ddl;
         DROP EVENT TRIGGER IF EXISTS rowtrail_drop;
         DROP FUNCTION IF EXISTS rowtrail.record_ddl();
         DROP FUNCTION IF EXISTS rowtrail.record_drop();
         DROP FUNCTION IF EXISTS rowtrail.describe_table(oid, text);
         DROP SCHEMA IF EXISTS rowtrail;",
    )
    .await
}

/// The SQL that installs the schema log, for the server's version (shown by `doctor` too).
pub fn install_sql(server_version_num: i32) -> String {
    // Key columns of an index: INCLUDE columns (PostgreSQL 11+) are not part of the key.
    let key_columns = match server_version_num >= 110_000 {
        true => "i.indnkeyatts",
        false => "i.indnatts",
    };
    // pgoutput leaves generated columns (PostgreSQL 12+) out of its rows.
    let not_generated = match server_version_num >= 120_000 {
        true => "AND a.attgenerated = ''",
        false => "",
    };
    let index_columns = |condition: &str| {
        format!(
            "(SELECT jsonb_agg(a.attname ORDER BY k.ord)
               FROM pg_index i
               CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
               JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
               WHERE i.indrelid = c.oid AND {condition} AND k.ord <= {key_columns})"
        )
    };
    let primary_key = index_columns("i.indisprimary");
    let identity_index = index_columns("i.indisreplident");
    format!(
        r#"CREATE SCHEMA IF NOT EXISTS rowtrail;

CREATE OR REPLACE FUNCTION rowtrail.describe_table(relation oid, command text) RETURNS jsonb
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $rowtrail$
SELECT jsonb_build_object(
    'v', 1, 'tag', command, 'query', left(current_query(), 2000),
    'oid', c.oid::int8, 'schema', n.nspname, 'name', c.relname, 'replident', c.relreplident::text,
    'columns', coalesce((
        SELECT jsonb_agg(jsonb_build_array(
                   a.attnum, a.attname, a.atttypid::int8, a.atttypmod, format_type(a.atttypid, a.atttypmod),
                   (WITH RECURSIVE base(oid, parent) AS (
                        SELECT t.oid, t.typbasetype FROM pg_type t WHERE t.oid = a.atttypid
                        UNION ALL
                        SELECT t.oid, t.typbasetype FROM base JOIN pg_type t ON t.oid = base.parent)
                    SELECT base.oid::int8 FROM base WHERE base.parent = 0 LIMIT 1),
                   a.attidentity::text) ORDER BY a.attnum)
        FROM pg_attribute a
        WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped {not_generated}), '[]'),
    'pk', coalesce({primary_key}, '[]'),
    'ri', coalesce({identity_index}, '[]'),
    'fks', coalesce((
        SELECT jsonb_agg(jsonb_build_object(
                   'name', con.conname,
                   'columns', (SELECT jsonb_agg(a.attname ORDER BY k.ord)
                               FROM unnest(con.conkey) WITH ORDINALITY AS k(n, ord)
                               JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.n),
                   'schema', fn.nspname, 'table', fc.relname,
                   'refcolumns', (SELECT jsonb_agg(a.attname ORDER BY k.ord)
                                  FROM unnest(con.confkey) WITH ORDINALITY AS k(n, ord)
                                  JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.n))
               ORDER BY con.conname)
        FROM pg_constraint con
        JOIN pg_class fc ON fc.oid = con.confrelid
        JOIN pg_namespace fn ON fn.oid = fc.relnamespace
        WHERE con.conrelid = c.oid AND con.contype = 'f'), '[]'))
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.oid = relation
$rowtrail$;

CREATE OR REPLACE FUNCTION rowtrail.record_ddl() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $rowtrail$
DECLARE
    command record;
    target oid;
    member oid;
    done oid[] := '{{}}';
    payloads bytea[] := '{{}}';
    payload bytea;
BEGIN
    -- Reading is guarded; writing the messages is not, on purpose: a message written inside
    -- the guard's subtransaction could be decoded after the change that follows it.
    BEGIN
        FOR command IN SELECT * FROM pg_event_trigger_ddl_commands()
                       WHERE classid = 'pg_class'::regclass LOOP
            SELECT CASE WHEN c.relkind IN ('i', 'I') THEN i.indrelid ELSE c.oid END INTO target
            FROM pg_class c LEFT JOIN pg_index i ON i.indexrelid = c.oid
            WHERE c.oid = command.objid;
            -- The table, and the partitions and children that inherit the change.
            FOR member IN
                WITH RECURSIVE tree(oid) AS (
                    SELECT target
                    UNION
                    SELECT h.inhrelid FROM pg_inherits h JOIN tree ON h.inhparent = tree.oid)
                SELECT tree.oid FROM tree JOIN pg_class c ON c.oid = tree.oid
                WHERE c.relkind = 'r' AND c.relpersistence = 'p'
            LOOP
                IF NOT member = ANY (done) THEN
                    done := done || member;
                    payloads := payloads || convert_to(
                        rowtrail.describe_table(member, command.command_tag)::text, 'UTF8');
                END IF;
            END LOOP;
        END LOOP;
    EXCEPTION WHEN OTHERS THEN
        RAISE WARNING 'rowtrail could not record this schema change: %', SQLERRM;
    END;
    FOREACH payload IN ARRAY payloads LOOP
        PERFORM pg_logical_emit_message(true, '{PREFIX}', payload);
    END LOOP;
END
$rowtrail$;

CREATE OR REPLACE FUNCTION rowtrail.record_drop() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $rowtrail$
DECLARE
    dropped record;
    payloads bytea[] := '{{}}';
    payload bytea;
BEGIN
    BEGIN
        FOR dropped IN SELECT * FROM pg_event_trigger_dropped_objects()
                       WHERE object_type = 'table' AND NOT is_temporary LOOP
            payloads := payloads || convert_to(jsonb_build_object(
                'v', 1, 'tag', tg_tag, 'query', left(current_query(), 2000),
                'oid', dropped.objid::int8, 'schema', dropped.schema_name,
                'name', dropped.object_name, 'dropped', true)::text, 'UTF8');
        END LOOP;
    EXCEPTION WHEN OTHERS THEN
        RAISE WARNING 'rowtrail could not record a dropped table: %', SQLERRM;
    END;
    FOREACH payload IN ARRAY payloads LOOP
        PERFORM pg_logical_emit_message(true, '{PREFIX}', payload);
    END LOOP;
END
$rowtrail$;

COMMENT ON FUNCTION rowtrail.record_ddl() IS '{VERSION}';
DROP EVENT TRIGGER IF EXISTS rowtrail_ddl;
DROP EVENT TRIGGER IF EXISTS rowtrail_drop;
CREATE EVENT TRIGGER rowtrail_ddl ON ddl_command_end EXECUTE PROCEDURE rowtrail.record_ddl();
CREATE EVENT TRIGGER rowtrail_drop ON sql_drop EXECUTE PROCEDURE rowtrail.record_drop();"#
    )
}
