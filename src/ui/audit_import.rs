//! The *Open audit database* dialog: a database that already keeps history in an audit store
//! (the wiki's audit trigger, Bemi, supa_audit, pgMemento, PaperTrail). It looks for the stores rowtrail reads, shows
//! what each holds, and imports the chosen one into a cache, which then opens.

use std::path::PathBuf;

use egui::RichText;

use crate::capture::conninfo::Password;
use crate::import::{FoundStore, ImportSummary};

/// The dialog's state.
#[derive(Debug, Default)]
pub struct AuditDialog {
    pub url: String,
    pub password: Password,
    pub looking: bool,
    /// What the last look found (or why it could not look).
    pub found: Option<Result<Vec<FoundStore>, String>>,
    /// The database looked at, for the cache's name.
    pub database: Option<String>,
    pub choice: usize,
    pub cache: String,
    /// The cache field holds the dialog's suggestion (not something typed): choosing another
    /// store suggests again.
    pub cache_suggested: bool,
    pub importing: bool,
    /// Why the last import failed.
    pub error: Option<String>,
    /// The URL field takes the keyboard when the dialog opens.
    pub focus_url: bool,
    /// The store to choose when a look finds it (importing into an imported cache again).
    pub format: Option<crate::import::AuditFormat>,
    /// Look at once when the dialog is next drawn.
    pub look_now: bool,
    /// What the rowtrail shared store the last look found holds (`rowtrail capture --into`).
    pub shared: Option<String>,
}

/// What the user asked of the dialog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuditAction {
    Look {
        url: String,
        password: Password,
    },
    Import {
        url: String,
        password: Password,
        format: crate::import::AuditFormat,
        cache: PathBuf,
    },
    /// Choose the cache file in the desktop's save dialog, starting from this path.
    BrowseCache(String),
    /// Open the rowtrail shared store in the database, without importing anything.
    OpenStore {
        url: String,
        password: Password,
    },
    Close,
}

impl AuditDialog {
    /// The dialog with what the connect dialog already has typed.
    pub fn with_login(url: String, password: Password) -> Self {
        Self {
            url,
            password,
            focus_url: true,
            ..Self::default()
        }
    }

    /// Takes what a look found, and suggests a cache file for the store chosen: the one of the
    /// format asked for (importing into an imported cache again), else the first readable one.
    pub fn take_found(&mut self, found: Result<Vec<FoundStore>, String>, database: Option<String>) {
        self.looking = false;
        self.choice = found
            .as_ref()
            .ok()
            .and_then(|found| {
                found
                    .iter()
                    .position(|store| Some(store.format) == self.format)
                    .or_else(|| found.iter().position(|store| store.unreadable.is_none()))
            })
            .unwrap_or(0);
        self.error = None;
        self.database = database;
        self.found = Some(found);
        self.suggest_cache();
    }

    fn suggest_cache(&mut self) {
        let (Some(database), Some(Ok(found))) = (&self.database, &self.found) else {
            return;
        };
        if !self.cache.is_empty() && !self.cache_suggested {
            return;
        }
        if let Some(store) = found.get(self.choice) {
            let name = format!("{database}-{}", store.format.name());
            self.cache = super::connect::default_cache_path(&name)
                .display()
                .to_string();
            self.cache_suggested = true;
        }
    }
}

/// `1 change`, `2 changes`, `12,345 changes`.
fn count(number: u64, one: &str, many: &str) -> String {
    let word = if number == 1 { one } else { many };
    format!("{} {word}", crate::ui::thousands(number))
}

/// A line saying what an import did, for the notice.
pub fn summary_line(summary: &ImportSummary, from: &str) -> String {
    let mut line = match summary.changes {
        0 => format!("Nothing new to import from {from}: the cache has all it holds."),
        _ => format!(
            "Imported {} in {} from {from}.",
            count(summary.changes, "change", "changes"),
            count(summary.transactions, "transaction", "transactions")
        ),
    };
    if summary.skipped > 0 {
        line.push_str(&format!(
            " Skipped {} that could not be read; the first: {}",
            count(summary.skipped, "row", "rows"),
            summary.first_skipped.join("; ")
        ));
    }
    line
}

pub fn audit_ui(ctx: &egui::Context, dialog: &mut AuditDialog) -> Option<AuditAction> {
    let mut action = None;
    let modal = egui::Modal::new(egui::Id::unique("audit-dialog")).show(ctx, |ui| {
        ui.set_width(ctx.content_rect().width().min(900.0) - 80.0);
        ui.heading("Open an audit database");
        ui.add(
            egui::Label::new(
                "A database that keeps its history in an audit table (the PostgreSQL wiki's audit trigger, Bemi, supa_audit, pgMemento, PaperTrail): rowtrail imports it into a cache, with nothing to install on the database. A rowtrail shared store (capture --into) opens where it is.",
            )
            .wrap(),
        );
        let entered = super::fields::login_grid(
            ui,
            &super::fields::LoginLabels {
                grid: "audit-fields",
                url: "Audit database URL",
                url_hint: "postgres://user@host:5432/db",
                password: "Audit database password",
            },
            &mut dialog.url,
            &mut dialog.password,
            &mut dialog.focus_url,
        );
        let busy = dialog.looking || dialog.importing;
        let typed = !dialog.url.trim().is_empty();
        ui.horizontal(|ui| {
            let look = ui
                .add_enabled(!busy && typed, egui::Button::new("Look for audit stores"))
                .on_disabled_hover_text("Type the URL of the database that holds the audit store");
            let look_now = std::mem::take(&mut dialog.look_now);
            if look.clicked() || ((entered || look_now) && !busy && typed) {
                dialog.looking = true;
                dialog.found = None;
                dialog.shared = None;
                dialog.error = None;
                action = Some(AuditAction::Look {
                    url: dialog.url.clone(),
                    password: dialog.password.clone(),
                });
            }
            if dialog.looking {
                ui.spinner();
                ui.label("Looking…");
            }
        });
        let error_color = ui.visuals().error_fg_color;
        if let (Some(shared), false) = (&dialog.shared, dialog.looking) {
            ui.add_space(4.0);
            ui.horizontal(|ui| {
                ui.add(egui::Label::new(RichText::new(shared).strong()).wrap());
                if ui
                    .add_enabled(!busy, egui::Button::new("Open the shared store"))
                    .on_hover_text("Read its history where it is, page by page: nothing is copied")
                    .clicked()
                {
                    action = Some(AuditAction::OpenStore {
                        url: dialog.url.trim().to_owned(),
                        password: dialog.password.clone(),
                    });
                }
            });
        }
        match &dialog.found {
            None => {}
            Some(Err(error)) => {
                ui.add(egui::Label::new(RichText::new(error).color(error_color)).wrap());
            }
            Some(Ok(found)) if found.is_empty() && dialog.shared.is_some() => {}
            Some(Ok(found)) if found.is_empty() => {
                ui.add(
                    egui::Label::new(
                        RichText::new(
                            "No audit store found: no audit.logged_actions (the wiki's audit trigger), no changes table of Bemi's layout, no audit.record_version (supa_audit), no pgmemento.row_log, no versions table of PaperTrail's. To capture this database's own changes, use Connect a database instead.",
                        )
                        .color(error_color),
                    )
                    .wrap(),
                );
            }
            Some(Ok(found)) => {
                let found = found.clone();
                ui.label(RichText::new("Found").strong());
                let mut chosen = dialog.choice;
                for (index, store) in found.iter().enumerate() {
                    if let Some(why) = &store.unreadable {
                        let text = format!(
                            "{} — {}: this role cannot read it: {why}",
                            store.format.name(),
                            store.table
                        );
                        ui.add(egui::Label::new(RichText::new(text).color(error_color)).wrap());
                        continue;
                    }
                    let text = format!(
                        "{} — {}: {} about {}",
                        store.format.name(),
                        store.table,
                        count(store.rows().max(0) as u64, "row", "rows"),
                        count(store.tables.len() as u64, "table", "tables")
                    );
                    ui.radio_value(&mut chosen, index, text);
                    ui.indent(("audited", index), |ui| {
                        let shown: Vec<String> = store
                            .tables
                            .iter()
                            .take(8)
                            .map(|(table, rows)| {
                                format!("{table} ({})", crate::ui::thousands((*rows).max(0) as u64))
                            })
                            .collect();
                        let more = store.tables.len().saturating_sub(shown.len());
                        let mut line = shown.join(", ");
                        if more > 0 {
                            line.push_str(&format!(" and {more} more"));
                        }
                        ui.add(egui::Label::new(RichText::new(line).weak()).wrap());
                    });
                }
                if chosen != dialog.choice {
                    dialog.choice = chosen;
                    dialog.suggest_cache();
                }
                ui.horizontal(|ui| {
                    let label = ui.label("Cache file for the import");
                    let field = ui
                        .add(egui::TextEdit::singleline(&mut dialog.cache).desired_width(560.0))
                        .labelled_by(label.id);
                    if field.changed() {
                        dialog.cache_suggested = false;
                    }
                    if ui.button("Browse…").clicked() {
                        action = Some(AuditAction::BrowseCache(dialog.cache.clone()));
                    }
                });
                let ready = !busy
                    && !dialog.cache.trim().is_empty()
                    && found
                        .get(dialog.choice)
                        .is_some_and(|store| store.unreadable.is_none());
                ui.horizontal(|ui| {
                    if ui
                        .add_enabled(ready, egui::Button::new("Import and open"))
                        .on_disabled_hover_text("Name the cache file to import into")
                        .clicked()
                        && let Some(store) = found.get(dialog.choice)
                    {
                        dialog.importing = true;
                        dialog.error = None;
                        action = Some(AuditAction::Import {
                            url: dialog.url.clone(),
                            password: dialog.password.clone(),
                            format: store.format,
                            cache: PathBuf::from(dialog.cache.trim()),
                        });
                    }
                    if dialog.importing {
                        ui.spinner();
                        ui.label("Importing…");
                    }
                });
                ui.label(
                    RichText::new(
                        "An import goes on where it stopped: importing into the same cache again adds only what is new. rowtrail import --follow keeps a cache current.",
                    )
                    .weak()
                    .small(),
                );
            }
        }
        if let Some(error) = &dialog.error {
            ui.add(egui::Label::new(RichText::new(error).color(error_color)).wrap());
        }
        ui.separator();
        if ui.button("Close").clicked() {
            action = Some(AuditAction::Close);
        }
    });
    if modal.should_close() && !dialog.importing {
        action = Some(AuditAction::Close);
    }
    action
}
