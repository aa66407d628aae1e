//! The Export… dialog: the timeline as filtered, or the related story open in the detail panel,
//! as a Markdown or HTML report or CSV, written to a file by a reader thread.

use std::path::PathBuf;

use crate::history::report::Format;
use crate::model::ChangeId;
use crate::store::LogFilter;

use super::fields::submitted;

/// What to export.
#[derive(Debug, Clone, PartialEq)]
pub enum ExportSource {
    /// The timeline's changes under this filter (at most `EXPORT_ROWS`).
    Timeline(Box<LogFilter>),
    /// The related history of this change's record.
    Story(ChangeId),
}

/// The most changes one export writes.
pub const EXPORT_ROWS: usize = 100_000;

/// What the reader thread is asked to write.
#[derive(Debug, Clone, PartialEq)]
pub struct ExportRequest {
    pub source: ExportSource,
    pub format: Format,
    pub path: PathBuf,
    pub title: String,
}

#[derive(Debug)]
pub struct ExportDialog {
    pub timeline: LogFilter,
    /// The change whose related history is open, when it is.
    pub story: Option<(ChangeId, String)>,
    pub use_story: bool,
    pub format: Format,
    pub path: String,
    /// The last outcome: where it went, or why it did not.
    pub outcome: Option<Result<String, String>>,
    pub busy: bool,
}

impl ExportDialog {
    pub fn new(timeline: LogFilter, story: Option<(ChangeId, String)>, folder: PathBuf) -> Self {
        let use_story = story.is_some();
        let format = Format::Markdown;
        Self {
            timeline,
            story,
            use_story,
            format,
            path: folder
                .join(format!("rowtrail-export.{}", format.extension()))
                .display()
                .to_string(),
            outcome: None,
            busy: false,
        }
    }
}

pub enum ExportAction {
    Write(Box<ExportRequest>),
    Close,
}

pub fn export_ui(ctx: &egui::Context, dialog: &mut ExportDialog) -> Option<ExportAction> {
    let mut action = None;
    egui::Window::new("Export")
        .collapsible(false)
        .resizable(false)
        .anchor(egui::Align2::CENTER_CENTER, egui::Vec2::ZERO)
        .show(ctx, |ui| {
            ui.label("What");
            ui.radio_value(&mut dialog.use_story, false, "The timeline, as filtered");
            if let Some((_, what)) = &dialog.story {
                ui.radio_value(
                    &mut dialog.use_story,
                    true,
                    format!("The related history of {what}"),
                );
            }
            ui.add_space(6.0);
            ui.label("Format");
            ui.horizontal(|ui| {
                for format in Format::ALL {
                    if ui
                        .radio_value(&mut dialog.format, format, format.label())
                        .changed()
                    {
                        let path = PathBuf::from(&dialog.path).with_extension(format.extension());
                        dialog.path = path.display().to_string();
                    }
                }
            });
            ui.add_space(6.0);
            let label = ui.label("File");
            let field = ui
                .add(egui::TextEdit::singleline(&mut dialog.path).desired_width(420.0))
                .labelled_by(label.id);
            let enter = submitted(ui, &field);
            ui.add_space(6.0);
            match &dialog.outcome {
                Some(Ok(done)) => {
                    ui.label(
                        egui::RichText::new(done).color(egui::Color32::from_rgb(0x3a, 0x9a, 0x4a)),
                    );
                }
                Some(Err(error)) => {
                    ui.add(
                        egui::Label::new(
                            egui::RichText::new(error).color(ui.visuals().error_fg_color),
                        )
                        .wrap(),
                    );
                }
                None => {}
            }
            ui.horizontal(|ui| {
                let save = ui.add_enabled(!dialog.busy, egui::Button::new("Save export"));
                if (save.clicked() || enter) && !dialog.busy {
                    let (source, title) = match (&dialog.story, dialog.use_story) {
                        (Some((id, what)), true) => (
                            ExportSource::Story(*id),
                            format!("The story of {what} and the rows that point at it"),
                        ),
                        _ => (
                            ExportSource::Timeline(Box::new(dialog.timeline.clone())),
                            "Changes in the timeline".to_owned(),
                        ),
                    };
                    dialog.busy = true;
                    dialog.outcome = None;
                    action = Some(ExportAction::Write(Box::new(ExportRequest {
                        source,
                        format: dialog.format,
                        path: PathBuf::from(dialog.path.trim()),
                        title,
                    })));
                }
                if dialog.busy {
                    ui.spinner();
                }
                if ui.button("Close").clicked() {
                    action = Some(ExportAction::Close);
                }
            });
        });
    action
}
