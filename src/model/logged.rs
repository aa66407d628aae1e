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

/// One stored change with everything needed to show it.
#[derive(Debug, Clone)]
pub struct LoggedChange {
    pub id: ChangeId,
    /// WAL position of the change record (the consistent point for baseline rows).
    pub lsn: Lsn,
    pub tx: TransactionInfo,
    pub table: TableName,
    /// The schema version the change happened under.
    pub schema: Arc<RelationSchema>,
    pub change: Change,
    pub context: Option<Context>,
}

impl LoggedChange {
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

    /// The names of the columns an update changed, comma-separated; empty for other operations.
    pub fn changed_text(&self) -> String {
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
