//! `rowtrail log`: lists captured changes, newest first, as a table or JSON lines.

use std::io::Write as _;
use std::process::ExitCode;

use anyhow::Context as _;
use chrono::Local;

use crate::model::{LoggedChange, Op, TableName, Xid};
use crate::store::LogFilter;

use super::history::key_filter;
use super::json::change_json;
use super::report::{format_of, write_report};
use super::{LogArgs, OutputFormat};
use crate::history::parse_local_time;
use crate::history::report::Entry;

pub fn log(args: LogArgs) -> anyhow::Result<ExitCode> {
    let format = format_of(&args.export, args.json)?;
    let filter = filter(&args)?;
    let cache = crate::shared::open_cache(&args.cache)?;
    let changes = cache.log(&filter)?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let entries: Vec<Entry<'_>> = changes
        .iter()
        .map(|change| Entry {
            change,
            path: None,
            view: None,
        })
        .collect();
    let title = format!("Changes in {}", filter_title(&args));
    if write_report(&mut out, &cache, &args.export, format, title, &entries)? {
        // Written.
    } else if format == OutputFormat::Jsonl {
        for change in &changes {
            writeln!(out, "{}", change_json(change))?;
        }
    } else {
        print_table(&mut out, &changes)?;
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// `--context user=ann` as (field, value).
pub(super) fn context_pair(pair: &str) -> anyhow::Result<(String, String)> {
    pair.split_once('=')
        .map(|(field, value)| (field.trim().to_owned(), value.to_owned()))
        .filter(|(field, _)| !field.is_empty())
        .with_context(|| format!("--context '{pair}' is not KEY=VALUE, e.g. --context user=ann"))
}

fn filter(args: &LogArgs) -> anyhow::Result<LogFilter> {
    let key = args.key.as_deref().map(key_filter).transpose()?;
    let context = args
        .context
        .iter()
        .map(|pair| context_pair(pair))
        .collect::<anyhow::Result<_>>()?;
    Ok(LogFilter {
        table: args.table.as_deref().map(TableName::parse).transpose()?,
        table_id: None,
        key,
        op: args.op.as_deref().map(str::parse::<Op>).transpose()?,
        since: args.since.as_deref().map(parse_local_time).transpose()?,
        until: args.until.as_deref().map(parse_local_time).transpose()?,
        context,
        context_prefixes: Vec::new(),
        changed: Vec::new(),
        xid: args.tx.map(Xid),
        search: args
            .search
            .as_deref()
            .map(crate::model::Search::parse)
            .transpose()?
            .filter(|search| !search.is_empty()),
        before: None,
        limit: (args.limit > 0).then_some(args.limit),
    })
}

/// What the filter picks, for a report's title: `orders, user=ann, since 2h`.
fn filter_title(args: &LogArgs) -> String {
    let mut parts = vec![
        args.table
            .clone()
            .unwrap_or_else(|| "every table".to_owned()),
    ];
    parts.extend(args.key.iter().map(|key| format!("key {key}")));
    parts.extend(args.op.iter().map(|op| format!("{op}s")));
    parts.extend(args.context.iter().cloned());
    parts.extend(
        args.search
            .iter()
            .map(|search| format!("matching {search}")),
    );
    parts.extend(args.since.iter().map(|since| format!("since {since}")));
    parts.extend(args.until.iter().map(|until| format!("until {until}")));
    parts.join(", ")
}

/// Text cut to `width` characters with `…`, so the columns after it stay aligned.
pub(super) fn clip(text: &str, width: usize) -> String {
    match text.chars().count() > width {
        true => format!(
            "{}…",
            text.chars()
                .take(width.saturating_sub(1))
                .collect::<String>()
        ),
        false => text.to_owned(),
    }
}

fn print_table(out: &mut impl std::io::Write, changes: &[LoggedChange]) -> std::io::Result<()> {
    if changes.is_empty() {
        return writeln!(out, "no changes match");
    }
    writeln!(
        out,
        "{:>8}  {:<19}  {:<8}  {:<24}  {:<16}  {:<24}  CONTEXT",
        "ID", "COMMITTED (local)", "OP", "TABLE", "KEY", "CHANGED"
    )?;
    for change in changes {
        writeln!(
            out,
            "{:>8}  {:<19}  {:<8}  {:<24}  {:<16}  {:<24}  {}",
            change.id,
            change
                .tx
                .committed_at
                .with_timezone(&Local)
                .format("%Y-%m-%d %H:%M:%S"),
            change.change.op,
            clip(&change.table.to_string(), 24),
            clip(&change.key_text(), 16),
            clip(&change.changed_text(), 24),
            clip(&change.context_text(), 60),
        )?;
    }
    Ok(())
}
