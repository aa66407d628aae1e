//! Related history of one record, read from a cache: the store fetches the links and the changes
//! of the tables they reach, `history::related` folds them into the story.

use chrono::{DateTime, Utc};

use crate::history::related::{Related, Story, StoryError};
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
}

/// The story of `record`, oldest change first, each with its path from the record.
pub fn related_history(
    cache: &Cache,
    record: &RecordRef,
    options: &StoryOptions,
) -> Result<Vec<Related>, RelatedError> {
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
    cache.visit_transactions_of(&story.tables(), None, |transaction| {
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
    })?;
    Ok(told)
}
