//! The shared store: a team's history in a schema of a PostgreSQL database.
//!
//! Capture (or an import) keeps writing its cache file exactly as it does alone: that file is the
//! store's journal, where the image completion, schema versions, gaps and crash safety live once.
//! A publisher copies each durable part of the journal into the store (`rowtrail capture --into`,
//! `rowtrail publish`): whole source transactions, in one PostgreSQL transaction that also
//! advances `rowtrail.publish_state`, so each change arrives exactly once however often either
//! side is killed. [`layout`] is the store's tables; [`publish`] the copying.

pub mod follow;
pub mod layout;
pub mod publish;
pub mod remote;

pub use follow::{FollowEvent, FollowOptions, follow};
pub use publish::{Published, Publisher};
pub use remote::{is_store_url, open_cache, open_store};

use crate::capture::CaptureError;
use crate::store::StoreError;

/// The shared store could not be written.
#[derive(Debug, thiserror::Error)]
pub enum SharedError {
    #[error(transparent)]
    Connect(#[from] CaptureError),
    #[error(transparent)]
    Journal(#[from] StoreError),
    #[error(
        "schema {schema} of {store} is not a rowtrail store (it has no {schema}.store_info): choose another database, or drop or rename that schema"
    )]
    NotAStore { store: String, schema: String },
    #[error(
        "the store at {store} has format version {version}, newer than this rowtrail writes ({supported}): update rowtrail"
    )]
    TooNew {
        store: String,
        version: i32,
        supported: i32,
    },
    #[error(
        "the store at {store} holds the history of {stored}, but {journal} holds {given}: give each source database its own store database (or schema)"
    )]
    OtherSource {
        store: String,
        stored: String,
        journal: String,
        given: String,
    },
    #[error(
        "the store at {store} was filled from another cache than {journal} (its transaction {tx} is not the one this cache has): publish from the cache that fed it ({fed_by}), or start a new store"
    )]
    OtherJournal {
        store: String,
        journal: String,
        tx: i64,
        fed_by: String,
    },
    #[error(
        "the store at {store} is the database whose history it would hold: capture would record the store's own writes, and record those again; keep the store in another database"
    )]
    SameDatabase { store: String },
    #[error(
        "{journal} is still taking its baseline: the store receives history once the baseline is complete"
    )]
    BaselinePending { journal: String },
}

impl SharedError {
    /// True for failures that may go away by themselves (the store's server restarting, a lost
    /// connection): the publisher tries again later.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Connect(error) => error.is_transient(),
            Self::BaselinePending { .. } => true,
            _ => false,
        }
    }
}
