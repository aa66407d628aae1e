//! Bemi's `changes` table: one row per row change, written by Bemi's worker from Debezium's
//! events after the source transaction commits.
//!
//! - `before` / `after` (jsonb) hold the row in Debezium's value encoding ([`debezium_values`]);
//!   `{}` where there is no image (an INSERT's before, a DELETE's after, an UPDATE's before
//!   unless the table has `REPLICA IDENTITY FULL`). Without it, a DELETE's before holds the key
//!   with every other column null: those nulls are not values, and only the key is kept.
//! - `operation` is `CREATE`, `UPDATE`, `DELETE`, `TRUNCATE` (or `MESSAGE`, without rows).
//! - `transaction_id` is the source transaction's xid, `committed_at` its commit time (to the
//!   millisecond), `position` the change's WAL position, `context` what the application said
//!   through Bemi's `_bemi` messages, `primary_key` the row's `id`.
//!
//! The mapping (`change_of`) is pure; `import` walks the table in commit order.

use serde_json::Value as Json;
use tokio::sync::watch;

use crate::model::{Context, RelationSchema, ReplicaIdentity, TableName};
use crate::store::SourceIdentity;

use super::debezium_values::{self, Decoded, Kind};
use super::sink::{ImportedTransaction, Sink};
use super::{
    AuditFormat, BATCH_TRANSACTIONS, Fields, ImportError, ImportOptions, ImportSummary,
    ImportedChange, ImportedOp, RowError, Store, wait_for_more,
};

/// The store's table.
pub(super) const TABLE: &str = "changes";

/// Each audited table and how many rows the store holds for it, most first.
pub(super) const TABLES_SQL: &str =
    "SELECT schema || '.' || \"table\", count(*) FROM changes GROUP BY 1 ORDER BY 2 DESC, 1";

/// The columns the import reads, and their types.
pub(super) const COLUMNS: &[(&str, &str)] = &[
    ("id", "uuid"),
    ("primary_key", "character varying|text"),
    ("before", "jsonb"),
    ("after", "jsonb"),
    ("context", "jsonb"),
    ("schema", "character varying|text"),
    ("table", "character varying|text"),
    ("operation", "text|character varying"),
    ("committed_at", "timestamp with time zone"),
    ("transaction_id", "bigint|integer"),
    ("position", "bigint"),
];

/// One row of `changes`, as read.
#[derive(Debug, Clone, PartialEq)]
pub struct BemiRow {
    pub id: String,
    pub primary_key: Option<String>,
    pub before: Option<String>,
    pub after: Option<String>,
    pub context: Option<String>,
    pub schema: String,
    pub table: String,
    pub operation: String,
    pub position: i64,
}

/// What one row holds.
#[derive(Debug, Clone, PartialEq)]
pub enum Entry {
    Change(ImportedChange),
    /// A `MESSAGE` row: no row changed.
    Message,
}

/// The change one row records. `catalog` is its table as the catalog beside the store has it:
/// it gives the values' types, the key, and whether a before-image is whole.
pub fn change_of(row: &BemiRow, catalog: Option<&RelationSchema>) -> Result<Entry, RowError> {
    let error = |field: &str, reason: String| RowError {
        row: format!("changes row {}", row.id),
        field: field.to_owned(),
        reason,
    };
    let table = TableName::new(row.schema.clone(), row.table.clone());
    let op = match row.operation.as_str() {
        "CREATE" => ImportedOp::Insert,
        "UPDATE" => ImportedOp::Update,
        "DELETE" => ImportedOp::Delete,
        "TRUNCATE" => ImportedOp::Truncate,
        "MESSAGE" => return Ok(Entry::Message),
        other => {
            return Err(error(
                "operation",
                format!("is {other:?}, not CREATE, UPDATE, DELETE, TRUNCATE or MESSAGE"),
            ));
        }
    };
    let image = |field: &str, json: Option<&str>| -> Result<Option<Fields>, RowError> {
        let Some(json) = json else {
            return Ok(None);
        };
        let object = match serde_json::from_str::<Json>(json) {
            Ok(Json::Object(object)) => object,
            _ => return Err(error(field, format!("is not a JSON object: {json}"))),
        };
        if object.is_empty() {
            return Ok(None);
        }
        fields_of(&object, catalog)
            .map(Some)
            .map_err(|reason| error(field, reason))
    };
    let mut before = image("before", row.before.as_deref())?;
    let after = image("after", row.after.as_deref())?;
    // Without REPLICA IDENTITY FULL the old row is its key; the other columns' nulls are fillers.
    if let (Some(catalog), Some(fields)) = (catalog, before.as_mut())
        && catalog.replica_identity != ReplicaIdentity::Full
        && !catalog.key.is_empty()
    {
        let key: Vec<&str> = catalog
            .key
            .iter()
            .map(|&index| catalog.columns[index].name.as_str())
            .collect();
        fields.retain(|(name, _)| key.contains(&name.as_str()));
    }
    match op {
        ImportedOp::Insert if after.is_none() => {
            return Err(error("after", "is empty for a CREATE".to_owned()));
        }
        ImportedOp::Update if after.is_none() => {
            return Err(error("after", "is empty for an UPDATE".to_owned()));
        }
        _ => {}
    }
    let (before, after) = match op {
        ImportedOp::Insert => (None, after),
        ImportedOp::Delete => (before, None),
        ImportedOp::Update => (before, after),
        ImportedOp::Truncate => (None, None),
    };
    let has_id = |fields: &Option<Fields>| {
        fields
            .as_ref()
            .is_some_and(|fields| fields.iter().any(|(name, _)| name == "id"))
    };
    let key = if row.primary_key.is_some() && (has_id(&before) || has_id(&after)) {
        vec!["id".to_owned()]
    } else {
        Vec::new()
    };
    Ok(Entry::Change(ImportedChange {
        table,
        op,
        before,
        after,
        key,
        types: Vec::new(),
    }))
}

/// A row's columns as text, each decoded by its column's type in the catalog (unknown columns
/// as they are).
pub(super) fn fields_of(
    object: &serde_json::Map<String, Json>,
    catalog: Option<&RelationSchema>,
) -> Result<Fields, String> {
    let mut fields = Vec::with_capacity(object.len());
    for (name, value) in object {
        let kind = catalog
            .and_then(|schema| schema.column_index(name).map(|i| &schema.columns[i]))
            .map_or(Kind::Unknown, Kind::of_column);
        match debezium_values::decode(value, &kind).map_err(|why| format!("column {name} {why}"))? {
            Decoded::Null => fields.push((name.clone(), None)),
            Decoded::Text(text) => fields.push((name.clone(), Some(text))),
            Decoded::Unavailable => {}
        }
    }
    Ok(fields)
}

/// Who made the change, as the application told Bemi; `None` when it told nothing.
pub fn context_of(row: &BemiRow) -> Option<Context> {
    match serde_json::from_str::<Json>(row.context.as_deref()?) {
        Ok(Json::Object(context)) if !context.is_empty() => Some(context),
        _ => None,
    }
}

/// Where an import of `changes` resumes: every transaction committed before `at` (microseconds
/// since 1970) is imported, and of those committed at `at`, the ones in `done`.
///
/// Bemi's worker writes transactions in commit order, so new rows come with commit times at or
/// after the last imported; a transaction is named by its commit time and xid.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct BemiCursor {
    at: Option<i64>,
    #[serde(default)]
    done: Vec<i64>,
}

/// Imports `changes` into the cache, round after round with `--follow`.
pub(super) async fn import(
    store: &Store,
    options: &ImportOptions,
    source: &SourceIdentity,
    mut stop: watch::Receiver<bool>,
    progress: &(dyn Fn(&ImportSummary) + Sync),
) -> Result<ImportSummary, ImportError> {
    store.check_table(AuditFormat::Bemi, TABLE, COLUMNS).await?;
    let mut sink = Sink::open(options, source)?;
    let mut cursor: BemiCursor = sink.cursor()?;
    // With --follow, the newest transaction waits a round: the worker may still be writing it.
    let mut newest_seen: Option<(i64, i64, i64)> = None;
    loop {
        let mut transactions = list(store, &cursor).await?;
        if options.follow
            && let Some(&(xid, at, _, rows)) = transactions.last()
            && newest_seen != Some((xid, at, rows))
        {
            newest_seen = Some((xid, at, rows));
            transactions.pop();
        }
        for batch in transactions.chunks(BATCH_TRANSACTIONS) {
            let rows = read_rows(store, batch).await?;
            for &(xid, at, _, _) in batch {
                let rows: Vec<&(i64, i64, BemiRow)> = rows
                    .iter()
                    .filter(|(row_xid, row_at, _)| *row_xid == xid && *row_at == at)
                    .collect();
                let written = write_transaction(store, &mut sink, xid, at, &rows).await;
                if let Err(error) = written {
                    if matches!(error, ImportError::BadRow(_)) {
                        sink.save(&cursor)?;
                    }
                    return Err(error);
                }
                if cursor.at == Some(at) {
                    cursor.done.push(xid);
                } else {
                    cursor = BemiCursor {
                        at: Some(at),
                        done: vec![xid],
                    };
                }
            }
            sink.save(&cursor)?;
            progress(&sink.summary);
            if *stop.borrow() {
                return Ok(sink.summary);
            }
        }
        sink.save(&cursor)?;
        if !wait_for_more(options, &mut stop).await {
            break;
        }
    }
    Ok(sink.summary)
}

/// The transactions not imported yet, in commit order: xid, commit time, last position, rows.
async fn list(
    store: &Store,
    cursor: &BemiCursor,
) -> Result<Vec<(i64, i64, i64, i64)>, ImportError> {
    let rows = store
        .session
        .query(
            "listing Bemi's transactions",
            "SELECT transaction_id::int8, (extract(epoch FROM committed_at) * 1000000)::int8 AS at,
                    max(position), count(*)
             FROM changes
             WHERE $1::int8 IS NULL
                OR committed_at >= 'epoch'::timestamptz + $1::int8 * interval '1 microsecond'
             GROUP BY 1, 2 ORDER BY 2, 3",
            &[&cursor.at],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|row| (row.get(0), row.get(1), row.get(2), row.get(3)))
        .filter(|&(xid, at, _, _): &(i64, i64, i64, i64)| {
            cursor
                .at
                .is_none_or(|after| at > after || (at == after && !cursor.done.contains(&xid)))
        })
        .collect())
}

async fn read_rows(
    store: &Store,
    batch: &[(i64, i64, i64, i64)],
) -> Result<Vec<(i64, i64, BemiRow)>, ImportError> {
    let ids: Vec<i64> = batch.iter().map(|&(xid, _, _, _)| xid).collect();
    let first = batch.iter().map(|&(_, at, _, _)| at).min().unwrap_or(0);
    let last = batch.iter().map(|&(_, at, _, _)| at).max().unwrap_or(0);
    let rows = store
        .session
        .query(
            "reading Bemi's changes",
            "SELECT transaction_id::int8, (extract(epoch FROM committed_at) * 1000000)::int8,
                    id::text, primary_key::text, before::text, after::text, context::text,
                    schema::text, \"table\"::text, operation::text, position
             FROM changes
             WHERE transaction_id::int8 = ANY($1)
               AND committed_at BETWEEN 'epoch'::timestamptz + $2::int8 * interval '1 microsecond'
                                    AND 'epoch'::timestamptz + $3::int8 * interval '1 microsecond'
             ORDER BY position, id",
            &[&ids, &first, &last],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|row| {
            (
                row.get(0),
                row.get(1),
                BemiRow {
                    id: row.get(2),
                    primary_key: row.get(3),
                    before: row.get(4),
                    after: row.get(5),
                    context: row.get(6),
                    schema: row.get::<_, Option<String>>(7).unwrap_or_default(),
                    table: row.get::<_, Option<String>>(8).unwrap_or_default(),
                    operation: row.get::<_, Option<String>>(9).unwrap_or_default(),
                    position: row.get(10),
                },
            )
        })
        .collect())
}

async fn write_transaction(
    store: &Store,
    sink: &mut Sink,
    xid: i64,
    at: i64,
    rows: &[&(i64, i64, BemiRow)],
) -> Result<(), ImportError> {
    let mut changes = Vec::with_capacity(rows.len());
    for (_, _, row) in rows {
        let table = TableName::new(row.schema.clone(), row.table.clone());
        let catalog = sink
            .catalog_schema(&store.session, store.server_version_num, &table)
            .await?
            .cloned();
        match change_of(row, catalog.as_ref()) {
            Ok(Entry::Change(change)) => changes.push((change, context_of(row))),
            Ok(Entry::Message) => sink.summary.statement_only += 1,
            Err(error) => sink.bad_row(error)?,
        }
    }
    sink.write(ImportedTransaction::new(Some(xid), at, changes))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // In tests a failed unwrap is a failed test.
mod tests {
    use super::*;
    use crate::model::Column;

    fn row(operation: &str, before: &str, after: &str) -> BemiRow {
        BemiRow {
            id: "0b7e".into(),
            primary_key: Some("7".into()),
            before: Some(before.into()),
            after: Some(after.into()),
            context: Some(r#"{"user": "ann"}"#.into()),
            schema: "public".into(),
            table: "orders".into(),
            operation: operation.into(),
            position: 1,
        }
    }

    fn catalog(identity: ReplicaIdentity) -> RelationSchema {
        let column = |name: &str, type_name: &str, oid: u32| Column {
            name: name.into(),
            type_oid: oid,
            base_type_oid: oid,
            type_modifier: -1,
            type_name: type_name.into(),
            in_replica_identity: name == "id",
            identity: None,
            attnum: None,
        };
        RelationSchema {
            oid: 16_400,
            table: TableName::new("public", "orders"),
            replica_identity: identity,
            columns: vec![
                column("id", "integer", 23),
                column("total", "numeric(12,2)", 1700),
                column("day", "date", 1082),
            ],
            key: vec![0],
            foreign_keys: Vec::new(),
            key_read_later: true,
        }
    }

    fn change(entry: Entry) -> ImportedChange {
        match entry {
            Entry::Change(change) => change,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn values_are_decoded_by_the_catalogs_types() {
        let schema = catalog(ReplicaIdentity::Default);
        let insert = change(
            change_of(
                &row(
                    "CREATE",
                    "{}",
                    r#"{"id": 7, "total": "BBo=", "day": 19724}"#,
                ),
                Some(&schema),
            )
            .unwrap(),
        );
        assert_eq!(insert.op, ImportedOp::Insert);
        assert!(insert.before.is_none());
        let after = insert.after.unwrap();
        assert!(after.contains(&("total".to_owned(), Some("10.50".to_owned()))));
        assert!(after.contains(&("day".to_owned(), Some("2024-01-02".to_owned()))));
        assert_eq!(insert.key, ["id"]);
    }

    #[test]
    fn a_before_image_without_full_identity_is_its_key() {
        let default = catalog(ReplicaIdentity::Default);
        let delete = change(
            change_of(
                &row("DELETE", r#"{"id": 7, "total": null, "day": null}"#, "{}"),
                Some(&default),
            )
            .unwrap(),
        );
        assert_eq!(
            delete.before.unwrap(),
            vec![("id".to_owned(), Some("7".to_owned()))]
        );
        let full = catalog(ReplicaIdentity::Full);
        let delete = change(
            change_of(
                &row("DELETE", r#"{"id": 7, "total": null, "day": null}"#, "{}"),
                Some(&full),
            )
            .unwrap(),
        );
        assert_eq!(delete.before.unwrap().len(), 3);
        let update = change(
            change_of(
                &row("UPDATE", "{}", r#"{"id": 7, "total": null}"#),
                Some(&default),
            )
            .unwrap(),
        );
        assert!(update.before.is_none());
        assert_eq!(update.after.unwrap().len(), 2);
    }

    #[test]
    fn bad_rows_name_their_row_and_field() {
        let unknown = change_of(&row("UPSERT", "{}", "{}"), None).unwrap_err();
        assert_eq!(unknown.field, "operation");
        assert!(
            unknown.to_string().contains("changes row 0b7e"),
            "{unknown}"
        );
        let schema = catalog(ReplicaIdentity::Default);
        let garbled = change_of(&row("CREATE", "{}", r#"{"id": "x"}"#), Some(&schema)).unwrap_err();
        assert_eq!(garbled.field, "after");
        assert!(garbled.reason.contains("column id"), "{garbled}");
        let empty = change_of(&row("UPDATE", "{}", "{}"), None).unwrap_err();
        assert_eq!(empty.field, "after");
        assert_eq!(
            change_of(&row("MESSAGE", "{}", "{}"), None).unwrap(),
            Entry::Message
        );
        assert_eq!(
            context_of(&row("CREATE", "{}", "{}")).unwrap()["user"],
            "ann"
        );
    }
}
