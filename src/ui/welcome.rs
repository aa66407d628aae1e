//! The welcome screen: connect a database, open an audit database, try the demo, open a cache
//! file, or pick a recent cache.

use std::path::{Path, PathBuf};

use egui::RichText;

/// What the welcome screen keeps between frames.
#[derive(Debug, Clone, Default)]
pub struct Welcome {
    pub path: String,
}

/// What the user chose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WelcomeAction {
    Open(PathBuf),
    /// Choose a cache file in the desktop's file dialog.
    Browse,
    Connect,
    /// Import a database's existing audit store.
    OpenAudit,
    Demo,
}

pub fn welcome_ui(
    ui: &mut egui::Ui,
    welcome: &mut Welcome,
    recent: &[PathBuf],
    demo_starting: bool,
) -> Option<WelcomeAction> {
    let mut action = None;
    ui.vertical_centered(|ui| {
        ui.add_space(48.0);
        ui.heading(RichText::new("rowtrail").size(32.0));
        ui.label("The history of the data in your PostgreSQL database: what changed, when, by whom, and how to put it back.");
        ui.add_space(24.0);
        ui.horizontal(|ui| {
            // Centred: the row is as wide as its two buttons.
            let width = 430.0_f32.min(ui.available_width());
            ui.add_space(((ui.available_width() - width) / 2.0).max(0.0));
            if ui.button(RichText::new("Connect a database…").size(16.0)).clicked() {
                action = Some(WelcomeAction::Connect);
            }
            let audit = ui
                .button(RichText::new("Open audit database…").size(16.0))
                .on_hover_text("A database that already keeps history in an audit table (the wiki's audit trigger, Bemi, supa_audit, pgMemento, PaperTrail): import it");
            if audit.clicked() {
                action = Some(WelcomeAction::OpenAudit);
            }
        });
        ui.add_space(8.0);
        match demo_starting {
            true => {
                ui.horizontal(|ui| {
                    ui.spinner();
                    ui.label("Starting the demo: a private PostgreSQL with a small shop…");
                });
            }
            false => {
                let demo = ui.button("Try the demo").on_hover_text(
                    "Starts a private PostgreSQL with a small shop, captures it, and keeps changing it",
                );
                if demo.clicked() {
                    action = Some(WelcomeAction::Demo);
                }
            }
        }
        ui.add_space(16.0);
        ui.label("or open a cache file, or a shared store by its postgres:// URL");
        ui.horizontal(|ui| {
            let label = ui.label("Cache file to open");
            let field = ui.add(egui::TextEdit::singleline(&mut welcome.path).desired_width(360.0).hint_text("/path/to/shop.rowtrail or postgres://host/store"));
            let field = field.labelled_by(label.id);
            let entered = super::fields::submitted(ui, &field);
            if (ui.button("Open").clicked() || entered) && !welcome.path.trim().is_empty() {
                action = Some(WelcomeAction::Open(PathBuf::from(welcome.path.trim())));
            }
            if ui.button("Browse…").on_hover_text("Choose a cache file").clicked() {
                action = Some(WelcomeAction::Browse);
            }
        });
        if !recent.is_empty() {
            ui.add_space(24.0);
            ui.label(RichText::new("Recent caches").strong());
            for path in recent {
                let exists = Path::new(path).exists()
                    || path.to_str().is_some_and(crate::shared::is_store_url);
                let button = ui.add_enabled(exists, egui::Button::new(path.display().to_string()).frame(false));
                if button.clicked() {
                    action = Some(WelcomeAction::Open(path.clone()));
                }
            }
        }
    });
    action
}
