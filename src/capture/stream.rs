//! One streaming session: `START_REPLICATION`, then decode frames into write commands, answer
//! keepalives, confirm what the writer has stored, until asked to stop, the `--once` target is
//! reached, or the connection fails.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use chrono::Utc;
use tokio::sync::watch;

use crate::decode::frame::{ServerFrame, StatusUpdate};
use crate::decode::image::RowChange;
use crate::decode::pgoutput::{LogicalMessage, OldRow, RelationMessage, TupleValue};
use crate::decode::{build_schema, parse_context};
use crate::model::{Lsn, Oid, quote_ident};
use crate::store::TxMeta;

use super::catalog;
use super::encoding::{self, Reception, ServerEncoding};
use super::error::CaptureError;
use super::session::SqlSession;
use super::sink::{WriteCommand, WriterHandle};
use super::walsender::WalSender;
use super::{CaptureEvent, Observer};

/// What a session is asked to do.
pub(crate) struct SessionPlan<'a> {
    pub slot: &'a str,
    pub publication: &'a str,
    pub start: Lsn,
    /// `--once`: stop once everything committed before this position is stored.
    pub target: Option<Lsn>,
    /// Only these tables are stored (`--tables` against a wider publication); `None` for all.
    pub scope: Option<&'a HashSet<Oid>>,
    pub server_version_num: i32,
    pub encoding: &'a ServerEncoding,
    /// How this session's walsender connection receives text.
    pub reception: Reception,
}

/// What a session leaves behind for the caller, however it ended.
#[derive(Debug, Default)]
pub(crate) struct SessionReport {
    /// The commit position of the transaction being read when the session ended, if any.
    pub open_commit: Option<Lsn>,
}

/// Why a session ended without an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SessionEnd {
    Stopped,
    ReachedTarget,
}

/// How often to confirm progress while streaming normally (well inside wal_sender_timeout).
const STATUS_INTERVAL: Duration = Duration::from_secs(5);
/// How often to ask the server for its position while waiting for the `--once` target.
const ONCE_POLL: Duration = Duration::from_millis(200);
const PROGRESS_INTERVAL: Duration = Duration::from_secs(1);
/// How often to ask how much WAL the slot retains.
const SLOT_STATUS_INTERVAL: Duration = Duration::from_secs(30);

pub(crate) fn start_command(plan: &SessionPlan<'_>) -> String {
    let publication = quote_ident(plan.publication).replace('\'', "''");
    let messages = match plan.server_version_num >= 140_000 {
        true => ", messages 'true'",
        false => "",
    };
    format!(
        "START_REPLICATION SLOT {} LOGICAL {} (proto_version '1', publication_names '{publication}'{messages})",
        plan.slot, plan.start
    )
}

/// Resolves once stop is requested; never if the stop sender is gone.
pub(crate) async fn stop_requested(stop: &mut watch::Receiver<bool>) {
    loop {
        if *stop.borrow_and_update() {
            return;
        }
        if stop.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

struct Session<'a> {
    sql: &'a SqlSession,
    writer: &'a mut WriterHandle,
    observer: &'a Observer,
    plan: &'a SessionPlan<'a>,
    /// Type names from Type messages, for types the catalog no longer knows.
    type_names: HashMap<Oid, String>,
    /// Tables outside the scope, whose changes are dropped.
    ignored: HashSet<Oid>,
    in_transaction: bool,
    /// The commit position of the open transaction.
    open_commit: Option<Lsn>,
    /// Raw text of an encoding the server must convert value by value (see `encoding`).
    transcode: Option<&'a str>,
    /// Highest WAL position received.
    received: Lsn,
    /// Everything up to here has been handed to the writer.
    handed_over: Lsn,
    target_reached: bool,
    last_commit_time: Option<chrono::DateTime<Utc>>,
}

pub(crate) async fn run_session(
    walsender: &mut WalSender,
    sql: &SqlSession,
    writer: &mut WriterHandle,
    observer: &Observer,
    plan: &SessionPlan<'_>,
    stop: &mut watch::Receiver<bool>,
    report: &mut SessionReport,
) -> Result<SessionEnd, CaptureError> {
    walsender.start_replication(&start_command(plan)).await?;
    observer(CaptureEvent::Streaming { from: plan.start });
    let mut session = Session {
        sql,
        writer,
        observer,
        plan,
        type_names: HashMap::new(),
        ignored: HashSet::new(),
        in_transaction: false,
        open_commit: None,
        transcode: match (plan.encoding, plan.reception) {
            (ServerEncoding::Other(name), Reception::Raw) => Some(name.as_str()),
            _ => None,
        },
        received: plan.start,
        handed_over: plan.start,
        target_reached: plan.target.is_some_and(|target| target <= plan.start),
        last_commit_time: None,
    };
    let status_every = match plan.target {
        Some(_) => ONCE_POLL,
        None => STATUS_INTERVAL,
    };
    let mut status_timer = tokio::time::interval(status_every);
    let mut progress_timer = tokio::time::interval(PROGRESS_INTERVAL);
    let mut slot_timer = tokio::time::interval(SLOT_STATUS_INTERVAL);
    let mut confirmed = Lsn::ZERO;
    let mut stopping = false;
    loop {
        let stored = session.writer.progress().stored;
        let finished = session.handed_over <= stored && !session.in_transaction;
        if finished && (stopping || session.target_reached) {
            send_status(walsender, session.received, stored, false).await?;
            walsender_finish(walsender).await;
            return Ok(match stopping {
                true => SessionEnd::Stopped,
                false => SessionEnd::ReachedTarget,
            });
        }
        // While stopping, read on only to finish the open transaction.
        let reading = !(stopping || session.target_reached) || session.in_transaction;
        tokio::select! {
            biased;
            () = stop_requested(stop), if !stopping => {
                stopping = true;
            }
            frame = walsender.next_copy_data(), if reading => {
                let Some(frame) = frame? else {
                    return Err(CaptureError::ConnectionLost {
                        endpoint: sql.endpoint.clone(),
                        source: std::io::Error::new(
                            std::io::ErrorKind::ConnectionAborted,
                            "the server ended the replication stream",
                        ),
                    });
                };
                let handled = session.handle_frame(frame).await;
                report.open_commit = session.open_commit;
                if handled? {
                    send_status(walsender, session.received, session.writer.progress().stored, false).await?;
                }
            }
            progress = session.writer.changed() => {
                let progress = progress?;
                if progress.stored > confirmed
                    && (progress.stored.0 - confirmed.0 > 16 * 1024 * 1024 || session.target_reached || stopping)
                {
                    send_status(walsender, session.received, progress.stored, false).await?;
                    confirmed = progress.stored;
                }
            }
            _ = status_timer.tick() => {
                let stored = session.writer.progress().stored;
                let ask = plan.target.is_some() && !session.target_reached;
                send_status(walsender, session.received, stored, ask).await?;
                confirmed = stored;
            }
            _ = slot_timer.tick() => {
                match catalog::slot(sql, plan.slot).await {
                    Ok(Some(slot)) => observer(CaptureEvent::SlotStatus {
                        retained_wal_bytes: slot.retained_wal_bytes.unwrap_or(0),
                    }),
                    Ok(None) => {}
                    Err(error) => tracing::debug!("reading the slot status: {error}"),
                }
            }
            _ = progress_timer.tick() => {
                let progress = session.writer.progress();
                observer(CaptureEvent::Progress {
                    stored: progress.stored,
                    received: session.received,
                    changes: progress.changes,
                    transactions: progress.transactions,
                    last_commit_time: session.last_commit_time,
                });
            }
        }
    }
}

async fn send_status(
    walsender: &mut WalSender,
    received: Lsn,
    stored: Lsn,
    reply_requested: bool,
) -> Result<(), CaptureError> {
    let update = StatusUpdate {
        written: received.max(stored),
        flushed: stored,
        reply_requested,
    };
    walsender.send_copy_data(update.encode(Utc::now())).await
}

/// Ends the stream politely; the session is over either way.
async fn walsender_finish(walsender: &mut WalSender) {
    if let Err(error) = walsender.end_stream().await {
        tracing::debug!("ending the replication stream: {error}");
    }
}

impl Session<'_> {
    /// Handles one frame; returns true when the server asked for an immediate reply.
    async fn handle_frame(&mut self, frame: bytes::Bytes) -> Result<bool, CaptureError> {
        match ServerFrame::decode(frame)? {
            ServerFrame::Keepalive {
                wal_end,
                reply_requested,
                ..
            } => {
                self.received = self.received.max(wal_end);
                if !self.in_transaction {
                    // Everything committed before wal_end has been sent: nothing is pending.
                    self.writer.push(WriteCommand::Advance(wal_end)).await?;
                    self.handed_over = self.handed_over.max(wal_end);
                    if self.plan.target.is_some_and(|target| wal_end >= target) {
                        self.target_reached = true;
                    }
                }
                Ok(reply_requested)
            }
            ServerFrame::XLogData {
                wal_start,
                wal_end,
                data,
            } => {
                self.received = self.received.max(wal_end);
                let message = LogicalMessage::decode(&data)?;
                self.handle_message(wal_start, message).await?;
                Ok(false)
            }
        }
    }

    async fn handle_message(
        &mut self,
        lsn: Lsn,
        message: LogicalMessage,
    ) -> Result<(), CaptureError> {
        match message {
            LogicalMessage::Begin {
                final_lsn,
                committed_at,
                xid,
            } => {
                self.in_transaction = true;
                self.open_commit = Some(final_lsn);
                self.writer
                    .push(WriteCommand::Begin(TxMeta {
                        xid: Some(xid),
                        commit_lsn: final_lsn,
                        committed_at,
                        is_baseline: false,
                    }))
                    .await?;
            }
            LogicalMessage::Commit {
                end_lsn,
                committed_at,
                ..
            } => {
                self.in_transaction = false;
                self.open_commit = None;
                self.last_commit_time = Some(committed_at);
                self.writer.push(WriteCommand::Commit { end_lsn }).await?;
                self.handed_over = self.handed_over.max(end_lsn);
                if self.plan.target.is_some_and(|target| end_lsn >= target) {
                    self.target_reached = true;
                }
            }
            LogicalMessage::Origin { name } => {
                self.writer.push(WriteCommand::Origin(name)).await?;
            }
            LogicalMessage::Relation(relation) => self.relation(relation, lsn).await?,
            LogicalMessage::Type {
                oid,
                namespace,
                name,
            } => {
                let qualified = match namespace.as_str() {
                    "" | "pg_catalog" => quote_ident(&name),
                    _ => format!("{}.{}", quote_ident(&namespace), quote_ident(&name)),
                };
                self.type_names.insert(oid, qualified);
            }
            LogicalMessage::Insert { relation, new } => {
                self.row(lsn, relation, RowChange::Insert { new }).await?;
            }
            LogicalMessage::Update { relation, old, new } => {
                self.row(lsn, relation, RowChange::Update { old, new })
                    .await?;
            }
            LogicalMessage::Delete { relation, old } => {
                self.row(lsn, relation, RowChange::Delete { old }).await?;
            }
            LogicalMessage::Truncate { relations, .. } => {
                let oids: Vec<Oid> = relations
                    .into_iter()
                    .filter(|oid| !self.ignored.contains(oid))
                    .collect();
                if !oids.is_empty() {
                    self.writer
                        .push(WriteCommand::Truncate { lsn, oids })
                        .await?;
                }
            }
            LogicalMessage::Message {
                transactional,
                prefix,
                content,
                ..
            } => {
                if transactional && self.in_transaction {
                    match parse_context(&prefix, &content) {
                        Some(Ok(context)) => {
                            self.writer.push(WriteCommand::Context(context)).await?;
                        }
                        Some(Err(reason)) => {
                            (self.observer)(CaptureEvent::Warning(format!(
                                "ignored a context message at {lsn}: {reason}"
                            )));
                        }
                        None => {}
                    }
                }
            }
        }
        Ok(())
    }

    async fn row(&mut self, lsn: Lsn, oid: Oid, mut change: RowChange) -> Result<(), CaptureError> {
        if self.ignored.contains(&oid) {
            return Ok(());
        }
        if let Some(encoding) = self.transcode {
            let mut tuples: Vec<&mut Vec<TupleValue>> = match &mut change {
                RowChange::Insert { new } | RowChange::Update { old: None, new } => {
                    vec![&mut new.0]
                }
                RowChange::Update {
                    old: Some(OldRow::Key(old) | OldRow::Full(old)),
                    new,
                } => vec![&mut old.0, &mut new.0],
                RowChange::Delete {
                    old: OldRow::Key(old) | OldRow::Full(old),
                } => vec![&mut old.0],
            };
            encoding::transcode_tuples(self.sql, encoding, &mut tuples).await?;
        }
        self.writer
            .push(WriteCommand::Row { lsn, oid, change })
            .await
    }

    async fn relation(&mut self, relation: RelationMessage, lsn: Lsn) -> Result<(), CaptureError> {
        if let Some(scope) = self.plan.scope
            && !scope.contains(&relation.oid)
        {
            self.ignored.insert(relation.oid);
            return Ok(());
        }
        self.ignored.remove(&relation.oid);
        let mut details = catalog::relation_details(self.sql, &relation).await?;
        for (name, column) in details.type_names.iter_mut().zip(&relation.columns) {
            if (name == "???" || name.is_empty())
                && let Some(known) = self.type_names.get(&column.type_oid)
            {
                name.clone_from(known);
            }
        }
        let schema = build_schema(&relation, &details);
        self.writer
            .push(WriteCommand::Relation { schema, lsn })
            .await
    }
}

/// Times how long a retry waits: 1 s, doubling, at most 30 s.
pub(crate) fn backoff(attempt: u32) -> Duration {
    Duration::from_secs(1u64 << attempt.saturating_sub(1).min(5)).min(Duration::from_secs(30))
}

/// How long to keep retrying a slot another connection still holds when starting (a previous
/// capture that just died may hold it until the server notices).
pub(crate) const SLOT_BUSY_PATIENCE: Duration = Duration::from_secs(20);

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // In tests a failed unwrap is a failed test.
mod tests {
    use super::*;

    #[test]
    fn start_command_quotes_the_publication_and_adds_messages_on_14() {
        let plan = SessionPlan {
            slot: "rowtrail",
            publication: "it's",
            start: Lsn(0x16_B374_D848),
            target: None,
            scope: None,
            server_version_num: 150_004,
            encoding: &ServerEncoding::Utf8,
            reception: Reception::Converted,
        };
        assert_eq!(
            start_command(&plan),
            "START_REPLICATION SLOT rowtrail LOGICAL 16/B374D848 (proto_version '1', publication_names '\"it''s\"', messages 'true')"
        );
        let old = SessionPlan {
            server_version_num: 130_000,
            ..plan
        };
        assert!(!start_command(&old).contains("messages"));
    }

    #[test]
    fn backoff_doubles_up_to_thirty_seconds() {
        let waits: Vec<u64> = (1..=8).map(|attempt| backoff(attempt).as_secs()).collect();
        assert_eq!(waits, vec![1, 2, 4, 8, 16, 30, 30, 30]);
    }
}
