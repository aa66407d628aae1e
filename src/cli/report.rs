//! `--format csv|markdown|html` (and `--undo-sql`) for the commands that print a timeline.

use std::io::Write;

use crate::history::report::{Entry, Format, ReportHead, csv, html, markdown};
use crate::restore::{UndoTarget, undo_script};
use crate::store::Cache;

use super::{ExportArgs, OutputFormat};

/// The format asked for: `--format`, or `--json` for JSON lines, else the terminal table.
pub fn format_of(export: &ExportArgs, json: bool) -> anyhow::Result<OutputFormat> {
    let format = export.format.unwrap_or(match json {
        true => OutputFormat::Jsonl,
        false => OutputFormat::Table,
    });
    anyhow::ensure!(
        export.undo_sql.is_none() || matches!(format, OutputFormat::Markdown | OutputFormat::Html),
        "--undo-sql attaches a script to a report: use it with --format markdown or --format html"
    );
    Ok(format)
}

/// Writes the entries as CSV, Markdown or HTML; false for the formats this does not write
/// (table and JSON lines, which each command prints its own way).
pub fn write_report(
    out: &mut impl Write,
    cache: &Cache,
    export: &ExportArgs,
    format: OutputFormat,
    title: String,
    entries: &[Entry<'_>],
) -> anyhow::Result<bool> {
    let format = match format {
        OutputFormat::Csv => Format::Csv,
        OutputFormat::Markdown => Format::Markdown,
        OutputFormat::Html => Format::Html,
        OutputFormat::Table | OutputFormat::Jsonl => return Ok(false),
    };
    let script = match export.undo_sql {
        Some(id) => {
            let script = undo_script(
                cache,
                &UndoTarget::Changes(vec![crate::model::ChangeId(id)]),
                false,
                true,
                false,
            )?;
            Some((format!("undo change {id}"), script.sql))
        }
        None => None,
    };
    let head = ReportHead {
        title,
        source: cache.source()?.display,
        made_at: chrono::Utc::now()
            .format("%Y-%m-%d %H:%M:%S UTC")
            .to_string(),
        script,
    };
    let text = match format {
        Format::Csv => csv(entries)?,
        Format::Markdown => markdown(&head, entries),
        Format::Html => html(&head, entries),
    };
    out.write_all(text.as_bytes())?;
    Ok(true)
}
