//! Related history of one record, and views over a filtered set, read from a cache: the store
//! fetches the links and the changes of the tables they reach, `history::related` and
//! `history::view` fold them.

use chrono::{DateTime, Utc};

use std::collections::{BTreeMap, HashSet};

use crate::history::related::{Member, Related, Story, StoryError, values_of};
use crate::history::view::{Movement, Predicate, PredicateError, View};
use crate::model::{ChangeId, LoggedChange, Moment, SavedView, TableName, Value};
use crate::restore::{Script, UndoTarget, undo_script};
use crate::store::{Cache, RecordRef, StoreError};

/// What a story holds and how far it reaches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoryOptions {
    /// How many foreign keys to follow from the record (1 to `history::related::MAX_DEPTH`).
    pub depth: usize,
    /// Also the rows the record points at, one level.
    pub up: bool,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
}

impl Default for StoryOptions {
    fn default() -> Self {
        Self {
            depth: 3,
            up: false,
            since: None,
            until: None,
        }
    }
}

/// Why a record's story could not be read.
#[derive(Debug, thiserror::Error)]
pub enum RelatedError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Story(#[from] StoryError),
    #[error(
        "{table} has no record with key {key}: check the key, or list the table's changes with rowtrail log --table {table}"
    )]
    NoRecord { table: String, key: String },
    #[error(transparent)]
    Restore(#[from] crate::restore::RestoreError),
    #[error("nothing in the story of {record} changed after {when}: there is nothing to put back")]
    NothingAfter { record: String, when: String },
}

/// The story of `record`, oldest change first, each with its path from the record.
pub fn related_history(
    cache: &Cache,
    record: &RecordRef,
    options: &StoryOptions,
) -> Result<Vec<Related>, RelatedError> {
    Ok(tell(cache, record, options, None)?.0)
}

/// The record and every related row as they were right after change `cut`, nearest first.
pub fn related_at(
    cache: &Cache,
    record: &RecordRef,
    options: &StoryOptions,
    cut: ChangeId,
) -> Result<Vec<Member>, RelatedError> {
    Ok(tell(cache, record, options, Some(cut))?.1.members())
}

/// The changes of the story after change `cut`: what `restore --related` undoes.
pub fn related_after(
    cache: &Cache,
    record: &RecordRef,
    options: &StoryOptions,
    cut: ChangeId,
) -> Result<Vec<ChangeId>, RelatedError> {
    Ok(related_history(cache, record, options)?
        .into_iter()
        .map(|related| related.change.id)
        .filter(|id| *id > cut)
        .collect())
}

/// The script that puts the record and every related row back as they were at `moment`: it
/// undoes every change of the story after it, ordered so foreign keys hold. `when` names the
/// moment in the script's title and messages.
pub fn restore_related(
    cache: &Cache,
    record: &RecordRef,
    options: &StoryOptions,
    moment: Moment,
    when: &str,
    guard: bool,
) -> Result<Script, RelatedError> {
    let cut = cache.resolve_moment(moment)?;
    let ids = related_after(cache, record, options, cut)?;
    // Keys are stored as a JSON list of their values' text (`["7","2"]`).
    let key = serde_json::from_str::<Vec<Option<String>>>(&record.key).map_or_else(
        |_| record.key.clone(),
        |values| {
            values
                .into_iter()
                .map(|value| value.unwrap_or_else(|| "NULL".to_owned()))
                .collect::<Vec<_>>()
                .join(",")
        },
    );
    let described = format!("{} ({key})", record.table);
    if ids.is_empty() {
        return Err(RelatedError::NothingAfter {
            record: described,
            when: when.to_owned(),
        });
    }
    let what = format!("{described} with its related rows to {when}");
    Ok(undo_script(
        cache,
        &UndoTarget::Story { what, ids },
        false,
        guard,
    )?)
}

/// Feeds the story every change of its tables up to `cut` (all without one): the changes that
/// belong, oldest first, and the story as it stands at the end.
fn tell(
    cache: &Cache,
    record: &RecordRef,
    options: &StoryOptions,
    cut: Option<ChangeId>,
) -> Result<(Vec<Related>, Story), RelatedError> {
    // One bound for every read, so changes captured meanwhile are all out of the story.
    let cut = match cut {
        Some(cut) => Some(cut),
        None => match cache.newest_change() {
            Ok(newest) => Some(newest),
            Err(StoreError::EmptyHistory) => None,
            Err(error) => return Err(error.into()),
        },
    };
    // Changes after the bound are left out when the story is fed, below.
    let own = cache.record_history(record)?;
    let Some(newest) = own.last() else {
        return Err(RelatedError::NoRecord {
            table: record.table.to_string(),
            key: record.key.clone(),
        });
    };
    // The history follows the record through key changes: the story starts from its first key.
    let first = own.first().unwrap_or(newest);
    let root_key = first.change.key(&first.schema);
    let mut story = Story::new(
        record.table.clone(),
        root_key,
        cache.links()?,
        options.depth,
        options.up,
    )?;
    let mut told = Vec::new();
    if let Some(candidates) = candidate_changes(cache, &story, own, cut)? {
        let mut transaction: Vec<LoggedChange> = Vec::new();
        for change in candidates {
            if transaction
                .first()
                .is_some_and(|first| first.tx.id != change.tx.id)
                && !tell_transaction(
                    &mut story,
                    options,
                    &mut told,
                    std::mem::take(&mut transaction),
                )
            {
                return Ok((told, story));
            }
            transaction.push(change);
        }
        if !transaction.is_empty() {
            tell_transaction(&mut story, options, &mut told, transaction);
        }
        return Ok((told, story));
    }
    // The index of references could not answer: read every change of the story's tables.
    let tables = story.tables();
    cache.visit_transactions_of(&tables, cut, |transaction| {
        tell_transaction(&mut story, options, &mut told, transaction)
    })?;
    Ok((told, story))
}

/// Feeds one transaction to the story and keeps what belongs within `since`; false once past
/// `until`.
fn tell_transaction(
    story: &mut Story,
    options: &StoryOptions,
    told: &mut Vec<Related>,
    transaction: Vec<LoggedChange>,
) -> bool {
    if options
        .until
        .is_some_and(|until| transaction[0].tx.committed_at > until)
    {
        return false;
    }
    told.extend(
        story
            .feed_transaction(transaction)
            .into_iter()
            .filter(|related| {
                options
                    .since
                    .is_none_or(|since| related.change.tx.committed_at >= since)
            }),
    );
    true
}

/// Every change of every row that can belong to the story, in commit order, up to `cut`: the
/// record's own changes (`own`); the rows that ever pointed at it, found in the index of
/// references, and the rows that ever pointed at those, to the story's depth, each with all its
/// changes; with `--up`, the rows the record ever pointed at. Feeding these to the story gives
/// the same story as feeding it every change of its tables, since a row that never pointed at
/// a member cannot belong. `None` when the index cannot answer (see `Cache::referencing`), or a
/// table of the story has no key to read its rows by.
fn candidate_changes(
    cache: &Cache,
    story: &Story,
    own: Vec<LoggedChange>,
    cut: Option<ChangeId>,
) -> Result<Option<Vec<LoggedChange>>, StoreError> {
    // Records by the cache's table (a table dropped and created again is another table) and key.
    let mut seen: HashSet<(Vec<i64>, String)> = HashSet::new();
    if let Some(first) = own.first() {
        let record = cache.record_of(first)?;
        seen.insert((record.table_ids, record.key));
    }
    // With --up, the values the record's own rows held, before they move into `found`.
    let mut pointed: Vec<(TableName, Vec<Value>)> = Vec::new();
    for link in story.up_links() {
        for change in &own {
            for row in [&change.change.after, &change.change.before]
                .into_iter()
                .flatten()
            {
                if let Some(values) = values_of(&change.schema, row, &link.columns)
                    && !pointed.contains(&(link.to.clone(), values.clone()))
                {
                    pointed.push((link.to.clone(), values));
                }
            }
        }
    }
    // Every change found so far, and the ones of the rows reached at the last hop.
    let mut frontier: Vec<ChangeId> = own.iter().map(|change| change.id).collect();
    let mut found: BTreeMap<ChangeId, LoggedChange> =
        own.into_iter().map(|change| (change.id, change)).collect();
    // Reads every change of the records not seen yet, a table at a time.
    let mut add = |records: Vec<RecordRef>,
                   found: &mut BTreeMap<ChangeId, LoggedChange>,
                   next: &mut Vec<ChangeId>|
     -> Result<(), StoreError> {
        let mut by_table: BTreeMap<Vec<i64>, Vec<String>> = BTreeMap::new();
        for record in records {
            if seen.insert((record.table_ids.clone(), record.key.clone())) {
                by_table
                    .entry(record.table_ids)
                    .or_default()
                    .push(record.key);
            }
        }
        for (table_ids, keys) in by_table {
            for change in cache.records_history(&table_ids, &keys)? {
                next.push(change.id);
                found.insert(change.id, change);
            }
        }
        Ok(())
    };
    for _ in 0..story.depth() {
        let mut next = Vec::new();
        for link in story.links().iter().filter(|link| story.follows_down(link)) {
            // The values the link's target columns held in every version of the rows reached.
            let mut targets: Vec<Vec<Value>> = Vec::new();
            for change in frontier.iter().filter_map(|id| found.get(id)) {
                if change.table != link.to {
                    continue;
                }
                for row in [&change.change.after, &change.change.before]
                    .into_iter()
                    .flatten()
                {
                    if let Some(values) = values_of(&change.schema, row, &link.to_columns)
                        && !targets.contains(&values)
                    {
                        targets.push(values);
                    }
                }
            }
            if targets.is_empty() {
                continue;
            }
            let Some(ids) = cache.referencing(link, &targets)? else {
                return Ok(None);
            };
            let unread: Vec<ChangeId> = ids
                .into_iter()
                .filter(|id| !found.contains_key(id))
                .collect();
            let Some(records) = cache.records_of_ids(&unread)? else {
                return Ok(None);
            };
            add(records, &mut found, &mut next)?;
        }
        frontier = next;
    }
    for link in story.up_links() {
        let (table_ids, schema) = match cache.find_table(&link.to) {
            Ok(found) => found,
            Err(StoreError::UnknownTable { .. }) => continue,
            Err(error) => return Err(error),
        };
        let key: Vec<&str> = schema.key_column_names().collect();
        if key
            != link
                .to_columns
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>()
        {
            return Ok(None);
        }
        let records = pointed
            .iter()
            .filter(|(table, _)| *table == link.to)
            .map(|(_, values)| RecordRef {
                table: link.to.clone(),
                table_ids: table_ids.clone(),
                key: crate::store::codec::encode_key(values),
            })
            .collect();
        add(records, &mut found, &mut Vec::new())?;
    }
    let cut = cut.map_or(i64::MAX, |cut| cut.0);
    Ok(Some(
        found
            .into_values()
            .filter(|change| change.id.0 <= cut)
            .collect(),
    ))
}

/// Why a view could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ViewError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Predicate(#[from] PredicateError),
}

/// The newest `limit` changes of a view's timeline, newest first, found by walking its table's
/// changes from the newest and judging each one alone (`Predicate::judge_alone`), so the first
/// page does not wait for the whole history to be folded. Falls back to `view_history` when a
/// change cannot be judged alone, or the view has several tables, or its table several schema
/// versions.
pub fn view_newest(
    cache: &Cache,
    view: &SavedView,
    limit: usize,
) -> Result<Vec<(LoggedChange, Movement)>, ViewError> {
    const PAGE: usize = 500;
    let predicate = check_view(cache, view)?;
    let everything = |cache: &Cache| -> Result<_, ViewError> {
        let (mut moved, _) = view_history(cache, view, None)?;
        moved.reverse();
        moved.truncate(limit);
        Ok(moved)
    };
    // A change is judged alone under its own schema version; the fold judged the row before it
    // under the version it was last seen with. They agree while the table has one version.
    let [table] = view.tables.as_slice() else {
        return everything(cache);
    };
    if cache.schema_version_count(table)? > 1 {
        return everything(cache);
    }
    let filter = crate::store::LogFilter {
        table: Some(table.clone()),
        ..Default::default()
    };
    let mut top = match cache.newest_change() {
        Ok(newest) => newest,
        Err(StoreError::EmptyHistory) => return Ok(Vec::new()),
        Err(error) => return Err(error.into()),
    };
    let mut newest = Vec::new();
    loop {
        let page = cache.page(&filter, top, 0, PAGE)?;
        let full = page.len() == PAGE;
        for change in page {
            top = ChangeId(change.id.0 - 1);
            let Some(moved) = predicate.judge_alone(&change) else {
                return everything(cache);
            };
            if let Some(movement) = moved
                && shown_in(view, &change, movement)
            {
                newest.push((change, movement));
                if newest.len() >= limit {
                    return Ok(newest);
                }
            }
        }
        if !full || top.0 < 1 {
            return Ok(newest);
        }
    }
}

/// The view's predicate, once it parses and its columns are known to the view's tables.
pub fn check_view(cache: &Cache, view: &SavedView) -> Result<Predicate, ViewError> {
    let predicate = Predicate::parse(&view.predicate)?;
    let mut known = Vec::new();
    for table in &view.tables {
        for column in cache.columns_ever(table)? {
            if !known.contains(&column) {
                known.push(column);
            }
        }
    }
    for column in predicate
        .columns()
        .into_iter()
        .chain(view.changed.iter().map(String::as_str))
    {
        if !known.iter().any(|name| name == column) {
            return Err(PredicateError::UnknownColumn {
                table: view
                    .tables
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", "),
                column: column.to_owned(),
                known: known.join(", "),
            }
            .into());
        }
    }
    Ok(predicate)
}

/// True when the view's filters show this change: its context has the view's values, and an
/// update inside the view changed one of its columns (entering and leaving always show).
fn shown_in(view: &SavedView, change: &LoggedChange, movement: Movement) -> bool {
    view.context
        .iter()
        .all(|(field, wanted)| change.context_has(field, wanted))
        && (view.changed.is_empty()
            || movement != Movement::Update
            || change.changed_any(&view.changed))
}

/// A view's timeline: the changes of its tables that moved a row into the set, out of it, or
/// within it, oldest first, as its context and changed-column filters show them (entering and
/// leaving always show, whatever columns they changed); and the set right after change `cut`
/// (or now).
pub fn view_history(
    cache: &Cache,
    view: &SavedView,
    cut: Option<ChangeId>,
) -> Result<(Vec<(LoggedChange, Movement)>, View), ViewError> {
    let predicate = check_view(cache, view)?;
    let mut set = View::new(predicate);
    let mut moved = Vec::new();
    cache.visit_transactions_of(&view.tables, cut, |transaction| {
        for change in transaction {
            let Some(movement) = set.feed(&change) else {
                continue;
            };
            if shown_in(view, &change, movement) {
                moved.push((change, movement));
            }
        }
        true
    })?;
    Ok((moved, set))
}
