//! Where an import resumes in a store that numbers its rows from a sequence (supa_audit's
//! `record_version.id`, PaperTrail's `versions.id`), and nothing else says when they committed.
//!
//! A sequence hands out numbers when rows are written, not when they commit: while one
//! transaction holding number 5 is still running, number 6 may already be visible. So the
//! cursor keeps, besides the highest number imported, the *holes* below it: numbers not seen
//! yet, each with the newest transaction that could still fill it (`until`, the `xmax` of a
//! snapshot taken after the read that found it). A hole is read again every round, and once a
//! snapshot taken before a round's read has moved past `until`, every transaction that could
//! have filled it has ended: a hole still empty then was rolled back, and is forgotten.
//!
//! The cursor is pure; [`import_rounds`] drives it over a store (holes first, then pages
//! after `through`, then the round's end), for every format that numbers its rows this way.

use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio_postgres::types::ToSql;

use super::sink::Sink;
use super::{ImportError, ImportOptions, ImportSummary, Store, wait_for_more};

/// Numbers `lo..=hi` not imported, and when they may be forgotten.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hole {
    pub lo: i64,
    pub hi: i64,
    /// The transaction id (64-bit) from which on no transaction can fill it; `None` until the
    /// round that found it has ended.
    pub until: Option<i64>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SequenceCursor {
    /// Every number up to here was imported or is a hole.
    pub through: i64,
    #[serde(default)]
    pub holes: Vec<Hole>,
}

impl SequenceCursor {
    /// Notes that row `id` was imported: it fills a hole, or moves `through` on (leaving a
    /// hole for the numbers skipped).
    pub fn imported(&mut self, id: i64) {
        if id > self.through {
            if id > self.through + 1 {
                self.holes.push(Hole {
                    lo: self.through + 1,
                    hi: id - 1,
                    until: None,
                });
            }
            self.through = id;
            return;
        }
        let Some(index) = self
            .holes
            .iter()
            .position(|hole| hole.lo <= id && id <= hole.hi)
        else {
            return;
        };
        let hole = self.holes.remove(index);
        if hole.lo < id {
            self.holes.push(Hole { hi: id - 1, ..hole });
        }
        if id < hole.hi {
            self.holes.push(Hole { lo: id + 1, ..hole });
        }
        self.holes.sort_by_key(|hole| hole.lo);
    }

    /// At the end of a round whose reads began when the oldest running transaction was
    /// `xmin_before` and ended before `xmax_after`: holes whose transactions have all ended are
    /// forgotten, and the round's new holes wait for `xmax_after`.
    pub fn round_ended(&mut self, xmin_before: i64, xmax_after: i64) {
        self.holes
            .retain(|hole| hole.until.is_none_or(|until| until > xmin_before));
        for hole in &mut self.holes {
            hole.until.get_or_insert(xmax_after);
        }
    }

    /// The holes as two arrays, their low and high ends (for `unnest($1, $2)`).
    pub fn hole_bounds(&self) -> (Vec<i64>, Vec<i64>) {
        self.holes.iter().map(|hole| (hole.lo, hole.hi)).unzip()
    }
}

/// A store table whose rows are numbered from a sequence: how to read its rows and write them.
pub(super) trait NumberedRows {
    type Row;

    /// The row number's column as [`NumberedRows::rows`]' query names it (`r.id`).
    const ID: &'static str;

    /// Rows read per page (and per SQLite commit).
    const PAGE_ROWS: i64;

    /// The rows `filter` (a clause after `FROM`, over [`NumberedRows::ID`]) selects, by number.
    async fn rows(
        &mut self,
        filter: &str,
        parameters: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Self::Row>, ImportError>;

    /// Drops from a full page the rows of a transaction that may go on in the next page (kept
    /// when it fills the page). By default every row is kept.
    fn keep_whole_transactions(&self, _rows: &mut Vec<Self::Row>) {}

    /// Writes rows (read in number order) into the cache, noting each in `cursor`.
    async fn write(
        &mut self,
        sink: &mut Sink,
        cursor: &mut SequenceCursor,
        rows: Vec<Self::Row>,
    ) -> Result<(), ImportError>;
}

/// Imports a numbered table round after round (with `--follow`, until stopped): each round
/// reads the holes again, then every page after `through`, and saves the cursor with each
/// page's changes.
pub(super) async fn import_rounds<R: NumberedRows>(
    reader: &mut R,
    store: &Store,
    sink: &mut Sink,
    options: &ImportOptions,
    mut stop: watch::Receiver<bool>,
    progress: &(dyn Fn(&ImportSummary) + Sync),
) -> Result<(), ImportError> {
    let mut cursor: SequenceCursor = sink.cursor()?;
    loop {
        let xmin_before = snapshot_bound(store, "txid_snapshot_xmin").await?;
        // Rows that filled holes: transactions that committed since they were skipped.
        let (lows, highs) = cursor.hole_bounds();
        if !lows.is_empty() {
            let filter = format!(
                "JOIN unnest($1::int8[], $2::int8[]) AS h(lo, hi) ON {} BETWEEN h.lo AND h.hi",
                R::ID
            );
            let rows = reader.rows(&filter, &[&lows, &highs]).await?;
            reader.write(sink, &mut cursor, rows).await?;
            sink.save(&cursor)?;
        }
        let filter = format!("WHERE {id} > $1 ORDER BY {id} LIMIT $2", id = R::ID);
        loop {
            let mut rows = reader
                .rows(&filter, &[&cursor.through, &R::PAGE_ROWS])
                .await?;
            let full = rows.len() as i64 == R::PAGE_ROWS;
            if full {
                reader.keep_whole_transactions(&mut rows);
            }
            reader.write(sink, &mut cursor, rows).await?;
            sink.save(&cursor)?;
            progress(&sink.summary);
            if !full || *stop.borrow() {
                break;
            }
        }
        let xmax_after = snapshot_bound(store, "txid_snapshot_xmax").await?;
        cursor.round_ended(xmin_before, xmax_after);
        sink.save(&cursor)?;
        if *stop.borrow() || !wait_for_more(options, &mut stop).await {
            return Ok(());
        }
    }
}

/// `txid_snapshot_xmin` or `txid_snapshot_xmax` of the store's snapshot now.
async fn snapshot_bound(store: &Store, function: &str) -> Result<i64, ImportError> {
    Ok(store
        .session
        .query_one(
            "reading which transactions have ended",
            &format!("SELECT {function}(txid_current_snapshot())"),
            &[],
        )
        .await?
        .get(0))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // In tests a failed unwrap is a failed test.
mod tests {
    use super::*;

    #[test]
    fn numbers_skipped_are_holes_until_filled() {
        let mut cursor = SequenceCursor::default();
        for id in [1, 2, 5, 6, 9] {
            cursor.imported(id);
        }
        assert_eq!(cursor.through, 9);
        assert_eq!(cursor.hole_bounds(), (vec![3, 7], vec![4, 8]));
        cursor.imported(3);
        cursor.imported(8);
        assert_eq!(cursor.hole_bounds(), (vec![4, 7], vec![4, 7]));
        cursor.imported(4);
        assert_eq!(cursor.hole_bounds(), (vec![7], vec![7]));
        // Imported again (a page read twice): nothing changes.
        cursor.imported(2);
        assert_eq!(cursor.through, 9);
    }

    #[test]
    fn a_hole_is_forgotten_once_every_transaction_that_could_fill_it_has_ended() {
        let mut cursor = SequenceCursor::default();
        cursor.imported(1);
        cursor.imported(3);
        // The round that found hole 2 ends; transactions from 100 on may not have ended.
        cursor.round_ended(90, 100);
        assert_eq!(cursor.holes[0].until, Some(100));
        // A round that began while transaction 99 was still running keeps it.
        cursor.round_ended(99, 120);
        assert_eq!(cursor.holes.len(), 1);
        assert_eq!(cursor.holes[0].until, Some(100), "its wait does not move");
        // A round that began after all of them had ended forgets it.
        cursor.round_ended(100, 130);
        assert!(cursor.holes.is_empty());
    }

    #[test]
    fn a_hole_found_in_a_round_waits_for_that_round() {
        let mut cursor = SequenceCursor::default();
        cursor.imported(1);
        cursor.imported(4);
        cursor.round_ended(1_000, 1_010);
        assert_eq!(cursor.holes.len(), 1, "new holes are not forgotten at once");
    }
}
