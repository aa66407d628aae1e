//! Retention and erasure of a cache file's history: `rowtrail prune` (and `capture --retain`)
//! folds the history before a moment into a new baseline; `rowtrail forget` removes one record's
//! values (and optionally those of its story) from every change. The store does the writing
//! (`store::maintenance`); this module decides what to write, folding tables without a single key
//! with `history::state::TableFold`, as reading a table at a moment does.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::history::state::TableFold;
use crate::model::{Change, ChangeId, LoggedChange, Moment, Op, RelationSchema, Row, Value};
use crate::related::{RelatedError, StoryOptions, related_history};
use crate::store::codec::{self, EncodedImages};
use crate::store::maintenance::{FileSize, PruneCut, Shrink};
use crate::store::{Cache, KeyFilter, StoreError};

/// Why a prune or an erasure failed. Nothing is changed when it fails: each runs in one
/// transaction.
#[derive(Debug, thiserror::Error)]
pub enum RetentionError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Related(#[from] RelatedError),
    #[error(
        "{table} has no record with key {key} in this cache: check the key, or list the table's changes with rowtrail log --table {table}"
    )]
    NoRecord { table: String, key: String },
}

/// What a prune did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pruned {
    /// Where it cut; `None` when no history lay before the moment.
    pub cut: Option<PruneCut>,
    /// False when the history before the cut was already one baseline.
    pub changed: bool,
    pub removed: i64,
    /// Rows the new baseline holds.
    pub kept: i64,
    pub size_before: FileSize,
    pub size_after: FileSize,
    pub shrink: Option<Shrink>,
    /// False when a reader held the WAL (see [`Cache::shrink`]).
    pub wal_emptied: bool,
}

impl Pruned {
    /// One line for people.
    pub fn summary(&self) -> String {
        let Some(cut) = &self.cut else {
            return "nothing to prune: the history in this cache begins after that moment"
                .to_owned();
        };
        let when = cut.committed_at.format("%Y-%m-%d %H:%M:%S UTC");
        if !self.changed {
            return format!("nothing to prune: the history before {when} is already one baseline");
        }
        let mut line = format!(
            "pruned the history before {when}: {} changes removed, {} rows kept as the baseline it now begins with; {} → {}",
            self.removed,
            self.kept,
            megabytes(self.size_before.total()),
            megabytes(self.size_after.total()),
        );
        if self.shrink == Some(Shrink::Rewritten) {
            line.push_str(" (the file was rewritten once; later prunes shrink it in place)");
        }
        if !self.wal_emptied {
            line.push_str(
                "; another program reading the cache kept its -wal file (it empties once they close)",
            );
        }
        line
    }
}

fn megabytes(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1_000_000.0)
}

/// Folds the history before `moment` into a new baseline: each record's state at the end of the
/// newest transaction the moment includes whole is kept as a snapshot, every change before that
/// goes, and the file shrinks. States, diffs and restore scripts for every later moment are the
/// same as before.
pub fn prune(cache: &Cache, moment: Moment) -> Result<Pruned, RetentionError> {
    let size_before = FileSize::of(cache.path());
    let mut pruned = Pruned {
        cut: None,
        changed: false,
        removed: 0,
        kept: 0,
        size_before,
        size_after: size_before,
        shrink: None,
        wal_emptied: true,
    };
    let Some(cut) = cache.prune_cut(moment)? else {
        return Ok(pruned);
    };
    pruned.cut = Some(cut);
    if cache.is_folded(&cut)? {
        return Ok(pruned);
    }
    let maintenance = cache.maintain("pruning")?;
    let mut dropped = Vec::new();
    for table in maintenance.start_prune(&cut)? {
        if table.dropped {
            pruned.removed += maintenance.remove_history(table.id, &cut)?;
            dropped.push(table.id);
        } else if table.one_key {
            pruned.removed += maintenance.fold_keyed(table.id, &cut)?.1;
        } else {
            let mut fold = TableFold::default();
            maintenance.history_before(table.id, &cut, |change| fold.apply(change))?;
            let rows: Vec<(Arc<RelationSchema>, Row)> = fold
                .into_rows()
                .into_iter()
                .map(|image| (image.schema, image.row))
                .collect();
            pruned.removed += maintenance.replace_with_rows(table.id, &cut, &rows)?;
        }
    }
    pruned.kept = maintenance.finish_prune(&cut, &dropped, pruned.removed)?;
    pruned.changed = true;
    let (shrink, wal_emptied) = cache.shrink(false)?;
    pruned.shrink = Some(shrink);
    pruned.wal_emptied = wal_emptied;
    pruned.size_after = FileSize::of(cache.path());
    Ok(pruned)
}

/// `prune` for `capture --retain AGE`: the history older than `age` before `now`.
pub fn prune_older_than(
    cache: &Cache,
    age: chrono::Duration,
    now: DateTime<Utc>,
) -> Result<Pruned, RetentionError> {
    prune(cache, Moment::Time(now - age))
}

/// What an erasure did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forgotten {
    pub table: String,
    pub key: String,
    pub changes: usize,
    /// Records whose values went (the record, and with `--related` the rows of its story).
    pub records: usize,
    pub wal_emptied: bool,
}

impl Forgotten {
    pub fn summary(&self) -> String {
        let mut line = format!(
            "erased the values of {} change{} of {} record{} ({} {}); the changes stay, with when, their transaction and context, and the erasure is logged",
            self.changes,
            plural(self.changes),
            self.records,
            plural(self.records),
            self.table,
            self.key,
        );
        if !self.wal_emptied {
            line.push_str(
                "; another program reading the cache holds its -wal file, which may keep old pages until it closes: close it and run forget again",
            );
        }
        line
    }
}

fn plural(count: usize) -> &'static str {
    if count == 1 { "" } else { "s" }
}

/// A change as an erasure leaves it: every value but the record's key columns unavailable.
pub fn erased_change(change: &LoggedChange) -> Change {
    let keep = |row: &Row| -> Row {
        row.iter()
            .enumerate()
            .map(|(index, value)| match change.schema.key.contains(&index) {
                true => value.clone(),
                false => Value::Unavailable,
            })
            .collect()
    };
    Change {
        op: change.change.op,
        before: change.change.before.as_ref().map(keep),
        after: change.change.after.as_ref().map(keep),
    }
}

/// Removes the values of one record's changes (and with `related`, of every change in its story,
/// as `rowtrail related` tells it) from the cache: what stays is that each change happened, when,
/// in which transaction and by whom, the record's key, and an entry in the erasure log. The file
/// is then rewritten and the WAL emptied, so no copy of the values stays in either.
pub fn forget(
    cache: &Cache,
    table: &crate::model::TableName,
    key: &KeyFilter,
    related: bool,
) -> Result<Forgotten, RetentionError> {
    let record = cache.record(table, key)?;
    let mut changes: Vec<LoggedChange> = cache.record_history(&record)?;
    if changes.is_empty() {
        return Err(RetentionError::NoRecord {
            table: record.table.to_string(),
            key: record.key,
        });
    }
    if related {
        let story = related_history(cache, &record, &StoryOptions::default())?;
        changes.extend(story.into_iter().map(|related| related.change));
    }
    changes.sort_by_key(|change| change.id);
    changes.dedup_by_key(|change| change.id);
    let mut records: Vec<(i64, String)> = Vec::new();
    let mut erased: Vec<(ChangeId, EncodedImages)> = Vec::new();
    for change in &changes {
        if !matches!(
            change.change.op,
            Op::Insert | Op::Update | Op::Delete | Op::Snapshot
        ) {
            continue;
        }
        let key = change
            .change
            .identifying_row()
            .map(|row| codec::encode_key(&crate::model::key_of(&change.schema, row)))
            .unwrap_or_default();
        if !records.contains(&(change.table_id, key.clone())) {
            records.push((change.table_id, key));
        }
        erased.push((change.id, codec::encode(&erased_change(change))));
    }
    let maintenance = cache.maintain("erasing")?;
    maintenance.finish_erasure(&record.table.to_string(), &record.key, related, &erased)?;
    let (_, wal_emptied) = cache.shrink(true)?;
    Ok(Forgotten {
        table: record.table.to_string(),
        key: record.key.clone(),
        changes: erased.len(),
        records: records.len(),
        wal_emptied,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // In tests a failed unwrap is a failed test.
mod tests {
    use super::*;
    use crate::model::{Column, ReplicaIdentity, TableName, TransactionInfo};

    #[test]
    fn an_erased_change_keeps_only_its_key() {
        let schema = Arc::new(RelationSchema {
            oid: 1,
            table: TableName::new("public", "t"),
            replica_identity: ReplicaIdentity::Default,
            columns: ["id", "email", "name"]
                .iter()
                .map(|name| Column::text_for_tests(name))
                .collect(),
            key: vec![0],
            foreign_keys: Vec::new(),
            key_read_later: false,
        });
        let text = |value: &str| Value::Text(value.to_owned());
        let change = LoggedChange {
            id: ChangeId(3),
            lsn: crate::model::Lsn(1),
            tx: TransactionInfo {
                id: 1,
                xid: None,
                commit_lsn: crate::model::Lsn(1),
                committed_at: chrono::DateTime::UNIX_EPOCH,
                origin: None,
                is_baseline: false,
                change_count: 1,
            },
            table_id: 1,
            table: schema.table.clone(),
            schema: schema.clone(),
            change: Change {
                op: Op::Update,
                before: Some(vec![text("7"), text("a@x"), text("Ann")]),
                after: Some(vec![text("8"), text("b@x"), Value::Null]),
            },
            context: None,
            schema_change: None,
            gap_from: None,
        };
        let erased = erased_change(&change);
        assert_eq!(
            erased.before,
            Some(vec![text("7"), Value::Unavailable, Value::Unavailable])
        );
        assert_eq!(
            erased.after,
            Some(vec![text("8"), Value::Unavailable, Value::Unavailable])
        );
        assert_eq!(erased.op, Op::Update);
    }
}
