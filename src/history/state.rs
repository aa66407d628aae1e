//! Folding changes into state: what a record, or a whole table, held after a run of changes.

use std::collections::HashMap;

use crate::model::{
    Column, Image, LoggedChange, Op, RelationSchema, Row, TableChange, Value, after_image,
};

/// The state of one record after its changes, in commit order: the newest image, or `None` when a
/// delete or truncate removed it.
pub fn fold_record<'a>(changes: impl IntoIterator<Item = &'a LoggedChange>) -> Option<Image> {
    changes
        .into_iter()
        .filter(|change| change.change.op.changes_rows())
        .fold(None, |_, change| after_image(change))
}

/// The rows of a table at a moment, from the changes the store hands over for it: the newest
/// change of each record gives its row at once; a whole history is folded, and its rows come at
/// the end.
#[derive(Debug, Default)]
pub struct TableAt {
    fold: TableFold,
}

impl TableAt {
    /// The row this change gives now, if any.
    pub fn take(&mut self, change: TableChange<'_>) -> Option<Image> {
        match change {
            TableChange::Newest(image) => Some(image),
            TableChange::History(change) => {
                self.fold.apply(change);
                None
            }
        }
    }

    /// The rows of a folded history (none when every row came from `take`).
    pub fn finish(self) -> impl Iterator<Item = Image> {
        self.fold.into_rows().into_iter()
    }
}

/// True when two images, possibly of different schema versions of a table, are the same row:
/// every column both versions have (matched by `attnum`, else by name) holds the same value.
/// A column only one version has (added or dropped in between) says nothing either way, and
/// neither does a value that is unavailable.
pub fn same_row(a: &RelationSchema, a_row: &Row, b: &RelationSchema, b_row: &Row) -> bool {
    let mut compared = 0;
    for (index, column) in a.columns.iter().enumerate() {
        let Some(other) = b.matching_column(column) else {
            continue;
        };
        let (Some(left), Some(right)) = (a_row.get(index), b_row.get(other)) else {
            continue;
        };
        if !left.is_available() || !right.is_available() {
            continue;
        }
        if left != right {
            return false;
        }
        compared += 1;
    }
    compared > 0 || a.columns.is_empty()
}

/// A key definition: its columns, as `attnum` or name, the way rows of any version are matched.
type KeyDefinition = Vec<(Option<i16>, String)>;

fn key_definition(schema: &RelationSchema) -> KeyDefinition {
    schema
        .key
        .iter()
        .filter_map(|&index| schema.columns.get(index))
        .map(|column| (column.attnum, column.name.clone()))
        .collect()
}

/// An image's values for the columns of a key definition, if it has them all.
fn values_for(image: &Image, definition: &KeyDefinition) -> Option<Vec<Value>> {
    definition
        .iter()
        .map(|(attnum, name)| {
            let probe = Column {
                name: name.clone(),
                type_oid: 0,
                base_type_oid: 0,
                type_modifier: -1,
                type_name: String::new(),
                in_replica_identity: false,
                identity: None,
                attnum: *attnum,
            };
            let index = image.schema.matching_column(&probe)?;
            image.row.get(index).cloned()
        })
        .collect()
}

/// The rows of a table folded from its history in commit order, for any history: tables without
/// a key (a multiset: equal rows may exist side by side), and tables whose key was added,
/// dropped or changed along the way, whose rows are matched across schema versions by the key of
/// the change at hand where the row has those columns, else by their values.
#[derive(Debug, Default, Clone)]
pub struct TableFold {
    rows: Vec<Option<Image>>,
    /// Per key definition seen so far: key values → position in `rows`.
    indexes: HashMap<KeyDefinition, HashMap<Vec<Value>, usize>>,
}

impl TableFold {
    pub fn apply(&mut self, change: &LoggedChange) {
        match change.change.op {
            Op::Ddl => {}
            Op::Truncate | Op::Gap => {
                self.rows.clear();
                self.indexes.clear();
            }
            Op::Insert | Op::Snapshot => {
                if let Some(image) = after_image(change) {
                    self.push(image);
                }
            }
            Op::Delete | Op::Update => {
                if let Some(old) = &change.change.before
                    && let Some(position) = self.find(&change.schema, old)
                {
                    self.remove(position);
                }
                if let Some(image) = after_image(change) {
                    self.push(image);
                }
            }
        }
    }

    /// The rows, in the order they were last written.
    pub fn into_rows(self) -> Vec<Image> {
        self.rows.into_iter().flatten().collect()
    }

    fn find(&mut self, schema: &RelationSchema, old: &Row) -> Option<usize> {
        if schema.has_key() {
            let definition = key_definition(schema);
            let wanted = crate::model::key_of(schema, old);
            if wanted.iter().all(Value::is_available) {
                let index = self.index(&definition);
                if let Some(&position) = index.get(&wanted) {
                    return Some(position);
                }
            }
        }
        self.rows.iter().position(|image| {
            image
                .as_ref()
                .is_some_and(|image| same_row(schema, old, &image.schema, &image.row))
        })
    }

    /// The index for a key definition, built over the rows the first time it is asked for.
    fn index(&mut self, definition: &KeyDefinition) -> &HashMap<Vec<Value>, usize> {
        let rows = &self.rows;
        self.indexes.entry(definition.clone()).or_insert_with(|| {
            rows.iter()
                .enumerate()
                .filter_map(|(position, image)| {
                    Some((values_for(image.as_ref()?, definition)?, position))
                })
                .collect()
        })
    }

    fn push(&mut self, image: Image) {
        let position = self.rows.len();
        for (definition, index) in &mut self.indexes {
            if let Some(values) = values_for(&image, definition) {
                index.insert(values, position);
            }
        }
        self.rows.push(Some(image));
    }

    fn remove(&mut self, position: usize) {
        let Some(image) = self.rows.get_mut(position).and_then(Option::take) else {
            return;
        };
        for (definition, index) in &mut self.indexes {
            if let Some(values) = values_for(&image, definition)
                && index.get(&values) == Some(&position)
            {
                index.remove(&values);
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // In tests a failed unwrap is a failed test.
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::model::{Change, ReplicaIdentity, TableName};

    fn schema(columns: &[(&str, i16)], key: &[usize]) -> Arc<RelationSchema> {
        Arc::new(RelationSchema {
            oid: 1,
            table: TableName::new("public", "t"),
            replica_identity: ReplicaIdentity::Full,
            columns: columns
                .iter()
                .map(|(name, attnum)| Column {
                    name: (*name).into(),
                    type_oid: 25,
                    base_type_oid: 25,
                    type_modifier: -1,
                    type_name: "text".into(),
                    in_replica_identity: true,
                    identity: None,
                    attnum: Some(*attnum),
                })
                .collect(),
            key: key.to_vec(),
            foreign_keys: Vec::new(),
            key_read_later: false,
        })
    }

    fn row(values: &[&str]) -> Row {
        values.iter().map(|value| Value::text(*value)).collect()
    }

    fn change(
        schema: &Arc<RelationSchema>,
        op: Op,
        before: Option<&[&str]>,
        after: Option<&[&str]>,
    ) -> LoggedChange {
        LoggedChange::for_tests(
            1,
            schema,
            Change {
                op,
                before: before.map(row),
                after: after.map(row),
            },
        )
    }

    fn values(fold: TableFold) -> Vec<Vec<String>> {
        let mut rows: Vec<Vec<String>> = fold
            .into_rows()
            .iter()
            .map(|image| {
                image
                    .row
                    .iter()
                    .map(|value| value.display().into_owned())
                    .collect()
            })
            .collect();
        rows.sort();
        rows
    }

    #[test]
    fn a_keyless_row_is_replaced_across_an_added_and_a_renamed_column() {
        let v1 = schema(&[("id", 1), ("name", 2)], &[]);
        let v2 = schema(&[("id", 1), ("name", 2), ("note", 3)], &[]);
        let v3 = schema(&[("id", 1), ("title", 2), ("note", 3)], &[]);
        let mut fold = TableFold::default();
        fold.apply(&change(&v1, Op::Insert, None, Some(&["1", "a"])));
        fold.apply(&change(&v1, Op::Insert, None, Some(&["2", "b"])));
        fold.apply(&change(
            &v2,
            Op::Update,
            Some(&["1", "a", "x"]),
            Some(&["1", "a2", "x"]),
        ));
        fold.apply(&change(
            &v3,
            Op::Update,
            Some(&["2", "b", "x"]),
            Some(&["2", "b2", "y"]),
        ));
        fold.apply(&change(&v3, Op::Delete, Some(&["1", "a2", "x"]), None));
        assert_eq!(values(fold), vec![vec!["2", "b2", "y"]]);
    }

    #[test]
    fn rows_from_before_a_key_are_matched_by_the_new_key() {
        let keyless = schema(&[("id", 1), ("v", 2)], &[]);
        let keyed = schema(&[("id", 1), ("v", 2)], &[0]);
        let mut fold = TableFold::default();
        for id in 0..1000 {
            let id = id.to_string();
            fold.apply(&change(&keyless, Op::Insert, None, Some(&[&id, "old"])));
        }
        for id in 0..1000 {
            let id = id.to_string();
            fold.apply(&change(
                &keyed,
                Op::Update,
                Some(&[&id, "old"]),
                Some(&[&id, "new"]),
            ));
        }
        fold.apply(&change(&keyed, Op::Delete, Some(&["7", "new"]), None));
        let rows = values(fold);
        assert_eq!(rows.len(), 999);
        assert!(rows.iter().all(|row| row[1] == "new"));
    }

    #[test]
    fn equal_keyless_rows_are_a_multiset() {
        let keyless = schema(&[("v", 1)], &[]);
        let mut fold = TableFold::default();
        fold.apply(&change(&keyless, Op::Insert, None, Some(&["a"])));
        fold.apply(&change(&keyless, Op::Insert, None, Some(&["a"])));
        fold.apply(&change(&keyless, Op::Delete, Some(&["a"]), None));
        assert_eq!(values(fold), vec![vec!["a"]]);
    }
}
