//! The right panel: one change in detail (its diff, transaction and context), the history of its
//! record, the record's state at a chosen moment, and the buttons that write restore scripts.

use chrono::{DateTime, Utc};
use egui::text::{LayoutJob, TextFormat};
use egui::{Color32, FontId, RichText};

use crate::history::diff::mark_excluded;
use crate::history::diff::show_value;
use crate::history::related::{Member, Related, path_text};
use crate::history::{ColumnDiff, DiffKind, TextSpan, ValueDiff, describe_change, diff_change};
use crate::model::{
    ChangeId, ColumnRules, Image, LoggedChange, Moment, Op, Search, TableName, Term, Value,
};
use crate::restore::UndoTarget;

use super::fields::submitted;
use super::filters::changes_text;
use super::time_text::{Zone, ago, precise, understood};
use super::worker::{Detail, ScriptRequest};

/// Narrower than this, a diff shows each column's before above its after.
const STACK_BELOW: f32 = 520.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Tab {
    #[default]
    Change,
    History,
    Related,
}

/// The panel's state.
#[derive(Debug, Default)]
pub struct DetailState {
    pub tab: Tab,
    pub detail: Option<Box<Detail>>,
    pub loading: Option<ChangeId>,
    pub state_at: StateAt,
    /// Move the keyboard into the panel on the next frame (Enter in the timeline).
    pub focus: bool,
    /// The related history last read: the change it was asked for, and the story or why
    /// there is none. Kept while the changes of that story are opened from it.
    pub related: Option<(ChangeId, Result<Vec<Related>, String>)>,
    /// The change whose related history was asked for and has not arrived.
    pub related_asked: Option<ChangeId>,
    /// The cache was imported from an audit store: its positions are the import's own numbers,
    /// not WAL positions.
    pub imported: bool,
    /// The cache's column rules: which columns' values it never stored.
    pub rules: ColumnRules,
}

/// The state-at control: a moment within the record's lifetime and what the record was then.
#[derive(Debug, Default)]
pub struct StateAt {
    /// Microseconds since the epoch.
    pub micros: f64,
    pub text: String,
    pub result: Option<(Moment, Option<Image>)>,
    /// Show the rows related to the record too (`at --related`).
    pub with_related: bool,
    /// The record and its related rows at a moment, or why they could not be read.
    pub related: Option<(Moment, Result<Vec<Member>, String>)>,
    pub asked: Option<Moment>,
    /// A time the user typed that does not parse.
    pub error: Option<String>,
}

/// What the user asked of the panel.
#[derive(Debug, Clone, PartialEq)]
pub enum DetailAction {
    Open(ChangeId),
    RecordAt(ChangeId, Moment),
    Script(ScriptRequest),
    /// Add this term to the search (a value clicked in a diff).
    Search(String),
    /// Read the related history of this change's record.
    Related(ChangeId),
}

impl DetailState {
    /// True when the change shown is `change` and the state-at control last asked for `moment`:
    /// an answer for anything else arrived too late and is dropped.
    pub fn state_at_asked(&self, change: ChangeId, moment: Moment) -> bool {
        self.detail
            .as_ref()
            .is_some_and(|detail| detail.change.id == change)
            && self.state_at.asked == Some(moment)
    }

    /// Shows a freshly loaded change, keeping the tab. The change shown already (read again
    /// because its record changed) keeps the state-at control as it was.
    pub fn show(&mut self, detail: Box<Detail>) {
        let same = self
            .detail
            .as_ref()
            .is_some_and(|shown| shown.change.id == detail.change.id);
        self.loading = None;
        if same {
            self.detail = Some(detail);
            return;
        }
        let lifetime_end = detail
            .history
            .last()
            .map_or(detail.change.tx.committed_at, |change| {
                change.tx.committed_at
            });
        self.state_at = StateAt {
            micros: lifetime_end.timestamp_micros() as f64,
            with_related: self.state_at.with_related,
            ..StateAt::default()
        };
        self.detail = Some(detail);
    }
}

pub fn detail_ui(
    ui: &mut egui::Ui,
    state: &mut DetailState,
    zone: Zone,
    search: Option<&Search>,
) -> Option<DetailAction> {
    let panel = ui.max_rect();
    // Escape hands the keyboard back to the timeline.
    let focused = ui.ctx().memory(|memory| memory.focused());
    if let Some(id) = focused
        && ui.input(|input| input.key_pressed(egui::Key::Escape))
        && ui
            .ctx()
            .read_response(id)
            .is_some_and(|response| panel.contains_rect(response.rect))
    {
        ui.memory_mut(|memory| memory.surrender_focus(id));
    }
    let Some(detail) = state.detail.as_ref() else {
        ui.centered_and_justified(|ui| match state.loading {
            Some(_) => ui.spinner(),
            None => ui.label("Select a change to see what it did."),
        });
        return None;
    };
    let mut action = None;
    let change = &detail.change;
    ui.add(
        egui::Label::new(
            RichText::new(format!("{} · {}", change.change.op, change.table)).heading(),
        )
        .wrap(),
    );
    ui.add(egui::Label::new(RichText::new(describe_change(change)).weak()).wrap());
    if let Some(erasure) = &detail.erased {
        ui.add(
            egui::Label::new(
                RichText::new(format!(
                    "Values erased on {} (rowtrail forget {} {}{}): only the key is kept; the change, its time, transaction and context stay.",
                    erasure.erased_at.get(..19).unwrap_or(&erasure.erased_at).replace('T', " "),
                    erasure.table,
                    erasure.key,
                    if erasure.related { " --related" } else { "" }
                ))
                .color(ui.visuals().warn_fg_color),
            )
            .wrap(),
        );
    }
    if let Some(note) = change.schema.identity_note() {
        ui.add(
            egui::Label::new(
                RichText::new(note)
                    .small()
                    .color(ui.visuals().warn_fg_color),
            )
            .wrap(),
        );
    }
    // A schema change belongs to the table, not to a record: it has no record history.
    let has_record = change.schema_change.is_none();
    if !has_record {
        state.tab = Tab::Change;
    }
    ui.horizontal(|ui| {
        let tab = ui.selectable_value(&mut state.tab, Tab::Change, "Change");
        if std::mem::take(&mut state.focus) {
            tab.request_focus();
        }
        if has_record {
            ui.selectable_value(
                &mut state.tab,
                Tab::History,
                format!("Record history ({})", detail.history.len()),
            );
            ui.selectable_value(&mut state.tab, Tab::Related, "Related history")
                .on_hover_text(
                    "This record with the rows that point at it by foreign keys (its orders, their items…), as one timeline",
                );
        }
    });
    ui.separator();
    let tab = state.tab;
    if tab == Tab::Related {
        let id = detail.change.id;
        // A story stays while its own changes are opened from it.
        let known = state.related.as_ref().is_some_and(|(asked, story)| {
            *asked == id
                || story
                    .as_ref()
                    .is_ok_and(|story| story.iter().any(|related| related.change.id == id))
        });
        if !known && state.related_asked != Some(id) {
            state.related_asked = Some(id);
            state.related = None;
            action = Some(DetailAction::Related(id));
        }
    }
    let related = &state.related;
    egui::ScrollArea::vertical()
        .id_salt("detail")
        .show(ui, |ui| match tab {
            Tab::Change => {
                action = change_ui(ui, detail, zone, search, state.imported, &state.rules)
            }
            Tab::History => {
                action = history_ui(ui, detail, &mut state.state_at, zone, search, &state.rules)
            }
            Tab::Related => {
                // Keep the request for the story made above, if any.
                if let Some(chosen) = related_ui(ui, detail.change.id, related, zone, &state.rules)
                {
                    action = Some(chosen);
                }
            }
        });
    if state.loading.is_some() {
        ui.spinner();
    }
    action
}

/// `text` cut to its first `lines` lines and `chars` characters, with `…` where it was cut.
fn shortened(text: &str, lines: usize, chars: usize) -> String {
    let text = text.trim_end();
    let all_lines: Vec<&str> = text.lines().collect();
    let mut short = all_lines[..all_lines.len().min(lines)].join("\n");
    let mut cut = all_lines.len() > lines;
    if short.chars().count() > chars {
        short = short.chars().take(chars).collect();
        cut = true;
    }
    if cut {
        short.push('…');
    }
    short
}

fn when_ui(ui: &mut egui::Ui, change: &LoggedChange, zone: Zone, imported: bool) {
    let time = change.tx.committed_at;
    ui.add(egui::Label::new(format!("{} ({})", precise(time, zone), ago(time, zone.now))).wrap());
    let changes = changes_text(change.tx.change_count.max(0) as u64);
    match change.tx.xid {
        _ if change.tx.is_baseline => {
            ui.label("baseline: the row as it was where this history begins")
        }
        Some(xid) if imported => ui.label(format!(
            "transaction {xid} · {changes} · import position {}",
            change.lsn.0
        )),
        Some(xid) => ui.label(format!(
            "transaction {xid} · {changes} · lsn {}",
            change.lsn
        )),
        // An audit store that keeps no transaction ids (supa_audit).
        None => ui.label(format!("transaction (id not recorded) · {changes}")),
    };
}

fn change_ui(
    ui: &mut egui::Ui,
    detail: &Detail,
    zone: Zone,
    search: Option<&Search>,
    imported: bool,
    rules: &ColumnRules,
) -> Option<DetailAction> {
    let mut action = None;
    let change = &detail.change;
    when_ui(ui, change, zone, imported);
    if let Some(context) = &change.context {
        egui::Grid::new("context")
            .num_columns(2)
            .max_col_width((ui.available_width() - 100.0).max(120.0))
            .show(ui, |ui| {
                for (key, value) in context {
                    ui.label(RichText::new(key).weak());
                    let text = match value {
                        serde_json::Value::String(text) => text.clone(),
                        other => other.to_string(),
                    };
                    // A long value (a whole query) stays three lines tall, so the buttons and
                    // the diff stay in view; all of it on hover.
                    let short = shortened(&text, 3, 240);
                    let shown = ui.add(egui::Label::new(short.clone()).wrap());
                    if short != text {
                        shown.on_hover_text(text);
                    }
                    ui.end_row();
                }
            });
    }
    ui.horizontal_wrapped(|ui| {
        let undoable = !matches!(
            change.change.op,
            Op::Snapshot | Op::Truncate | Op::Gap | Op::Ddl
        );
        if ui
            .add_enabled(undoable, egui::Button::new("Undo this change"))
            .on_disabled_hover_text(match change.change.op {
                Op::Snapshot => "A baseline row is where history starts; there is nothing before it to go back to.",
                Op::Truncate => "A TRUNCATE is not undone as a whole: open the table's rows before it and restore records one by one.",
                Op::Gap => "History is missing here: there is no change to undo.",
                _ => "A schema change is not undone by rowtrail: reverse it with the opposite DDL.",
            })
            .clicked()
        {
            action = Some(DetailAction::Script(ScriptRequest::Undo {
                target: UndoTarget::Changes(vec![change.id]),
                cascade: false,
            }));
        }
        if ui
            .add_enabled(
                !change.tx.is_baseline,
                egui::Button::new("Undo transaction"),
            )
            .clicked()
        {
            action = Some(DetailAction::Script(ScriptRequest::Undo {
                target: UndoTarget::CachedTransaction(change.tx.id),
                cascade: false,
            }));
        }
        let restorable =
            change.schema.has_key() && !matches!(change.change.op, Op::Truncate | Op::Gap | Op::Ddl);
        if ui
            .add_enabled(restorable, egui::Button::new("Restore this version"))
            .on_disabled_hover_text(match change.change.op {
                Op::Ddl | Op::Truncate | Op::Gap => "This change has no row to restore.",
                _ => "The table had no key at this change, so this version cannot be told apart from others.",
            })
            .clicked()
        {
            action = Some(DetailAction::Script(ScriptRequest::RestoreVersion(
                change.id,
            )));
        }
    });
    ui.separator();
    match &change.schema_change {
        Some(schema_change) => schema_change_ui(ui, schema_change, &change.schema),
        None => {
            if let Some(term) = diff_ui(
                ui,
                &diff_change(&change.schema, &change.change),
                change.change.op == Op::Update,
                "diff",
                &change.table,
                search,
                rules,
            ) {
                action = Some(DetailAction::Search(term));
            }
        }
    }
    ui.separator();
    egui::CollapsingHeader::new(format!(
        "Transaction: {}",
        changes_text(change.tx.change_count.max(0) as u64)
    ))
    .default_open(detail.transaction.len() <= 20)
    .show(ui, |ui| {
        for other in &detail.transaction {
            let label = match &other.schema_change {
                Some(schema_change) => format!("{} {}", schema_change.command, other.table),
                None => format!("{} {} {}", other.change.op, other.table, other.key_text()),
            };
            if ui.selectable_label(other.id == change.id, label).clicked() && other.id != change.id
            {
                action = Some(DetailAction::Open(other.id));
            }
        }
        let more = change.tx.change_count - detail.transaction.len() as i64;
        if more > 0 {
            ui.label(format!("… and {more} more"));
        }
    });
    action
}

/// The diff: column, before, after, side by side (or before above after when the panel is
/// narrow); changed columns highlighted, unchanged ones folded, long values wrapped. A value is a
/// link: clicking it returns the search term that finds it (`customer_id:42`).
fn diff_ui(
    ui: &mut egui::Ui,
    diffs: &[ColumnDiff],
    fold_unchanged: bool,
    id: &str,
    table: &TableName,
    search: Option<&Search>,
    rules: &ColumnRules,
) -> Option<String> {
    let mut clicked = None;
    let mut diffs = diffs.to_vec();
    mark_excluded(&mut diffs, table, rules);
    let (unchanged, shown): (Vec<&ColumnDiff>, Vec<&ColumnDiff>) = diffs
        .iter()
        .partition(|diff| fold_unchanged && diff.kind == DiffKind::Unchanged);
    let highlight = ui.visuals().selection.bg_fill.gamma_multiply(0.25);
    let width = ui.available_width();
    let name_text = |diff: &ColumnDiff| {
        let name = RichText::new(&diff.column);
        match diff.kind {
            DiffKind::Changed | DiffKind::Unknown => name.strong().background_color(highlight),
            _ => name,
        }
    };
    let mut value = |ui: &mut egui::Ui, column: &str, value: &Option<Value>| {
        if let Some(term) = value_ui(ui, table, column, value, search) {
            clicked = Some(term);
        }
    };
    let excluded = |ui: &mut egui::Ui| {
        ui.label(RichText::new("(excluded)").italics().weak())
            .on_hover_text("The cache's column rules keep this column's values out of the cache.");
    };
    if width < STACK_BELOW {
        for diff in &shown {
            ui.label(name_text(diff));
            if diff.kind == DiffKind::Excluded {
                ui.indent((id, &diff.column), excluded);
                continue;
            }
            ui.indent((id, &diff.column), |ui| match (&diff.before, &diff.after) {
                // An inserted or deleted row has one side: just its value.
                (None, side) | (side, None) => value(ui, &diff.column, side),
                (before, after) => {
                    ui.horizontal_wrapped(|ui| {
                        ui.label(RichText::new("before").weak().small());
                        value(ui, &diff.column, before);
                    });
                    ui.horizontal_wrapped(|ui| {
                        ui.label(RichText::new("after").weak().small());
                        value(ui, &diff.column, after);
                    });
                }
            });
            ui.indent((id, &diff.column, "detail"), |ui| {
                if let (Some(detail), DiffKind::Changed) = (&diff.detail, diff.kind) {
                    ui.add(egui::Label::new(detail_job(detail, ui)).wrap());
                }
            });
        }
    } else {
        let value_width = ((width - 140.0) / 2.0).max(120.0);
        egui::Grid::new(id)
            .num_columns(3)
            .striped(false)
            .max_col_width(value_width)
            .show(ui, |ui| {
                ui.label(RichText::new("Column").strong());
                ui.label(RichText::new("Before").strong());
                ui.label(RichText::new("After").strong());
                ui.end_row();
                for diff in &shown {
                    ui.add(egui::Label::new(name_text(diff)).wrap());
                    if diff.kind == DiffKind::Excluded {
                        excluded(ui);
                        excluded(ui);
                        ui.end_row();
                        continue;
                    }
                    value(ui, &diff.column, &diff.before);
                    match (&diff.detail, diff.kind) {
                        (Some(detail), DiffKind::Changed) => {
                            ui.vertical(|ui| {
                                value(ui, &diff.column, &diff.after);
                                ui.add(egui::Label::new(detail_job(detail, ui)).wrap());
                            });
                        }
                        _ => value(ui, &diff.column, &diff.after),
                    }
                    ui.end_row();
                }
            });
    }
    if !unchanged.is_empty() {
        egui::CollapsingHeader::new(format!("{} unchanged columns", unchanged.len()))
            .id_salt((id, "unchanged"))
            .show(ui, |ui| {
                egui::Grid::new((id, "unchanged-grid"))
                    .num_columns(2)
                    .max_col_width((width - 140.0).max(120.0))
                    .show(ui, |ui| {
                        for diff in unchanged {
                            ui.add(egui::Label::new(&diff.column).wrap());
                            value(ui, &diff.column, &diff.after);
                            ui.end_row();
                        }
                    });
            });
    }
    clicked
}

/// One value of a diff, wrapped, with what the search matched marked. A known value is a link
/// to the search that finds it.
fn value_ui(
    ui: &mut egui::Ui,
    table: &TableName,
    column: &str,
    value: &Option<Value>,
    search: Option<&Search>,
) -> Option<String> {
    let text = match value {
        None => {
            ui.label(RichText::new("—").weak());
            return None;
        }
        Some(Value::Unavailable) => {
            ui.label(RichText::new("(unavailable)").italics().weak());
            return None;
        }
        Some(Value::Null) => {
            ui.label(RichText::new("NULL").weak());
            return None;
        }
        Some(value) => show_value(value),
    };
    let font = FontId::monospace(12.0);
    let plain = TextFormat {
        font_id: font.clone(),
        color: ui.visuals().text_color(),
        ..TextFormat::default()
    };
    let marked = TextFormat {
        background: ui.visuals().selection.bg_fill.gamma_multiply(0.6),
        color: ui.visuals().strong_text_color(),
        ..plain.clone()
    };
    let mut job = LayoutJob::default();
    let mut at = 0;
    let ranges = search.map_or_else(Vec::new, |search| {
        search.highlights(table, Some(column), &text)
    });
    for range in ranges {
        if range.start < at || range.end > text.len() {
            continue;
        }
        job.append(&text[at..range.start], 0.0, plain.clone());
        job.append(&text[range.clone()], 0.0, marked.clone());
        at = range.end;
    }
    job.append(&text[at..], 0.0, plain);
    let term = Term::Column {
        table: None,
        column: column.to_owned(),
        value: text.clone(),
    }
    .text();
    let response = ui
        .add(egui::Label::new(job).wrap().sense(egui::Sense::click()))
        .on_hover_cursor(egui::CursorIcon::PointingHand)
        .on_hover_text(format!(
            "Show the changes where {column} is this value ({term})"
        ));
    response.clicked().then_some(term)
}

/// A schema change: what ran, and what it did to the table.
fn schema_change_ui(
    ui: &mut egui::Ui,
    schema_change: &crate::model::SchemaChange,
    after: &crate::model::RelationSchema,
) {
    if schema_change.noticed {
        ui.label(
            RichText::new(
                "Noticed when the first row of the new shape arrived: rowtrail's schema log was not installed, so the statement and its moment are not known.",
            )
            .small()
            .color(ui.visuals().warn_fg_color),
        );
    }
    if let Some(statement) = &schema_change.statement {
        ui.label(RichText::new("Statement").weak());
        ui.add(egui::Label::new(RichText::new(statement).monospace()).wrap());
    }
    let edits = schema_change.edit_lines(after);
    match edits.is_empty() {
        true => {
            ui.label("The table's columns and key did not change.");
        }
        false => {
            for edit in edits {
                ui.label(format!("• {edit}"));
            }
        }
    }
}

/// A jsonb or text diff, coloured: removed red and struck through, added green.
fn detail_job(detail: &ValueDiff, ui: &egui::Ui) -> LayoutJob {
    let font = FontId::monospace(12.0);
    let plain = ui.visuals().text_color();
    let removed = Color32::from_rgb(0xc8, 0x45, 0x3a);
    let added = Color32::from_rgb(0x3a, 0x9a, 0x4a);
    let mut job = LayoutJob::default();
    let format = |color: Color32, strike: bool| TextFormat {
        font_id: font.clone(),
        color,
        strikethrough: match strike {
            true => egui::Stroke::new(1.0, color),
            false => egui::Stroke::NONE,
        },
        ..TextFormat::default()
    };
    match detail {
        ValueDiff::Json(edits) => {
            for (index, edit) in edits.iter().enumerate() {
                if index > 0 {
                    job.append("\n", 0.0, format(plain, false));
                }
                job.append(&format!("{}: ", edit.path), 0.0, format(plain, false));
                if let Some(before) = &edit.before {
                    job.append(&before.to_string(), 0.0, format(removed, true));
                    job.append(" ", 0.0, format(plain, false));
                }
                if let Some(after) = &edit.after {
                    job.append(&after.to_string(), 0.0, format(added, false));
                }
            }
        }
        ValueDiff::Text(spans) => {
            for span in spans {
                match span {
                    TextSpan::Same(text) => job.append(text, 0.0, format(plain, false)),
                    TextSpan::Removed(text) => job.append(text, 0.0, format(removed, true)),
                    TextSpan::Added(text) => job.append(text, 0.0, format(added, false)),
                }
            }
        }
    }
    job
}

/// The related history: the record's changes and those of the rows that point at it, newest
/// first, each with its path from the record. A click opens the change.
fn related_ui(
    ui: &mut egui::Ui,
    current: ChangeId,
    related: &Option<(ChangeId, Result<Vec<Related>, String>)>,
    zone: Zone,
    rules: &ColumnRules,
) -> Option<DetailAction> {
    let Some((root_change, story)) = related else {
        ui.horizontal(|ui| {
            ui.spinner();
            ui.label("Following foreign keys…");
        });
        return None;
    };
    let story = match story {
        Ok(story) => story,
        Err(error) => {
            ui.add(egui::Label::new(RichText::new(error).color(ui.visuals().warn_fg_color)).wrap());
            return None;
        }
    };
    let root = story
        .iter()
        .find_map(|related| related.path.first())
        .map(ToString::to_string)
        .unwrap_or_default();
    ui.label(
        RichText::new(format!(
            "{} of {root} and the rows that point at it{}",
            changes_text(story.len() as u64),
            match story.len() >= super::worker::RELATED_ROWS {
                true => " (the newest)",
                false => "",
            }
        ))
        .weak(),
    );
    let mut opened = None;
    for related in story {
        let change = &related.change;
        let title = format!(
            "{} · {} · {}{}",
            super::time_text::clock(change.tx.committed_at, zone),
            change.change.op,
            path_text(&related.path),
            match change.context_text().as_str() {
                "" => String::new(),
                who => format!(" · {who}"),
            }
        );
        let selected = change.id == current;
        let response = ui.add(egui::Button::selectable(selected, title).truncate());
        if response.clicked() && !selected {
            opened = Some(DetailAction::Open(change.id));
        }
        if selected {
            if ui
                .button(format!("Put {root} back as before this change"))
                .on_hover_text(
                    "A script that undoes this change and every later change of the story, \
                     ordered so foreign keys hold (rowtrail restore --related)",
                )
                .clicked()
            {
                opened = Some(DetailAction::Script(ScriptRequest::RestoreStory {
                    change: *root_change,
                    moment: Moment::BeforeChange(change.id),
                }));
            }
            // The opened change shows what it did right here.
            let _ = diff_ui(
                ui,
                &diff_change(&change.schema, &change.change),
                true,
                &format!("related-{}", change.id),
                &change.table,
                None,
                rules,
            );
            continue;
        }
        let changed = change.changed_text();
        if !changed.is_empty() {
            ui.label(RichText::new(format!("    {changed}")).weak().small());
        }
    }
    opened
}

fn history_ui(
    ui: &mut egui::Ui,
    detail: &Detail,
    state_at: &mut StateAt,
    zone: Zone,
    search: Option<&Search>,
    rules: &ColumnRules,
) -> Option<DetailAction> {
    let mut action = state_at_ui(ui, detail, state_at, zone, search);
    ui.separator();
    for (index, version) in detail.history.iter().enumerate().rev() {
        let selected = version.id == detail.change.id;
        let title = format!(
            "{} · {} · {}{}",
            super::time_text::clock(version.tx.committed_at, zone),
            version.change.op,
            version.key_text(),
            match version.context_text().as_str() {
                "" => String::new(),
                who => format!(" · {who}"),
            }
        );
        if ui
            .selectable_label(selected, RichText::new(title).strong())
            .clicked()
            && !selected
        {
            action = Some(DetailAction::Open(version.id));
        }
        if let Some(term) = diff_ui(
            ui,
            &diff_change(&version.schema, &version.change),
            true,
            &format!("version-{index}"),
            &version.table,
            search,
            rules,
        ) {
            action = Some(DetailAction::Search(term));
        }
        ui.add_space(6.0);
    }
    action
}

/// The rows related to the record at the moment shown, each under its path, and the button that
/// puts them all back; returns the moment to restore to when it is pressed.
fn related_at_ui(ui: &mut egui::Ui, state_at: &StateAt, asked: Moment) -> Option<Moment> {
    let (moment, members) = match &state_at.related {
        Some((moment, members)) if *moment == asked => (*moment, members),
        _ => {
            ui.horizontal(|ui| {
                ui.spinner();
                ui.label("Following foreign keys…");
            });
            return None;
        }
    };
    let members = match members {
        Ok(members) => members,
        Err(error) => {
            ui.add(egui::Label::new(RichText::new(error).color(ui.visuals().warn_fg_color)).wrap());
            return None;
        }
    };
    let related: Vec<&Member> = members
        .iter()
        .filter(|member| member.path.len() > 1)
        .collect();
    ui.label(match related.len() {
        0 => "No related rows then.".to_owned(),
        1 => "1 related row then:".to_owned(),
        count => format!("{count} related rows then:"),
    });
    for (index, member) in related.iter().enumerate() {
        egui::CollapsingHeader::new(path_text(&member.path))
            .id_salt(("related-at", index))
            .show(ui, |ui| {
                egui::Grid::new(("related-at-row", index))
                    .num_columns(2)
                    .show(ui, |ui| {
                        for (column, value) in member.schema.columns.iter().zip(&member.row) {
                            ui.label(RichText::new(&column.name).weak());
                            ui.label(value.display());
                            ui.end_row();
                        }
                    });
            });
    }
    let restore = ui
        .button("Restore with related rows")
        .on_hover_text(
            "A script that undoes every change of the record and its related rows after this \
             moment, ordered so foreign keys hold (rowtrail restore --related)",
        )
        .clicked();
    restore.then_some(moment)
}

/// The slider over the record's lifetime, a time field, and the record at that moment.
fn state_at_ui(
    ui: &mut egui::Ui,
    detail: &Detail,
    state_at: &mut StateAt,
    zone: Zone,
    search: Option<&Search>,
) -> Option<DetailAction> {
    let first = detail
        .history
        .first()
        .map_or(detail.change.tx.committed_at, |change| {
            change.tx.committed_at
        });
    let last = detail
        .history
        .last()
        .map_or(first, |change| change.tx.committed_at);
    let (low, high) = (
        first.timestamp_micros() as f64,
        (last.timestamp_micros() as f64).max(first.timestamp_micros() as f64 + 1.0),
    );
    let mut action = None;
    ui.label(RichText::new("State at a moment").strong());
    let slider = ui.add(
        egui::Slider::new(&mut state_at.micros, low..=high)
            .show_value(false)
            .text("State at"),
    );
    let chosen = DateTime::<Utc>::from_timestamp_micros(state_at.micros as i64).unwrap_or(first);
    let mut moment = None;
    if slider.changed() {
        state_at.text.clear();
        moment = Some(Moment::Time(chosen));
    }
    ui.horizontal(|ui| {
        let label = ui.label("At time");
        let field = ui
            .add(
                egui::TextEdit::singleline(&mut state_at.text)
                    .hint_text(precise(chosen, zone))
                    .desired_width(220.0),
            )
            .labelled_by(label.id);
        if submitted(ui, &field) {
            match zone.parse(&state_at.text) {
                Ok(time) => {
                    state_at.micros = time.timestamp_micros() as f64;
                    state_at.error = None;
                    moment = Some(Moment::Time(time));
                }
                Err(error) => state_at.error = Some(error.to_string()),
            }
        }
    });
    if ui
        .checkbox(&mut state_at.with_related, "With related rows")
        .on_hover_text(
            "Also the rows that point at the record (its orders, their items…) as they were then",
        )
        .changed()
        && state_at.with_related
        && moment.is_none()
        && let Some(asked) = state_at.asked
    {
        // Read the moment shown again, with its related rows.
        state_at.related = None;
        action = Some(DetailAction::RecordAt(detail.change.id, asked));
    }
    if let Some(error) = &state_at.error {
        ui.add(egui::Label::new(RichText::new(error).color(ui.visuals().error_fg_color)).wrap());
    } else if !state_at.text.trim().is_empty()
        && let Ok(moment) = zone.parse(&state_at.text)
    {
        ui.label(RichText::new(understood(moment, zone)).weak().small());
    }
    if let Some(moment) = moment
        && state_at.asked != Some(moment)
    {
        state_at.asked = Some(moment);
        state_at.related = None;
        action = Some(DetailAction::RecordAt(detail.change.id, moment));
    }
    match &state_at.result {
        None if state_at.asked.is_some() => {
            ui.spinner();
        }
        None => {
            ui.label(RichText::new("Move the slider to see the record at that moment.").weak());
        }
        Some((moment, None)) => {
            ui.label(format!("At {moment} the record did not exist."));
        }
        Some((moment, Some(image))) => {
            ui.label(format!("At {moment}:"));
            egui::Grid::new("state-at")
                .num_columns(2)
                .max_col_width((ui.available_width() - 140.0).max(120.0))
                .show(ui, |ui| {
                    for (column, value) in image.schema.columns.iter().zip(&image.row) {
                        ui.label(RichText::new(&column.name).weak());
                        if let Some(term) = value_ui(
                            ui,
                            &image.schema.table,
                            &column.name,
                            &Some(value.clone()),
                            search,
                        ) {
                            action = Some(DetailAction::Search(term));
                        }
                        ui.end_row();
                    }
                });
        }
    }
    if state_at.with_related
        && let Some(asked) = state_at.asked
        && let Some(restore) = related_at_ui(ui, state_at, asked)
    {
        action = Some(DetailAction::Script(ScriptRequest::RestoreStory {
            change: detail.change.id,
            moment: restore,
        }));
    }
    action
}

#[cfg(test)]
mod tests {
    use super::shortened;

    #[test]
    fn long_context_values_are_cut_to_a_few_lines() {
        assert_eq!(shortened("user=ann", 3, 240), "user=ann");
        assert_eq!(shortened("a\r\nb\n", 3, 240), "a\nb");
        assert_eq!(shortened("1\n2\n3\n4\n5", 3, 240), "1\n2\n3…");
        assert_eq!(
            shortened(&"x".repeat(300), 3, 240),
            format!("{}…", "x".repeat(240))
        );
    }
}
