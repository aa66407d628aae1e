//! Changing history already stored: retention (folding the history before a cut into a baseline)
//! and erasure (removing one record's values from its changes). The store does the writes and
//! the bookkeeping; `crate::retention` decides what to write (it folds tables without a key with
//! `history::state`, which the store does not import).
//!
//! Both run in one immediate SQLite transaction with `secure_delete` on, so what they remove is
//! overwritten rather than left in free space. Afterwards a prune hands free pages back
//! (incremental vacuum); an erasure rewrites the file (`VACUUM`), because copies of a row may
//! linger in the unused space of pages SQLite rearranged long before. Both then checkpoint the
//! WAL and truncate it, so no old page stays there.

use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use rusqlite::{Connection, Transaction, TransactionBehavior, params};

use crate::model::{Change, ChangeId, LoggedChange, Moment, Op, RelationSchema, Row, key_of};

use super::codec::{self, EncodedImages};
use super::db::{Db, Query};
use super::reader::Cache;
use super::{SqliteContext, StoreError};

/// Where a prune cuts: the newest change folded into the baseline (the end of a transaction).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PruneCut {
    pub change: ChangeId,
    /// The transaction of that change: the baseline takes its place (its commit time and
    /// position).
    pub tx_id: i64,
    /// Its commit time: the history begins here after the prune.
    pub committed_at: DateTime<Utc>,
    /// The transaction that holds the baseline after the prune: the baseline the history
    /// already begins with, so its snapshots of records that did not change are not rewritten;
    /// else the cut's own transaction.
    pub base_tx: i64,
    /// Every change up to here is already a snapshot of `base_tx` (the previous prune's cut).
    pub folded_to: i64,
}

/// A table with history at or before a cut, and what a prune must do with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrunedTable {
    pub id: i64,
    /// Dropped at or before the cut: nothing of it is left after it.
    pub dropped: bool,
    /// Every schema version has the same key: each record's newest change is its state.
    pub one_key: bool,
}

/// How a cache file was made smaller after history left it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shrink {
    /// Free pages were handed back (the cache was made with incremental vacuum).
    Incremental,
    /// Every live row was copied into fresh pages (`VACUUM`): always for an erasure, and once
    /// for a cache that predates incremental vacuum, which shrinks in place from then on.
    Rewritten,
}

/// What a cache file takes on disk, its WAL included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileSize {
    pub file: u64,
    pub wal: u64,
}

impl FileSize {
    pub fn of(path: &Path) -> Self {
        let size = |path: &Path| std::fs::metadata(path).map_or(0, |meta| meta.len());
        let mut wal = path.as_os_str().to_owned();
        wal.push("-wal");
        Self {
            file: size(path),
            wal: size(Path::new(&wal)),
        }
    }

    pub fn total(self) -> u64 {
        self.file + self.wal
    }
}

/// One prune, as the cache logs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PruneEntry {
    /// The history now begins here.
    pub before: DateTime<Utc>,
    pub removed: i64,
    pub kept: i64,
    pub pruned_at: String,
}

/// One erasure, as the cache logs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErasureEntry {
    pub table: String,
    pub key: String,
    pub related: bool,
    pub changes: i64,
    pub erased_at: String,
}

impl ErasureEntry {
    /// Reads `table_name, key, related, changes, erased_at` of `erasures`.
    fn read(row: &super::db::DbRow<'_>) -> Result<Self, super::db::DbError> {
        Ok(Self {
            table: row.get(0)?,
            key: row.get(1)?,
            related: row.get(2)?,
            changes: row.get(3)?,
            erased_at: row.get(4)?,
        })
    }
}

/// A change's images as an erasure leaves them, with what the change was when they were made
/// from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErasedChange {
    pub id: ChangeId,
    pub op: Op,
    /// The cache's id of its transaction.
    pub tx_id: i64,
    pub images: EncodedImages,
}

/// An open maintenance transaction on a cache file.
pub struct Maintenance<'a> {
    cache: &'a Cache,
    transaction: Transaction<'a>,
}

fn micros_to_time(micros: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(micros).unwrap_or_default()
}

impl Cache {
    fn sqlite(&self, action: &'static str) -> Result<&Connection, StoreError> {
        match self.connection() {
            Db::Sqlite(connection) => Ok(connection),
            Db::Remote { .. } => Err(StoreError::SharedStoreMaintenance {
                location: self.path().display().to_string(),
                action,
            }),
        }
    }

    /// Where a prune before `moment` cuts: the end of the newest transaction whose state the
    /// moment includes whole (a moment inside a transaction keeps that transaction; a time keeps
    /// every transaction that committed after it, whatever its place in the cache). The newest
    /// transaction of the cache is always kept, so no id is ever given out twice. `None` when no
    /// history lies before the moment.
    pub fn prune_cut(&self, moment: Moment) -> Result<Option<PruneCut>, StoreError> {
        self.sqlite("pruning")?;
        let cut = match self.resolve_moment(moment) {
            Ok(cut) => cut,
            Err(StoreError::BeforeHistory { .. } | StoreError::EmptyHistory) => return Ok(None),
            Err(error) => return Err(error),
        };
        let path = self.path();
        let connection = self.connection();
        // The first and last change of the transaction of the newest change at or before `id`
        // (a moment may name an id a prune left out).
        let first_of_tx_of = |id: i64| -> Result<Option<(i64, i64)>, StoreError> {
            connection
                .query_opt(
                    "SELECT (SELECT min(id) FROM changes WHERE tx_id = c.tx_id),
                            (SELECT max(id) FROM changes WHERE tx_id = c.tx_id)
                     FROM changes c WHERE c.id <= ?1 ORDER BY c.id DESC LIMIT 1",
                    &[&id],
                    |row| Ok((row.get(0)?, row.get(1)?)),
                )
                .context(path, "finding where to cut")
        };
        let Some((first, last)) = first_of_tx_of(cut.0)? else {
            return Ok(None);
        };
        let mut end = match last > cut.0 {
            true => first - 1,
            false => cut.0,
        };
        if let Moment::Time(time) = moment {
            // Imported stores may keep times out of commit order: a transaction that committed
            // after the moment keeps everything after its first change.
            let later: Option<i64> = connection
                .query_row(
                    "SELECT min(c.id) FROM transactions t JOIN changes c ON c.tx_id = t.id
                     WHERE t.committed_at > ?1",
                    &[&time.timestamp_micros()],
                    |row| row.get(0),
                )
                .context(path, "finding where to cut")?;
            if let Some(later) = later {
                end = end.min(later - 1);
            }
        }
        let newest: Option<i64> = connection
            .query_row("SELECT max(id) FROM changes", &[], |row| row.get(0))
            .context(path, "finding where to cut")?;
        if let Some((newest_first, _)) = newest.map(first_of_tx_of).transpose()?.flatten() {
            end = end.min(newest_first - 1);
        }
        let found: Option<(i64, i64)> = connection
            .query_opt(
                "SELECT c.tx_id, t.committed_at FROM changes c JOIN transactions t ON t.id = c.tx_id
                 WHERE c.id <= ?1 ORDER BY c.id DESC LIMIT 1",
                &[&end],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .context(path, "finding where to cut")?;
        let Some((tx_id, committed_at)) = found else {
            return Ok(None);
        };
        // The baseline the history begins with, if it does: its rows stay where they are.
        let start: Option<(i64, bool)> = connection
            .query_opt(
                "SELECT c.tx_id, t.is_baseline FROM changes c JOIN transactions t ON t.id = c.tx_id
                 ORDER BY c.id LIMIT 1",
                &[],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .context(path, "finding where to cut")?;
        let base_tx = match start {
            Some((start_tx, true)) => start_tx,
            _ => tx_id,
        };
        let folded_to: i64 = connection
            .query_row(
                "SELECT coalesce(max(cut), 0) FROM prunes WHERE cut <= ?1",
                &[&end],
                |row| row.get(0),
            )
            .context(path, "finding where to cut")?;
        let folded_to = match base_tx == tx_id {
            true => 0,
            false => folded_to,
        };
        Ok(Some(PruneCut {
            change: ChangeId(end),
            tx_id,
            committed_at: micros_to_time(committed_at),
            base_tx,
            folded_to,
        }))
    }

    /// True when everything at or before the cut is already one baseline of snapshots: a prune
    /// would change nothing.
    pub fn is_folded(&self, cut: &PruneCut) -> Result<bool, StoreError> {
        let other: bool = self
            .connection()
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM changes
                    WHERE id > ?3 AND id <= ?1 AND (op <> 'S' OR tx_id <> ?2))",
                &[&cut.change.0, &cut.base_tx, &cut.folded_to],
                |row| row.get(0),
            )
            .context(self.path(), "reading the history")?;
        Ok(!other)
    }

    /// Starts changing stored history: one immediate transaction, with removed content
    /// overwritten in the file.
    pub fn maintain(&self, action: &'static str) -> Result<Maintenance<'_>, StoreError> {
        let connection = self.sqlite(action)?;
        connection
            .execute_batch("PRAGMA secure_delete = ON")
            .context(self.path(), "configuring")?;
        let transaction = Transaction::new_unchecked(connection, TransactionBehavior::Immediate)
            .context(self.path(), "starting to change the history")?;
        Ok(Maintenance {
            cache: self,
            transaction,
        })
    }

    /// Makes the file smaller after history left it, and empties the WAL into the file.
    /// `rewrite` copies every live row into fresh pages (`VACUUM`), so no byte of anything
    /// removed survives anywhere in the file, even where SQLite moved rows around before (an
    /// erasure needs that); otherwise free pages are handed back in place (incremental vacuum),
    /// unless the cache predates it, which is rewritten once. Returns how it shrank, and whether
    /// the WAL could be emptied (a reader holding an old snapshot, such as an open app, keeps it).
    pub fn shrink(&self, rewrite: bool) -> Result<(Shrink, bool), StoreError> {
        let connection = self.sqlite("shrinking")?;
        let path = self.path();
        let mode: i64 = connection
            .query_row("PRAGMA auto_vacuum", [], |row| row.get(0))
            .context(path, "shrinking the file")?;
        let shrink = match (mode, rewrite) {
            (2, false) => {
                // One page per step: stepped until done.
                connection
                    .prepare("PRAGMA incremental_vacuum")
                    .and_then(|mut statement| {
                        let mut rows = statement.query([])?;
                        while rows.next()?.is_some() {}
                        Ok(())
                    })
                    .context(path, "shrinking the file")?;
                Shrink::Incremental
            }
            _ => {
                connection
                    .execute_batch("PRAGMA auto_vacuum = INCREMENTAL; VACUUM")
                    .context(path, "rewriting the file")?;
                Shrink::Rewritten
            }
        };
        let busy: i64 = connection
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |row| row.get(0))
            .context(path, "emptying the WAL")?;
        Ok((shrink, busy == 0))
    }

    /// True when the file holds free pages, or was made before incremental vacuum: a shrink
    /// would make it smaller.
    pub fn needs_shrink(&self) -> Result<bool, StoreError> {
        let connection = self.sqlite("shrinking")?;
        let (mode, free): (i64, i64) = connection
            .query_row(
                "SELECT (SELECT auto_vacuum FROM pragma_auto_vacuum),
                        (SELECT freelist_count FROM pragma_freelist_count)",
                [],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .context(self.path(), "reading the file's free space")?;
        Ok(mode != 2 || free > 0)
    }

    /// True when the file was made before incremental vacuum: shrinking it means rewriting it.
    pub fn needs_rewrite(&self) -> Result<bool, StoreError> {
        let connection = self.sqlite("shrinking")?;
        let mode: i64 = connection
            .query_row("PRAGMA auto_vacuum", [], |row| row.get(0))
            .context(self.path(), "reading the file's settings")?;
        Ok(mode != 2)
    }

    /// Every prune of this cache, oldest first.
    pub fn prunes(&self) -> Result<Vec<PruneEntry>, StoreError> {
        if self.is_shared() {
            return Ok(Vec::new());
        }
        self.connection()
            .query_map(
                "SELECT before, removed, kept, pruned_at FROM prunes ORDER BY id",
                &[],
                |row| {
                    Ok(PruneEntry {
                        before: micros_to_time(row.get(0)?),
                        removed: row.get(1)?,
                        kept: row.get(2)?,
                        pruned_at: row.get(3)?,
                    })
                },
            )
            .context(self.path(), "reading the prunes")
    }

    /// The erasure that removed this change's values, if one did.
    pub fn erasure_of(&self, change: ChangeId) -> Result<Option<ErasureEntry>, StoreError> {
        if self.is_shared() {
            return Ok(None);
        }
        self.connection()
            .query_opt(
                "SELECT e.table_name, e.key, e.related, e.changes, e.erased_at
                 FROM erased_changes x JOIN erasures e ON e.id = x.erasure_id
                 WHERE x.change_id = ?1",
                &[&change.0],
                ErasureEntry::read,
            )
            .context(self.path(), "reading the erasures")
    }

    /// An erasure that removed values of this record's changes, if one did.
    pub fn record_erasure(
        &self,
        record: &super::RecordRef,
    ) -> Result<Option<ErasureEntry>, StoreError> {
        if self.is_shared() || record.table_ids.is_empty() {
            return Ok(None);
        }
        let tables: Vec<String> = record.table_ids.iter().map(ToString::to_string).collect();
        self.connection()
            .query_opt(
                &format!(
                    "SELECT e.table_name, e.key, e.related, e.changes, e.erased_at
                     FROM changes c JOIN erased_changes x ON x.change_id = c.id
                     JOIN erasures e ON e.id = x.erasure_id
                     WHERE c.table_id IN ({}) AND c.key = ?1 LIMIT 1",
                    tables.join(",")
                ),
                &[&record.key],
                ErasureEntry::read,
            )
            .context(self.path(), "reading the erasures")
    }
}

impl Maintenance<'_> {
    fn path(&self) -> &Path {
        self.cache.path()
    }

    /// Begins a prune: notes the transactions at or before the cut (those left without a change
    /// go at the end) and returns the tables with changes to fold (changes after the previous
    /// prune's cut, up to this one).
    pub fn start_prune(&self, cut: &PruneCut) -> Result<Vec<PrunedTable>, StoreError> {
        self.transaction
            .execute_batch(&format!(
                "CREATE TEMP TABLE IF NOT EXISTS prune_txs (id INTEGER PRIMARY KEY);
                 DELETE FROM temp.prune_txs;
                 INSERT OR IGNORE INTO temp.prune_txs (id)
                     SELECT tx_id FROM changes WHERE id > {since} AND id <= {cut};
                 CREATE TEMP TABLE IF NOT EXISTS prune_contexts (id INTEGER PRIMARY KEY);
                 DELETE FROM temp.prune_contexts;
                 INSERT OR IGNORE INTO temp.prune_contexts (id)
                     SELECT context_id FROM changes
                     WHERE id > {since} AND id <= {cut} AND context_id IS NOT NULL
                     UNION
                     SELECT context_id FROM transactions
                     WHERE id IN (SELECT id FROM temp.prune_txs) AND context_id IS NOT NULL;",
                since = cut.folded_to,
                cut = cut.change.0
            ))
            .context(self.path(), "reading the transactions")?;
        let tables: Vec<(i64, Option<i64>)> = self
            .transaction
            .prepare(
                "SELECT t.id, t.dropped_change FROM tables t
                 WHERE EXISTS (SELECT 1 FROM changes c
                     WHERE c.table_id = t.id AND c.id > ?2 AND c.id <= ?1)
                 ORDER BY t.id",
            )
            .and_then(|mut statement| {
                statement
                    .query_map([cut.change.0, cut.folded_to], |row| {
                        Ok((row.get(0)?, row.get(1)?))
                    })?
                    .collect()
            })
            .context(self.path(), "reading the tables")?;
        tables
            .into_iter()
            .map(|(id, dropped)| {
                Ok(PrunedTable {
                    id,
                    dropped: dropped.is_some_and(|dropped| dropped <= cut.change.0),
                    one_key: self.cache.has_one_key(id)?,
                })
            })
            .collect()
    }

    /// Calls `visit` with a table's changes up to the cut, in commit order, a page at a time.
    pub fn history_before(
        &self,
        table_id: i64,
        cut: &PruneCut,
        mut visit: impl FnMut(&LoggedChange),
    ) -> Result<(), StoreError> {
        let mut after = 0i64;
        loop {
            let page = self.cache.changes_where(
                "c.table_id = ?1 AND c.id > ?2 AND c.id <= ?3",
                &[&table_id, &after, &cut.change.0],
                "ORDER BY c.id LIMIT 1000",
            )?;
            let Some(last) = page.last() else {
                return Ok(());
            };
            after = last.id.0;
            page.iter().for_each(&mut visit);
        }
    }

    /// Removes a table's history up to the cut; returns how many changes went.
    pub fn remove_history(&self, table_id: i64, cut: &PruneCut) -> Result<i64, StoreError> {
        let removed = self
            .transaction
            .execute(
                "DELETE FROM changes WHERE table_id = ?1 AND id <= ?2",
                params![table_id, cut.change.0],
            )
            .context(self.path(), "removing old changes")?;
        Ok(removed as i64)
    }

    /// Folds the history of a table with one key up to the cut, in place: the newest change of
    /// each record that exists then becomes a snapshot of the baseline, every other change goes.
    /// Only keys with changes since the previous cut are visited. Returns (snapshots of the
    /// visited keys, changes removed).
    pub fn fold_keyed(&self, table_id: i64, cut: &PruneCut) -> Result<(i64, i64), StoreError> {
        let path = self.path();
        let last_truncate: i64 = self
            .transaction
            .query_row(
                "SELECT coalesce(max(id), 0) FROM changes
                 WHERE table_id = ?1 AND key = '[]' AND op IN ('T', 'G') AND id <= ?2",
                params![table_id, cut.change.0],
                |row| row.get(0),
            )
            .context(path, "reading a table")?;
        self.transaction
            .execute_batch(
                "CREATE TEMP TABLE IF NOT EXISTS prune_keep (id INTEGER PRIMARY KEY);
                 DELETE FROM temp.prune_keep;
                 CREATE TEMP TABLE IF NOT EXISTS prune_keys (key TEXT PRIMARY KEY);
                 DELETE FROM temp.prune_keys;",
            )
            .context(path, "folding a table")?;
        // Everything up to the previous cut is already the baseline: only the keys that changed
        // since (or moved away since) need folding, unless a truncate since removed every row.
        let since = match last_truncate <= cut.folded_to {
            true => cut.folded_to,
            false => 0,
        };
        self.transaction
            .execute(
                "INSERT OR IGNORE INTO temp.prune_keys (key)
                 SELECT key FROM changes WHERE table_id = ?1 AND id > ?2 AND id <= ?3 AND key <> '[]'
                 UNION
                 SELECT old_key FROM changes
                 WHERE table_id = ?1 AND id > ?2 AND id <= ?3 AND old_key IS NOT NULL",
                params![table_id, since, cut.change.0],
            )
            .context(path, "folding a table")?;
        // The newest change of each key, unless a delete, a truncate or a later update of the key
        // (before the cut) removed the record: the same rule as `Cache::table_at`.
        self.transaction
            .execute(
                "INSERT INTO temp.prune_keep (id)
                 SELECT n.id FROM (
                     SELECT k.key AS key, (SELECT max(id) FROM changes
                         WHERE table_id = ?1 AND key = k.key AND id <= ?2) AS id
                     FROM temp.prune_keys k) AS n
                 JOIN changes c ON c.id = n.id
                 WHERE c.op IN ('I', 'U', 'S') AND n.id > ?3
                   AND NOT EXISTS (
                       SELECT 1 FROM changes m WHERE m.table_id = ?1 AND m.old_key = n.key
                           AND m.old_key IS NOT NULL AND m.id > n.id AND m.id <= ?2)",
                params![table_id, cut.change.0, last_truncate],
            )
            .context(path, "folding a table")?;
        self.transaction
            .execute(
                "UPDATE changes SET op = 'S', tx_id = ?1, before = NULL, old_key = NULL,
                     context_id = NULL, unavailable = nullif(json_remove(unavailable, '$.b'), '{}')
                 WHERE id IN (SELECT id FROM temp.prune_keep) AND (op <> 'S' OR tx_id <> ?1)",
                params![cut.base_tx],
            )
            .context(path, "folding a table")?;
        let kept: i64 = self
            .transaction
            .query_row("SELECT count(*) FROM temp.prune_keep", [], |row| row.get(0))
            .context(path, "folding a table")?;
        // The folded keys' other changes, and the table's entries without a record (schema
        // changes, truncates) since.
        let removed = self
            .transaction
            .execute(
                "DELETE FROM changes WHERE table_id = ?1 AND id <= ?2
                     AND (key IN (SELECT key FROM temp.prune_keys) OR (key = '[]' AND id > ?3))
                     AND id NOT IN (SELECT id FROM temp.prune_keep)",
                params![table_id, cut.change.0, since],
            )
            .context(path, "folding a table")?;
        Ok((kept, removed as i64))
    }

    /// Replaces a table's history up to the cut with snapshots of `rows` (its rows at the cut,
    /// folded by the caller). The snapshots take the ids of the newest removed changes, so the
    /// baseline stays before everything after the cut. Returns the changes removed.
    pub fn replace_with_rows(
        &self,
        table_id: i64,
        cut: &PruneCut,
        rows: &[(Arc<RelationSchema>, Row)],
    ) -> Result<i64, StoreError> {
        let path = self.path();
        let ids: Vec<(i64, i64)> = self
            .transaction
            .prepare("SELECT id, lsn FROM changes WHERE table_id = ?1 AND id <= ?2 ORDER BY id")
            .and_then(|mut statement| {
                statement
                    .query_map(params![table_id, cut.change.0], |row| {
                        Ok((row.get(0)?, row.get(1)?))
                    })?
                    .collect()
            })
            .context(path, "reading a table")?;
        if rows.len() > ids.len() {
            return Err(self.cache.damaged(format!(
                "table {table_id} folds into {} rows from {} changes",
                rows.len(),
                ids.len()
            )));
        }
        let versions: Vec<(i64, String)> = self
            .transaction
            .prepare("SELECT id, definition FROM relations WHERE table_id = ?1")
            .and_then(|mut statement| {
                statement
                    .query_map([table_id], |row| Ok((row.get(0)?, row.get(1)?)))?
                    .collect()
            })
            .context(path, "reading schema versions")?;
        let mut relation_ids = Vec::new();
        for (id, _) in &versions {
            relation_ids.push((*id, self.cache.schema_version(*id)?));
        }
        // The rows are new snapshots: no erasure mark of a removed change may stick to an id.
        self.transaction
            .execute(
                "DELETE FROM erased_changes WHERE change_id IN (
                     SELECT id FROM changes WHERE table_id = ?1 AND id <= ?2)",
                params![table_id, cut.change.0],
            )
            .context(path, "folding a table")?;
        self.transaction
            .execute(
                "DELETE FROM changes WHERE table_id = ?1 AND id <= ?2",
                params![table_id, cut.change.0],
            )
            .context(path, "folding a table")?;
        let reused = &ids[ids.len() - rows.len()..];
        let mut insert = self
            .transaction
            .prepare(
                "INSERT INTO changes (id, tx_id, lsn, table_id, relation_id, op, key, old_key,
                                      before, after, unavailable, context_id)
                 VALUES (?1, ?2, ?3, ?4, ?5, 'S', ?6, NULL, NULL, ?7, ?8, NULL)",
            )
            .context(path, "folding a table")?;
        for ((id, lsn), (schema, row)) in reused.iter().zip(rows) {
            let relation_id = relation_ids
                .iter()
                .find(|(_, version)| Arc::ptr_eq(version, schema) || **version == **schema)
                .map(|(id, _)| *id)
                .ok_or_else(|| {
                    self.cache
                        .damaged(format!("a row of table {table_id} has no schema version"))
                })?;
            let images = codec::encode(&Change {
                op: Op::Snapshot,
                before: None,
                after: Some(row.clone()),
            });
            insert
                .execute(params![
                    id,
                    cut.base_tx,
                    lsn,
                    table_id,
                    relation_id,
                    codec::encode_key(&key_of(schema, row)),
                    images.after,
                    images.unavailable,
                ])
                .context(path, "folding a table")?;
        }
        Ok((ids.len() - rows.len()) as i64)
    }

    /// Ends a prune: the baseline takes the cut transaction's place (its commit time and
    /// position), transactions and contexts no change uses go (only those the folded changes
    /// used are looked at: snapshots have none, so only changes after the cut are read; the
    /// newest context stays, so no context id is given out twice), tables dropped before the cut go, counts and the
    /// per-minute histogram of the minutes the prune touched are recounted, the reference index
    /// is cleared (related history rebuilds it), and the prune is logged. Commits.
    pub fn finish_prune(
        self,
        cut: &PruneCut,
        touched: &[i64],
        dropped: &[i64],
        removed: i64,
    ) -> Result<i64, StoreError> {
        let path = self.cache.path().to_owned();
        let tx = &self.transaction;
        // The minutes whose counts change: those of the folded transactions, of the baseline
        // before and after.
        let (first_time, last_time): (Option<i64>, Option<i64>) = tx
            .query_row(
                "SELECT min(committed_at), max(committed_at) FROM transactions
                 WHERE id IN (SELECT id FROM temp.prune_txs) OR id = ?1",
                [cut.base_tx],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .context(&path, "finishing the prune")?;
        let cut_time = cut.committed_at.timestamp_micros();
        let first_minute = first_time
            .unwrap_or(cut_time)
            .min(cut_time)
            .div_euclid(60_000_000);
        let last_minute = last_time
            .unwrap_or(cut_time)
            .max(cut_time)
            .div_euclid(60_000_000);
        let kept: i64 = tx
            .query_row(
                "SELECT count(*) FROM changes WHERE tx_id = ?1",
                [cut.base_tx],
                |row| row.get(0),
            )
            .context(&path, "finishing the prune")?;
        tx.execute_batch(&format!(
            "UPDATE transactions SET xid = NULL, is_baseline = 1, context_id = NULL, origin = NULL,
                 change_count = {kept},
                 commit_lsn = (SELECT commit_lsn FROM transactions WHERE id = {cut_tx}),
                 end_lsn = (SELECT end_lsn FROM transactions WHERE id = {cut_tx}),
                 committed_at = {cut_time}
             WHERE id = {base};
             DELETE FROM transactions WHERE id <> {base} AND id IN (
                 SELECT p.id FROM temp.prune_txs p
                 WHERE NOT EXISTS (SELECT 1 FROM changes c WHERE c.tx_id = p.id));
             DELETE FROM contexts
             WHERE id IN (SELECT id FROM temp.prune_contexts)
               AND id NOT IN (SELECT context_id FROM changes
                              WHERE id > {cut} AND context_id IN (SELECT id FROM temp.prune_contexts))
               AND id NOT IN (SELECT context_id FROM transactions
                              WHERE context_id IN (SELECT id FROM temp.prune_contexts))
               AND id < (SELECT max(id) FROM contexts);
             DELETE FROM change_minutes WHERE minute BETWEEN {first_minute} AND {last_minute};
             INSERT INTO change_minutes (table_id, op, minute, count)
                 SELECT c.table_id, c.op, t.committed_at / 60000000, count(*)
                 FROM transactions t JOIN changes c ON c.tx_id = t.id
                 WHERE t.committed_at >= {first_minute} * 60000000
                   AND t.committed_at < ({last_minute} + 1) * 60000000
                 GROUP BY 1, 2, 3;
             DELETE FROM refs;
             DELETE FROM ref_links;
             DELETE FROM erased_changes
             WHERE NOT EXISTS (SELECT 1 FROM changes c WHERE c.id = erased_changes.change_id);",
            base = cut.base_tx,
            cut_tx = cut.tx_id,
            cut = cut.change.0,
        ))
        .context(&path, "finishing the prune")?;
        // The newest table and schema version stay, so no id is given out twice (an open app or
        // a publisher would take a new one for the old).
        for table in dropped {
            tx.execute_batch(&format!(
                "DELETE FROM change_minutes WHERE table_id = {table};
                 DELETE FROM relations WHERE table_id = {table}
                     AND id < (SELECT max(id) FROM relations);
                 DELETE FROM tables WHERE id = {table}
                     AND NOT EXISTS (SELECT 1 FROM changes WHERE table_id = {table})
                     AND NOT EXISTS (SELECT 1 FROM relations WHERE table_id = {table})
                     AND id < (SELECT max(id) FROM tables);"
            ))
            .context(&path, "removing dropped tables")?;
        }
        for table in touched {
            tx.execute(
                "UPDATE tables SET change_count = (SELECT count(*) FROM changes c WHERE c.table_id = ?1)
                 WHERE id = ?1",
                [table],
            )
            .context(&path, "recounting changes")?;
        }
        tx.execute(
            "INSERT INTO prunes (before, cut, removed, kept, pruned_at) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![cut_time, cut.change.0, removed, kept, Utc::now().to_rfc3339()],
        )
        .context(&path, "logging the prune")?;
        self.transaction
            .commit()
            .context(&path, "committing the prune")?;
        Ok(kept)
    }

    /// Replaces the stored images of changes (whose values were erased), takes SQL text out of
    /// their contexts, and logs the erasure. Commits; returns how many contexts lost SQL text.
    pub fn finish_erasure(
        self,
        table: &str,
        key: &str,
        related: bool,
        erased: &[ErasedChange],
    ) -> Result<usize, StoreError> {
        let path = self.cache.path().to_owned();
        let tx = &self.transaction;
        tx.execute(
            "INSERT INTO erasures (table_name, key, related, changes, erased_at)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                table,
                key,
                related,
                erased.len() as i64,
                Utc::now().to_rfc3339()
            ],
        )
        .context(&path, "logging the erasure")?;
        let erasure = tx.last_insert_rowid();
        tx.execute_batch(
            "CREATE TEMP TABLE IF NOT EXISTS erased_now (id INTEGER PRIMARY KEY);
             DELETE FROM temp.erased_now;",
        )
        .context(&path, "erasing values")?;
        {
            // Only the change as it was read: a prune between reading and writing (capture
            // --retain) may have folded it.
            let mut update = tx
                .prepare(
                    "UPDATE changes SET before = ?2, after = ?3, unavailable = ?4
                     WHERE id = ?1 AND op = ?5 AND tx_id = ?6",
                )
                .context(&path, "erasing values")?;
            let mut mark = tx
                .prepare(
                    "INSERT OR REPLACE INTO erased_changes (change_id, erasure_id) VALUES (?1, ?2)",
                )
                .context(&path, "erasing values")?;
            let mut note = tx
                .prepare("INSERT OR IGNORE INTO temp.erased_now (id) VALUES (?1)")
                .context(&path, "erasing values")?;
            for erasure_of in erased {
                let (id, images) = (erasure_of.id, &erasure_of.images);
                let updated = update
                    .execute(params![
                        id.0,
                        images.before,
                        images.after,
                        images.unavailable,
                        super::op_code(erasure_of.op),
                        erasure_of.tx_id
                    ])
                    .context(&path, "erasing values")?;
                if updated != 1 {
                    return Err(StoreError::ChangedMeanwhile {
                        path: path.clone(),
                        change: id,
                    });
                }
                mark.execute(params![id.0, erasure])
                    .context(&path, "erasing values")?;
                note.execute([id.0]).context(&path, "erasing values")?;
            }
        }
        // The reference index repeats the values of link columns; one pass drops those rows.
        tx.execute(
            "DELETE FROM refs WHERE change_id IN (SELECT id FROM temp.erased_now)",
            [],
        )
        .context(&path, "erasing values")?;
        let stripped = strip_sql_text(tx, &path)?;
        self.transaction
            .commit()
            .context(&path, "committing the erasure")?;
        Ok(stripped)
    }
}

/// Takes the SQL text (`client_query`, `query`, `statement`) out of the contexts of the erased
/// changes and of their transactions: it may quote the erased values. Every change and
/// transaction that shared such a context gets the stripped one, and the old bodies go. Other
/// fields (who, which application) stay. Returns how many contexts were stripped.
fn strip_sql_text(tx: &Transaction<'_>, path: &Path) -> Result<usize, StoreError> {
    let bodies: Vec<(i64, String)> = tx
        .prepare(
            "SELECT id, body FROM contexts WHERE id IN (
                 SELECT context_id FROM changes WHERE id IN (SELECT id FROM temp.erased_now)
                 UNION
                 SELECT t.context_id FROM transactions t JOIN changes c ON c.tx_id = t.id
                 WHERE c.id IN (SELECT id FROM temp.erased_now))",
        )
        .and_then(|mut statement| {
            statement
                .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
                .collect()
        })
        .context(path, "erasing values")?;
    tx.execute_batch(
        "CREATE TEMP TABLE IF NOT EXISTS context_map (old INTEGER PRIMARY KEY, new INTEGER NOT NULL);
         DELETE FROM temp.context_map;",
    )
    .context(path, "erasing values")?;
    let mut stripped = 0;
    for (id, body) in bodies {
        let Ok(serde_json::Value::Object(mut fields)) = serde_json::from_str(&body) else {
            continue;
        };
        let held = fields.len();
        for key in super::writer::SQL_TEXT_KEYS {
            fields.remove(*key);
        }
        if fields.len() == held {
            continue;
        }
        let new_body = serde_json::Value::Object(fields).to_string();
        tx.execute(
            "INSERT OR IGNORE INTO contexts (body) VALUES (?1)",
            [&new_body],
        )
        .context(path, "erasing values")?;
        tx.execute(
            "INSERT INTO temp.context_map (old, new) SELECT ?1, id FROM contexts WHERE body = ?2",
            params![id, new_body],
        )
        .context(path, "erasing values")?;
        stripped += 1;
    }
    if stripped > 0 {
        tx.execute_batch(
            "UPDATE changes SET context_id = (SELECT new FROM temp.context_map WHERE old = changes.context_id)
                 WHERE context_id IN (SELECT old FROM temp.context_map);
             UPDATE transactions SET context_id = (SELECT new FROM temp.context_map WHERE old = transactions.context_id)
                 WHERE context_id IN (SELECT old FROM temp.context_map);
             DELETE FROM contexts WHERE id IN (SELECT old FROM temp.context_map);",
        )
        .context(path, "erasing values")?;
    }
    Ok(stripped)
}
