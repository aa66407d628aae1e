//! What changed between two row images: per column, with jsonb values compared by path and long
//! text compared by words or lines.

use std::fmt;

use serde_json::Value as Json;
use similar::{ChangeTag, TextDiff};

use crate::model::{Change, ColumnRules, Protection, RelationSchema, Row, TableName, Value};

/// How one column differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiffKind {
    Unchanged,
    Changed,
    /// Only in the newer image (an inserted row, or a column added to the table).
    Added,
    /// Only in the older image (a deleted row, or a column dropped from the table).
    Removed,
    /// At least one side is unavailable, so whether it changed is not known.
    Unknown,
    /// The cache's column rules keep this column's values out ([`mark_excluded`]).
    Excluded,
}

/// One column of a diff.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnDiff {
    pub column: String,
    pub kind: DiffKind,
    pub before: Option<Value>,
    pub after: Option<Value>,
    /// A closer look at a changed value: jsonb by path, long text by words or lines.
    pub detail: Option<ValueDiff>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ValueDiff {
    Json(Vec<JsonEdit>),
    Text(Vec<TextSpan>),
}

/// One difference inside a JSON value, at a path like `address.city` or `items[2]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonEdit {
    pub path: String,
    /// `None` where the path did not exist.
    pub before: Option<Json>,
    pub after: Option<Json>,
}

/// A piece of an inline text diff.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TextSpan {
    Same(String),
    Removed(String),
    Added(String),
}

const JSON: u32 = 114;
const JSONB: u32 = 3802;
/// Text at least this long (or with a line break) is diffed inline.
const LONG_TEXT: usize = 40;

/// The diff of one change, under its schema version.
pub fn diff_change(schema: &RelationSchema, change: &Change) -> Vec<ColumnDiff> {
    diff_rows(
        change.before.as_ref().map(|row| (schema, row)),
        change.after.as_ref().map(|row| (schema, row)),
    )
}

/// The diff of two images, each under its own schema version (columns are matched by name). The
/// columns come in the newer image's order, then the columns only the older image has.
pub fn diff_rows(
    before: Option<(&RelationSchema, &Row)>,
    after: Option<(&RelationSchema, &Row)>,
) -> Vec<ColumnDiff> {
    fn value_in<'a>(image: Option<(&RelationSchema, &'a Row)>, name: &str) -> Option<&'a Value> {
        image.and_then(|(schema, row)| schema.column_index(name).and_then(|index| row.get(index)))
    }
    let mut diffs = Vec::new();
    if let Some((schema, row)) = after {
        for (column, value) in schema.columns.iter().zip(row) {
            let old = value_in(before, &column.name);
            diffs.push(column_diff(
                &column.name,
                column.base_type_oid,
                old,
                Some(value),
            ));
        }
    }
    if let Some((schema, row)) = before {
        for (column, value) in schema.columns.iter().zip(row) {
            if value_in(after, &column.name).is_none() {
                diffs.push(column_diff(
                    &column.name,
                    column.base_type_oid,
                    Some(value),
                    None,
                ));
            }
        }
    }
    diffs
}

fn column_diff(
    name: &str,
    base_type: u32,
    before: Option<&Value>,
    after: Option<&Value>,
) -> ColumnDiff {
    let kind = match (before, after) {
        (None, _) => DiffKind::Added,
        (_, None) => DiffKind::Removed,
        (Some(Value::Unavailable), _) | (_, Some(Value::Unavailable)) => DiffKind::Unknown,
        (Some(old), Some(new)) if old == new => DiffKind::Unchanged,
        _ => DiffKind::Changed,
    };
    let detail = match (kind, before, after) {
        (DiffKind::Changed, Some(Value::Text(old)), Some(Value::Text(new))) => {
            value_detail(base_type, old, new)
        }
        _ => None,
    };
    ColumnDiff {
        column: name.to_owned(),
        kind,
        before: before.cloned(),
        after: after.cloned(),
        detail,
    }
}

fn value_detail(base_type: u32, old: &str, new: &str) -> Option<ValueDiff> {
    if (base_type == JSON || base_type == JSONB)
        && let (Ok(old), Ok(new)) = (
            serde_json::from_str::<Json>(old),
            serde_json::from_str::<Json>(new),
        )
    {
        let mut edits = Vec::new();
        json_edits(String::new(), Some(&old), Some(&new), &mut edits);
        return (!edits.is_empty()).then_some(ValueDiff::Json(edits));
    }
    let long = old.len().max(new.len()) >= LONG_TEXT || old.contains('\n') || new.contains('\n');
    long.then(|| ValueDiff::Text(text_spans(old, new)))
}

fn json_edits(path: String, old: Option<&Json>, new: Option<&Json>, edits: &mut Vec<JsonEdit>) {
    match (old, new) {
        (Some(Json::Object(old)), Some(Json::Object(new))) => {
            for (key, value) in old {
                json_edits(join_key(&path, key), Some(value), new.get(key), edits);
            }
            for (key, value) in new.iter().filter(|(key, _)| !old.contains_key(*key)) {
                json_edits(join_key(&path, key), None, Some(value), edits);
            }
        }
        (Some(Json::Array(old)), Some(Json::Array(new))) => {
            for index in 0..old.len().max(new.len()) {
                json_edits(
                    format!("{path}[{index}]"),
                    old.get(index),
                    new.get(index),
                    edits,
                );
            }
        }
        (old, new) if old == new => {}
        (old, new) => edits.push(JsonEdit {
            path: match path.is_empty() {
                true => "$".to_owned(),
                false => path,
            },
            before: old.cloned(),
            after: new.cloned(),
        }),
    }
}

/// Appends an object key to a path: `address.city`, or `["a b"]` for keys that are not plain words.
fn join_key(path: &str, key: &str) -> String {
    let plain = !key.is_empty()
        && key.chars().all(|c| c.is_alphanumeric() || c == '_')
        && !key.starts_with(|c: char| c.is_ascii_digit());
    match (plain, path.is_empty()) {
        (true, true) => key.to_owned(),
        (true, false) => format!("{path}.{key}"),
        (false, _) => format!("{path}[{}]", Json::from(key)),
    }
}

/// An inline diff: by lines for multi-line text, else by words.
pub fn text_spans(old: &str, new: &str) -> Vec<TextSpan> {
    let diff = match old.contains('\n') || new.contains('\n') {
        true => TextDiff::from_lines(old, new),
        false => TextDiff::from_words(old, new),
    };
    let mut spans: Vec<TextSpan> = Vec::new();
    for change in diff.iter_all_changes() {
        let text = change.value();
        match (change.tag(), spans.last_mut()) {
            (ChangeTag::Equal, Some(TextSpan::Same(last)))
            | (ChangeTag::Delete, Some(TextSpan::Removed(last)))
            | (ChangeTag::Insert, Some(TextSpan::Added(last))) => last.push_str(text),
            (ChangeTag::Equal, _) => spans.push(TextSpan::Same(text.to_owned())),
            (ChangeTag::Delete, _) => spans.push(TextSpan::Removed(text.to_owned())),
            (ChangeTag::Insert, _) => spans.push(TextSpan::Added(text.to_owned())),
        }
    }
    spans
}

/// Marks the columns that the cache's column rules exclude: their values were never stored, which
/// is not the same as unknown or NULL.
pub fn mark_excluded(diffs: &mut [ColumnDiff], table: &TableName, rules: &ColumnRules) {
    for diff in diffs {
        if rules
            .rule_for(table, &diff.column)
            .is_some_and(|rule| rule.protection == Protection::Exclude)
        {
            diff.kind = DiffKind::Excluded;
            diff.detail = None;
        }
    }
}

/// A value as people read it: the text, `NULL`, or `(unavailable)`; never a NULL for the unknown.
pub fn show_value(value: &Value) -> String {
    match value {
        Value::Unavailable => "(unavailable)".to_owned(),
        known => known.display().into_owned(),
    }
}

impl fmt::Display for JsonEdit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.before, &self.after) {
            (Some(old), Some(new)) => write!(f, "{}: {old} → {new}", self.path),
            (None, Some(new)) => write!(f, "{}: added {new}", self.path),
            (Some(old), None) => write!(f, "{}: removed {old}", self.path),
            (None, None) => write!(f, "{}: unchanged", self.path),
        }
    }
}

impl fmt::Display for ValueDiff {
    /// JSON edits joined by `; `, or text in word-diff style: `[-removed-]{+added+}`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ValueDiff::Json(edits) => {
                let edits: Vec<String> = edits.iter().map(ToString::to_string).collect();
                f.write_str(&edits.join("; "))
            }
            ValueDiff::Text(spans) => {
                for span in spans {
                    match span {
                        TextSpan::Same(text) => f.write_str(text)?,
                        TextSpan::Removed(text) => write!(f, "[-{text}-]")?,
                        TextSpan::Added(text) => write!(f, "{{+{text}+}}")?,
                    }
                }
                Ok(())
            }
        }
    }
}

impl fmt::Display for ColumnDiff {
    /// One line: `status: new → paid`, `doc: address.city: "Oslo" → "Bergen"`, `note: + text`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let side = |value: &Option<Value>| value.as_ref().map(show_value).unwrap_or_default();
        match (self.kind, &self.detail) {
            (DiffKind::Changed, Some(detail)) => write!(f, "{}: {detail}", self.column),
            (DiffKind::Changed | DiffKind::Unknown, None) => {
                write!(
                    f,
                    "{}: {} → {}",
                    self.column,
                    side(&self.before),
                    side(&self.after)
                )
            }
            (DiffKind::Unknown, Some(_)) => {
                write!(
                    f,
                    "{}: {} → {}",
                    self.column,
                    side(&self.before),
                    side(&self.after)
                )
            }
            (DiffKind::Added, _) => write!(f, "{}: + {}", self.column, side(&self.after)),
            (DiffKind::Removed, _) => write!(f, "{}: - {}", self.column, side(&self.before)),
            (DiffKind::Unchanged, _) => write!(f, "{}: {}", self.column, side(&self.after)),
            (DiffKind::Excluded, _) => write!(f, "{}: (excluded)", self.column),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // In tests a failed unwrap is a failed test.
mod tests {
    use super::*;
    use crate::model::{Column, Op, ReplicaIdentity, TableName};

    fn schema(columns: &[(&str, u32)]) -> RelationSchema {
        RelationSchema {
            oid: 1,
            table: TableName::new("public", "t"),
            replica_identity: ReplicaIdentity::Full,
            columns: columns
                .iter()
                .map(|(name, oid)| Column {
                    name: (*name).to_owned(),
                    type_oid: *oid,
                    base_type_oid: *oid,
                    type_modifier: -1,
                    type_name: "text".to_owned(),
                    in_replica_identity: true,
                    identity: None,
                    attnum: None,
                })
                .collect(),
            key: vec![0],
            foreign_keys: Vec::new(),
            key_read_later: false,
        }
    }

    fn lines(diffs: &[ColumnDiff]) -> Vec<String> {
        diffs
            .iter()
            .filter(|diff| diff.kind != DiffKind::Unchanged)
            .map(ToString::to_string)
            .collect()
    }

    fn text(value: &str) -> Value {
        Value::text(value)
    }

    #[test]
    fn update_with_json_long_text_null_and_unavailable() {
        let schema = schema(&[
            ("id", 23),
            ("status", 25),
            ("doc", JSONB),
            ("note", 25),
            ("blob", 25),
            ("gone", 25),
        ]);
        let change = Change {
            op: Op::Update,
            before: Some(vec![
                text("7"),
                text("new"),
                text(
                    r#"{"address": {"city": "Oslo", "zip": "0150"}, "tags": ["a", "b"], "odd key": 1}"#,
                ),
                text("The quick brown fox jumps over the lazy dog, twice a day."),
                Value::Unavailable,
                text("x"),
            ]),
            after: Some(vec![
                text("7"),
                text("paid"),
                text(
                    r#"{"address": {"city": "Bergen", "zip": "0150"}, "tags": ["a"], "odd key": 1, "vip": true}"#,
                ),
                text("The quick red fox jumps over the lazy cat, twice a day."),
                text("big"),
                Value::Null,
            ]),
        };
        let diffs = diff_change(&schema, &change);
        assert_eq!(
            lines(&diffs),
            vec![
                "status: new → paid",
                r#"doc: address.city: "Oslo" → "Bergen"; tags[1]: removed "b"; vip: added true"#,
                "note: The quick [-brown-]{+red+} fox jumps over the lazy [-dog,-]{+cat,+} twice a day.",
                "blob: (unavailable) → big",
                "gone: x → NULL",
            ]
        );
        assert_eq!(diffs[4].kind, DiffKind::Unknown);
        assert_eq!(diffs[5].kind, DiffKind::Changed);
    }

    #[test]
    fn multi_line_text_diffs_by_line() {
        let spans = text_spans("one\ntwo\nthree\n", "one\n2\nthree\n");
        assert_eq!(
            spans,
            vec![
                TextSpan::Same("one\n".into()),
                TextSpan::Removed("two\n".into()),
                TextSpan::Added("2\n".into()),
                TextSpan::Same("three\n".into()),
            ]
        );
    }

    #[test]
    fn insert_delete_and_schema_changes() {
        let old = schema(&[("id", 23), ("name", 25), ("price", 1700)]);
        let new = schema(&[("id", 23), ("title", 25), ("price", 1700)]);
        let before = vec![text("1"), text("pen"), text("2.50")];
        let after = vec![text("1"), text("pen"), text("2.75")];
        let diffs = diff_rows(Some((&old, &before)), Some((&new, &after)));
        assert_eq!(
            lines(&diffs),
            vec!["title: + pen", "price: 2.50 → 2.75", "name: - pen"]
        );
        let inserted = diff_rows(None, Some((&new, &after)));
        assert!(inserted.iter().all(|diff| diff.kind == DiffKind::Added));
        let deleted = diff_rows(Some((&old, &before)), None);
        assert!(deleted.iter().all(|diff| diff.kind == DiffKind::Removed));
    }

    #[test]
    fn json_paths_quote_odd_keys_and_index_arrays() {
        let mut edits = Vec::new();
        let old: Json = serde_json::from_str(r#"{"a b": [1, {"c": 2}], "1x": 0}"#).unwrap();
        let new: Json = serde_json::from_str(r#"{"a b": [1, {"c": 3}], "1x": 1}"#).unwrap();
        json_edits(String::new(), Some(&old), Some(&new), &mut edits);
        let shown: Vec<String> = edits.iter().map(ToString::to_string).collect();
        assert_eq!(shown, vec![r#"["a b"][1].c: 2 → 3"#, r#"["1x"]: 0 → 1"#]);
        let mut whole = Vec::new();
        json_edits(
            String::new(),
            Some(&Json::from(1)),
            Some(&Json::from("1")),
            &mut whole,
        );
        assert_eq!(whole[0].to_string(), r#"$: 1 → "1""#);
    }
}
