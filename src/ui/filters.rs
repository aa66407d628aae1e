//! The left panel: tables with their change counts, and the filters (operation, time range,
//! context field, search) that combine into the timeline's filter.

use egui::{Key, Modifiers, RichText};

use crate::history::parse_local_time;
use crate::model::{Op, TableName};
use crate::store::{LogFilter, TableSummary};

/// The filter as the user is editing it. Text fields apply a moment after typing stops.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FilterForm {
    pub table: Option<TableName>,
    /// Which of the tables of that name (a table dropped and created again is a new table).
    pub table_id: Option<i64>,
    pub op: Option<Op>,
    pub since: String,
    pub until: String,
    pub context_field: String,
    pub context_value: String,
    pub search: String,
    /// When the last keystroke happened (egui time), while a text edit is pending.
    edited_at: Option<f64>,
}

/// Seconds to wait after the last keystroke before filtering.
const SETTLE: f64 = 0.35;

impl FilterForm {
    /// The filter, or what is wrong with a time the user typed.
    pub fn to_filter(&self) -> Result<LogFilter, String> {
        let time = |text: &str, what: &str| -> Result<_, String> {
            match text.trim() {
                "" => Ok(None),
                text => parse_local_time(text)
                    .map(Some)
                    .map_err(|error| format!("{what}: {error}")),
            }
        };
        let context = match (self.context_field.trim(), self.context_value.trim()) {
            ("", _) | (_, "") => Vec::new(),
            (field, value) => vec![(field.to_owned(), value.to_owned())],
        };
        Ok(LogFilter {
            table: self.table.clone(),
            table_id: self.table_id,
            op: self.op,
            since: time(&self.since, "From")?,
            until: time(&self.until, "To")?,
            context,
            search: Some(self.search.trim().to_owned()).filter(|text| !text.is_empty()),
            ..LogFilter::default()
        })
    }

    /// True once a text edit has settled, so the filter should be applied.
    pub fn settled(&mut self, now: f64) -> bool {
        match self.edited_at {
            Some(at) if now - at >= SETTLE => {
                self.edited_at = None;
                true
            }
            _ => false,
        }
    }

    pub fn pending(&self) -> bool {
        self.edited_at.is_some()
    }
}

/// What the panel shows besides the form.
pub struct FilterFacts<'a> {
    pub tables: &'a [TableSummary],
    pub context_fields: &'a [String],
    /// Rows matching so far, and whether counting is done.
    pub matches: (u64, bool),
    /// A time the user typed that does not parse.
    pub problem: Option<&'a str>,
}

/// Draws the panel; returns true when the filter changed and applies now.
pub fn filters_ui(ui: &mut egui::Ui, form: &mut FilterForm, facts: &FilterFacts<'_>) -> bool {
    let mut apply_now = false;
    let now = ui.input(|input| input.time);
    let typed = |response: egui::Response, form: &mut FilterForm| {
        if response.changed() {
            form.edited_at = Some(now);
        }
        if response.lost_focus() && ui_enter(&response) {
            form.edited_at = Some(now - SETTLE);
        }
    };

    ui.heading("Tables");
    egui::ScrollArea::vertical()
        .id_salt("tables")
        .max_height(220.0)
        .show(ui, |ui| {
            let total: i64 = facts.tables.iter().map(|table| table.change_count).sum();
            if ui
                .selectable_label(
                    form.table.is_none(),
                    format!("All tables  {}", thousands(total as u64)),
                )
                .clicked()
            {
                form.table = None;
                form.table_id = None;
                apply_now = true;
            }
            for summary in facts.tables {
                let selected = form.table.as_ref() == Some(&summary.table)
                    && form.table_id.is_none_or(|id| id == summary.id);
                let label = format!(
                    "{}  {}",
                    summary.label(),
                    thousands(summary.change_count as u64)
                );
                ui.horizontal(|ui| {
                    if ui.selectable_label(selected, label).clicked() {
                        (form.table, form.table_id) = match selected {
                            true => (None, None),
                            false => (Some(summary.table.clone()), Some(summary.id)),
                        };
                        apply_now = true;
                    }
                    if let Some(note) = summary.schema.identity_note() {
                        let warning = RichText::new("partial")
                            .small()
                            .color(ui.visuals().warn_fg_color);
                        ui.label(warning).on_hover_text(note);
                    }
                });
            }
        });
    ui.separator();

    ui.heading("Filters");
    let search_id = egui::Id::unique("search");
    if ui.input_mut(|input| input.consume_key(Modifiers::COMMAND, Key::F)) {
        ui.memory_mut(|memory| memory.request_focus(search_id));
    }
    let label = ui.label("Search keys and values");
    let search = ui.add(
        egui::TextEdit::singleline(&mut form.search)
            .id(search_id)
            .hint_text("Ctrl+F"),
    );
    typed(search.labelled_by(label.id), form);

    let label = ui.label("Operation");
    egui::ComboBox::from_id_salt("operation")
        .selected_text(
            form.op
                .map_or("Any operation".to_owned(), |op| op.to_string()),
        )
        .show_ui(ui, |ui| {
            if ui
                .selectable_label(form.op.is_none(), "Any operation")
                .clicked()
            {
                form.op = None;
                apply_now = true;
            }
            for op in Op::ALL {
                if ui
                    .selectable_label(form.op == Some(op), op.as_str())
                    .clicked()
                {
                    form.op = Some(op);
                    apply_now = true;
                }
            }
        })
        .response
        .labelled_by(label.id);

    let label = ui.label("From");
    let since =
        ui.add(egui::TextEdit::singleline(&mut form.since).hint_text("2h, 2026-11-23 02:00, …"));
    typed(since.labelled_by(label.id), form);
    let label = ui.label("To");
    let until = ui.add(egui::TextEdit::singleline(&mut form.until).hint_text("now"));
    typed(until.labelled_by(label.id), form);
    if !(form.since.is_empty() && form.until.is_empty()) && ui.button("Any time").clicked() {
        form.since.clear();
        form.until.clear();
        apply_now = true;
    }

    let label = ui.label("Context field");
    egui::ComboBox::from_id_salt("context-field")
        .selected_text(match form.context_field.as_str() {
            "" => "any",
            field => field,
        })
        .show_ui(ui, |ui| {
            if ui
                .selectable_label(form.context_field.is_empty(), "any")
                .clicked()
            {
                form.context_field.clear();
                apply_now = true;
            }
            for field in facts.context_fields {
                if ui
                    .selectable_label(form.context_field == *field, field)
                    .clicked()
                {
                    form.context_field.clone_from(field);
                    apply_now = true;
                }
            }
        })
        .response
        .labelled_by(label.id);
    let label = ui.label("Context value");
    let value = ui.add(
        egui::TextEdit::singleline(&mut form.context_value).hint_text("ann, PUT /orders/7, …"),
    );
    typed(value.labelled_by(label.id), form);
    if let Some(problem) = facts.problem {
        ui.colored_label(ui.visuals().error_fg_color, problem);
    }
    ui.separator();
    let (count, complete) = facts.matches;
    let text = match complete {
        true if count == 1 => "1 change matches".to_owned(),
        true => format!("{} match", changes_text(count)),
        false => format!("{}+ changes match so far…", thousands(count)),
    };
    ui.label(RichText::new(text).strong());
    if form.settled(now) {
        apply_now = true;
    }
    if form.pending() {
        ui.ctx()
            .request_repaint_after(std::time::Duration::from_millis(100));
    }
    apply_now
}

fn ui_enter(response: &egui::Response) -> bool {
    response.ctx.input(|input| input.key_pressed(Key::Enter))
}

/// `1 change`, `2 changes`, `12,000 changes`.
pub fn changes_text(count: u64) -> String {
    match count {
        1 => "1 change".to_owned(),
        _ => format!("{} changes", thousands(count)),
    }
}

/// `1234567` → `1,234,567`.
pub fn thousands(value: u64) -> String {
    let digits = value.to_string();
    let mut out = String::new();
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // In tests a failed unwrap is a failed test.
mod tests {
    use super::*;

    #[test]
    fn numbers_get_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(10_000_000), "10,000,000");
    }

    #[test]
    fn form_becomes_a_filter() {
        let form = FilterForm {
            table: Some(TableName::new("public", "orders")),
            op: Some(Op::Update),
            context_field: "user".into(),
            context_value: " ann ".into(),
            search: "  ".into(),
            ..FilterForm::default()
        };
        let filter = form.to_filter().unwrap();
        assert_eq!(filter.context, vec![("user".to_owned(), "ann".to_owned())]);
        assert_eq!(filter.search, None);
        let bad = FilterForm {
            since: "yesterday".into(),
            ..FilterForm::default()
        };
        assert!(bad.to_filter().unwrap_err().starts_with("From: "));
    }
}
