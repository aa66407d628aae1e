//! The timeline: a virtual list of changes, newest first, that stays smooth over tens of millions
//! of rows.
//!
//! egui's `ScrollArea` keeps offsets in `f32` and loses rows past about a million, so the list is
//! drawn by hand and keeps its position as a row index (`u64`). A rank is turned into a change id
//! through a sparse index built in the background: every 256th matching id, newest first. Any
//! visible row is then at most 255 rows past a known id, and a page costs one short keyset query.
//! Changes that arrive while the app runs are kept apart as the *head* (ids newer than the index),
//! so the index stays valid and the rows on screen stay put.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use egui::{Align2, Color32, FontId, Key, Pos2, Rect, Role, Sense, Stroke, Vec2, WidgetInfo};

use crate::model::{ChangeId, LoggedChange, Op, Xid};
use crate::store::LogFilter;

use super::time_text::{Zone, clock};
use super::worker::{Request, RowSlot, STRIDE, Workers};

/// The key under which the list's screen rectangle is kept in egui's temporary data.
pub const LIST_RECT: &str = "rowtrail.timeline.rect";

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

/// The list's model: the filter, the rank index, loaded rows and the view position.
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
    /// The rank shown at the top of the list.
    pub first: u64,
    wheel_rest: f32,
    /// The keyboard cursor.
    pub cursor: Option<u64>,
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
}

/// How many pages of rows the list keeps (64 rows each): enough for many screens around the view,
/// bounded however far the user scrolls.
const MAX_PAGES: usize = 256;

/// How long after the pointer last moved over the list new changes keep it still.
const HOLD_SECONDS: f32 = 1.5;

/// What the user did in the list this frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimelineAction {
    Open(ChangeId),
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
            opened: None,
            grouped: false,
            jump_to: None,
            held: false,
            held_shift: 0,
        }
    }

    /// Rows known so far (all of them once the index is complete).
    pub fn total(&self) -> u64 {
        self.head.len() as u64 + self.scanned
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
                self.cursor = Some(rank);
                self.first = rank.saturating_sub(3);
                self.jump_to = None;
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
    /// are, unless the view is at the very top, which then shows the newest.
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
        self.head = ids;
        self.head.len() > HEAD_LIMIT
    }

    /// Holds the rows still while the user aims at one; when the hold ends, returns to the top if
    /// the view only moved because changes arrived.
    fn hold(&mut self, aiming: bool) {
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
    pub fn refresh_head(&mut self, workers: &Workers) {
        if self.head_pending || (self.anchors.is_empty() && !self.complete) {
            self.head_wanted = true;
            return;
        }
        self.head_wanted = false;
        self.head_pending = true;
        workers.send(Request::Head {
            generation: self.generation,
            filter: self.filter.clone(),
            above: self.top,
        });
    }

    /// Reads the head now if changes arrived while it could not be read.
    pub fn refresh_head_if_wanted(&mut self, workers: &Workers) {
        if self.head_wanted {
            self.refresh_head(workers);
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

    /// Requests the rows of `ranks` that are not loaded or asked for yet.
    pub fn request_rows(&mut self, ranks: std::ops::Range<u64>, workers: &Workers) {
        let head = self.head.len() as u64;
        let missing_head: Vec<ChangeId> = (ranks.start..ranks.end.min(head))
            .filter_map(|rank| self.head.get(rank as usize).copied())
            .filter(|id| !self.head_rows.contains_key(id))
            .collect();
        if let Some(first) = missing_head.first()
            && !self.requested.contains(&(RowSlot::Head, 0))
        {
            self.requested.insert((RowSlot::Head, 0));
            workers.send(Request::Page {
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
            workers.send(Request::Page {
                generation: self.generation,
                filter: self.filter.clone(),
                top: *anchor,
                skip: (first_rank % STRIDE) as usize,
                count: PAGE as usize,
                slot: RowSlot::Page(page),
            });
        }
    }

    /// Moves the view to the newest row at or before `target` (the row itself arrives with its page).
    pub fn jump_to(&mut self, target: ChangeId) {
        let head = self.head.len() as u64;
        if let Some(position) = self.head.iter().position(|id| *id <= target) {
            self.first = position as u64;
            self.cursor = Some(position as u64);
            return;
        }
        // Anchors are newest first: the last one at or above the target starts its stride.
        let stride = self
            .anchors
            .partition_point(|anchor| *anchor > target)
            .saturating_sub(1);
        self.first = head + stride as u64 * STRIDE;
        self.jump_to = Some(target);
    }

    fn rank_of(&self, id: ChangeId) -> Option<u64> {
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

    /// Draws the list and handles scrolling, selection and the keyboard.
    pub fn ui(
        &mut self,
        ui: &mut egui::Ui,
        workers: &Workers,
        zone: Zone,
    ) -> Option<TimelineAction> {
        let font = FontId::proportional(13.0);
        let row_height = ui.fonts_mut(|fonts| fonts.row_height(&font)) + 6.0;
        let (rect, response) = ui.allocate_exact_size(ui.available_size(), Sense::hover());
        // Where the list is, for headless drivers (the GUI benchmark) that scroll it.
        ui.ctx()
            .data_mut(|data| data.insert_temp(egui::Id::unique(LIST_RECT), rect));
        let bar_width = 12.0;
        let list = Rect::from_min_max(rect.min, Pos2::new(rect.max.x - bar_width, rect.max.y));
        let header = Rect::from_min_size(list.min, Vec2::new(list.width(), row_height));
        let body = Rect::from_min_max(Pos2::new(list.min.x, header.max.y), list.max);
        let visible = ((body.height() / row_height).floor() as u64).max(1);
        let total = self.total();
        let last_first = total.saturating_sub(visible);
        let mut action = None;
        let aiming = response.hovered()
            && ui.input(|input| input.pointer.time_since_last_movement()) < HOLD_SECONDS;
        self.hold(aiming);

        if response.hovered() {
            let scroll = ui.input(|input| input.smooth_scroll_delta.y);
            self.wheel_rest -= scroll / row_height;
            let whole = self.wheel_rest.trunc();
            self.wheel_rest -= whole;
            self.first = (self.first as i64 + whole as i64).clamp(0, last_first as i64) as u64;
        }
        let typing = ui.ctx().memory(|memory| memory.focused().is_some());
        if !typing && total > 0 {
            let (down, up, page_down, page_up, home, end, enter) = ui.input(|input| {
                (
                    input.key_pressed(Key::ArrowDown),
                    input.key_pressed(Key::ArrowUp),
                    input.key_pressed(Key::PageDown),
                    input.key_pressed(Key::PageUp),
                    input.key_pressed(Key::Home),
                    input.key_pressed(Key::End),
                    input.key_pressed(Key::Enter),
                )
            });
            let cursor = self.cursor.unwrap_or(self.first);
            let moved = match (down, up, page_down, page_up, home, end) {
                (true, ..) => Some((cursor + 1).min(total - 1)),
                (_, true, ..) => Some(cursor.saturating_sub(1)),
                (_, _, true, ..) => Some((cursor + visible).min(total - 1)),
                (_, _, _, true, ..) => Some(cursor.saturating_sub(visible)),
                (_, _, _, _, true, _) => Some(0),
                (_, _, _, _, _, true) => Some(total - 1),
                _ => None,
            };
            if let Some(rank) = moved {
                self.cursor = Some(rank);
                if rank < self.first {
                    self.first = rank;
                } else if rank >= self.first + visible {
                    self.first = rank + 1 - visible;
                }
            }
            if enter && let Some(row) = self.cursor.and_then(|rank| self.row(rank)) {
                action = Some(TimelineAction::Open(row.id));
            }
        }
        self.first = self.first.min(last_first);
        self.request_rows(
            self.first..(self.first + visible + PAGE).min(total),
            workers,
        );

        let painter = ui.painter_at(rect);
        let visuals = ui.visuals().clone();
        let columns = Columns::new(list.width(), self.grouped);
        painter.rect_filled(header, 0.0, visuals.faint_bg_color);
        for (x, title) in columns.titles() {
            painter.text(
                Pos2::new(list.min.x + x + 4.0, header.center().y),
                Align2::LEFT_CENTER,
                title,
                FontId::proportional(12.0),
                visuals.strong_text_color(),
            );
        }
        if self.first > 0 {
            self.newer_ui(ui, header);
        }
        for offset in 0..visible.min(total.saturating_sub(self.first)) {
            let rank = self.first + offset;
            let row_rect = Rect::from_min_size(
                Pos2::new(body.min.x, body.min.y + offset as f32 * row_height),
                Vec2::new(body.width(), row_height),
            );
            let id = ui.scope_id().with(("timeline-row", rank));
            let row_response = ui.interact(row_rect, id, Sense::click());
            let Some(row) = self.row(rank).cloned() else {
                painter.text(
                    row_rect.left_center() + Vec2::new(4.0, 0.0),
                    Align2::LEFT_CENTER,
                    "…",
                    font.clone(),
                    visuals.weak_text_color(),
                );
                row_response.widget_info(|| WidgetInfo::labeled(Role::Label, true, "loading"));
                continue;
            };
            let selected = self.opened == Some(row.id);
            let under_cursor = self.cursor == Some(rank);
            let shade = self.grouped && row.tx_id % 2 == 1;
            let fill = if selected {
                visuals.selection.bg_fill
            } else if row_response.hovered() {
                visuals.widgets.hovered.weak_bg_fill
            } else if shade {
                visuals.faint_bg_color
            } else {
                Color32::TRANSPARENT
            };
            painter.rect_filled(row_rect, 0.0, fill);
            if under_cursor {
                painter.rect_stroke(
                    row_rect.shrink(1.0),
                    2.0,
                    Stroke::new(1.0, visuals.selection.stroke.color),
                    egui::StrokeKind::Inside,
                );
            }
            let text_color = match selected {
                true => visuals.selection.stroke.color,
                false => visuals.text_color(),
            };
            let cells = columns.cells(&row, zone);
            for ((x, width), text) in columns.spans().into_iter().zip(&cells) {
                let cell = Rect::from_min_size(
                    Pos2::new(row_rect.min.x + x, row_rect.min.y),
                    Vec2::new(width - 6.0, row_height),
                );
                let color = match text.as_str() {
                    "insert" => Color32::from_rgb(0x3a, 0x9a, 0x4a),
                    "delete" | "truncate" => Color32::from_rgb(0xc8, 0x45, 0x3a),
                    _ => text_color,
                };
                painter.with_clip_rect(cell).text(
                    cell.left_center() + Vec2::new(4.0, 0.0),
                    Align2::LEFT_CENTER,
                    text,
                    font.clone(),
                    color,
                );
            }
            let label = cells.join("  ");
            row_response.widget_info(|| {
                WidgetInfo::selected(Role::ListBoxOption, true, selected, label.clone())
            });
            if row_response.clicked() {
                self.cursor = Some(rank);
                action = Some(TimelineAction::Open(row.id));
            }
        }
        if total == 0 {
            let text = match self.complete {
                true => "No changes match",
                false => "Reading the timeline…",
            };
            painter.text(
                body.center(),
                Align2::CENTER_CENTER,
                text,
                font,
                visuals.weak_text_color(),
            );
        }
        self.scrollbar_ui(
            ui,
            Rect::from_min_max(Pos2::new(list.max.x, body.min.y), rect.max),
            visible,
        );
        if let Some(TimelineAction::Open(id)) = action {
            self.opened = Some(id);
            if let Some(rank) = self.rank_of(id) {
                self.cursor = Some(rank);
            }
        }
        action
    }

    /// A button in the header for the changes above the view, back to the newest.
    fn newer_ui(&mut self, ui: &mut egui::Ui, header: Rect) {
        let text = format!("{} newer", super::filters::changes_text(self.first));
        let font = FontId::proportional(12.0);
        let width = ui.fonts_mut(|fonts| {
            fonts
                .layout_no_wrap(text.clone(), font.clone(), Color32::WHITE)
                .size()
                .x
        }) + 16.0;
        let rect = Rect::from_min_size(
            Pos2::new(header.max.x - width - 4.0, header.min.y + 2.0),
            Vec2::new(width, header.height() - 4.0),
        );
        let response = ui.interact(rect, ui.scope_id().with("timeline-newer"), Sense::click());
        response.widget_info(|| WidgetInfo::labeled(Role::Button, true, text.clone()));
        let visuals = ui.visuals();
        let fill = match response.hovered() {
            true => visuals.widgets.hovered.bg_fill,
            false => visuals.selection.bg_fill,
        };
        ui.painter().rect_filled(rect, 8.0, fill);
        ui.painter().text(
            rect.center(),
            Align2::CENTER_CENTER,
            text,
            font,
            visuals.strong_text_color(),
        );
        if response.clicked() {
            self.first = 0;
        }
    }

    /// A scrollbar whose thumb maps to a row index (`u64`), precise for any number of rows.
    fn scrollbar_ui(&mut self, ui: &mut egui::Ui, track: Rect, visible: u64) {
        let total = self.total();
        let response = ui.interact(
            track,
            ui.scope_id().with("timeline-scrollbar"),
            Sense::click_and_drag(),
        );
        response.widget_info(|| WidgetInfo::labeled(Role::ScrollBar, true, "Timeline position"));
        let visuals = ui.visuals();
        ui.painter()
            .rect_filled(track, 4.0, visuals.extreme_bg_color);
        if total <= visible {
            return;
        }
        let last_first = total - visible;
        let thumb_height = (track.height() * visible as f32 / total as f32)
            .max(24.0)
            .min(track.height());
        let travel = track.height() - thumb_height;
        if let Some(pointer) = response.interact_pointer_pos()
            && (response.dragged() || response.clicked())
        {
            let fraction =
                ((pointer.y - track.min.y - thumb_height / 2.0) / travel.max(1.0)).clamp(0.0, 1.0);
            self.first = (f64::from(fraction) * last_first as f64).round() as u64;
        }
        let fraction = self.first as f64 / last_first as f64;
        let thumb = Rect::from_min_size(
            Pos2::new(
                track.min.x + 2.0,
                track.min.y + (fraction * f64::from(travel)) as f32,
            ),
            Vec2::new(track.width() - 4.0, thumb_height),
        );
        let color = match response.dragged() || response.hovered() {
            true => visuals.widgets.hovered.bg_fill,
            false => visuals.widgets.inactive.bg_fill,
        };
        ui.painter().rect_filled(thumb, 4.0, color);
    }
}

/// Column layout of the list.
struct Columns {
    spans: Vec<(f32, f32)>,
    grouped: bool,
}

impl Columns {
    /// Time and operation get fixed widths; the rest share what is left by these weights.
    fn new(width: f32, grouped: bool) -> Self {
        let fixed = [140.0, 64.0];
        let transaction = if grouped { 90.0 } else { 0.0 };
        let flexible = (width - fixed.iter().sum::<f32>() - transaction).max(200.0);
        let mut widths = vec![fixed[0]];
        if grouped {
            widths.push(transaction);
        }
        widths.push(fixed[1]);
        widths.extend([0.22, 0.14, 0.38, 0.26].map(|weight| flexible * weight));
        let mut x = 0.0;
        let mut spans = Vec::new();
        for width in widths {
            spans.push((x, width));
            x += width;
        }
        Self { spans, grouped }
    }

    fn titles(&self) -> Vec<(f32, &'static str)> {
        let names: &[&str] = match self.grouped {
            true => &[
                "Time",
                "Transaction",
                "Op",
                "Table",
                "Key",
                "Who",
                "Changed",
            ],
            false => &["Time", "Op", "Table", "Key", "Who", "Changed"],
        };
        self.spans
            .iter()
            .map(|(x, _)| *x)
            .zip(names.iter().copied())
            .collect()
    }

    fn spans(&self) -> Vec<(f32, f32)> {
        self.spans.clone()
    }

    fn cells(&self, row: &Row, zone: Zone) -> Vec<String> {
        let mut cells = vec![clock(row.time, zone)];
        if self.grouped {
            cells.push(match row.xid {
                Some(xid) => format!("{xid} ({})", row.tx_changes),
                None => "baseline".to_owned(),
            });
        }
        cells.extend([
            row.op.to_string(),
            row.table.clone(),
            row.key.clone(),
            row.who.clone(),
            row.changed.clone(),
        ]);
        cells
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
        let (sender, receiver) = std::sync::mpsc::sync_channel(16);
        let ctx = egui::Context::default();
        let dir = tempfile::tempdir().unwrap();
        // No cache at this path: the readers answer with a failure, which is enough here.
        let workers = Workers::start(dir.path().join("none.db"), sender, ctx).unwrap();
        let mut timeline = Timeline::new(LogFilter::default(), 1);
        timeline.refresh_head(&workers);
        assert!(!timeline.head_pending, "no index yet: nothing to ask");
        timeline.apply_index(ChangeId(5), 0, vec![ChangeId(5)], 1, true);
        timeline.refresh_head_if_wanted(&workers);
        assert!(timeline.head_pending, "asked once the index came");
        drop(receiver);
    }
}
