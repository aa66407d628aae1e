//! Writing restore scripts from a cache: fetches what the history engine needs from the store,
//! plans, and renders. The command line and the app both come here, so a script looks the same
//! wherever it was made.

use std::collections::HashSet;

use chrono::Utc;

use crate::history::protect::protect_steps;
use crate::history::{
    HistoryError, ScriptHeader, Step, describe_change, plan_restore, plan_undo, render_script,
};
use crate::model::{ChangeId, LoggedChange, Moment, Xid};
use crate::store::{Cache, RecordRef, StoreError};

/// What to undo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UndoTarget {
    Changes(Vec<ChangeId>),
    /// A source transaction by its xid.
    Transaction(Xid),
    /// A transaction by the cache's own id (unambiguous, unlike xids, which wrap around).
    CachedTransaction(i64),
    /// The changes of a record's related history after a moment (`what` names the record and
    /// the moment, for the script's title).
    Story {
        what: String,
        ids: Vec<ChangeId>,
    },
}

/// A finished script and what went into it.
#[derive(Debug, Clone)]
pub struct Script {
    pub title: String,
    pub sql: String,
    /// Changes the script undoes, oldest first (for restores: the record's newest change).
    pub undone: Vec<ChangeId>,
    /// Later changes to the same records that the script does not undo, oldest first.
    pub later: Vec<LoggedChange>,
    /// Of those, the ones its guards will stop at (the others changed nothing it checks).
    pub stopping: Vec<ChangeId>,
}

impl Script {
    /// The later changes the guards will stop at.
    pub fn stopping_changes(&self) -> impl Iterator<Item = &LoggedChange> {
        self.later
            .iter()
            .filter(|change| self.stopping.contains(&change.id))
    }
}

/// Who is running rowtrail, for the context a script records: the operating system's user (from
/// the system's user database, so it is right where `USER` is not set, as under sudo or a service).
fn operator() -> String {
    whoami::username()
        .ok()
        .filter(|name| !name.is_empty())
        .or_else(|| {
            ["USER", "LOGNAME", "USERNAME"]
                .iter()
                .find_map(|name| std::env::var(name).ok().filter(|value| !value.is_empty()))
        })
        .unwrap_or_else(|| "unknown".to_owned())
}

/// The context a script records in the database's history: that rowtrail ran it, for whom, and
/// what it undoes or restores (`("undo", "change 42")`).
fn script_context(action: &str, what: String) -> serde_json::Map<String, serde_json::Value> {
    let mut context = serde_json::Map::new();
    context.insert("tool".to_owned(), "rowtrail".into());
    context.insert("user".to_owned(), operator().into());
    context.insert(action.to_owned(), what.into());
    context
}

/// A script could not be written.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    History(#[from] HistoryError),
    #[error(
        "{table} has no record with key {key}: check the key, or list the table's changes with rowtrail log --table {table}"
    )]
    NoRecord { table: String, key: String },
    #[error(
        "{table} was dropped by change {change}, so its rows cannot be put back (a table created again under its name is another table): recreate it first, or copy the rows from rowtrail at --table {table} --time change:{change}-1"
    )]
    TableDropped { table: String, change: ChangeId },
    #[error(
        "the values of {what} were erased on {erased_at} (rowtrail forget {record}): there is nothing to put back; restore the record from a backup, or write its values by hand"
    )]
    Erased {
        what: String,
        erased_at: String,
        record: String,
    },
}

impl RestoreError {
    fn erased(what: String, erasure: crate::store::maintenance::ErasureEntry) -> Self {
        Self::Erased {
            what,
            erased_at: erasure
                .erased_at
                .get(..19)
                .unwrap_or(&erasure.erased_at)
                .replace('T', " "),
            record: format!("{} {}", erasure.table, erasure.key),
        }
    }
}

fn header(
    cache: &Cache,
    title: String,
    notes: Vec<String>,
    context: serde_json::Map<String, serde_json::Value>,
) -> Result<ScriptHeader, RestoreError> {
    let source = cache.source()?;
    let path = std::fs::canonicalize(cache.path()).unwrap_or_else(|_| cache.path().to_owned());
    Ok(ScriptHeader {
        title,
        cache: path.display().to_string(),
        source: format!("{} (PostgreSQL {})", source.display, source.server_version),
        written_at: Utc::now(),
        notes,
        context: Some(context),
    })
}

/// The script that undoes `target`; with `cascade`, later changes to the same records too.
pub fn undo_script(
    cache: &Cache,
    target: &UndoTarget,
    cascade: bool,
    guard: bool,
    leave_protected: bool,
) -> Result<Script, RestoreError> {
    cache.snapshot(|| undo_script_in_snapshot(cache, target, cascade, guard, leave_protected))
}

fn undo_script_in_snapshot(
    cache: &Cache,
    target: &UndoTarget,
    cascade: bool,
    guard: bool,
    leave_protected: bool,
) -> Result<Script, RestoreError> {
    let (changes, title, undoes) = match target {
        UndoTarget::Transaction(xid) => (
            cache.transaction_changes(*xid)?,
            format!("undo transaction {xid}"),
            format!("transaction {xid}"),
        ),
        UndoTarget::CachedTransaction(id) => {
            let changes = cache.transaction(*id, None)?;
            let first = changes.first();
            let (title, undoes) = match first.and_then(|change| change.tx.xid) {
                Some(xid) => (
                    format!("undo transaction {xid}"),
                    format!("transaction {xid}"),
                ),
                None if first.is_some_and(|change| change.tx.is_baseline) => {
                    ("undo the baseline".to_owned(), "the baseline".to_owned())
                }
                // An imported transaction whose store kept no id: named by its time.
                None => {
                    let at = first.map_or_else(String::new, |change| {
                        change
                            .tx
                            .committed_at
                            .format(" of %Y-%m-%d %H:%M:%S UTC")
                            .to_string()
                    });
                    (
                        format!("undo the transaction{at}"),
                        format!("the transaction{at}"),
                    )
                }
            };
            (changes, title, undoes)
        }
        UndoTarget::Story { what, ids } => (
            cache.changes_by_id(ids)?,
            format!("restore {what}"),
            what.clone(),
        ),
        UndoTarget::Changes(ids) => {
            let changes = cache.changes_by_id(ids)?;
            let described: Vec<String> = changes
                .iter()
                .map(|change| format!("change {} ({})", change.id, describe_change(change)))
                .collect();
            let ids: Vec<String> = ids.iter().map(ToString::to_string).collect();
            let undoes = match ids.len() {
                1 => format!("change {}", ids.join("")),
                _ => format!("changes {}", ids.join(", ")),
            };
            (changes, format!("undo {}", described.join(", ")), undoes)
        }
    };
    // An erased change has no values left to write or to guard on.
    for change in &changes {
        if let Some(erasure) = cache.erasure_of(change.id)? {
            return Err(RestoreError::erased(
                format!("change {}", change.id),
                erasure,
            ));
        }
    }
    // Schema changes are history, not something a script puts back: named alone they are an
    // error; in a transaction they are left out, with a note.
    let (schema_changes, changes): (Vec<LoggedChange>, Vec<LoggedChange>) = changes
        .into_iter()
        .partition(|change| change.schema_change.is_some());
    if let (true, Some(first)) = (changes.is_empty(), schema_changes.first()) {
        return Err(HistoryError::SchemaChangeUndo {
            change: first.id,
            command: first
                .schema_change
                .as_ref()
                .map(|schema_change| schema_change.command.clone())
                .unwrap_or_default(),
            table: first.table.to_string(),
        }
        .into());
    }
    let selected: HashSet<ChangeId> = changes.iter().map(|change| change.id).collect();
    let groups = cache.record_groups(&changes)?;
    let plan = plan_undo(&groups, &selected, cascade)?;
    let mut notes = Vec::new();
    for schema_change in &schema_changes {
        notes.push(format!(
            "not undone: change {} ({}); scripts restore rows, not schemas",
            schema_change.id,
            describe_change(schema_change)
        ));
    }
    let cascaded: Vec<String> = plan
        .undone
        .iter()
        .filter(|id| !selected.contains(id))
        .map(ToString::to_string)
        .collect();
    if !cascaded.is_empty() {
        notes.push(format!(
            "--cascade: also undoes later changes {}",
            cascaded.join(", ")
        ));
    }
    for later in &plan.later {
        notes.push(later_note(later, plan.stopping.contains(&later.id)));
    }
    let mut steps = plan.steps;
    // Rules are checked on the rows as the script writes them (the table's newest version): a
    // rename since the change is followed by the rule the cache derived for the new name.
    notes.extend(fit_to_tables_now(cache, &mut steps)?);
    notes.extend(protect_steps(
        &cache.column_rules()?,
        &mut steps,
        leave_protected,
    )?);
    let context = script_context("undo", undoes);
    let sql = render_script(
        &header(cache, title.clone(), notes, context)?,
        &steps,
        guard,
    )?;
    Ok(Script {
        title,
        sql,
        undone: plan.undone,
        later: plan.later,
        stopping: plan.stopping,
    })
}

/// Rewrites each step's rows in their table's newest schema version, so the script names the
/// columns as they are now (see [`Image::in_version`]), and refuses a table that was dropped:
/// a table created again under its name is another table. Returns notes on columns left out.
fn fit_to_tables_now(cache: &Cache, steps: &mut [Step]) -> Result<Vec<String>, RestoreError> {
    let mut notes = Vec::new();
    for step in steps.iter_mut() {
        let Some(oid) = step
            .current
            .as_ref()
            .or(step.target.as_ref())
            .map(|image| image.schema.oid)
        else {
            continue;
        };
        let table = cache.table_by_oid(oid)?;
        if let Some(dropped) = table.dropped_by {
            return Err(RestoreError::TableDropped {
                table: step.table.to_string(),
                change: dropped,
            });
        }
        for image in [&mut step.current, &mut step.target].into_iter().flatten() {
            let (fitted, left_out) = image.in_version(&table.schema);
            for column in left_out {
                let note = format!(
                    "column {column} of {} was dropped since; the script leaves it out",
                    step.table
                );
                if !notes.contains(&note) {
                    notes.push(note);
                }
            }
            *image = fitted;
        }
        step.table = table.schema.table.clone();
    }
    Ok(notes)
}

/// How a later change is reported in scripts: whether the guard will stop at it.
pub fn later_note(later: &LoggedChange, stops: bool) -> String {
    match stops {
        true => format!(
            "later change {} ({}) at {} is not undone and changed what this script checks: the guard stops the script if it reached the database (undo it too: --cascade, or Include later changes in the app)",
            later.id,
            describe_change(later),
            later.tx.committed_at.format("%Y-%m-%d %H:%M:%S UTC")
        ),
        false => format!(
            "later change {} ({}) at {} is kept: it changed nothing this script checks",
            later.id,
            describe_change(later),
            later.tx.committed_at.format("%Y-%m-%d %H:%M:%S UTC")
        ),
    }
}

/// The script that puts `record` back as it was at `moment` (deleting it if it did not exist).
pub fn restore_script(
    cache: &Cache,
    record: &RecordRef,
    moment: Moment,
    guard: bool,
    leave_protected: bool,
) -> Result<Script, RestoreError> {
    cache.snapshot(|| restore_script_in_snapshot(cache, record, moment, guard, leave_protected))
}

fn restore_script_in_snapshot(
    cache: &Cache,
    record: &RecordRef,
    moment: Moment,
    guard: bool,
    leave_protected: bool,
) -> Result<Script, RestoreError> {
    if let Some(erasure) = cache.record_erasure(record)? {
        return Err(RestoreError::erased(
            format!("{} {}", record.table, record.key),
            erasure,
        ));
    }
    let cut = cache.resolve_moment(moment)?;
    let target = cache.record_at(record, cut)?;
    let (current, newest) = cache.record_latest(record)?;
    if target.is_none() && current.is_none() && newest.is_none() {
        return Err(RestoreError::NoRecord {
            table: record.table.to_string(),
            key: record.key.clone(),
        });
    }
    let described = target
        .as_ref()
        .or(current.as_ref())
        .map(crate::history::describe)
        .unwrap_or_else(|| format!("{} {}", record.table, record.key));
    let title = match &target {
        Some(_) => format!("restore {described} to its state at {moment}"),
        None => format!("restore {described} to not existing, as at {moment}"),
    };
    let mut steps = [plan_restore(
        record.table.clone(),
        current,
        target,
        title.clone(),
        newest.unwrap_or(cut),
    )];
    let mut notes = fit_to_tables_now(cache, &mut steps)?;
    notes.extend(protect_steps(
        &cache.column_rules()?,
        &mut steps,
        leave_protected,
    )?);
    let context = script_context("restore", format!("{described} as at {moment}"));
    let sql = render_script(
        &header(cache, title.clone(), notes, context)?,
        &steps,
        guard,
    )?;
    Ok(Script {
        title,
        sql,
        undone: newest.into_iter().collect(),
        later: Vec::new(),
        stopping: Vec::new(),
    })
}
