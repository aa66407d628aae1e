//! `doctor`, `capture` and `teardown`: the commands that talk to the source.

use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use tokio::sync::watch;

use crate::capture::SchemaLogTeardown;
use crate::capture::doctor::{self, Status};
use crate::capture::{self, CaptureEvent, CaptureOptions, Observer};

use crate::capture::conninfo::{ConnectionSpec, ProcessEnvironment};
use crate::shared::{self, FollowEvent, FollowOptions, Published, Publisher};

use super::{CaptureArgs, DoctorArgs, PublishArgs, TeardownArgs, table_list};

pub(super) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("could not start the async runtime")
}

pub fn doctor(args: DoctorArgs) -> anyhow::Result<ExitCode> {
    let spec = args.source.spec()?;
    let tables = table_list(args.scope.tables.as_deref())?;
    let report = runtime()?.block_on(doctor::run(
        &spec,
        tables.as_deref(),
        &args.scope.slot,
        &args.scope.publication,
    ))?;
    for check in &report.checks {
        println!("{check}");
    }
    if !report.sensitive.is_empty() {
        let flags: Vec<String> = report
            .sensitive
            .iter()
            .map(|rule| match rule.protection {
                crate::model::Protection::Exclude => format!("--exclude {}", rule.pattern),
                how => format!("--mask {}={}", rule.pattern, how.name()),
            })
            .collect();
        println!(
            "note  sensitive columns: these look sensitive; to keep them out of the cache, capture with {}",
            flags.join(" ")
        );
    }
    let failures = report
        .checks
        .iter()
        .filter(|check| check.status == Status::Fail)
        .count();
    let warnings = report
        .checks
        .iter()
        .filter(|check| check.status == Status::Warn)
        .count();
    let warnings = plural(warnings, "warning");
    match report.can_capture() {
        true => {
            println!("capture can run ({warnings})");
            Ok(ExitCode::SUCCESS)
        }
        false => {
            println!(
                "capture cannot run: {} to fix ({warnings})",
                plural(failures, "problem")
            );
            Ok(ExitCode::from(1))
        }
    }
}

fn plural(count: usize, noun: &str) -> String {
    match count {
        1 => format!("1 {noun}"),
        _ => format!("{count} {noun}s"),
    }
}

pub fn capture(args: CaptureArgs) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(
        args.retain.is_none() || args.into.is_none(),
        "--retain cannot be used with --into: the store is copied from the cache, which must keep what the store has not copied yet (hint: capture with --into alone, and prune the cache with rowtrail prune once the store holds it)"
    );
    let into = args
        .into
        .as_deref()
        .map(|url| ConnectionSpec::resolve(url, &ProcessEnvironment))
        .transpose()?;
    let options = CaptureOptions {
        source: args.source.spec()?,
        cache: args.cache.clone(),
        tables: table_list(args.scope.tables.as_deref())?,
        slot: args.scope.slot,
        publication: args.scope.publication,
        once: args.once,
        new_baseline: args.new_baseline,
        stream_in_progress: !args.no_streaming,
        protection: args.rules.protection()?,
        retain: args
            .retain
            .as_deref()
            .map(crate::history::parse_age)
            .transpose()?,
    };
    let runtime = runtime()?;
    let (stop_sender, stop) = watch::channel(false);
    let (publish_stop_sender, publish_stop) = watch::channel(false);
    // The store is fed from its own thread, so a slow store never holds up the stream.
    let publisher = into.map(|store| {
        let options = FollowOptions {
            store,
            journal: args.cache.clone(),
            wait_for_journal: true,
        };
        let stop_capture = stop_sender.clone();
        std::thread::spawn(move || {
            let result = runtime_and(|runtime| {
                runtime.block_on(shared::follow(options, publish_stop, &publish_printer()))
            });
            if result.is_err() {
                // The store cannot be fed: capture stops too rather than run on without it.
                let _ = stop_capture.send(true);
            }
            result
        })
    });
    let summary = runtime.block_on(async move {
        tokio::spawn(stop_on_signals(
            stop_sender,
            "quitting now; the unconfirmed rest is sent again on the next capture",
        ));
        capture::run(options, printer(), stop).await
    });
    let _ = publish_stop_sender.send(true);
    let published = publisher.map(|thread| {
        thread
            .join()
            .unwrap_or_else(|_| Err(anyhow::anyhow!("the publisher stopped unexpectedly")))
    });
    let summary = summary?;
    let timings = &summary.timings;
    eprintln!(
        "stopped at {}: {} changes in {} transactions stored (preparing {:.2} s, streaming {:.2} s, finishing {:.2} s)",
        summary.position,
        summary.changes,
        summary.transactions,
        timings.preparing.as_secs_f64(),
        timings.streaming.as_secs_f64(),
        timings.finishing.as_secs_f64()
    );
    if let Some(published) = published {
        let published = published.context(
            "the shared store was not fed; the cache keeps everything, so run rowtrail publish (or capture --into) again once it is fixed",
        )?;
        eprintln!("{}", published_line(&published));
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs `work` on a runtime of its own (for a thread beside the capture's).
fn runtime_and<T>(
    work: impl FnOnce(&tokio::runtime::Runtime) -> Result<T, shared::SharedError>,
) -> anyhow::Result<T> {
    Ok(work(&runtime()?)?)
}

fn published_line(published: &Published) -> String {
    format!(
        "published {} changes in {} transactions into the shared store{}",
        published.changes,
        published.transactions,
        if published.caught_up {
            " (it holds everything the cache holds)"
        } else {
            ""
        }
    )
}

/// Prints what a following publisher does: connections, waits, totals at most every ten seconds.
fn publish_printer() -> impl Fn(FollowEvent) + Send + Sync {
    let last = Mutex::new(Instant::now() - Duration::from_secs(10));
    move |event| match event {
        FollowEvent::Connected { store } => eprintln!("publishing into the store at {store}"),
        FollowEvent::Waiting { error, delay } => eprintln!(
            "shared store: {error}; trying again in {} s",
            delay.as_secs()
        ),
        FollowEvent::Published { total } => {
            if let Ok(mut last) = last.lock()
                && last.elapsed() >= Duration::from_secs(10)
            {
                *last = Instant::now();
                eprintln!("{}", published_line(&total));
            }
        }
    }
}

/// `publish`: a cache's history into a shared store, once or following.
pub fn publish(args: PublishArgs) -> anyhow::Result<ExitCode> {
    let store = ConnectionSpec::resolve(&args.into, &ProcessEnvironment)?;
    let runtime = runtime()?;
    let published = runtime.block_on(async {
        if !args.follow {
            let mut publisher = Publisher::connect(&store, &args.cache).await?;
            return publisher.publish_all().await;
        }
        let (stop_sender, stop) = watch::channel(false);
        tokio::spawn(stop_on_signals(
            stop_sender,
            "quitting now; the next publish goes on after the last transaction the store holds",
        ));
        let options = FollowOptions {
            store,
            journal: args.cache.clone(),
            wait_for_journal: false,
        };
        shared::follow(options, stop, &publish_printer()).await
    })?;
    eprintln!("{}", published_line(&published));
    Ok(ExitCode::SUCCESS)
}

/// First SIGINT/SIGTERM: stop after the current transaction. Second: leave at once, saying
/// `quitting` (nothing unconfirmed is lost: capture and import go on from what is durable).
pub(super) async fn stop_on_signals(stop: watch::Sender<bool>, quitting: &'static str) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut interrupt), Ok(mut terminate)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        tracing::warn!("could not listen for signals; stop capture by killing it");
        return;
    };
    for round in 0..2 {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
        if round == 0 {
            eprintln!("stopping after the current transaction (signal again to quit at once)");
            let _ = stop.send(true);
        }
    }
    eprintln!("{quitting}");
    std::process::exit(130);
}

/// Prints capture events to stderr, progress at most every ten seconds.
fn printer() -> Observer {
    let last_progress = Mutex::new((Instant::now(), 0u64));
    Arc::new(move |event| match event {
        CaptureEvent::Connected {
            source,
            server_version,
        } => eprintln!("connected to {source} (PostgreSQL {server_version})"),
        CaptureEvent::PublicationCreated {
            name,
            all_tables: true,
            ..
        } => eprintln!("created publication {name} for all tables"),
        CaptureEvent::PublicationCreated { name, tables, .. } => {
            eprintln!("created publication {name} for {tables} tables")
        }
        CaptureEvent::PublicationReused { name, tables } => {
            eprintln!("using existing publication {name} ({tables} tables)")
        }
        CaptureEvent::StaleSlotDropped { name } => eprintln!(
            "dropped replication slot {name}, left by a capture that stopped during its baseline; starting over"
        ),
        CaptureEvent::SlotCreated {
            name,
            consistent_point,
        } => eprintln!("created replication slot {name} (consistent at {consistent_point})"),
        CaptureEvent::BaselineStarted { tables } => {
            eprintln!("baseline: copying {tables} tables as of the slot's snapshot")
        }
        CaptureEvent::BaselineProgress {
            table,
            rows,
            estimated_rows,
        } if rows > 0 => {
            let percent = (rows as f64 / estimated_rows.max(1) as f64 * 100.0).min(100.0);
            eprintln!("baseline: {table} {rows}/~{estimated_rows} rows ({percent:.0}%)");
        }
        CaptureEvent::BaselineProgress { .. } => {}
        CaptureEvent::BaselineDone { rows, tables } => {
            eprintln!("baseline: stored {rows} rows of {tables} tables")
        }
        CaptureEvent::Streaming { from } => eprintln!("streaming changes from {from}"),
        CaptureEvent::Progress {
            stored,
            changes,
            transactions,
            ..
        } => {
            let Ok(mut last) = last_progress.lock() else {
                return;
            };
            if last.0.elapsed() >= Duration::from_secs(10) && changes != last.1 {
                *last = (Instant::now(), changes);
                eprintln!("stored {changes} changes in {transactions} transactions (at {stored})");
            }
        }
        CaptureEvent::Warning(text) => eprintln!("warning: {text}"),
        CaptureEvent::Pruned(summary) => eprintln!("{summary}"),
        CaptureEvent::SchemaLogInstalled => eprintln!(
            "installed rowtrail's schema log (event triggers rowtrail_ddl and rowtrail_drop): schema changes are recorded as they happen"
        ),
        CaptureEvent::Reconnecting {
            attempt,
            delay,
            error,
        } => eprintln!(
            "connection lost ({error}); reconnecting in {} s (attempt {attempt})",
            delay.as_secs()
        ),
        CaptureEvent::Stopped { .. } | CaptureEvent::SlotStatus { .. } => {}
    })
}

pub fn teardown(args: TeardownArgs) -> anyhow::Result<ExitCode> {
    let spec = args.source.spec()?;
    let report = runtime()?.block_on(capture::teardown(
        &spec,
        &args.slot,
        args.publication.as_deref(),
    ))?;
    let mut found_anything = report.slot_dropped;
    match report.slot_dropped {
        true => println!("dropped replication slot {}", args.slot),
        false => println!("replication slot {} does not exist", args.slot),
    }
    if let (Some(name), Some(dropped)) = (&args.publication, report.publication_dropped) {
        found_anything |= dropped;
        match dropped {
            true => println!("dropped publication {name}"),
            false => println!("publication {name} does not exist"),
        }
    }
    match report.schema_log {
        SchemaLogTeardown::Removed => {
            found_anything = true;
            println!(
                "removed rowtrail's schema log (event triggers rowtrail_ddl and rowtrail_drop, schema rowtrail)"
            );
        }
        SchemaLogTeardown::KeptForOtherSlots => println!(
            "kept rowtrail's schema log: other logical replication slots of this database may read it"
        ),
        SchemaLogTeardown::NeedsSuperuser => println!(
            "rowtrail's schema log is no longer needed; a superuser can remove it with: DROP EVENT TRIGGER rowtrail_ddl; DROP EVENT TRIGGER rowtrail_drop; DROP SCHEMA rowtrail CASCADE;"
        ),
        SchemaLogTeardown::Absent => {}
    }
    anyhow::ensure!(
        found_anything,
        "nothing to drop: check --slot (and --publication) against SELECT slot_name FROM pg_replication_slots"
    );
    Ok(ExitCode::SUCCESS)
}
