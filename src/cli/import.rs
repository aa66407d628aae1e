//! `import`: history an audit store already keeps, into a cache.

use std::process::ExitCode;
use std::sync::Mutex;

use tokio::sync::watch;

use crate::capture::ConnectionSpec;
use crate::capture::conninfo::ProcessEnvironment;
use crate::import::{self, ImportOptions, ImportSummary, OnError, Origin};

use super::capture::{runtime, stop_on_signals};
use super::{ImportArgs, OnErrorArg};

pub fn import(args: ImportArgs) -> anyhow::Result<ExitCode> {
    let url = args.from.starts_with("postgres://") || args.from.starts_with("postgresql://");
    let from = if !args.format.reads_a_file() || url {
        Origin::Database(ConnectionSpec::resolve(&args.from, &ProcessEnvironment)?)
    } else if args.from == "-" {
        Origin::Stdin
    } else {
        Origin::File(args.from.clone().into())
    };
    let catalog = match &args.catalog {
        Some(_) if !args.format.reads_a_file() => anyhow::bail!(
            "--catalog is for debezium: the {} store is read with the catalog of its own database",
            args.format.name()
        ),
        Some(url) => Some(ConnectionSpec::resolve(url, &ProcessEnvironment)?),
        None => None,
    };
    let options = ImportOptions {
        protection: args.rules.protection()?,
        from,
        catalog,
        format: args.format,
        cache: args.cache.clone(),
        follow: args.follow,
        table_of: args.table_of.clone(),
        on_error: match args.on_error {
            OnErrorArg::Stop => OnError::Stop,
            OnErrorArg::Skip => OnError::Skip,
        },
    };
    let (stop_sender, stop) = watch::channel(false);
    // With --follow, a line whenever the totals move.
    let shown = Mutex::new(ImportSummary::default());
    let follow = args.follow;
    let progress = move |summary: &ImportSummary| {
        if let Ok(mut shown) = shown.lock()
            && follow
            && *shown != *summary
        {
            eprintln!("{}", totals(summary));
            *shown = summary.clone();
        }
    };
    let summary = runtime()?.block_on(async move {
        tokio::spawn(stop_on_signals(
            stop_sender,
            "quitting now; the next import goes on after the last batch it saved",
        ));
        import::run(options, stop, &progress).await
    })?;
    eprintln!("{} into {}", totals(&summary), args.cache.display());
    if summary.statement_only > 0 {
        eprintln!(
            "{} entries have no rows to import (statement-level audit rows, messages)",
            summary.statement_only
        );
    }
    if summary.skipped > 0 {
        eprintln!(
            "skipped {} rows that could not be read; the first: {}",
            summary.skipped,
            summary.first_skipped.join("; ")
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn totals(summary: &ImportSummary) -> String {
    format!(
        "imported {} changes in {} transactions",
        summary.changes, summary.transactions
    )
}
