//! Saved views: their list and the *New view* form at the top of the left panel, and an open
//! view's labelled timeline, which takes the timeline's place until it is closed.

use egui::{Color32, RichText};
use egui_extras::{Column, TableBuilder};

use crate::history::view::Movement;
use crate::model::{ChangeId, LinkSource, LoggedChange, SavedView, TableName};
use crate::store::TableSummary;

use super::fields::submitted;
use super::time_text::{Zone, clock};

/// At most this many changes of a view are shown, the newest.
pub const VIEW_ROWS: usize = 2_000;

/// The saved views of the open cache, the form for a new one, and the view that is open.
#[derive(Debug, Default)]
pub struct Views {
    pub saved: Vec<SavedView>,
    /// What links made from this cache name as its source.
    pub source: Option<LinkSource>,
    pub form: Option<ViewForm>,
    pub open: Option<OpenView>,
}

/// The *New view* form as the user fills it in.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ViewForm {
    pub name: String,
    pub table: Option<TableName>,
    pub predicate: String,
    /// `user=ann, endpoint=PUT /orders/7`.
    pub context: String,
    /// `plan, balance`.
    pub changed: String,
    /// Why the last save was refused.
    pub problem: Option<String>,
    /// A save is under way.
    pub saving: bool,
}

impl ViewForm {
    /// The view the form describes, or what is missing.
    pub fn to_view(&self) -> Result<SavedView, String> {
        let name = self.name.trim();
        if name.is_empty() {
            return Err("Give the view a name".to_owned());
        }
        let table = self.table.clone().ok_or("Choose a table")?;
        if self.predicate.trim().is_empty() {
            return Err("Write which rows are in the view, e.g. plan = 'pro'".to_owned());
        }
        let context = split_list(&self.context)
            .map(|pair| {
                pair.split_once('=')
                    .map(|(field, value)| (field.trim().to_owned(), value.trim().to_owned()))
                    .filter(|(field, _)| !field.is_empty())
                    .ok_or_else(|| format!("Context '{pair}' is not FIELD=VALUE, e.g. user=ann"))
            })
            .collect::<Result<_, _>>()?;
        Ok(SavedView {
            name: name.to_owned(),
            tables: vec![table],
            predicate: self.predicate.trim().to_owned(),
            context,
            changed: split_list(&self.changed).map(str::to_owned).collect(),
        })
    }
}

fn split_list(text: &str) -> impl Iterator<Item = &str> {
    text.split(',')
        .map(str::trim)
        .filter(|part| !part.is_empty())
}

/// An open view and its timeline, newest first, once read.
#[derive(Debug)]
pub struct OpenView {
    pub view: SavedView,
    pub rows: Option<Result<ViewRows, String>>,
    /// Its link was just copied (said beside the button).
    pub copied: bool,
}

/// A view's timeline as read: its newest changes, at most `VIEW_ROWS`.
#[derive(Debug)]
pub struct ViewRows {
    pub changes: Vec<(LoggedChange, Movement)>,
}

/// What the user did in the views list or an open view.
#[derive(Debug, Clone, PartialEq)]
pub enum ViewsAction {
    Open(SavedView),
    Save(SavedView),
    Remove(String),
    Copy(String),
    Close,
    OpenChange(ChangeId),
}

/// The list of saved views and the *New view* form; `prefill` is what *New view…* starts from
/// (the filters in use).
pub fn views_ui(
    ui: &mut egui::Ui,
    views: &mut Views,
    tables: &[TableSummary],
    prefill: impl FnOnce() -> ViewForm,
) -> Option<ViewsAction> {
    let mut action = None;
    ui.horizontal(|ui| {
        ui.label(RichText::new("Views").strong());
        if views.form.is_none()
            && ui
                .small_button("New view…")
                .on_hover_text(
                    "A named set of rows (a table and a condition on its values) whose timeline \
                     says which changes made rows enter, leave or update inside it",
                )
                .clicked()
        {
            views.form = Some(prefill());
        }
    });
    if views.saved.is_empty() && views.form.is_none() {
        ui.weak("No saved views yet.");
    }
    let open_name = views.open.as_ref().map(|open| open.view.name.clone());
    for view in &views.saved {
        let selected = open_name.as_deref() == Some(view.name.as_str());
        let tables: Vec<String> = view.tables.iter().map(TableName::short).collect();
        let response = ui
            .add(egui::Button::selectable(selected, view.name.as_str()).truncate())
            .on_hover_text(format!("{} where {}", tables.join(", "), view.predicate));
        if response.clicked() {
            action = Some(ViewsAction::Open(view.clone()));
        }
    }
    if let Some(form) = views.form.as_mut() {
        let mut close = false;
        egui::Frame::group(ui.style()).show(ui, |ui| {
            ui.label(RichText::new("New view").strong());
            egui::Grid::new("new-view")
                .num_columns(2)
                .spacing([6.0, 4.0])
                .show(ui, |ui| {
                    let label = ui.label("Name");
                    ui.add(
                        egui::TextEdit::singleline(&mut form.name)
                            .hint_text("pro customers")
                            .desired_width(150.0),
                    )
                    .labelled_by(label.id);
                    ui.end_row();
                    let label = ui.label("Table");
                    let shown = form
                        .table
                        .as_ref()
                        .map_or_else(|| "choose…".to_owned(), TableName::short);
                    egui::ComboBox::from_id_salt("new-view-table")
                        .selected_text(shown)
                        .width(150.0)
                        .show_ui(ui, |ui| {
                            let mut names: Vec<&TableName> =
                                tables.iter().map(|summary| &summary.table).collect();
                            names.dedup();
                            for table in names {
                                ui.selectable_value(
                                    &mut form.table,
                                    Some(table.clone()),
                                    table.short(),
                                );
                            }
                        })
                        .response
                        .labelled_by(label.id);
                    ui.end_row();
                    let label = ui.label("Where");
                    let predicate = ui
                        .add(
                            egui::TextEdit::singleline(&mut form.predicate)
                                .hint_text("plan = 'pro' and balance > 100")
                                .desired_width(150.0),
                        )
                        .labelled_by(label.id);
                    if submitted(ui, &predicate) && !form.saving {
                        match form.to_view() {
                            Ok(view) => action = Some(ViewsAction::Save(view)),
                            Err(problem) => form.problem = Some(problem),
                        }
                    }
                    ui.end_row();
                    let label = ui.label("Context");
                    ui.add(
                        egui::TextEdit::singleline(&mut form.context)
                            .hint_text("user=ann (optional)")
                            .desired_width(150.0),
                    )
                    .labelled_by(label.id);
                    ui.end_row();
                    let label = ui.label("Changed");
                    ui.add(
                        egui::TextEdit::singleline(&mut form.changed)
                            .hint_text("columns (optional)")
                            .desired_width(150.0),
                    )
                    .labelled_by(label.id);
                    ui.end_row();
                });
            if let Some(problem) = &form.problem {
                ui.add(
                    egui::Label::new(RichText::new(problem).color(ui.visuals().warn_fg_color))
                        .wrap(),
                );
            }
            ui.horizontal(|ui| {
                let save = ui.add_enabled(!form.saving, egui::Button::new("Save view"));
                if save.clicked() {
                    match form.to_view() {
                        Ok(view) => action = Some(ViewsAction::Save(view)),
                        Err(problem) => form.problem = Some(problem),
                    }
                }
                if ui.button("Cancel").clicked() {
                    close = true;
                }
                if form.saving {
                    ui.spinner();
                }
            });
        });
        if close {
            views.form = None;
        }
    }
    action
}

/// An open view's timeline, with its definition, link and the buttons to close or remove it.
pub fn view_timeline_ui(
    ui: &mut egui::Ui,
    open: &OpenView,
    source: Option<&LinkSource>,
    opened: Option<ChangeId>,
    zone: Zone,
) -> Option<ViewsAction> {
    let mut action = None;
    let view = &open.view;
    let tables: Vec<String> = view.tables.iter().map(TableName::short).collect();
    ui.horizontal_wrapped(|ui| {
        ui.label(RichText::new(format!("View {}", view.name)).strong());
        ui.label(format!("{} where {}", tables.join(", "), view.predicate));
        for (field, value) in &view.context {
            ui.weak(format!("· {field}={value}"));
        }
        if !view.changed.is_empty() {
            ui.weak(format!("· changed {}", view.changed.join(", ")));
        }
    });
    ui.horizontal(|ui| {
        if ui.button("Close view").clicked() {
            action = Some(ViewsAction::Close);
        }
        if let Some(source) = source
            && ui
                .button("Copy link")
                .on_hover_text(
                    "A rowtrail:// link that reopens this view with rowtrail open, \
                     on any machine with a cache of the same database",
                )
                .clicked()
        {
            action = Some(ViewsAction::Copy(view.link(source)));
        }
        if open.copied {
            ui.weak("Copied: rowtrail open CACHE 'LINK' reopens this view");
        }
        if ui.button("Delete view").clicked() {
            action = Some(ViewsAction::Remove(view.name.clone()));
        }
    });
    ui.separator();
    let rows = match &open.rows {
        None => {
            ui.horizontal(|ui| {
                ui.spinner();
                ui.label("Reading the view's history…");
            });
            return action;
        }
        Some(Err(error)) => {
            ui.add(egui::Label::new(RichText::new(error).color(ui.visuals().warn_fg_color)).wrap());
            return action;
        }
        Some(Ok(rows)) => rows,
    };
    ui.weak(match rows.changes.len() {
        0 => "No row was ever in this view.".to_owned(),
        VIEW_ROWS => {
            format!("The newest {VIEW_ROWS} changes that entered, left or updated inside the view")
        }
        count => format!(
            "{} entered, left or updated inside the view",
            super::filters::changes_text(count as u64)
        ),
    });
    let row_height = 22.0;
    TableBuilder::new(ui)
        .id_salt("view-timeline")
        .striped(true)
        .resizable(true)
        .sense(egui::Sense::click())
        .cell_layout(egui::Layout::left_to_right(egui::Align::Center))
        .column(Column::initial(150.0).at_least(60.0).clip(true))
        .column(Column::initial(64.0).at_least(50.0).clip(true))
        .column(Column::initial(70.0).at_least(40.0).clip(true))
        .column(Column::initial(120.0).at_least(50.0).clip(true))
        .column(Column::initial(110.0).at_least(50.0).clip(true))
        .column(Column::initial(150.0).at_least(50.0).clip(true))
        .column(Column::remainder().at_least(60.0).clip(true))
        .header(row_height, |mut header| {
            for title in ["Time", "View", "Op", "Table", "Key", "Who", "Changed"] {
                header.col(|ui| {
                    ui.label(RichText::new(title).strong().size(12.0));
                });
            }
        })
        .body(|body| {
            body.rows(row_height, rows.changes.len(), |mut row| {
                let Some((change, movement)) = rows.changes.get(row.index()) else {
                    return;
                };
                row.set_selected(opened == Some(change.id));
                let label = RichText::new(movement.as_str()).strong();
                let label = match movement {
                    Movement::Enter => label.color(Color32::from_rgb(0x3a, 0x9a, 0x4a)),
                    Movement::Leave => label.color(Color32::from_rgb(0xc8, 0x45, 0x3a)),
                    Movement::Update => label,
                };
                let cells = [
                    RichText::new(clock(change.tx.committed_at, zone)),
                    label,
                    RichText::new(change.change.op.to_string()),
                    RichText::new(change.table.short()),
                    RichText::new(change.key_text()),
                    RichText::new(change.context_text()),
                    RichText::new(change.changed_text()),
                ];
                let mut clicked = false;
                for text in cells {
                    let (_, response) = row.col(|ui| {
                        ui.add(egui::Label::new(text).truncate().selectable(false));
                    });
                    clicked |= response.clicked();
                }
                if clicked || row.response().clicked() {
                    action = Some(ViewsAction::OpenChange(change.id));
                }
            });
        });
    action
}
