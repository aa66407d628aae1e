//! Retention and erasure of a cache file's history: `rowtrail prune` (and `capture --retain`)
//! folds the history before a moment into a new baseline; `rowtrail forget` removes one record's
//! values (and optionally those of its story) from every change. The store does the writing
//! (`store::maintenance`); this module decides what to write, folding tables without a single key
//! with `history::state::TableFold`, as reading a table at a moment does.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::history::state::TableFold;
use crate::model::{Change, LoggedChange, Moment, Op, RelationSchema, Row, TableName, Value};
use crate::related::{RelatedError, StoryOptions, related_history};
use crate::store::codec;
use crate::store::maintenance::{ErasedChange, FileSize, PruneCut, Shrink};
use crate::store::{Cache, KeyFilter, RecordRef, StoreError};

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
    /// Rows the baseline holds.
    pub kept: i64,
    pub size_before: FileSize,
    pub size_after: FileSize,
    pub shrink: Option<Shrink>,
    /// Why the file could not be made smaller (the prune itself is done and kept).
    pub shrink_failed: Option<String>,
    /// False when a reader held the WAL (see [`Cache::shrink`]).
    pub wal_emptied: bool,
}

impl Pruned {
    /// One line for people.
    pub fn summary(&self) -> String {
        let Some(cut) = &self.cut else {
            return "nothing to prune: no transaction before that moment but the newest (the newest is always kept)"
                .to_owned();
        };
        let when = cut.committed_at.format("%Y-%m-%d %H:%M:%S UTC");
        let mut line = match self.changed {
            true => format!(
                "pruned the history before {when}: {} changes removed, {} rows kept as the baseline it now begins with",
                self.removed, self.kept,
            ),
            false => format!("nothing to prune: the history before {when} is already one baseline"),
        };
        if self.shrink.is_some() {
            line.push_str(&format!(
                "; {} → {}",
                megabytes(self.size_before.total()),
                megabytes(self.size_after.total()),
            ));
        }
        if self.shrink == Some(Shrink::Rewritten) {
            line.push_str(" (the file was rewritten once; later prunes shrink it in place)");
        }
        if let Some(reason) = &self.shrink_failed {
            line.push_str(&format!(
                "; the file could not be made smaller ({reason}): run rowtrail prune again to shrink it"
            ));
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

/// Whether a prune may rewrite a cache made before incremental vacuum to shrink it (a copy of
/// the whole file, minutes for a large one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rewrite {
    Allowed,
    /// Capture's hourly prune: the writer must not stop that long.
    Never,
}

/// Folds the history before `moment` into a new baseline: each record's state at the end of the
/// newest transaction the moment includes whole is kept as a snapshot, every change before that
/// goes, and the file shrinks. States, diffs and restore scripts for every later moment are the
/// same as before. The newest transaction is always kept.
pub fn prune(cache: &Cache, moment: Moment, rewrite: Rewrite) -> Result<Pruned, RetentionError> {
    let size_before = FileSize::of(cache.path());
    let mut pruned = Pruned {
        cut: None,
        changed: false,
        removed: 0,
        kept: 0,
        size_before,
        size_after: size_before,
        shrink: None,
        shrink_failed: None,
        wal_emptied: true,
    };
    let Some(cut) = cache.prune_cut(moment)? else {
        return Ok(pruned);
    };
    pruned.cut = Some(cut);
    if !cache.is_folded(&cut)? {
        let maintenance = cache.maintain("pruning")?;
        let mut touched = Vec::new();
        let mut dropped = Vec::new();
        for table in maintenance.start_prune(&cut)? {
            touched.push(table.id);
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
        pruned.kept = maintenance.finish_prune(&cut, &touched, &dropped, pruned.removed)?;
        pruned.changed = true;
    }
    // The prune is committed: a file that cannot shrink now is said, not an error.
    if (pruned.changed || cache.needs_shrink()?)
        && (rewrite == Rewrite::Allowed || !cache.needs_rewrite()?)
    {
        match cache.shrink(false) {
            Ok((shrink, wal_emptied)) => {
                pruned.shrink = Some(shrink);
                pruned.wal_emptied = wal_emptied;
            }
            Err(error) => pruned.shrink_failed = Some(error.to_string()),
        }
    }
    pruned.size_after = FileSize::of(cache.path());
    Ok(pruned)
}

/// `prune` for `capture --retain AGE`: the history older than `age` before `now`.
pub fn prune_older_than(
    cache: &Cache,
    age: chrono::Duration,
    now: DateTime<Utc>,
    rewrite: Rewrite,
) -> Result<Pruned, RetentionError> {
    let before = now
        .checked_sub_signed(age)
        .unwrap_or(DateTime::<Utc>::MIN_UTC);
    prune(cache, Moment::Time(before), rewrite)
}

/// What an erasure did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forgotten {
    pub table: String,
    pub key: String,
    pub changes: usize,
    /// Records whose values went, by table (the record, and with `--related` the rows of its
    /// story).
    pub records: BTreeMap<String, usize>,
    /// Changes of tables without a key that the story reached and that were left as they are.
    pub left_keyless: usize,
    /// Contexts whose SQL text was taken out.
    pub contexts_stripped: usize,
    pub wal_emptied: bool,
    /// Why the file could not be rewritten afterwards (the erasure itself is done and kept).
    pub rewrite_failed: Option<String>,
}

impl Forgotten {
    pub fn summary(&self) -> String {
        let total: usize = self.records.values().sum();
        let tables: Vec<String> = self
            .records
            .iter()
            .map(|(table, count)| format!("{table} {count}"))
            .collect();
        let mut line = format!(
            "erased the values of {} change{} of {} record{} ({}) of {} {}; the changes stay, with when, their transaction and context, and the erasure is logged",
            self.changes,
            plural(self.changes),
            total,
            plural(total),
            tables.join(", "),
            self.table,
            self.key,
        );
        if self.contexts_stripped > 0 {
            line.push_str(&format!(
                "; SQL text taken out of {} context{}",
                self.contexts_stripped,
                plural(self.contexts_stripped)
            ));
        }
        if self.left_keyless > 0 {
            line.push_str(&format!(
                "; {} change{} of tables without a key left as they are (their rows cannot be told apart once erased)",
                self.left_keyless,
                plural(self.left_keyless)
            ));
        }
        if let Some(reason) = &self.rewrite_failed {
            line.push_str(&format!(
                "; but the file could not be rewritten ({reason}), so old copies of the values may remain in its free space: run rowtrail forget again once that is fixed"
            ));
        } else if !self.wal_emptied {
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

/// How far `forget --related` reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ForgetScope {
    /// Also the changes of the record's story (`rowtrail related`), to this depth of foreign
    /// keys; `None` for the record alone.
    pub related_depth: Option<usize>,
}

/// Removes the values of one record's changes (and with a related depth, of every change in its
/// story, as `rowtrail related` tells it) from the cache: what stays is that each change
/// happened, when, in which transaction and by whom, the record's key, and an entry in the
/// erasure log. The record is followed across updates of its key and across tables of its name
/// (dropped and created again). SQL text in the contexts of those changes goes too. The file is
/// then rewritten and the WAL emptied, so no copy of the values stays in either.
pub fn forget(
    cache: &Cache,
    table: &TableName,
    key: &KeyFilter,
    scope: ForgetScope,
) -> Result<Forgotten, RetentionError> {
    let (table_ids, _) = cache.find_table(table)?;
    let key_text = cache.resolve_key(table, key)?;
    let mut roots = Vec::new();
    let mut changes: Vec<LoggedChange> = Vec::new();
    for table_id in table_ids {
        let named = RecordRef {
            table: table.clone(),
            table_ids: vec![table_id],
            key: key_text.clone(),
        };
        // The record under that key, and the one that held it before and moved on (a key may
        // have been given to another record since): both are the person's.
        let moved = cache.record_now(&named)?;
        for record in [named, moved] {
            let history = cache.record_history(&record)?;
            if !history.is_empty() && !roots.contains(&record) {
                changes.extend(history);
                roots.push(record);
            }
        }
    }
    if changes.is_empty() {
        return Err(RetentionError::NoRecord {
            table: table.to_string(),
            key: key_text,
        });
    }
    if let Some(depth) = scope.related_depth {
        let options = StoryOptions {
            depth,
            ..StoryOptions::default()
        };
        for root in &roots {
            let story = related_history(cache, root, &options)?;
            changes.extend(story.into_iter().map(|related| related.change));
        }
    }
    changes.sort_by_key(|change| change.id);
    changes.dedup_by_key(|change| change.id);
    let mut records: BTreeSet<(String, i64, String)> = BTreeSet::new();
    let mut erased: Vec<ErasedChange> = Vec::new();
    let mut left_keyless = 0;
    for change in &changes {
        if !matches!(
            change.change.op,
            Op::Insert | Op::Update | Op::Delete | Op::Snapshot
        ) {
            continue;
        }
        if change.schema.key.is_empty() {
            left_keyless += 1;
            continue;
        }
        let key = change
            .change
            .identifying_row()
            .map(|row| codec::encode_key(&crate::model::key_of(&change.schema, row)))
            .unwrap_or_default();
        records.insert((change.table.to_string(), change.table_id, key));
        erased.push(ErasedChange {
            id: change.id,
            op: change.change.op,
            tx_id: change.tx.id,
            images: codec::encode(&erased_change(change)),
        });
    }
    let mut by_table: BTreeMap<String, usize> = BTreeMap::new();
    for (table, _, _) in &records {
        *by_table.entry(table.clone()).or_default() += 1;
    }
    let maintenance = cache.maintain("erasing")?;
    let contexts_stripped = maintenance.finish_erasure(
        &table.to_string(),
        &key_text,
        scope.related_depth.is_some(),
        &erased,
    )?;
    // The erasure is committed: a rewrite that fails now is said, not an error.
    let (wal_emptied, rewrite_failed) = match cache.shrink(true) {
        Ok((_, wal_emptied)) => (wal_emptied, None),
        Err(error) => (false, Some(error.to_string())),
    };
    Ok(Forgotten {
        table: table.to_string(),
        key: key_text,
        changes: erased.len(),
        records: by_table,
        left_keyless,
        contexts_stripped,
        wal_emptied,
        rewrite_failed,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // In tests a failed unwrap is a failed test.
mod tests {
    use super::*;
    use crate::model::{Column, ReplicaIdentity};

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
        let change = LoggedChange::for_tests(
            3,
            &schema,
            Change {
                op: Op::Update,
                before: Some(vec![text("7"), text("a@x"), text("Ann")]),
                after: Some(vec![text("8"), text("b@x"), Value::Null]),
            },
        );
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
