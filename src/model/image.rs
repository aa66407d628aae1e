//! A record's row under the schema version it was stored with, and what a change leaves of it.

use std::sync::Arc;

use super::{LoggedChange, Op, RelationSchema, Row, Value};

/// A record's row under the schema version it was stored with.
#[derive(Debug, Clone, PartialEq)]
pub struct Image {
    pub schema: Arc<RelationSchema>,
    pub row: Row,
}

impl Image {
    pub fn value(&self, column: &str) -> Option<&Value> {
        self.schema
            .column_index(column)
            .and_then(|index| self.row.get(index))
    }

    /// The row expressed in a newer schema version of its table, to write SQL against the table
    /// as it is now: columns renamed or retyped since take their new name and type (matched by
    /// `attnum`), columns dropped since are left out, columns added since are not set. The key is
    /// the newer version's where the row has its columns, else none (the row is matched on all
    /// its values). Returns the names of the columns left out.
    pub fn in_version(&self, current: &Arc<RelationSchema>) -> (Image, Vec<String>) {
        if *self.schema == **current {
            return (self.clone(), Vec::new());
        }
        let mut columns = Vec::new();
        let mut row = Vec::new();
        let mut left_out = Vec::new();
        for (index, column) in self.schema.columns.iter().enumerate() {
            match current.matching_column(column) {
                Some(now) => {
                    columns.push(current.columns[now].clone());
                    row.push(self.row.get(index).cloned().unwrap_or(Value::Unavailable));
                }
                None => left_out.push(column.name.clone()),
            }
        }
        let key: Option<Vec<usize>> = current
            .key
            .iter()
            .map(|&index| {
                let name = &current.columns.get(index)?.name;
                columns.iter().position(|column| &column.name == name)
            })
            .collect();
        let schema = RelationSchema {
            oid: current.oid,
            table: current.table.clone(),
            replica_identity: current.replica_identity,
            columns,
            key: key.unwrap_or_default(),
            foreign_keys: current.foreign_keys.clone(),
            key_read_later: current.key_read_later,
        };
        (
            Image {
                schema: Arc::new(schema),
                row,
            },
            left_out,
        )
    }
}

/// What one change leaves of its record: its after-image, or `None` when it removed the row (or
/// is not a row change at all).
pub fn after_image(change: &LoggedChange) -> Option<Image> {
    match change.change.op {
        Op::Delete | Op::Truncate | Op::Gap | Op::Ddl => None,
        Op::Insert | Op::Update | Op::Snapshot => change.change.after.as_ref().map(|row| Image {
            schema: change.schema.clone(),
            row: row.clone(),
        }),
    }
}

/// The changes of one record from the oldest selected one on, in commit order.
#[derive(Debug, Clone)]
pub struct RecordChanges(pub Vec<LoggedChange>);

/// One change the store hands over for the rows of a table at a moment (`store::Cache::table_at`).
#[derive(Debug, Clone)]
pub enum TableChange<'a> {
    /// The row of a record that exists at the moment (the after-image of its newest change).
    Newest(Image),
    /// One change of the table's history, to be folded in commit order.
    History(&'a LoggedChange),
}
