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
//! they become unavailable values, never NULL. The mapping (`entry_of`, `context_of`) is pure;
//! `import` walks the table in commit order.

use std::collections::HashMap;

use serde_json::{Map, Value as Json};
use tokio::sync::watch;

use crate::model::{Context, TableName};
use crate::store::SourceIdentity;

use super::rounds::{TransactionLog, import_rounds};
use super::sink::{ImportedTransaction, Sink};
use super::{
    AuditFormat, Fields, ImportError, ImportOptions, ImportSummary, ImportedChange, ImportedOp,
    RowError, Store,
};

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
                key: Vec::new(),
                types: Vec::new(),
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
        key: Vec::new(),
        types: Vec::new(),
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

/// The store's table.
pub(super) const TABLE: &str = "audit.logged_actions";

/// Each audited table and how many rows the store holds for it, most first.
pub(super) const TABLES_SQL: &str = "SELECT schema_name || '.' || table_name, count(*) FROM audit.logged_actions GROUP BY 1 ORDER BY 2 DESC, 1";

/// The columns the import reads, and their types.
pub(super) const COLUMNS: &[(&str, &str)] = &[
    ("event_id", "bigint"),
    ("schema_name", "text"),
    ("table_name", "text"),
    ("transaction_id", "bigint"),
    ("action", "text"),
    ("row_data", "hstore"),
    ("changed_fields", "hstore"),
    ("statement_only", "boolean"),
    ("action_tstamp_clk", "timestamp with time zone"),
    ("session_user_name", "text"),
    ("application_name", "text"),
    ("client_addr", "inet"),
    ("client_query", "text"),
];

/// Imports `audit.logged_actions` into the cache, round after round with `--follow`.
pub(super) async fn import(
    store: &Store,
    options: &ImportOptions,
    source: &SourceIdentity,
    stop: watch::Receiver<bool>,
    progress: &(dyn Fn(&ImportSummary) + Sync),
) -> Result<ImportSummary, ImportError> {
    store
        .check_table(AuditFormat::PgAuditTrigger, TABLE, COLUMNS)
        .await?;
    let mut sink = Sink::open(options, source)?;
    import_rounds(
        &mut LoggedActions { store },
        store,
        &mut sink,
        options,
        stop,
        progress,
    )
    .await?;
    Ok(sink.summary)
}

struct LoggedActions<'a> {
    store: &'a Store,
}

impl TransactionLog for LoggedActions<'_> {
    type Row = AuditRow;

    const TRANSACTIONS_SQL: &'static str =
        "SELECT transaction_id, min(event_id), max(event_id) FROM audit.logged_actions
         WHERE transaction_id >= $1
           AND txid_visible_in_snapshot(transaction_id, $2::text::txid_snapshot)
           AND transaction_id <> ALL($3)
         GROUP BY transaction_id HAVING max(event_id) > $4 ORDER BY 3";

    const ENDED_SQL: &'static str = "SELECT DISTINCT transaction_id FROM audit.logged_actions
         WHERE transaction_id >= $1
           AND txid_visible_in_snapshot(transaction_id, $2::text::txid_snapshot)
         ORDER BY 1";

    async fn read(
        &mut self,
        transactions: &[i64],
        first: i64,
        last: i64,
    ) -> Result<HashMap<i64, Vec<AuditRow>>, ImportError> {
        let mut by_tx: HashMap<i64, Vec<AuditRow>> = HashMap::new();
        for row in read_rows(self.store, transactions, first, last).await? {
            by_tx
                .entry(row.transaction_id.unwrap_or_default())
                .or_default()
                .push(row);
        }
        Ok(by_tx)
    }

    async fn write(
        &mut self,
        sink: &mut Sink,
        txid: i64,
        rows: Vec<AuditRow>,
    ) -> Result<(), ImportError> {
        write_transaction(self.store, sink, txid, rows).await
    }
}

async fn read_rows(
    store: &Store,
    transactions: &[i64],
    first: i64,
    last: i64,
) -> Result<Vec<AuditRow>, ImportError> {
    let rows = store
        .session
        .query(
            "reading audit rows",
            "SELECT event_id, schema_name, table_name, transaction_id, action,
                    hstore_to_json(row_data)::text, hstore_to_json(changed_fields)::text,
                    statement_only, session_user_name, application_name, client_addr::text,
                    client_query,
                    CASE WHEN isfinite(action_tstamp_clk)
                         THEN (extract(epoch FROM action_tstamp_clk) * 1000000)::int8 END
             FROM audit.logged_actions
             WHERE event_id BETWEEN $2 AND $3 AND transaction_id = ANY($1)
             ORDER BY event_id",
            &[&transactions, &first, &last],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|row| AuditRow {
            // Columns the wiki's table declares NOT NULL are read as optional all the same:
            // a store of another make may hold NULLs, which become errors of their row.
            event_id: row.get(0),
            schema_name: row.get::<_, Option<String>>(1).unwrap_or_default(),
            table_name: row.get::<_, Option<String>>(2).unwrap_or_default(),
            transaction_id: row.get(3),
            action: row.get::<_, Option<String>>(4).unwrap_or_default(),
            row_data: row.get(5),
            changed_fields: row.get(6),
            statement_only: row.get::<_, Option<bool>>(7).unwrap_or(false),
            session_user_name: row.get(8),
            application_name: row.get(9),
            client_addr: row.get(10),
            client_query: row.get(11),
            clock_micros: row.get::<_, Option<i64>>(12).unwrap_or(i64::MIN),
        })
        .collect())
}

/// Writes one audit transaction as a cache transaction: its changes in event order, the context
/// of each row that has one, its time the clock time of its last row.
async fn write_transaction(
    store: &Store,
    sink: &mut Sink,
    txid: i64,
    rows: Vec<AuditRow>,
) -> Result<(), ImportError> {
    let mut changes = Vec::new();
    let mut committed_micros = i64::MIN;
    for row in &rows {
        committed_micros = committed_micros.max(row.clock_micros);
        match entry_of(row) {
            Ok(Entry::Change(change)) => changes.push((change, context_of(row))),
            Ok(Entry::StatementOnly) => sink.summary.statement_only += 1,
            Err(error) => sink.bad_row(error)?,
        }
    }
    // The catalog of each table, read before the transaction is written.
    for (change, _) in &changes {
        sink.catalog_schema(&store.session, store.server_version_num, &change.table)
            .await?;
    }
    sink.write(ImportedTransaction::new(
        Some(txid),
        committed_micros,
        changes,
    ))
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
