//! The cache's SQLite schema and its migrations.
//!
//! The format version is `PRAGMA user_version`; `PRAGMA application_id` marks the file as a rowtrail
//! cache. Each migration takes the schema from version N to N+1 and runs in one transaction, so a
//! cache is always at a whole version.

/// `PRAGMA application_id` of every rowtrail cache: the bytes "rowt".
pub const APPLICATION_ID: i32 = 0x726F_7774;

/// Every table a cache holds (SQLite's own `sqlite_stat*` aside).
pub const TABLES: &[&str] = &[
    "source",
    "capture_state",
    "tables",
    "relations",
    "contexts",
    "transactions",
    "changes",
    "change_minutes",
    "links",
    "views",
    "ref_links",
    "refs",
    "import_state",
    "column_rules",
    "prunes",
    "erasures",
    "erased_changes",
];

/// Every index a cache holds (SQLite's own `sqlite_autoindex_*` aside).
pub const INDEXES: &[&str] = &[
    "tables_by_name",
    "relations_by_table",
    "transactions_by_commit",
    "transactions_by_time",
    "transactions_by_xid",
    "changes_by_record",
    "changes_moved_in",
    "changes_moved_out",
    "changes_by_table",
    "changes_by_tx",
    "change_minutes_by_minute",
];

/// One step of the format: plain SQL, or SQL that must look at the file first.
pub enum Migration {
    Sql(&'static str),
    Code(fn(&rusqlite::Transaction<'_>) -> rusqlite::Result<()>),
}

/// The migrations in order; a cache at version N has run the first N.
pub const MIGRATIONS: &[Migration] = &[
    Migration::Sql(V1),
    Migration::Sql(V2),
    Migration::Code(v3),
    Migration::Sql(V4),
    Migration::Sql(V5),
    Migration::Sql(V6),
    Migration::Sql(V7),
    Migration::Sql(V8),
    Migration::Sql(V9),
];

/// The newest format this build reads and writes.
pub const CURRENT_VERSION: i32 = MIGRATIONS.len() as i32;

const V1: &str = r#"
-- Where the history comes from. One row.
CREATE TABLE source (
    id                INTEGER PRIMARY KEY CHECK (id = 1),
    kind              TEXT NOT NULL,            -- 'postgres'
    system_identifier TEXT NOT NULL,            -- IDENTIFY_SYSTEM's systemid
    database          TEXT NOT NULL,
    display           TEXT NOT NULL,            -- user@host:port/db, never a password
    server_version    TEXT NOT NULL,
    created_at        TEXT NOT NULL
);

-- How capture resumes. One row once capture has created its slot.
CREATE TABLE capture_state (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    slot        TEXT NOT NULL,
    publication TEXT NOT NULL,
    baseline    TEXT NOT NULL CHECK (baseline IN ('pending', 'complete')),
    position    INTEGER NOT NULL,               -- every change committed before it is stored
    updated_at  TEXT NOT NULL
);

-- Tables by their PostgreSQL oid, with their current name.
CREATE TABLE tables (
    id           INTEGER PRIMARY KEY,
    oid          INTEGER NOT NULL UNIQUE,
    schema_name  TEXT NOT NULL,
    name         TEXT NOT NULL,
    change_count INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX tables_by_name ON tables (schema_name, name);

-- Schema versions: a table's columns, types, key and foreign keys for a stretch of its history.
CREATE TABLE relations (
    id          INTEGER PRIMARY KEY,
    table_id    INTEGER NOT NULL REFERENCES tables (id),
    definition  TEXT NOT NULL,                  -- JSON of model::RelationSchema
    first_lsn   INTEGER NOT NULL
);
CREATE INDEX relations_by_table ON relations (table_id, id);

-- Application context bodies (JSON objects), stored once each.
CREATE TABLE contexts (
    id   INTEGER PRIMARY KEY,
    body TEXT NOT NULL UNIQUE
);

-- Source transactions that changed captured tables, plus one baseline per slot.
CREATE TABLE transactions (
    id           INTEGER PRIMARY KEY,
    xid          INTEGER,                       -- NULL for the baseline
    commit_lsn   INTEGER NOT NULL,
    end_lsn      INTEGER NOT NULL,
    committed_at INTEGER NOT NULL,              -- microseconds since 1970-01-01 UTC
    change_count INTEGER NOT NULL,
    context_id   INTEGER REFERENCES contexts (id), -- the first context of the transaction
    origin       TEXT,
    is_baseline  INTEGER NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX transactions_by_commit ON transactions (commit_lsn) WHERE is_baseline = 0;
CREATE INDEX transactions_by_time ON transactions (committed_at);
CREATE INDEX transactions_by_xid ON transactions (xid);

-- Row changes; id order is commit order.
CREATE TABLE changes (
    id          INTEGER PRIMARY KEY,
    tx_id       INTEGER NOT NULL REFERENCES transactions (id),
    lsn         INTEGER NOT NULL,               -- WAL position of the change itself
    table_id    INTEGER NOT NULL REFERENCES tables (id),
    relation_id INTEGER NOT NULL REFERENCES relations (id),
    op          TEXT NOT NULL CHECK (op IN ('I', 'U', 'D', 'T', 'S')),
    key         TEXT NOT NULL,                  -- JSON array of key values (store::codec)
    old_key     TEXT,                           -- the key before an update that changed it
    before      TEXT,
    after       TEXT,
    unavailable TEXT,
    context_id  INTEGER REFERENCES contexts (id)
);
CREATE INDEX changes_by_record ON changes (table_id, key, id);
-- Key changes are rare; two small partial indexes follow a record across them.
CREATE INDEX changes_moved_in ON changes (table_id, key, id) WHERE old_key IS NOT NULL;
CREATE INDEX changes_moved_out ON changes (table_id, old_key, id) WHERE old_key IS NOT NULL;
CREATE INDEX changes_by_table ON changes (table_id, id);
CREATE INDEX changes_by_tx ON changes (tx_id);
"#;

/// Per-minute change counts by table and operation: the timeline's histogram without a scan.
const V2: &str = r#"
CREATE TABLE change_minutes (
    table_id INTEGER NOT NULL,
    op       TEXT NOT NULL,
    minute   INTEGER NOT NULL,                  -- committed_at / 60,000,000
    count    INTEGER NOT NULL,
    PRIMARY KEY (table_id, op, minute)
) WITHOUT ROWID;
CREATE INDEX change_minutes_by_minute ON change_minutes (minute);
INSERT INTO change_minutes (table_id, op, minute, count)
    SELECT c.table_id, c.op, t.committed_at / 60000000, count(*)
    FROM changes c JOIN transactions t ON t.id = c.tx_id
    GROUP BY 1, 2, 3;
"#;

/// Schema changes as history (`op` 'L' in `changes`, with what changed in `after`), gaps in the
/// history (`op` 'G', a new baseline after an invalidated slot), tables that were dropped, and
/// where the source's schema log starts.
///
/// Widening the `CHECK` on `changes.op` does not change how any row is stored, so it is done the
/// way SQLite documents for such changes (section 7 of "ALTER TABLE"): the table's definition is
/// edited in `sqlite_schema` and the schema version bumped, instead of copying every change into
/// a new table, which would take minutes on a large cache.
const V4: &str = r#"
-- Links between tables that the schema does not declare (`rowtrail link`): related history follows
-- them like foreign keys. `definition` is the link as JSON (from, columns, to, to_columns).
CREATE TABLE links (
    id         INTEGER PRIMARY KEY,
    definition TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL
);
"#;

const V5: &str = r#"
-- Saved views (`rowtrail view --save`, the app's Views): `definition` is the view as JSON (name,
-- tables, predicate, context, changed).
CREATE TABLE views (
    name       TEXT PRIMARY KEY,
    definition TEXT NOT NULL,
    saved_at   TEXT NOT NULL
);
"#;

const V6: &str = r#"
-- An index of references, for related history: for each link (a foreign key, or one a user
-- added) the values its columns held in the before and after images of each change of the
-- pointing table. Built when related history first needs it and extended from `indexed_to`
-- (the newest change it covers) on each later use; it only ever repeats what `changes` holds.
CREATE TABLE ref_links (
    id         INTEGER PRIMARY KEY,
    definition TEXT NOT NULL UNIQUE,   -- the link as JSON (from, columns, to, to_columns)
    indexed_to INTEGER NOT NULL
);
CREATE TABLE refs (
    link_id   INTEGER NOT NULL,
    value     TEXT NOT NULL,           -- the link's column values, encoded like a key
    change_id INTEGER NOT NULL,
    PRIMARY KEY (link_id, value, change_id)
) WITHOUT ROWID;
"#;

const V7: &str = r#"
-- Where an import from an audit store resumes (`rowtrail import`). One row once an import began;
-- a cache is fed either by capture (capture_state) or by one import, never both.
CREATE TABLE import_state (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    format     TEXT NOT NULL,   -- pg-audit-trigger, bemi, ...
    source     TEXT NOT NULL,   -- where it reads, for people; never a password
    cursor     TEXT NOT NULL,   -- the format's own resume position, as JSON
    lacking    TEXT NOT NULL,   -- what the store does not record, as a JSON list of sentences
    updated_at TEXT NOT NULL
);
"#;

const V8: &str = r#"
-- Columns whose values never reach the cache as they are (`capture --exclude/--mask/--rules`):
-- fixed when the history begins. `key_fingerprint` names the key of 'hash' rules (the key itself
-- lives outside the cache), so a capture with another key is refused.
CREATE TABLE column_rules (
    id              INTEGER PRIMARY KEY,
    pattern         TEXT NOT NULL,
    protection      TEXT NOT NULL CHECK (protection IN ('exclude', 'hash', 'last4')),
    key_fingerprint TEXT,
    created_at      TEXT NOT NULL,
    -- NULL for a rule a user gave; else the rule it continues after a rename took the column
    -- out of that rule's pattern.
    derived_from    TEXT,
    UNIQUE (pattern, protection)
);
"#;

const V9: &str = r#"
-- Retention (`rowtrail prune`, `capture --retain`): one row per prune. The history before
-- `before` (the commit time of the newest transaction folded) was folded into a baseline: each
-- record's state then is kept as a snapshot change, the changes that led to it are gone.
CREATE TABLE prunes (
    id        INTEGER PRIMARY KEY,
    before    INTEGER NOT NULL,                 -- microseconds since 1970-01-01 UTC
    cut       INTEGER NOT NULL,                 -- the newest change folded (a snapshot now, or gone)
    removed   INTEGER NOT NULL,                 -- changes removed
    kept      INTEGER NOT NULL,                 -- snapshot rows the baseline holds
    pruned_at TEXT NOT NULL
);

-- Erasure (`rowtrail forget`): what was erased and when. The changes stay (that they happened,
-- when, in which transaction, by whom); every value but the record's key is gone from them.
CREATE TABLE erasures (
    id        INTEGER PRIMARY KEY,
    table_name TEXT NOT NULL,                   -- schema.table
    key       TEXT NOT NULL,                    -- the record's key as stored (store::codec)
    related   INTEGER NOT NULL,                 -- 1 when the rows of its story were erased too
    changes   INTEGER NOT NULL,
    erased_at TEXT NOT NULL
);
CREATE TABLE erased_changes (
    change_id  INTEGER PRIMARY KEY,
    erasure_id INTEGER NOT NULL REFERENCES erasures (id)
);
"#;

fn v3(tx: &rusqlite::Transaction<'_>) -> rusqlite::Result<()> {
    tx.execute_batch(
        "ALTER TABLE tables ADD COLUMN dropped_change INTEGER; -- the schema change entry that dropped it
         ALTER TABLE capture_state ADD COLUMN schema_log_since INTEGER; -- schema changes recorded from here",
    )?;
    const OLD_CHECK: &str = "CHECK (op IN ('I', 'U', 'D', 'T', 'S'))";
    const NEW_CHECK: &str = "CHECK (op IN ('I', 'U', 'D', 'T', 'S', 'L', 'G'))";
    let definition: String = tx.query_row(
        "SELECT sql FROM sqlite_schema WHERE type = 'table' AND name = 'changes'",
        [],
        |row| row.get(0),
    )?;
    if !definition.contains(OLD_CHECK) {
        return Err(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CORRUPT),
            Some("the changes table is not as rowtrail created it".to_owned()),
        ));
    }
    let version: i64 = tx.query_row("PRAGMA schema_version", [], |row| row.get(0))?;
    tx.execute_batch("PRAGMA writable_schema = ON")?;
    tx.execute(
        "UPDATE sqlite_schema SET sql = ?1 WHERE type = 'table' AND name = 'changes'",
        [definition.replace(OLD_CHECK, NEW_CHECK)],
    )?;
    tx.execute_batch(&format!(
        "PRAGMA schema_version = {}; PRAGMA writable_schema = OFF;",
        version + 1
    ))?;
    Ok(())
}
