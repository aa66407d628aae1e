//! Import from audit stores: history another tool already keeps (`rowtrail import`), mapped into
//! the same changes capture writes, so the timeline, diffs, state at a moment and restore work
//! on it unchanged.
//!
//! Each format has a pure part that turns one stored row into an [`ImportedChange`]
//! (`audit_trigger`) and reads its store page by page here. Transactions are written through
//! [`CacheWriter`] with positions of the import's own (the stores keep no WAL positions), and
//! where the import resumes is written in the same SQLite transaction as the changes, so an
//! import stopped at any point (a kill included) goes on exactly where it left off.

pub mod audit_trigger;
pub mod schemas;

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::watch;

use crate::capture::session::SqlSession;
use crate::capture::{CaptureError, ConnectionSpec, catalog, tls};
use crate::model::{Change, Context, Lsn, Op, RelationSchema, Row, TableName, Value, Xid};
use crate::store::{CacheWriter, ImportState, SourceIdentity, StoreError, TxMeta};

use audit_trigger::{AuditRow, Entry};
use schemas::CatalogSchemas;

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
}

impl AuditFormat {
    pub const ALL: &[AuditFormat] = &[AuditFormat::PgAuditTrigger];

    pub fn name(self) -> &'static str {
        match self {
            Self::PgAuditTrigger => "pg-audit-trigger",
        }
    }

    /// What the store does not record, said once in the cache and shown with its history.
    fn lacking(self) -> Vec<String> {
        match self {
            Self::PgAuditTrigger => vec![
                "no WAL positions: positions are the import's own sequence numbers".to_owned(),
                "no commit times: a transaction's time is the clock time of its last change (action_tstamp_clk)".to_owned(),
                "no commit order: transactions are ordered by their last audit event, which keeps the order of transactions that changed the same rows".to_owned(),
                "keys, types and foreign keys are the audited tables' as the catalog has them now, read at import".to_owned(),
            ],
        }
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

#[derive(Debug, Clone)]
pub struct ImportOptions {
    pub from: ConnectionSpec,
    pub format: AuditFormat,
    pub cache: PathBuf,
    /// Keep importing new rows until stopped.
    pub follow: bool,
    pub on_error: OnError,
}

/// What an import did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportSummary {
    pub changes: u64,
    pub transactions: u64,
    /// Rows that could not be read (with `--on-error skip`), and the first reasons.
    pub skipped: u64,
    pub first_skipped: Vec<String>,
    /// Statement-level entries: the store has no rows for them.
    pub statement_only: u64,
}

/// How many skipped rows' reasons a summary keeps.
const SKIPPED_REASONS: usize = 5;
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
}

/// Where an import of `audit.logged_actions` resumes. Every transaction whose id is below `below`
/// is imported, and so is every one in `done` (ids at or above it).
///
/// A round imports what a snapshot of the store sees as ended (`txid_visible_in_snapshot`) and is
/// not imported yet. All of that committed before the snapshot, and whatever a later round
/// imports committed after it (or was still running then), so rounds keep commit order; inside a
/// round, transactions go in order of their last event, which keeps the order of any two that
/// changed the same row (the second waited for the first to commit). While a round is under way,
/// `snapshot` is its snapshot and `done_through` the last event of the last transaction written.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct TriggerCursor {
    below: i64,
    #[serde(default)]
    done: Vec<i64>,
    #[serde(default)]
    snapshot: Option<String>,
    #[serde(default)]
    done_through: Option<i64>,
}

/// Imports the store into the cache, and with `follow` keeps importing until `stop` is true.
/// `progress` hears the running totals after each batch.
pub async fn run(
    options: ImportOptions,
    mut stop: watch::Receiver<bool>,
    progress: &(dyn Fn(&ImportSummary) + Sync),
) -> Result<ImportSummary, ImportError> {
    let tls = tls::client_config(&options.from.tls).map_err(CaptureError::from)?;
    let session = SqlSession::connect(&options.from, tls).await?;
    let facts = catalog::server_facts(&session).await?;
    check_trigger_store(&session, &facts.database).await?;
    // The cluster's identity, when this role may read it; else the address names the source.
    let system_identifier = session
        .query_one(
            "reading the system identifier",
            "SELECT system_identifier::text FROM pg_control_system()",
            &[],
        )
        .await
        .map(|row| row.get::<_, String>(0))
        .unwrap_or_else(|_| format!("import:{}", options.from));
    let source = SourceIdentity {
        system_identifier,
        database: facts.database.clone(),
        display: options.from.to_string(),
        server_version: facts.version.clone(),
    };
    let writer = CacheWriter::open(&options.cache, &source)?;
    if writer.capture_state()?.is_some() {
        return Err(ImportError::CapturedCache {
            path: options.cache.clone(),
        });
    }
    let format = options.format.name();
    let mut cursor = TriggerCursor::default();
    let mut saved = None;
    if let Some(state) = writer.import_state()? {
        if state.format != format {
            return Err(ImportError::OtherImport {
                path: options.cache.clone(),
                format: state.format,
                from: state.source,
                given: format.to_owned(),
            });
        }
        cursor = serde_json::from_str(&state.cursor).map_err(|error| ImportError::Cursor {
            why: error.to_string(),
            path: options.cache.clone(),
        })?;
        saved = Some(state.cursor);
    }
    let mut import = Import {
        session,
        server_version_num: facts.version_num,
        writer,
        catalog: CatalogSchemas::default(),
        registered: HashMap::new(),
        next_position: 0,
        summary: ImportSummary::default(),
        options: options.clone(),
        saved,
    };
    import.next_position = import.writer.history_end()?.map_or(1, |end| end.0 + 1);
    loop {
        let snapshot = match cursor.snapshot.clone() {
            Some(snapshot) => snapshot,
            None => import.snapshot().await?,
        };
        cursor.snapshot = Some(snapshot.clone());
        import.round(&mut cursor, &stop, progress).await?;
        if *stop.borrow() {
            break;
        }
        cursor = import.after_round(&snapshot).await?;
        import.save(&cursor)?;
        progress(&import.summary);
        if !options.follow || *stop.borrow() {
            break;
        }
        tokio::select! {
            _ = tokio::time::sleep(FOLLOW_INTERVAL) => {}
            _ = stop.changed() => {}
        }
        if *stop.borrow() {
            break;
        }
    }
    Ok(import.summary)
}

/// Checks that the database has the wiki trigger's table, with the columns the import reads.
async fn check_trigger_store(session: &SqlSession, database: &str) -> Result<(), ImportError> {
    const COLUMNS: &[(&str, &str)] = &[
        ("event_id", "bigint"),
        ("schema_name", "text"),
        ("table_name", "text"),
        ("transaction_id", "bigint"),
        ("action", "text"),
        ("row_data", "hstore"),
        ("changed_fields", "hstore"),
        ("statement_only", "boolean"),
        ("action_tstamp_clk", "timestamp with time zone"),
        ("session_user_name", "text"),
        ("application_name", "text"),
        ("client_addr", "inet"),
        ("client_query", "text"),
    ];
    let found: HashMap<String, String> = session
        .query(
            "looking for audit.logged_actions",
            "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a
             WHERE a.attrelid = to_regclass('audit.logged_actions') AND a.attnum > 0
               AND NOT a.attisdropped",
            &[],
        )
        .await?
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
    let no_store = |why: String| ImportError::NoStore {
        database: database.to_owned(),
        table: "audit.logged_actions",
        format: AuditFormat::PgAuditTrigger.name(),
        why,
    };
    if found.is_empty() {
        return Err(no_store("the table does not exist".to_owned()));
    }
    for (name, wanted) in COLUMNS {
        match found.get(*name) {
            None => return Err(no_store(format!("it has no column {name}"))),
            Some(found) if found != wanted && !found.ends_with(&format!(".{wanted}")) => {
                return Err(no_store(format!(
                    "its column {name} is {found}, not {wanted}"
                )));
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// One audit transaction, its rows in event order.
struct AuditTransaction {
    txid: i64,
    rows: Vec<AuditRow>,
}

/// An import under way.
struct Import {
    session: SqlSession,
    server_version_num: i32,
    writer: CacheWriter,
    catalog: CatalogSchemas,
    /// The schema version last registered for each table, and its oid.
    registered: HashMap<TableName, RelationSchema>,
    next_position: u64,
    summary: ImportSummary,
    options: ImportOptions,
    /// The cursor as this import last read or wrote it.
    saved: Option<String>,
}

impl Import {
    /// The store's snapshot now, as text (`xmin:xmax:running,...`).
    async fn snapshot(&self) -> Result<String, ImportError> {
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

    /// The cursor once every transaction `snapshot` sees as ended is imported: below its oldest
    /// running transaction, everything; at or above it, the ended ones that left rows.
    async fn after_round(&self, snapshot: &str) -> Result<TriggerCursor, ImportError> {
        let below: i64 = self
            .session
            .query_one(
                "reading which transactions have ended",
                "SELECT txid_snapshot_xmin($1::text::txid_snapshot)",
                &[&snapshot],
            )
            .await?
            .get(0);
        let done: Vec<i64> = self
            .session
            .query(
                "reading which transactions have ended",
                "SELECT DISTINCT transaction_id FROM audit.logged_actions
                 WHERE transaction_id >= $1
                   AND txid_visible_in_snapshot(transaction_id, $2::text::txid_snapshot)
                 ORDER BY 1",
                &[&below, &snapshot],
            )
            .await?
            .iter()
            .map(|row| row.get(0))
            .collect();
        Ok(TriggerCursor {
            below,
            done,
            snapshot: None,
            done_through: None,
        })
    }

    /// Commits the staged changes with `cursor`, unless another import moved the cursor since
    /// this one last saw it (then nothing of this batch is kept).
    fn save(&mut self, cursor: &TriggerCursor) -> Result<(), ImportError> {
        let state = ImportState {
            format: self.options.format.name().to_owned(),
            source: self.options.from.to_string(),
            cursor: serde_json::to_string(cursor).map_err(|error| ImportError::Cursor {
                why: error.to_string(),
                path: self.options.cache.clone(),
            })?,
            lacking: self.options.format.lacking(),
        };
        if !self
            .writer
            .set_import_state(self.saved.as_deref(), &state)?
        {
            self.writer.rollback()?;
            return Err(ImportError::Concurrent {
                path: self.options.cache.clone(),
            });
        }
        self.writer.flush()?;
        self.saved = Some(state.cursor);
        Ok(())
    }

    /// Imports the transactions the cursor's snapshot sees as ended and that are not imported
    /// yet, in order of their last event, a batch per SQLite commit, resuming after
    /// `done_through`.
    async fn round(
        &mut self,
        cursor: &mut TriggerCursor,
        stop: &watch::Receiver<bool>,
        progress: &(dyn Fn(&ImportSummary) + Sync),
    ) -> Result<(), ImportError> {
        // Each transaction of the round: its id, first and last event.
        let transactions: Vec<(i64, i64, i64)> = self
            .session
            .query(
                "listing audited transactions",
                "SELECT transaction_id, min(event_id), max(event_id) FROM audit.logged_actions
                 WHERE transaction_id >= $1
                   AND txid_visible_in_snapshot(transaction_id, $2::text::txid_snapshot)
                   AND transaction_id <> ALL($3)
                 GROUP BY transaction_id HAVING max(event_id) > $4 ORDER BY 3",
                &[
                    &cursor.below,
                    &cursor.snapshot,
                    &cursor.done,
                    &cursor.done_through.unwrap_or(i64::MIN),
                ],
            )
            .await?
            .iter()
            .map(|row| (row.get(0), row.get(1), row.get(2)))
            .collect();
        for batch in transactions.chunks(BATCH_TRANSACTIONS) {
            let ids: Vec<i64> = batch.iter().map(|(txid, _, _)| *txid).collect();
            let first = batch.iter().map(|(_, first, _)| *first).min().unwrap_or(0);
            let last = batch.iter().map(|(_, _, last)| *last).max().unwrap_or(0);
            let rows = self.read_rows(&ids, first, last).await?;
            let mut by_tx: HashMap<i64, Vec<AuditRow>> = HashMap::new();
            for row in rows {
                by_tx
                    .entry(row.transaction_id.unwrap_or_default())
                    .or_default()
                    .push(row);
            }
            for (txid, _, last_event) in batch {
                let rows = by_tx.remove(txid).unwrap_or_default();
                let written = self
                    .write_transaction(AuditTransaction { txid: *txid, rows })
                    .await;
                if let Err(error) = written {
                    // A bad row is found before its transaction is written: keep what came before.
                    if matches!(error, ImportError::BadRow(_)) {
                        self.save(cursor)?;
                    }
                    return Err(error);
                }
                cursor.done_through = Some(*last_event);
            }
            self.save(cursor)?;
            progress(&self.summary);
            if *stop.borrow() {
                break;
            }
        }
        Ok(())
    }

    async fn read_rows(
        &self,
        transactions: &[i64],
        first: i64,
        last: i64,
    ) -> Result<Vec<AuditRow>, ImportError> {
        let rows = self
            .session
            .query(
                "reading audit rows",
                "SELECT event_id, schema_name, table_name, transaction_id, action,
                        hstore_to_json(row_data)::text, hstore_to_json(changed_fields)::text,
                        statement_only, session_user_name, application_name, client_addr::text,
                        client_query,
                        CASE WHEN isfinite(action_tstamp_clk)
                             THEN (extract(epoch FROM action_tstamp_clk) * 1000000)::int8 END
                 FROM audit.logged_actions
                 WHERE event_id BETWEEN $2 AND $3 AND transaction_id = ANY($1)
                 ORDER BY event_id",
                &[&transactions, &first, &last],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|row| AuditRow {
                // Columns the wiki's table declares NOT NULL are read as optional all the same:
                // a store of another make may hold NULLs, which become errors of their row.
                event_id: row.get(0),
                schema_name: row.get::<_, Option<String>>(1).unwrap_or_default(),
                table_name: row.get::<_, Option<String>>(2).unwrap_or_default(),
                transaction_id: row.get(3),
                action: row.get::<_, Option<String>>(4).unwrap_or_default(),
                row_data: row.get(5),
                changed_fields: row.get(6),
                statement_only: row.get::<_, Option<bool>>(7).unwrap_or(false),
                session_user_name: row.get(8),
                application_name: row.get(9),
                client_addr: row.get(10),
                client_query: row.get(11),
                clock_micros: row.get::<_, Option<i64>>(12).unwrap_or(i64::MIN),
            })
            .collect())
    }

    /// Writes one audit transaction as a cache transaction: its changes in event order, the
    /// context of its first row that has one, its time the clock time of its last row.
    async fn write_transaction(
        &mut self,
        transaction: AuditTransaction,
    ) -> Result<(), ImportError> {
        let mut changes: Vec<(ImportedChange, Option<Context>)> = Vec::new();
        let mut committed_micros = i64::MIN;
        for row in &transaction.rows {
            committed_micros = committed_micros.max(row.clock_micros);
            match audit_trigger::entry_of(row) {
                Ok(Entry::Change(change)) => changes.push((change, audit_trigger::context_of(row))),
                Ok(Entry::StatementOnly) => self.summary.statement_only += 1,
                Err(error) => match self.options.on_error {
                    OnError::Stop => return Err(ImportError::BadRow(error)),
                    OnError::Skip => {
                        self.summary.skipped += 1;
                        if self.summary.first_skipped.len() < SKIPPED_REASONS {
                            self.summary.first_skipped.push(error.to_string());
                        }
                    }
                },
            }
        }
        if changes.is_empty() {
            return Ok(());
        }
        let committed_at = DateTime::<Utc>::from_timestamp_micros(committed_micros)
            .unwrap_or(DateTime::<Utc>::UNIX_EPOCH);
        // The catalog of each table, read before the transaction is written.
        for (change, _) in &changes {
            self.catalog
                .get(&self.session, self.server_version_num, &change.table)
                .await?;
        }
        let commit_position = self.next_position + changes.len() as u64;
        self.writer.begin(TxMeta {
            xid: Some(Xid((transaction.txid & 0xffff_ffff) as u32)),
            commit_lsn: Lsn(commit_position),
            committed_at,
            is_baseline: false,
        })?;
        let mut context_now: Option<Context> = None;
        for (change, context) in changes {
            let position = Lsn(self.next_position);
            self.next_position += 1;
            let schema = self.register(&change, position)?;
            let oid = schema.oid;
            if context.is_some() && context != context_now {
                if let Some(context) = &context {
                    self.writer.set_context(context)?;
                }
                context_now = context;
            }
            match change.op {
                ImportedOp::Truncate => {
                    self.writer.truncate(position, &[oid])?;
                    self.summary.changes += 1;
                }
                op => {
                    let image = |fields: &Option<Fields>| {
                        fields.as_ref().map(|fields| row_of(&schema, fields))
                    };
                    let change = Change {
                        op: match op {
                            ImportedOp::Insert => Op::Insert,
                            ImportedOp::Update => Op::Update,
                            _ => Op::Delete,
                        },
                        before: image(&change.before),
                        after: image(&change.after),
                    };
                    self.writer.imported_change(position, oid, &change)?;
                    self.summary.changes += 1;
                }
            }
        }
        self.writer.commit(Lsn(commit_position + 1))?;
        self.next_position = commit_position + 2;
        self.summary.transactions += 1;
        Ok(())
    }

    /// Makes the schema version of the change's row the current one of its table.
    /// Makes the schema version of the change's row the current one of its table, and returns
    /// it. A new shape inside the history is recorded as a schema change noticed, as capture
    /// records one it notices without the schema log.
    fn register(
        &mut self,
        change: &ImportedChange,
        position: Lsn,
    ) -> Result<RelationSchema, ImportError> {
        let catalog = self.catalog.known(&change.table);
        let names: Vec<&str> = match change.after.as_ref().or(change.before.as_ref()) {
            Some(fields) => fields.iter().map(|(name, _)| name.as_str()).collect(),
            // A truncate: the table as last seen, else as the catalog has it.
            None => {
                if let Some(schema) = self.registered.get(&change.table) {
                    return Ok(schema.clone());
                }
                Vec::new()
            }
        };
        let schema = schemas::shape(&change.table, catalog, &names);
        let known = self
            .registered
            .get(&change.table)
            .is_some_and(|current| current.same_shape(&schema));
        if !known {
            self.writer.register_relation(schema.clone(), position)?;
            self.registered.insert(change.table.clone(), schema.clone());
        }
        Ok(schema)
    }
}

/// A stored row in the schema's column order: a value the store did not record is unavailable.
/// Values take the form capture stores (`decode::text_form`: what `value::text` prints).
fn row_of(schema: &RelationSchema, fields: &Fields) -> Row {
    schema
        .columns
        .iter()
        .map(
            |column| match fields.iter().find(|(name, _)| *name == column.name) {
                Some((_, Some(text))) => {
                    Value::Text(crate::decode::text_form(column.base_type_oid, text.clone()))
                }
                Some((_, None)) => Value::Null,
                None => Value::Unavailable,
            },
        )
        .collect()
}
