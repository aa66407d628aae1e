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
