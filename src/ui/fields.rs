//! Small helpers for text fields shared by the panels.

use egui::{Key, Modifiers};

use crate::capture::conninfo::Password;

/// True when Enter was pressed in this single-line field. The field has given up its focus, and
/// the key is consumed, so nothing drawn after it (the timeline) acts on it too.
pub fn submitted(ui: &egui::Ui, response: &egui::Response) -> bool {
    response.lost_focus() && ui.input_mut(|input| input.consume_key(Modifiers::NONE, Key::Enter))
}

/// What a connection grid calls its two fields.
pub struct LoginLabels {
    pub grid: &'static str,
    pub url: &'static str,
    pub url_hint: &'static str,
    pub password: &'static str,
}

/// A connection URL and a password field in a grid, the URL taking the keyboard once when
/// `focus_url` is set. True when Enter was pressed in the URL field.
pub fn login_grid(
    ui: &mut egui::Ui,
    labels: &LoginLabels,
    url: &mut String,
    password: &mut Password,
    focus_url: &mut bool,
) -> bool {
    let mut entered = false;
    egui::Grid::new(labels.grid).num_columns(2).show(ui, |ui| {
        let label = ui.label(labels.url);
        let field = ui
            .add(
                egui::TextEdit::singleline(url)
                    .desired_width(480.0)
                    .hint_text(labels.url_hint),
            )
            .labelled_by(label.id);
        if std::mem::take(focus_url) {
            field.request_focus();
        }
        entered = submitted(ui, &field);
        ui.end_row();
        let label = ui.label(labels.password);
        ui.add(
            egui::TextEdit::singleline(password.as_mut_string())
                .password(true)
                .desired_width(240.0)
                .hint_text("empty: ~/.pgpass or PGPASSWORD"),
        )
        .labelled_by(label.id);
        ui.end_row();
    });
    entered
}
