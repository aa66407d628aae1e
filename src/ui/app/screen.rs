//! Draws the screen: banner and guide, the welcome screen or the open cache's panels (toolbar,
//! status bar, filters, detail, histogram and timeline), and the dialogs. What the user asks for
//! is collected as `Command`s.

use super::super::audit_import::{AuditAction, audit_ui};
use super::super::connect::{ConnectAction, connect_ui};
use super::super::detail::{DetailAction, detail_ui};
use super::super::export::{ExportAction, export_ui};
use super::super::filters::{FilterFacts, filters_ui};
use super::super::histogram::HistogramAction;
use super::super::restore::{RestoreAction, restore_ui};
use super::super::status::{CacheNotes, CaptureState, StatusAction, status_ui};
use super::super::timeline::{Highlight, TimelineAction, timeline_ui};
use super::super::views::{view_timeline_ui, views_ui};
use super::super::welcome::{WelcomeAction, welcome_ui};
use super::{Command, RowtrailApp};

/// The detail panel's share of the window: it starts at the first and may grow to the second.
const DETAIL_SHARE: (f32, f32) = (0.32, 0.55);
const DETAIL_MIN: f32 = 300.0;

impl RowtrailApp {
    /// Draws one frame and collects commands.
    pub(super) fn draw(&mut self, ui: &mut egui::Ui) {
        if let Some(banner) = self.banner.clone() {
            egui::Panel::top("banner").show(ui, |ui| {
                ui.horizontal(|ui| {
                    if ui.small_button("Dismiss").clicked() {
                        self.commands.push(Command::DismissBanner);
                    }
                    ui.add(
                        egui::Label::new(
                            egui::RichText::new(banner.as_str()).color(ui.visuals().error_fg_color),
                        )
                        .wrap(),
                    );
                });
            });
        }
        if let Some(notice) = self.notice.clone() {
            egui::Panel::top("notice").show(ui, |ui| {
                ui.horizontal(|ui| {
                    if ui.small_button("Dismiss").clicked() {
                        self.commands.push(Command::DismissNotice);
                    }
                    ui.add(egui::Label::new(notice.as_str()).wrap());
                });
            });
        }
        if let Some(guide) = self.guide.clone() {
            egui::Panel::top("guide").show(ui, |ui| {
                ui.horizontal_wrapped(|ui| {
                    ui.label(egui::RichText::new("Demo").strong());
                    ui.label(guide.as_str());
                    let (table, id) = crate::demo::STORY;
                    if ui
                        .small_button(format!("Open customer {id}'s story"))
                        .on_hover_text("Its changes and those of its orders, their items and its tickets, as one timeline")
                        .clicked()
                    {
                        self.commands.push(Command::OpenStory {
                            table: crate::model::TableName::new("public", table),
                            key: id.to_owned(),
                        });
                    }
                    if ui.small_button("Hide").clicked() {
                        self.commands.push(Command::DismissGuide);
                    }
                });
            });
        }
        if self.session.is_none() {
            self.welcome_screen(ui);
            self.dialogs(ui.ctx());
            return;
        }
        self.cache_screen(ui);
        self.dialogs(ui.ctx());
    }

    fn status_action(&mut self, action: Option<StatusAction>) {
        match action {
            Some(StatusAction::StopCapture) => self.commands.push(Command::StopCapture),
            Some(StatusAction::Retry) => self.commands.push(Command::RestartCapture {
                new_baseline: false,
            }),
            Some(StatusAction::NewBaseline) => self
                .commands
                .push(Command::RestartCapture { new_baseline: true }),
            Some(StatusAction::ToggleUtc) => self.commands.push(Command::ToggleUtc),
            Some(StatusAction::ImportAgain) => self.commands.push(Command::ImportAgain),
            None => {}
        }
    }

    fn welcome_screen(&mut self, ui: &mut egui::Ui) {
        let zone = self.zone();
        egui::CentralPanel::default_margins().show(ui, |ui| {
            let recent = &self.settings.recent;
            match welcome_ui(ui, &mut self.welcome, recent, self.demo_starting) {
                Some(WelcomeAction::Open(path)) => self.commands.push(Command::OpenCache(path)),
                Some(WelcomeAction::Browse) => self.commands.push(Command::BrowseCache),
                Some(WelcomeAction::Connect) => self.commands.push(Command::ShowConnect),
                Some(WelcomeAction::OpenAudit) => self.commands.push(Command::ShowAudit {
                    url: String::new(),
                    password: Default::default(),
                }),
                Some(WelcomeAction::Demo) => self.commands.push(Command::StartDemo),
                None => {}
            }
            if self.capturing_into.is_some()
                || matches!(self.status.state, CaptureState::Stopped { error: Some(_) })
            {
                ui.separator();
                let action = status_ui(
                    ui,
                    "capture",
                    false,
                    CacheNotes::default(),
                    false,
                    &self.status,
                    zone,
                );
                self.status_action(action);
            }
        });
    }

    fn cache_screen(&mut self, ui: &mut egui::Ui) {
        let zone = self.zone();
        let Some(session) = self.session.as_mut() else {
            return;
        };
        let mut commands = Vec::new();
        egui::Panel::top("toolbar").show(ui, |ui| {
            ui.horizontal(|ui| {
                if ui.button("Close cache").clicked() {
                    commands.push(Command::CloseCache);
                }
                if ui.button("Connect…").clicked() {
                    commands.push(Command::ShowConnect);
                }
                if ui
                    .button("Export…")
                    .on_hover_text("Write the timeline, or the related history open on the right, as a report or CSV")
                    .clicked()
                {
                    commands.push(Command::ShowExport);
                }
                if ui
                    .selectable_label(session.timeline.grouped, "Group by transaction")
                    .on_hover_text("Shade and separate transactions; fold a transaction to one row with its – button")
                    .clicked()
                {
                    commands.push(Command::ToggleGrouped);
                }
            });
        });
        let mut status_action = None;
        egui::Panel::bottom("status").show(ui, |ui| {
            let source = session.source.as_ref().map_or_else(
                || session.path.display().to_string(),
                |source| source.display.clone(),
            );
            let store = session
                .path
                .to_str()
                .is_some_and(crate::shared::is_store_url);
            status_action = status_ui(
                ui,
                &source,
                store,
                CacheNotes {
                    import: session.import.as_ref(),
                    pruned: session.pruned.as_ref(),
                },
                self.importing,
                &self.status,
                zone,
            );
        });
        egui::Panel::left("filters")
            .default_size(250.0)
            .size_range(200.0..=480.0)
            .resizable(true)
            .show(ui, |ui| {
                egui::ScrollArea::vertical().show(ui, |ui| {
                    let form = &session.form;
                    let prefill = || form.view_form();
                    if let Some(action) = views_ui(ui, &mut session.views, &session.tables, prefill)
                    {
                        commands.push(Command::Views(action));
                    }
                    ui.separator();
                    let facts = FilterFacts {
                        tables: &session.tables,
                        context_fields: &session.context_fields,
                        matches: (
                            session.timeline.shown_total(),
                            session.timeline.is_complete(),
                        ),
                        problem: session.filter_problem.as_deref(),
                        facets: session
                            .facets
                            .as_ref()
                            .filter(|(generation, _)| *generation == session.timeline.generation)
                            .map(|(_, facets)| facets),
                        zone,
                    };
                    if filters_ui(ui, &mut session.form, &facts) {
                        commands.push(Command::ApplyFilter);
                    }
                });
            });
        let width = ui.ctx().content_rect().width();
        let search = session.timeline.filter.search.clone();
        egui::Panel::right("detail")
            .default_size((width * DETAIL_SHARE.0).max(DETAIL_MIN))
            .size_range(DETAIL_MIN..=(width * DETAIL_SHARE.1).max(DETAIL_MIN))
            .resizable(true)
            .show(ui, |ui| {
                session.detail.imported = session.import.is_some();
                match detail_ui(ui, &mut session.detail, zone, search.as_ref()) {
                    Some(DetailAction::Open(id)) => commands.push(Command::Open(id)),
                    Some(DetailAction::RecordAt(change, moment)) => {
                        commands.push(Command::RecordAt(change, moment))
                    }
                    Some(DetailAction::Script(request)) => {
                        commands.push(Command::PrepareScript(request))
                    }
                    Some(DetailAction::Search(term)) => commands.push(Command::AddSearch(term)),
                    Some(DetailAction::Related(id)) => commands.push(Command::Related(id)),
                    None => {}
                }
            });
        egui::CentralPanel::default_margins().show(ui, |ui| {
            if let Some(open) = &session.views.open {
                let opened = session
                    .detail
                    .detail
                    .as_ref()
                    .map(|detail| detail.change.id);
                if let Some(action) =
                    view_timeline_ui(ui, open, session.views.source.as_ref(), opened, zone)
                {
                    commands.push(Command::Views(action));
                }
                return;
            }
            match session.histogram.ui(ui, zone) {
                Some(HistogramAction::SelectRange(from, to)) => {
                    commands.push(Command::SelectRange(from, to))
                }
                Some(HistogramAction::JumpTo(time)) => commands.push(Command::JumpTo(time)),
                Some(HistogramAction::ZoomOut) => commands.push(Command::ZoomOut),
                None => {}
            }
            ui.add_space(4.0);
            let highlight = Highlight {
                search: search.as_ref(),
            };
            match timeline_ui(ui, &mut session.timeline, zone, &highlight) {
                Some(TimelineAction::Open(id)) => commands.push(Command::Open(id)),
                Some(TimelineAction::FocusDetail) => commands.push(Command::FocusDetail),
                None => {}
            }
        });
        self.commands.extend(commands);
        self.status_action(status_action);
    }

    fn dialogs(&mut self, ctx: &egui::Context) {
        let zone = self.zone();
        if let Some(dialog) = self.connect.as_mut() {
            match connect_ui(ctx, dialog) {
                Some(ConnectAction::Check { url, password }) => {
                    self.commands.push(Command::CheckSource { url, password })
                }
                Some(ConnectAction::Start {
                    url,
                    password,
                    tables,
                    cache,
                    rules,
                }) => self.commands.push(Command::StartCapture {
                    url,
                    password,
                    tables,
                    cache,
                    rules,
                }),
                Some(ConnectAction::Copy(text)) => self.commands.push(Command::Copy(text)),
                Some(ConnectAction::Close) => self.commands.push(Command::CloseConnect),
                Some(ConnectAction::BrowseCache(current)) => {
                    self.commands.push(Command::BrowseNewCache(current))
                }
                Some(ConnectAction::OpenAudit { url, password }) => {
                    self.commands.push(Command::ShowAudit { url, password })
                }
                None => {}
            }
        }
        if let Some(dialog) = self.audit.as_mut() {
            match audit_ui(ctx, dialog) {
                Some(AuditAction::Look { url, password }) => self
                    .commands
                    .push(Command::LookForAuditStores { url, password }),
                Some(AuditAction::Import {
                    url,
                    password,
                    format,
                    cache,
                }) => self.commands.push(Command::ImportAudit {
                    url,
                    password,
                    format,
                    cache,
                }),
                Some(AuditAction::Close) => self.commands.push(Command::CloseAudit),
                Some(AuditAction::BrowseCache(current)) => {
                    self.commands.push(Command::BrowseNewCache(current))
                }
                Some(AuditAction::OpenStore { url, password }) => {
                    crate::shared::remote::remember_password(&url, password);
                    self.commands.push(Command::CloseAudit);
                    self.commands.push(Command::OpenCache(url.into()));
                }
                None => {}
            }
        }
        if let Some(dialog) = self
            .session
            .as_mut()
            .and_then(|session| session.export.as_mut())
        {
            match export_ui(ctx, dialog) {
                Some(ExportAction::Write(request)) => self.commands.push(Command::Export(request)),
                Some(ExportAction::Close) => self.commands.push(Command::CloseExport),
                None => {}
            }
        }
        if let Some(dialog) = self
            .session
            .as_mut()
            .and_then(|session| session.restore.as_mut())
        {
            match restore_ui(ctx, dialog, zone) {
                Some(RestoreAction::Copy(text)) => self.commands.push(Command::Copy(text)),
                Some(RestoreAction::Save(path, sql)) => {
                    self.commands.push(Command::SaveScript(path, sql))
                }
                Some(RestoreAction::Run { url, password, sql }) => {
                    self.commands
                        .push(Command::RunScript { url, password, sql });
                }
                Some(RestoreAction::LeaveProtected) => self.commands.push(Command::LeaveProtected),
                Some(RestoreAction::IncludeLater(include)) => {
                    self.commands.push(Command::IncludeLater(include))
                }
                Some(RestoreAction::Close) => self.commands.push(Command::CloseRestore),
                None => {}
            }
        }
    }
}
