//! The timeline: a virtual list of changes, newest first, that stays smooth over tens of millions
//! of rows. This file is its model, plain data with unit tests; `view` draws it.
//!
//! egui's `ScrollArea` keeps offsets in `f32` and loses rows past about a million, so the list
//! keeps its position as a row index (`u64`) and draws only the rows in view. A rank is turned into
//! a change id through a sparse index built in the background: every 256th matching id, newest
//! first. Any visible row is then at most 255 rows past a known id, and a page costs one short
//! keyset query. Changes that arrive while the app runs are kept apart as the *head* (ids newer
//! than the index), so the index stays valid and the rows on screen stay put. Transactions can be
//! folded to one row (`folds`).
//!
//! The model never talks to the readers itself: what it needs is queued as `Request`s, which the
//! app sends after the frame ([`Timeline::take_requests`]).

mod folds;
mod view;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::model::{ChangeId, LoggedChange, Op, Xid};
use crate::store::LogFilter;

use super::worker::{Request, RowSlot, STRIDE};

use folds::Folds;
pub use view::{Highlight, LIST_RECT, timeline_ui};

/// Rows fetched at a time.
pub const PAGE: u64 = 64;
/// A head larger than this makes the index be built again.
const HEAD_LIMIT: usize = 20_000;

/// One row as the list shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub id: ChangeId,
    pub tx_id: i64,
    pub xid: Option<Xid>,
    pub time: DateTime<Utc>,
    pub table: String,
    pub key: String,
    pub op: Op,
    pub who: String,
    pub changed: String,
    pub tx_changes: i64,
}

impl From<&LoggedChange> for Row {
    fn from(change: &LoggedChange) -> Self {
        Self {
            id: change.id,
            tx_id: change.tx.id,
            xid: change.tx.xid,
            time: change.tx.committed_at,
            table: change.table.short(),
            key: change.key_text(),
            op: change.change.op,
            who: change.context_text(),
            changed: change.changed_text(),
            tx_changes: change.tx.change_count,
        }
    }
}

/// The list's model: the filter, the rank index, loaded rows, folds and the view position.
#[derive(Debug)]
pub struct Timeline {
    pub filter: LogFilter,
    pub generation: u64,
    /// The newest id the index covers.
    top: ChangeId,
    anchors: Vec<ChangeId>,
    scanned: u64,
    complete: bool,
    /// Matching ids newer than `top`, newest first.
    head: Vec<ChangeId>,
    head_rows: HashMap<ChangeId, Row>,
    pages: HashMap<u64, Vec<Row>>,
    requested: HashSet<(RowSlot, u64)>,
    head_pending: bool,
    /// New changes were stored while the head could not be read (no index yet, or a read of it
    /// under way): read it as soon as it can be.
    head_wanted: bool,
    /// The rank shown at the top of the list (always a shown row, never one hidden in a fold).
    pub first: u64,
    wheel_rest: f32,
    /// The keyboard cursor (a rank).
    pub cursor: Option<u64>,
    /// The cursor moved to a row not loaded yet: open it once it is.
    follow_cursor: bool,
    /// The change shown in the detail panel.
    pub opened: Option<ChangeId>,
    /// Shade rows by transaction and show the transaction column.
    pub grouped: bool,
    /// After a jump: select the first row at or below this id once its page arrives.
    jump_to: Option<ChangeId>,
    /// The user is aiming at a row (the pointer moved over the list just now): new changes must
    /// not move the rows under it.
    held: bool,
    /// Rows that arrived above the view while held at the top; the view returns to the top when
    /// the hold ends, unless the user scrolled meanwhile.
    held_shift: u64,
    folds: Folds,
    /// Transactions to fold once the index can place them.
    to_fold: Vec<i64>,
    /// The Key column has been sized to the keys shown (once, when the first rows arrive).
    key_fitted: bool,
    /// What to ask the readers, sent by the app after the frame.
    outgoing: Vec<Request>,
}

/// How many pages of rows the list keeps (64 rows each): enough for many screens around the view,
/// bounded however far the user scrolls.
const MAX_PAGES: usize = 256;

/// How long after the pointer last moved over the list new changes keep it still.
const HOLD_SECONDS: f32 = 1.5;

/// What the user did in the list this frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimelineAction {
    /// Show this change in the detail panel.
    Open(ChangeId),
    /// Enter: move the keyboard into the detail panel.
    FocusDetail,
}

/// A keyboard move of the cursor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Move {
    Down,
    Up,
    PageDown,
    PageUp,
    Home,
    End,
}

impl Timeline {
    pub fn new(filter: LogFilter, generation: u64) -> Self {
        Self {
            filter,
            generation,
            top: ChangeId(0),
            anchors: Vec::new(),
            scanned: 0,
            complete: false,
            head: Vec::new(),
            head_rows: HashMap::new(),
            pages: HashMap::new(),
            requested: HashSet::new(),
            head_pending: false,
            head_wanted: false,
            first: 0,
            wheel_rest: 0.0,
            cursor: None,
            follow_cursor: false,
            opened: None,
            grouped: false,
            jump_to: None,
            held: false,
            held_shift: 0,
            folds: Folds::default(),
            to_fold: Vec::new(),
            key_fitted: false,
            outgoing: Vec::new(),
        }
    }

    /// A timeline for a new filter that keeps what the user chose in this one: grouping, the
    /// opened change and the folded transactions.
    pub fn refiltered(&self, filter: LogFilter, generation: u64) -> Self {
        let mut next = Self::new(filter, generation);
        next.grouped = self.grouped;
        next.opened = self.opened;
        next.to_fold = self.folds.tx_ids();
        next.to_fold.extend(&self.to_fold);
        next.key_fitted = self.key_fitted;
        next
    }

    /// What to ask the readers, in order; the app sends it after the frame.
    pub fn take_requests(&mut self) -> Vec<Request> {
        std::mem::take(&mut self.outgoing)
    }

    /// Rows known so far (all of them once the index is complete).
    pub fn total(&self) -> u64 {
        self.head.len() as u64 + self.scanned
    }

    /// Rows shown: those known, less the ones folded away.
    pub fn shown_total(&self) -> u64 {
        self.total().saturating_sub(self.folds.hidden())
    }

    pub fn is_complete(&self) -> bool {
        self.complete
    }

    /// Takes part of an index from the scanner.
    pub fn apply_index(
        &mut self,
        top: ChangeId,
        first_anchor: usize,
        anchors: Vec<ChangeId>,
        scanned: u64,
        complete: bool,
    ) {
        if first_anchor == 0 {
            self.top = top;
            self.anchors.clear();
        }
        if first_anchor == self.anchors.len() {
            self.anchors.extend(anchors);
        }
        self.scanned = scanned;
        self.complete = complete;
        if complete {
            for tx_id in std::mem::take(&mut self.to_fold) {
                self.ask_fold(tx_id);
            }
        }
    }

    /// Takes fetched rows.
    pub fn apply_rows(&mut self, slot: RowSlot, rows: &[LoggedChange]) {
        match slot {
            RowSlot::Page(page) => {
                self.requested.remove(&(slot, page));
                self.pages
                    .insert(page, rows.iter().map(Row::from).collect());
                self.evict_far_pages();
            }
            RowSlot::Head => {
                self.requested.retain(|(slot, _)| *slot != RowSlot::Head);
                for row in rows {
                    self.head_rows.insert(row.id, Row::from(row));
                }
            }
        }
        if let Some(target) = self.jump_to {
            let found = (self.first..self.first + PAGE * 2)
                .find(|&rank| self.row(rank).is_some_and(|row| row.id <= target));
            if let Some(rank) = found {
                let rank = self.folds.shown(rank);
                self.cursor = Some(rank);
                self.first = self
                    .folds
                    .rank_of_shown(self.folds.shown_index(rank).saturating_sub(3));
                self.jump_to = None;
                self.follow_cursor = true;
            }
        }
    }

    /// Keeps the page cache bounded: past `MAX_PAGES`, the pages farthest from the view go.
    fn evict_far_pages(&mut self) {
        if self.pages.len() <= MAX_PAGES {
            return;
        }
        let view = self.first.saturating_sub(self.head.len() as u64) / PAGE;
        let mut pages: Vec<u64> = self.pages.keys().copied().collect();
        pages.sort_by_key(|page| std::cmp::Reverse(page.abs_diff(view)));
        for page in pages.into_iter().take(self.pages.len() - MAX_PAGES) {
            self.pages.remove(&page);
        }
    }

    /// Takes the ids that arrived since the index was built. Keeps the rows in view where they
    /// are, unless the view is at the very top, which then shows the newest. Returns true when the
    /// head has grown so large that the index should be built again.
    pub fn apply_head(&mut self, ids: Vec<ChangeId>) -> bool {
        self.head_pending = false;
        let grown = ids.len().saturating_sub(self.head.len()) as u64;
        if grown == 0 {
            return false;
        }
        // At the top the list follows new changes, unless the user is aiming at a row.
        if self.held && self.first == self.held_shift {
            self.held_shift += grown;
        }
        if self.first > 0 || self.held {
            self.first += grown;
        }
        if let Some(cursor) = self.cursor.as_mut() {
            *cursor += grown;
        }
        self.folds.shift(grown);
        self.head = ids;
        self.head.len() > HEAD_LIMIT
    }

    /// Holds the rows still while the user aims at one; when the hold ends, returns to the top if
    /// the view only moved because changes arrived.
    pub fn hold(&mut self, aiming: bool) {
        if !aiming && self.held_shift > 0 {
            if self.first == self.held_shift {
                self.first = 0;
            }
            self.held_shift = 0;
        }
        self.held = aiming;
    }

    /// Asks for the rows that arrived since the index was built. While the index is still being
    /// built, or a read of the head is under way, the request waits for it: it is never lost.
    pub fn refresh_head(&mut self) {
        if self.head_pending || (self.anchors.is_empty() && !self.complete) {
            self.head_wanted = true;
            return;
        }
        self.head_wanted = false;
        self.head_pending = true;
        self.outgoing.push(Request::Head {
            generation: self.generation,
            filter: self.filter.clone(),
            above: self.top,
        });
    }

    /// True when the timeline has read the changes up to `id`: its index reaches it, or its head
    /// does (then nothing newer than `id` needs reading for it to be shown).
    pub fn has_read(&self, id: ChangeId) -> bool {
        let newest = self.head.first().copied().unwrap_or(self.top).max(self.top);
        self.is_indexed() && !self.head_pending && id <= newest
    }

    /// True once the index has its first part (the head can be read above it).
    pub fn is_indexed(&self) -> bool {
        self.complete || !self.anchors.is_empty()
    }

    /// Reads the head now if changes arrived while it could not be read.
    pub fn refresh_head_if_wanted(&mut self) {
        if self.head_wanted {
            self.refresh_head();
        }
    }

    /// The row at `rank`, if loaded.
    pub fn row(&self, rank: u64) -> Option<&Row> {
        let head = self.head.len() as u64;
        if rank < head {
            return self
                .head
                .get(rank as usize)
                .and_then(|id| self.head_rows.get(id));
        }
        let index_rank = rank - head;
        self.pages
            .get(&(index_rank / PAGE))
            .and_then(|page| page.get((index_rank % PAGE) as usize))
    }

    /// The ranks of up to `count` shown rows from `first` on.
    pub fn shown_ranks(&self, count: u64) -> Vec<u64> {
        let start = self.folds.shown_index(self.first);
        (start..(start + count).min(self.shown_total()))
            .map(|index| self.folds.rank_of_shown(index))
            .collect()
    }

    /// Requests the rows of `ranks` that are not loaded or asked for yet.
    pub fn request_rows(&mut self, ranks: std::ops::Range<u64>) {
        let head = self.head.len() as u64;
        let missing_head: Vec<ChangeId> = (ranks.start..ranks.end.min(head))
            .filter_map(|rank| self.head.get(rank as usize).copied())
            .filter(|id| !self.head_rows.contains_key(id))
            .collect();
        if let Some(first) = missing_head.first()
            && !self.requested.contains(&(RowSlot::Head, 0))
        {
            self.requested.insert((RowSlot::Head, 0));
            self.outgoing.push(Request::Page {
                generation: self.generation,
                filter: self.filter.clone(),
                top: *first,
                skip: 0,
                count: missing_head.len(),
                slot: RowSlot::Head,
            });
        }
        let start = ranks.start.max(head) - head;
        let end = ranks.end.saturating_sub(head);
        for page in start / PAGE..end.div_ceil(PAGE) {
            let first_rank = page * PAGE;
            if self.pages.contains_key(&page)
                || self.requested.contains(&(RowSlot::Page(page), page))
                || first_rank >= self.scanned
            {
                continue;
            }
            let Some(anchor) = self.anchors.get((first_rank / STRIDE) as usize) else {
                continue;
            };
            self.requested.insert((RowSlot::Page(page), page));
            self.outgoing.push(Request::Page {
                generation: self.generation,
                filter: self.filter.clone(),
                top: *anchor,
                skip: (first_rank % STRIDE) as usize,
                count: PAGE as usize,
                slot: RowSlot::Page(page),
            });
        }
    }

    /// Requests the rows of the view: `visible` shown rows from `first`, and a page beyond.
    pub fn request_view(&mut self, visible: u64) {
        let ranks = self.shown_ranks(visible);
        let (Some(&start), Some(&last)) = (ranks.first(), ranks.last()) else {
            return;
        };
        self.request_rows(start..(last + 1 + PAGE).min(self.total()));
    }

    /// Moves the view to the newest row at or before `target` (the row itself arrives with its page).
    pub fn jump_to(&mut self, target: ChangeId) {
        let head = self.head.len() as u64;
        if let Some(position) = self.head.iter().position(|id| *id <= target) {
            let rank = self.folds.shown(position as u64);
            self.first = rank;
            self.cursor = Some(rank);
            return;
        }
        // Anchors are newest first: the last one at or above the target starts its stride.
        let stride = self
            .anchors
            .partition_point(|anchor| *anchor > target)
            .saturating_sub(1);
        self.first = self.folds.shown(head + stride as u64 * STRIDE);
        self.jump_to = Some(target);
    }

    pub fn rank_of(&self, id: ChangeId) -> Option<u64> {
        let head = self.head.len() as u64;
        if let Some(position) = self.head.iter().position(|head_id| *head_id == id) {
            return Some(position as u64);
        }
        self.pages.iter().find_map(|(page, rows)| {
            rows.iter()
                .position(|row| row.id == id)
                .map(|offset| head + page * PAGE + offset as u64)
        })
    }

    /// The first shown row of the last screenful, for a view of `visible` rows.
    fn last_first(&self, visible: u64) -> u64 {
        self.folds
            .rank_of_shown(self.shown_total().saturating_sub(visible))
    }

    /// Scrolls by `rows` shown rows (negative: up).
    pub fn scroll(&mut self, rows: i64, visible: u64) {
        let last = self.folds.shown_index(self.last_first(visible));
        let index = (self.folds.shown_index(self.first) as i64 + rows).clamp(0, last as i64);
        self.first = self.folds.rank_of_shown(index as u64);
    }

    /// Puts the view at a fraction (0 to 1) of the shown rows (the scrollbar).
    pub fn scroll_to_fraction(&mut self, fraction: f64, visible: u64) {
        let last = self.folds.shown_index(self.last_first(visible));
        self.first = self
            .folds
            .rank_of_shown((fraction.clamp(0.0, 1.0) * last as f64).round() as u64);
    }

    /// Where the view is, as a fraction of the shown rows (the scrollbar's thumb).
    pub fn fraction(&self, visible: u64) -> f64 {
        let last = self.folds.shown_index(self.last_first(visible));
        match last {
            0 => 0.0,
            last => self.folds.shown_index(self.first) as f64 / last as f64,
        }
    }

    /// Keeps `first` on a shown row and within the last screenful.
    pub fn settle(&mut self, visible: u64) {
        let last = self.last_first(visible);
        self.first = self.folds.shown(self.first.min(last));
        if let Some(cursor) = self.cursor {
            self.cursor = Some(self.folds.shown(cursor.min(self.total().saturating_sub(1))));
        }
    }

    /// Moves the keyboard cursor and keeps it in view; the detail follows it.
    pub fn move_cursor(&mut self, step: Move, visible: u64) {
        let shown = self.shown_total();
        if shown == 0 {
            return;
        }
        let at = self.folds.shown_index(self.cursor.unwrap_or(self.first));
        let index = match step {
            Move::Down => (at + 1).min(shown - 1),
            Move::Up => at.saturating_sub(1),
            Move::PageDown => (at + visible).min(shown - 1),
            Move::PageUp => at.saturating_sub(visible),
            Move::Home => 0,
            Move::End => shown - 1,
        };
        let first = self.folds.shown_index(self.first);
        if index < first {
            self.first = self.folds.rank_of_shown(index);
        } else if index >= first + visible {
            self.first = self.folds.rank_of_shown(index + 1 - visible);
        }
        self.cursor = Some(self.folds.rank_of_shown(index));
        self.follow_cursor = true;
    }

    /// The change under the cursor, once, after the cursor moved and its row is loaded.
    pub fn take_cursor_change(&mut self) -> Option<ChangeId> {
        if !self.follow_cursor {
            return None;
        }
        let id = self
            .cursor
            .and_then(|rank| self.row(rank))
            .map(|row| row.id)?;
        self.follow_cursor = false;
        (self.opened != Some(id)).then_some(id)
    }

    /// Marks `id` as the change in the detail panel and puts the cursor on it.
    pub fn open(&mut self, id: ChangeId) {
        self.opened = Some(id);
        if let Some(rank) = self.rank_of(id) {
            self.cursor = Some(self.folds.shown(rank));
        }
    }

    /// Folds the transaction to its newest row, or unfolds it.
    pub fn toggle_fold(&mut self, tx_id: i64) {
        if self.folds.is_folded(tx_id) {
            self.folds.unfold(tx_id);
            return;
        }
        match self.complete {
            true => self.ask_fold(tx_id),
            false => self.to_fold.push(tx_id),
        }
    }

    /// Asks the reader where the transaction's rows are under this filter.
    fn ask_fold(&mut self, tx_id: i64) {
        self.outgoing.push(Request::Fold {
            generation: self.generation,
            filter: self.filter.clone(),
            tx_id,
            top: self.top,
            anchors: Arc::new(self.anchors.clone()),
        });
    }

    /// Takes where a transaction's rows are: its newest matching change, how many match, and the
    /// newest's rank in the index (`None` when it is newer than the index).
    pub fn apply_fold(
        &mut self,
        tx_id: i64,
        newest: ChangeId,
        count: u64,
        index_rank: Option<u64>,
    ) {
        let head = self.head.len() as u64;
        let summary = match index_rank {
            Some(rank) => head + rank,
            None => match self.head.iter().position(|id| *id == newest) {
                Some(position) => position as u64,
                None => return,
            },
        };
        self.folds.fold(tx_id, summary, count);
        self.first = self.folds.shown(self.first);
        if let Some(cursor) = self.cursor {
            self.cursor = Some(self.folds.shown(cursor));
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // In tests a failed unwrap is a failed test.
mod tests {
    use super::*;

    fn ids(range: std::ops::RangeInclusive<i64>) -> Vec<ChangeId> {
        range.rev().map(ChangeId).collect()
    }

    #[test]
    fn the_top_follows_new_changes_unless_held_and_returns_after_the_hold() {
        let mut timeline = Timeline::new(LogFilter::default(), 1);
        timeline.apply_head(ids(1..=2));
        assert_eq!(timeline.first, 0, "following at the top");

        timeline.hold(true);
        timeline.apply_head(ids(1..=5));
        assert_eq!(timeline.first, 3, "the rows under the pointer stay put");
        timeline.hold(false);
        assert_eq!(timeline.first, 0, "back to the newest when the hold ends");

        timeline.hold(true);
        timeline.apply_head(ids(1..=6));
        timeline.first = 4; // the user scrolled while holding
        timeline.hold(false);
        assert_eq!(
            timeline.first, 4,
            "a scrolled view stays where the user put it"
        );
        timeline.apply_head(ids(1..=7));
        assert_eq!(timeline.first, 5, "and keeps its rows as more arrive");
    }

    fn change(id: i64) -> LoggedChange {
        use crate::model::{
            Change, Lsn, Op, RelationSchema, ReplicaIdentity, TableName, TransactionInfo,
        };
        LoggedChange {
            id: ChangeId(id),
            lsn: Lsn(1),
            tx: TransactionInfo {
                id: 1,
                xid: None,
                commit_lsn: Lsn(1),
                committed_at: chrono::Utc::now(),
                origin: None,
                is_baseline: false,
                change_count: 1,
            },
            table_id: 1,
            table: TableName::new("public", "t"),
            schema: std::sync::Arc::new(RelationSchema {
                oid: 1,
                table: TableName::new("public", "t"),
                replica_identity: ReplicaIdentity::Full,
                columns: Vec::new(),
                key: Vec::new(),
                foreign_keys: Vec::new(),
                key_read_later: false,
            }),
            change: Change {
                op: Op::Insert,
                before: None,
                after: Some(Vec::new()),
            },
            context: None,
            schema_change: None,
            gap_from: None,
        }
    }

    #[test]
    fn item7_the_page_cache_stays_bounded_around_the_view() {
        let mut timeline = Timeline::new(LogFilter::default(), 1);
        let rows: Vec<LoggedChange> = (0..PAGE as i64).map(change).collect();
        for page in 0..2_000u64 {
            timeline.first = page * PAGE;
            timeline.apply_rows(RowSlot::Page(page), &rows);
        }
        assert!(
            timeline.pages.len() <= MAX_PAGES,
            "{}",
            timeline.pages.len()
        );
        assert!(
            timeline.pages.contains_key(&1_999),
            "the page in view stays"
        );
        assert!(!timeline.pages.contains_key(&0), "the farthest pages go");
    }

    #[test]
    fn item7_new_changes_are_looked_for_once_the_index_is_there() {
        let mut timeline = Timeline::new(LogFilter::default(), 1);
        timeline.refresh_head();
        assert!(
            timeline.take_requests().is_empty(),
            "no index yet: nothing to ask"
        );
        timeline.apply_index(ChangeId(5), 0, vec![ChangeId(5)], 1, true);
        timeline.refresh_head_if_wanted();
        assert!(
            matches!(timeline.take_requests().as_slice(), [Request::Head { .. }]),
            "asked once the index came"
        );
        timeline.refresh_head();
        assert!(
            timeline.take_requests().is_empty(),
            "one read of the head at a time"
        );
        timeline.apply_head(vec![ChangeId(6)]);
        timeline.refresh_head_if_wanted();
        assert_eq!(timeline.take_requests().len(), 1, "the wanted read follows");
    }

    /// A timeline over `count` rows (ids `count` down to 1), all loaded, in transactions of
    /// `per_tx` rows.
    fn loaded(count: i64, per_tx: i64) -> Timeline {
        let mut timeline = Timeline::new(LogFilter::default(), 1);
        let anchors: Vec<ChangeId> = (1..=count)
            .rev()
            .step_by(STRIDE as usize)
            .map(ChangeId)
            .collect();
        timeline.apply_index(ChangeId(count), 0, anchors, count as u64, true);
        let rows: Vec<LoggedChange> = (1..=count)
            .rev()
            .map(|id| {
                let mut row = change(id);
                row.tx.id = (id - 1) / per_tx;
                row
            })
            .collect();
        for (page, chunk) in rows.chunks(PAGE as usize).enumerate() {
            timeline.apply_rows(RowSlot::Page(page as u64), chunk);
        }
        timeline
    }

    #[test]
    fn the_cursor_moves_over_shown_rows_and_the_detail_follows() {
        let mut timeline = loaded(100, 1);
        timeline.move_cursor(Move::Down, 10);
        assert_eq!(timeline.cursor, Some(1), "from the top row down one");
        assert_eq!(timeline.take_cursor_change(), Some(ChangeId(99)));
        assert_eq!(timeline.take_cursor_change(), None, "once per move");
        timeline.move_cursor(Move::PageDown, 10);
        assert_eq!(timeline.cursor, Some(11));
        assert_eq!(timeline.first, 2, "the cursor stays in view");
        timeline.move_cursor(Move::End, 10);
        assert_eq!(timeline.cursor, Some(99));
        assert_eq!(timeline.first, 90);
        timeline.move_cursor(Move::Home, 10);
        assert_eq!((timeline.cursor, timeline.first), (Some(0), 0));
    }

    #[test]
    fn a_folded_transaction_is_one_row_until_unfolded() {
        // Transactions of 5 rows: ids 100..96 are transaction 19, 95..91 transaction 18, ...
        let mut timeline = loaded(100, 5);
        timeline.toggle_fold(18);
        let asked = timeline.take_requests();
        assert!(
            matches!(asked.as_slice(), [Request::Fold { tx_id: 18, .. }]),
            "{asked:?}"
        );
        // The reader says: newest matching change 95, five of them, at index rank 5.
        timeline.apply_fold(18, ChangeId(95), 5, Some(5));
        assert_eq!(timeline.shown_total(), 96);
        let shown: Vec<u64> = timeline.shown_ranks(8);
        assert_eq!(shown, vec![0, 1, 2, 3, 4, 5, 10, 11]);
        timeline.move_cursor(Move::Home, 10);
        for _ in 0..6 {
            timeline.move_cursor(Move::Down, 10);
        }
        assert_eq!(
            timeline.cursor,
            Some(10),
            "the cursor skips the folded rows"
        );
        // New changes above move the fold with the rows.
        timeline.apply_head(vec![ChangeId(102), ChangeId(101)]);
        assert_eq!(timeline.folds.at(7).map(|fold| fold.hidden), Some(4));
        timeline.toggle_fold(18);
        assert_eq!(timeline.shown_total(), 102, "unfolded");
    }

    #[test]
    fn folds_survive_a_new_filter() {
        let mut timeline = loaded(100, 5);
        timeline.toggle_fold(18);
        timeline.take_requests();
        timeline.apply_fold(18, ChangeId(95), 5, Some(5));
        let mut next = timeline.refiltered(LogFilter::default(), 2);
        assert!(next.take_requests().is_empty(), "waits for the new index");
        next.apply_index(ChangeId(100), 0, vec![ChangeId(100)], 100, true);
        assert!(matches!(
            next.take_requests().as_slice(),
            [Request::Fold { tx_id: 18, .. }]
        ));
    }
}
