//! Draws the timeline: a header of resizable columns (egui_extras' table, whose widths egui
//! remembers between runs), the rows in view, and a scrollbar that maps to a row index. The table
//! draws only the rows in view; scrolling and the keyboard move the model's `u64` position, never
//! an `f32` offset.

use egui::text::{LayoutJob, TextFormat};
use egui::{
    Align, Color32, FontId, Key, Layout, Pos2, Rect, Role, Sense, Stroke, Vec2, WidgetInfo,
};
use egui_extras::{Column, TableBuilder};

use crate::model::Search;
use crate::model::{Op, TableName};

use super::super::time_text::{Zone, clock};
use super::{HOLD_SECONDS, Move, Row, Timeline, TimelineAction};

/// The key under which the list's screen rectangle is kept in egui's temporary data.
pub const LIST_RECT: &str = "rowtrail.timeline.rect";

const FONT_SIZE: f32 = 13.0;
const PADDING: f32 = 4.0;

/// What the rows are matched against, to highlight it.
pub struct Highlight<'a> {
    pub search: Option<&'a Search>,
}

/// Draws the list and handles scrolling, selection, folds and the keyboard.
pub fn timeline_ui(
    ui: &mut egui::Ui,
    timeline: &mut Timeline,
    zone: Zone,
    highlight: &Highlight<'_>,
) -> Option<TimelineAction> {
    let font = FontId::proportional(FONT_SIZE);
    let row_height = ui.fonts_mut(|fonts| fonts.row_height(&font)) + 6.0;
    let (rect, response) = ui.allocate_exact_size(ui.available_size(), Sense::hover());
    // Where the list is, for headless drivers (the GUI benchmark) that scroll it.
    ui.ctx()
        .data_mut(|data| data.insert_temp(egui::Id::unique(LIST_RECT), rect));
    let bar_width = 12.0;
    let list = Rect::from_min_max(rect.min, Pos2::new(rect.max.x - bar_width, rect.max.y));
    let body_height = (list.height() - row_height).max(row_height);
    let visible = ((body_height / row_height).floor() as u64).max(1);
    let mut action = None;
    // The rows are widgets of their own, so the list is never "hovered" itself: ask whether the
    // pointer is over it.
    let over = response.contains_pointer();
    let aiming = over && ui.input(|input| input.pointer.time_since_last_movement()) < HOLD_SECONDS;
    timeline.hold(aiming);

    if over {
        let scroll = ui.input(|input| input.smooth_scroll_delta.y);
        timeline.wheel_rest -= scroll / row_height;
        let whole = timeline.wheel_rest.trunc();
        timeline.wheel_rest -= whole;
        if whole != 0.0 {
            timeline.scroll(whole as i64, visible);
        }
    }
    keyboard(ui, timeline, visible, &mut action);
    timeline.settle(visible);
    timeline.request_view(visible);
    if let Some(id) = timeline.take_cursor_change() {
        action = Some(TimelineAction::Open(id));
    }

    let ranks = timeline.shown_ranks(visible);
    // Backgrounds go under the table: one reserved shape per row, filled once the rows are laid out.
    let backgrounds: Vec<egui::layers::ShapeIdx> = ranks
        .iter()
        .map(|_| ui.painter().add(egui::Shape::Noop))
        .collect();
    let mut row_rects: Vec<Rect> = Vec::with_capacity(ranks.len());
    let mut clicked = None;
    let mut fold_toggle = None;
    let key_loaded = timeline.row(timeline.first).is_some();
    let grouped = timeline.grouped;
    let mut table_ui = ui.new_child(
        egui::UiBuilder::new()
            .id_salt(if grouped {
                "timeline-grouped"
            } else {
                "timeline"
            })
            .max_rect(list)
            .layout(Layout::top_down(Align::Min)),
    );
    table_ui.spacing_mut().item_spacing = Vec2::ZERO;
    table_ui.set_clip_rect(list.intersect(ui.clip_rect()));
    let visuals = table_ui.visuals().clone();
    let mut table = TableBuilder::new(&mut table_ui)
        .id_salt("columns")
        .vscroll(false)
        .resizable(true)
        .sense(Sense::click())
        .cell_layout(Layout::left_to_right(Align::Center))
        .column(Column::initial(136.0).at_least(60.0).clip(true));
    if grouped {
        table = table.column(Column::initial(110.0).at_least(60.0).clip(true));
    }
    // The Key column sizes itself to its content, but never so wide that the columns after it
    // leave the list at their initial widths.
    let others = 136.0 + 58.0 + 110.0 + 130.0 + 60.0 + if grouped { 110.0 } else { 0.0 };
    let key_most = (list.width() - others).clamp(90.0, 420.0);
    // Who starts wider where the list has room (until its border is dragged).
    let who_initial = (list.width() - (others - 130.0) - 150.0 - 100.0).clamp(130.0, 260.0);
    table = table
        .column(Column::initial(58.0).at_least(40.0).clip(true))
        .column(Column::initial(110.0).at_least(50.0).clip(true))
        .column(
            Column::auto_with_initial_suggestion(90.0)
                .at_least(50.0)
                .at_most(key_most)
                .clip(true)
                // Sized to its content when the first rows arrive.
                .auto_size_this_frame(key_loaded && !timeline.key_fitted),
        )
        .column(Column::initial(who_initial).at_least(50.0).clip(true))
        .column(Column::remainder().at_least(60.0).clip(true));
    if key_loaded {
        timeline.key_fitted = true;
    }
    let titles: &[&str] = match grouped {
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
    table
        .header(row_height, |mut header| {
            for title in titles {
                header.col(|ui| {
                    ui.add_space(PADDING);
                    ui.label(egui::RichText::new(*title).strong().size(12.0));
                });
            }
        })
        .body(|body| {
            body.rows(row_height, ranks.len(), |mut table_row| {
                let Some(&rank) = ranks.get(table_row.index()) else {
                    return;
                };
                let Some(row) = timeline.row(rank).cloned() else {
                    let (cell, response) = table_row.col(|ui| {
                        ui.add_space(PADDING);
                        ui.weak("…");
                    });
                    row_rects.push(Rect::from_x_y_ranges(list.x_range(), cell.y_range()));
                    response.widget_info(|| WidgetInfo::labeled(Role::Label, true, "loading"));
                    return;
                };
                let selected = timeline.opened == Some(row.id);
                table_row.set_selected(selected);
                let fold = timeline.folds.at(rank);
                let starts_transaction = rank == 0
                    || timeline
                        .row(rank - 1)
                        .is_none_or(|above| above.tx_id != row.tx_id);
                let cells = cells(&row, zone, grouped, fold.map(|fold| fold.hidden));
                let table_name = TableName::parse(&row.table)
                    .unwrap_or_else(|_| TableName::new("public", row.table.clone()));
                let mut cell_rect = Rect::NOTHING;
                for (index, text) in cells.iter().enumerate() {
                    let title = titles.get(index).copied().unwrap_or_default();
                    let (rect, _) = table_row.col(|ui| {
                        ui.add_space(PADDING);
                        if title == "Transaction" && row.tx_changes > 1 && starts_transaction {
                            let folded = fold.is_some();
                            let symbol = if folded { "+" } else { "–" };
                            let what = if folded { "Unfold" } else { "Fold" };
                            let button = ui
                                .add(egui::Button::new(symbol).small().frame(false))
                                .on_hover_text(format!("{what} this transaction"));
                            button.widget_info(|| {
                                WidgetInfo::labeled(
                                    Role::Button,
                                    true,
                                    format!("{what} transaction {}", transaction_name(&row)),
                                )
                            });
                            if button.clicked() {
                                fold_toggle = Some(row.tx_id);
                            }
                        }
                        let color = match (title, row.op) {
                            ("Op", Op::Insert) => Some(Color32::from_rgb(0x3a, 0x9a, 0x4a)),
                            ("Op", Op::Delete | Op::Truncate | Op::Gap) => {
                                Some(Color32::from_rgb(0xc8, 0x45, 0x3a))
                            }
                            _ => None,
                        };
                        let job = cell_job(ui, text, title, &table_name, highlight, color);
                        // Truncated with `…` (and the whole text on hover) by the cell's wrap mode; not
                        // in the pass that sizes a column to its content.
                        ui.add(egui::Label::new(job).selectable(false));
                    });
                    cell_rect = cell_rect.union(rect);
                }
                let response = table_row.response();
                row_rects.push(Rect::from_x_y_ranges(
                    list.x_range(),
                    response.rect.y_range(),
                ));
                let label = cells.join("  ");
                response.widget_info(|| {
                    WidgetInfo::selected(Role::ListBoxOption, true, selected, label.clone())
                });
                if response.clicked() {
                    clicked = Some((rank, row.id));
                }
            });
        });
    // Fill the reserved backgrounds: transaction shading and the cursor.
    let shade = visuals.text_color().gamma_multiply(0.07);
    for ((shape, rank), row_rect) in backgrounds.iter().zip(&ranks).zip(&row_rects) {
        let Some(row) = timeline.row(*rank) else {
            continue;
        };
        let mut shapes = Vec::new();
        if grouped && row.tx_id % 2 == 1 {
            shapes.push(egui::Shape::rect_filled(*row_rect, 0.0, shade));
        }
        if timeline.cursor == Some(*rank) {
            shapes.push(egui::Shape::rect_stroke(
                row_rect.shrink(1.0),
                2.0,
                Stroke::new(1.0, visuals.selection.stroke.color),
                egui::StrokeKind::Inside,
            ));
        }
        ui.painter().set(*shape, egui::Shape::Vec(shapes));
    }
    // A transaction's first row gets a line above it, so transactions read as groups.
    if grouped {
        for (rank, row_rect) in ranks.iter().zip(&row_rects).skip(1) {
            let starts = timeline
                .row(*rank)
                .zip(timeline.row(rank.saturating_sub(1)))
                .is_some_and(|(row, above)| row.tx_id != above.tx_id);
            if starts {
                ui.painter().hline(
                    row_rect.x_range(),
                    row_rect.top(),
                    Stroke::new(1.0, visuals.widgets.noninteractive.bg_stroke.color),
                );
            }
        }
    }
    if let Some(tx_id) = fold_toggle {
        timeline.toggle_fold(tx_id);
    } else if let Some((rank, id)) = clicked {
        timeline.cursor = Some(rank);
        action = Some(TimelineAction::Open(id));
    }
    if timeline.first > 0 {
        newer_ui(
            ui,
            timeline,
            Rect::from_min_size(list.min, Vec2::new(list.width(), row_height)),
        );
    }
    if ranks.is_empty() {
        let text = match timeline.is_complete() {
            true => "No changes match",
            false => "Reading the timeline…",
        };
        ui.painter().text(
            list.center(),
            egui::Align2::CENTER_CENTER,
            text,
            font,
            visuals.weak_text_color(),
        );
    }
    scrollbar_ui(
        ui,
        timeline,
        Rect::from_min_max(Pos2::new(list.max.x, list.min.y + row_height), rect.max),
        visible,
    );
    if let Some(TimelineAction::Open(id)) = action {
        timeline.open(id);
    }
    action
}

/// Arrow keys, Page Up/Down, Home and End move the cursor (the detail follows it); Enter moves
/// the keyboard into the detail. Keys a text field or another widget took are not seen here.
fn keyboard(
    ui: &egui::Ui,
    timeline: &mut Timeline,
    visible: u64,
    action: &mut Option<TimelineAction>,
) {
    let focused = ui.ctx().memory(|memory| memory.focused().is_some());
    if focused || timeline.shown_total() == 0 {
        return;
    }
    let pressed = |key: Key| ui.input(|input| input.key_pressed(key));
    let step = [
        (Key::ArrowDown, Move::Down),
        (Key::ArrowUp, Move::Up),
        (Key::PageDown, Move::PageDown),
        (Key::PageUp, Move::PageUp),
        (Key::Home, Move::Home),
        (Key::End, Move::End),
    ]
    .into_iter()
    .find(|(key, _)| pressed(*key));
    if let Some((_, step)) = step {
        timeline.move_cursor(step, visible);
    }
    if pressed(Key::Enter) && timeline.opened.is_some() {
        *action = Some(TimelineAction::FocusDetail);
    }
}

/// A cell's text, with what the search matched highlighted.
fn cell_job(
    ui: &egui::Ui,
    text: &str,
    title: &str,
    table: &TableName,
    highlight: &Highlight<'_>,
    color: Option<Color32>,
) -> LayoutJob {
    let plain = TextFormat {
        font_id: FontId::proportional(FONT_SIZE),
        color: color.unwrap_or_else(|| ui.visuals().text_color()),
        valign: Align::Center,
        ..TextFormat::default()
    };
    let marked = TextFormat {
        background: ui.visuals().selection.bg_fill.gamma_multiply(0.6),
        color: ui.visuals().strong_text_color(),
        ..plain.clone()
    };
    let ranges = match (highlight.search, title) {
        (Some(search), "Key") => search.highlights(table, None, text),
        (Some(search), "Changed") => changed_ranges(search, table, text),
        _ => Vec::new(),
    };
    let mut job = LayoutJob::default();
    let mut at = 0;
    for range in ranges {
        if range.start < at || range.end > text.len() {
            continue;
        }
        job.append(&text[at..range.start], 0.0, plain.clone());
        job.append(&text[range.clone()], 0.0, marked.clone());
        at = range.end;
    }
    job.append(&text[at..], 0.0, plain);
    job
}

/// The column names in a Changed cell (`status, total`) that a `column:value` term names, and
/// free text in it.
fn changed_ranges(search: &Search, table: &TableName, text: &str) -> Vec<std::ops::Range<usize>> {
    let mut ranges = search.highlights(table, None, text);
    let mut at = 0;
    for name in text.split(", ") {
        if search.names_column(table, name) {
            ranges.push(at..at + name.len());
        }
        at += name.len() + 2;
    }
    ranges.sort_by_key(|range| range.start);
    ranges
}

fn transaction_name(row: &Row) -> String {
    match row.xid {
        Some(xid) => xid.to_string(),
        None if row.op == Op::Snapshot => "baseline".to_owned(),
        // An audit store that keeps no transaction ids.
        None => "no id".to_owned(),
    }
}

/// The texts of a row's cells; a folded transaction's summary says what it hides.
fn cells(row: &Row, zone: Zone, grouped: bool, folded: Option<u64>) -> Vec<String> {
    let mut cells = vec![clock(row.time, zone)];
    if grouped {
        cells.push(format!(
            "{} ({})",
            transaction_name(row),
            super::super::filters::thousands(row.tx_changes.max(0) as u64)
        ));
    }
    cells.extend([
        row.op.to_string(),
        row.table.clone(),
        row.key.clone(),
        row.who.clone(),
        match folded {
            Some(hidden) => format!(
                "{} · and {} more in this transaction",
                row.changed,
                super::super::filters::changes_text(hidden)
            ),
            None => row.changed.clone(),
        },
    ]);
    cells
}

/// A button in the header for the changes above the view, back to the newest.
fn newer_ui(ui: &mut egui::Ui, timeline: &mut Timeline, header: Rect) {
    let text = format!(
        "{} newer",
        super::super::filters::changes_text(timeline.folds.shown_index(timeline.first))
    );
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
        egui::Align2::CENTER_CENTER,
        text,
        font,
        visuals.strong_text_color(),
    );
    if response.clicked() {
        timeline.first = 0;
    }
}

/// A scrollbar whose thumb maps to a row index (`u64`), precise for any number of rows.
fn scrollbar_ui(ui: &mut egui::Ui, timeline: &mut Timeline, track: Rect, visible: u64) {
    let total = timeline.shown_total();
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
    let thumb_height = (track.height() * visible as f32 / total as f32)
        .max(24.0)
        .min(track.height());
    let travel = track.height() - thumb_height;
    if let Some(pointer) = response.interact_pointer_pos()
        && (response.dragged() || response.clicked())
    {
        let fraction =
            ((pointer.y - track.min.y - thumb_height / 2.0) / travel.max(1.0)).clamp(0.0, 1.0);
        timeline.scroll_to_fraction(f64::from(fraction), visible);
    }
    let thumb = Rect::from_min_size(
        Pos2::new(
            track.min.x + 2.0,
            track.min.y + (timeline.fraction(visible) * f64::from(travel)) as f32,
        ),
        Vec2::new(track.width() - 4.0, thumb_height),
    );
    let color = match response.dragged() || response.hovered() {
        true => visuals.widgets.hovered.bg_fill,
        false => visuals.widgets.inactive.bg_fill,
    };
    ui.painter().rect_filled(thumb, 4.0, color);
}
