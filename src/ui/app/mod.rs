//! The app shell: owns the settings, the open cache's session, the capture task and the dialogs.
//! Each frame it drains the inbox (`inbox`), draws the screen (`screen`), and carries out the
//! commands the drawing collected (`apply` here; background work in `tasks`).

mod inbox;
mod screen;
mod session;
mod tasks;

use std::path::PathBuf;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

use chrono::{DateTime, Utc};

use crate::capture::conninfo::Password;
use crate::demo::Demo;
use crate::model::Moment;
use crate::model::{ChangeId, TableName};

use super::audit_import::AuditDialog;
use super::capture_task::{CaptureStart, CaptureTask};
use super::connect::ConnectDialog;
use super::settings::Settings;
use super::status::{CaptureState, CaptureStatus};
use super::time_text::{Clock, Zone};
use super::welcome::Welcome;
use super::worker::{Request, ScriptRequest};
use super::{AppOptions, Message};

use session::Session;

/// Everything the user can ask for; carried out after the frame is drawn.
#[derive(Debug, Clone, PartialEq)]
enum Command {
    OpenCache(PathBuf),
    /// Choose a cache file in the desktop's file dialog.
    BrowseCache,
    /// Choose where a new cache goes (for a capture or an import), starting from `0`.
    BrowseNewCache(String),
    CloseCache,
    ShowConnect,
    CloseConnect,
    /// The audit-import dialog, with what was typed to connect.
    ShowAudit {
        url: String,
        password: Password,
    },
    CloseAudit,
    /// Import the open cache's audit store again (what is new).
    ImportAgain,
    LookForAuditStores {
        url: String,
        password: Password,
    },
    ImportAudit {
        url: String,
        password: Password,
        format: crate::import::AuditFormat,
        cache: PathBuf,
    },
    CheckSource {
        url: String,
        password: Password,
    },
    StartCapture {
        url: String,
        password: Password,
        tables: Option<Vec<TableName>>,
        cache: PathBuf,
        rules: Vec<crate::model::ColumnRule>,
    },
    StopCapture,
    /// Start the last capture again; with `new_baseline`, after a gap in its history.
    RestartCapture {
        new_baseline: bool,
    },
    ApplyFilter,
    /// A range dragged on the histogram: zoom into it and filter by it.
    SelectRange(DateTime<Utc>, DateTime<Utc>),
    /// Back to the range zoomed into before.
    ZoomOut,
    JumpTo(DateTime<Utc>),
    Open(ChangeId),
    /// Move the keyboard into the detail panel.
    FocusDetail,
    /// Add a term to the search (a value clicked in a diff).
    AddSearch(String),
    RecordAt(ChangeId, Moment),
    /// Read the related history of a change's record.
    Related(ChangeId),
    ShowExport,
    Export(Box<super::export::ExportRequest>),
    CloseExport,
    /// Open the newest change of the record with this single-column key, on its related history.
    OpenStory {
        table: TableName,
        key: String,
    },
    PrepareScript(ScriptRequest),
    /// Write the open script again, with or without the later changes.
    IncludeLater(bool),
    /// Write the open dialog's script again, leaving protected columns as they are.
    LeaveProtected,
    Copy(String),
    SaveScript(PathBuf, String),
    RunScript {
        url: String,
        password: Password,
        sql: String,
    },
    CloseRestore,
    Views(super::views::ViewsAction),
    StartDemo,
    DismissGuide,
    ToggleUtc,
    ToggleGrouped,
    DismissBanner,
    DismissNotice,
}

/// The rowtrail desktop app.
/// The capture started last, with the login it was started with.
#[derive(Clone)]
struct LastCapture {
    start: CaptureStart,
    cache: PathBuf,
    login: (String, Password),
}

/// The source a capture or import started in this app reads, and the cache it writes.
#[derive(Clone)]
struct SourceLogin {
    url: String,
    password: Password,
    cache: PathBuf,
}

pub struct RowtrailApp {
    settings: Settings,
    inbox: Receiver<Message>,
    outbox: SyncSender<Message>,
    ctx: egui::Context,
    welcome: Welcome,
    /// The file dialog is open.
    browsing: bool,
    connect: Option<ConnectDialog>,
    audit: Option<AuditDialog>,
    session: Option<Session>,
    capture: Option<CaptureTask>,
    status: CaptureStatus,
    /// The cache a capture started here writes to; opened once capture has created it.
    capturing_into: Option<PathBuf>,
    /// Where and how to reach the source of the capture or import started here, and the cache
    /// it feeds (the password stays in memory). Offered to *Run on source* for that cache only.
    source_login: Option<SourceLogin>,
    /// The capture started last, to start it again (Retry, or a new baseline after a gap).
    last_capture: Option<LastCapture>,
    /// An import started here is running (its button waits).
    importing: bool,
    banner: Option<String>,
    /// News that is not a problem (what an import did), shown until dismissed.
    notice: Option<String>,
    /// The demo this app shows, ended when the app closes.
    demo: Option<Demo>,
    demo_starting: bool,
    /// What to look for in the demo, shown until dismissed.
    guide: Option<String>,
    commands: Vec<Command>,
    clock: Clock,
    /// A view from a link, opened once a cache of its source is open.
    pending_view: Option<(crate::model::SavedView, crate::model::LinkSource)>,
}

impl RowtrailApp {
    pub fn new(creation: &eframe::CreationContext<'_>, options: AppOptions) -> Self {
        let settings = creation
            .storage
            .and_then(|storage| eframe::get_value::<Settings>(storage, Settings::KEY))
            .unwrap_or_default();
        Self::with_settings(creation.egui_ctx.clone(), settings, options)
    }

    /// The app as on a first run, with nothing remembered (tests start it this way).
    pub fn fresh(ctx: egui::Context, options: AppOptions) -> Self {
        Self::with_settings(ctx, Settings::default(), options)
    }

    fn with_settings(ctx: egui::Context, settings: Settings, options: AppOptions) -> Self {
        let (outbox, inbox) = sync_channel(1024);
        let mut app = Self {
            settings,
            inbox,
            outbox,
            ctx,
            welcome: Welcome::default(),
            browsing: false,
            connect: None,
            audit: None,
            session: None,
            capture: None,
            status: CaptureStatus::default(),
            capturing_into: None,
            source_login: None,
            last_capture: None,
            importing: false,
            banner: None,
            notice: None,
            demo: None,
            demo_starting: false,
            guide: None,
            commands: Vec::new(),
            clock: options.clock,
            pending_view: options.view,
        };
        match options.cache {
            Some(path) => app.apply(Command::OpenCache(path)),
            None if app.pending_view.is_some() => app.find_cache_for_link(),
            None => {}
        }
        if let Some(demo) = options.demo {
            app.adopt_demo(demo);
        }
        app
    }

    fn zone(&self) -> Zone {
        self.clock.zone(self.settings.utc)
    }

    /// Carries out one command.
    fn apply(&mut self, command: Command) {
        let zone = self.zone();
        match command {
            Command::OpenCache(path) => {
                match Session::start(path, self.outbox.clone(), &self.ctx) {
                    Ok(session) => self.session = Some(session),
                    Err(error) => {
                        self.banner = Some(format!("could not start reading the cache: {error}"))
                    }
                }
            }
            Command::BrowseCache => self.browse_cache(),
            Command::BrowseNewCache(current) => self.browse_new_cache(current),
            Command::CloseCache => {
                self.session = None;
                self.notice = None;
                self.ctx
                    .send_viewport_cmd(egui::ViewportCommand::Title("rowtrail".to_owned()));
            }
            Command::ShowConnect => {
                self.connect = Some(ConnectDialog {
                    focus_url: true,
                    ..ConnectDialog::default()
                })
            }
            Command::CloseConnect => self.connect = None,
            Command::ShowAudit { url, password } => {
                self.connect = None;
                self.audit = Some(AuditDialog::with_login(url, password));
            }
            Command::CloseAudit => self.audit = None,
            Command::ImportAgain => self.import_again(),
            Command::LookForAuditStores { url, password } => {
                self.look_for_audit_stores(url, password)
            }
            Command::ImportAudit {
                url,
                password,
                format,
                cache,
            } => self.import_audit(url, password, format, cache),
            Command::CheckSource { url, password } => self.check_source(url, password),
            Command::StartCapture {
                url,
                password,
                tables,
                cache,
                rules,
            } => self.start_capture(url, password, tables, cache, rules),
            Command::RestartCapture { new_baseline } => {
                // With its own login: an import since may have taken `source_login`.
                if let Some(last) = self.last_capture.clone() {
                    self.launch_capture(last.start, last.cache, last.login, new_baseline);
                }
            }
            Command::StopCapture => {
                if let Some(task) = &self.capture {
                    task.stop();
                }
            }
            Command::ApplyFilter => self.apply_filter(),
            Command::SelectRange(from, to) => {
                if let Some(session) = self.session.as_mut() {
                    session.form.set_range(from, to, zone);
                }
                self.apply_filter();
            }
            Command::ZoomOut => {
                if let Some(session) = self.session.as_mut() {
                    match session.histogram.zooms.last().copied() {
                        Some((from, to)) => session.form.set_range(from, to, zone),
                        None => {
                            session.form.since.clear();
                            session.form.until.clear();
                        }
                    }
                }
                self.apply_filter();
            }
            Command::JumpTo(time) => {
                if let Some(session) = &self.session {
                    session.workers.send(Request::Locate(time));
                }
            }
            Command::Open(id) => {
                if let Some(session) = self.session.as_mut() {
                    session.timeline.open(id);
                    session.detail.loading = Some(id);
                    session.workers.send(Request::Detail(id));
                }
            }
            Command::FocusDetail => {
                if let Some(session) = self.session.as_mut() {
                    session.detail.focus = true;
                }
            }
            Command::AddSearch(term) => {
                if let Some(session) = self.session.as_mut()
                    && session.form.add_search_term(&term)
                {
                    self.apply_filter();
                }
            }
            Command::OpenStory { table, key } => {
                if let Some(session) = self.session.as_mut() {
                    session.detail.tab = crate::ui::detail::Tab::Related;
                    session.workers.send(Request::NewestOfRecord { table, key });
                }
            }
            Command::ShowExport => {
                if let Some(session) = self.session.as_mut() {
                    let story = match (&session.detail.tab, &session.detail.related) {
                        (crate::ui::detail::Tab::Related, Some((id, Ok(story)))) => story
                            .iter()
                            .find_map(|related| related.path.first())
                            .map(|root| (*id, root.to_string())),
                        _ => None,
                    };
                    let folder = tasks::folder_for_files(&session.path);
                    session.export = Some(super::export::ExportDialog::new(
                        session.timeline.filter.clone(),
                        story,
                        folder,
                    ));
                }
            }
            Command::Export(request) => {
                if let Some(session) = &self.session {
                    session.workers.send(Request::Export(request));
                }
            }
            Command::CloseExport => {
                if let Some(session) = self.session.as_mut() {
                    session.export = None;
                }
            }
            Command::Related(id) => {
                if let Some(session) = &self.session {
                    session.workers.send(Request::Related(id));
                }
            }
            Command::RecordAt(change, moment) => {
                if let Some(session) = &self.session {
                    session.workers.send(Request::RecordAt { change, moment });
                    if session.detail.state_at.with_related {
                        session.workers.send(Request::RelatedAt { change, moment });
                    }
                }
            }
            Command::PrepareScript(request) => self.prepare_script(request),
            Command::LeaveProtected => {
                let request = self.session.as_mut().and_then(|session| {
                    let dialog = session.restore.as_mut()?;
                    dialog.leave_protected = true;
                    Some(dialog.request.clone())
                });
                if let Some(request) = request {
                    self.rewrite_script(request);
                }
            }
            Command::IncludeLater(include) => {
                let request = self
                    .session
                    .as_ref()
                    .and_then(|session| session.restore.as_ref())
                    .map(|dialog| dialog.request.clone());
                if let Some(ScriptRequest::Undo { target, .. }) = request {
                    self.rewrite_script(ScriptRequest::Undo {
                        target,
                        cascade: include,
                    });
                }
            }
            Command::Copy(text) => self.ctx.copy_text(text),
            Command::Views(action) => self.views_action(action),
            Command::SaveScript(path, sql) => self.save_script(path, sql),
            Command::RunScript { url, password, sql } => self.run_script(url, password, sql),
            Command::CloseRestore => {
                if let Some(session) = self.session.as_mut() {
                    session.restore = None;
                }
            }
            Command::ToggleUtc => {
                self.settings.utc = !self.settings.utc;
                let switched = self.zone();
                if let Some(session) = self.session.as_mut() {
                    session.form.rezone(zone, switched);
                }
            }
            Command::ToggleGrouped => {
                if let Some(session) = self.session.as_mut() {
                    session.timeline.grouped = !session.timeline.grouped;
                }
            }
            Command::DismissBanner => self.banner = None,
            Command::DismissNotice => self.notice = None,
            Command::DismissGuide => self.guide = None,
            Command::StartDemo => self.start_demo(),
        }
    }

    fn views_action(&mut self, action: super::views::ViewsAction) {
        use super::views::{OpenView, ViewsAction};
        let Some(session) = self.session.as_mut() else {
            return;
        };
        match action {
            ViewsAction::Open(view) => {
                session.workers.send(Request::View(view.clone()));
                session.views.open = Some(OpenView {
                    view,
                    rows: None,
                    copied: false,
                });
            }
            ViewsAction::Save(view) => {
                if let Some(form) = session.views.form.as_mut() {
                    form.saving = true;
                    form.problem = None;
                }
                session.workers.send(Request::SaveView(view));
            }
            ViewsAction::Remove(name) => {
                if session
                    .views
                    .open
                    .as_ref()
                    .is_some_and(|open| open.view.name == name)
                {
                    session.views.open = None;
                }
                session.workers.send(Request::RemoveView(name));
            }
            ViewsAction::Copy(link) => {
                if let Some(open) = session.views.open.as_mut() {
                    open.copied = true;
                }
                self.ctx.copy_text(link);
            }
            ViewsAction::Close => session.views.open = None,
            ViewsAction::OpenChange(id) => self.apply(Command::Open(id)),
        }
    }

    fn apply_filter(&mut self) {
        let zone = self.zone();
        if let Some(session) = self.session.as_mut() {
            session.apply_filter(zone);
        }
    }

    /// Sends what the session's parts queued for the readers.
    fn send_requests(&mut self) {
        if let Some(session) = self.session.as_mut() {
            session.send_requests();
        }
    }

    /// Work between frames: drain the inbox and carry out pending commands.
    pub fn logic(&mut self, ctx: &egui::Context) {
        let now = ctx.input(|input| input.time);
        self.drain_inbox(now);
        for command in std::mem::take(&mut self.commands) {
            self.apply(command);
        }
        self.send_requests();
        if let Some(session) = &self.session {
            session.workers.flush();
            if session.workers.has_waiting() {
                ctx.request_repaint_after(std::time::Duration::from_millis(20));
            }
        }
        let capturing = matches!(
            self.status.state,
            CaptureState::Streaming
                | CaptureState::Snapshotting { .. }
                | CaptureState::Reconnecting { .. }
        );
        if capturing {
            ctx.request_repaint_after(super::capture_task::FOLLOW_REFRESH);
        }
    }

    /// Draws a frame and carries out what the user asked for in it.
    pub fn ui(&mut self, ui: &mut egui::Ui) {
        self.draw(ui);
        for command in std::mem::take(&mut self.commands) {
            self.apply(command);
        }
        self.send_requests();
    }

    /// One whole frame without eframe (for headless benchmarks): logic, then drawing.
    pub fn frame(&mut self, ui: &mut egui::Ui) {
        self.logic(&ui.ctx().clone());
        self.ui(ui);
    }

    /// How far the timeline is: rows known, whether counting is done, and whether the top visible
    /// row is loaded (for headless benchmarks).
    pub fn timeline_progress(&self) -> Option<(u64, bool, bool)> {
        let timeline = &self.session.as_ref()?.timeline;
        Some((
            timeline.total(),
            timeline.is_complete(),
            timeline.row(timeline.first).is_some(),
        ))
    }

    /// The recent caches the welcome screen lists, newest first.
    pub fn recent_caches(&self) -> &[std::path::PathBuf] {
        &self.settings.recent
    }
}

impl eframe::App for RowtrailApp {
    fn logic(&mut self, ctx: &egui::Context, _frame: &mut eframe::Frame) {
        RowtrailApp::logic(self, ctx);
    }

    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        RowtrailApp::ui(self, ui);
    }

    fn save(&mut self, storage: &mut dyn eframe::Storage) {
        eframe::set_value(storage, Settings::KEY, &self.settings);
    }

    fn on_exit(&mut self) {
        if let Some(task) = self.capture.take() {
            task.stop_and_wait();
        }
        // Only now that capture has stopped may the demo's server go.
        self.demo = None;
    }
}
