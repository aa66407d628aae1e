//! Work the app starts off the UI thread: checking a source, starting capture and the demo,
//! writing, saving and running restore scripts, and the file dialog.

use std::path::PathBuf;

use crate::capture::conninfo::{Password, url_for_display};
use crate::capture::{self, doctor};
use crate::demo::{Demo, DemoOptions, Pace};
use crate::model::TableName;

use super::super::Message;
use super::super::audit_import::AuditDialog;
use super::super::capture_task::{CaptureStart, CaptureTask, resolve};
use super::super::restore::{RestoreDialog, ScriptState};
use super::super::status::{CaptureState, CaptureStatus};
use super::super::worker::{Request, ScriptRequest};
use super::{Command, RowtrailApp, SourceLogin};

impl RowtrailApp {
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

    /// Opens the desktop's file dialog on its own thread; the chosen cache opens when it returns.
    pub(super) fn browse_cache(&mut self) {
        if self.browsing {
            return;
        }
        self.browsing = true;
        let start = self
            .settings
            .recent
            .first()
            .and_then(|path| path.parent())
            .map(PathBuf::from);
        self.in_background("rowtrail-file-dialog", move |_| {
            let mut dialog = rfd::FileDialog::new()
                .set_title("Open a rowtrail cache")
                .add_filter("rowtrail caches", &["rowtrail", "db", "sqlite"])
                .add_filter("all files", &["*"]);
            if let Some(start) = start {
                dialog = dialog.set_directory(start);
            }
            Message::Picked(dialog.pick_file())
        });
    }

    /// Opens the desktop's save dialog for a new cache file, starting where `current` points;
    /// the open dialog (import or connect) takes the answer.
    pub(super) fn browse_new_cache(&mut self, current: String) {
        if self.browsing {
            return;
        }
        self.browsing = true;
        let current = PathBuf::from(current.trim());
        self.in_background("rowtrail-file-dialog", move |_| {
            let mut dialog = rfd::FileDialog::new()
                .set_title("Cache file to write")
                .add_filter("rowtrail caches", &["rowtrail"]);
            if let Some(parent) = current.parent().filter(|parent| parent.is_dir()) {
                dialog = dialog.set_directory(parent);
            }
            if let Some(name) = current.file_name() {
                dialog = dialog.set_file_name(name.to_string_lossy());
            }
            Message::PickedNew(dialog.save_file())
        });
    }

    /// For a link opened without a cache: looks through the recent caches, on a background
    /// thread, for the newest one of the link's database.
    pub(super) fn find_cache_for_link(&mut self) {
        let Some((_, wanted)) = self.pending_view.clone() else {
            return;
        };
        let recent = self.settings.recent.clone();
        self.in_background("rowtrail-link", move |_| {
            Message::LinkCache(recent.into_iter().find(|path| {
                crate::shared::open_cache(path)
                    .and_then(|cache| cache.link_source())
                    .is_ok_and(|known| known == wanted)
            }))
        });
    }

    /// Checks a source the way capture from the app will use it: its slot and publication.
    pub(super) fn check_source(&mut self, url: String, password: Password) {
        let (peek_url, peek_password) = (url.clone(), password.clone());
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
            let slot = capture::slot_for_database(&spec.dbname);
            let report = runtime.block_on(doctor::run(&spec, None, &slot, "rowtrail"));
            Message::Doctor {
                report: report.map_err(|error| error.to_string()),
                database: Some(spec.dbname),
            }
        });
        // A database that already keeps history in an audit store: said once found (a look
        // that fails says nothing; the checks speak for the connection).
        self.in_background("rowtrail-audit-peek", move |runtime| {
            let stores = resolve(&peek_url, &peek_password)
                .ok()
                .and_then(|spec| runtime.block_on(crate::import::detect(&spec)).ok())
                .map(|(_, found)| found)
                .unwrap_or_default();
            Message::CheckedStores {
                url: peek_url,
                stores,
            }
        });
    }

    /// Imports the open cache's store again: with the login typed for it in this app, at once;
    /// else through the audit dialog, filled in with the store's address and this cache.
    pub(super) fn import_again(&mut self) {
        let Some(session) = self.session.as_ref() else {
            return;
        };
        let Some(format) = session
            .import
            .as_ref()
            .and_then(|import| import.format.parse::<crate::import::AuditFormat>().ok())
        else {
            return;
        };
        let cache = session.path.clone();
        match self
            .source_login
            .as_ref()
            .filter(|login| login.cache == cache)
        {
            Some(login) => {
                let (url, password) = (login.url.clone(), login.password.clone());
                self.notice = Some(format!(
                    "Importing new rows from {}…",
                    url_for_display(&url)
                ));
                self.import_audit(url, password, format, cache);
            }
            None => {
                let url = session
                    .import
                    .as_ref()
                    .map(|import| url_for_display(&import.source))
                    .unwrap_or_default();
                // The address without its password: a look with ~/.pgpass may do, else the
                // user types the password and looks again.
                let mut dialog = AuditDialog::with_login(url, Password::default());
                dialog.cache = cache.display().to_string();
                dialog.format = Some(format);
                dialog.look_now = true;
                self.audit = Some(dialog);
            }
        }
    }

    /// Looks for audit stores in the database `url` names, on a background thread.
    pub(super) fn look_for_audit_stores(&mut self, url: String, password: Password) {
        self.in_background("rowtrail-audit-look", move |runtime| {
            let spec = match resolve(&url, &password) {
                Ok(spec) => spec,
                Err(error) => {
                    return Message::AuditFound {
                        found: Err(error),
                        database: None,
                        shared: None,
                    };
                }
            };
            let shared = runtime.block_on(crate::shared::remote::describe_store(&spec));
            match runtime.block_on(crate::import::detect(&spec)) {
                Ok((database, found)) => Message::AuditFound {
                    found: Ok(found),
                    database: Some(database),
                    shared,
                },
                // A database with a shared store and no audit table: the store is what it has.
                Err(_) if shared.is_some() => Message::AuditFound {
                    found: Ok(Vec::new()),
                    database: Some(spec.dbname),
                    shared,
                },
                Err(error) => Message::AuditFound {
                    found: Err(error.to_string()),
                    database: Some(spec.dbname),
                    shared,
                },
            }
        });
    }

    /// Imports the audit store of `format` into `cache` on a background thread; the cache
    /// opens when it is done.
    pub(super) fn import_audit(
        &mut self,
        url: String,
        password: Password,
        format: crate::import::AuditFormat,
        cache: PathBuf,
    ) {
        self.importing = true;
        self.in_background("rowtrail-import", move |runtime| {
            let spec = resolve(&url, &password);
            // As people read it: never the password.
            let from = spec.as_ref().map(ToString::to_string).unwrap_or_default();
            let result = spec.and_then(|spec| {
                if let Some(parent) = cache.parent() {
                    crate::store::create_private_dir(parent).map_err(|error| {
                        format!(
                            "could not create {}: {error}; choose a cache file in a folder you can write",
                            parent.display()
                        )
                    })?;
                }
                let options = crate::import::ImportOptions {
                    catalog: None,
                    from: crate::import::Origin::Database(spec),
                    format,
                    cache: cache.clone(),
                    follow: false,
                    on_error: crate::import::OnError::Skip,
                    table_of: Vec::new(),
                    protection: crate::ui::capture_task::default_protection(),
                };
                let (_stop, stopped) = tokio::sync::watch::channel(false);
                runtime
                    .block_on(crate::import::run(options, stopped, &|_| {}))
                    .map_err(|error| error.to_string())
            });
            Message::Imported {
                cache,
                from,
                login: (url, password),
                result,
            }
        });
    }

    pub(super) fn start_capture(
        &mut self,
        url: String,
        password: Password,
        tables: Option<Vec<TableName>>,
        cache: PathBuf,
        rules: Vec<crate::model::ColumnRule>,
    ) {
        let start = CaptureStart::Login {
            url: url.clone(),
            password: password.clone(),
            tables,
            cache: cache.clone(),
            rules,
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
    pub(super) fn launch_capture(
        &mut self,
        start: CaptureStart,
        cache: PathBuf,
        login: (String, Password),
        new_baseline: bool,
    ) {
        self.last_capture = Some(super::LastCapture {
            start: start.clone(),
            cache: cache.clone(),
            login: login.clone(),
        });
        let (url, password) = login;
        match CaptureTask::start(start, new_baseline, self.outbox.clone(), self.ctx.clone()) {
            Ok(task) => {
                self.capture = Some(task);
                self.status = CaptureStatus::default();
                self.status.state = CaptureState::Starting;
                self.source_login = Some(SourceLogin {
                    url,
                    password,
                    cache: cache.clone(),
                });
                self.session = None;
                self.capturing_into = Some(cache);
                self.connect = None;
            }
            Err(error) => self.banner = Some(format!("could not start capture: {error}")),
        }
    }

    /// Starts the demo in the background (it sets up a server, which takes a few seconds).
    pub(super) fn start_demo(&mut self) {
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
    pub(super) fn adopt_demo(&mut self, demo: Demo) {
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

    /// Opens the restore dialog and asks a reader for the script.
    pub(super) fn prepare_script(&mut self, request: ScriptRequest) {
        let Some(session) = self.session.as_mut() else {
            return;
        };
        // Where to run it: the capture's own connection string, else the source the cache names.
        // (The login typed for a capture or import of this very cache only.)
        let login = self
            .source_login
            .as_ref()
            .filter(|login| login.cache == session.path);
        let source_hint = match (login, &session.source) {
            (Some(login), _) => login.url.clone(),
            (None, Some(source)) => url_for_display(&source.display),
            (None, None) => String::new(),
        };
        let name = match &request {
            ScriptRequest::Undo { .. } => "undo",
            ScriptRequest::RestoreVersion(_) | ScriptRequest::RestoreStory { .. } => "restore",
        };
        let directory = folder_for_files(&session.path);
        let save = directory.join(format!(
            "rowtrail-{name}-{}.sql",
            self.clock.now().format("%Y%m%d-%H%M%S")
        ));
        let mut dialog =
            RestoreDialog::new(request.clone(), source_hint, save.display().to_string());
        if let Some(login) = login {
            dialog.run.password.clone_from(&login.password);
        }
        session.restore = Some(dialog);
        session.workers.send(Request::Script {
            request,
            leave_protected: false,
        });
    }

    /// Asks for the open dialog's script again, for another request (Include later changes).
    pub(super) fn rewrite_script(&mut self, request: ScriptRequest) {
        let Some(session) = self.session.as_mut() else {
            return;
        };
        if let Some(dialog) = session.restore.as_mut() {
            dialog.request = request.clone();
            dialog.script = ScriptState::Writing;
            dialog.run.outcome = None;
            dialog.run.confirming = false;
            session.workers.send(Request::Script {
                request,
                leave_protected: dialog.leave_protected,
            });
        }
    }

    pub(super) fn save_script(&mut self, path: PathBuf, sql: String) {
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

    pub(super) fn run_script(&mut self, url: String, password: Password, sql: String) {
        self.in_background("rowtrail-run-script", move |runtime| {
            let result = resolve(&url, &password).and_then(|spec| {
                runtime
                    .block_on(capture::run_script(&spec, &sql))
                    .map_err(|error| error.to_string())
            });
            Message::ScriptRan(result)
        });
    }
}

/// Where files made from a cache (scripts, exports) go by default: beside a cache file; for a
/// shared store, which has no folder, the home folder.
pub(super) fn folder_for_files(cache: &std::path::Path) -> PathBuf {
    let shared = cache.to_str().is_some_and(crate::shared::is_store_url);
    match (shared, cache.parent()) {
        (false, Some(parent)) => parent.to_path_buf(),
        _ => std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_else(std::env::temp_dir),
    }
}
