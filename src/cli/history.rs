//! `show`, `history`, `at`, `undo` and `restore`: the history engine's commands.

use std::io::Write as _;
use std::process::ExitCode;

use crate::history::diff::mark_excluded;
use crate::history::state::TableAt;
use crate::history::{DiffKind, describe_change, diff_change};
use crate::model::{ChangeId, LoggedChange, Op, RelationSchema, SchemaChange, TableName, Xid};
use crate::model::{ColumnRules, Image, Moment};
use crate::related::{StoryOptions, related_at};
use crate::restore::{UndoTarget, later_note, restore_script, undo_script};
use crate::store::{Cache, KeyFilter, RecordRef};
use anyhow::Context as _;

use super::json::{change_with_diff_json, image_json};
use super::{AtArgs, ForgetArgs, HistoryArgs, PruneArgs, RestoreArgs, ShowArgs, UndoArgs};
use crate::history::parse_local_time;

/// A `--key` argument: a JSON object of column names to values.
pub(super) fn key_filter(text: &str) -> anyhow::Result<KeyFilter> {
    match serde_json::from_str(text) {
        Ok(serde_json::Value::Object(map)) => Ok(KeyFilter(map)),
        _ => anyhow::bail!(
            "--key '{text}' is not a JSON object: write it like '{{\"id\": 7}}' (values as strings or numbers)"
        ),
    }
}

fn record(cache: &Cache, table: &str, key: &str) -> anyhow::Result<RecordRef> {
    Ok(cache.record(&TableName::parse(table)?, &key_filter(key)?)?)
}

fn moment(text: &str) -> anyhow::Result<Moment> {
    Ok(Moment::parse(text, parse_local_time)?)
}

fn print(text: &str) -> anyhow::Result<ExitCode> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// The lines of a change for people: a header, its context, then what changed.
fn change_text(entry: &LoggedChange, with_transaction: bool, rules: &ColumnRules) -> String {
    let mut text = format!("change {}: {}\n", entry.id, describe_change(entry));
    let time = entry.tx.committed_at.format("%Y-%m-%d %H:%M:%S%.6f UTC");
    match (with_transaction, entry.tx.xid) {
        _ if entry.tx.is_baseline => text.push_str(&format!(
            "  baseline: the row as it was at {time}, where this history begins\n"
        )),
        // An audit store that keeps no transaction ids (supa_audit).
        (_, None) => text.push_str(&format!(
            "  committed {time} in a transaction whose id the audit store did not record\n"
        )),
        (true, Some(xid)) => text.push_str(&format!(
            "  committed {time} in transaction {xid} ({} change{}), lsn {}\n",
            entry.tx.change_count,
            if entry.tx.change_count == 1 { "" } else { "s" },
            entry.lsn
        )),
        (false, Some(xid)) => text.push_str(&format!("  committed {time} in transaction {xid}\n")),
    }
    if entry.context.is_some() {
        text.push_str(&format!("  context: {}\n", entry.context_text()));
    }
    if let Some(schema_change) = &entry.schema_change {
        text.push_str(&schema_change_text(schema_change, &entry.schema));
        return text;
    }
    let mut diffs = diff_change(&entry.schema, &entry.change);
    mark_excluded(&mut diffs, &entry.table, rules);
    let (excluded, diffs): (Vec<_>, Vec<_>) = diffs
        .iter()
        .partition(|diff| diff.kind == DiffKind::Excluded);
    let (unchanged, shown): (Vec<_>, Vec<_>) = diffs
        .into_iter()
        .partition(|diff| diff.kind == DiffKind::Unchanged && entry.change.op == Op::Update);
    for diff in shown {
        text.push_str(&format!("    {diff}\n"));
    }
    for (what, list) in [
        ("unchanged", unchanged),
        ("excluded by the column rules", excluded),
    ] {
        if !list.is_empty() {
            let names: Vec<&str> = list.iter().map(|diff| diff.column.as_str()).collect();
            text.push_str(&format!("    {what}: {}\n", names.join(", ")));
        }
    }
    text
}

/// A schema change for people: the statement, then what it did to the table.
fn schema_change_text(schema_change: &SchemaChange, after: &RelationSchema) -> String {
    let mut text = String::new();
    if schema_change.noticed {
        text.push_str("  noticed when the first row of the new shape arrived (no schema log)\n");
    }
    if let Some(statement) = &schema_change.statement {
        text.push_str(&format!(
            "  statement: {}\n",
            statement.split_whitespace().collect::<Vec<_>>().join(" ")
        ));
    }
    let edits = schema_change.edit_lines(after);
    match edits.is_empty() {
        true => text.push_str("    the table's columns and key did not change\n"),
        false => {
            for edit in edits {
                text.push_str(&format!("    {edit}\n"));
            }
        }
    }
    text
}

pub fn show(args: ShowArgs) -> anyhow::Result<ExitCode> {
    let cache = crate::shared::open_cache(&args.cache.cache)?;
    let id = ChangeId(args.id);
    let entry = cache
        .change(id)?
        .ok_or(crate::store::StoreError::UnknownChange { id })?;
    let rules = cache.column_rules()?;
    let erasure = cache.erasure_of(id)?;
    match args.json {
        true => {
            let mut json = change_with_diff_json(&entry, &rules);
            if let (Some(erasure), Some(object)) = (&erasure, json.as_object_mut()) {
                object.insert(
                    "erased".to_owned(),
                    serde_json::json!({"at": erasure.erased_at, "record": format!("{} {}", erasure.table, erasure.key)}),
                );
            }
            print(&format!("{json}\n"))
        }
        false => {
            let mut text = change_text(&entry, true, &rules);
            if let Some(erasure) = erasure {
                text.push_str(&format!(
                    "  values erased by rowtrail forget at {} (record {} {}{}): only the key is kept\n",
                    erasure.erased_at,
                    erasure.table,
                    erasure.key,
                    if erasure.related { " and its story" } else { "" }
                ));
            }
            print(&text)
        }
    }
}

pub fn history(args: HistoryArgs) -> anyhow::Result<ExitCode> {
    let cache = crate::shared::open_cache(&args.cache.cache)?;
    let record = record(&cache, &args.record.table, &args.record.key)?;
    let changes = cache.record_history(&record)?;
    let rules = cache.column_rules()?;
    anyhow::ensure!(
        !changes.is_empty(),
        "{} has no record with key {}: check the key, or list the table's changes with rowtrail log --table {}",
        record.table,
        args.record.key,
        record.table
    );
    let mut text = String::new();
    for entry in &changes {
        match args.json {
            true => text.push_str(&format!("{}\n", change_with_diff_json(entry, &rules))),
            false => {
                text.push_str(&change_text(entry, false, &rules));
                text.push('\n');
            }
        }
    }
    print(&text)
}

pub fn at(args: AtArgs) -> anyhow::Result<ExitCode> {
    let cache = crate::shared::open_cache(&args.cache.cache)?;
    let moment = moment(&args.time)?;
    let table = TableName::parse(&args.table)?;
    let cut = cache.resolve_moment(moment)?;
    let Some(key) = &args.key else {
        let stdout = std::io::stdout();
        let mut out = std::io::BufWriter::new(stdout.lock());
        let mut failure = None;
        let mut rows = TableAt::default();
        let mut write = |image: Image| {
            if let Err(error) = writeln!(out, "{}", image_json(&image)) {
                failure.get_or_insert(error);
            }
        };
        cache.table_at(&table, cut, |change| {
            if let Some(image) = rows.take(change) {
                write(image);
            }
            Ok(())
        })?;
        rows.finish().for_each(&mut write);
        if let Some(error) = failure {
            return Err(error.into());
        }
        out.flush()?;
        return Ok(ExitCode::SUCCESS);
    };
    let record = cache.record(&table, &key_filter(key)?)?;
    if args.related {
        let members = related_at(&cache, &record, &StoryOptions::default(), cut)?;
        let mut text = String::new();
        for member in &members {
            let image = crate::model::Image {
                schema: member.schema.clone(),
                row: member.row.clone(),
            };
            match args.json {
                true => text.push_str(&format!(
                    "{}\n",
                    serde_json::json!({
                        "table": member.schema.table.to_string(),
                        "path": member.path.iter().map(super::related::step_json).collect::<Vec<_>>(),
                        "row": image_json(&image),
                    })
                )),
                false => text.push_str(&format!(
                    "{}: {}\n",
                    crate::history::related::path_text(&member.path),
                    image_json(&image)
                )),
            }
        }
        if members.is_empty() {
            text.push_str(match args.json {
                true => "",
                false => "absent: neither the record nor any related row existed then\n",
            });
        }
        return print(&text);
    }
    let state = cache.record_at(&record, cut)?;
    let text = match (state, args.json) {
        (None, true) => "null\n".to_owned(),
        (None, false) => "absent\n".to_owned(),
        (Some(image), true) => format!("{}\n", image_json(&image)),
        (Some(image), false) => image
            .schema
            .columns
            .iter()
            .zip(&image.row)
            .map(|(column, value)| {
                format!(
                    "{}: {}\n",
                    column.name,
                    crate::history::diff::show_value(value)
                )
            })
            .collect(),
    };
    print(&text)
}

pub fn undo(args: UndoArgs) -> anyhow::Result<ExitCode> {
    let cache = crate::shared::open_cache(&args.cache.cache)?;
    let target = match args.tx {
        Some(xid) => UndoTarget::Transaction(Xid(xid)),
        None => UndoTarget::Changes(args.change.iter().copied().map(ChangeId).collect()),
    };
    let script = undo_script(
        &cache,
        &target,
        args.cascade,
        !args.no_guard,
        args.leave_protected,
    )?;
    // The script's header lists every later change; the terminal gets the first few that its
    // guards will stop at.
    const SHOWN: usize = 10;
    for later in script.stopping_changes().take(SHOWN) {
        eprintln!("warning: {}", later_note(later, true));
    }
    if script.stopping.len() > SHOWN {
        eprintln!(
            "warning: and {} more later changes the guards will stop at, listed in the script's header",
            script.stopping.len() - SHOWN
        );
    }
    let kept = script.later.len() - script.stopping.len();
    if kept > 0 {
        eprintln!(
            "note: {kept} later change{} to the same rows changed nothing the script checks and {} kept (listed in the script's header)",
            if kept == 1 { "" } else { "s" },
            if kept == 1 { "is" } else { "are" }
        );
    }
    print(&script.sql)
}

pub fn restore(args: RestoreArgs) -> anyhow::Result<ExitCode> {
    let cache = crate::shared::open_cache(&args.cache.cache)?;
    let record = record(&cache, &args.record.table, &args.record.key)?;
    if args.related {
        let script = crate::related::restore_related(
            &cache,
            &record,
            &StoryOptions::default(),
            moment(&args.time)?,
            &args.time,
            !args.no_guard,
        )?;
        for later in script.stopping_changes().take(10) {
            eprintln!("warning: {}", later_note(later, true));
        }
        return print(&script.sql);
    }
    let script = restore_script(
        &cache,
        &record,
        moment(&args.time)?,
        !args.no_guard,
        args.leave_protected,
    )
    .context("could not write the restore script")?;
    print(&script.sql)
}

/// Opens a cache file for changing its history; a shared store is refused.
fn cache_file(path: &std::path::Path) -> anyhow::Result<Cache> {
    let cache = crate::shared::open_cache(path)?;
    if cache.is_shared() {
        return Err(crate::store::StoreError::SharedStoreMaintenance {
            location: cache.path().display().to_string(),
            action: "changing stored history",
        }
        .into());
    }
    Ok(cache)
}

pub fn prune(args: PruneArgs) -> anyhow::Result<ExitCode> {
    let moment = moment(&args.before)?;
    let cache = cache_file(&args.cache.cache)?;
    let pruned = crate::retention::prune(&cache, moment, crate::retention::Rewrite::Allowed)?;
    print(&format!("{}\n", pruned.summary()))
}

pub fn forget(args: ForgetArgs) -> anyhow::Result<ExitCode> {
    let key = key_filter(&args.record.key)?;
    let table = TableName::parse(&args.record.table)?;
    let cache = cache_file(&args.cache.cache)?;
    let scope = crate::retention::ForgetScope {
        related_depth: args.related.then_some(usize::from(args.depth)),
    };
    let forgotten = crate::retention::forget(&cache, &table, &key, scope)?;
    print(&format!("{}\n", forgotten.summary()))
}
