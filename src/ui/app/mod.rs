//! The app shell: owns the settings, the open cache's session, the capture task and the dialogs;
//! drains the inbox each frame, draws the panels, and carries out the commands they return.

use std::path::PathBuf;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

use chrono::{DateTime, SecondsFormat, Utc};

use crate::capture::conninfo::Password;
use crate::capture::{self, CaptureEvent, doctor};
use crate::demo::{Demo, DemoOptions, Pace};
use crate::history::Moment;
use crate::model::{ChangeId, TableName};
use crate::store::{SourceIdentity, TableSummary, TimeSpan};

use super::capture_task::{CaptureStart, CaptureTask, resolve};
use super::connect::{ConnectAction, ConnectDialog, connect_ui, default_cache_path};
use super::detail::{DetailAction, DetailState, detail_ui};
use super::filters::{FilterFacts, FilterForm, filters_ui};
use super::histogram::{BUCKETS, Histogram, HistogramAction};
use super::restore::{RestoreAction, RestoreDialog, ScriptState, restore_ui};
use super::settings::Settings;
use super::status::{CaptureState, CaptureStatus, StatusAction, status_ui};
use super::time_text::{Clock, Zone};
use super::timeline::{Timeline, TimelineAction};
use super::welcome::{Welcome, WelcomeAction, welcome_ui};
use super::worker::{Reply, Request, ScriptRequest, Workers};
use super::{AppOptions, Message};

/// Everything the user can ask for; carried out after the frame is drawn.
#[derive(Debug, Clone, PartialEq)]
enum Command {
    OpenCache(PathBuf),
    CloseCache,
    ShowConnect,
    CloseConnect,
    CheckSource {
        url: String,
        password: Password,
    },
    StartCapture {
        url: String,
        password: Password,
        tables: Option<Vec<TableName>>,
        cache: PathBuf,
    },
    StopCapture,
    /// Start the last capture again; with `new_baseline`, after a gap in its history.
    RestartCapture {
        new_baseline: bool,
    },
    ApplyFilter,
    SelectRange(DateTime<Utc>, DateTime<Utc>),
    JumpTo(DateTime<Utc>),
    Open(ChangeId),
    RecordAt(ChangeId, Moment),
    PrepareScript(ScriptRequest),
    Copy(String),
    SaveScript(PathBuf, String),
    RunScript {
        url: String,
        password: Password,
        sql: String,
    },
    CloseRestore,
    StartDemo,
    DismissGuide,
    ToggleUtc,
    ToggleGrouped,
    DismissBanner,
}

/// One open cache and everything shown about it.
struct Session {
    path: PathBuf,
    source: Option<SourceIdentity>,
    workers: Workers,
    tables: Vec<TableSummary>,
    context_fields: Vec<String>,
    span: Option<TimeSpan>,
    newest: Option<ChangeId>,
    form: FilterForm,
    filter_problem: Option<String>,
    timeline: Timeline,
    histogram: Histogram,
    detail: DetailState,
    restore: Option<RestoreDialog>,
    /// egui time of the last overview refresh while capture runs.
    refreshed_at: f64,
}

impl Session {
    fn start(
        path: PathBuf,
        inbox: SyncSender<Message>,
        ctx: &egui::Context,
    ) -> std::io::Result<Self> {
        let workers = Workers::start(path.clone(), inbox, ctx.clone())?;
        let timeline = Timeline::new(Default::default(), 1);
        workers.send(Request::Overview);
        workers.send(Request::BuildIndex {
            generation: 1,
            filter: Default::default(),
        });
        Ok(Self {
            path,
            source: None,
            workers,
            tables: Vec::new(),
            context_fields: Vec::new(),
            span: None,
            newest: None,
            form: FilterForm::default(),
            filter_problem: None,
            timeline,
            histogram: Histogram::default(),
            detail: DetailState::default(),
            restore: None,
            refreshed_at: 0.0,
        })
    }

    fn request_histogram(&mut self) {
        if let Some(span) = self.span {
            self.histogram.generation = self.timeline.generation;
            self.workers.send(Request::Histogram {
                generation: self.timeline.generation,
                filter: self.timeline.filter.clone(),
                span,
                buckets: BUCKETS,
            });
        }
    }
}

/// The rowtrail desktop app.
pub struct RowtrailApp {
    settings: Settings,
    inbox: Receiver<Message>,
    outbox: SyncSender<Message>,
    ctx: egui::Context,
    welcome: Welcome,
    connect: Option<ConnectDialog>,
    session: Option<Session>,
    capture: Option<CaptureTask>,
    status: CaptureStatus,
    /// The cache a capture started here writes to; opened once capture has created it.
    capturing_into: Option<PathBuf>,
    /// Where and how to reach the source of the capture started here (the password stays in memory).
    source_login: Option<(String, Password)>,
    /// The capture started last, to start it again (Retry, or a new baseline after a gap).
    last_capture: Option<(CaptureStart, PathBuf)>,
    banner: Option<String>,
    /// The demo this app shows, ended when the app closes.
    demo: Option<Demo>,
    demo_starting: bool,
    /// What to look for in the demo, shown until dismissed.
    guide: Option<String>,
    commands: Vec<Command>,
    clock: Clock,
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
            connect: None,
            session: None,
            capture: None,
            status: CaptureStatus::default(),
            capturing_into: None,
            source_login: None,
            last_capture: None,
            banner: None,
            demo: None,
            demo_starting: false,
            guide: None,
            commands: Vec::new(),
            clock: options.clock,
        };
        if let Some(path) = options.cache {
            app.apply(Command::OpenCache(path));
        }
        if let Some(demo) = options.demo {
            app.adopt_demo(demo);
        }
        app
    }

    fn zone(&self) -> Zone {
        self.clock.zone(self.settings.utc)
    }

    /// Handles everything that arrived since the last frame.
    fn drain_inbox(&mut self, now: f64) {
        let events = self
            .capture
            .as_ref()
            .map(CaptureTask::events)
            .unwrap_or_default();
        for event in events {
            self.on_capture(&event, now);
        }
        while let Ok(message) = self.inbox.try_recv() {
            match message {
                Message::Reply(reply) => self.on_reply(reply),

                Message::CaptureEnded(result) => {
                    self.capture = None;
                    self.status.history_gap =
                        result.as_ref().is_err_and(|failure| failure.history_gap);
                    self.status.state = CaptureState::Stopped {
                        error: result.err().map(|failure| failure.message),
                    };
                }
                Message::BackgroundFailed(reason) => self.banner = Some(reason),
                Message::Doctor { report, database } => {
                    if let Some(dialog) = self.connect.as_mut() {
                        // A source that passed its checks gets a cache path to suggest.
                        if report.is_ok()
                            && dialog.cache.is_empty()
                            && let Some(database) = database
                        {
                            dialog.cache = default_cache_path(&database).display().to_string();
                        }
                        dialog.take_report(report);
                    }
                }
                Message::ScriptSaved(result) => {
                    if let Some(dialog) = self
                        .session
                        .as_mut()
                        .and_then(|session| session.restore.as_mut())
                    {
                        dialog.notice = Some(match result {
                            Ok(notice) | Err(notice) => notice,
                        });
                    }
                }
                Message::DemoReady(result) => {
                    self.demo_starting = false;
                    match result {
                        Ok(demo) => self.adopt_demo(*demo),
                        Err(error) => {
                            self.banner = Some(format!("the demo did not start: {error}"))
                        }
                    }
                }
                Message::ScriptRan(result) => {
                    if let Some(dialog) = self
                        .session
                        .as_mut()
                        .and_then(|session| session.restore.as_mut())
                    {
                        dialog.run.running = false;
                        dialog.run.outcome =
                            Some(result.map(|()| "The script ran and committed.".to_owned()));
                    }
                }
            }
        }
    }

    fn on_reply(&mut self, reply: Reply) {
        let Some(session) = self.session.as_mut() else {
            return;
        };
        match reply {
            Reply::Opened {
                path,
                source,
                newest,
            } => {
                if session.source.is_none() {
                    self.settings.remember(&path);
                    let name = path.file_name().map_or_else(
                        || path.display().to_string(),
                        |name| name.to_string_lossy().into_owned(),
                    );
                    self.ctx
                        .send_viewport_cmd(egui::ViewportCommand::Title(format!(
                            "rowtrail — {name}"
                        )));
                }
                session.source = Some(source);
                session.newest = session.newest.max(newest);
            }
            Reply::Overview {
                tables,
                context_fields,
                span,
                newest,
            } => {
                let span_changed = span != session.span;
                session.tables = tables;
                session.context_fields = context_fields;
                session.span = span;
                session.newest = newest;
                if span_changed || session.histogram.generation != session.timeline.generation {
                    session.request_histogram();
                }
            }
            Reply::Rows {
                generation,
                slot,
                rows,
            } if generation == session.timeline.generation => {
                session.timeline.apply_rows(slot, &rows);
            }
            Reply::Head { generation, ids } if generation == session.timeline.generation => {
                if session.timeline.apply_head(ids) {
                    self.commands.push(Command::ApplyFilter);
                }
                // Changes stored while the head was being read: read it again.
                session.timeline.refresh_head_if_wanted(&session.workers);
            }
            Reply::Index {
                generation,
                top,
                first_anchor,
                anchors,
                scanned,
                complete,
            } if generation == session.timeline.generation => {
                session
                    .timeline
                    .apply_index(top, first_anchor, anchors, scanned, complete);
                session.timeline.refresh_head_if_wanted(&session.workers);
            }
            Reply::Histogram {
                generation,
                span,
                counts,
            } if generation == session.timeline.generation => {
                session.histogram.span = Some(span);
                session.histogram.counts = counts;
            }
            Reply::Located(id) => session.timeline.jump_to(id),
            Reply::Detail(detail) => {
                if session.detail.loading == Some(detail.change.id)
                    || session.detail.loading.is_none()
                {
                    session.detail.show(detail);
                }
            }
            Reply::RecordAt {
                change,
                moment,
                image,
            } => {
                let state_at = &mut session.detail.state_at;
                let current = session
                    .detail
                    .detail
                    .as_ref()
                    .map(|detail| detail.change.id);
                if current == Some(change) && state_at.asked == Some(moment) {
                    state_at.result = Some((moment, image));
                }
            }
            Reply::Script(result) => {
                if let Some(dialog) = session.restore.as_mut() {
                    dialog.script = match result {
                        Ok(script) => ScriptState::Ready(Box::new(script)),
                        Err(error) => ScriptState::Failed(error),
                    };
                }
            }
            Reply::Failed(error) => {
                if session.source.is_none() {
                    self.session = None;
                }
                self.banner = Some(error);
            }
            Reply::Rows { .. }
            | Reply::Head { .. }
            | Reply::Index { .. }
            | Reply::Histogram { .. } => {}
        }
    }

    fn on_capture(&mut self, event: &CaptureEvent, now: f64) {
        let stored_more = self.status.apply(event, now);
        let cache_exists = matches!(
            event,
            CaptureEvent::PublicationCreated { .. }
                | CaptureEvent::PublicationReused { .. }
                | CaptureEvent::SlotCreated { .. }
                | CaptureEvent::Streaming { .. }
        );
        if cache_exists && let Some(path) = self.capturing_into.take() {
            self.apply(Command::OpenCache(path));
        }
        if let Some(session) = self.session.as_mut()
            && stored_more
        {
            session.timeline.refresh_head(&session.workers);
            if now - session.refreshed_at > 1.0 {
                session.refreshed_at = now;
                session.workers.send(Request::Overview);
            }
        }
    }

    /// Carries out one command.
    fn apply(&mut self, command: Command) {
        match command {
            Command::OpenCache(path) => {
                match Session::start(path, self.outbox.clone(), &self.ctx) {
                    Ok(session) => self.session = Some(session),
                    Err(error) => {
                        self.banner = Some(format!("could not start reading the cache: {error}"))
                    }
                }
            }
            Command::CloseCache => {
                self.session = None;
                self.ctx
                    .send_viewport_cmd(egui::ViewportCommand::Title("rowtrail".to_owned()));
            }
            Command::ShowConnect => self.connect = Some(ConnectDialog::default()),
            Command::CloseConnect => self.connect = None,
            Command::CheckSource { url, password } => self.check_source(url, password),
            Command::StartCapture {
                url,
                password,
                tables,
                cache,
            } => self.start_capture(url, password, tables, cache),
            Command::RestartCapture { new_baseline } => {
                if let (Some((start, cache)), Some(login)) =
                    (self.last_capture.clone(), self.source_login.clone())
                {
                    self.launch_capture(start, cache, login, new_baseline);
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
                    session.form.since = from.to_rfc3339_opts(SecondsFormat::Secs, true);
                    session.form.until = to.to_rfc3339_opts(SecondsFormat::Secs, true);
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
                    session.timeline.opened = Some(id);
                    session.detail.loading = Some(id);
                    session.workers.send(Request::Detail(id));
                }
            }
            Command::RecordAt(change, moment) => {
                if let Some(session) = &self.session {
                    session.workers.send(Request::RecordAt { change, moment });
                }
            }
            Command::PrepareScript(request) => self.prepare_script(request),
            Command::Copy(text) => self.ctx.copy_text(text),
            Command::SaveScript(path, sql) => {
                self.in_background("rowtrail-save", move |_| {
                    Message::ScriptSaved(match std::fs::write(&path, sql) {
                        Ok(()) => Ok(format!("Saved to {}", path.display())),
                        Err(error) => Err(format!(
                            "Could not save {}: {error}; choose another file name or folder",
                            path.display()
                        )),
                    })
                });
            }
            Command::RunScript { url, password, sql } => self.run_script(url, password, sql),
            Command::CloseRestore => {
                if let Some(session) = self.session.as_mut() {
                    session.restore = None;
                }
            }
            Command::ToggleUtc => self.settings.utc = !self.settings.utc,
            Command::ToggleGrouped => {
                if let Some(session) = self.session.as_mut() {
                    session.timeline.grouped = !session.timeline.grouped;
                }
            }
            Command::DismissBanner => self.banner = None,
            Command::DismissGuide => self.guide = None,
            Command::StartDemo => self.start_demo(),
        }
    }

    fn apply_filter(&mut self) {
        let Some(session) = self.session.as_mut() else {
            return;
        };
        match session.form.to_filter() {
            Ok(filter) => {
                session.filter_problem = None;
                let generation = session.timeline.generation + 1;
                let grouped = session.timeline.grouped;
                let opened = session.timeline.opened;
                session.timeline = Timeline::new(filter.clone(), generation);
                session.timeline.grouped = grouped;
                session.timeline.opened = opened;
                session
                    .workers
                    .send(Request::BuildIndex { generation, filter });
                session.request_histogram();
            }
            Err(problem) => session.filter_problem = Some(problem),
        }
    }

    /// Runs `work` on a short-lived thread with its own runtime and sends its message back.
    fn in_background(
        &self,
        name: &str,
        work: impl FnOnce(&tokio::runtime::Runtime) -> Message + Send + 'static,
    ) {
        let outbox = self.outbox.clone();
        let ctx = self.ctx.clone();
        let started = std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || {
                let message = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => work(&runtime),
                    Err(error) => Message::BackgroundFailed(format!(
                        "could not start a background task: {error}"
                    )),
                };
                let _ = outbox.send(message);
                ctx.request_repaint();
            });
        if let Err(error) = started {
            tracing::error!("could not start a background thread: {error}");
        }
    }

    fn check_source(&mut self, url: String, password: Password) {
        // Resolving reads ~/.pgpass: on the doctor's thread, not this one.
        self.in_background("rowtrail-doctor", move |runtime| {
            let spec = match resolve(&url, &password) {
                Ok(spec) => spec,
                Err(error) => {
                    return Message::Doctor {
                        report: Err(error),
                        database: None,
                    };
                }
            };
            let report = runtime.block_on(doctor::run(&spec, None, "rowtrail", "rowtrail"));
            Message::Doctor {
                report: report.map_err(|error| error.to_string()),
                database: Some(spec.dbname),
            }
        });
    }

    fn start_capture(
        &mut self,
        url: String,
        password: Password,
        tables: Option<Vec<TableName>>,
        cache: PathBuf,
    ) {
        let start = CaptureStart::Login {
            url: url.clone(),
            password: password.clone(),
            tables,
            cache: cache.clone(),
        };
        self.start_capture_task(start, cache, (url, password));
    }

    /// Starts capture in the background; the cache opens once capture has created it.
    fn start_capture_task(
        &mut self,
        start: CaptureStart,
        cache: PathBuf,
        login: (String, Password),
    ) {
        if let Some(task) = self.capture.take() {
            task.stop();
        }
        self.launch_capture(start, cache, login, false);
    }

    /// Starts `start` on its own thread; `new_baseline` lets it go on after a gap.
    fn launch_capture(
        &mut self,
        start: CaptureStart,
        cache: PathBuf,
        login: (String, Password),
        new_baseline: bool,
    ) {
        self.last_capture = Some((start.clone(), cache.clone()));
        match CaptureTask::start(start, new_baseline, self.outbox.clone(), self.ctx.clone()) {
            Ok(task) => {
                self.capture = Some(task);
                self.status = CaptureStatus::default();
                self.status.state = CaptureState::Starting;
                self.source_login = Some(login);
                self.session = None;
                self.capturing_into = Some(cache);
                self.connect = None;
            }
            Err(error) => self.banner = Some(format!("could not start capture: {error}")),
        }
    }

    /// Starts the demo in the background (it sets up a server, which takes a few seconds).
    fn start_demo(&mut self) {
        if self.demo_starting || self.demo.is_some() {
            return;
        }
        self.demo_starting = true;
        self.in_background("rowtrail-demo", |_| {
            let options = DemoOptions {
                keep: None,
                pace: Pace::Human,
                offline: false,
            };
            Message::DemoReady(
                Demo::start(&options)
                    .map(Box::new)
                    .map_err(|error| error.to_string()),
            )
        });
    }

    /// Shows a started demo: live capture of its server, or its offline cache with a banner.
    fn adopt_demo(&mut self, demo: Demo) {
        self.guide = Some(crate::demo::GUIDE.to_owned());
        match (demo.capture_options(), demo.login()) {
            (Ok(Some(options)), Some(login)) => {
                let cache = options.cache.clone();
                self.start_capture_task(CaptureStart::Ready(Box::new(options)), cache, login);
            }
            (Ok(_), _) => {
                self.apply(Command::OpenCache(demo.cache().to_owned()));
                if let Some(reason) = demo.offline_reason() {
                    self.banner = Some(reason.to_owned());
                }
            }
            (Err(error), _) => self.banner = Some(format!("the demo did not start: {error}")),
        }
        self.demo = Some(demo);
    }

    fn prepare_script(&mut self, request: ScriptRequest) {
        let Some(session) = self.session.as_mut() else {
            return;
        };
        let source_hint = match (&self.source_login, &session.source) {
            (Some((url, _)), _) => url.clone(),
            (None, Some(source)) => source.display.clone(),
            (None, None) => String::new(),
        };
        let name = match &request {
            ScriptRequest::Undo { .. } => "undo",
            ScriptRequest::RestoreVersion(_) => "restore",
        };
        let directory = session
            .path
            .parent()
            .map(PathBuf::from)
            .unwrap_or_else(std::env::temp_dir);
        let save = directory.join(format!(
            "rowtrail-{name}-{}.sql",
            self.clock.now().format("%Y%m%d-%H%M%S")
        ));
        let mut dialog = RestoreDialog::new(source_hint, save.display().to_string());
        if let Some((_, password)) = &self.source_login {
            dialog.run.password.clone_from(password);
        }
        session.restore = Some(dialog);
        session.workers.send(Request::Script(request));
    }

    fn run_script(&mut self, url: String, password: Password, sql: String) {
        self.in_background("rowtrail-run-script", move |runtime| {
            let result = resolve(&url, &password).and_then(|spec| {
                runtime
                    .block_on(capture::run_script(&spec, &sql))
                    .map_err(|error| error.to_string())
            });
            Message::ScriptRan(result)
        });
    }

    /// Draws one frame and collects commands.
    fn draw(&mut self, ui: &mut egui::Ui) {
        let zone = self.zone();
        if let Some(banner) = self.banner.clone() {
            egui::Panel::top("banner").show(ui, |ui| {
                ui.horizontal(|ui| {
                    ui.colored_label(ui.visuals().error_fg_color, banner.as_str());
                    if ui.small_button("Dismiss").clicked() {
                        self.commands.push(Command::DismissBanner);
                    }
                });
            });
        }
        if let Some(guide) = self.guide.clone() {
            egui::Panel::top("guide").show(ui, |ui| {
                ui.horizontal_wrapped(|ui| {
                    ui.label(egui::RichText::new("Demo").strong());
                    ui.label(guide.as_str());
                    if ui.small_button("Hide").clicked() {
                        self.commands.push(Command::DismissGuide);
                    }
                });
            });
        }
        let Some(session) = self.session.as_mut() else {
            egui::CentralPanel::default_margins().show(ui, |ui| {
                let recent = &self.settings.recent;
                match welcome_ui(ui, &mut self.welcome, recent, self.demo_starting) {
                    Some(WelcomeAction::Open(path)) => self.commands.push(Command::OpenCache(path)),
                    Some(WelcomeAction::Connect) => self.commands.push(Command::ShowConnect),
                    Some(WelcomeAction::Demo) => self.commands.push(Command::StartDemo),
                    None => {}
                }
                if self.capturing_into.is_some()
                    || matches!(self.status.state, CaptureState::Stopped { error: Some(_) })
                {
                    ui.separator();
                    match status_ui(ui, "capture", &self.status, zone) {
                        Some(StatusAction::Retry) => self.commands.push(Command::RestartCapture {
                            new_baseline: false,
                        }),
                        Some(StatusAction::NewBaseline) => self
                            .commands
                            .push(Command::RestartCapture { new_baseline: true }),
                        Some(StatusAction::StopCapture) => self.commands.push(Command::StopCapture),
                        Some(StatusAction::ToggleUtc) => self.commands.push(Command::ToggleUtc),
                        None => {}
                    }
                }
            });
            self.dialogs(ui.ctx());
            return;
        };
        egui::Panel::top("toolbar").show(ui, |ui| {
            ui.horizontal(|ui| {
                if ui.button("Close cache").clicked() {
                    self.commands.push(Command::CloseCache);
                }
                if ui.button("Connect…").clicked() {
                    self.commands.push(Command::ShowConnect);
                }
                if ui
                    .selectable_label(session.timeline.grouped, "Group by transaction")
                    .clicked()
                {
                    self.commands.push(Command::ToggleGrouped);
                }
            });
        });
        egui::Panel::bottom("status").show(ui, |ui| {
            let source = session.source.as_ref().map_or_else(
                || session.path.display().to_string(),
                |source| source.display.clone(),
            );
            match status_ui(ui, &source, &self.status, zone) {
                Some(StatusAction::StopCapture) => self.commands.push(Command::StopCapture),
                Some(StatusAction::Retry) => self.commands.push(Command::RestartCapture {
                    new_baseline: false,
                }),
                Some(StatusAction::NewBaseline) => self
                    .commands
                    .push(Command::RestartCapture { new_baseline: true }),
                Some(StatusAction::ToggleUtc) => self.commands.push(Command::ToggleUtc),
                None => {}
            }
        });
        egui::Panel::left("filters")
            .default_size(260.0)
            .resizable(true)
            .show(ui, |ui| {
                egui::ScrollArea::vertical().show(ui, |ui| {
                    let facts = FilterFacts {
                        tables: &session.tables,
                        context_fields: &session.context_fields,
                        matches: (session.timeline.total(), session.timeline.is_complete()),
                        problem: session.filter_problem.as_deref(),
                    };
                    if filters_ui(ui, &mut session.form, &facts) {
                        self.commands.push(Command::ApplyFilter);
                    }
                });
            });
        egui::Panel::right("detail")
            .default_size(460.0)
            .resizable(true)
            .show(ui, |ui| match detail_ui(ui, &mut session.detail, zone) {
                Some(DetailAction::Open(id)) => self.commands.push(Command::Open(id)),
                Some(DetailAction::RecordAt(change, moment)) => {
                    self.commands.push(Command::RecordAt(change, moment))
                }
                Some(DetailAction::Script(request)) => {
                    self.commands.push(Command::PrepareScript(request))
                }
                None => {}
            });
        egui::CentralPanel::default_margins().show(ui, |ui| {
            match session.histogram.ui(ui, zone) {
                Some(HistogramAction::SelectRange(from, to)) => {
                    self.commands.push(Command::SelectRange(from, to))
                }
                Some(HistogramAction::JumpTo(time)) => self.commands.push(Command::JumpTo(time)),
                None => {}
            }
            ui.add_space(4.0);
            if let Some(TimelineAction::Open(id)) = session.timeline.ui(ui, &session.workers, zone)
            {
                self.commands.push(Command::Open(id));
            }
        });
        self.dialogs(ui.ctx());
    }

    fn dialogs(&mut self, ctx: &egui::Context) {
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
                }) => self.commands.push(Command::StartCapture {
                    url,
                    password,
                    tables,
                    cache,
                }),
                Some(ConnectAction::Copy(text)) => self.commands.push(Command::Copy(text)),
                Some(ConnectAction::Close) => self.commands.push(Command::CloseConnect),
                None => {}
            }
        }
        if let Some(dialog) = self
            .session
            .as_mut()
            .and_then(|session| session.restore.as_mut())
        {
            match restore_ui(ctx, dialog) {
                Some(RestoreAction::Copy(text)) => self.commands.push(Command::Copy(text)),
                Some(RestoreAction::Save(path, sql)) => {
                    self.commands.push(Command::SaveScript(path, sql))
                }
                Some(RestoreAction::Run { url, password, sql }) => {
                    self.commands
                        .push(Command::RunScript { url, password, sql });
                }
                Some(RestoreAction::Close) => self.commands.push(Command::CloseRestore),
                None => {}
            }
        }
    }
}

impl RowtrailApp {
    /// Work between frames: drain the inbox and carry out pending commands.
    pub fn logic(&mut self, ctx: &egui::Context) {
        let now = ctx.input(|input| input.time);
        self.drain_inbox(now);
        for command in std::mem::take(&mut self.commands) {
            self.apply(command);
        }
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
            ctx.request_repaint_after(std::time::Duration::from_millis(500));
        }
    }

    /// Draws a frame and carries out what the user asked for in it.
    pub fn ui(&mut self, ui: &mut egui::Ui) {
        self.draw(ui);
        for command in std::mem::take(&mut self.commands) {
            self.apply(command);
        }
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
