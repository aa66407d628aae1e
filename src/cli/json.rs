//! The JSON shape of a change, as `log --json` prints it (one object per line).

use serde_json::{Map, Value as Json, json};

use crate::model::{RelationSchema, Row, Value};
use crate::store::LoggedChange;

/// Column → value for the known values of a row; unavailable values are left out (they are
/// listed under `unavailable`), so they can never be read as NULL.
fn row_object(schema: &RelationSchema, row: &Row) -> Json {
    let mut object = Map::new();
    for (column, value) in schema.columns.iter().zip(row) {
        if let Some(known) = value.as_known() {
            object.insert(column.name.clone(), known.map_or(Json::Null, Json::from));
        }
    }
    Json::Object(object)
}

fn value_json(value: &Value) -> Json {
    match value {
        Value::Text(text) => Json::from(text.as_str()),
        Value::Null | Value::Unavailable => Json::Null,
    }
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
        "before": change.before.as_ref().map(|row| row_object(schema, row)),
        "after": change.after.as_ref().map(|row| row_object(schema, row)),
        "changed": names(schema, &change.changed_columns()),
        "unavailable": names(schema, &change.unavailable_columns()),
        "context": entry.context.clone().map(Json::Object),
    })
}
