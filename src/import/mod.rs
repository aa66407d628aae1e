//! Import from audit stores: history another tool already keeps (`rowtrail import`), mapped into
//! the same changes capture writes, so the timeline, diffs, state at a moment and restore work
//! on it unchanged.
//!
//! Each format has a pure part that turns what its store holds into [`ImportedChange`]s, and a
//! reader that walks its store in commit order (`audit_trigger`, `bemi`, `supa_audit`,
//! `pgmemento`, `paper_trail`, `debezium`). Every format writes through one [`sink::Sink`]: positions of the import's own,
//! schema versions from the catalog beside the store (or from the rows), and where the import
//! resumes written in the same SQLite transaction as the changes, so an import stopped at any
//! point (a kill included) goes on exactly where it left off.

pub mod audit_trigger;
pub mod bemi;
pub mod debezium;
pub mod debezium_values;
pub mod paper_trail;
pub mod pgmemento;
mod rounds;
pub mod schemas;
pub mod sequence;
pub mod sink;
pub mod supa_audit;

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use tokio::sync::watch;

use crate::capture::session::SqlSession;
use crate::capture::{CaptureError, ConnectionSpec, catalog, tls};
use crate::model::TableName;
use crate::store::{SourceIdentity, StoreError};

/// Column names and their text values (`None` for NULL), as a store recorded a row. A column
/// the store left out is absent, and becomes an unavailable value, never NULL.
pub type Fields = Vec<(String, Option<String>)>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportedOp {
    Insert,
    Update,
    Delete,
    Truncate,
}

/// One change as an audit store recorded it.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportedChange {
    pub table: TableName,
    pub op: ImportedOp,
    pub before: Option<Fields>,
    pub after: Option<Fields>,
    /// The key's columns as the store names them, used when the catalog does not have the
    /// table (empty: the store does not say).
    pub key: Vec<String>,
    /// Column types as the store gives them (`integer`, `timestamptz`), used when the catalog
    /// does not have the table (empty: the store does not say; its columns are then text).
    pub types: Vec<(String, String)>,
}

/// A stored row that could not be read as a change: which row, which field, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{row}: {field} {reason}")]
pub struct RowError {
    pub row: String,
    pub field: String,
    pub reason: String,
}

/// The audit stores rowtrail reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditFormat {
    /// The PostgreSQL wiki's audit trigger (`audit.logged_actions`).
    PgAuditTrigger,
    /// Bemi's `changes` table.
    Bemi,
    /// Supabase's supa_audit (`audit.record_version`).
    SupaAudit,
    /// Debezium change events, one JSON object per line.
    Debezium,
    /// PaperTrail's `versions` table (Ruby on Rails).
    PaperTrail,
    /// pgMemento (`pgmemento.transaction_log`, `table_event_log`, `row_log`).
    PgMemento,
}

impl AuditFormat {
    pub const ALL: &[AuditFormat] = &[
        AuditFormat::PgAuditTrigger,
        AuditFormat::Bemi,
        AuditFormat::SupaAudit,
        AuditFormat::PgMemento,
        AuditFormat::PaperTrail,
        AuditFormat::Debezium,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::PgAuditTrigger => "pg-audit-trigger",
            Self::Bemi => "bemi",
            Self::SupaAudit => "supa-audit",
            Self::Debezium => "debezium",
            Self::PaperTrail => "paper-trail",
            Self::PgMemento => "pgmemento",
        }
    }

    /// Whether `--from` names a file (or `-`, standard input) rather than a database.
    pub fn reads_a_file(self) -> bool {
        self == Self::Debezium
    }

    /// What the store does not record, said once in the cache and shown with its history.
    fn lacking(self) -> Vec<String> {
        let own_positions =
            "no WAL positions in commit order: positions are the import's own sequence numbers";
        let catalog_now = "keys, types and foreign keys are the audited tables' as the catalog has them now, read at import";
        let lines: &[&str] = match self {
            Self::PgAuditTrigger => &[
                own_positions,
                "no commit times: a transaction's time is the clock time of its last change (action_tstamp_clk)",
                "no commit order: transactions are ordered by their last audit event, which keeps the order of transactions that changed the same rows",
                catalog_now,
            ],
            Self::Bemi => &[
                own_positions,
                "commit times to the millisecond (committed_at); transactions of the same millisecond are ordered by their last change's WAL position",
                "an UPDATE's before-image only where the table has REPLICA IDENTITY FULL, a DELETE's only its key otherwise: undo then takes the earlier values from the history before it",
                "values in Debezium's encoding: intervals as microseconds (months taken as 30 days)",
                catalog_now,
            ],
            Self::SupaAudit => &[
                own_positions,
                "no transaction ids: changes with the same transaction time (ts) are taken as one transaction",
                "no commit times: a transaction's time is its start time (ts)",
                "no commit order: transactions are ordered by their last record_version id, which keeps the order of transactions that changed the same rows (rows of a transaction that committed while an import was reading come after the rows read before them)",
                catalog_now,
            ],
            Self::PaperTrail => &[
                own_positions,
                "no PostgreSQL transaction ids: PaperTrail's own transaction_id (where the table has it) groups versions into one transaction, shown without an id; without that column each version is a transaction of its own",
                "no commit times: a transaction's time is the created_at of its last version",
                "no commit order: versions are ordered by id, which keeps the order of changes to the same record (versions of a transaction that committed while an import was reading come after the versions read before them)",
                "only the state before each change (object): the state after is its object_changes over it, else the record's next version, or the table as it is now for the newest",
                "only what the application saved through its models: changes made in SQL or with update_columns are not in it",
                catalog_now,
            ],
            Self::PgMemento => &[
                own_positions,
                "no commit times: a transaction's time is the start of its last statement (stmt_time)",
                "no commit order: transactions are ordered by their last row_log id, which keeps the order of transactions that changed the same rows",
                "an UPDATE's old values only for the columns it changed (and its new values only where the table logs new data), an INSERT's row only where the table logs new data: whole rows are rebuilt backwards from the table as it is now through the later changes",
                "one change where a statement changed a row twice (pgMemento merges them)",
                "tables that log no old data (log_old_data false): an UPDATE's row before comes from the record's earlier history, a DELETE cannot be read (an error of its row), and a TRUNCATE leaves no rows to be seen",
                "column changes (ADD, RENAME, DROP COLUMN) are not replayed: rows are rebuilt with the columns the table has now, and a table renamed since is looked up by its new name only where the log names it",
                catalog_now,
            ],
            Self::Debezium => &[
                own_positions,
                "commit times to the millisecond (source.ts_ms), or the microsecond (source.ts_us) where the events carry it",
                "an UPDATE's before-image only where the table has REPLICA IDENTITY FULL, a DELETE's only its key otherwise: undo then takes the earlier values from the history before it",
                "no catalog (unless --catalog names a database that has the tables): column types come from the events' schema part when it is there, else every column is text (and numerics, dates and times stay in Debezium's encoding); a table's key is its id column, if it has one",
                "values in Debezium's encoding: intervals as microseconds (months taken as 30 days)",
            ],
        };
        lines.iter().map(|line| (*line).to_owned()).collect()
    }
}

impl std::str::FromStr for AuditFormat {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .iter()
            .copied()
            .find(|format| format.name() == text)
            .ok_or_else(|| {
                let names: Vec<&str> = Self::ALL.iter().map(|format| format.name()).collect();
                format!("unknown format {text:?}: use one of {}", names.join(", "))
            })
    }
}

/// What to do with a stored row that cannot be read as a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnError {
    /// Stop with the row's error; everything imported before it stays.
    #[default]
    Stop,
    /// Import the valid rows, count the others and keep the first reasons.
    Skip,
}

/// Where the store is.
#[derive(Debug, Clone)]
pub enum Origin {
    Database(ConnectionSpec),
    File(PathBuf),
    Stdin,
}

#[derive(Debug, Clone)]
pub struct ImportOptions {
    pub from: Origin,
    pub format: AuditFormat,
    pub cache: PathBuf,
    /// Keep importing new rows until stopped.
    pub follow: bool,
    pub on_error: OnError,
    /// PaperTrail: the table of each model its naming does not find (`Model`, `schema.table`).
    pub table_of: Vec<(String, String)>,
    /// Debezium: the database whose catalog has the events' tables.
    pub catalog: Option<ConnectionSpec>,
    /// Columns whose values never reach the cache as they are (empty: the cache's own rules).
    pub protection: crate::model::ColumnProtection,
}

/// What an import did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportSummary {
    pub changes: u64,
    pub transactions: u64,
    /// Rows that could not be read (with `--on-error skip`), and the first reasons.
    pub skipped: u64,
    pub first_skipped: Vec<String>,
    /// Entries without rows: statement-level audit rows, Debezium messages and heartbeats.
    pub statement_only: u64,
}

/// Transactions read and written per round (and per SQLite commit).
const BATCH_TRANSACTIONS: usize = 500;
/// How often `--follow` looks for new rows.
const FOLLOW_INTERVAL: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error(transparent)]
    Source(#[from] CaptureError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(
        "{database} has no {table} table of the {format} layout ({why}): check --from, or pick the format of the store it has with --format"
    )]
    NoStore {
        database: String,
        table: &'static str,
        format: &'static str,
        why: String,
    },
    #[error(
        "{0}; nothing after it was imported (what came before stays): fix the row, or run again with --on-error skip to import the valid rows and count the others"
    )]
    BadRow(RowError),
    #[error(
        "{} is fed by capture, not by an import: import into a new cache file", .path.display()
    )]
    CapturedCache { path: PathBuf },
    #[error(
        "{} holds an import from {from} in the {format} format: import {given} into a new cache file", .path.display()
    )]
    OtherImport {
        path: PathBuf,
        format: String,
        from: String,
        given: String,
    },
    #[error(
        "another import is writing {} at the same time: let one import run per cache (stop the other, or use --follow in one place only)", .path.display()
    )]
    Concurrent { path: PathBuf },
    #[error("the import position stored in {} is damaged ({why}): import into a new cache file", .path.display())]
    Cursor { why: String, path: PathBuf },
    #[error("cannot read {what}: {why}")]
    Input { what: String, why: String },
    #[error("{format} reads {wants}: {hint}")]
    WrongOrigin {
        format: &'static str,
        wants: &'static str,
        hint: &'static str,
    },
}

/// Imports the store into the cache, and with `follow` keeps importing until `stop` is true.
/// `progress` hears the running totals after each batch.
pub async fn run(
    options: ImportOptions,
    stop: watch::Receiver<bool>,
    progress: &(dyn Fn(&ImportSummary) + Sync),
) -> Result<ImportSummary, ImportError> {
    match options.format {
        AuditFormat::PgAuditTrigger => {
            let (store, source) = Store::connect(&options).await?;
            audit_trigger::import(&store, &options, &source, stop, progress).await
        }
        AuditFormat::Bemi => {
            let (store, source) = Store::connect(&options).await?;
            bemi::import(&store, &options, &source, stop, progress).await
        }
        AuditFormat::SupaAudit => {
            let (store, source) = Store::connect(&options).await?;
            supa_audit::import(&store, &options, &source, stop, progress).await
        }
        AuditFormat::PaperTrail => {
            let (store, source) = Store::connect(&options).await?;
            paper_trail::import(&store, &options, &source, stop, progress).await
        }
        AuditFormat::PgMemento => {
            let (store, source) = Store::connect(&options).await?;
            pgmemento::import(&store, &options, &source, stop, progress).await
        }
        AuditFormat::Debezium => debezium::import(&options, stop, progress).await,
    }
}

/// The columns an import reads, and their types.
type Columns = &'static [(&'static str, &'static str)];

/// An audit store found in a database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundStore {
    pub format: AuditFormat,
    /// Its table.
    pub table: &'static str,
    /// Each audited table and how many rows the store holds for it, most first.
    pub tables: Vec<(String, i64)>,
    /// Why the store could not be read (its table is there, the role may not read it).
    pub unreadable: Option<String>,
}

impl FoundStore {
    pub fn rows(&self) -> i64 {
        self.tables.iter().map(|(_, rows)| rows).sum()
    }
}

/// Looks for every audit store rowtrail reads in the database `spec` names (a table of the
/// layout, with the columns the import reads), and says what each holds. Returns the database's
/// name too.
pub async fn detect(spec: &ConnectionSpec) -> Result<(String, Vec<FoundStore>), ImportError> {
    let tls = tls::client_config(&spec.tls).map_err(CaptureError::from)?;
    let session = SqlSession::connect(spec, tls).await?;
    let facts = catalog::server_facts(&session).await?;
    let store = Store {
        session,
        server_version_num: facts.version_num,
        database: facts.database.clone(),
    };
    let candidates: [(AuditFormat, &'static str, Columns, &str); 5] = [
        (
            AuditFormat::PgAuditTrigger,
            audit_trigger::TABLE,
            audit_trigger::COLUMNS,
            audit_trigger::TABLES_SQL,
        ),
        (
            AuditFormat::Bemi,
            bemi::TABLE,
            bemi::COLUMNS,
            bemi::TABLES_SQL,
        ),
        (
            AuditFormat::SupaAudit,
            supa_audit::TABLE,
            supa_audit::COLUMNS,
            supa_audit::TABLES_SQL,
        ),
        (
            AuditFormat::PgMemento,
            pgmemento::TABLE,
            pgmemento::COLUMNS,
            pgmemento::TABLES_SQL,
        ),
        (
            AuditFormat::PaperTrail,
            paper_trail::TABLE,
            paper_trail::COLUMNS,
            paper_trail::TABLES_SQL,
        ),
    ];
    let mut found = Vec::new();
    for (format, table, columns, tables_sql) in candidates {
        match store.check_table(format, table, columns).await {
            Ok(()) => {}
            Err(ImportError::NoStore { .. }) => continue,
            // A schema this role may not enter: said for this store, the others still looked at.
            Err(error) => {
                found.push(FoundStore {
                    format,
                    table,
                    tables: Vec::new(),
                    unreadable: Some(error.to_string()),
                });
                continue;
            }
        }
        // A store this role may not read is listed with why: the others stay importable.
        let (tables, unreadable) = match store
            .session
            .query("counting the audit store's rows", tables_sql, &[])
            .await
        {
            Ok(rows) => (
                rows.iter()
                    .map(|row| {
                        (
                            row.get::<_, Option<String>>(0).unwrap_or_default(),
                            row.get::<_, i64>(1),
                        )
                    })
                    .collect(),
                None,
            ),
            Err(error) => (Vec::new(), Some(error.to_string())),
        };
        found.push(FoundStore {
            format,
            table,
            tables,
            unreadable,
        });
    }
    Ok((facts.database, found))
}

/// A store in a PostgreSQL database.
pub struct Store {
    pub session: SqlSession,
    pub server_version_num: i32,
    pub database: String,
}

impl Store {
    /// Connects to the database `--from` names, and says which source its history is of.
    async fn connect(options: &ImportOptions) -> Result<(Self, SourceIdentity), ImportError> {
        let Origin::Database(spec) = &options.from else {
            return Err(ImportError::WrongOrigin {
                format: options.format.name(),
                wants: "a database",
                hint: "give --from a connection URL (postgres://…) of the database that holds the store",
            });
        };
        let tls = tls::client_config(&spec.tls).map_err(CaptureError::from)?;
        let session = SqlSession::connect(spec, tls).await?;
        let facts = catalog::server_facts(&session).await?;
        // The cluster's identity, when this role may read it; else the address names the source
        // (not the role: another role importing the same store imports the same source).
        let endpoints: Vec<String> = spec.endpoints.iter().map(ToString::to_string).collect();
        let system_identifier = session
            .query_one(
                "reading the system identifier",
                "SELECT system_identifier::text FROM pg_control_system()",
                &[],
            )
            .await
            .map(|row| row.get::<_, String>(0))
            .unwrap_or_else(|_| format!("import:{}/{}", endpoints.join(","), spec.dbname));
        let source = SourceIdentity {
            system_identifier,
            database: facts.database.clone(),
            display: spec.to_string(),
            server_version: facts.version.clone(),
        };
        let store = Store {
            session,
            server_version_num: facts.version_num,
            database: facts.database,
        };
        Ok((store, source))
    }

    /// Checks that `table` exists with the columns the import reads, of these types (a type
    /// named by its schema, `public.hstore`, counts as the type).
    pub async fn check_table(
        &self,
        format: AuditFormat,
        table: &'static str,
        columns: &[(&str, &str)],
    ) -> Result<(), ImportError> {
        let found: HashMap<String, String> = self
            .session
            .query(
                "looking for the audit store's table",
                "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a
                 WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped",
                &[&table],
            )
            .await?
            .iter()
            .map(|row| (row.get(0), row.get(1)))
            .collect();
        let no_store = |why: String| ImportError::NoStore {
            database: self.database.clone(),
            table,
            format: format.name(),
            why,
        };
        if found.is_empty() {
            return Err(no_store("the table does not exist".to_owned()));
        }
        for (name, wanted) in columns {
            let alternatives: Vec<&str> = wanted.split('|').collect();
            match found.get(*name) {
                None => return Err(no_store(format!("it has no column {name}"))),
                Some(found)
                    if !alternatives.iter().any(|wanted| {
                        found == wanted
                            || found.ends_with(&format!(".{wanted}"))
                            || found.starts_with(&format!("{wanted}("))
                    }) =>
                {
                    return Err(no_store(format!(
                        "its column {name} is {found}, not {}",
                        alternatives.join(" or ")
                    )));
                }
                Some(_) => {}
            }
        }
        Ok(())
    }

    /// The store's snapshot now, as text (`xmin:xmax:running,...`).
    pub async fn snapshot(&self) -> Result<String, ImportError> {
        Ok(self
            .session
            .query_one(
                "reading which transactions have ended",
                "SELECT txid_current_snapshot()::text",
                &[],
            )
            .await?
            .get(0))
    }
}

/// Waits for the next look at the store; false when the import should stop instead.
async fn wait_for_more(options: &ImportOptions, stop: &mut watch::Receiver<bool>) -> bool {
    if !options.follow || *stop.borrow() {
        return false;
    }
    tokio::select! {
        _ = tokio::time::sleep(FOLLOW_INTERVAL) => {}
        // A stop that can no longer come (its sender gone) leaves this branch out.
        Ok(()) = stop.changed() => {}
    }
    !*stop.borrow()
}
