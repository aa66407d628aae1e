//! Writes a plan as one SQL script: `BEGIN; ... COMMIT;`, each step guarded so that it only acts
//! on a row that still holds what the cache last saw, and raises an error naming the row otherwise.

use chrono::{DateTime, Utc};

use crate::model::{Column, IdentityKind, RelationSchema, Value, quote_ident};

use super::HistoryError;
use super::plan::{Image, Step};
use super::sql::{comment_text, dollar_quote, holds, quote_literal, typed_literal};

/// What the comment header of a script says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptHeader {
    /// What the script restores, e.g. `undo change 42 (update of public.orders (id)=(7))`.
    pub title: String,
    pub cache: String,
    pub source: String,
    pub written_at: DateTime<Utc>,
    /// More comment lines (later changes found, columns a guard cannot check, ...).
    pub notes: Vec<String>,
}

/// Renders the whole script; either all of it or an error, never a partial script.
pub fn render_script(
    header: &ScriptHeader,
    steps: &[Step],
    guard: bool,
) -> Result<String, HistoryError> {
    let mut body = Vec::new();
    for step in steps {
        body.push(render_step(step, guard)?);
    }
    let mut script = String::new();
    let mut line = |text: &str| {
        script.push_str(text);
        script.push('\n');
    };
    line("-- rowtrail restore script");
    line(&format!("-- {}", comment_text(&header.title)));
    line(&format!("-- cache:  {}", comment_text(&header.cache)));
    line(&format!("-- source: {}", comment_text(&header.source)));
    line(&format!(
        "-- written {} by rowtrail {}",
        header.written_at.format("%Y-%m-%d %H:%M:%S UTC"),
        env!("CARGO_PKG_VERSION")
    ));
    line("-- Run it with: psql -v ON_ERROR_STOP=1 -f this-file.sql");
    line(match guard {
        true => {
            "-- It runs in one transaction: if any row changed since the cache saw it, nothing is changed."
        }
        false => "-- Guards are off (--no-guard): rows are changed whatever they hold now.",
    });
    for note in &header.notes {
        line(&format!("-- {}", comment_text(note)));
    }
    line("");
    line("SET client_encoding = 'UTF8';");
    line("BEGIN;");
    line("SET LOCAL standard_conforming_strings = on;");
    line("SET LOCAL DateStyle = 'ISO, MDY';");
    line("SET LOCAL IntervalStyle = 'postgres';");
    for step in body {
        line("");
        line(step.trim_end_matches('\n'));
    }
    line("");
    line("COMMIT;");
    Ok(script)
}

fn render_step(step: &Step, guard: bool) -> Result<String, HistoryError> {
    let unrestorable = |image: &Image, error: HistoryError| match error {
        HistoryError::MissingValue { column } => HistoryError::Unrestorable {
            record: image.describe(),
            column,
            reason: step.reason.clone(),
        },
        other => other,
    };
    let mut text = format!("-- {}\n", comment_text(&step.reason));
    let statement = match (&step.current, &step.target) {
        (Some(current), Some(target)) => update(current, target, guard, &step.reason),
        (Some(current), None) => delete(current, guard, &step.reason),
        (None, Some(target)) => {
            insert(target, guard, &step.reason).map_err(|error| unrestorable(target, error))
        }
        (None, None) => Ok(Some(
            "-- nothing to do: the record does not exist before or after\n".to_owned(),
        )),
    };
    let statement = statement.map_err(|error| match (&step.current, error) {
        (Some(current), error) => unrestorable(current, error),
        (None, error) => error,
    })?;
    match statement {
        Some(statement) => text.push_str(&statement),
        None => text.push_str("-- nothing to do: the record already holds these values\n"),
    }
    Ok(text)
}

/// `"id" = '7'::integer AND ...` for a keyed table; for a table without a key, the first row that
/// holds every known value of the image (`ctid = (SELECT ctid ... LIMIT 1)`).
fn locate(image: &Image) -> Result<(String, Option<&'static str>), HistoryError> {
    let schema = &image.schema;
    if schema.has_key() {
        let mut conditions = Vec::new();
        for &index in &schema.key {
            let (Some(column), Some(value)) = (schema.columns.get(index), image.row.get(index))
            else {
                continue;
            };
            conditions.push(format!(
                "{} = {}",
                quote_ident(&column.name),
                typed_literal(column, value)?
            ));
        }
        return Ok((conditions.join(" AND "), None));
    }
    let matches = known_values_held(schema, &image.row)?;
    Ok((
        format!(
            "ctid = (SELECT ctid FROM {} WHERE {} LIMIT 1)",
            schema.table.quoted(),
            matches.join(" AND ")
        ),
        Some(
            "-- the table has no primary key: the row is matched on all its columns, one row at a time\n",
        ),
    ))
}

fn known_values_held(schema: &RelationSchema, row: &[Value]) -> Result<Vec<String>, HistoryError> {
    schema
        .columns
        .iter()
        .zip(row)
        .filter(|(_, value)| value.is_available())
        .map(|(column, value)| holds(column, value))
        .collect()
}

fn update(
    current: &Image,
    target: &Image,
    guard: bool,
    reason: &str,
) -> Result<Option<String>, HistoryError> {
    let mut assignments = Vec::new();
    let mut checks = Vec::new();
    let mut unchecked = Vec::new();
    for (column, now) in current.schema.columns.iter().zip(&current.row) {
        let Some(wanted) = target.value(&column.name) else {
            continue;
        };
        match (now, wanted) {
            (_, Value::Unavailable) if !now.is_available() => continue,
            (_, Value::Unavailable) => {
                return Err(HistoryError::MissingValue {
                    column: column.name.clone(),
                });
            }
            (now, wanted) if now == wanted => continue,
            (now, wanted) => {
                assignments.push(format!(
                    "{} = {}",
                    quote_ident(&column.name),
                    typed_literal(column, wanted)?
                ));
                match now.is_available() {
                    true => checks.push(holds(column, now)?),
                    false => unchecked.push(column.name.clone()),
                }
            }
        }
    }
    if assignments.is_empty() {
        return Ok(None);
    }
    let (location, note) = locate(current)?;
    let mut conditions = vec![location];
    if guard && current.schema.has_key() {
        conditions.extend(checks);
    }
    let statement = format!(
        "UPDATE {} SET {} WHERE {}",
        current.schema.table.quoted(),
        assignments.join(", "),
        conditions.join(" AND ")
    );
    let mut text = note.unwrap_or_default().to_owned();
    if guard && !unchecked.is_empty() {
        text.push_str(&format!(
            "-- the guard cannot check {}: their current values are unknown to the cache\n",
            comment_text(&unchecked.join(", "))
        ));
    }
    text.push_str(&guarded(
        statement,
        guard,
        &current.describe(),
        reason,
        "no longer holds what the cache last saw",
    ));
    Ok(Some(text))
}

fn delete(current: &Image, guard: bool, reason: &str) -> Result<Option<String>, HistoryError> {
    let (location, note) = locate(current)?;
    let mut conditions = vec![location];
    if guard && current.schema.has_key() {
        conditions.extend(known_values_held(&current.schema, &current.row)?);
    }
    let statement = format!(
        "DELETE FROM {} WHERE {}",
        current.schema.table.quoted(),
        conditions.join(" AND ")
    );
    let mut text = note.unwrap_or_default().to_owned();
    text.push_str(&guarded(
        statement,
        guard,
        &current.describe(),
        reason,
        "no longer holds what the cache last saw",
    ));
    Ok(Some(text))
}

fn insert(target: &Image, guard: bool, reason: &str) -> Result<Option<String>, HistoryError> {
    let schema = &target.schema;
    let mut names = Vec::new();
    let mut values = Vec::new();
    for (column, value) in schema.columns.iter().zip(&target.row) {
        names.push(quote_ident(&column.name));
        values.push(typed_literal(column, value)?);
    }
    let overriding = match schema.columns.iter().any(is_identity_always) {
        true => " OVERRIDING SYSTEM VALUE",
        false => "",
    };
    let statement = format!(
        "INSERT INTO {} ({}){overriding} VALUES ({})",
        schema.table.quoted(),
        names.join(", "),
        values.join(", ")
    );
    if !guard || !schema.has_key() {
        return Ok(Some(format!("{statement};\n")));
    }
    let (location, _) = locate(target)?;
    let message = format!(
        "rowtrail guard: {} already exists, so it cannot be inserted again ({reason}); nothing was changed",
        target.describe()
    );
    let body = format!(
        "BEGIN\n  IF EXISTS (SELECT FROM {} WHERE {location}) THEN\n    RAISE EXCEPTION USING MESSAGE = {};\n  END IF;\n  {statement};\nEND",
        schema.table.quoted(),
        quote_literal(&message)
    );
    Ok(Some(format!("DO {};\n", dollar_quote(&body))))
}

fn is_identity_always(column: &Column) -> bool {
    column.identity == Some(IdentityKind::Always)
}

/// The statement alone, or inside a block that raises a named error when it touched no row.
fn guarded(statement: String, guard: bool, record: &str, reason: &str, problem: &str) -> String {
    if !guard {
        return format!("{statement};\n");
    }
    let message = format!("rowtrail guard: {record} {problem} ({reason}); nothing was changed");
    let body = format!(
        "BEGIN\n  {statement};\n  IF NOT FOUND THEN\n    RAISE EXCEPTION USING MESSAGE = {},\n      HINT = 'The row changed after the cache last saw it: capture again and review its history.';\n  END IF;\nEND",
        quote_literal(&message)
    );
    format!("DO {};\n", dollar_quote(&body))
}
