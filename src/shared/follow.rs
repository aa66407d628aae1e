//! Publishing as the journal grows: beside a running capture (`capture --into`) or on its own
//! (`publish --follow`). Failures that may pass (the store's server restarting, a baseline still
//! being taken, a journal not created yet) are waited out; the others end it.

use std::path::PathBuf;
use std::time::Duration;

use tokio::sync::watch;

use crate::capture::conninfo::ConnectionSpec;
use crate::store::StoreError;

use super::{Published, Publisher, SharedError};

/// How often a following publisher looks for new transactions in the journal.
pub const INTERVAL: Duration = Duration::from_millis(500);

/// The longest wait between attempts after a failure that may pass.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(30);

/// What a following publisher tells its caller.
#[derive(Debug, Clone)]
pub enum FollowEvent {
    Connected {
        store: String,
    },
    Published {
        total: Published,
    },
    /// A failure that may pass; it tries again after `delay`.
    Waiting {
        error: String,
        delay: Duration,
    },
}

/// Where and what to publish.
pub struct FollowOptions {
    pub store: ConnectionSpec,
    pub journal: PathBuf,
    /// Wait for the journal to appear (capture creates it once it has connected).
    pub wait_for_journal: bool,
}

/// Publishes until `stop` turns true, then once more, so the store ends holding everything the
/// journal held when asked to stop. Returns the totals.
pub async fn follow(
    options: FollowOptions,
    mut stop: watch::Receiver<bool>,
    report: &(dyn Fn(FollowEvent) + Send + Sync),
) -> Result<Published, SharedError> {
    let mut total = Published::default();
    let mut delay = Duration::from_secs(1);
    let mut publisher: Option<Publisher> = None;
    let mut last_waiting = String::new();
    loop {
        let stopping = *stop.borrow();
        let attempt = async {
            if publisher.is_none() {
                let connected = Publisher::connect(&options.store, &options.journal).await?;
                report(FollowEvent::Connected {
                    store: connected.store().to_owned(),
                });
                publisher = Some(connected);
            }
            match publisher.as_mut() {
                Some(publisher) => publisher.publish_all().await,
                None => Ok(Published::default()),
            }
        };
        match attempt.await {
            Ok(batch) => {
                delay = Duration::from_secs(1);
                last_waiting.clear();
                if batch.changes > 0 || batch.transactions > 0 {
                    total.transactions += batch.transactions;
                    total.changes += batch.changes;
                    total.caught_up = batch.caught_up;
                    report(FollowEvent::Published { total });
                }
                if stopping {
                    total.caught_up = batch.caught_up;
                    return Ok(total);
                }
                wait(&mut stop, INTERVAL).await;
            }
            Err(error) if may_pass(&error, options.wait_for_journal) => {
                publisher = None;
                if stopping && !matches!(error, SharedError::BaselinePending { .. }) {
                    return Err(error);
                }
                if stopping {
                    return Ok(total);
                }
                let text = error.to_string();
                // A journal not created yet is what a starting capture looks like: not news.
                let news = !matches!(error, SharedError::Journal(_));
                if news && text != last_waiting {
                    report(FollowEvent::Waiting {
                        error: text.clone(),
                        delay,
                    });
                    last_waiting = text;
                }
                wait(&mut stop, delay).await;
                delay = (delay * 2).min(MAX_RETRY_DELAY);
            }
            Err(error) => return Err(error),
        }
    }
}

fn may_pass(error: &SharedError, wait_for_journal: bool) -> bool {
    match error {
        SharedError::Journal(StoreError::NotFound { .. } | StoreError::Empty { .. }) => {
            wait_for_journal
        }
        error => error.is_transient(),
    }
}

/// Sleeps for `delay`, or until `stop` changes.
async fn wait(stop: &mut watch::Receiver<bool>, delay: Duration) {
    tokio::select! {
        _ = tokio::time::sleep(delay) => {}
        changed = stop.changed() => {
            // The sender is gone: nothing will ever say stop, so this is a plain wait.
            if changed.is_err() {
                tokio::time::sleep(delay).await;
            }
        }
    }
}
