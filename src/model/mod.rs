//! The vocabulary every other module speaks: positions and ids, tables and their schema versions,
//! row values and changes.
//!
//! Pure data and the rules that follow from it. This module does no I/O, knows nothing of the wire
//! format, SQLite or egui, and never fails on well-typed input.

mod change;
mod ids;
mod image;
mod link;
mod logged;
mod moment;
mod relation;
mod rules;
mod saved_view;
mod schema_edit;
mod search;

pub use change::{Change, Op, ParseOpError, Row, Value, escape_bytes, key_of};
pub use ids::{ChangeId, Lsn, Oid, ParseLsnError, Xid};
pub use image::{Image, RecordChanges, TableChange, after_image};
pub use link::Link;
pub use logged::{LoggedChange, SchemaChange, TransactionInfo};
pub use moment::{Moment, MomentError};
pub use relation::{
    Column, ForeignKey, IdentityKind, RelationSchema, ReplicaIdentity, TableName, TableNameError,
    quote_ident,
};
pub use rules::{
    ColumnProtection, ColumnRule, ColumnRules, MASKED_PREFIX, MaskKey, Masking, Protection,
    RowMask, RuleError, suggest as suggest_rule,
};
pub use saved_view::{LinkSource, SavedView, ViewLinkError};
pub use schema_edit::{SchemaEdit, schema_edits};
pub use search::{Search, SearchError, Term};

/// Application context attached to changes: the JSON object an application sent with
/// `pg_logical_emit_message(true, 'rowtrail', '{"user":"ann"}')`.
pub type Context = serde_json::Map<String, serde_json::Value>;
