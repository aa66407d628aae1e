//! Related history of one record, and views over a filtered set, read from a cache: the store
//! fetches the links and the changes of the tables they reach, `history::related` and
//! `history::view` fold them.

use chrono::{DateTime, Utc};

use std::collections::{BTreeMap, HashSet};

use crate::history::related::{Member, Related, Story, StoryError, root_step, values_of};
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
    Ok(tell(cache, record, options, None, Reading::Whole)?.told)
}

/// The newest `limit` changes of the story of `record`, newest first: `related_history`'s last
/// page, read faster. The record's own versions (a busy record has thousands) are folded from
/// their outlines, and only those on the page are read whole.
pub fn related_newest(
    cache: &Cache,
    record: &RecordRef,
    options: &StoryOptions,
    limit: usize,
) -> Result<Vec<Related>, RelatedError> {
    if let Some(page) = newest_by_ids(cache, record, options, limit)? {
        return Ok(page);
    }
    let Told {
        mut told, outlined, ..
    } = tell(cache, record, options, None, Reading::Outline)?;
    told.reverse();
    told.truncate(limit);
    let wanted: Vec<ChangeId> = told
        .iter()
        .map(|related| related.change.id)
        .filter(|id| outlined.contains(id))
        .collect();
    let mut whole: BTreeMap<ChangeId, LoggedChange> = cache
        .changes_of_ids(&wanted)?
        .into_iter()
        .map(|change| (change.id, change))
        .collect();
    for related in &mut told {
        if let Some(change) = whole.remove(&related.change.id) {
            related.change = change;
        }
    }
    Ok(told)
}

/// The record and every related row as they were right after change `cut`, nearest first.
pub fn related_at(
    cache: &Cache,
    record: &RecordRef,
    options: &StoryOptions,
    cut: ChangeId,
) -> Result<Vec<Member>, RelatedError> {
    Ok(tell(cache, record, options, Some(cut), Reading::Whole)?
        .story
        .members())
}

/// `related_newest` for the common case, without reading the record's own versions at all: the
/// record never changed key, and every link to it names it by its key. Then all the story needs
/// of the record is that key (the rule makes every one of its changes a member), so the story is
/// the record's changes, known by their ids from the record index, and the changes of the rows
/// that point at it, folded; only the page's changes are read whole. `None` when the case does
/// not hold (with `--up`, `--since` or `--until` too), so the caller tells the story in full.
fn newest_by_ids(
    cache: &Cache,
    record: &RecordRef,
    options: &StoryOptions,
    limit: usize,
) -> Result<Option<Vec<Related>>, RelatedError> {
    if options.up || options.since.is_some() || options.until.is_some() {
        return Ok(None);
    }
    let Some(own) = cache.record_change_ids(record)? else {
        return Ok(None);
    };
    let links = cache.links()?;
    let to_root: Vec<&[String]> = links
        .iter()
        .filter(|link| link.to == record.table)
        .map(|link| link.to_columns.as_slice())
        .collect();
    if cache
        .key_columns_of(&record.table_ids)?
        .iter()
        .any(|key| to_root.iter().any(|columns| *columns != key.as_slice()))
    {
        return Ok(None);
    }
    // One bound for every read, as in `tell`.
    let cut = match cache.newest_change() {
        Ok(newest) => newest,
        Err(StoreError::EmptyHistory) => ChangeId(0),
        Err(error) => return Err(error.into()),
    };
    let own: Vec<ChangeId> = own.into_iter().filter(|id| *id <= cut).collect();
    let Some(newest) = own
        .last()
        .map(|id| cache.change(*id))
        .transpose()?
        .flatten()
    else {
        return Err(RelatedError::NoRecord {
            table: record.table.to_string(),
            key: record.key.clone(),
        });
    };
    let root_key = newest.change.key(&newest.schema);
    let root = root_step(&newest.schema, &root_key);
    let mut story = Story::new(record.table.clone(), root_key, links, options.depth, false)?;
    // The newest version stands for all of them: it gives the key the rows point at.
    let Some(candidates) = candidate_changes(cache, &story, vec![newest], Some(cut))? else {
        return Ok(None);
    };
    let told = fold(&mut story, options, candidates);
    // The page: the newest of the record's own changes and of the others that belong.
    let mut page: Vec<Option<Related>> = Vec::new();
    let mut ids: Vec<ChangeId> = Vec::new();
    let (mut own, mut told) = (own.into_iter().rev().peekable(), told.into_iter().rev());
    let mut next_told = told.next();
    while page.len() < limit {
        let own_next = own.peek().copied();
        match (own_next, &next_told) {
            (Some(id), Some(related)) if related.change.id == id => {
                own.next();
                page.push(next_told.take());
                next_told = told.next();
            }
            (Some(id), Some(related)) if related.change.id > id => {
                page.push(next_told.take());
                next_told = told.next();
            }
            (Some(id), _) => {
                own.next();
                ids.push(id);
                page.push(None);
            }
            (None, Some(_)) => {
                page.push(next_told.take());
                next_told = told.next();
            }
            (None, None) => break,
        }
    }
    // Read oldest first; the page is newest first.
    let mut whole = cache.changes_of_ids(&ids)?.into_iter().rev();
    page.into_iter()
        .map(|entry| match entry {
            Some(related) => Ok(related),
            None => whole
                .next()
                .map(|change| Related {
                    change,
                    path: vec![root.clone()],
                })
                .ok_or_else(|| {
                    RelatedError::Store(StoreError::Damaged {
                        path: cache.path().to_owned(),
                        what: "a change of the record vanished while read".to_owned(),
                    })
                }),
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// The changes of the story after change `cut`: what `restore --related` undoes.
pub fn related_after(
    cache: &Cache,
    record: &RecordRef,
    options: &StoryOptions,
    cut: ChangeId,
) -> Result<Vec<ChangeId>, RelatedError> {
    Ok(tell(cache, record, options, None, Reading::Outline)?
        .told
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
        false,
    )?)
}

/// How a story reads the record's own changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reading {
    /// Whole, images and all: the record's state is needed (`related_at`, `--up`).
    Whole,
    /// As outlines (`Cache::record_outline`) where that tells the same story: every link to the
    /// record names it by its key, so its key is all the story reads of it.
    Outline,
}

/// What `tell` found.
struct Told {
    /// The changes that belong, oldest first.
    told: Vec<Related>,
    /// The story as it stands at the end.
    story: Story,
    /// The changes of `told` that are outlines of the record's own changes.
    outlined: HashSet<ChangeId>,
}

/// Feeds the story every change of its tables up to `cut` (all without one).
fn tell(
    cache: &Cache,
    record: &RecordRef,
    options: &StoryOptions,
    cut: Option<ChangeId>,
    reading: Reading,
) -> Result<Told, RelatedError> {
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
    let links = cache.links()?;
    let mut own = match reading {
        Reading::Outline if !options.up => cache.record_outline(record)?,
        _ => cache.record_history(record)?,
    };
    let mut outlined = HashSet::new();
    if reading == Reading::Outline && !options.up {
        let by_key = own.iter().all(|change| {
            let key: Vec<&str> = change.schema.key_column_names().collect();
            links
                .iter()
                .filter(|link| link.to == record.table)
                .all(|link| {
                    link.to_columns
                        .iter()
                        .map(String::as_str)
                        .eq(key.iter().copied())
                })
        });
        match by_key {
            true => outlined = own.iter().map(|change| change.id).collect(),
            false => own = cache.record_history(record)?,
        }
    }
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
        links,
        options.depth,
        options.up,
    )?;
    if let Some(candidates) = candidate_changes(cache, &story, own, cut)? {
        let told = fold(&mut story, options, candidates);
        return Ok(Told {
            told,
            story,
            outlined,
        });
    }
    let mut told = Vec::new();
    // The index of references could not answer: read every change of the story's tables.
    let tables = story.tables();
    // Those changes are whole, the record's own among them.
    cache.visit_transactions_of(&tables, cut, |transaction| {
        tell_transaction(&mut story, options, &mut told, transaction)
    })?;
    Ok(Told {
        told,
        story,
        outlined: HashSet::new(),
    })
}

/// Feeds the story `changes` (in commit order), a transaction at a time: the changes that belong,
/// within `since` and `until`.
fn fold(story: &mut Story, options: &StoryOptions, changes: Vec<LoggedChange>) -> Vec<Related> {
    let mut told = Vec::new();
    let mut transaction: Vec<LoggedChange> = Vec::new();
    for change in changes {
        if transaction
            .first()
            .is_some_and(|first| first.tx.id != change.tx.id)
            && !tell_transaction(story, options, &mut told, std::mem::take(&mut transaction))
        {
            return told;
        }
        transaction.push(change);
    }
    if !transaction.is_empty() {
        tell_transaction(story, options, &mut told, transaction);
    }
    told
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
