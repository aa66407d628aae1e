//! Records through time: resolving moments, one record's history and state (following updates of
//! its key), a whole table at a moment page by page, and the change groups an undo works on.
//!
//! A record is identified by its key. When an update changes the key, the change is stored under
//! the new key with the old one in `old_key`; two small partial indexes follow such moves, so a
//! record's state at any moment takes a few index lookups, however long its or the table's history.

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::model::{
    ChangeId, Image, LoggedChange, Lsn, Moment, Op, RecordChanges, TableChange, TableName, Xid,
    after_image,
};

use super::codec::{self, EncodedImages};
use super::db::{Query, ToDb};
use super::op_from_code;
use super::reader::Cache;
use super::{SqliteContext, StoreError};

/// The key a truncate is stored under: it belongs to no record.
const NO_KEY: &str = "[]";

/// Reads the changes matching an SQL condition over `changes c` (whole, or as outlines).
type ReadChanges<'a> = dyn Fn(&str, &[&dyn ToDb]) -> Result<Vec<LoggedChange>, StoreError> + 'a;

/// A record of one table, by its key as stored (`["7"]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordRef {
    pub table: TableName,
    pub table_ids: Vec<i64>,
    pub key: String,
}

impl Cache {
    /// The newest change included at `moment`: the state at a moment is the state after every
    /// change up to and including this one.
    pub fn resolve_moment(&self, moment: Moment) -> Result<ChangeId, StoreError> {
        let first: Option<(i64, i64, i64)> = self
            .connection()
            .query_opt(
                "SELECT c.id, t.committed_at, t.commit_lsn FROM changes c
                 JOIN transactions t ON t.id = c.tx_id ORDER BY c.id LIMIT 1",
                &[],
                |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
            )
            .context(self.path(), "reading where history starts")?;
        let Some((first_id, first_time, first_lsn)) = first else {
            return Err(StoreError::EmptyHistory);
        };
        let before_start = || StoreError::BeforeHistory {
            moment: moment.to_string(),
            start: chrono::DateTime::from_timestamp_micros(first_time)
                .map(|time| time.format("%Y-%m-%d %H:%M:%S%.6f UTC").to_string())
                .unwrap_or_default(),
            first: ChangeId(first_id),
        };
        let last_change_of = |tx_id: i64| -> Result<i64, StoreError> {
            self.connection()
                .query_row(
                    "SELECT max(id) FROM changes WHERE tx_id = ?1",
                    &[&tx_id],
                    |row| row.get(0),
                )
                .context(self.path(), "resolving a moment")
        };
        let cut = match moment {
            Moment::Time(time) => {
                let micros = time.timestamp_micros();
                if micros < first_time {
                    return Err(before_start());
                }
                let tx: i64 = self
                    .connection()
                    .query_row(
                        "SELECT id FROM transactions WHERE committed_at <= ?1
                         ORDER BY committed_at DESC, id DESC LIMIT 1",
                        &[&micros],
                        |row| row.get(0),
                    )
                    .context(self.path(), "resolving a moment")?;
                last_change_of(tx)?
            }
            Moment::Lsn(Lsn(lsn)) => {
                if (lsn as i64) < first_lsn {
                    return Err(before_start());
                }
                let streamed: Option<i64> = self
                    .connection()
                    .query_opt(
                        "SELECT id FROM transactions WHERE is_baseline = 0 AND commit_lsn <= ?1
                         ORDER BY commit_lsn DESC LIMIT 1",
                        &[&(lsn as i64)],
                        |row| row.get(0),
                    )
                    .context(self.path(), "resolving a moment")?;
                match streamed {
                    Some(tx) => last_change_of(tx)?,
                    None => self
                        .connection()
                        .query_row(
                            "SELECT max(c.id) FROM changes c JOIN transactions t ON t.id = c.tx_id
                             WHERE t.is_baseline = 1 AND t.commit_lsn <= ?1",
                            &[&(lsn as i64)],
                            |row| row.get::<Option<i64>>(0),
                        )
                        .context(self.path(), "resolving a moment")?
                        .ok_or_else(before_start)?,
                }
            }
            Moment::AfterChange(id) | Moment::BeforeChange(id) => {
                if self.change(id)?.is_none() {
                    return Err(StoreError::UnknownChange { id });
                }
                match moment {
                    Moment::BeforeChange(_) if id.0 <= first_id => return Err(before_start()),
                    Moment::BeforeChange(_) => id.0 - 1,
                    _ => id.0,
                }
            }
        };
        Ok(ChangeId(cut))
    }

    /// The record of `table` whose key is `key` (a `KeyFilter` resolved against the table). When
    /// the name has had several tables (dropped and created again), the record is in the newest
    /// one that holds the key.
    pub fn record(
        &self,
        table: &TableName,
        key: &super::KeyFilter,
    ) -> Result<RecordRef, StoreError> {
        let (table_ids, _) = self.find_table(table)?;
        let key = self.resolve_key(table, key)?;
        let holder: Option<i64> = self
            .connection()
            .query_opt(
                &format!(
                    "SELECT c.table_id FROM changes c WHERE {} AND c.key = ?1
                     ORDER BY c.id DESC LIMIT 1",
                    Self::table_condition(&table_ids)
                ),
                &[&key],
                |row| row.get(0),
            )
            .context(self.path(), "finding a record")?;
        let table_id = holder.or(table_ids.last().copied());
        Ok(RecordRef {
            table: table.clone(),
            table_ids: table_id.into_iter().collect(),
            key,
        })
    }

    /// The record a change belongs to (under the key it has after the change).
    pub fn record_of(&self, change: &LoggedChange) -> Result<RecordRef, StoreError> {
        Ok(RecordRef {
            table: change.table.clone(),
            table_ids: vec![change.table_id],
            key: super::codec::encode_key(&change.change.key(&change.schema)),
        })
    }

    fn table_condition(table_ids: &[i64]) -> String {
        format!("c.table_id IN ({})", Self::id_list(table_ids))
    }

    fn id_list(table_ids: &[i64]) -> String {
        let ids: Vec<String> = table_ids.iter().map(ToString::to_string).collect();
        ids.join(",")
    }

    /// Every version of a record, oldest first: its changes under its key, under the keys it had
    /// before updates changed its key, a final move to another key, and truncates of its table.
    pub fn record_history(&self, record: &RecordRef) -> Result<Vec<LoggedChange>, StoreError> {
        self.record_versions(record, &|condition, params| {
            self.changes_where(condition, params, "")
        })
    }

    /// `record_history` as outlines (`Cache::outlines_where`): which changes, not their images.
    pub fn record_outline(&self, record: &RecordRef) -> Result<Vec<LoggedChange>, StoreError> {
        self.record_versions(record, &|condition, params| {
            self.outlines_where(condition, params)
        })
    }

    /// The ids of the row changes (inserts, updates, deletes, baseline rows) of a record that
    /// never moved: read from the record index alone, without a row of `changes`. `None` when an
    /// update ever moved a record into or out of its key (read `record_outline` then).
    pub fn record_change_ids(
        &self,
        record: &RecordRef,
    ) -> Result<Option<Vec<ChangeId>>, StoreError> {
        let tables = Self::table_condition(&record.table_ids);
        let moved = |condition: &str| -> Result<bool, StoreError> {
            self.connection()
                .query_row(
                    &format!(
                        "SELECT EXISTS (SELECT 1 FROM changes c WHERE {tables} AND {condition})"
                    ),
                    &[&record.key],
                    |row| row.get(0),
                )
                .context(self.path(), "following key changes")
        };
        if moved("c.key = ?1 AND c.old_key IS NOT NULL")? || moved("c.old_key = ?1")? {
            return Ok(None);
        }
        let ids: Vec<i64> = self
            .connection()
            .query_map(
                &format!(
                    "SELECT c.id FROM changes c WHERE {tables} AND c.key = ?1
                         AND c.op IN ('I', 'U', 'D', 'S')
                     ORDER BY c.id"
                ),
                &[&record.key],
                |row| row.get(0),
            )
            .context(self.path(), "reading a record's history")?;
        Ok(Some(ids.into_iter().map(ChangeId).collect()))
    }

    /// The changes with these ids, oldest first.
    pub fn changes_of_ids(&self, ids: &[ChangeId]) -> Result<Vec<LoggedChange>, StoreError> {
        let mut changes = Vec::new();
        for chunk in ids.chunks(500) {
            let list: Vec<String> = chunk.iter().map(|id| id.0.to_string()).collect();
            changes.extend(self.changes_where(
                &format!("c.id IN ({})", list.join(",")),
                &[],
                "ORDER BY c.id",
            )?);
        }
        changes.sort_by_key(|change| change.id);
        Ok(changes)
    }

    fn record_versions(
        &self,
        record: &RecordRef,
        read: &ReadChanges<'_>,
    ) -> Result<Vec<LoggedChange>, StoreError> {
        let tables = Self::table_condition(&record.table_ids);
        let mut changes: BTreeMap<ChangeId, LoggedChange> = BTreeMap::new();
        let mut pending = vec![(record.key.clone(), i64::MAX)];
        let mut seen = HashSet::new();
        while let Some((key, upper)) = pending.pop() {
            if !seen.insert((key.clone(), upper)) {
                continue;
            }
            for change in read(
                &format!("{tables} AND c.key = ?1 AND c.id < ?2"),
                &[&key, &upper],
            )? {
                changes.insert(change.id, change);
            }
            for (id, old_key) in self.moves_into(&record.table_ids, &key, 0, upper)? {
                pending.push((old_key, id));
            }
        }
        for change in read(
            &format!("{tables} AND c.old_key = ?1 AND c.old_key IS NOT NULL"),
            &[&record.key],
        )? {
            changes.insert(change.id, change);
        }
        if let Some(first) = changes.keys().next().copied() {
            for change in read(
                &format!("{tables} AND c.key = '{NO_KEY}' AND c.op IN ('T', 'G') AND c.id > ?1"),
                &[&first.0],
            )? {
                changes.insert(change.id, change);
            }
        }
        Ok(changes.into_values().collect())
    }

    /// Every change of these records of one table (keys as stored), oldest first: what
    /// `record_history` gives for each of them, read a few hundred keys per query. A record whose
    /// key an update changed is followed to the key it had before, and its move away is included.
    pub fn records_history(
        &self,
        table_ids: &[i64],
        keys: &[String],
    ) -> Result<Vec<LoggedChange>, StoreError> {
        const CHUNK: usize = 400;
        let tables = Self::id_list(table_ids);
        let mut found: BTreeMap<ChangeId, LoggedChange> = BTreeMap::new();
        let mut seen: HashSet<String> = HashSet::new();
        let mut pending: Vec<String> = keys.to_vec();
        while !pending.is_empty() {
            let batch: Vec<String> = std::mem::take(&mut pending)
                .into_iter()
                .filter(|key| seen.insert(key.clone()))
                .collect();
            for chunk in batch.chunks(CHUNK) {
                let placeholders: Vec<String> =
                    (1..=chunk.len()).map(|index| format!("?{index}")).collect();
                let list = placeholders.join(",");
                let bound: Vec<&dyn ToDb> = chunk.iter().map(|key| key as &dyn ToDb).collect();
                for change in self.changes_where(
                    &format!(
                        "c.id IN (SELECT k.id FROM changes k WHERE k.table_id IN ({tables}) AND k.key IN ({list})
                                  UNION ALL
                                  SELECT m.id FROM changes m WHERE m.table_id IN ({tables})
                                      AND m.old_key IN ({list}) AND m.old_key IS NOT NULL)"
                    ),
                    &bound,
                    "",
                )? {
                    // Moved into one of these keys: the record's earlier life is under the old one.
                    if let Some(old) = change.change.old_key(&change.schema) {
                        pending.push(super::codec::encode_key(&old));
                    }
                    found.insert(change.id, change);
                }
            }
        }
        if let Some(first) = found.keys().next().copied() {
            for change in self.changes_where(
                &format!(
                    "c.table_id IN ({tables}) AND c.key = '{NO_KEY}' AND c.op IN ('T', 'G') AND c.id > ?1"
                ),
                &[&first.0],
                "",
            )? {
                found.insert(change.id, change);
            }
        }
        Ok(found.into_values().collect())
    }

    /// The records the changes with these ids are of, without reading the changes themselves;
    /// `None` when one is of a table without a key (its rows are not records of their own).
    pub fn records_of_ids(&self, ids: &[ChangeId]) -> Result<Option<Vec<RecordRef>>, StoreError> {
        let mut records = Vec::new();
        for chunk in ids.chunks(500) {
            let list: Vec<String> = chunk.iter().map(|id| id.0.to_string()).collect();
            let rows: Vec<(i64, i64, String)> = self
                .connection()
                .query_map(
                    &format!(
                        "SELECT relation_id, table_id, key FROM changes WHERE id IN ({})",
                        list.join(",")
                    ),
                    &[],
                    |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
                )
                .context(self.path(), "reading changes")?;
            for (relation_id, table_id, key) in rows {
                let schema = self.relation(relation_id)?;
                if !schema.has_key() {
                    return Ok(None);
                }
                records.push(RecordRef {
                    table: schema.table.clone(),
                    table_ids: vec![table_id],
                    key,
                });
            }
        }
        Ok(Some(records))
    }

    /// Updates that moved a record into `key`, with the key it came from, for ids in (lower, upper).
    fn moves_into(
        &self,
        table_ids: &[i64],
        key: &str,
        lower: i64,
        upper: i64,
    ) -> Result<Vec<(i64, String)>, StoreError> {
        let sql = format!(
            "SELECT c.id, c.old_key FROM changes c
             WHERE {} AND c.key = ?1 AND c.old_key IS NOT NULL AND c.id > ?2 AND c.id < ?3
             ORDER BY c.id DESC",
            Self::table_condition(table_ids)
        );
        self.connection()
            .query_map(&sql, &[&key, &lower, &upper], |row| {
                Ok((row.get(0)?, row.get(1)?))
            })
            .context(self.path(), "following key changes")
    }

    /// The record as it was right after change `cut`, or `None` if it did not exist then.
    pub fn record_at(
        &self,
        record: &RecordRef,
        cut: ChangeId,
    ) -> Result<Option<Image>, StoreError> {
        let tables = Self::table_condition(&record.table_ids);
        // Walk back over updates that moved the record into its key after the cut.
        let mut key = record.key.clone();
        let mut upper = i64::MAX;
        while let Some((id, old_key)) = self
            .moves_into(&record.table_ids, &key, cut.0, upper)?
            .into_iter()
            .next()
        {
            key = old_key;
            upper = id;
        }
        let Some(latest) = self
            .changes_where(
                &format!("{tables} AND c.key = ?1 AND c.id <= ?2"),
                &[&key, &cut.0],
                "ORDER BY c.id DESC LIMIT 1",
            )?
            .pop()
        else {
            return Ok(None);
        };
        // Moved away from its key, or its table truncated: two index lookups, not an OR.
        let ids = Self::id_list(&record.table_ids);
        let removed_since: Option<i64> = self
            .connection()
            .query_opt(
                &format!(
                    "SELECT id FROM (
                       SELECT m.id FROM changes m WHERE m.table_id IN ({ids}) AND m.old_key = ?1
                           AND m.old_key IS NOT NULL AND m.id > ?2 AND m.id <= ?3
                       UNION ALL
                       SELECT t.id FROM changes t WHERE t.table_id IN ({ids}) AND t.key = '{NO_KEY}'
                           AND t.op IN ('T', 'G') AND t.id > ?2 AND t.id <= ?3) AS removed
                     LIMIT 1"
                ),
                &[&key, &latest.id.0, &cut.0],
                |row| row.get(0),
            )
            .context(self.path(), "reading a record")?;
        if removed_since.is_some() || self.dropped_by(latest.table_id, cut)? {
            return Ok(None);
        }
        Ok(after_image(&latest))
    }

    /// True when the table was dropped at or before change `cut`.
    fn dropped_by(&self, table_id: i64, cut: ChangeId) -> Result<bool, StoreError> {
        let dropped: Option<i64> = self
            .connection()
            .query_row(
                "SELECT dropped_change FROM tables WHERE id = ?1",
                &[&table_id],
                |row| row.get(0),
            )
            .context(self.path(), "reading a table")?;
        Ok(dropped.is_some_and(|dropped| dropped <= cut.0))
    }

    /// The record as the cache last saw it, following later updates of its key, with the newest
    /// change that shaped it.
    pub fn record_latest(
        &self,
        record: &RecordRef,
    ) -> Result<(Option<Image>, Option<ChangeId>), StoreError> {
        let moved_record = self.record_now(record)?;
        let newest = self.newest_change()?;
        let latest = self
            .changes_where(
                &format!(
                    "c.id = (SELECT max(id) FROM (
                        SELECT max(k.id) AS id FROM changes k WHERE k.table_id IN ({ids}) AND k.key = ?1
                        UNION ALL
                        SELECT max(t.id) FROM changes t WHERE t.table_id IN ({ids})
                            AND t.key = '{NO_KEY}' AND t.op IN ('T', 'G')) AS newest)",
                    ids = Self::id_list(&record.table_ids)
                ),
                &[&moved_record.key],
                "",
            )?
            .pop();
        Ok((
            self.record_at(&moved_record, newest)?,
            latest.map(|change| change.id),
        ))
    }

    /// The record under the key it has now, following later updates of its key (itself when
    /// none changed it).
    pub fn record_now(&self, record: &RecordRef) -> Result<RecordRef, StoreError> {
        let tables = Self::table_condition(&record.table_ids);
        let mut key = record.key.clone();
        let mut after = 0i64;
        loop {
            let moved: Option<(i64, String)> = self
                .connection()
                .query_opt(
                    &format!(
                        "SELECT c.id, c.key FROM changes c
                         WHERE {tables} AND c.old_key = ?1 AND c.old_key IS NOT NULL AND c.id > ?2
                         ORDER BY c.id LIMIT 1"
                    ),
                    &[&key, &after],
                    |row| Ok((row.get(0)?, row.get(1)?)),
                )
                .context(self.path(), "following key changes")?;
            match moved {
                Some((id, new_key)) => {
                    key = new_key;
                    after = id;
                }
                None => break,
            }
        }
        Ok(RecordRef {
            key,
            ..record.clone()
        })
    }

    /// The newest change of the whole cache.
    pub fn newest_change(&self) -> Result<ChangeId, StoreError> {
        let id: Option<i64> = self
            .connection()
            .query_row("SELECT max(id) FROM changes", &[], |row| row.get(0))
            .context(self.path(), "reading the newest change")?;
        id.map(ChangeId).ok_or(StoreError::EmptyHistory)
    }

    /// Calls `visit` with the changes that make up `table` right after change `cut`, a page at a
    /// time, in one read snapshot. When every schema version of the table has the same key, these
    /// are the newest change of each record that exists then, keys in order: each one's
    /// after-image is a row ([`TableChange::Newest`]). Otherwise (no key, or one that changed
    /// along the way) it is the table's whole history up to the cut, in commit order, for
    /// `history::state::TableFold` to fold ([`TableChange::History`]).
    pub fn table_at(
        &self,
        table: &TableName,
        cut: ChangeId,
        visit: impl FnMut(TableChange<'_>) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        self.snapshot(|| self.table_at_in_snapshot(table, cut, visit))
    }

    fn table_at_in_snapshot(
        &self,
        table: &TableName,
        cut: ChangeId,
        mut visit: impl FnMut(TableChange<'_>) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        const PAGE: usize = 1000;
        /// Records whose rows are read together (and held in memory at once).
        const WINDOW: usize = 20_000;
        // A name may have had several tables; only the one that existed then counts.
        let Some(table_id) = self.table_at_moment(table, cut)? else {
            return Ok(());
        };
        let tables = Self::table_condition(&[table_id]);
        if !self.has_one_key(table_id)? {
            let mut after = 0i64;
            loop {
                let page = self.changes_where(
                    &format!("{tables} AND c.id > ?1 AND c.id <= ?2"),
                    &[&after, &cut.0],
                    &format!("ORDER BY c.id LIMIT {PAGE}"),
                )?;
                let Some(last) = page.last() else {
                    break;
                };
                after = last.id.0;
                for change in &page {
                    visit(TableChange::History(change))?;
                }
            }
            return Ok(());
        }
        let last_truncate: i64 = self
            .connection()
            .query_row(
                &format!("SELECT coalesce(max(c.id), 0) FROM changes c WHERE {tables} AND c.key = '{NO_KEY}' AND c.op IN ('T', 'G') AND c.id <= ?1"),
                &[&cut.0],
                |row| row.get(0),
            )
            .context(self.path(), "reading a table")?;
        let mut moved_out: HashMap<String, Vec<i64>> = HashMap::new();
        // `+c.id`: without statistics SQLite would read the table's changes up to the cut through
        // `changes_by_table` and test each for an old key (0.3 s on a 10M cache) instead of
        // reading the few moves from the partial index `changes_moved_out`.
        let moves: Vec<(String, i64)> = self
            .connection()
            .query_map(
                &format!(
                    "SELECT c.old_key, c.id FROM changes c WHERE {tables} AND c.old_key IS NOT NULL AND +c.id <= ?1"
                ),
                &[&cut.0],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .context(self.path(), "reading a table")?;
        for (key, id) in moves {
            moved_out.entry(key).or_default().push(id);
        }
        // The newest change of each live record, in key order, read a window of records at a
        // time: the window's changes are fetched in id order, one pass over the file, and then
        // visited in key order. Fetched page by page in key order instead, every page was
        // a pass over the whole file of its own (2 s for 100,000 rows on a 10M cache).
        let mut window: Vec<i64> = Vec::new();
        let mut after_key = String::new();
        loop {
            let page: Vec<(String, i64)> = self
                .connection()
                .query_map(
                    &format!(
                        "SELECT c.key, max(c.id) FROM changes c
                         WHERE {tables} AND c.id <= ?1 AND c.key > ?2
                         GROUP BY c.key ORDER BY c.key LIMIT {PAGE}"
                    ),
                    &[&cut.0, &after_key],
                    |row| Ok((row.get(0)?, row.get(1)?)),
                )
                .context(self.path(), "reading a table")?;
            let Some((last_key, _)) = page.last() else {
                break;
            };
            after_key.clone_from(last_key);
            window.extend(
                page.iter()
                    .filter(|(key, id)| {
                        key != NO_KEY
                            && *id > last_truncate
                            && !moved_out
                                .get(key)
                                .is_some_and(|moves| moves.iter().any(|moved| moved > id))
                    })
                    .map(|(_, id)| *id),
            );
            if window.len() >= WINDOW {
                self.visit_newest(&std::mem::take(&mut window), &mut visit)?;
            }
        }
        self.visit_newest(&window, &mut visit)
    }

    /// Reads the rows the changes `ids` (in key order) leave, in id order, and visits them in key
    /// order. Only what a row needs is read (the after-image and its schema version): the
    /// transaction and context of each change would cost a lookup each.
    fn visit_newest(
        &self,
        ids: &[i64],
        visit: &mut impl FnMut(TableChange<'_>) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let mut ascending = ids.to_vec();
        ascending.sort_unstable();
        let mut fetched: HashMap<i64, Image> = HashMap::with_capacity(ids.len());
        for chunk in ascending.chunks(1000) {
            let list: Vec<String> = chunk.iter().map(ToString::to_string).collect();
            let rows: Vec<(i64, i64, String, EncodedImages)> = self
                .connection()
                .query_map(
                    &format!(
                        "SELECT c.id, c.relation_id, c.op, c.after, c.unavailable FROM changes c
                         WHERE c.id IN ({})",
                        list.join(",")
                    ),
                    &[],
                    |row| {
                        Ok((
                            row.get(0)?,
                            row.get(1)?,
                            row.get(2)?,
                            EncodedImages {
                                before: None,
                                after: row.get(3)?,
                                unavailable: row.get(4)?,
                            },
                        ))
                    },
                )
                .context(self.path(), "reading a table")?;
            for (id, relation_id, op, images) in rows {
                let op = op_from_code(&op)
                    .ok_or_else(|| self.damaged(format!("change {id}: unknown op {op}")))?;
                // The newest change of a record that a delete or truncate removed leaves no row.
                if !matches!(op, Op::Insert | Op::Update | Op::Snapshot) {
                    continue;
                }
                let row = codec::decode_after(&images)
                    .map_err(|error| self.damaged(format!("change {id}: {error}")))?
                    .ok_or_else(|| self.damaged(format!("change {id} has no after-image")))?;
                let schema = self.relation(relation_id)?;
                fetched.insert(id, Image { schema, row });
            }
        }
        for id in ids {
            if let Some(image) = fetched.remove(id) {
                visit(TableChange::Newest(image))?;
            }
        }
        Ok(())
    }

    /// True when every schema version of the table has the same, non-empty key: then a record's
    /// newest change is its state, and the table can be read key by key.
    pub(super) fn has_one_key(&self, table_id: i64) -> Result<bool, StoreError> {
        let ids: Vec<i64> = self
            .connection()
            .query_map(
                "SELECT id FROM relations WHERE table_id = ?1",
                &[&table_id],
                |row| row.get(0),
            )
            .context(self.path(), "reading schema versions")?;
        let mut keys = Vec::new();
        for id in ids {
            let schema = self.schema_version(id)?;
            let key: Vec<String> = schema.key_column_names().map(str::to_owned).collect();
            if key.is_empty() {
                return Ok(false);
            }
            if !keys.contains(&key) {
                keys.push(key);
            }
        }
        Ok(keys.len() == 1)
    }

    /// The changes with these ids, in commit order; an error names the first unknown one.
    pub fn changes_by_id(&self, ids: &[ChangeId]) -> Result<Vec<LoggedChange>, StoreError> {
        let mut changes = Vec::new();
        for id in ids {
            changes.push(
                self.change(*id)?
                    .ok_or(StoreError::UnknownChange { id: *id })?,
            );
        }
        changes.sort_by_key(|change| change.id);
        changes.dedup_by_key(|change| change.id);
        Ok(changes)
    }

    /// The changes of the one transaction with this xid, in commit order.
    pub fn transaction_changes(&self, xid: Xid) -> Result<Vec<LoggedChange>, StoreError> {
        let transactions: Vec<(i64, i64)> = self
            .connection()
            .query_map(
                "SELECT id, committed_at FROM transactions WHERE xid = ?1 ORDER BY id",
                &[&xid.0],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .context(self.path(), "finding a transaction")?;
        match transactions.as_slice() {
            [] => Err(StoreError::UnknownTransaction { xid }),
            [(id, _)] => self.changes_where("c.tx_id = ?1", &[id], "ORDER BY c.id"),
            many => Err(StoreError::AmbiguousTransaction {
                xid,
                count: many.len(),
            }),
        }
    }

    /// For each record the given changes touch, its changes from the oldest given one on, in commit
    /// order, following later updates of its key. Each change of a table without a key, and each
    /// truncate, stands alone.
    pub fn record_groups(
        &self,
        changes: &[LoggedChange],
    ) -> Result<Vec<RecordChanges>, StoreError> {
        let mut grouped: HashSet<ChangeId> = HashSet::new();
        let mut groups = Vec::new();
        // The truncates (and gaps) of each table after its oldest given change: read once per
        // table, not once per record.
        let mut oldest: BTreeMap<i64, i64> = BTreeMap::new();
        for change in changes {
            let first = oldest.entry(change.table_id).or_insert(change.id.0);
            *first = (*first).min(change.id.0);
        }
        let mut truncates: HashMap<i64, Vec<LoggedChange>> = HashMap::new();
        for (table_id, first) in oldest {
            truncates.insert(
                table_id,
                self.changes_where(
                    &format!(
                        "{} AND c.key = '{NO_KEY}' AND c.op IN ('T', 'G') AND c.id > ?1",
                        Self::table_condition(&[table_id])
                    ),
                    &[&first],
                    "",
                )?,
            );
        }
        for change in changes {
            if grouped.contains(&change.id) {
                continue;
            }
            if !change.schema.has_key()
                || matches!(change.change.op, Op::Truncate | Op::Gap | Op::Ddl)
            {
                grouped.insert(change.id);
                groups.push(RecordChanges(vec![change.clone()]));
                continue;
            }
            let table_ids = vec![change.table_id];
            let table_ids = &table_ids;
            let mut keys: Vec<String> =
                vec![super::codec::encode_key(&change.change.key(&change.schema))];
            let mut found: BTreeMap<ChangeId, LoggedChange> = BTreeMap::new();
            let mut index = 0;
            while index < keys.len() {
                let key = keys[index].clone();
                index += 1;
                for later in self.changes_where(
                    &super::under_or_moved_from(&Self::id_list(table_ids), "?1", Some("?2")),
                    &[&key, &change.id.0],
                    "",
                )? {
                    let moved_to = super::codec::encode_key(&later.change.key(&later.schema));
                    if !keys.contains(&moved_to) {
                        keys.push(moved_to);
                    }
                    found.insert(later.id, later);
                }
            }
            let first = change.id;
            for truncate in truncates
                .get(&change.table_id)
                .into_iter()
                .flatten()
                .filter(|truncate| truncate.id > first)
            {
                found.insert(truncate.id, truncate.clone());
            }
            grouped.extend(found.keys().copied());
            groups.push(RecordChanges(found.into_values().collect()));
        }
        Ok(groups)
    }
}
