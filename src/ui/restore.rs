//! The restore dialog: the generated script (highlighted), the later changes it may run into, and
//! Copy, Save as .sql, and Run on source — which asks for confirmation first.

use std::path::PathBuf;

use egui::{FontId, RichText};

use crate::capture::conninfo::Password;
use crate::restore::{Script, later_note};

use super::sql_highlight::{Palette, highlight};

/// The dialog's state.
#[derive(Debug)]
pub struct RestoreDialog {
    pub script: ScriptState,
    pub save_path: String,
    pub run: RunForm,
    pub notice: Option<String>,
}

#[derive(Debug)]
pub enum ScriptState {
    Writing,
    Ready(Box<Script>),
    Failed(String),
}

/// Where to run the script, and how it went.
#[derive(Debug, Default)]
pub struct RunForm {
    pub url: String,
    pub password: Password,
    pub confirming: bool,
    pub running: bool,
    pub outcome: Option<Result<String, String>>,
}

/// What the user asked of the dialog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RestoreAction {
    Copy(String),
    Save(PathBuf, String),
    Run {
        url: String,
        password: Password,
        sql: String,
    },
    Close,
}

impl RestoreDialog {
    pub fn new(source_hint: String, save_path: String) -> Self {
        Self {
            script: ScriptState::Writing,
            save_path,
            run: RunForm {
                url: source_hint,
                ..RunForm::default()
            },
            notice: None,
        }
    }
}

pub fn restore_ui(ctx: &egui::Context, dialog: &mut RestoreDialog) -> Option<RestoreAction> {
    let mut action = None;
    let modal = egui::Modal::new(egui::Id::unique("restore-dialog")).show(ctx, |ui| {
        ui.set_width(ctx.content_rect().width().min(980.0) - 80.0);
        let script = match &dialog.script {
            ScriptState::Writing => {
                ui.horizontal(|ui| {
                    ui.spinner();
                    ui.label("Writing the script…");
                });
                if ui.button("Close").clicked() {
                    action = Some(RestoreAction::Close);
                }
                return;
            }
            ScriptState::Failed(error) => {
                ui.heading("No script");
                ui.colored_label(ui.visuals().error_fg_color, error);
                if ui.button("Close").clicked() {
                    action = Some(RestoreAction::Close);
                }
                return;
            }
            ScriptState::Ready(script) => script.clone(),
        };
        ui.heading(&script.title);
        if !script.later.is_empty() {
            ui.colored_label(
                ui.visuals().warn_fg_color,
                "The cache knows later changes to the same rows:",
            );
            for later in &script.later {
                ui.label(RichText::new(later_note(later)).small());
            }
        }
        let palette = Palette::for_visuals(ui.visuals());
        let mut layouter = |ui: &egui::Ui, text: &dyn egui::TextBuffer, wrap_width: f32| {
            let mut job = highlight(text.as_str(), palette, FontId::monospace(12.0));
            job.wrap.max_width = wrap_width;
            ui.fonts_mut(|fonts| fonts.layout_job(job))
        };
        let mut shown = script.sql.as_str();
        egui::ScrollArea::vertical()
            .max_height(ctx.content_rect().height() * 0.5)
            .show(ui, |ui| {
                let label = ui.label(RichText::new("Restore script").weak());
                ui.add(
                    egui::TextEdit::multiline(&mut shown)
                        .code_editor()
                        .desired_width(f32::INFINITY)
                        .layouter(&mut layouter),
                )
                .labelled_by(label.id);
            });
        ui.horizontal(|ui| {
            if ui.button("Copy").clicked() {
                action = Some(RestoreAction::Copy(script.sql.clone()));
            }
            let label = ui.label("Save as");
            ui.add(egui::TextEdit::singleline(&mut dialog.save_path).desired_width(320.0))
                .labelled_by(label.id);
            if ui.button("Save as .sql").clicked() {
                action = Some(RestoreAction::Save(
                    PathBuf::from(dialog.save_path.trim()),
                    script.sql.clone(),
                ));
            }
        });
        if let Some(notice) = &dialog.notice {
            ui.label(notice);
        }
        ui.separator();
        run_ui(ui, &mut dialog.run, &script.sql, &mut action);
        ui.separator();
        if ui.button("Close").clicked() {
            action = Some(RestoreAction::Close);
        }
    });
    if modal.should_close() && !dialog.run.running {
        action = Some(RestoreAction::Close);
    }
    action
}

fn run_ui(ui: &mut egui::Ui, run: &mut RunForm, sql: &str, action: &mut Option<RestoreAction>) {
    ui.label(RichText::new("Run on source").strong());
    ui.horizontal(|ui| {
        let label = ui.label("Database");
        ui.add(egui::TextEdit::singleline(&mut run.url).desired_width(360.0))
            .labelled_by(label.id);
        let label = ui.label("Password");
        ui.add(
            egui::TextEdit::singleline(run.password.as_mut_string())
                .password(true)
                .desired_width(140.0),
        )
        .labelled_by(label.id);
    });
    if run.running {
        ui.horizontal(|ui| {
            ui.spinner();
            ui.label("Running the script in one transaction…");
        });
        return;
    }
    match &run.outcome {
        Some(Ok(message)) => {
            ui.colored_label(egui::Color32::from_rgb(0x3a, 0x9a, 0x4a), message);
        }
        Some(Err(message)) => {
            ui.colored_label(ui.visuals().error_fg_color, message);
        }
        None => {}
    }
    if !run.confirming {
        if ui.button("Run on source…").clicked() {
            run.confirming = true;
            run.outcome = None;
        }
        return;
    }
    ui.colored_label(
        ui.visuals().warn_fg_color,
        format!(
            "This runs the script on {} in one transaction. If any row changed since the cache saw it, nothing is changed.",
            crate::capture::conninfo::describe_target(&run.url)
        ),
    );
    ui.horizontal(|ui| {
        if ui.button("Run it").clicked() {
            run.confirming = false;
            run.running = true;
            *action = Some(RestoreAction::Run {
                url: run.url.clone(),
                password: run.password.clone(),
                sql: sql.to_owned(),
            });
        }
        if ui.button("Cancel").clicked() {
            run.confirming = false;
        }
    });
}
