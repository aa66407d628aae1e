//! Supabase's supa_audit (`audit.record_version`): one row per row change, written by its
//! trigger in the changing transaction.
//!
//! - `record` (jsonb, `to_jsonb(NEW)`) is the new row of an INSERT or UPDATE, `old_record` the
//!   old row of an UPDATE or DELETE; `op` is `INSERT`, `UPDATE`, `DELETE` or `TRUNCATE`.
//! - `ts` is `now()`: the transaction's start time, the same for all its rows. The store keeps
//!   no transaction id, so rows with the same `ts` next to each other are one transaction.
//! - `auth_uid` and `auth_role` (on Supabase) say who, and become the context.
//!
//! Values are `to_jsonb`'s: read as text per JSON type (`jsonb_each`), and put back in the
//! form PostgreSQL prints by the column's type in the catalog. The mapping (`change_of`) is
//! pure; `import` walks the table by `id` ([`SequenceCursor`]).

use chrono::{DateTime, Utc};
use serde_json::Value as Json;
use tokio::sync::watch;
use tokio_postgres::types::ToSql;

use crate::model::{Context, RelationSchema, TableName};
use crate::store::SourceIdentity;

use super::debezium_values::Kind;
use super::sequence::{NumberedRows, SequenceCursor, import_rounds};
use super::sink::{ImportedTransaction, Sink};
use super::{
    AuditFormat, Fields, ImportError, ImportOptions, ImportSummary, ImportedChange, ImportedOp,
    RowError, Store,
};

/// The store's table.
pub(super) const TABLE: &str = "audit.record_version";

/// Each audited table and how many rows the store holds for it, most first.
pub(super) const TABLES_SQL: &str = "SELECT table_schema || '.' || table_name, count(*) FROM audit.record_version GROUP BY 1 ORDER BY 2 DESC, 1";

/// The columns the import reads, and their types.
pub(super) const COLUMNS: &[(&str, &str)] = &[
    ("id", "bigint"),
    ("op", "audit.operation|text"),
    ("ts", "timestamp with time zone"),
    ("table_schema", "name|text"),
    ("table_name", "name|text"),
    ("record", "jsonb"),
    ("old_record", "jsonb"),
];

/// One row of `audit.record_version`, as read: images as `[[column, JSON type, text], ...]`.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordVersion {
    pub id: i64,
    pub op: String,
    /// `ts`, microseconds since 1970.
    pub ts: i64,
    pub table_schema: String,
    pub table_name: String,
    pub record: Option<String>,
    pub old_record: Option<String>,
    pub auth_uid: Option<String>,
    pub auth_role: Option<String>,
}

/// The change one row records; `catalog` is its table as the catalog beside the store has it.
pub fn change_of(
    row: &RecordVersion,
    catalog: Option<&RelationSchema>,
) -> Result<ImportedChange, RowError> {
    let error = |field: &str, reason: String| RowError {
        row: format!("record_version id {}", row.id),
        field: field.to_owned(),
        reason,
    };
    let op = match row.op.as_str() {
        "INSERT" => ImportedOp::Insert,
        "UPDATE" => ImportedOp::Update,
        "DELETE" => ImportedOp::Delete,
        "TRUNCATE" => ImportedOp::Truncate,
        other => {
            return Err(error(
                "op",
                format!("is {other:?}, not INSERT, UPDATE, DELETE or TRUNCATE"),
            ));
        }
    };
    let image = |field: &str, pairs: Option<&str>| -> Result<Option<Fields>, RowError> {
        pairs
            .map(|pairs| fields_of(pairs, catalog).map_err(|reason| error(field, reason)))
            .transpose()
    };
    let after = image("record", row.record.as_deref())?;
    let before = image("old_record", row.old_record.as_deref())?;
    let (before, after) = match op {
        ImportedOp::Insert => (None, after),
        ImportedOp::Update => (before, after),
        ImportedOp::Delete => (before, None),
        ImportedOp::Truncate => (None, None),
    };
    let missing = match op {
        ImportedOp::Insert if after.is_none() => Some("record"),
        ImportedOp::Update if after.is_none() => Some("record"),
        ImportedOp::Update | ImportedOp::Delete if before.is_none() => Some("old_record"),
        _ => None,
    };
    if let Some(field) = missing {
        return Err(error(field, format!("is NULL for an {}", row.op)));
    }
    Ok(ImportedChange {
        table: TableName::new(row.table_schema.clone(), row.table_name.clone()),
        op,
        before,
        after,
        key: Vec::new(),
        types: Vec::new(),
    })
}

/// Who made the change, on Supabase; `None` elsewhere.
pub fn context_of(row: &RecordVersion) -> Option<Context> {
    let mut context = Context::new();
    for (name, value) in [("auth_uid", &row.auth_uid), ("auth_role", &row.auth_role)] {
        if let Some(value) = value {
            context.insert(name.to_owned(), Json::String(value.clone()));
        }
    }
    (!context.is_empty()).then_some(context)
}

/// One column of a `to_jsonb` image as read: its name, JSON type, and text (`#>> '{}'`).
pub(super) type Triple = (String, String, Option<String>);

/// An image read as `[[column, JSON type, text], ...]`, each value in PostgreSQL's text form.
pub(super) fn fields_of(pairs: &str, catalog: Option<&RelationSchema>) -> Result<Fields, String> {
    Ok(fields_from(&triples_of(pairs)?, catalog))
}

/// The columns of an image read as `[[column, JSON type, text], ...]`.
pub(super) fn triples_of(pairs: &str) -> Result<Vec<Triple>, String> {
    let Ok(Json::Array(pairs)) = serde_json::from_str::<Json>(pairs) else {
        return Err(format!("is not a list of columns and values: {pairs}"));
    };
    pairs
        .into_iter()
        .map(|pair| match (pair[0].as_str(), pair[1].as_str()) {
            (Some(name), Some(json_type)) => Ok((
                name.to_owned(),
                json_type.to_owned(),
                pair[2].as_str().map(str::to_owned),
            )),
            _ => Err(format!("holds {pair}, not a column and its value")),
        })
        .collect()
}

/// An image's columns, each value in PostgreSQL's text form for its column's type.
pub(super) fn fields_from(triples: &[Triple], catalog: Option<&RelationSchema>) -> Fields {
    triples
        .iter()
        .map(|(name, json_type, text)| {
            let kind = catalog
                .and_then(|schema| schema.column_index(name).map(|i| &schema.columns[i]))
                .map_or(Kind::Unknown, Kind::of_column);
            let value = match text {
                None => None,
                Some(_) if json_type == "null" => None,
                Some(text) => Some(text_of(&kind, json_type, text)),
            };
            (name.clone(), value)
        })
        .collect()
}

/// A `to_jsonb` value (its JSON type and text) as PostgreSQL prints it for `kind`.
fn text_of(kind: &Kind, json_type: &str, text: &str) -> String {
    match (kind, json_type) {
        (Kind::TimestampTz, "string") => match DateTime::parse_from_rfc3339(text) {
            Ok(at) => {
                let at = at.with_timezone(&Utc);
                let micros = at.timestamp_subsec_micros();
                let fraction = if micros == 0 {
                    String::new()
                } else {
                    format!(".{micros:06}").trim_end_matches('0').to_owned()
                };
                format!("{}{fraction}+00", at.format("%Y-%m-%d %H:%M:%S"))
            }
            Err(_) => text.to_owned(),
        },
        (Kind::Timestamp { .. }, "string") => text.replacen('T', " ", 1),
        (Kind::TimeTz, "string") => match text.strip_suffix(":00") {
            Some(hours)
                if hours
                    .get(hours.len().saturating_sub(3)..)
                    .is_some_and(|zone| zone.starts_with(['+', '-'])) =>
            {
                hours.to_owned()
            }
            _ => text.to_owned(),
        },
        (Kind::Float4 | Kind::Float8, "number") => match text.parse::<f64>() {
            Ok(value) => super::debezium_values::float_text_of(kind, value),
            Err(_) => text.to_owned(),
        },
        (Kind::Array(element), "array") => match serde_json::from_str::<Json>(text) {
            Ok(Json::Array(items)) => array_text(&items, element),
            _ => text.to_owned(),
        },
        _ => text.to_owned(),
    }
}

/// A `to_jsonb` array as PostgreSQL prints the array.
fn array_text(items: &[Json], element: &Kind) -> String {
    let parts: Vec<String> = items
        .iter()
        .map(|item| match item {
            Json::Null => "NULL".to_owned(),
            Json::Array(inner) => array_text(inner, element),
            Json::String(text) => {
                super::debezium_values::quoted_element(&text_of(element, "string", text))
            }
            Json::Bool(flag) => super::debezium_values::element_text(element, flag.to_string()),
            Json::Number(number) => text_of(element, "number", &number.to_string()),
            other => super::debezium_values::quoted_element(&other.to_string()),
        })
        .collect();
    format!("{{{}}}", parts.join(","))
}

/// Imports `audit.record_version` into the cache, round after round with `--follow`.
pub(super) async fn import(
    store: &Store,
    options: &ImportOptions,
    source: &SourceIdentity,
    stop: watch::Receiver<bool>,
    progress: &(dyn Fn(&ImportSummary) + Sync),
) -> Result<ImportSummary, ImportError> {
    store
        .check_table(AuditFormat::SupaAudit, TABLE, COLUMNS)
        .await?;
    let who = store
        .session
        .query_one(
            "looking for supa_audit's auth columns",
            "SELECT count(*) = 2 FROM pg_attribute
             WHERE attrelid = 'audit.record_version'::regclass
               AND attname IN ('auth_uid', 'auth_role') AND NOT attisdropped",
            &[],
        )
        .await?
        .get::<_, bool>(0);
    let mut reader = Reader { store, who };
    let mut sink = Sink::open(options, source)?;
    import_rounds(&mut reader, store, &mut sink, options, stop, progress).await?;
    Ok(sink.summary)
}

struct Reader<'a> {
    store: &'a Store,
    /// The store has `auth_uid` and `auth_role`.
    who: bool,
}

impl NumberedRows for Reader<'_> {
    type Row = RecordVersion;
    const ID: &'static str = "r.id";
    const PAGE_ROWS: i64 = 5_000;

    /// The rows `filter` selects, in `id` order.
    async fn rows(
        &mut self,
        filter: &str,
        parameters: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<RecordVersion>, ImportError> {
        let who = if self.who {
            "r.auth_uid::text, r.auth_role::text"
        } else {
            "NULL::text, NULL::text"
        };
        let image = |column: &str| {
            format!(
                "(SELECT json_agg(json_build_array(e.key, jsonb_typeof(e.value), e.value #>> '{{}}'))
                  FROM jsonb_each(r.{column}) e)::text"
            )
        };
        let sql = format!(
            "SELECT r.id, r.op::text, (extract(epoch FROM r.ts) * 1000000)::int8,
                    r.table_schema::text, r.table_name::text,
                    CASE WHEN r.record IS NOT NULL THEN coalesce({}, '[]') END,
                    CASE WHEN r.old_record IS NOT NULL THEN coalesce({}, '[]') END,
                    {who}
             FROM audit.record_version r {filter}",
            image("record"),
            image("old_record"),
        );
        let rows = self
            .store
            .session
            .query("reading audit.record_version", &sql, parameters)
            .await?;
        let mut rows: Vec<RecordVersion> = rows
            .iter()
            .map(|row| RecordVersion {
                id: row.get(0),
                op: row.get::<_, Option<String>>(1).unwrap_or_default(),
                ts: row.get::<_, Option<i64>>(2).unwrap_or(i64::MIN),
                table_schema: row.get::<_, Option<String>>(3).unwrap_or_default(),
                table_name: row.get::<_, Option<String>>(4).unwrap_or_default(),
                record: row.get(5),
                old_record: row.get(6),
                auth_uid: row.get(7),
                auth_role: row.get(8),
            })
            .collect();
        rows.sort_by_key(|row| row.id);
        Ok(rows)
    }

    /// A page ends inside the transaction of its last `ts`: that transaction waits for the
    /// next page, unless it fills the page (then it is split).
    fn keep_whole_transactions(&self, rows: &mut Vec<RecordVersion>) {
        if let Some(last_ts) = rows.last().map(|row| row.ts) {
            let kept = rows
                .iter()
                .rposition(|row| row.ts != last_ts)
                .map_or(0, |i| i + 1);
            if kept > 0 {
                rows.truncate(kept);
            }
        }
    }

    /// Writes rows in `id` order, each run of rows with the same `ts` as one transaction.
    async fn write(
        &mut self,
        sink: &mut Sink,
        cursor: &mut SequenceCursor,
        rows: Vec<RecordVersion>,
    ) -> Result<(), ImportError> {
        write_rows(self, sink, cursor, rows).await
    }
}

async fn write_rows(
    reader: &Reader<'_>,
    sink: &mut Sink,
    cursor: &mut SequenceCursor,
    rows: Vec<RecordVersion>,
) -> Result<(), ImportError> {
    let mut start = 0;
    while start < rows.len() {
        let ts = rows[start].ts;
        let end = rows[start..]
            .iter()
            .position(|row| row.ts != ts)
            .map_or(rows.len(), |length| start + length);
        let mut changes = Vec::with_capacity(end - start);
        for row in &rows[start..end] {
            let table = TableName::new(row.table_schema.clone(), row.table_name.clone());
            let catalog = sink
                .catalog_schema(
                    &reader.store.session,
                    reader.store.server_version_num,
                    &table,
                )
                .await?
                .cloned();
            match change_of(row, catalog.as_ref()) {
                Ok(change) => changes.push((change, context_of(row))),
                Err(error) => {
                    if let Err(error) = sink.bad_row(error) {
                        // Keep what came before the bad row.
                        sink.save(cursor)?;
                        return Err(error);
                    }
                }
            }
        }
        sink.write(ImportedTransaction::new(None, ts, changes))?;
        for row in &rows[start..end] {
            cursor.imported(row.id);
        }
        start = end;
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // In tests a failed unwrap is a failed test.
mod tests {
    use super::*;

    fn row(op: &str, record: Option<&str>, old: Option<&str>) -> RecordVersion {
        RecordVersion {
            id: 12,
            op: op.into(),
            ts: 0,
            table_schema: "public".into(),
            table_name: "orders".into(),
            record: record.map(str::to_owned),
            old_record: old.map(str::to_owned),
            auth_uid: None,
            auth_role: Some("authenticated".into()),
        }
    }

    #[test]
    fn to_jsonb_values_take_postgresqls_text_form() {
        assert_eq!(
            text_of(&Kind::TimestampTz, "string", "2024-01-02T05:04:05.5+02:00"),
            "2024-01-02 03:04:05.5+00"
        );
        assert_eq!(
            text_of(
                &Kind::Timestamp { millis: false },
                "string",
                "2024-01-02T03:04:05"
            ),
            "2024-01-02 03:04:05"
        );
        assert_eq!(
            text_of(&Kind::TimeTz, "string", "03:04:05+02:00"),
            "03:04:05+02"
        );
        assert_eq!(
            text_of(&Kind::Float8, "number", "100000000000000000000"),
            "1e+20"
        );
        assert_eq!(text_of(&Kind::Numeric(Some(2)), "number", "10.50"), "10.50");
        assert_eq!(
            text_of(
                &Kind::of_type_name("text[]"),
                "array",
                r#"["x", "a b", null]"#
            ),
            r#"{x,"a b",NULL}"#
        );
        assert_eq!(
            text_of(&Kind::Text, "object", r#"{"a": [1, 2]}"#),
            r#"{"a": [1, 2]}"#
        );
    }

    #[test]
    fn rows_map_to_changes_and_bad_ones_name_their_id() {
        let update = change_of(
            &row(
                "UPDATE",
                Some(r#"[["id", "number", "1"], ["note", "null", null]]"#),
                Some(r#"[["id", "number", "1"], ["note", "string", "a"]]"#),
            ),
            None,
        )
        .unwrap();
        assert_eq!(update.op, ImportedOp::Update);
        assert_eq!(
            update.before.unwrap()[1],
            ("note".to_owned(), Some("a".to_owned()))
        );
        assert_eq!(update.after.unwrap()[1], ("note".to_owned(), None));
        let truncate = change_of(&row("TRUNCATE", None, None), None).unwrap();
        assert_eq!(truncate.op, ImportedOp::Truncate);
        let missing = change_of(&row("DELETE", None, None), None).unwrap_err();
        assert_eq!(missing.field, "old_record");
        assert!(missing.to_string().contains("record_version id 12"));
        let unknown = change_of(&row("SNAPSHOT", None, None), None).unwrap_err();
        assert_eq!(unknown.field, "op");
        assert_eq!(
            context_of(&row("INSERT", None, None)).unwrap()["auth_role"],
            "authenticated"
        );
    }
}
