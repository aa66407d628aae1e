//! The history engine's pure core: what changed (diffs), moments in time, and restore scripts
//! (plans and the SQL that carries them out).
//!
//! Architecture invariant: everything here is a pure function of `model` values: no
//! I/O, no SQLite, no PostgreSQL, no egui. The store fetches; this module decides and writes text.
//! Architecture invariant: a restore script is rendered whole or not at all, and every value and
//! name in it goes through `sql` quoting.

pub mod diff;
pub mod plan;
pub mod protect;
pub mod related;
pub mod report;
pub mod script;
pub mod sql;
pub mod state;
pub mod time_input;
pub mod view;

pub use diff::{ColumnDiff, DiffKind, JsonEdit, TextSpan, ValueDiff, diff_change, diff_rows};
pub use plan::{Step, UndoPlan, describe, describe_change, plan_restore, plan_undo};
pub use script::{ScriptHeader, render_script};
pub use time_input::{AgeError, TimeError, parse_age, parse_local_time, parse_time};

use crate::model::ChangeId;

/// A diff, state or script could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HistoryError {
    #[error(
        "cannot restore {record} ({reason}): the cache does not know the value of column {column} it would need (under REPLICA IDENTITY DEFAULT an unchanged large value may never have been sent); set REPLICA IDENTITY FULL to capture it in future"
    )]
    Unrestorable {
        record: String,
        column: String,
        reason: String,
    },
    #[error(
        "cannot restore {record} ({reason}): column {column} is protected by the cache's rule '{rule}' and {what} (hint: add --leave-protected to write the other columns and leave {column} as it is)"
    )]
    Protected {
        record: String,
        column: String,
        rule: String,
        reason: String,
        what: &'static str,
    },
    #[error(
        "cannot restore {record}: column {column} is protected by the cache's rule '{rule}', and the script finds the row by it (a key column, or any column of a table without a key), so it could not be sure of the row (hint: restore it by hand from rowtrail show)"
    )]
    ProtectedKey {
        record: String,
        column: String,
        rule: String,
    },
    #[error("the value of column {column} is not known to the cache")]
    MissingValue { column: String },
    #[error(
        "column {column} has the type name '{type_name}', which rowtrail will not put into SQL: the cache may be damaged"
    )]
    UnsafeTypeName { column: String, type_name: String },
    #[error(
        "change {change} ({record}) happened between the changes being undone: add --change {change}, or use --cascade to undo later changes too"
    )]
    Interleaved { change: ChangeId, record: String },
    #[error(
        "change {change} is part of a baseline (the row as capture found it when history began, or began again after a gap), not a change to undo; to bring a record back to it use rowtrail restore --time change:{change}"
    )]
    BaselineChange { change: ChangeId },
    #[error(
        "change {change} is a TRUNCATE of {table}; rowtrail cannot undo it as a whole: list the rows it removed with rowtrail at --table {table} --time change:{change}-1, and restore records one by one"
    )]
    TruncateUndo { change: ChangeId, table: String },
    #[error(
        "change {change} is a schema change ({command} of {table}); rowtrail undoes row changes, not schema changes: reverse it with the opposite DDL"
    )]
    SchemaChangeUndo {
        change: ChangeId,
        command: String,
        table: String,
    },
    #[error("there is nothing to undo")]
    NothingToUndo,
}
