//! The left panel: tables with their change counts (following the filters), the filters
//! (search, operation, time range, context, picked values) that combine into the timeline's
//! filter, and the facets of what matches.

use chrono::{DateTime, Utc};
use egui::{Key, Modifiers, RichText};

use crate::model::Search;
use crate::model::{Op, TableName};
use crate::store::{Facets, LogFilter, TableSummary};

use super::fields::submitted;
use super::time_text::{Zone, typed, understood};

/// The filter as the user is editing it. Text fields apply a moment after typing stops.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FilterForm {
    pub table: Option<TableName>,
    /// Which of the tables of that name (a table dropped and created again is a new table).
    pub table_id: Option<i64>,
    pub op: Option<Op>,
    /// Times as typed, read in the zone times are shown in.
    pub since: String,
    pub until: String,
    /// A context field and the start of its value (`endpoint` and `PUT /orders`).
    pub context_field: String,
    pub context_value: String,
    pub search: String,
    /// Values picked from the facets, each an exact match.
    pub picks: Vec<Pick>,
    /// When the last keystroke happened (egui time), while a text edit is pending.
    edited_at: Option<f64>,
}

/// A value picked from the facets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pick {
    /// The context field has exactly this value.
    Context { field: String, value: String },
    /// An update changed this column.
    Changed(String),
}

impl Pick {
    fn label(&self) -> String {
        match self {
            Pick::Context { field, value } => format!("{field} = {value}"),
            Pick::Changed(column) => format!("changed {column}"),
        }
    }
}

/// Seconds to wait after the last keystroke before filtering.
const SETTLE: f64 = 0.35;

impl FilterForm {
    /// A *New view* form that starts from these filters: their table, and the context values
    /// and changed columns picked from the facets.
    pub fn view_form(&self) -> super::views::ViewForm {
        let mut context = Vec::new();
        let mut changed = Vec::new();
        for pick in &self.picks {
            match pick {
                Pick::Context { field, value } => context.push(format!("{field}={value}")),
                Pick::Changed(column) => changed.push(column.clone()),
            }
        }
        super::views::ViewForm {
            table: self.table.clone(),
            context: context.join(", "),
            changed: changed.join(", "),
            ..Default::default()
        }
    }

    /// The filter, or what is wrong with what the user typed. Times are read in `zone`.
    pub fn to_filter(&self, zone: Zone) -> Result<LogFilter, String> {
        let time = |text: &str, what: &str| -> Result<_, String> {
            match text.trim() {
                "" => Ok(None),
                text => zone
                    .parse(text)
                    .map(Some)
                    .map_err(|error| format!("{what}: {error}")),
            }
        };
        let context_prefixes = match (self.context_field.trim(), self.context_value.trim()) {
            ("", _) | (_, "") => Vec::new(),
            (field, value) => vec![(field.to_owned(), value.to_owned())],
        };
        let search = Search::parse(&self.search).map_err(|error| format!("Search: {error}"))?;
        let mut context = Vec::new();
        let mut changed = Vec::new();
        for pick in &self.picks {
            match pick {
                Pick::Context { field, value } => context.push((field.clone(), value.clone())),
                Pick::Changed(column) => changed.push(column.clone()),
            }
        }
        Ok(LogFilter {
            table: self.table.clone(),
            table_id: self.table_id,
            op: self.op,
            since: time(&self.since, "From")?,
            until: time(&self.until, "To")?,
            context,
            context_prefixes,
            changed,
            search: (!search.is_empty()).then_some(search),
            ..LogFilter::default()
        })
    }

    /// True when the filter narrows more than by table and operation (so table and operation
    /// counts come from the facets, not from the cache's totals).
    pub fn narrows(&self) -> bool {
        !(self.since.trim().is_empty()
            && self.until.trim().is_empty()
            && self.context_value.trim().is_empty()
            && self.search.trim().is_empty()
            && self.picks.is_empty())
    }

    /// Rewrites the times typed as dates in `from` into `to`, so they keep meaning the same
    /// moments when the display switches between local time and UTC. Relative times stay.
    pub fn rezone(&mut self, from: Zone, to: Zone) {
        for text in [&mut self.since, &mut self.until] {
            let Ok(moment) = from.parse(text) else {
                continue;
            };
            if to.parse(text).ok() != Some(moment) {
                *text = typed(moment, to);
            }
        }
    }

    /// Puts a time range into From and To, written in the zone times are shown in; the end is
    /// rounded up to the next second so the range holds all it covered.
    pub fn set_range(&mut self, from: DateTime<Utc>, to: DateTime<Utc>, zone: Zone) {
        let up = to + chrono::Duration::microseconds(999_999);
        self.since = typed(from, zone);
        self.until = typed(up, zone);
    }

    /// Adds a search term (unless the search has it already); returns true when it changed.
    pub fn add_search_term(&mut self, term: &str) -> bool {
        let current = Search::parse(&self.search).unwrap_or_default();
        let Ok(added) = Search::parse(term) else {
            return false;
        };
        if added.terms.iter().all(|term| current.terms.contains(term)) {
            return false;
        }
        self.search = match self.search.trim() {
            "" => term.to_owned(),
            text => format!("{text} {term}"),
        };
        true
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
    /// What is wrong with what the user typed.
    pub problem: Option<&'a str>,
    /// The facets of the current filter, once counted.
    pub facets: Option<&'a Facets>,
    pub zone: Zone,
}

/// Draws the panel; returns true when the filter changed and applies now.
pub fn filters_ui(ui: &mut egui::Ui, form: &mut FilterForm, facts: &FilterFacts<'_>) -> bool {
    let mut apply_now = false;
    let now = ui.input(|input| input.time);
    let typed_in = |ui: &egui::Ui, response: egui::Response, form: &mut FilterForm| {
        if response.changed() {
            form.edited_at = Some(now);
        }
        if submitted(ui, &response) {
            form.edited_at = Some(now - SETTLE);
        }
    };

    tables_ui(ui, form, facts, &mut apply_now);
    ui.separator();

    ui.heading("Filters");
    let search_id = egui::Id::unique("rowtrail-search");
    if ui.input_mut(|input| input.consume_key(Modifiers::COMMAND, Key::F)) {
        ui.memory_mut(|memory| memory.request_focus(search_id));
    }
    let label = ui
        .label("Search keys and values")
        .on_hover_text(SEARCH_HELP);
    let search = ui.add(
        egui::TextEdit::singleline(&mut form.search)
            .id(search_id)
            .hint_text("customer_id:42  id=7  or any text")
            .desired_width(f32::INFINITY),
    );
    let search = search.labelled_by(label.id).on_hover_text(SEARCH_HELP);
    typed_in(ui, search, form);

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

    for (title, which) in [("From", 0), ("To", 1)] {
        let label = ui.label(title);
        let (text, hint) = match which {
            0 => (&mut form.since, "2h, 12:50, 2026-11-23 02:00, …"),
            _ => (&mut form.until, "now"),
        };
        let field = ui.add(
            egui::TextEdit::singleline(text)
                .hint_text(hint)
                .desired_width(f32::INFINITY),
        );
        typed_in(ui, field.labelled_by(label.id), form);
        let text = match which {
            0 => &form.since,
            _ => &form.until,
        };
        if !text.trim().is_empty()
            && let Ok(moment) = facts.zone.parse(text)
        {
            ui.label(RichText::new(understood(moment, facts.zone)).weak().small());
        }
    }
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
        egui::TextEdit::singleline(&mut form.context_value)
            .hint_text("ann, PUT /orders, …  (matches the start)")
            .desired_width(f32::INFINITY),
    );
    typed_in(ui, value.labelled_by(label.id), form);
    picks_ui(ui, form, &mut apply_now);
    if let Some(problem) = facts.problem {
        ui.add(egui::Label::new(RichText::new(problem).color(ui.visuals().error_fg_color)).wrap());
    }
    ui.separator();
    let (count, complete) = facts.matches;
    let text = match complete {
        true if count == 1 => "1 change matches".to_owned(),
        true => format!("{} match", changes_text(count)),
        false => format!("{}+ changes match so far…", thousands(count)),
    };
    ui.label(RichText::new(text).strong());
    if let Some(facets) = facts.facets {
        facets_ui(ui, form, facets, &mut apply_now);
    }
    if form.settled(now) {
        apply_now = true;
    }
    if form.pending() {
        ui.ctx()
            .request_repaint_after(std::time::Duration::from_millis(100));
    }
    apply_now
}

const SEARCH_HELP: &str = "Terms combine with AND:\n\
    customer_id:42 — a value of that column, exactly (before or after the change)\n\
    orders.status:paid — the same, in one table\n\
    id=42 or order_id=7,line=2 — a record's key, as the Key column shows it\n\
    anything else — text a key or value contains\n\
    Quote values with spaces (name:\"Ann Lee\"), and text with : or = (\"http://shop\").";

fn tables_ui(ui: &mut egui::Ui, form: &mut FilterForm, facts: &FilterFacts<'_>, apply: &mut bool) {
    ui.heading("Tables");
    // With filters beyond table and operation, counts come from the facets of the filter.
    let counted = match (form.narrows() || form.op.is_some(), facts.facets) {
        (false, _) => Counted::Totals,
        (true, Some(facets)) => Counted::Facets(facets),
        (true, None) => Counted::Pending,
    };
    let count_text = |summary: Option<&TableSummary>| -> String {
        match (&counted, summary) {
            (Counted::Totals, Some(summary)) => thousands(summary.change_count.max(0) as u64),
            (Counted::Totals, None) => thousands(
                facts
                    .tables
                    .iter()
                    .map(|table| table.change_count.max(0) as u64)
                    .sum(),
            ),
            (Counted::Facets(facets), summary) => {
                let count = match summary {
                    Some(summary) => facets.tables.get(&summary.id).copied().unwrap_or(0),
                    None => facets.tables.values().sum(),
                };
                match facets.complete {
                    true => thousands(count),
                    false => format!("{}+", thousands(count)),
                }
            }
            (Counted::Pending, _) => "…".to_owned(),
        }
    };
    egui::ScrollArea::vertical()
        .id_salt("tables")
        .max_height(220.0)
        .show(ui, |ui| {
            if ui
                .selectable_label(
                    form.table.is_none(),
                    format!("All tables  {}", count_text(None)),
                )
                .clicked()
            {
                form.table = None;
                form.table_id = None;
                *apply = true;
            }
            for summary in facts.tables {
                let selected = form.table.as_ref() == Some(&summary.table)
                    && form.table_id.is_none_or(|id| id == summary.id);
                let label = format!("{}  {}", summary.label(), count_text(Some(summary)));
                ui.horizontal(|ui| {
                    if ui.selectable_label(selected, label).clicked() {
                        (form.table, form.table_id) = match selected {
                            true => (None, None),
                            false => (Some(summary.table.clone()), Some(summary.id)),
                        };
                        *apply = true;
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
    if matches!(counted, Counted::Facets(facets) if !facets.complete) {
        ui.label(
            RichText::new(format!(
                "Counts of the newest {} matching changes",
                thousands(facts.facets.map_or(0, |facets| facets.counted))
            ))
            .weak()
            .small(),
        );
    }
}

/// Where the table list's counts come from.
enum Counted<'a> {
    /// The cache's totals: no filter beyond the table.
    Totals,
    Facets(&'a Facets),
    /// The facets of the current filter are still being counted.
    Pending,
}

/// The values picked from the facets, each with a button that removes it.
fn picks_ui(ui: &mut egui::Ui, form: &mut FilterForm, apply: &mut bool) {
    if form.picks.is_empty() {
        return;
    }
    let mut removed = None;
    ui.horizontal_wrapped(|ui| {
        for (index, pick) in form.picks.iter().enumerate() {
            let label = pick.label();
            if ui
                .button(format!("{label}  ×"))
                .on_hover_text("Remove this filter")
                .clicked()
            {
                removed = Some(index);
            }
        }
    });
    if let Some(index) = removed {
        form.picks.remove(index);
        *apply = true;
    }
}

/// What the matching changes have in common; a click adds it to the filter.
fn facets_ui(ui: &mut egui::Ui, form: &mut FilterForm, facets: &Facets, apply: &mut bool) {
    let facet = |ui: &mut egui::Ui, label: String, count: u64, selected: bool| -> bool {
        ui.horizontal(|ui| {
            // Long values are cut to the panel (whole on hover) so they never widen it.
            let count = thousands(count);
            let reserve = 8.0 * count.len() as f32 + ui.spacing().item_spacing.x + 4.0;
            let clicked = ui
                .scope(|ui| {
                    ui.set_max_width((ui.available_width() - reserve).max(40.0));
                    let button =
                        ui.add(egui::Button::selectable(selected, label.as_str()).truncate());
                    let clicked = button.clicked();
                    button.on_hover_text(label.trim());
                    clicked
                })
                .inner;
            ui.label(RichText::new(count).weak());
            clicked
        })
        .inner
    };
    egui::CollapsingHeader::new("Operations")
        .default_open(true)
        .show(ui, |ui| {
            for (op, count) in &facets.ops {
                let selected = form.op == Some(*op);
                if facet(ui, op.to_string(), *count, selected) {
                    form.op = match selected {
                        true => None,
                        false => Some(*op),
                    };
                    *apply = true;
                }
            }
        });
    if !facets.context.is_empty() {
        egui::CollapsingHeader::new("Who and where")
            .default_open(true)
            .show(ui, |ui| {
                for (field, values) in &facets.context {
                    ui.label(RichText::new(field).strong());
                    for (value, count) in values {
                        let pick = Pick::Context {
                            field: field.clone(),
                            value: value.clone(),
                        };
                        let selected = form.picks.contains(&pick);
                        if facet(ui, format!("  {value}"), *count, selected) {
                            toggle(&mut form.picks, pick);
                            *apply = true;
                        }
                    }
                }
            });
    }
    if !facets.changed.is_empty() {
        egui::CollapsingHeader::new("Changed columns")
            .default_open(true)
            .show(ui, |ui| {
                for (column, count) in &facets.changed {
                    let pick = Pick::Changed(column.clone());
                    let selected = form.picks.contains(&pick);
                    if facet(ui, column.clone(), *count, selected) {
                        toggle(&mut form.picks, pick);
                        *apply = true;
                    }
                }
            });
    }
    if !facets.complete {
        ui.label(
            RichText::new(format!(
                "Facets of the newest {} matching changes",
                thousands(facets.counted)
            ))
            .weak()
            .small(),
        );
    }
}

fn toggle(picks: &mut Vec<Pick>, pick: Pick) {
    match picks.iter().position(|known| *known == pick) {
        Some(index) => {
            picks.remove(index);
        }
        None => picks.push(pick),
    }
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
    use crate::ui::Clock;

    fn zone(utc: bool) -> Zone {
        let now = DateTime::parse_from_rfc3339("2026-11-26T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        Clock::fixed(now, chrono::FixedOffset::east_opt(2 * 3600).unwrap()).zone(utc)
    }

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
            picks: vec![
                Pick::Context {
                    field: "job".into(),
                    value: "purge".into(),
                },
                Pick::Changed("price".into()),
            ],
            ..FilterForm::default()
        };
        let filter = form.to_filter(zone(false)).unwrap();
        assert_eq!(
            filter.context_prefixes,
            vec![("user".to_owned(), "ann".to_owned())]
        );
        assert_eq!(filter.context, vec![("job".to_owned(), "purge".to_owned())]);
        assert_eq!(filter.changed, vec!["price".to_owned()]);
        assert_eq!(filter.search, None);
        let bad = FilterForm {
            since: "yesterday".into(),
            ..FilterForm::default()
        };
        assert!(
            bad.to_filter(zone(false))
                .unwrap_err()
                .starts_with("From: ")
        );
        let bad = FilterForm {
            search: "status:".into(),
            ..FilterForm::default()
        };
        assert!(
            bad.to_filter(zone(false))
                .unwrap_err()
                .starts_with("Search: ")
        );
    }

    #[test]
    fn typed_times_are_read_in_the_zone_shown_and_follow_a_switch() {
        let mut form = FilterForm {
            since: "12:50".into(),
            until: "2h".into(),
            ..FilterForm::default()
        };
        let utc = form.to_filter(zone(true)).unwrap().since.unwrap();
        assert_eq!(utc.to_rfc3339(), "2026-11-26T12:50:00+00:00");
        let local = form.to_filter(zone(false)).unwrap().since.unwrap();
        assert_eq!(local.to_rfc3339(), "2026-11-26T10:50:00+00:00");
        form.rezone(zone(true), zone(false));
        assert_eq!(
            form.since, "2026-11-26 14:50:00",
            "the same moment, in local time"
        );
        assert_eq!(form.until, "2h", "relative times stay");
        assert_eq!(form.to_filter(zone(false)).unwrap().since, Some(utc));
    }

    #[test]
    fn search_terms_are_added_once() {
        let mut form = FilterForm::default();
        assert!(form.add_search_term("customer_id:42"));
        assert!(!form.add_search_term("customer_id:42"));
        assert!(form.add_search_term("name:\"Ann Lee\""));
        assert_eq!(form.search, "customer_id:42 name:\"Ann Lee\"");
    }
}
