//! A timeline to hand on: CSV for spreadsheets, and a readable Markdown or HTML report of the
//! story — when, who, what changed in words — grouped by transaction, oldest first, with a
//! restore script attached when asked. Pure text from `model` values.

use std::fmt::Write as _;

use crate::model::{LoggedChange, Op};

use super::diff::{DiffKind, diff_change};
use super::plan::describe_change;
use super::related::{Step, path_text};
use super::view::Movement;

/// How a timeline is written out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    Markdown,
    Html,
}

impl Format {
    pub const ALL: [Format; 3] = [Format::Markdown, Format::Html, Format::Csv];

    pub fn extension(self) -> &'static str {
        match self {
            Self::Csv => "csv",
            Self::Markdown => "md",
            Self::Html => "html",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Self::Csv => "CSV",
            Self::Markdown => "Markdown",
            Self::Html => "HTML",
        }
    }
}

/// One change of the timeline, with its path when it comes from a related history, and what it
/// did to the set when it comes from a view.
#[derive(Debug, Clone, Copy)]
pub struct Entry<'a> {
    pub change: &'a LoggedChange,
    pub path: Option<&'a [Step]>,
    pub view: Option<Movement>,
}

/// What the report is about, and where it came from.
#[derive(Debug, Clone, Default)]
pub struct ReportHead {
    /// `customer 42's story`, `changes of orders by user=ann`.
    pub title: String,
    /// The source as the cache names it.
    pub source: String,
    /// When the report was made, as text.
    pub made_at: String,
    /// A restore script to attach, with what it does.
    pub script: Option<(String, String)>,
}

/// The entries as CSV, one row per change, oldest first: id, time, transaction, operation,
/// table, key, path, changed columns, context (JSON) and what changed in words.
pub fn csv(entries: &[Entry<'_>]) -> Result<String, csv::Error> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    writer.write_record([
        "id",
        "committed_at",
        "xid",
        "op",
        "table",
        "key",
        "path",
        "view",
        "changed",
        "context",
        "what_changed",
    ])?;
    for entry in oldest_first(entries) {
        let change = entry.change;
        writer.write_record([
            change.id.to_string(),
            change
                .tx
                .committed_at
                .format("%Y-%m-%dT%H:%M:%S%.6fZ")
                .to_string(),
            change.tx.xid.map(|xid| xid.to_string()).unwrap_or_default(),
            change.change.op.to_string(),
            change.table.to_string(),
            change.key_text(),
            entry.path.map(path_text).unwrap_or_default(),
            entry
                .view
                .map(|movement| movement.as_str().to_owned())
                .unwrap_or_default(),
            change.changed_text(),
            change
                .context
                .as_ref()
                .map(|context| serde_json::Value::Object(context.clone()).to_string())
                .unwrap_or_default(),
            what_changed(change).join("; "),
        ])?;
    }
    let bytes = writer
        .into_inner()
        .map_err(|error| csv::Error::from(error.into_error()))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// The story in Markdown: a heading per transaction (time, who), a line per change.
pub fn markdown(head: &ReportHead, entries: &[Entry<'_>]) -> String {
    let mut out = format!("# {}\n\n", head.title);
    let _ = writeln!(
        out,
        "{} from {}, written by rowtrail on {}.\n",
        count_text(entries.len()),
        head.source,
        head.made_at
    );
    for group in transactions(entries) {
        let first = group[0].change;
        let _ = writeln!(out, "## {}\n", transaction_title(first));
        for entry in group {
            let _ = writeln!(out, "- **{}**", entry_title(entry));
            for line in what_changed(entry.change) {
                let _ = writeln!(out, "  - {}", markdown_escape(&line));
            }
        }
        out.push('\n');
    }
    if let Some((what, sql)) = &head.script {
        let _ = writeln!(out, "## Restore script: {what}\n\n```sql\n{sql}\n```");
    }
    out
}

/// The story as one self-contained HTML page.
pub fn html(head: &ReportHead, entries: &[Entry<'_>]) -> String {
    let mut out =
        String::from("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n");
    let _ = writeln!(out, "<title>{}</title>", escape(&head.title));
    out.push_str(
        "<style>body{font:15px/1.45 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}\
         h2{font-size:1.05rem;margin-top:1.6rem;border-bottom:1px solid #ddd}\
         .op{font-weight:600}.path{color:#666}ul.diff{margin:.2rem 0 .6rem;color:#333}\
         pre{background:#f5f5f5;padding:.8rem;overflow:auto}</style></head><body>\n",
    );
    let _ = writeln!(out, "<h1>{}</h1>", escape(&head.title));
    let _ = writeln!(
        out,
        "<p>{} from {}, written by rowtrail on {}.</p>",
        count_text(entries.len()),
        escape(&head.source),
        escape(&head.made_at)
    );
    for group in transactions(entries) {
        let _ = writeln!(
            out,
            "<h2>{}</h2>\n<ul>",
            escape(&transaction_title(group[0].change))
        );
        for entry in group {
            let _ = write!(out, "<li>{}", escape(&entry_title(entry)));
            let lines = what_changed(entry.change);
            if !lines.is_empty() {
                out.push_str("<ul class=\"diff\">");
                for line in lines {
                    let _ = write!(out, "<li>{}</li>", escape(&line));
                }
                out.push_str("</ul>");
            }
            out.push_str("</li>\n");
        }
        out.push_str("</ul>\n");
    }
    if let Some((what, sql)) = &head.script {
        let _ = writeln!(
            out,
            "<h2>Restore script: {}</h2>\n<pre>{}</pre>",
            escape(what),
            escape(sql)
        );
    }
    out.push_str("</body></html>\n");
    out
}

/// The entries oldest first (timelines come newest first).
fn oldest_first<'a>(entries: &'a [Entry<'a>]) -> Vec<Entry<'a>> {
    let mut sorted = entries.to_vec();
    sorted.sort_by_key(|entry| entry.change.id);
    sorted
}

/// The entries oldest first, in runs of one transaction.
fn transactions<'a>(entries: &'a [Entry<'a>]) -> Vec<Vec<Entry<'a>>> {
    let mut groups: Vec<Vec<Entry<'a>>> = Vec::new();
    for entry in oldest_first(entries) {
        match groups.last_mut() {
            Some(group) if group[0].change.tx.id == entry.change.tx.id => group.push(entry),
            _ => groups.push(vec![entry]),
        }
    }
    groups
}

/// `2026-11-26 14:02:07 UTC · transaction 1234 · user=ann`.
fn transaction_title(change: &LoggedChange) -> String {
    let time = change.tx.committed_at.format("%Y-%m-%d %H:%M:%S UTC");
    let what = match change.tx.xid {
        _ if change.tx.is_baseline => "baseline (the rows as capture first found them)".to_owned(),
        Some(xid) => format!("transaction {xid}"),
        None => "transaction (id not recorded by the audit store)".to_owned(),
    };
    match change.context_text().as_str() {
        "" => format!("{time} · {what}"),
        who => format!("{time} · {what} · {who}"),
    }
}

/// `update of public.orders (id)=(7) — customers 42 › orders 7`.
fn entry_title(entry: Entry<'_>) -> String {
    let mut described = describe_change(entry.change);
    if let Some(movement) = entry.view {
        described = format!("{} · {described}", movement.as_str());
    }
    match entry.path.filter(|path| path.len() > 1) {
        Some(path) => format!("{described} — {}", path_text(path)),
        None => described,
    }
}

/// What the change did, a line per column: the changed columns of an update, every column of
/// an inserted or deleted row.
fn what_changed(change: &LoggedChange) -> Vec<String> {
    if let Some(schema_change) = &change.schema_change {
        return schema_change.edit_lines(&change.schema);
    }
    let diffs = diff_change(&change.schema, &change.change);
    diffs
        .iter()
        .filter(|diff| !(diff.kind == DiffKind::Unchanged && change.change.op == Op::Update))
        .map(ToString::to_string)
        .collect()
}

fn count_text(count: usize) -> String {
    match count {
        1 => "1 change".to_owned(),
        _ => format!("{count} changes"),
    }
}

/// Text for HTML: `&`, `<`, `>` and quotes escaped.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// Text for a Markdown list item: characters Markdown would read as markup are escaped, and a
/// line break stays inside the item.
fn markdown_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' | '`' | '*' | '_' | '[' | ']' | '<' | '>' | '#' | '|' => {
                out.push('\\');
                out.push(c);
            }
            '\n' => out.push_str("  \n    "),
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // In tests a failed unwrap is a failed test.
mod tests {
    use super::*;

    #[test]
    fn html_and_markdown_escape_what_would_be_markup() {
        assert_eq!(
            escape("<b>\"x\" & 'y'</b>"),
            "&lt;b&gt;&quot;x&quot; &amp; &#39;y&#39;&lt;/b&gt;"
        );
        assert_eq!(markdown_escape("a*b_c [x](y)"), "a\\*b\\_c \\[x\\](y)");
        assert_eq!(markdown_escape("one\ntwo"), "one  \n    two");
    }
}
