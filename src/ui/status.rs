//! The status bar: the source, what capture is doing, how far behind it is, how fast changes
//! arrive, and how much WAL the slot keeps on the server.

use chrono::{DateTime, Utc};
use egui::RichText;

use crate::capture::CaptureEvent;
use crate::capture::doctor::human_bytes;

use super::time_text::Zone;

/// More retained WAL than this is shown as a warning.
const RETAINED_WARNING: i64 = 1 << 30;

/// What capture is doing.
#[derive(Debug, Clone, PartialEq)]
pub enum CaptureState {
    /// This app is not capturing into the open cache.
    Offline,
    Starting,
    Snapshotting {
        table: String,
        rows: u64,
        estimated: u64,
    },
    Streaming,
    Reconnecting {
        attempt: u32,
        error: String,
    },
    Stopped {
        error: Option<String>,
    },
}

/// The status bar's model, fed by capture events.
#[derive(Debug, Clone)]
pub struct CaptureStatus {
    pub state: CaptureState,
    /// Capture stopped because its slot was lost: it can go on after a gap with a new baseline.
    pub history_gap: bool,
    /// The newest commit stored, for the lag.
    pub last_commit: Option<DateTime<Utc>>,
    pub behind: bool,
    pub changes: u64,
    /// Changes per second, smoothed.
    pub rate: f64,
    pub retained_wal_bytes: Option<i64>,
    last_sample: Option<(f64, u64)>,
}

impl Default for CaptureStatus {
    fn default() -> Self {
        Self {
            state: CaptureState::Offline,
            history_gap: false,
            last_commit: None,
            behind: false,
            changes: 0,
            rate: 0.0,
            retained_wal_bytes: None,
            last_sample: None,
        }
    }
}

impl CaptureStatus {
    /// Takes one capture event; `now` is egui time in seconds. Returns true when new changes were
    /// stored (so the timeline should look for them).
    pub fn apply(&mut self, event: &CaptureEvent, now: f64) -> bool {
        match event {
            CaptureEvent::BaselineProgress {
                table,
                rows,
                estimated_rows,
            } => {
                self.state = CaptureState::Snapshotting {
                    table: table.to_string(),
                    rows: *rows,
                    estimated: *estimated_rows,
                };
            }
            CaptureEvent::BaselineDone { .. } => return true,
            CaptureEvent::Streaming { .. } => self.state = CaptureState::Streaming,
            CaptureEvent::Progress {
                stored,
                received,
                changes,
                last_commit_time,
                ..
            } => {
                self.behind = received > stored;
                self.last_commit = last_commit_time.or(self.last_commit);
                if let Some((then, before)) = self.last_sample {
                    let seconds = (now - then).max(0.001);
                    let sample = changes.saturating_sub(before) as f64 / seconds;
                    self.rate = 0.7 * self.rate + 0.3 * sample;
                }
                self.last_sample = Some((now, *changes));
                let grew = *changes > self.changes;
                self.changes = *changes;
                return grew;
            }
            CaptureEvent::SlotStatus { retained_wal_bytes } => {
                self.retained_wal_bytes = Some(*retained_wal_bytes)
            }
            CaptureEvent::Reconnecting { attempt, error, .. } => {
                self.state = CaptureState::Reconnecting {
                    attempt: *attempt,
                    error: error.clone(),
                };
            }
            CaptureEvent::Stopped { .. } => self.state = CaptureState::Stopped { error: None },
            _ => {}
        }
        false
    }

    /// Seconds between the newest stored commit and now, while capture is behind.
    pub fn lag_seconds(&self, now: DateTime<Utc>) -> f64 {
        match (self.behind, self.last_commit) {
            (true, Some(commit)) => (now - commit).num_milliseconds().max(0) as f64 / 1000.0,
            _ => 0.0,
        }
    }
}

/// What the user asked from the status bar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusAction {
    StopCapture,
    /// Start the capture that stopped again.
    Retry,
    /// Start it again with a new baseline, after a gap in the history.
    NewBaseline,
    ToggleUtc,
    /// Import what the audit store holds that the cache does not yet.
    ImportAgain,
}

/// The source, what capture is doing, and what it retains.
fn state_ui(
    ui: &mut egui::Ui,
    source: &str,
    imported: bool,
    store: bool,
    status: &CaptureStatus,
    zone: Zone,
) -> Option<StatusAction> {
    let mut action = None;
    ui.label(RichText::new(source).strong());
    ui.separator();
    let warn = ui.visuals().warn_fg_color;
    let error = ui.visuals().error_fg_color;
    match &status.state {
        // (An imported cache says so beside this, with Import new rows.)
        CaptureState::Offline if !imported && store => {
            ui.label("shared store").on_hover_text(
                "This window reads the store; captures publish into it. Changes published \
                 while it is open appear within a few seconds.",
            );
        }
        CaptureState::Offline if !imported => {
            ui.label("not capturing here").on_hover_text(
                "This window does not capture into this cache. Changes that a capture \
                 elsewhere (rowtrail capture in a terminal) stores into it appear within a few \
                 seconds.",
            );
        }
        CaptureState::Offline => {}
        CaptureState::Starting => {
            ui.spinner();
            ui.label("connecting…");
        }
        CaptureState::Snapshotting {
            table,
            rows,
            estimated,
        } => {
            ui.spinner();
            let percent = (*rows as f64 / (*estimated).max(1) as f64 * 100.0).min(100.0);
            ui.label(format!("snapshotting {table}: {percent:.0}%"));
        }
        CaptureState::Streaming => {
            ui.label(
                RichText::new("streaming")
                    .strong()
                    .color(egui::Color32::from_rgb(0x3a, 0x9a, 0x4a)),
            );
            ui.label(format!("lag {:.1} s", status.lag_seconds(zone.now)));
            ui.label(format!("{:.0} changes/s", status.rate));
        }
        CaptureState::Reconnecting {
            attempt,
            error: reason,
        } => {
            ui.spinner();
            ui.add(
                egui::Label::new(
                    RichText::new(format!("reconnecting (attempt {attempt}): {reason}"))
                        .color(warn),
                )
                .wrap(),
            );
        }
        CaptureState::Stopped { error: None } => {
            ui.label("capture stopped");
        }
        CaptureState::Stopped {
            error: Some(reason),
        } => {
            if status.history_gap {
                if ui
                    .button("Start a new baseline")
                    .on_hover_text("Capture goes on into this cache with a new baseline; its history says what is missing, from where it ended until now.")
                    .clicked()
                {
                    action = Some(StatusAction::NewBaseline);
                }
            } else if ui.button("Retry").clicked() {
                action = Some(StatusAction::Retry);
            }
            ui.add(
                egui::Label::new(RichText::new(format!("capture stopped: {reason}")).color(error))
                    .wrap(),
            );
        }
    }
    if let Some(bytes) = status.retained_wal_bytes {
        let text = format!("slot retains {} of WAL", human_bytes(bytes));
        match bytes > RETAINED_WARNING {
            true => ui.colored_label(warn, format!("warning: {text}")),
            false => ui.label(text),
        };
    }
    action
}

/// Draws the bar; `store` when the open history is a shared store rather than a file.
/// What the status bar says about where the open cache's history comes from and where it begins.
#[derive(Debug, Clone, Copy, Default)]
pub struct CacheNotes<'a> {
    /// The import that fed the cache, when an import did.
    pub import: Option<&'a crate::store::ImportState>,
    /// The newest prune: the history begins there.
    pub pruned: Option<&'a crate::store::maintenance::PruneEntry>,
}

pub fn status_ui(
    ui: &mut egui::Ui,
    source: &str,
    store: bool,
    notes: CacheNotes<'_>,
    importing: bool,
    status: &CaptureStatus,
    zone: Zone,
) -> Option<StatusAction> {
    let utc = zone.utc;
    let mut action = None;
    // The switches on the right first, so what is on the left wraps in the room that is left
    // instead of running over them.
    ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
        if ui
            .selectable_label(utc, "UTC")
            .on_hover_text("Show times in UTC")
            .clicked()
        {
            action = Some(StatusAction::ToggleUtc);
        }
        let capturing = matches!(
            status.state,
            CaptureState::Starting
                | CaptureState::Snapshotting { .. }
                | CaptureState::Streaming
                | CaptureState::Reconnecting { .. }
        );
        if capturing && ui.button("Stop capture").clicked() {
            action = Some(StatusAction::StopCapture);
        }
        ui.with_layout(
            egui::Layout::left_to_right(egui::Align::Center).with_main_wrap(true),
            |ui| {
                if let Some(import) = notes.import
                    && import_ui(ui, import, importing)
                {
                    action = Some(StatusAction::ImportAgain);
                }
                if let Some(pruned) = notes.pruned {
                    pruned_ui(ui, pruned, zone);
                }
                if let Some(chosen) =
                    state_ui(ui, source, notes.import.is_some(), store, status, zone)
                {
                    action = Some(chosen);
                }
            },
        );
    });
    action
}

/// Says where the history begins after a prune, and what became of what was before.
fn pruned_ui(ui: &mut egui::Ui, pruned: &crate::store::maintenance::PruneEntry, zone: Zone) {
    ui.label(
        egui::RichText::new(format!(
            "History from {}",
            super::time_text::clock(pruned.before, zone)
        ))
        .color(ui.visuals().warn_fg_color),
    )
    .on_hover_text(format!(
        "Older history was pruned on {} (rowtrail prune, or capture --retain): {} changes before this moment were folded into a baseline of {} rows, the state of every record then. The cache cannot show anything earlier.",
        pruned.pruned_at.get(..19).unwrap_or(&pruned.pruned_at).replace('T', " "),
        pruned.removed,
        pruned.kept
    ));
}

/// Says the history was imported from an audit store, and what that store does not record, the
/// way a table whose updates lack old values is marked *partial*; for a store in a database,
/// offers to import its new rows (true when asked).
fn import_ui(ui: &mut egui::Ui, import: &crate::store::ImportState, importing: bool) -> bool {
    let mut lacking = format!(
        "Imported from {} ({}). What that store does not record:",
        import.source, import.format
    );
    for fact in &import.lacking {
        lacking.push_str("\n• ");
        lacking.push_str(fact);
    }
    ui.label(
        egui::RichText::new(format!("imported ({})", import.format))
            .color(ui.visuals().warn_fg_color),
    )
    .on_hover_text(lacking);
    let in_a_database = import
        .format
        .parse::<crate::import::AuditFormat>()
        .is_ok_and(|format| !format.reads_a_file());
    in_a_database
        && ui
            .add_enabled(!importing, egui::Button::new("Import new rows"))
            .on_hover_text(format!(
                "Import what {} holds that this cache does not have yet",
                import.source
            ))
            .clicked()
}
