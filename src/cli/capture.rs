//! `doctor`, `capture` and `teardown`: the commands that talk to the source.

use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use tokio::sync::watch;

use crate::capture::SchemaLogTeardown;
use crate::capture::doctor::{self, Status};
use crate::capture::{self, CaptureEvent, CaptureOptions, Observer};

use super::{CaptureArgs, DoctorArgs, TeardownArgs, table_list};

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
    let options = CaptureOptions {
        source: args.source.spec()?,
        cache: args.cache,
        tables: table_list(args.scope.tables.as_deref())?,
        slot: args.scope.slot,
        publication: args.scope.publication,
        once: args.once,
        new_baseline: args.new_baseline,
    };
    let runtime = runtime()?;
    let (stop_sender, stop) = watch::channel(false);
    let summary = runtime.block_on(async move {
        tokio::spawn(stop_on_signals(
            stop_sender,
            "quitting now; the unconfirmed rest is sent again on the next capture",
        ));
        capture::run(options, printer(), stop).await
    })?;
    eprintln!(
        "stopped at {}: {} changes in {} transactions stored",
        summary.position, summary.changes, summary.transactions
    );
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
