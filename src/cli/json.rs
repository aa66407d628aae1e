//! The JSON shape of a change, as `log --json` prints it (one object per line).

use serde_json::{Map, Value as Json, json};

use crate::history::diff::mark_excluded;
use crate::history::{ColumnDiff, DiffKind, TextSpan, ValueDiff, diff_change};
use crate::model::{
    ColumnRules, Image, LoggedChange, RelationSchema, Row, SchemaChange, Value, schema_edits,
};

/// Column → value for the known values of a row; unavailable values are left out (they are
/// listed under `unavailable`), so they can never be read as NULL.
fn row_object(schema: &RelationSchema, row: &Row) -> Json {
    let mut object = Map::new();
    for (column, value) in schema.columns.iter().zip(row) {
        if value.is_available() {
            object.insert(column.name.clone(), value_json(value));
        }
    }
    Json::Object(object)
}

/// Text as a JSON string, NULL as null, and bytes that are not UTF-8 as `{"hex": "636166e9"}`, so
/// they can never be mistaken for text that happens to contain a backslash.
pub fn value_json(value: &Value) -> Json {
    match value {
        Value::Text(text) => Json::from(text.as_str()),
        Value::Bytes(bytes) => json!({ "hex": hex(bytes) }),
        Value::Null | Value::Unavailable => Json::Null,
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

fn names<'a>(schema: &'a RelationSchema, indexes: &[usize]) -> Vec<&'a str> {
    indexes
        .iter()
        .filter_map(|&index| schema.columns.get(index))
        .map(|column| column.name.as_str())
        .collect()
}

/// The `log --json` object of one change.
pub fn change_json(entry: &LoggedChange) -> Json {
    let schema = &entry.schema;
    let change = &entry.change;
    let key: Map<String, Json> = schema
        .key_column_names()
        .zip(change.key(schema))
        .map(|(name, value)| (name.to_owned(), value_json(&value)))
        .collect();
    json!({
        "id": entry.id.0,
        "lsn": entry.lsn.to_string(),
        "commit_lsn": entry.tx.commit_lsn.to_string(),
        "xid": entry.tx.xid.map(|xid| xid.0),
        "committed_at": entry.tx.committed_at.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string(),
        "schema": entry.table.schema,
        "table": entry.table.name,
        "op": change.op.as_str(),
        "key": key,
        "key_read_later": schema.key_read_later,
        "before": change.before.as_ref().map(|row| row_object(schema, row)),
        "after": change.after.as_ref().map(|row| row_object(schema, row)),
        "changed": names(schema, &change.changed_columns()),
        "unavailable": names(schema, &change.unavailable_columns()),
        "context": entry.context.clone().map(Json::Object),
        "ddl": entry.schema_change.as_ref().map(|schema_change| schema_change_json(schema_change, schema)),
        "gap": entry.gap_from.map(|from| json!({"from": from.to_string(), "to": entry.tx.commit_lsn.to_string()})),
    })
}

/// What a schema change did: the command, the statement, what changed, and both versions.
fn schema_change_json(schema_change: &SchemaChange, after: &RelationSchema) -> Json {
    let version = |schema: &RelationSchema| {
        json!({
            "table": schema.table.to_string(),
            "columns": schema
                .columns
                .iter()
                .map(|column| json!({"name": column.name, "type": column.type_name}))
                .collect::<Vec<_>>(),
            "key": schema.key_column_names().collect::<Vec<_>>(),
            "replica_identity": schema.replica_identity.as_sql(),
        })
    };
    let edits: Vec<String> = match &schema_change.before {
        Some(before) => schema_edits(before, after)
            .iter()
            .map(ToString::to_string)
            .collect(),
        None => Vec::new(),
    };
    json!({
        "command": schema_change.command,
        "statement": schema_change.statement,
        "dropped": schema_change.dropped,
        "noticed_later": schema_change.noticed,
        "edits": edits,
        "before": schema_change.before.as_deref().map(version),
        "after": (!schema_change.dropped).then(|| version(after)),
    })
}

/// A diff as JSON: one object per column.
pub fn diff_json(diffs: &[ColumnDiff]) -> Json {
    let kind = |kind: DiffKind| match kind {
        DiffKind::Unchanged => "unchanged",
        DiffKind::Changed => "changed",
        DiffKind::Added => "added",
        DiffKind::Removed => "removed",
        DiffKind::Unknown => "unknown",
        DiffKind::Excluded => "excluded",
    };
    let side = |value: &Option<Value>| match value {
        Some(Value::Unavailable) => json!({"unavailable": true}),
        Some(value) => value_json(value),
        None => Json::Null,
    };
    Json::Array(
        diffs
            .iter()
            .map(|diff| {
                let detail = match &diff.detail {
                    Some(ValueDiff::Json(edits)) => Json::Array(
                        edits
                            .iter()
                            .map(|edit| json!({"path": edit.path, "before": edit.before, "after": edit.after}))
                            .collect(),
                    ),
                    Some(ValueDiff::Text(spans)) => Json::Array(
                        spans
                            .iter()
                            .map(|span| match span {
                                TextSpan::Same(text) => json!({"same": text}),
                                TextSpan::Removed(text) => json!({"removed": text}),
                                TextSpan::Added(text) => json!({"added": text}),
                            })
                            .collect(),
                    ),
                    None => Json::Null,
                };
                json!({
                    "column": diff.column,
                    "kind": kind(diff.kind),
                    "before": side(&diff.before),
                    "after": side(&diff.after),
                    "detail": detail,
                })
            })
            .collect(),
    )
}

/// A change with its diff and transaction, as `show --json` and `history --json` print it.
pub fn change_with_diff_json(entry: &LoggedChange, rules: &ColumnRules) -> Json {
    let mut object = change_json(entry);
    if let Json::Object(map) = &mut object {
        let mut diffs = diff_change(&entry.schema, &entry.change);
        mark_excluded(&mut diffs, &entry.table, rules);
        map.insert("diff".into(), diff_json(&diffs));
        map.insert(
            "transaction".into(),
            json!({
                "xid": entry.tx.xid.map(|xid| xid.0),
                "commit_lsn": entry.tx.commit_lsn.to_string(),
                "committed_at": entry.tx.committed_at.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string(),
                "changes": entry.tx.change_count,
                "origin": entry.tx.origin,
                "baseline": entry.tx.is_baseline,
            }),
        );
    }
    object
}

/// A record's row as JSON: column → value, unavailable values left out.
pub fn image_json(image: &Image) -> Json {
    row_object(&image.schema, &image.row)
}
