//! Row values, row images and one row change, as rowtrail keeps them.

use std::fmt;
use std::str::FromStr;

use super::RelationSchema;

/// One column value of a row image, in PostgreSQL's text representation (what `::text` prints).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Value {
    /// SQL NULL.
    Null,
    /// A value in its text form.
    Text(String),
    /// A value whose text form is not valid text in UTF-8 (a `SQL_ASCII` database holds any bytes,
    /// and a few characters of other encodings have no Unicode equivalent): its bytes exactly as
    /// the source's server encoding has them. Shown escaped (`caf\xe9`), restored byte for byte.
    Bytes(Vec<u8>),
    /// The value exists but is not known: the source did not send it (an unchanged TOASTed value,
    /// or a column outside the replica identity) and no earlier value was on record.
    Unavailable,
}

impl Value {
    pub fn text(text: impl Into<String>) -> Self {
        Self::Text(text.into())
    }

    pub fn is_available(&self) -> bool {
        !matches!(self, Self::Unavailable)
    }

    /// A value from the bytes the source sent: text when they are valid UTF-8, else the bytes.
    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        match String::from_utf8(bytes) {
            Ok(text) => Self::Text(text),
            Err(error) => Self::Bytes(error.into_bytes()),
        }
    }

    /// The value as people read it, for keys, lists and diffs: its text, bytes that are not UTF-8
    /// escaped as `\xe9`, `NULL`, or `?` when unavailable.
    pub fn display(&self) -> std::borrow::Cow<'_, str> {
        match self {
            Self::Null => "NULL".into(),
            Self::Text(text) => text.as_str().into(),
            Self::Bytes(bytes) => escape_bytes(bytes).into(),
            Self::Unavailable => "?".into(),
        }
    }
}

/// Bytes as text: valid UTF-8 runs as they are, every other byte as `\xNN`.
pub fn escape_bytes(bytes: &[u8]) -> String {
    let mut text = String::with_capacity(bytes.len() + 8);
    for chunk in bytes.utf8_chunks() {
        text.push_str(chunk.valid());
        for byte in chunk.invalid() {
            text.push_str(&format!("\\x{byte:02x}"));
        }
    }
    text
}

impl From<Option<&str>> for Value {
    fn from(value: Option<&str>) -> Self {
        value.map_or(Self::Null, Self::text)
    }
}

/// A row image: one value per column of the relation schema version it belongs to, in column order.
pub type Row = Vec<Value>;

/// What happened to a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Op {
    Insert,
    Update,
    Delete,
    /// The whole table was emptied (one change per table, no row images).
    Truncate,
    /// A row as it was when capture began: the baseline that history is folded onto.
    Snapshot,
    /// A change of the table itself (`ALTER TABLE`, `DROP TABLE`, a new key): no row images; the
    /// logged change says what happened and the schema versions before and after.
    Ddl,
    /// History is missing here: the server dropped WAL capture had not read (an invalidated slot),
    /// and a new baseline follows. Like a truncate, it ends every record's state; the baseline
    /// rows after it say what the table held.
    Gap,
}

impl Op {
    pub const ALL: [Op; 7] = [
        Op::Insert,
        Op::Update,
        Op::Delete,
        Op::Truncate,
        Op::Snapshot,
        Op::Ddl,
        Op::Gap,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Insert => "insert",
            Self::Update => "update",
            Self::Delete => "delete",
            Self::Truncate => "truncate",
            Self::Snapshot => "snapshot",
            Self::Ddl => "ddl",
            Self::Gap => "gap",
        }
    }

    /// True for the operations that change rows (everything but a schema change).
    pub fn changes_rows(self) -> bool {
        self != Self::Ddl
    }

    /// True for the operations after which a table holds no rows until new ones arrive.
    pub fn empties_table(self) -> bool {
        matches!(self, Self::Truncate | Self::Gap)
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// The text is not one of the operation names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' is not an operation: use insert, update, delete, truncate, snapshot, ddl or gap")]
pub struct ParseOpError(pub String);

impl FromStr for Op {
    type Err = ParseOpError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Op::ALL
            .into_iter()
            .find(|op| op.as_str().eq_ignore_ascii_case(text.trim()))
            .ok_or_else(|| ParseOpError(text.to_owned()))
    }
}

/// One row change with its images, read against the relation schema version it happened under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub op: Op,
    /// The row before the change (update, delete); `None` for insert, snapshot, truncate and ddl.
    pub before: Option<Row>,
    /// The row after the change (insert, update, snapshot); `None` for delete, truncate and ddl.
    pub after: Option<Row>,
}

impl Change {
    /// The image that identifies the record: the new row, or the old one for a delete.
    pub fn identifying_row(&self) -> Option<&Row> {
        self.after.as_ref().or(self.before.as_ref())
    }

    /// The record's key values (the schema's key columns), in key order.
    pub fn key(&self, schema: &RelationSchema) -> Vec<Value> {
        self.identifying_row()
            .map(|row| key_of(schema, row))
            .unwrap_or_default()
    }

    /// The key the record had before an update that changed it, when it did.
    pub fn old_key(&self, schema: &RelationSchema) -> Option<Vec<Value>> {
        let (before, after) = (self.before.as_ref()?, self.after.as_ref()?);
        let (old, new) = (key_of(schema, before), key_of(schema, after));
        (old != new && old.iter().all(Value::is_available)).then_some(old)
    }

    /// Indexes of the columns this change set: all columns of an inserted or deleted row, the
    /// columns whose known values differ for an update, none for snapshots and truncates.
    pub fn changed_columns(&self) -> Vec<usize> {
        match (self.op, &self.before, &self.after) {
            (Op::Update, Some(before), Some(after)) => before
                .iter()
                .zip(after)
                .enumerate()
                .filter(|(_, (old, new))| old.is_available() && new.is_available() && old != new)
                .map(|(index, _)| index)
                .collect(),
            (Op::Insert, _, Some(row)) | (Op::Delete, Some(row), _) => (0..row.len()).collect(),
            _ => Vec::new(),
        }
    }

    /// Indexes of the columns with an unavailable value in either image.
    pub fn unavailable_columns(&self) -> Vec<usize> {
        let width = self
            .before
            .as_ref()
            .or(self.after.as_ref())
            .map_or(0, Vec::len);
        let unavailable = |row: &Option<Row>, index: usize| {
            row.as_ref()
                .and_then(|row| row.get(index))
                .is_some_and(|value| !value.is_available())
        };
        (0..width)
            .filter(|&index| unavailable(&self.before, index) || unavailable(&self.after, index))
            .collect()
    }
}

/// The key values of a row: the schema's key columns in key order.
pub fn key_of(schema: &RelationSchema, row: &Row) -> Vec<Value> {
    schema
        .key
        .iter()
        .map(|&index| row.get(index).cloned().unwrap_or(Value::Unavailable))
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // In tests a failed unwrap is a failed test.
mod tests {
    use super::*;
    use crate::model::{Column, ReplicaIdentity, TableName};

    fn schema(columns: &[&str], key: Vec<usize>) -> RelationSchema {
        RelationSchema {
            oid: 1,
            table: TableName::new("public", "t"),
            replica_identity: ReplicaIdentity::Default,
            columns: columns
                .iter()
                .map(|name| Column::text_for_tests(name))
                .collect(),
            key,
            foreign_keys: Vec::new(),
            key_read_later: false,
        }
    }

    #[test]
    fn update_reports_changed_and_unavailable_columns() {
        let change = Change {
            op: Op::Update,
            before: Some(vec![
                Value::text("1"),
                Value::text("a"),
                Value::Unavailable,
                Value::Null,
            ]),
            after: Some(vec![
                Value::text("1"),
                Value::text("b"),
                Value::text("x"),
                Value::Null,
            ]),
        };
        assert_eq!(change.changed_columns(), vec![1]);
        assert_eq!(change.unavailable_columns(), vec![2]);
        let schema = schema(&["id", "name", "doc", "note"], vec![0]);
        assert_eq!(change.key(&schema), vec![Value::text("1")]);
        assert_eq!(change.old_key(&schema), None);
    }

    #[test]
    fn key_update_keeps_the_old_key() {
        let change = Change {
            op: Op::Update,
            before: Some(vec![Value::text("1"), Value::text("a")]),
            after: Some(vec![Value::text("2"), Value::text("a")]),
        };
        let schema = schema(&["id", "name"], vec![0]);
        assert_eq!(change.key(&schema), vec![Value::text("2")]);
        assert_eq!(change.old_key(&schema), Some(vec![Value::text("1")]));
        assert_eq!(change.changed_columns(), vec![0]);
    }

    #[test]
    fn ops_parse_case_insensitively() {
        assert_eq!("Update".parse::<Op>().unwrap(), Op::Update);
        assert!("upsert".parse::<Op>().is_err());
    }
}
