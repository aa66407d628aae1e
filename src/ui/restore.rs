//! The restore dialog: the generated script (highlighted), the later changes its guards will stop
//! at (with a choice to undo them too), and Copy, Save as .sql, and Run on source — which asks for
//! confirmation first.

use std::path::PathBuf;

use egui::{FontId, RichText};

use crate::capture::conninfo::Password;
use crate::model::LoggedChange;
use crate::restore::Script;

use super::sql_highlight::{Palette, highlight};
use super::time_text::{Zone, clock};
use super::worker::ScriptRequest;

/// The dialog's state.
#[derive(Debug)]
pub struct RestoreDialog {
    /// What the script is for (asked again when Include later changes is switched).
    pub request: ScriptRequest,
    pub script: ScriptState,
    pub save_path: String,
    pub run: RunForm,
    pub notice: Option<String>,
    /// Write the other columns and leave those the cache's column rules protect as they are.
    pub leave_protected: bool,
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
    /// Write the script again, undoing the later changes too (or not).
    IncludeLater(bool),
    /// Write the script again, leaving the columns the cache's rules protect as they are.
    LeaveProtected,
    Close,
}

impl RestoreDialog {
    pub fn new(request: ScriptRequest, source_hint: String, save_path: String) -> Self {
        Self {
            request,
            script: ScriptState::Writing,
            save_path,
            run: RunForm {
                url: source_hint,
                ..RunForm::default()
            },
            notice: None,
            leave_protected: false,
        }
    }
}

/// A later change as people read it: `14:02:07 update of orders id=7 by user=ann: status, total`.
fn later_text(change: &LoggedChange, zone: Zone) -> String {
    let mut text = format!(
        "{}  {} of {} {}",
        clock(change.tx.committed_at, zone),
        change.change.op,
        change.table.short(),
        change.key_text()
    );
    let who = change.context_text();
    if !who.is_empty() {
        text.push_str(&format!(" by {who}"));
    }
    let changed = change.changed_text();
    if change.change.op == crate::model::Op::Update && !changed.is_empty() {
        text.push_str(&format!(": {changed}"));
    }
    text
}

pub fn restore_ui(
    ctx: &egui::Context,
    dialog: &mut RestoreDialog,
    zone: Zone,
) -> Option<RestoreAction> {
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
                ui.horizontal(|ui| {
                    if error.contains("protected by the cache's rule")
                        && !dialog.leave_protected
                        && ui
                            .button("Write the other columns")
                            .on_hover_text("Leave the columns the cache's rules exclude or mask as they are in the database")
                            .clicked()
                    {
                        action = Some(RestoreAction::LeaveProtected);
                    }
                    if ui.button("Close").clicked() {
                        action = Some(RestoreAction::Close);
                    }
                });
                return;
            }
            ScriptState::Ready(script) => script.clone(),
        };
        ui.add(egui::Label::new(RichText::new(&script.title).heading()).wrap());
        later_ui(ui, dialog, &script, zone, &mut action);
        let palette = Palette::for_visuals(ui.visuals());
        let mut layouter = |ui: &egui::Ui, text: &dyn egui::TextBuffer, wrap_width: f32| {
            let mut job = highlight(text.as_str(), palette, FontId::monospace(12.0));
            job.wrap.max_width = wrap_width;
            ui.fonts_mut(|fonts| fonts.layout_job(job))
        };
        let mut shown = script.sql.as_str();
        egui::ScrollArea::vertical()
            .max_height(
                (ctx.content_rect().height() - 480.0)
                    .clamp(120.0, ctx.content_rect().height() * 0.5),
            )
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

/// The later changes to the same rows: those the guards will stop at, in readable text, and the
/// choice to undo them too.
fn later_ui(
    ui: &mut egui::Ui,
    dialog: &RestoreDialog,
    script: &Script,
    zone: Zone,
    action: &mut Option<RestoreAction>,
) {
    let ScriptRequest::Undo { cascade, .. } = &dialog.request else {
        return;
    };
    let undone_later = script.undone.len();
    if script.later.is_empty() && !cascade {
        return;
    }
    let mut include = *cascade;
    if ui
        .checkbox(&mut include, "Include later changes")
        .on_hover_text("Undo the later changes to the same rows too, so the rows go back to how they were before the change")
        .changed()
    {
        *action = Some(RestoreAction::IncludeLater(include));
    }
    if *cascade {
        ui.label(format!(
            "The script undoes {} in all, the later ones included.",
            super::filters::changes_text(undone_later as u64)
        ));
        return;
    }
    let stopping: Vec<&LoggedChange> = script.stopping_changes().collect();
    let kept = script.later.len() - stopping.len();
    if !stopping.is_empty() {
        ui.add(
            egui::Label::new(
                RichText::new(format!(
                    "The guard will stop this script: {} changed the rows after the cache's version. Include them, or undo them first.",
                    match stopping.len() {
                        1 => "a later change".to_owned(),
                        count => format!("{count} later changes"),
                    }
                ))
                .color(ui.visuals().warn_fg_color),
            )
            .wrap(),
        );
        egui::ScrollArea::vertical()
            .id_salt("stopping")
            .max_height(120.0)
            .show(ui, |ui| {
                for change in stopping {
                    ui.add(egui::Label::new(format!("• {}", later_text(change, zone))).wrap());
                }
            });
    }
    if kept > 0 {
        ui.add(
            egui::Label::new(
                RichText::new(format!(
                    "{} to the same rows changed nothing this script checks; the script keeps {}.",
                    match kept {
                        1 => "A later change".to_owned(),
                        count => format!("{count} later changes"),
                    },
                    if kept == 1 { "it" } else { "them" }
                ))
                .weak(),
            )
            .wrap(),
        );
    }
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
