//! A change as the cache hands it out: the change, its schema version, and where and when it
//! happened.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::{Change, ChangeId, Context, Lsn, RelationSchema, TableName, Xid};

/// The transaction a change belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionInfo {
    /// The cache's id of the transaction.
    pub id: i64,
    pub xid: Option<Xid>,
    pub commit_lsn: Lsn,
    pub committed_at: DateTime<Utc>,
    pub origin: Option<String>,
    pub is_baseline: bool,
    /// How many changes the transaction made to captured tables.
    pub change_count: i64,
}

/// What a schema change entry (`Op::Ddl`) records.
#[derive(Debug, Clone, PartialEq)]
pub struct SchemaChange {
    /// The command as PostgreSQL tags it (`ALTER TABLE`, `DROP TABLE`, `CREATE INDEX`), or
    /// `schema change` when capture only noticed the new shape in the stream.
    pub command: String,
    /// The statement that ran, when it was recorded (its first 2,000 characters).
    pub statement: Option<String>,
    /// The schema version before; `None` when the table is new to the cache.
    pub before: Option<Arc<RelationSchema>>,
    /// The table was dropped: it holds no rows from here on.
    pub dropped: bool,
    /// Capture noticed the change when the first row of the new shape arrived, without a record
    /// of the statement (rowtrail's event trigger is not installed): it happened earlier.
    pub noticed: bool,
}

/// One stored change with everything needed to show it.
#[derive(Debug, Clone)]
pub struct LoggedChange {
    pub id: ChangeId,
    /// WAL position of the change record (the consistent point for baseline rows).
    pub lsn: Lsn,
    pub tx: TransactionInfo,
    /// The cache's id of the table: a table dropped and created again under the same name is a
    /// new table with a new id.
    pub table_id: i64,
    pub table: TableName,
    /// The schema version the change happened under (for a schema change, the version after).
    pub schema: Arc<RelationSchema>,
    pub change: Change,
    pub context: Option<Context>,
    /// For `Op::Ddl`: what changed.
    pub schema_change: Option<SchemaChange>,
    /// For `Op::Gap`: where the missing history begins (it ends at this change's transaction,
    /// the new baseline).
    pub gap_from: Option<Lsn>,
}

impl LoggedChange {
    /// A change of table 1 in a transaction of its own, numbered `id` (its position, xid-less
    /// transaction and commit second are `id` too), for tests of the pure cores.
    #[cfg(test)]
    pub(crate) fn for_tests(id: i64, schema: &Arc<RelationSchema>, change: Change) -> Self {
        Self {
            id: ChangeId(id),
            lsn: Lsn(id as u64),
            tx: TransactionInfo {
                id,
                xid: None,
                commit_lsn: Lsn(id as u64),
                committed_at: DateTime::from_timestamp(id, 0).unwrap_or_default(),
                origin: None,
                is_baseline: false,
                change_count: 1,
            },
            table_id: 1,
            table: schema.table.clone(),
            schema: schema.clone(),
            change,
            context: None,
            schema_change: None,
            gap_from: None,
        }
    }

    /// The key as people read it: `id=7` or `tenant=1,sku=A-1`; empty for tables without a key.
    pub fn key_text(&self) -> String {
        self.schema
            .key_column_names()
            .zip(self.change.key(&self.schema))
            .map(|(name, value)| format!("{name}={}", value.display()))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Who made the change, from its context: `user=ann endpoint=PUT /orders/7`.
    pub fn context_text(&self) -> String {
        let Some(context) = &self.context else {
            return String::new();
        };
        context
            .iter()
            .map(|(key, value)| match value {
                serde_json::Value::String(text) => format!("{key}={text}"),
                other => format!("{key}={other}"),
            })
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// True when the context's field (dots reach into objects: `request.user`) reads `wanted`:
    /// a string as itself, any other value as its JSON text.
    pub fn context_has(&self, field: &str, wanted: &str) -> bool {
        let mut parts = field.split('.');
        let Some(first) = parts.next() else {
            return false;
        };
        let Some(mut value) = self.context.as_ref().and_then(|context| context.get(first)) else {
            return false;
        };
        for part in parts {
            match value.get(part) {
                Some(inner) => value = inner,
                None => return false,
            }
        }
        match value {
            serde_json::Value::String(text) => text == wanted,
            // Numbers, booleans and objects read as their JSON text (`42`, `true`).
            other => serde_json::to_string(other).is_ok_and(|text| text == wanted),
        }
    }

    /// True when this change set one of these columns (see `Change::changed_columns`).
    pub fn changed_any(&self, columns: &[String]) -> bool {
        self.change.changed_columns().iter().any(|&index| {
            self.schema
                .columns
                .get(index)
                .is_some_and(|column| columns.contains(&column.name))
        })
    }

    /// The names of the columns an update changed, comma-separated; for a schema change, the
    /// command and what it did to the table; empty for other operations.
    pub fn changed_text(&self) -> String {
        if let Some(schema_change) = &self.schema_change {
            return schema_change.summary(&self.schema);
        }
        if let Some(from) = self.gap_from {
            return format!(
                "history missing from {from} to {}: a new baseline follows",
                self.tx.commit_lsn
            );
        }
        if self.change.op != super::Op::Update {
            return String::new();
        }
        self.change
            .changed_columns()
            .iter()
            .filter_map(|&index| self.schema.columns.get(index))
            .map(|column| column.name.as_str())
            .collect::<Vec<_>>()
            .join(",")
    }
}

impl SchemaChange {
    /// What the change did, one line each: `added column note text`, `the table was dropped`,
    /// `created with columns id integer, note text`; empty when columns and key stayed the same.
    pub fn edit_lines(&self, after: &RelationSchema) -> Vec<String> {
        match (&self.before, self.dropped) {
            (_, true) => vec!["the table was dropped".to_owned()],
            (Some(before), false) => super::schema_edits(before, after)
                .iter()
                .map(ToString::to_string)
                .collect(),
            (None, false) => {
                let columns: Vec<String> = after
                    .columns
                    .iter()
                    .map(|column| format!("{} {}", column.name, column.type_name))
                    .collect();
                vec![format!("created with columns {}", columns.join(", "))]
            }
        }
    }

    /// `ALTER TABLE: added column note text; dropped column legacy`.
    pub fn summary(&self, after: &RelationSchema) -> String {
        let edits = self.edit_lines(after);
        match edits.is_empty() {
            true => self.command.clone(),
            false => format!("{}: {}", self.command, edits.join("; ")),
        }
    }
}
