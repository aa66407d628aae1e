//! `demo`: start the demo and open the app, or with `--check` prove it works without a window.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use tokio::sync::watch;

use crate::capture::{self, CaptureEvent, CaptureOptions};
use crate::demo::{Demo, DemoOptions, GUIDE, Pace};
use crate::model::Op;
use crate::store::{Cache, LogFilter};

use super::DemoArgs;

/// How many simulated changes `--check` waits for.
const CHECK_CHANGES: i64 = 100;
/// How long `--check` waits for them.
const CHECK_LIMIT: Duration = Duration::from_secs(90);

pub fn demo(args: DemoArgs) -> anyhow::Result<ExitCode> {
    let options = DemoOptions {
        keep: args.keep,
        pace: match args.check {
            true => Pace::Fast,
            false => Pace::Human,
        },
        offline: args.offline,
    };
    let started = Instant::now();
    if !args.check {
        eprintln!("Starting the demo: a private PostgreSQL server with a small shop…");
    }
    let demo = Demo::start(&options)?;
    if args.check {
        return check(&demo, started);
    }
    if let Some(reason) = demo.offline_reason() {
        eprintln!("note: {reason}");
    }
    match demo.kept() {
        Some(dir) => eprintln!(
            "The demo's server data and cache stay in {} (open the cache later with: rowtrail open {}).",
            dir.display(),
            demo.cache().display()
        ),
        None => eprintln!(
            "The demo's server and data are removed when the window closes (keep them with --keep DIR)."
        ),
    }
    if let Some(command) = demo.psql_command() {
        eprintln!("Reach the demo database while it runs with: {command}");
    }
    eprintln!("{GUIDE}");
    crate::ui::run(crate::ui::AppOptions {
        cache: None,
        demo: Some(demo),
        clock: crate::ui::Clock::default(),
        view: None,
    })?;
    Ok(ExitCode::SUCCESS)
}

/// What the cache holds, by kind of change.
#[derive(Debug, Default)]
struct Captured {
    baseline: i64,
    inserts: i64,
    updates: i64,
    deletes: i64,
    tables: usize,
}

impl Captured {
    fn read(cache: &Cache) -> anyhow::Result<Self> {
        let mut captured = Self::default();
        let mut tables = std::collections::HashSet::new();
        for (table, op, count) in cache.counts()? {
            match op {
                Op::Snapshot => captured.baseline += count,
                Op::Insert => captured.inserts += count,
                Op::Update => captured.updates += count,
                Op::Delete | Op::Truncate => captured.deletes += count,
                Op::Ddl | Op::Gap => continue,
            }
            if op != Op::Snapshot {
                tables.insert(table);
            }
        }
        captured.tables = tables.len();
        Ok(captured)
    }

    fn changes(&self) -> i64 {
        self.inserts + self.updates + self.deletes
    }
}

/// Every captured change (not baseline rows) must carry the context the simulator sent.
fn changes_without_context(cache: &Cache) -> anyhow::Result<usize> {
    let changes = cache.log(&LogFilter::default())?;
    Ok(changes
        .iter()
        .filter(|change| !matches!(change.change.op, Op::Snapshot | Op::Ddl | Op::Gap))
        .filter(|change| {
            change
                .context
                .as_ref()
                .is_none_or(|context| !context.contains_key("request_id"))
        })
        .count())
}

fn check(demo: &Demo, started: Instant) -> anyhow::Result<ExitCode> {
    let capture = match demo.capture_options()? {
        Some(options) => Some(CheckCapture::start(options)?),
        None => None,
    };
    let result = wait_for_changes(demo, capture.as_ref(), started);
    let captured = match (result, capture.map(CheckCapture::stop)) {
        (Err(_), Some(Err(error))) => anyhow::bail!("capture failed: {error}"),
        (Err(error), _) => return Err(error),
        (Ok(_), Some(Err(error))) => anyhow::bail!("capture failed while stopping: {error}"),
        (Ok(captured), _) => captured,
    };
    let cache = Cache::open(demo.cache())?;
    let missing = changes_without_context(&cache)?;
    anyhow::ensure!(
        missing == 0,
        "{missing} captured changes have no application context: the simulator's pg_logical_emit_message did not reach the cache"
    );
    let source = match demo.is_live() {
        true => format!("a private PostgreSQL {}", cache.source()?.server_version),
        false => "the offline story (no server)".to_owned(),
    };
    println!(
        "demo check passed: {} changes ({} inserts, {} updates, {} deletes) in {} tables on top of {} baseline rows, each with its context, captured from {source} into {} in {:.1} s",
        captured.changes(),
        captured.inserts,
        captured.updates,
        captured.deletes,
        captured.tables,
        captured.baseline,
        match demo.kept() {
            Some(_) => demo.cache().display().to_string(),
            None => "a temporary cache (now removed; keep it with --keep DIR)".to_owned(),
        },
        started.elapsed().as_secs_f64()
    );
    Ok(ExitCode::SUCCESS)
}

fn wait_for_changes(
    demo: &Demo,
    capture: Option<&CheckCapture>,
    started: Instant,
) -> anyhow::Result<Captured> {
    loop {
        let ready = capture.is_none_or(CheckCapture::streaming);
        if ready && demo.cache().exists() {
            let captured = Captured::read(&Cache::open(demo.cache())?)?;
            if captured.changes() >= CHECK_CHANGES {
                return Ok(captured);
            }
            if capture.is_none() {
                anyhow::bail!(
                    "the offline demo cache holds only {} changes, fewer than {CHECK_CHANGES}",
                    captured.changes()
                );
            }
            if started.elapsed() > CHECK_LIMIT {
                anyhow::bail!(
                    "only {} of {CHECK_CHANGES} changes were captured within {} s (the simulator committed {}): run with -v to see what capture does",
                    captured.changes(),
                    CHECK_LIMIT.as_secs(),
                    demo.simulated_changes()
                );
            }
        } else if started.elapsed() > CHECK_LIMIT {
            anyhow::bail!(
                "capture did not start streaming within {} s: run with -v to see what capture does",
                CHECK_LIMIT.as_secs()
            );
        }
        if let Some(capture) = capture
            && capture.finished()
        {
            anyhow::bail!("capture stopped before the check was done");
        }
        if let Some(failure) = demo.simulator_failure() {
            anyhow::bail!("{failure}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Capture of the demo database on its own thread, as the app runs it.
struct CheckCapture {
    stop: watch::Sender<bool>,
    streaming: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<Result<(), String>>,
}

impl CheckCapture {
    fn start(options: CaptureOptions) -> anyhow::Result<Self> {
        let (stop, stopped) = watch::channel(false);
        let streaming = Arc::new(AtomicBool::new(false));
        let seen = streaming.clone();
        let observer: capture::Observer = Arc::new(move |event: CaptureEvent| {
            tracing::info!(?event, "capture");
            if matches!(event, CaptureEvent::Streaming { .. }) {
                seen.store(true, Ordering::Relaxed);
            }
        });
        let thread = std::thread::Builder::new()
            .name("rowtrail-capture".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|error| error.to_string())?;
                runtime
                    .block_on(capture::run(options, observer, stopped))
                    .map(|_| ())
                    .map_err(|error| error.to_string())
            })
            .context("could not start the capture thread")?;
        Ok(Self {
            stop,
            streaming,
            thread,
        })
    }

    fn streaming(&self) -> bool {
        self.streaming.load(Ordering::Relaxed)
    }

    fn finished(&self) -> bool {
        self.thread.is_finished()
    }

    /// Stops capture and returns how it ended.
    fn stop(self) -> Result<(), String> {
        let _ = self.stop.send(true);
        self.thread
            .join()
            .unwrap_or_else(|_| Err("the capture thread panicked".to_owned()))
    }
}
