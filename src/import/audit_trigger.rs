//! The PostgreSQL wiki's audit trigger (`audit.logged_actions`): one row per row change, or per
//! statement when a table is audited with `audit_rows = false`.
//!
//! - `row_data` (hstore) is the new row of an INSERT and the old row of an UPDATE or DELETE.
//! - `changed_fields` (hstore) holds the new values of the columns an UPDATE changed.
//! - `action` is `I`, `U`, `D` or `T` (TRUNCATE, always statement-level).
//! - `transaction_id` is `txid_current()`; `action_tstamp_clk` the clock time of the change.
//! - `session_user_name`, `application_name`, `client_addr`, `client_query` say who and how.
//!
//! Columns the trigger was told to leave out (`ignored_cols`) are missing from both hstores:
//! they become unavailable values, never NULL. Pure: rows in, changes out.

use serde_json::{Map, Value as Json};

use crate::model::{Context, TableName};

use super::{Fields, ImportedChange, ImportedOp, RowError};

/// One row of `audit.logged_actions`, as read (hstores as JSON objects of text).
#[derive(Debug, Clone, PartialEq)]
pub struct AuditRow {
    pub event_id: i64,
    pub schema_name: String,
    pub table_name: String,
    pub transaction_id: Option<i64>,
    pub action: String,
    pub row_data: Option<String>,
    pub changed_fields: Option<String>,
    pub statement_only: bool,
    pub session_user_name: Option<String>,
    pub application_name: Option<String>,
    pub client_addr: Option<String>,
    pub client_query: Option<String>,
    /// `action_tstamp_clk`, microseconds since 1970.
    pub clock_micros: i64,
}

/// What one audit row holds: a change, or a statement-level entry without rows.
#[derive(Debug, Clone, PartialEq)]
pub enum Entry {
    Change(ImportedChange),
    /// An INSERT, UPDATE or DELETE audited per statement: the store has no rows for it.
    StatementOnly,
}

/// The change one audit row records.
pub fn entry_of(row: &AuditRow) -> Result<Entry, RowError> {
    let table = TableName::new(row.schema_name.clone(), row.table_name.clone());
    let error = |field: &str, reason: String| RowError {
        row: format!("event_id {}", row.event_id),
        field: field.to_owned(),
        reason,
    };
    let op = match row.action.as_str() {
        "I" => ImportedOp::Insert,
        "U" => ImportedOp::Update,
        "D" => ImportedOp::Delete,
        "T" => {
            return Ok(Entry::Change(ImportedChange {
                table,
                op: ImportedOp::Truncate,
                before: None,
                after: None,
            }));
        }
        other => {
            return Err(error(
                "action",
                format!("unknown action {other:?} (expected I, U, D or T)"),
            ));
        }
    };
    if row.statement_only {
        return Ok(Entry::StatementOnly);
    }
    let data = fields(row.row_data.as_deref())
        .map_err(|reason| error("row_data", reason))?
        .ok_or_else(|| error("row_data", "is NULL for a row-level change".to_owned()))?;
    let (before, after) = match op {
        ImportedOp::Insert => (None, Some(data)),
        ImportedOp::Delete => (Some(data), None),
        _ => {
            let changed = fields(row.changed_fields.as_deref())
                .map_err(|reason| error("changed_fields", reason))?
                .unwrap_or_default();
            let mut after = data.clone();
            for (name, value) in changed {
                match after.iter_mut().find(|(own, _)| *own == name) {
                    Some(slot) => slot.1 = value,
                    None => after.push((name, value)),
                }
            }
            (Some(data), Some(after))
        }
    };
    Ok(Entry::Change(ImportedChange {
        table,
        op,
        before,
        after,
    }))
}

/// Who made the change, as the trigger recorded it; `None` when it recorded nothing.
pub fn context_of(row: &AuditRow) -> Option<Context> {
    let mut context = Map::new();
    for (name, value) in [
        ("session_user_name", &row.session_user_name),
        ("application_name", &row.application_name),
        ("client_addr", &row.client_addr),
        ("client_query", &row.client_query),
    ] {
        if let Some(value) = value.as_ref().filter(|value| !value.is_empty()) {
            context.insert(name.to_owned(), Json::String(value.clone()));
        }
    }
    (!context.is_empty()).then_some(context)
}

/// An hstore read as a JSON object of text (`hstore_to_json`): column names and values, NULL
/// as `None`.
fn fields(json: Option<&str>) -> Result<Option<Fields>, String> {
    let Some(json) = json else {
        return Ok(None);
    };
    let Ok(Json::Object(object)) = serde_json::from_str::<Json>(json) else {
        return Err(format!("is not an hstore of column values: {json}"));
    };
    object
        .into_iter()
        .map(|(name, value)| match value {
            Json::String(text) => Ok((name, Some(text))),
            Json::Null => Ok((name, None)),
            other => Err(format!("column {name} holds {other}, not text")),
        })
        .collect::<Result<Fields, String>>()
        .map(Some)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // In tests a failed unwrap is a failed test.
mod tests {
    use super::*;

    fn row(action: &str, row_data: Option<&str>, changed: Option<&str>) -> AuditRow {
        AuditRow {
            event_id: 7,
            schema_name: "public".into(),
            table_name: "orders".into(),
            transaction_id: Some(1000),
            action: action.into(),
            row_data: row_data.map(str::to_owned),
            changed_fields: changed.map(str::to_owned),
            statement_only: false,
            session_user_name: Some("ann".into()),
            application_name: Some(String::new()),
            client_addr: None,
            client_query: Some("UPDATE orders SET status = 'paid'".into()),
            clock_micros: 0,
        }
    }

    fn text(pairs: &[(&str, Option<&str>)]) -> Fields {
        pairs
            .iter()
            .map(|(name, value)| ((*name).to_owned(), value.map(str::to_owned)))
            .collect()
    }

    #[test]
    fn an_update_is_the_old_row_and_the_changed_fields_over_it() {
        let entry = entry_of(&row(
            "U",
            Some(r#"{"id": "7", "status": "new", "note": null}"#),
            Some(r#"{"status": "paid", "note": "rush"}"#),
        ))
        .unwrap();
        let Entry::Change(change) = entry else {
            panic!("{entry:?}")
        };
        assert_eq!(change.op, ImportedOp::Update);
        assert_eq!(
            change.before.unwrap(),
            text(&[("id", Some("7")), ("status", Some("new")), ("note", None)])
        );
        assert_eq!(
            change.after.unwrap(),
            text(&[
                ("id", Some("7")),
                ("status", Some("paid")),
                ("note", Some("rush"))
            ])
        );
    }

    #[test]
    fn inserts_deletes_truncates_and_statement_rows() {
        let Entry::Change(insert) = entry_of(&row("I", Some(r#"{"id": "1"}"#), None)).unwrap()
        else {
            panic!()
        };
        assert!(insert.before.is_none() && insert.after.is_some());
        let Entry::Change(delete) = entry_of(&row("D", Some(r#"{"id": "1"}"#), None)).unwrap()
        else {
            panic!()
        };
        assert!(delete.before.is_some() && delete.after.is_none());
        let Entry::Change(truncate) = entry_of(&row("T", None, None)).unwrap() else {
            panic!()
        };
        assert_eq!(truncate.op, ImportedOp::Truncate);
        let mut statement = row("U", None, None);
        statement.statement_only = true;
        assert_eq!(entry_of(&statement).unwrap(), Entry::StatementOnly);
    }

    #[test]
    fn bad_rows_name_their_event_and_field() {
        let unknown = entry_of(&row("X", None, None)).unwrap_err();
        assert_eq!(
            (unknown.row.as_str(), unknown.field.as_str()),
            ("event_id 7", "action")
        );
        let missing = entry_of(&row("I", None, None)).unwrap_err();
        assert_eq!(missing.field, "row_data");
        let garbled = entry_of(&row("U", Some(r#"{"id": "1"}"#), Some("[1]"))).unwrap_err();
        assert_eq!(garbled.field, "changed_fields");
        assert!(garbled.to_string().contains("event_id 7"), "{garbled}");
    }

    #[test]
    fn context_keeps_what_was_recorded() {
        let context = context_of(&row("I", Some("{}"), None)).unwrap();
        assert_eq!(context["session_user_name"], "ann");
        assert!(
            !context.contains_key("application_name"),
            "empty is left out"
        );
        assert!(!context.contains_key("client_addr"));
    }
}
