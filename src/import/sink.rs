//! Where every format's transactions go: the cache, through [`CacheWriter`], with positions of
//! the import's own (stores keep no WAL positions, or none in commit order), schema versions
//! from the catalog beside the store or from the rows themselves, and the format's cursor
//! committed in the same SQLite transaction as the changes it covers.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::capture::session::SqlSession;
use crate::model::{Change, Context, Lsn, Op, RelationSchema, Row, TableName, Value, Xid};
use crate::store::{CacheWriter, ImportState, SourceIdentity};

use super::schemas::{self, CatalogSchemas};
use super::{
    Fields, ImportError, ImportOptions, ImportSummary, ImportedChange, ImportedOp, OnError,
    RowError,
};

/// How many skipped rows' reasons a summary keeps.
const SKIPPED_REASONS: usize = 5;

/// One transaction as a store recorded it, its changes in order.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportedTransaction {
    /// The source's transaction id, when the store kept one.
    pub xid: Option<u32>,
    pub committed_at: DateTime<Utc>,
    /// Each change with who made it, when the store says.
    pub changes: Vec<(ImportedChange, Option<Context>)>,
}

impl ImportedTransaction {
    /// A transaction of the store: its id as `txid_current()` gives it (64 bits: the cache
    /// keeps the 32-bit xid), its time in microseconds since 1970.
    pub fn new(
        txid: Option<i64>,
        micros: i64,
        changes: Vec<(ImportedChange, Option<Context>)>,
    ) -> Self {
        Self {
            xid: txid.map(|txid| (txid & 0xffff_ffff) as u32),
            committed_at: DateTime::<Utc>::from_timestamp_micros(micros)
                .unwrap_or(DateTime::<Utc>::UNIX_EPOCH),
            changes,
        }
    }
}

/// The cache an import writes, and what it has written.
pub struct Sink {
    writer: CacheWriter,
    catalog: CatalogSchemas,
    /// The schema version last registered for each table.
    registered: HashMap<TableName, RelationSchema>,
    next_position: u64,
    pub summary: ImportSummary,
    options: ImportOptions,
    /// The cursor as this import last read or wrote it.
    saved: Option<String>,
}

impl Sink {
    /// Opens (or creates) the cache for this import, refusing a cache fed by capture or by an
    /// import of another format.
    pub fn open(options: &ImportOptions, source: &SourceIdentity) -> Result<Self, ImportError> {
        let mut writer = CacheWriter::open(&options.cache, source)?;
        writer.protect(&options.protection.rules, options.protection.key.clone())?;
        if writer.capture_state()?.is_some() {
            return Err(ImportError::CapturedCache {
                path: options.cache.clone(),
            });
        }
        let mut saved = None;
        if let Some(state) = writer.import_state()? {
            let format = options.format.name();
            if state.format != format {
                return Err(ImportError::OtherImport {
                    path: options.cache.clone(),
                    format: state.format,
                    from: state.source,
                    given: format.to_owned(),
                });
            }
            saved = Some(state.cursor);
        }
        let next_position = writer.history_end()?.map_or(1, |end| end.0 + 1);
        Ok(Self {
            writer,
            catalog: CatalogSchemas::default(),
            registered: HashMap::new(),
            next_position,
            summary: ImportSummary::default(),
            options: options.clone(),
            saved,
        })
    }

    /// The format's cursor as the cache holds it; the default for a new import.
    pub fn cursor<T: DeserializeOwned + Default>(&self) -> Result<T, ImportError> {
        match &self.saved {
            None => Ok(T::default()),
            Some(text) => serde_json::from_str(text).map_err(|error| self.bad_cursor(error)),
        }
    }

    fn bad_cursor(&self, error: serde_json::Error) -> ImportError {
        ImportError::Cursor {
            why: error.to_string(),
            path: self.options.cache.clone(),
        }
    }

    /// A row that could not be read: the import's error, or with `--on-error skip`, counted.
    pub fn bad_row(&mut self, error: RowError) -> Result<(), ImportError> {
        match self.options.on_error {
            OnError::Stop => Err(ImportError::BadRow(error)),
            OnError::Skip => {
                self.summary.skipped += 1;
                if self.summary.first_skipped.len() < SKIPPED_REASONS {
                    self.summary.first_skipped.push(error.to_string());
                }
                Ok(())
            }
        }
    }

    /// The table as the catalog beside the store has it now (looked up once), if it has it.
    pub async fn catalog_schema(
        &mut self,
        session: &SqlSession,
        server_version_num: i32,
        table: &TableName,
    ) -> Result<Option<&RelationSchema>, ImportError> {
        Ok(self.catalog.get(session, server_version_num, table).await?)
    }

    /// Writes one transaction (nothing, when it has no changes). Staged until [`Sink::save`].
    pub fn write(&mut self, transaction: ImportedTransaction) -> Result<(), ImportError> {
        if transaction.changes.is_empty() {
            return Ok(());
        }
        let commit_position = self.next_position + transaction.changes.len() as u64;
        self.writer.begin(crate::store::TxMeta {
            xid: transaction.xid.map(Xid),
            commit_lsn: Lsn(commit_position),
            committed_at: transaction.committed_at,
            is_baseline: false,
        })?;
        let mut context_now: Option<Context> = None;
        for (change, context) in transaction.changes {
            let position = Lsn(self.next_position);
            self.next_position += 1;
            let schema = self.register(&change, position)?;
            if context.is_some() && context != context_now {
                if let Some(context) = &context {
                    self.writer.set_context(context)?;
                }
                context_now = context;
            }
            let op = match change.op {
                ImportedOp::Truncate => {
                    self.writer.truncate(position, &[schema.oid])?;
                    self.summary.changes += 1;
                    continue;
                }
                ImportedOp::Insert => Op::Insert,
                ImportedOp::Update => Op::Update,
                ImportedOp::Delete => Op::Delete,
            };
            let image = |fields: &Option<Fields>| fields.as_ref().map(|f| row_of(&schema, f));
            let stored = Change {
                op,
                before: image(&change.before),
                after: image(&change.after),
            };
            self.writer.imported_change(position, schema.oid, &stored)?;
            self.summary.changes += 1;
        }
        self.writer.commit(Lsn(commit_position + 1))?;
        self.next_position = commit_position + 2;
        self.summary.transactions += 1;
        Ok(())
    }

    /// Commits what was written since the last save with `cursor`, unless another import moved
    /// the cursor since this one last saw it (then nothing of it is kept).
    pub fn save<T: Serialize>(&mut self, cursor: &T) -> Result<(), ImportError> {
        let state = ImportState {
            format: self.options.format.name().to_owned(),
            source: self.options.from_display(),
            cursor: serde_json::to_string(cursor).map_err(|error| self.bad_cursor(error))?,
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

    /// Makes the schema version of the change's row the current one of its table, and returns
    /// it. A new shape inside the history is recorded as a schema change noticed, as capture
    /// records one it notices without the schema log.
    fn register(
        &mut self,
        change: &ImportedChange,
        position: Lsn,
    ) -> Result<RelationSchema, ImportError> {
        let image = change.after.as_ref().or(change.before.as_ref());
        // An old row that is only its key (Debezium without REPLICA IDENTITY FULL) does not
        // show the table's shape: the shape last seen stays.
        let key_only = change.after.is_none()
            && !change.key.is_empty()
            && image.is_some_and(|fields| {
                fields.len() == change.key.len()
                    && fields.iter().all(|(name, _)| change.key.contains(name))
            });
        if key_only && let Some(schema) = self.registered.get(&change.table) {
            return Ok(schema.clone());
        }
        let names: Vec<&str> = match image {
            // The store lists the table's columns (Debezium's schema part).
            Some(_) if !change.types.is_empty() => {
                change.types.iter().map(|(name, _)| name.as_str()).collect()
            }
            Some(fields) => fields.iter().map(|(name, _)| name.as_str()).collect(),
            // A truncate: the table as last seen, else as the catalog has it.
            None => {
                if let Some(schema) = self.registered.get(&change.table) {
                    return Ok(schema.clone());
                }
                Vec::new()
            }
        };
        let catalog = self.catalog.known(&change.table);
        let schema = schemas::shape(&change.table, catalog, &names, &change.key, &change.types);
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

impl ImportOptions {
    /// The source as people read it (never a password).
    pub fn from_display(&self) -> String {
        match &self.from {
            super::Origin::Database(spec) => spec.to_string(),
            super::Origin::File(path) => path.display().to_string(),
            super::Origin::Stdin => "standard input".to_owned(),
        }
    }
}
