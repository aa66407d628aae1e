//! The cache as a journal: its rows as they are, whole source transactions at a time, for the
//! shared store's publisher (`crate::shared`). Reads in one read transaction, so a batch is one
//! state of the cache however much capture writes meanwhile.

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OptionalExtension};

use super::{BaselineState, SourceIdentity, SqliteContext, StoreError};

/// A read handle on a cache, for publishing it.
pub struct Journal {
    connection: Connection,
    path: PathBuf,
}

/// A row of `tables`.
#[derive(Debug, Clone, PartialEq)]
pub struct TableRow {
    pub id: i64,
    pub oid: i64,
    pub schema_name: String,
    pub name: String,
    pub dropped_change: Option<i64>,
}

/// A row of `relations` (a schema version).
#[derive(Debug, Clone, PartialEq)]
pub struct RelationRow {
    pub id: i64,
    pub table_id: i64,
    pub definition: String,
    pub first_lsn: i64,
}

/// A row of `transactions`.
#[derive(Debug, Clone, PartialEq)]
pub struct TransactionRow {
    pub id: i64,
    pub xid: Option<i64>,
    pub commit_lsn: i64,
    pub end_lsn: i64,
    /// Microseconds since 1970-01-01 UTC.
    pub committed_at: i64,
    pub change_count: i64,
    pub context_id: Option<i64>,
    pub origin: Option<String>,
    pub is_baseline: i64,
}

/// A row of `changes`, with its transaction's commit time.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangeRow {
    pub id: i64,
    pub tx_id: i64,
    pub lsn: i64,
    pub table_id: i64,
    pub relation_id: i64,
    pub op: String,
    pub key: String,
    pub old_key: Option<String>,
    pub before: Option<String>,
    pub after: Option<String>,
    pub unavailable: Option<String>,
    pub context_id: Option<i64>,
    /// The transaction's commit time, microseconds since 1970-01-01 UTC.
    pub committed_at: i64,
}

/// The capture state row, as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct CaptureStateRow {
    pub slot: String,
    pub publication: String,
    pub baseline: String,
    pub position: i64,
    pub updated_at: String,
    pub schema_log_since: Option<i64>,
}

/// The import state row, as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportStateRow {
    pub format: String,
    pub source: String,
    pub cursor: String,
    pub lacking: String,
    pub updated_at: String,
}

/// A `column_rules` row: pattern, protection, key fingerprint, created at, derived from.
pub type ColumnRuleRow = (String, String, Option<String>, String, Option<String>);

/// What the journal holds after a given transaction: up to a limit of changes, whole transactions.
#[derive(Debug, Clone, Default)]
pub struct JournalBatch {
    /// Every table (few, and their names and drops change).
    pub tables: Vec<TableRow>,
    pub relations: Vec<RelationRow>,
    pub contexts: Vec<(i64, String)>,
    pub transactions: Vec<TransactionRow>,
    pub changes: Vec<ChangeRow>,
    pub capture_state: Option<CaptureStateRow>,
    pub import_state: Option<ImportStateRow>,
    /// The column rules: a few rows, copied with every batch (a rename may add one).
    pub column_rules: Vec<ColumnRuleRow>,
    /// The journal's newest transaction: when it is the batch's last, the batch catches up.
    pub newest_tx: i64,
}

/// Where a batch starts: the newest rows the store already has.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JournalCursor {
    pub through_tx: i64,
    pub through_relation: i64,
    pub through_context: i64,
}

impl Journal {
    /// Opens an existing cache; refuses files that are not rowtrail caches.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let connection = super::open_existing(path)?;
        super::read_source(&connection, path)?;
        Ok(Self {
            connection,
            path: path.to_owned(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn source(&self) -> Result<SourceIdentity, StoreError> {
        super::read_source(&self.connection, &self.path)
    }

    /// The commit position of transaction `id`, if the journal has it.
    pub fn commit_lsn_of(&self, id: i64) -> Result<Option<i64>, StoreError> {
        self.connection
            .query_row(
                "SELECT commit_lsn FROM transactions WHERE id = ?1",
                [id],
                |row| row.get(0),
            )
            .optional()
            .context(&self.path, "reading a transaction")
    }

    /// True while the cache's baseline is being taken (nothing after it may be published yet: an
    /// interrupted baseline is taken again, and its rows replaced).
    pub fn baseline_pending(&self) -> Result<bool, StoreError> {
        Ok(super::read_capture_state(&self.connection, &self.path)?
            .is_some_and(|state| state.baseline == BaselineState::Pending))
    }

    /// The transactions after `cursor.through_tx` whose changes add up to about `max_changes`
    /// (at least one whole transaction), with what they need.
    pub fn batch(
        &self,
        cursor: JournalCursor,
        max_changes: usize,
    ) -> Result<JournalBatch, StoreError> {
        let read = self
            .connection
            .unchecked_transaction()
            .context(&self.path, "starting a read")?;
        let batch = self.read_batch(cursor, max_changes)?;
        read.commit().context(&self.path, "ending a read")?;
        Ok(batch)
    }

    fn read_batch(
        &self,
        cursor: JournalCursor,
        max_changes: usize,
    ) -> Result<JournalBatch, StoreError> {
        let path = &self.path;
        let connection = &self.connection;
        let newest_tx: i64 = connection
            .query_row("SELECT coalesce(max(id), 0) FROM transactions", [], |row| {
                row.get(0)
            })
            .context(path, "reading transactions")?;
        // Whole transactions, in id order, until they hold `max_changes`.
        let mut upto = cursor.through_tx;
        let mut total = 0usize;
        {
            let mut statement = connection
                .prepare("SELECT id, change_count FROM transactions WHERE id > ?1 ORDER BY id")
                .context(path, "reading transactions")?;
            let mut rows = statement
                .query([cursor.through_tx])
                .context(path, "reading transactions")?;
            while let Some(row) = rows.next().context(path, "reading transactions")? {
                let (id, count): (i64, i64) = (
                    row.get(0).context(path, "reading transactions")?,
                    row.get(1).context(path, "reading transactions")?,
                );
                if total > 0 && total + count.max(0) as usize > max_changes {
                    break;
                }
                upto = id;
                total += count.max(0) as usize;
                if total >= max_changes {
                    break;
                }
            }
        }
        let tables = connection
            .prepare("SELECT id, oid, schema_name, name, dropped_change FROM tables ORDER BY id")
            .and_then(|mut statement| {
                statement
                    .query_map([], |row| {
                        Ok(TableRow {
                            id: row.get(0)?,
                            oid: row.get(1)?,
                            schema_name: row.get(2)?,
                            name: row.get(3)?,
                            dropped_change: row.get(4)?,
                        })
                    })?
                    .collect()
            })
            .context(path, "reading tables")?;
        let relations = connection
            .prepare(
                "SELECT id, table_id, definition, first_lsn FROM relations WHERE id > ?1 ORDER BY id",
            )
            .and_then(|mut statement| {
                statement
                    .query_map([cursor.through_relation], |row| {
                        Ok(RelationRow {
                            id: row.get(0)?,
                            table_id: row.get(1)?,
                            definition: row.get(2)?,
                            first_lsn: row.get(3)?,
                        })
                    })?
                    .collect()
            })
            .context(path, "reading schema versions")?;
        let contexts = connection
            .prepare("SELECT id, body FROM contexts WHERE id > ?1 ORDER BY id")
            .and_then(|mut statement| {
                statement
                    .query_map([cursor.through_context], |row| {
                        Ok((row.get(0)?, row.get(1)?))
                    })?
                    .collect()
            })
            .context(path, "reading contexts")?;
        let transactions = connection
            .prepare(
                "SELECT id, xid, commit_lsn, end_lsn, committed_at, change_count, context_id, origin,
                        is_baseline
                 FROM transactions WHERE id > ?1 AND id <= ?2 ORDER BY id",
            )
            .and_then(|mut statement| {
                statement
                    .query_map([cursor.through_tx, upto], |row| {
                        Ok(TransactionRow {
                            id: row.get(0)?,
                            xid: row.get(1)?,
                            commit_lsn: row.get(2)?,
                            end_lsn: row.get(3)?,
                            committed_at: row.get(4)?,
                            change_count: row.get(5)?,
                            context_id: row.get(6)?,
                            origin: row.get(7)?,
                            is_baseline: row.get(8)?,
                        })
                    })?
                    .collect()
            })
            .context(path, "reading transactions")?;
        let changes = connection
            .prepare(
                "SELECT c.id, c.tx_id, c.lsn, c.table_id, c.relation_id, c.op, c.key, c.old_key,
                        c.before, c.after, c.unavailable, c.context_id, t.committed_at
                 FROM changes c JOIN transactions t ON t.id = c.tx_id
                 WHERE c.tx_id > ?1 AND c.tx_id <= ?2 ORDER BY c.id",
            )
            .and_then(|mut statement| {
                statement
                    .query_map([cursor.through_tx, upto], |row| {
                        Ok(ChangeRow {
                            id: row.get(0)?,
                            tx_id: row.get(1)?,
                            lsn: row.get(2)?,
                            table_id: row.get(3)?,
                            relation_id: row.get(4)?,
                            op: row.get(5)?,
                            key: row.get(6)?,
                            old_key: row.get(7)?,
                            before: row.get(8)?,
                            after: row.get(9)?,
                            unavailable: row.get(10)?,
                            context_id: row.get(11)?,
                            committed_at: row.get(12)?,
                        })
                    })?
                    .collect()
            })
            .context(path, "reading changes")?;
        let capture_state = connection
            .query_row(
                "SELECT slot, publication, baseline, position, updated_at, schema_log_since
                 FROM capture_state WHERE id = 1",
                [],
                |row| {
                    Ok(CaptureStateRow {
                        slot: row.get(0)?,
                        publication: row.get(1)?,
                        baseline: row.get(2)?,
                        position: row.get(3)?,
                        updated_at: row.get(4)?,
                        schema_log_since: row.get(5)?,
                    })
                },
            )
            .optional()
            .context(path, "reading the capture state")?;
        let import_state = connection
            .query_row(
                "SELECT format, source, cursor, lacking, updated_at FROM import_state WHERE id = 1",
                [],
                |row| {
                    Ok(ImportStateRow {
                        format: row.get(0)?,
                        source: row.get(1)?,
                        cursor: row.get(2)?,
                        lacking: row.get(3)?,
                        updated_at: row.get(4)?,
                    })
                },
            )
            .optional()
            .context(path, "reading the import state")?;
        let column_rules = connection
            .prepare(
                "SELECT pattern, protection, key_fingerprint, created_at, derived_from
                 FROM column_rules ORDER BY id",
            )
            .and_then(|mut statement| {
                statement
                    .query_map([], |row| {
                        Ok((
                            row.get(0)?,
                            row.get(1)?,
                            row.get(2)?,
                            row.get(3)?,
                            row.get(4)?,
                        ))
                    })?
                    .collect::<Result<Vec<_>, _>>()
            })
            .context(path, "reading the column rules")?;
        Ok(JournalBatch {
            tables,
            relations,
            contexts,
            transactions,
            changes,
            capture_state,
            import_state,
            column_rules,
            newest_tx,
        })
    }
}
