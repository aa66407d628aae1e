//! `rowtrail related` (one record's story across the tables that point at it) and `rowtrail link`
//! (links the schema lacks).

use std::io::Write as _;
use std::process::ExitCode;

use chrono::Local;
use serde_json::{Map, Value as Json, json};

use crate::history::parse_local_time;
use crate::history::related::{Related, Step, path_text};
use crate::history::view::Movement;
use crate::model::{Link, LoggedChange, Moment, SavedView, TableName};
use crate::related::{StoryOptions, related_history, related_newest};
use crate::store::Cache;

use super::history::key_filter;
use super::json::{change_json, value_json};
use super::log::clip;
use super::report::{format_of, write_report};
use super::{LinkArgs, OutputFormat, RelatedArgs, ViewArgs};
use crate::history::report::Entry;

pub fn related(args: RelatedArgs) -> anyhow::Result<ExitCode> {
    let key = key_filter(&args.record.key)?;
    let options = StoryOptions {
        depth: usize::from(args.depth),
        up: args.up,
        since: args.since.as_deref().map(parse_local_time).transpose()?,
        until: args.until.as_deref().map(parse_local_time).transpose()?,
    };
    let format = format_of(&args.export, args.json)?;
    let cache = crate::shared::open_cache(&args.cache.cache)?;
    let record = cache.record(&TableName::parse(&args.record.table)?, &key)?;
    let story = match args.limit {
        0 => {
            let mut story = related_history(&cache, &record, &options)?;
            story.reverse();
            story
        }
        limit => related_newest(&cache, &record, &options, limit)?,
    };
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let entries: Vec<Entry<'_>> = story
        .iter()
        .map(|related| Entry {
            change: &related.change,
            path: Some(&related.path),
            view: None,
        })
        .collect();
    let title = format!(
        "The story of {} {} and the rows that point at it",
        record.table.short(),
        args.record.key
    );
    if write_report(&mut out, &cache, &args.export, format, title, &entries)? {
        // Written.
    } else if format == OutputFormat::Jsonl {
        for related in &story {
            writeln!(out, "{}", related_json(related))?;
        }
    } else {
        print_story(&mut out, &story)?;
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// The `log --json` object of the change, with its `path` from the story's record.
pub fn related_json(related: &Related) -> Json {
    let mut object = change_json(&related.change);
    if let Json::Object(map) = &mut object {
        map.insert(
            "path".to_owned(),
            Json::Array(related.path.iter().map(step_json).collect()),
        );
    }
    object
}

pub(super) fn step_json(step: &Step) -> Json {
    let key: Map<String, Json> = step
        .key
        .iter()
        .map(|(name, value)| (name.clone(), value_json(value)))
        .collect();
    json!({ "table": step.table.to_string(), "key": key })
}

fn print_story(out: &mut impl std::io::Write, story: &[Related]) -> std::io::Result<()> {
    if story.is_empty() {
        return writeln!(out, "no changes in this record's story");
    }
    writeln!(
        out,
        "{:>8}  {:<19}  {:<8}  {:<20}  {:<40}  PATH",
        "ID", "COMMITTED (local)", "OP", "CHANGED", "CONTEXT"
    )?;
    for related in story {
        let change = &related.change;
        writeln!(
            out,
            "{:>8}  {:<19}  {:<8}  {:<20}  {:<40}  {}",
            change.id,
            change
                .tx
                .committed_at
                .with_timezone(&Local)
                .format("%Y-%m-%d %H:%M:%S"),
            change.change.op,
            clip(&change.changed_text(), 20),
            clip(&change.context_text(), 40),
            path_text(&related.path),
        )?;
    }
    Ok(())
}

pub fn link(args: LinkArgs) -> anyhow::Result<ExitCode> {
    let cache = crate::shared::open_cache(&args.cache.cache)?;
    let (Some(from), Some(to)) = (&args.from, &args.to) else {
        let stdout = std::io::stdout();
        let mut out = stdout.lock();
        for link in cache.links()? {
            let added = cache.user_links()?.contains(&link);
            writeln!(
                out,
                "{link}{}",
                if added {
                    "  (added)"
                } else {
                    "  (foreign key)"
                }
            )?;
        }
        return Ok(ExitCode::SUCCESS);
    };
    let (from_table, columns) = columns_of(&cache, from, "--from")?;
    let (to_table, to_columns) = columns_of(&cache, to, "--to")?;
    anyhow::ensure!(
        columns.len() == to_columns.len(),
        "--from names {} column(s) and --to {}: a link pairs them one to one, e.g. --from 'lines(order_id,shop)' --to 'orders(id,shop)'",
        columns.len(),
        to_columns.len()
    );
    let link = Link {
        from: from_table,
        columns,
        to: to_table,
        to_columns,
    };
    let message = match (args.remove, args.remove && cache.remove_link(&link)?) {
        (true, true) => format!("removed link {link}"),
        (true, false) => anyhow::bail!(
            "there is no added link {link}: list them with rowtrail link --cache FILE"
        ),
        (false, _) => match cache.add_link(&link)? {
            true => format!("added link {link}: related history follows it like a foreign key"),
            false => format!("link {link} was there already"),
        },
    };
    println!("{message}");
    Ok(ExitCode::SUCCESS)
}

/// `orders.customer_ref`, `sales.orders.customer_ref` or `lines(order_id,shop)`: a table of the
/// cache and columns it has.
fn columns_of(cache: &Cache, text: &str, flag: &str) -> anyhow::Result<(TableName, Vec<String>)> {
    let (table, columns) = match text.trim_end().strip_suffix(')') {
        Some(head) => {
            let (table, list) = head.split_once('(').ok_or_else(|| {
                anyhow::anyhow!("{flag} '{text}' is not TABLE.COLUMN or TABLE(COLUMN,…)")
            })?;
            let columns = list.split(',').map(|c| c.trim().to_owned()).collect();
            (table.to_owned(), columns)
        }
        None => {
            let (table, column) = text.rsplit_once('.').ok_or_else(|| {
                anyhow::anyhow!(
                    "{flag} '{text}' is not TABLE.COLUMN or TABLE(COLUMN,…), e.g. orders.customer_ref"
                )
            })?;
            (table.to_owned(), vec![column.trim().to_owned()])
        }
    };
    let table = TableName::parse(&table)?;
    let summary = cache
        .tables()?
        .into_iter()
        .rev()
        .find(|summary| summary.table == table)
        .ok_or_else(|| {
            anyhow::anyhow!(
                "{flag}: table {table} is not in this cache: list tables with rowtrail log"
            )
        })?;
    for column in &columns {
        anyhow::ensure!(
            summary.schema.column_index(column).is_some(),
            "{flag}: table {table} has no column {column}; it has {}",
            summary
                .schema
                .columns
                .iter()
                .map(|column| column.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok((table, columns))
}

pub fn view(args: ViewArgs) -> anyhow::Result<ExitCode> {
    let cache = crate::shared::open_cache(&args.cache.cache)?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    if args.list {
        let source = cache.link_source()?;
        let views = cache.views()?;
        if views.is_empty() {
            writeln!(
                out,
                "no saved views: save one with rowtrail view --table T --where EXPR --save NAME"
            )?;
        }
        for view in views {
            writeln!(out, "{}\t{}", view.name, view.link(&source))?;
        }
        out.flush()?;
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(name) = &args.remove {
        anyhow::ensure!(
            cache.remove_view(name)?,
            "no view is saved as '{name}': list them with rowtrail view --list"
        );
        writeln!(out, "removed view {name}")?;
        out.flush()?;
        return Ok(ExitCode::SUCCESS);
    }
    let view = match &args.name {
        Some(name) => cache
            .views()?
            .into_iter()
            .find(|view| &view.name == name)
            .ok_or_else(|| {
                anyhow::anyhow!("no view is saved as '{name}': list them with rowtrail view --list")
            })?,
        None => SavedView {
            name: args.save.clone().unwrap_or_default(),
            tables: args
                .table
                .iter()
                .map(|table| TableName::parse(table))
                .collect::<Result<_, _>>()?,
            predicate: args.predicate.clone().unwrap_or_default(),
            context: args
                .context
                .iter()
                .map(|pair| super::log::context_pair(pair))
                .collect::<anyhow::Result<_>>()?,
            changed: args.changed.clone(),
        },
    };
    let format = format_of(&args.export, args.json)?;
    if args.save.is_some() {
        anyhow::ensure!(
            !view.name.trim().is_empty(),
            "--save needs a name, e.g. --save 'pro customers'"
        );
        crate::related::check_view(&cache, &view)?;
        cache.save_view(&view)?;
        writeln!(out, "saved view {}", view.name)?;
        writeln!(out, "{}", view.link(&cache.link_source()?))?;
        out.flush()?;
        return Ok(ExitCode::SUCCESS);
    }
    let cut = match &args.time {
        Some(time) => Some(cache.resolve_moment(Moment::parse(time, parse_local_time)?)?),
        None => None,
    };
    // A timeline of the newest changes is read newest first; the set at a moment, and the whole
    // timeline, fold it all.
    let (moved, set) = match (cut, args.limit) {
        (None, limit) if limit > 0 => {
            let mut newest = crate::related::view_newest(&cache, &view, limit)?;
            newest.reverse();
            (newest, None)
        }
        _ => {
            let (moved, set) = crate::related::view_history(&cache, &view, cut)?;
            (moved, Some(set))
        }
    };
    if let (Some(_), Some(set)) = (cut, &set) {
        for (schema, row) in set.members() {
            let image = crate::model::Image { schema, row };
            writeln!(out, "{}", super::json::image_json(&image))?;
        }
        out.flush()?;
        return Ok(ExitCode::SUCCESS);
    }
    let shown: Vec<&(LoggedChange, Movement)> = moved
        .iter()
        .rev()
        .take(if args.limit == 0 {
            usize::MAX
        } else {
            args.limit
        })
        .collect();
    let entries: Vec<Entry<'_>> = shown
        .iter()
        .map(|(change, movement)| Entry {
            change,
            path: None,
            view: Some(*movement),
        })
        .collect();
    let tables: Vec<String> = view.tables.iter().map(TableName::short).collect();
    let title = match view.name.as_str() {
        "" => format!("{} where {}", tables.join(", "), view.predicate),
        name => format!(
            "View {name}: {} where {}",
            tables.join(", "),
            view.predicate
        ),
    };
    if write_report(&mut out, &cache, &args.export, format, title, &entries)? {
        // Written.
    } else if format == OutputFormat::Jsonl {
        for (change, movement) in shown {
            let mut object = change_json(change);
            if let Json::Object(map) = &mut object {
                map.insert("view".to_owned(), Json::from(movement.as_str()));
            }
            writeln!(out, "{object}")?;
        }
    } else if moved.is_empty() {
        writeln!(out, "no row of {} was ever in this view", tables.join(", "))?;
    } else {
        writeln!(
            out,
            "{:>8}  {:<19}  {:<6}  {:<8}  {:<20}  {:<16}  {:<24}  CONTEXT",
            "ID", "COMMITTED (local)", "VIEW", "OP", "TABLE", "KEY", "CHANGED"
        )?;
        for (change, movement) in shown {
            writeln!(
                out,
                "{:>8}  {:<19}  {:<6}  {:<8}  {:<20}  {:<16}  {:<24}  {}",
                change.id,
                change
                    .tx
                    .committed_at
                    .with_timezone(&Local)
                    .format("%Y-%m-%d %H:%M:%S"),
                movement.as_str(),
                change.change.op,
                clip(&change.table.short(), 20),
                clip(&change.key_text(), 16),
                clip(&change.changed_text(), 24),
                change.context_text(),
            )?;
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
