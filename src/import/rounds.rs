//! Import rounds over a store that records each change's transaction id (`txid_current()`):
//! the wiki's audit trigger, pgMemento. Where such an import resumes, and how a round walks
//! the transactions it has not imported, in commit order.

use std::collections::HashMap;

use tokio::sync::watch;

use super::sink::Sink;
use super::{BATCH_TRANSACTIONS, ImportError, ImportOptions, ImportSummary, Store, wait_for_more};

/// A store whose changes carry the id of their transaction.
pub(super) trait TransactionLog {
    /// One stored row, as read.
    type Row;

    /// Lists the transactions a round imports, as `(txid, first event, last event)` ordered by
    /// last event: those from `$1` on that the snapshot `$2` (text) sees as ended, are not in
    /// `$3`, and have an event after `$4`.
    const TRANSACTIONS_SQL: &'static str;

    /// Lists, in order, the transactions from `$1` on that the snapshot `$2` sees as ended.
    const ENDED_SQL: &'static str;

    /// Transactions read and written per batch (and per SQLite commit).
    const BATCH_TRANSACTIONS: usize = BATCH_TRANSACTIONS;

    /// The rows of these transactions (whose events lie in `first..=last`), by transaction.
    async fn read(
        &mut self,
        transactions: &[i64],
        first: i64,
        last: i64,
    ) -> Result<HashMap<i64, Vec<Self::Row>>, ImportError>;

    /// Writes one transaction's rows (in event order) as one cache transaction.
    async fn write(
        &mut self,
        sink: &mut Sink,
        txid: i64,
        rows: Vec<Self::Row>,
    ) -> Result<(), ImportError>;
}

/// Where an import resumes. Every transaction whose id is below `below`
/// is imported, and so is every one in `done` (ids at or above it).
///
/// A round imports what a snapshot of the store sees as ended (`txid_visible_in_snapshot`) and is
/// not imported yet. All of that committed before the snapshot, and whatever a later round
/// imports committed after it (or was still running then), so rounds keep commit order; inside a
/// round, transactions go in order of their last event, which keeps the order of any two that
/// changed the same row (the second waited for the first to commit). While a round is under way,
/// `snapshot` is its snapshot and `done_through` the last event of the last transaction written.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct TransactionCursor {
    below: i64,
    #[serde(default)]
    done: Vec<i64>,
    #[serde(default)]
    snapshot: Option<String>,
    #[serde(default)]
    done_through: Option<i64>,
}

/// Imports the store round after round (with `--follow`, until stopped).
pub(super) async fn import_rounds<L: TransactionLog>(
    log: &mut L,
    store: &Store,
    sink: &mut Sink,
    options: &ImportOptions,
    mut stop: watch::Receiver<bool>,
    progress: &(dyn Fn(&ImportSummary) + Sync),
) -> Result<(), ImportError> {
    let mut cursor: TransactionCursor = sink.cursor()?;
    loop {
        let snapshot = match cursor.snapshot.clone() {
            Some(snapshot) => snapshot,
            None => store.snapshot().await?,
        };
        cursor.snapshot = Some(snapshot.clone());
        round(log, store, sink, &mut cursor, &stop, progress).await?;
        if *stop.borrow() {
            return Ok(());
        }
        cursor = after_round::<L>(store, &snapshot).await?;
        sink.save(&cursor)?;
        progress(&sink.summary);
        if !wait_for_more(options, &mut stop).await {
            return Ok(());
        }
    }
}

/// The cursor once every transaction `snapshot` sees as ended is imported: below its oldest
/// running transaction, everything; at or above it, the ended ones that left rows.
async fn after_round<L: TransactionLog>(
    store: &Store,
    snapshot: &str,
) -> Result<TransactionCursor, ImportError> {
    let below: i64 = store
        .session
        .query_one(
            "reading which transactions have ended",
            "SELECT txid_snapshot_xmin($1::text::txid_snapshot)",
            &[&snapshot],
        )
        .await?
        .get(0);
    let done: Vec<i64> = store
        .session
        .query(
            "reading which transactions have ended",
            L::ENDED_SQL,
            &[&below, &snapshot],
        )
        .await?
        .iter()
        .map(|row| row.get(0))
        .collect();
    Ok(TransactionCursor {
        below,
        done,
        snapshot: None,
        done_through: None,
    })
}

/// Imports the transactions the cursor's snapshot sees as ended and that are not imported yet,
/// in order of their last event, a batch per SQLite commit, resuming after `done_through`.
async fn round<L: TransactionLog>(
    log: &mut L,
    store: &Store,
    sink: &mut Sink,
    cursor: &mut TransactionCursor,
    stop: &watch::Receiver<bool>,
    progress: &(dyn Fn(&ImportSummary) + Sync),
) -> Result<(), ImportError> {
    // Each transaction of the round: its id, first and last event.
    let transactions: Vec<(i64, i64, i64)> = store
        .session
        .query(
            "listing audited transactions",
            L::TRANSACTIONS_SQL,
            &[
                &cursor.below,
                &cursor.snapshot,
                &cursor.done,
                &cursor.done_through.unwrap_or(i64::MIN),
            ],
        )
        .await?
        .iter()
        .map(|row| (row.get(0), row.get(1), row.get(2)))
        .collect();
    for batch in transactions.chunks(L::BATCH_TRANSACTIONS) {
        let ids: Vec<i64> = batch.iter().map(|(txid, _, _)| *txid).collect();
        let first = batch.iter().map(|(_, first, _)| *first).min().unwrap_or(0);
        let last = batch.iter().map(|(_, _, last)| *last).max().unwrap_or(0);
        let mut by_tx = log.read(&ids, first, last).await?;
        for (txid, _, last_event) in batch {
            let rows = by_tx.remove(txid).unwrap_or_default();
            let written = log.write(sink, *txid, rows).await;
            if let Err(error) = written {
                // A bad row is found before its transaction is written: keep what came before.
                if matches!(error, ImportError::BadRow(_)) {
                    sink.save(cursor)?;
                }
                return Err(error);
            }
            cursor.done_through = Some(*last_event);
        }
        sink.save(cursor)?;
        progress(&sink.summary);
        if *stop.borrow() {
            break;
        }
    }
    Ok(())
}
