//! Writes a plan as one SQL script: `BEGIN; ... COMMIT;`, each step guarded so that it only acts
//! on a row that still holds what the cache last saw, and raises an error naming the row otherwise.

use chrono::{DateTime, Utc};

use crate::model::{Column, IdentityKind, RelationSchema, Value, quote_ident};

use super::HistoryError;
use super::plan::{Step, describe};
use super::sql::{comment_text, dollar_quote, holds, quote_literal, typed_literal};
use crate::model::Image;

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
    /// Context the script records in the database's history (a `rowtrail` logical message in
    /// its transaction), so the repair shows up there as what it is.
    pub context: Option<serde_json::Map<String, serde_json::Value>>,
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
    if let Some(context) = &header.context {
        line(
            "-- Records in the WAL that rowtrail made this repair (capture shows it as the changes' context; audit triggers do not see it); delete the next line to leave no record.",
        );
        line(&format!(
            "SELECT pg_logical_emit_message(true, 'rowtrail', {});",
            quote_literal(&serde_json::Value::Object(context.clone()).to_string())
        ));
    }
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
            record: describe(image),
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
        &describe(current),
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
        &describe(current),
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
        describe(target)
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
        "BEGIN\n  {statement};\n  IF NOT FOUND THEN\n    RAISE EXCEPTION USING MESSAGE = {},\n      HINT = 'The row changed after the cache last saw it: bring the cache up to date (capture or import again) and review its history.';\n  END IF;\nEND",
        quote_literal(&message)
    );
    format!("DO {};\n", dollar_quote(&body))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // In tests a failed unwrap is a failed test.
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::model::{ChangeId, ForeignKey, RelationSchema, ReplicaIdentity, TableName};

    fn column(name: &str, type_name: &str, base: u32, identity: Option<IdentityKind>) -> Column {
        Column {
            name: name.to_owned(),
            type_oid: base,
            base_type_oid: base,
            type_modifier: -1,
            type_name: type_name.to_owned(),
            in_replica_identity: false,
            identity,
            attnum: None,
        }
    }

    /// A table whose names try every trick: quotes, a semicolon, a newline, non-ASCII.
    fn hostile_schema(key: Vec<usize>) -> Arc<RelationSchema> {
        Arc::new(RelationSchema {
            oid: 1,
            table: TableName::new("sch\"ema", "ta'ble; DROP TABLE x"),
            replica_identity: ReplicaIdentity::Full,
            columns: vec![
                column("id", "integer", 23, Some(IdentityKind::Always)),
                column("na\"me\n-- x", "text", 25, None),
                column("doc", "json", 114, None),
                column("amount", "numeric(12,4)", 1700, None),
            ],
            key,
            foreign_keys: Vec::<ForeignKey>::new(),
            key_read_later: false,
        })
    }

    fn image(schema: &Arc<RelationSchema>, values: &[Option<&str>]) -> Image {
        Image {
            schema: schema.clone(),
            row: values.iter().map(|value| Value::from(*value)).collect(),
        }
    }

    fn header() -> ScriptHeader {
        ScriptHeader {
            title:
                "undo change 7 (update of sch\"ema.ta'ble; DROP TABLE x (id)=(1))\nDROP TABLE y;"
                    .into(),
            cache: "/tmp/a cache.db".into(),
            source: "ann@db:5432/shop (PostgreSQL 15.4)".into(),
            written_at: chrono::DateTime::from_timestamp(1_795_000_000, 0).unwrap(),
            notes: vec!["a note".into()],
            context: None,
        }
    }

    const HOSTILE: &str = "it's \\ $$ $rowtrail$\n'); DROP TABLE x; -- ünï";

    #[test]
    fn update_script_with_hostile_names_and_values() {
        let schema = hostile_schema(vec![0]);
        let step = Step {
            table: schema.table.clone(),
            current: Some(image(
                &schema,
                &[Some("1"), Some(HOSTILE), Some("{\"a\": 1}"), Some("2.5000")],
            )),
            target: Some(image(
                &schema,
                &[Some("1"), Some("plain"), Some("{\"a\": 1}"), None],
            )),
            reason: "undo change 7 (update)".into(),
            newest: ChangeId(7),
        };
        let script = render_script(&header(), &[step], true).unwrap();
        let expected = r#"-- rowtrail restore script
-- undo change 7 (update of sch"ema.ta'ble; DROP TABLE x (id)=(1))\nDROP TABLE y;
-- cache:  /tmp/a cache.db
-- source: ann@db:5432/shop (PostgreSQL 15.4)
-- written 2026-11-18 11:06:40 UTC by rowtrail VERSION
-- Run it with: psql -v ON_ERROR_STOP=1 -f this-file.sql
-- It runs in one transaction: if any row changed since the cache saw it, nothing is changed.
-- a note

SET client_encoding = 'UTF8';
BEGIN;
SET LOCAL standard_conforming_strings = on;
SET LOCAL DateStyle = 'ISO, MDY';
SET LOCAL IntervalStyle = 'postgres';

-- undo change 7 (update)
DO $rowtrail1$
BEGIN
  UPDATE "sch""ema"."ta'ble; DROP TABLE x" SET "na""me
-- x" = 'plain'::text, "amount" = NULL WHERE "id" = '1'::integer AND "na""me
-- x" IS NOT DISTINCT FROM 'it''s \ $$ $rowtrail$
''); DROP TABLE x; -- ünï'::text AND "amount" IS NOT DISTINCT FROM '2.5000'::numeric(12,4);
  IF NOT FOUND THEN
    RAISE EXCEPTION USING MESSAGE = 'rowtrail guard: sch"ema.ta''ble; DROP TABLE x (id)=(1) no longer holds what the cache last saw (undo change 7 (update)); nothing was changed',
      HINT = 'The row changed after the cache last saw it: bring the cache up to date (capture or import again) and review its history.';
  END IF;
END
$rowtrail1$;

COMMIT;
"#;
        assert_eq!(
            script,
            expected.replace("VERSION", env!("CARGO_PKG_VERSION"))
        );
    }

    #[test]
    fn reinsert_overrides_identity_and_checks_the_key() {
        let schema = hostile_schema(vec![0]);
        let step = Step {
            table: schema.table.clone(),
            current: None,
            target: Some(image(
                &schema,
                &[Some("1"), None, Some("[1, 2]"), Some("12.3400")],
            )),
            reason: "undo change 9 (delete)".into(),
            newest: ChangeId(9),
        };
        let script = render_script(&header(), &[step], true).unwrap();
        assert!(script.contains(
            "  IF EXISTS (SELECT FROM \"sch\"\"ema\".\"ta'ble; DROP TABLE x\" WHERE \"id\" = '1'::integer) THEN\n    RAISE EXCEPTION USING MESSAGE = 'rowtrail guard: sch\"ema.ta''ble; DROP TABLE x (id)=(1) already exists, so it cannot be inserted again (undo change 9 (delete)); nothing was changed';\n  END IF;\n  INSERT INTO \"sch\"\"ema\".\"ta'ble; DROP TABLE x\" (\"id\", \"na\"\"me\n-- x\", \"doc\", \"amount\") OVERRIDING SYSTEM VALUE VALUES ('1'::integer, NULL, '[1, 2]'::json, '12.3400'::numeric(12,4));"
        ), "{script}");
        let unguarded = render_script(
            &header(),
            &[Step {
                table: schema.table.clone(),
                current: None,
                target: Some(image(&schema, &[Some("1"), None, None, None])),
                reason: "r".into(),
                newest: ChangeId(9),
            }],
            false,
        )
        .unwrap();
        assert!(unguarded.ends_with("-- r\nINSERT INTO \"sch\"\"ema\".\"ta'ble; DROP TABLE x\" (\"id\", \"na\"\"me\n-- x\", \"doc\", \"amount\") OVERRIDING SYSTEM VALUE VALUES ('1'::integer, NULL, NULL, NULL);\n\nCOMMIT;\n"), "{unguarded}");
    }

    #[test]
    fn tables_without_a_key_match_one_row_on_all_columns() {
        let schema = hostile_schema(Vec::new());
        let step = Step {
            table: schema.table.clone(),
            current: Some(image(&schema, &[Some("1"), Some("a"), Some("{}"), None])),
            target: None,
            reason: "undo change 3 (insert)".into(),
            newest: ChangeId(3),
        };
        let script = render_script(&header(), &[step], false).unwrap();
        assert!(script.ends_with(
            "-- undo change 3 (insert)\n-- the table has no primary key: the row is matched on all its columns, one row at a time\nDELETE FROM \"sch\"\"ema\".\"ta'ble; DROP TABLE x\" WHERE ctid = (SELECT ctid FROM \"sch\"\"ema\".\"ta'ble; DROP TABLE x\" WHERE \"id\" IS NOT DISTINCT FROM '1'::integer AND \"na\"\"me\n-- x\" IS NOT DISTINCT FROM 'a'::text AND \"doc\"::text IS NOT DISTINCT FROM '{}' AND \"amount\" IS NOT DISTINCT FROM NULL LIMIT 1);\n\nCOMMIT;\n"
        ), "{script}");
    }

    #[test]
    fn unknown_values_the_restore_needs_are_refused() {
        let schema = hostile_schema(vec![0]);
        let mut target = image(&schema, &[Some("1"), Some("old"), None, None]);
        target.row[1] = Value::Unavailable;
        let step = Step {
            table: schema.table.clone(),
            current: Some(image(&schema, &[Some("1"), Some("new"), None, None])),
            target: Some(target.clone()),
            reason: "undo change 4 (update)".into(),
            newest: ChangeId(4),
        };
        let error = render_script(&header(), &[step], true).unwrap_err();
        assert!(
            matches!(error, HistoryError::Unrestorable { ref column, .. } if column == "na\"me\n-- x"),
            "{error}"
        );
        let reinsert = Step {
            table: schema.table.clone(),
            current: None,
            target: Some(target),
            reason: "undo change 5 (delete)".into(),
            newest: ChangeId(5),
        };
        assert!(render_script(&header(), &[reinsert], true).is_err());
    }

    #[test]
    fn hostile_type_names_are_refused() {
        let mut schema = (*hostile_schema(vec![0])).clone();
        schema.columns[3].type_name = "numeric; DROP TABLE x".into();
        let schema = Arc::new(schema);
        let step = Step {
            table: schema.table.clone(),
            current: Some(image(&schema, &[Some("1"), None, None, Some("1")])),
            target: Some(image(&schema, &[Some("1"), None, None, Some("2")])),
            reason: "r".into(),
            newest: ChangeId(1),
        };
        assert!(matches!(
            render_script(&header(), &[step], true),
            Err(HistoryError::UnsafeTypeName { .. })
        ));
    }
}
