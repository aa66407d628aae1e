//! The desktop app (eframe/egui): welcome, connect and audit-import screens, the timeline with its histogram and
//! filters, a change's detail and history, and restore scripts.
//!
//! Architecture invariant: only this module imports egui, and it never touches SQLite or
//! PostgreSQL itself: cache reads go to the worker threads in `worker`, capture runs in
//! `capture_task`, and everything comes back as a `Message` in the app's inbox, which the UI
//! drains each frame without waiting.
//! Architecture invariant: what the user asks for during a frame is collected as `Command`s and
//! carried out after drawing (`app::RowtrailApp::apply`).

mod app;
mod audit_import;
mod capture_task;
mod connect;
mod detail;
mod export;
mod fields;
mod filters;
mod histogram;
mod restore;
mod settings;
mod sql_highlight;
mod status;
mod time_text;
mod timeline;
mod views;
mod welcome;
mod worker;

use std::path::PathBuf;

pub use app::RowtrailApp;
pub use filters::thousands;
pub use settings::Settings;
pub use time_text::Clock;
pub use timeline::LIST_RECT;

use crate::capture::doctor::Report;
use crate::demo::Demo;

/// Everything that reaches the UI thread from elsewhere.
#[derive(Debug)]
pub enum Message {
    Reply(worker::Reply),
    CaptureEnded(Result<(), CaptureFailure>),
    /// A background thread could not start; the banner says so.
    BackgroundFailed(String),
    /// The doctor's report on a source, and its database's name when the string resolved.
    Doctor {
        report: Result<Report, String>,
        database: Option<String>,
    },
    /// Audit stores the checked database already keeps (to point to *Open audit database…*),
    /// found after the check: counting a large store's rows takes a while.
    CheckedStores {
        url: String,
        stores: Vec<crate::import::FoundStore>,
    },
    ScriptRan(Result<(), String>),
    /// A script was saved (the notice to show) or not (why, and what to do).
    ScriptSaved(Result<String, String>),
    DemoReady(Result<Box<Demo>, String>),
    /// What a look for audit stores found, and the database's name when the string resolved.
    AuditFound {
        found: Result<Vec<crate::import::FoundStore>, String>,
        database: Option<String>,
        /// What a rowtrail shared store in that database holds, when it has one.
        shared: Option<String>,
    },
    /// An import from an audit database ended: its cache, where from, and what it did.
    Imported {
        cache: PathBuf,
        from: String,
        /// The URL and password typed for it: the database beside the store is the source.
        login: (String, crate::capture::conninfo::Password),
        result: Result<crate::import::ImportSummary, String>,
    },
    /// The file dialog closed: the cache chosen, if any.
    Picked(Option<PathBuf>),
    /// The file dialog for a new cache closed: where it goes, if chosen.
    PickedNew(Option<PathBuf>),
    /// The recent cache of a link's database, if there is one.
    LinkCache(Option<PathBuf>),
}

/// Why capture stopped with an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaptureFailure {
    pub message: String,
    /// The slot that fed the cache is gone or invalidated: capture can go on only after a gap,
    /// with a new baseline.
    pub history_gap: bool,
}

/// How the app starts.
#[derive(Debug, Default)]
pub struct AppOptions {
    /// A cache to open right away.
    pub cache: Option<PathBuf>,
    /// A started demo to show (the app owns it from then on and ends it when it closes).
    pub demo: Option<Demo>,
    /// The clock the app reads: the system's, or a fixed one for tests.
    pub clock: Clock,
    /// A view to open (from a `rowtrail://` link), once a cache of its source is open; without
    /// `cache`, the recent cache of that source is opened.
    pub view: Option<(crate::model::SavedView, crate::model::LinkSource)>,
}

/// The window could not be opened.
#[derive(Debug, thiserror::Error)]
#[error(
    "could not open the rowtrail window: {0}; a desktop session (DISPLAY or WAYLAND_DISPLAY) is needed; the command line works without one: rowtrail --help"
)]
pub struct UiError(String);

/// The desktop id: the window's class, the `.desktop` file's and the AppStream component's name.
pub const APP_ID: &str = "io.github.rowtrail.rowtrail";

const ICON: &[u8] = include_bytes!("../../assets/rowtrail-256.png");

/// Opens the window and runs the app until it is closed.
pub fn run(options: AppOptions) -> Result<(), UiError> {
    let mut viewport = egui::ViewportBuilder::default()
        .with_title("rowtrail")
        .with_app_id(APP_ID)
        .with_inner_size([1440.0, 900.0])
        .with_min_inner_size([800.0, 500.0]);
    match eframe::icon_data::from_png_bytes(ICON) {
        Ok(icon) => viewport = viewport.with_icon(icon),
        Err(error) => tracing::warn!("the app icon did not load: {error}"),
    }
    // Settings stay beside the caches (~/.local/share/rowtrail), not under the app id, in a
    // directory only its owner can enter.
    let data_dir = eframe::storage_dir("rowtrail");
    if let Some(dir) = &data_dir
        && let Err(error) = crate::store::close_own_dir(dir)
    {
        tracing::warn!(
            "could not create {} for the app's settings: {error}",
            dir.display()
        );
    }
    let native = eframe::NativeOptions {
        viewport,
        persistence_path: data_dir.map(|dir| dir.join("app.ron")),
        ..eframe::NativeOptions::default()
    };
    eframe::run_native(
        "rowtrail",
        native,
        Box::new(move |creation| Ok(Box::new(RowtrailApp::new(creation, options)))),
    )
    .map_err(|error| UiError(error.to_string()))
}
