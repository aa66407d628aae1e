//! Small helpers for text fields shared by the panels.

use egui::{Key, Modifiers};

/// True when Enter was pressed in this single-line field. The field has given up its focus, and
/// the key is consumed, so nothing drawn after it (the timeline) acts on it too.
pub fn submitted(ui: &egui::Ui, response: &egui::Response) -> bool {
    response.lost_focus() && ui.input_mut(|input| input.consume_key(Modifiers::NONE, Key::Enter))
}
