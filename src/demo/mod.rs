//! The demo: a private PostgreSQL with a small shop in it, capture into a cache beside it, and a
//! simulator that keeps the shop busy, so a newcomer sees rowtrail do its real job in one command.
//! Without PostgreSQL server binaries the same story is written into a cache without a server.
//!
//! `shop` is the pure story (tables, first rows, transactions with context); `live` runs it on a
//! server; `offline` writes it into a cache. Dropping a `Demo` stops the simulator, then the server,
//! and removes both unless asked to keep them.

mod live;
mod offline;
mod shop;

use std::path::{Path, PathBuf};

use crate::capture::conninfo::{Password, ProcessEnvironment};
use crate::capture::{self, CaptureOptions, ConnectionSpec};
use crate::local_pg::{LocalPgError, LocalPgOptions, LocalPostgres};
use crate::store::StoreError;

pub use live::Pace;
pub use shop::Random;

/// The demo database.
pub const DATABASE: &str = "shop";
/// The cache file's name inside the demo's directory.
pub const CACHE_FILE: &str = "shop.rowtrail";
/// The same story every time, so the guide can point at it.
const SEED: u64 = 7;

/// What to find in the demo, for the app's banner and the command line.
/// The record whose related history the demo's guide offers to open: customer 42 (its orders,
/// their items and its tickets).
pub const STORY: (&str, &str) = ("customers", "42");

pub const GUIDE: &str = "Stories to find: customer 42 moved to the pro plan (customers), product 7's price edited from 19.99 to 1.99 (products), the nightly purge-abandoned-carts job deleting the items of paid orders (order_items, filter job=purge-abandoned-carts), and support ticket 5 deleted by mistake (support_tickets, which keeps REPLICA IDENTITY DEFAULT).";

/// The demo could not start.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error(transparent)]
    Server(#[from] LocalPgError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(
        "{} already holds files: give --keep a new or empty directory (open an earlier demo's cache with: rowtrail open {})",
        .0.display(),
        .0.join(CACHE_FILE).display()
    )]
    KeepDirNotEmpty(PathBuf),
    #[error("{action} failed: {cause}")]
    Io {
        action: String,
        cause: std::io::Error,
    },
    #[error("the demo's connection settings are invalid: {0}")]
    Connection(String),
}

/// How to run the demo.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Keep the server's data and the cache in this directory instead of deleting them.
    pub keep: Option<PathBuf>,
    pub pace: Pace,
    /// Write the story into a cache without a server even when PostgreSQL is installed.
    pub offline: bool,
}

/// Where the demo's history comes from.
pub enum DemoSource {
    /// A private server with capture to start and a simulator at work.
    Live {
        /// Held for its lifetime; dropped after the simulator.
        server: LocalPostgres,
        simulator: Option<live::Simulator>,
    },
    /// A cache written without a server.
    Offline {
        /// Why there is no live server, for the banner.
        reason: String,
        /// The directory to remove when done (`None` when kept).
        scratch: Option<tempfile::TempDir>,
    },
}

/// A running demo.
pub struct Demo {
    source: DemoSource,
    cache: PathBuf,
    kept: Option<PathBuf>,
}

impl std::fmt::Debug for Demo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Demo")
            .field("cache", &self.cache)
            .field("live", &self.is_live())
            .finish_non_exhaustive()
    }
}

fn io_error(action: impl Into<String>) -> impl FnOnce(std::io::Error) -> DemoError {
    let action = action.into();
    move |cause| DemoError::Io { action, cause }
}

fn ensure_empty(dir: &Path) -> Result<(), DemoError> {
    let occupied = std::fs::read_dir(dir)
        .map(|mut entries| entries.next().is_some())
        .unwrap_or(false);
    match occupied {
        true => Err(DemoError::KeepDirNotEmpty(dir.to_owned())),
        false => Ok(()),
    }
}

impl Demo {
    /// Starts the demo: a server with the shop and the simulator, or the offline cache when no
    /// server binaries are found (or `offline` asks for it).
    pub fn start(options: &DemoOptions) -> Result<Self, DemoError> {
        if let Some(dir) = &options.keep {
            ensure_empty(dir)?;
        }
        if options.offline {
            return Self::offline(
                options,
                "capture is not live: this demo's story was written into a cache without a server (--offline)".to_owned(),
            );
        }
        match Self::live(options) {
            Err(DemoError::Server(LocalPgError::NoBinaries)) => Self::offline(
                options,
                format!(
                    "capture is not live: {}; this is the same story written into a cache",
                    LocalPgError::NoBinaries
                ),
            ),
            other => other,
        }
    }

    fn live(options: &DemoOptions) -> Result<Self, DemoError> {
        let server = LocalPostgres::start(&LocalPgOptions {
            keep_dir: options.keep.clone(),
            ..LocalPgOptions::default()
        })?;
        server.create_database(DATABASE)?;
        let shop = shop::Shop::new(SEED, &|| chrono::Utc::now().to_rfc3339());
        let mut script = String::from("BEGIN;\n");
        script.push_str(shop::SCHEMA);
        for (table, row) in shop.rows() {
            script.push_str(&live::insert(table, &row));
            script.push('\n');
        }
        script.push_str("ANALYZE;\nCOMMIT;\n");
        server.psql(DATABASE, &script)?;
        let cache = server.root().join(CACHE_FILE);
        let simulator = live::Simulator::start(
            server.socket_conninfo(DATABASE),
            capture::slot_for_database(DATABASE),
            shop,
            options.pace,
        )
        .map_err(io_error("starting the demo simulator"))?;
        Ok(Self {
            source: DemoSource::Live {
                server,
                simulator: Some(simulator),
            },
            cache,
            kept: options.keep.clone(),
        })
    }

    fn offline(options: &DemoOptions, reason: String) -> Result<Self, DemoError> {
        let (dir, scratch) = match &options.keep {
            Some(dir) => {
                std::fs::create_dir_all(dir)
                    .map_err(io_error(format!("creating {}", dir.display())))?;
                (dir.clone(), None)
            }
            None => {
                let scratch = tempfile::Builder::new()
                    .prefix("rowtrail-demo-")
                    .tempdir()
                    .map_err(io_error("creating a temporary directory"))?;
                (scratch.path().to_owned(), Some(scratch))
            }
        };
        let cache = dir.join(CACHE_FILE);
        offline::write(&cache, SEED)?;
        Ok(Self {
            source: DemoSource::Offline { reason, scratch },
            cache,
            kept: options.keep.clone(),
        })
    }

    /// The cache the demo's history goes to.
    pub fn cache(&self) -> &Path {
        &self.cache
    }

    pub fn is_live(&self) -> bool {
        matches!(self.source, DemoSource::Live { .. })
    }

    /// Why capture is not live, when it is not.
    pub fn offline_reason(&self) -> Option<&str> {
        match &self.source {
            DemoSource::Live { .. } => None,
            DemoSource::Offline { reason, .. } => Some(reason),
        }
    }

    /// The `psql` command that reaches the demo database while it runs (its password comes from
    /// a 0600 pgpass file beside the server's data).
    pub fn psql_command(&self) -> Option<String> {
        match &self.source {
            DemoSource::Live { server, .. } => Some(server.psql_command(DATABASE)),
            DemoSource::Offline { .. } => None,
        }
    }

    /// Where the demo's files stay after it ends, if they stay.
    pub fn kept(&self) -> Option<&Path> {
        self.kept.as_deref()
    }

    /// The URL of the demo database (without a password) and the server's throwaway password, for
    /// capture and for running restore scripts.
    pub fn login(&self) -> Option<(String, Password)> {
        match &self.source {
            DemoSource::Live { server, .. } => Some((
                format!(
                    "postgres://postgres@127.0.0.1:{}/{DATABASE}?sslmode=disable",
                    server.port()
                ),
                server.password().clone(),
            )),
            DemoSource::Offline { .. } => None,
        }
    }

    /// How to capture the demo database into the demo cache.
    pub fn capture_options(&self) -> Result<Option<CaptureOptions>, DemoError> {
        let Some((url, password)) = self.login() else {
            return Ok(None);
        };
        let mut source = ConnectionSpec::resolve(&url, &ProcessEnvironment)
            .map_err(|error| DemoError::Connection(error.to_string()))?;
        for endpoint in &mut source.endpoints {
            endpoint.password = Some(password.clone());
        }
        Ok(Some(CaptureOptions {
            slot: capture::slot_for_database(DATABASE),
            source,
            cache: self.cache.clone(),
            tables: None,
            publication: "rowtrail".into(),
            once: false,
            new_baseline: false,
            stream_in_progress: true,
            protection: Default::default(),
            retain: None,
        }))
    }

    /// Changes the simulator has committed so far (0 offline).
    pub fn simulated_changes(&self) -> u64 {
        match &self.source {
            DemoSource::Live {
                simulator: Some(simulator),
                ..
            } => simulator.changes(),
            _ => 0,
        }
    }

    /// Why the simulator stopped, if it failed.
    pub fn simulator_failure(&self) -> Option<String> {
        match &self.source {
            DemoSource::Live {
                simulator: Some(simulator),
                ..
            } => simulator.failure(),
            _ => None,
        }
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        // The simulator goes first, so it never sees its server disappear.
        if let DemoSource::Live { simulator, .. } = &mut self.source {
            drop(simulator.take());
        }
    }
}
