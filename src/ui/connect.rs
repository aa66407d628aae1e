//! The connect dialog: a connection URL and a password (kept in memory only), the doctor's checks
//! as a checklist with the fix for each problem, the tables to capture, and the cache file.

use std::path::PathBuf;

use egui::RichText;

use crate::capture::conninfo::Password;
use crate::capture::doctor::{Report, Status};
use crate::model::{ColumnRule, Protection, TableName};

/// The dialog's state.
#[derive(Debug, Default)]
pub struct ConnectDialog {
    pub url: String,
    pub password: Password,
    pub checking: bool,
    pub report: Option<Result<Report, String>>,
    /// Tables to capture, as offered by the last check.
    pub tables: Vec<(TableName, bool)>,
    pub cache: String,
    /// The URL field takes the keyboard when the dialog opens.
    pub focus_url: bool,
    /// Audit stores the last check found in the database.
    pub stores: Vec<crate::import::FoundStore>,
    /// Column rules suggested by the last check, and whether each is chosen.
    pub rules: Vec<(ColumnRule, bool)>,
}

impl ConnectDialog {
    /// Takes the audit stores a check found: said at the top, and their own tables are not
    /// offered for capture ticked (capturing an audit table copies history into history).
    pub fn take_stores(&mut self, stores: Vec<crate::import::FoundStore>) {
        self.stores = stores;
        self.untick_stores();
    }

    /// Unticks the tables of the audit stores found (whichever of the check and the look
    /// answers first).
    fn untick_stores(&mut self) {
        for (table, checked) in &mut self.tables {
            let qualified = format!("{}.{}", table.schema, table.name);
            let of_a_store = table.schema == "pgmemento"
                || self.stores.iter().any(|store| {
                    store.table == qualified
                        || (table.schema == "public" && store.table == table.name)
                });
            if of_a_store {
                *checked = false;
            }
        }
    }
}

/// What the user asked of the dialog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectAction {
    Check {
        url: String,
        password: Password,
    },
    Start {
        url: String,
        password: Password,
        tables: Option<Vec<TableName>>,
        cache: PathBuf,
        /// Columns whose values must not reach the cache as they are.
        rules: Vec<ColumnRule>,
    },
    Copy(String),
    /// Choose the cache file in the desktop's save dialog, starting from this path.
    BrowseCache(String),
    /// Import this database's audit store instead (the URL and password go along).
    OpenAudit {
        url: String,
        password: Password,
    },
    Close,
}

impl ConnectDialog {
    /// Takes a doctor report: the checklist and the tables to offer.
    pub fn take_report(&mut self, report: Result<Report, String>) {
        self.checking = false;
        if let Ok(report) = &report {
            self.tables = report
                .tables
                .iter()
                .map(|table| (table.clone(), true))
                .collect();
            self.untick_stores();
            self.rules = report
                .sensitive
                .iter()
                .map(|rule| (rule.clone(), true))
                .collect();
        }
        self.report = Some(report);
    }
}

/// Where a new cache goes by default: `<data dir>/rowtrail/<database>.rowtrail`.
pub fn default_cache_path(database: &str) -> PathBuf {
    let base = std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".local/share")))
        .unwrap_or_else(std::env::temp_dir);
    let name: String = database
        .chars()
        .map(|c| match c.is_alphanumeric() || c == '-' || c == '_' {
            true => c,
            false => '_',
        })
        .collect();
    base.join("rowtrail").join(format!("{name}.rowtrail"))
}

pub fn connect_ui(ctx: &egui::Context, dialog: &mut ConnectDialog) -> Option<ConnectAction> {
    let mut action = None;
    let modal = egui::Modal::new(egui::Id::unique("connect-dialog")).show(ctx, |ui| {
        ui.set_width(ctx.content_rect().width().min(900.0) - 80.0);
        ui.heading("Connect a database");
        // Enter in the URL field checks, as the Check button does.
        let entered = super::fields::login_grid(
            ui,
            &super::fields::LoginLabels {
                grid: "connect-fields",
                url: "Connection URL",
                url_hint: "postgres://user@host:5432/db?sslmode=require",
                password: "Password",
            },
            &mut dialog.url,
            &mut dialog.password,
            &mut dialog.focus_url,
        );
        ui.label(
            RichText::new("The password stays in memory; it is never saved.")
                .weak()
                .small(),
        );
        if !dialog.stores.is_empty() {
            let found: Vec<String> = dialog
                .stores
                .iter()
                .map(|store| {
                    format!(
                        "{} ({}, {} rows)",
                        store.table,
                        store.format.name(),
                        crate::ui::thousands(store.rows().max(0) as u64)
                    )
                })
                .collect();
            ui.add(
                egui::Label::new(
                    RichText::new(format!(
                        "This database already keeps history in {}: Open audit database… imports it, with nothing to set up.",
                        found.join(", ")
                    ))
                    .color(ui.visuals().warn_fg_color),
                )
                .wrap(),
            );
        }
        ui.horizontal(|ui| {
            let check = ui.add_enabled(!dialog.checking, egui::Button::new("Check"));
            if check.clicked() || (entered && !dialog.checking) {
                dialog.checking = true;
                dialog.stores.clear();
                action = Some(ConnectAction::Check {
                    url: dialog.url.clone(),
                    password: dialog.password.clone(),
                });
            }
            if dialog.checking {
                ui.spinner();
                ui.label("Checking…");
            }
        });
        // The checklist and the tables can be long: they scroll, so the dialog's buttons stay
        // within the window.
        let body_height = (ctx.content_rect().height() - 360.0).max(140.0);
        match &dialog.report {
            None => {}
            Some(Err(error)) => {
                ui.add(
                    egui::Label::new(RichText::new(error).color(ui.visuals().error_fg_color))
                        .wrap(),
                );
            }
            Some(Ok(report)) => {
                egui::ScrollArea::vertical()
                    .id_salt("connect-body")
                    .max_height(body_height)
                    .auto_shrink([false, true])
                    .show(ui, |ui| {
                        checklist_ui(ui, report, &mut action);
                        tables_ui(ui, &mut dialog.tables);
                        rules_ui(ui, &mut dialog.rules);
                    });
                verdict_ui(ui, report);
                ui.horizontal(|ui| {
                    let label = ui.label("Cache file");
                    ui.add(egui::TextEdit::singleline(&mut dialog.cache).desired_width(420.0))
                        .labelled_by(label.id);
                    if ui.button("Browse…").clicked() {
                        action = Some(ConnectAction::BrowseCache(dialog.cache.clone()));
                    }
                });
                let chosen: Vec<TableName> = dialog
                    .tables
                    .iter()
                    .filter(|(_, checked)| *checked)
                    .map(|(table, _)| table.clone())
                    .collect();
                let ready = report.can_capture()
                    && report.slot_busy.is_none()
                    && !chosen.is_empty()
                    && !dialog.cache.trim().is_empty();
                if ui
                    .add_enabled(ready, egui::Button::new("Start capture"))
                    .clicked()
                {
                    let all = chosen.len() == dialog.tables.len();
                    action = Some(ConnectAction::Start {
                        url: dialog.url.clone(),
                        password: dialog.password.clone(),
                        tables: (!all).then_some(chosen),
                        cache: PathBuf::from(dialog.cache.trim()),
                        rules: dialog
                            .rules
                            .iter()
                            .filter(|(_, chosen)| *chosen)
                            .map(|(rule, _)| rule.clone())
                            .collect(),
                    });
                }
            }
        }
        ui.separator();
        ui.horizontal(|ui| {
            if ui.button("Close").clicked() {
                action = Some(ConnectAction::Close);
            }
            let audit = ui
                .button("Open audit database…")
                .on_hover_text("This database already keeps history in an audit table: import it instead of capturing");
            if audit.clicked() {
                action = Some(ConnectAction::OpenAudit {
                    url: dialog.url.clone(),
                    password: dialog.password.clone(),
                });
            }
        });
    });
    if modal.should_close() {
        action = Some(ConnectAction::Close);
    }
    action
}

fn checklist_ui(ui: &mut egui::Ui, report: &Report, action: &mut Option<ConnectAction>) {
    egui::ScrollArea::vertical()
        .id_salt("checks")
        .max_height(260.0)
        .auto_shrink([false, true])
        .show(ui, |ui| {
            for (index, check) in report.checks.iter().enumerate() {
                let (mark, color) = match check.status {
                    Status::Ok => ("ok", egui::Color32::from_rgb(0x3a, 0x9a, 0x4a)),
                    Status::Warn => ("warn", ui.visuals().warn_fg_color),
                    Status::Fail => ("FAIL", ui.visuals().error_fg_color),
                };
                ui.horizontal_wrapped(|ui| {
                    ui.colored_label(color, RichText::new(mark).strong().monospace());
                    ui.label(RichText::new(&check.topic).strong());
                    ui.label(&check.message);
                });
                if let Some(fix) = &check.fix {
                    ui.indent(("fix", index), |ui| {
                        ui.add(egui::Label::new(RichText::new(fix).monospace()).wrap());
                        if ui
                            .push_id(index, |ui| ui.small_button("Copy fix"))
                            .inner
                            .clicked()
                        {
                            *action = Some(ConnectAction::Copy(fix.clone()));
                        }
                    });
                }
            }
        });
}

/// Whether capture can start, in one line.
fn verdict_ui(ui: &mut egui::Ui, report: &Report) {
    let verdict = match (report.can_capture(), report.slot_busy) {
        (true, None) => RichText::new("Capture can run.").strong(),
        (true, Some(pid)) => RichText::new(format!(
            "Capture cannot start while another capture reads its slot (server process {pid}): stop that capture first."
        ))
        .strong()
        .color(ui.visuals().error_fg_color),
        (false, _) => RichText::new("Capture cannot run until the problems marked FAIL are fixed.")
            .strong()
            .color(ui.visuals().error_fg_color),
    };
    ui.add(egui::Label::new(verdict).wrap());
}

fn tables_ui(ui: &mut egui::Ui, tables: &mut [(TableName, bool)]) {
    ui.label(RichText::new("Tables to capture").strong());
    egui::ScrollArea::vertical()
        .id_salt("connect-tables")
        .max_height(160.0)
        .show(ui, |ui| {
            for (table, checked) in tables.iter_mut() {
                ui.checkbox(checked, table.to_string());
            }
        });
}

/// The column rules suggested for columns that look sensitive: ticked ones are kept out of the
/// cache (they cannot be changed once its history begins).
fn rules_ui(ui: &mut egui::Ui, rules: &mut [(ColumnRule, bool)]) {
    if rules.is_empty() {
        return;
    }
    ui.label(RichText::new("Sensitive columns").strong())
        .on_hover_text("These columns look sensitive. Ticked ones never reach the cache as they are; the rules are fixed when the cache's history begins.");
    for (rule, chosen) in rules.iter_mut() {
        let how = match rule.protection {
            Protection::Exclude => "leave out",
            Protection::Hash => "keep a keyed hash",
            Protection::Last4 => "keep the last four characters",
        };
        ui.checkbox(chosen, format!("{}: {how}", rule.pattern));
    }
}
