//! Turns decoded tuples into complete row images.
//!
//! The source does not always send whole rows: under `REPLICA IDENTITY DEFAULT` an update carries no
//! old row and a delete only the key, and an update never resends a TOASTed value it did not change.
//! What is missing is taken from the old image when the source sent one, else from the record's last
//! known row in the cache (`prior`); what is known from neither becomes [`Value::Unavailable`].

use crate::model::{Change, Masking, Op, RelationSchema, Row, Value};

use super::pgoutput::{OldRow, TupleData, TupleValue};
use super::{DecodeError, text_form, value_form};

/// A row change as decoded, before its images are completed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RowChange {
    Insert { new: TupleData },
    Update { old: Option<OldRow>, new: TupleData },
    Delete { old: OldRow },
}

impl RowChange {
    /// The key values the source sent to identify the record before the change, if it sent them.
    /// Needed to look up the prior row when the old image is missing or partial.
    pub fn lookup_key(&self, schema: &RelationSchema) -> Result<Vec<Value>, DecodeError> {
        let row = match self {
            RowChange::Insert { new } | RowChange::Update { old: None, new } => {
                tuple_to_row(schema, new)?
            }
            RowChange::Update { old: Some(old), .. } | RowChange::Delete { old } => {
                old_image(schema, old)?
            }
        };
        Ok(crate::model::key_of(schema, &row))
    }

    /// True when completing the images needs the record's last known row.
    pub fn needs_prior(&self) -> bool {
        let has_unchanged_toast = |tuple: &TupleData| tuple.0.contains(&TupleValue::UnchangedToast);
        match self {
            RowChange::Insert { .. } => false,
            // A full old row fills the new row's gaps, unless it has gaps itself.
            RowChange::Update {
                old: Some(OldRow::Full(old)),
                ..
            } => has_unchanged_toast(old),
            RowChange::Update { .. } => true,
            RowChange::Delete {
                old: OldRow::Full(old),
            } => has_unchanged_toast(old),
            RowChange::Delete {
                old: OldRow::Key(_),
            } => true,
        }
    }
}

/// A record's last known row, read under the schema version it was stored with.
#[derive(Debug, Clone, Copy)]
pub struct PriorRow<'a> {
    pub schema: &'a RelationSchema,
    pub row: &'a Row,
}

impl PriorRow<'_> {
    fn value(&self, column: &str) -> Option<&Value> {
        self.schema
            .column_index(column)
            .and_then(|index| self.row.get(index))
    }
}

/// `row` with each unavailable value taken from the record's last known row, where it has one.
fn fill_from_prior(schema: &RelationSchema, prior: Option<&PriorRow<'_>>, mut row: Row) -> Row {
    for (index, value) in row.iter_mut().enumerate() {
        let column = schema.columns.get(index).map(|column| column.name.as_str());
        if !value.is_available()
            && let (Some(prior), Some(name)) = (prior, column)
            && let Some(known) = prior.value(name)
        {
            *value = known.clone();
        }
    }
    row
}

/// The old row of an update sent without one: the key did not change, so the new row's key
/// identifies it; its other values are not known.
fn key_only(schema: &RelationSchema, new_row: &Row) -> Row {
    new_row
        .iter()
        .enumerate()
        .map(|(index, value)| match schema.key.contains(&index) {
            true => value.clone(),
            false => Value::Unavailable,
        })
        .collect()
}

/// Completes the images of a change an audit store recorded, as [`complete_images`] completes
/// capture's: an update without its old row gets the key from the new row, values the store did
/// not record in an old row come from the record's last known row, and values missing from a
/// new row (a TOASTed value the event did not carry) from the old row. Values the store never
/// records (the columns a trigger ignores) stay unavailable.
pub fn complete_imported(
    schema: &RelationSchema,
    change: Change,
    prior: Option<PriorRow<'_>>,
) -> Change {
    let fill_from_prior = |row: Row| fill_from_prior(schema, prior.as_ref(), row);
    match change.op {
        Op::Update => {
            let Some(after) = change.after else {
                return Change {
                    op: Op::Update,
                    before: change.before,
                    after: None,
                };
            };
            let before = change.before.unwrap_or_else(|| key_only(schema, &after));
            let before = fill_from_prior(before);
            let after = after
                .into_iter()
                .zip(&before)
                .map(|(value, old)| {
                    if value.is_available() {
                        value
                    } else {
                        old.clone()
                    }
                })
                .collect();
            Change {
                op: Op::Update,
                before: Some(before),
                after: Some(after),
            }
        }
        Op::Delete => Change {
            op: Op::Delete,
            before: change.before.map(fill_from_prior),
            after: None,
        },
        _ => change,
    }
}

/// Completes the images of one row change.
///
/// `masking` (the cache's column rules) is applied to what the source sent before anything is
/// completed: values taken from the record's last known row are already masked.
pub fn complete_images(
    schema: &RelationSchema,
    change: &RowChange,
    prior: Option<PriorRow<'_>>,
    masking: Option<Masking<'_>>,
) -> Result<Change, DecodeError> {
    let fill_from_prior = |row: Row| fill_from_prior(schema, prior.as_ref(), row);
    let masked = |mut row: Row| {
        if let Some(masking) = &masking {
            masking.apply(&mut row);
        }
        row
    };
    match change {
        RowChange::Insert { new } => Ok(Change {
            op: Op::Insert,
            before: None,
            after: Some(masked(tuple_to_row(schema, new)?)),
        }),
        RowChange::Update { old, new } => {
            let new_row = masked(tuple_to_row(schema, new)?);
            let before = match old {
                Some(old) => masked(old_image(schema, old)?),
                // No old row: the key did not change, so the new key identifies the old row.
                None => key_only(schema, &new_row),
            };
            let before = fill_from_prior(before);
            let after = new_row
                .into_iter()
                .zip(&new.0)
                .zip(&before)
                .map(|((value, sent), old)| match sent {
                    TupleValue::UnchangedToast => old.clone(),
                    _ => value,
                })
                .collect();
            Ok(Change {
                op: Op::Update,
                before: Some(before),
                after: Some(after),
            })
        }
        RowChange::Delete { old } => Ok(Change {
            op: Op::Delete,
            before: Some(fill_from_prior(masked(old_image(schema, old)?))),
            after: None,
        }),
    }
}

/// Reads a tuple under the schema; unchanged TOAST values become `Unavailable` for now.
fn tuple_to_row(schema: &RelationSchema, tuple: &TupleData) -> Result<Row, DecodeError> {
    if tuple.0.len() != schema.columns.len() {
        return Err(DecodeError::ColumnCount {
            table: schema.table.to_string(),
            expected: schema.columns.len(),
            found: tuple.0.len(),
        });
    }
    Ok(tuple
        .0
        .iter()
        .zip(&schema.columns)
        .map(|(value, column)| match value {
            TupleValue::Null => Value::Null,
            TupleValue::Text(text) => Value::Text(text_form(column.base_type_oid, text.clone())),
            TupleValue::Bytes(bytes) => {
                value_form(column.base_type_oid, Value::Bytes(bytes.clone()))
            }
            TupleValue::UnchangedToast => Value::Unavailable,
        })
        .collect())
}

/// Reads an old row image; in a key-only image, columns outside the replica identity are not sent.
fn old_image(schema: &RelationSchema, old: &OldRow) -> Result<Row, DecodeError> {
    match old {
        OldRow::Full(tuple) => tuple_to_row(schema, tuple),
        OldRow::Key(tuple) => Ok(tuple_to_row(schema, tuple)?
            .into_iter()
            .zip(&schema.columns)
            .map(|(value, column)| match column.in_replica_identity {
                true => value,
                false => Value::Unavailable,
            })
            .collect()),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // In tests a failed unwrap is a failed test.
mod tests {
    use super::*;
    use crate::model::{Column, ReplicaIdentity, TableName};

    fn schema(identity: ReplicaIdentity) -> RelationSchema {
        let column = |name: &str, key: bool| Column {
            name: name.to_owned(),
            type_oid: 25,
            base_type_oid: 25,
            type_modifier: -1,
            type_name: "text".to_owned(),
            in_replica_identity: key || identity == ReplicaIdentity::Full,
            identity: None,
            attnum: None,
        };
        RelationSchema {
            oid: 1,
            table: TableName::new("public", "docs"),
            replica_identity: identity,
            columns: vec![
                column("id", true),
                column("title", false),
                column("body", false),
            ],
            key: vec![0],
            foreign_keys: Vec::new(),
            key_read_later: false,
        }
    }

    fn text(value: &str) -> TupleValue {
        TupleValue::Text(value.to_owned())
    }

    fn values(row: &[&str]) -> Row {
        row.iter()
            .map(|value| match *value {
                "?" => Value::Unavailable,
                "NULL" => Value::Null,
                other => Value::text(other),
            })
            .collect()
    }

    #[test]
    fn full_identity_fills_unchanged_toast_from_the_old_row() {
        let schema = schema(ReplicaIdentity::Full);
        let change = RowChange::Update {
            old: Some(OldRow::Full(TupleData(vec![
                text("1"),
                text("a"),
                text("big"),
            ]))),
            new: TupleData(vec![text("1"), text("b"), TupleValue::UnchangedToast]),
        };
        assert!(!change.needs_prior());
        let change = complete_images(&schema, &change, None, None).unwrap();
        assert_eq!(change.before, Some(values(&["1", "a", "big"])));
        assert_eq!(change.after, Some(values(&["1", "b", "big"])));
    }

    #[test]
    fn default_identity_fills_from_the_prior_row_by_column_name() {
        let schema = schema(ReplicaIdentity::Default);
        let mut older = schema.clone();
        older.columns.swap(1, 2);
        let prior_row = values(&["1", "big", "a"]);
        let change = RowChange::Update {
            old: None,
            new: TupleData(vec![text("1"), text("b"), TupleValue::UnchangedToast]),
        };
        assert!(change.needs_prior());
        let prior = PriorRow {
            schema: &older,
            row: &prior_row,
        };
        let change = complete_images(&schema, &change, Some(prior), None).unwrap();
        assert_eq!(change.before, Some(values(&["1", "a", "big"])));
        assert_eq!(change.after, Some(values(&["1", "b", "big"])));
        assert_eq!(change.changed_columns(), vec![1]);
    }

    #[test]
    fn without_prior_missing_values_are_unavailable_never_null() {
        let schema = schema(ReplicaIdentity::Default);
        let update = RowChange::Update {
            old: None,
            new: TupleData(vec![
                text("1"),
                TupleValue::Null,
                TupleValue::UnchangedToast,
            ]),
        };
        let change = complete_images(&schema, &update, None, None).unwrap();
        assert_eq!(change.before, Some(values(&["1", "?", "?"])));
        assert_eq!(change.after, Some(values(&["1", "NULL", "?"])));
        assert_eq!(change.unavailable_columns(), vec![1, 2]);

        let delete = RowChange::Delete {
            old: OldRow::Key(TupleData(vec![
                text("1"),
                TupleValue::Null,
                TupleValue::Null,
            ])),
        };
        let change = complete_images(&schema, &delete, None, None).unwrap();
        assert_eq!(change.before, Some(values(&["1", "?", "?"])));
        assert_eq!(delete.lookup_key(&schema).unwrap(), vec![Value::text("1")]);
    }

    #[test]
    fn key_change_is_looked_up_by_the_old_key() {
        let schema = schema(ReplicaIdentity::Default);
        let change = RowChange::Update {
            old: Some(OldRow::Key(TupleData(vec![
                text("1"),
                TupleValue::Null,
                TupleValue::Null,
            ]))),
            new: TupleData(vec![text("2"), text("t"), text("b")]),
        };
        assert_eq!(change.lookup_key(&schema).unwrap(), vec![Value::text("1")]);
        let prior_row = values(&["1", "t", "b"]);
        let prior = PriorRow {
            schema: &schema,
            row: &prior_row,
        };
        let change = complete_images(&schema, &change, Some(prior), None).unwrap();
        assert_eq!(change.before, Some(values(&["1", "t", "b"])));
        assert_eq!(change.changed_columns(), vec![0]);
    }

    #[test]
    fn column_count_mismatch_is_an_error() {
        let schema = schema(ReplicaIdentity::Full);
        let insert = RowChange::Insert {
            new: TupleData(vec![text("1")]),
        };
        assert!(complete_images(&schema, &insert, None, None).is_err());
    }
}
