//! One streaming session: `START_REPLICATION`, then decode frames into write commands, answer
//! keepalives, confirm what the writer has stored, until asked to stop, the `--once` target is
//! reached, or the connection fails.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::sync::watch;

use crate::decode::ddl::{SchemaLogMessage, parse_schema_log};
use crate::decode::frame::{ServerFrame, StatusUpdate};
use crate::decode::image::RowChange;
use crate::decode::pgoutput::{
    LogicalMessage, OldRow, RelationMessage, Streamed, TupleValue, split_streamed,
};
use crate::decode::{CatalogDetails, build_schema, details_from_schema, parse_context};
use crate::model::{Lsn, Oid, RelationSchema, Xid, quote_ident};
use crate::store::KnownSchemas;
use crate::store::TxMeta;

use super::catalog;
use super::encoding::{self, Reception, ServerEncoding};
use super::error::CaptureError;
use super::schema_log;
use super::session::SqlSession;
use super::sink::{WriteCommand, WriterHandle};
use super::streamed::{SpillReader, StreamedTransactions};
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
    /// Schema changes of tables not captured at the start are stored too (a publication of all
    /// tables, no `--tables`).
    pub all_tables: bool,
    /// The tables captured at the start.
    pub captured: &'a HashSet<Oid>,
    /// Ask the server to stream transactions before they commit (protocol 2), keeping them
    /// beside this cache file until they do; `None` for protocol 1 (see `streamed`).
    pub stream_beside: Option<&'a std::path::Path>,
}

/// A table's schema as the schema log recorded it, by the commit position of its transaction;
/// `None` once the table was dropped.
type SchemaRecord = (Lsn, Option<Arc<RelationSchema>>);

/// What capture knows, position by position, of each table's definition: the schema versions the
/// cache held at start, and every schema change the schema log recorded since, by the commit
/// position of its transaction, so a session that restarts earlier can forget what it has not
/// reached again.
#[derive(Debug, Default)]
pub(crate) struct SchemaMemory {
    /// Where the schema log starts recording schema changes, as the cache (or the baseline) has it.
    since: Option<Lsn>,
    /// Where it starts, learned from its mark in the stream (the commit position of the mark).
    marked: Option<Lsn>,
    /// Versions known to be current as of where they began (the schema log was recording).
    base: HashMap<Oid, Arc<RelationSchema>>,
    /// Schema log records not yet known to be stored, per table in commit order: (commit
    /// position, its schema or `None` once dropped).
    updates: HashMap<Oid, Vec<SchemaRecord>>,
    /// The newest version of each table seen by any means, exact or not: the fallback for a table
    /// the catalog no longer has.
    last_seen: HashMap<Oid, Arc<RelationSchema>>,
}

impl SchemaMemory {
    pub fn new(known: KnownSchemas) -> Self {
        let mut memory = Self {
            since: known.schema_log_since,
            ..Self::default()
        };
        for (first_lsn, schema) in known.schemas {
            let exact = known
                .schema_log_since
                .is_some_and(|since| since <= first_lsn)
                && !schema.key_read_later;
            if exact {
                memory.base.insert(schema.oid, schema.clone());
            }
            memory.last_seen.insert(schema.oid, schema);
        }
        memory
    }

    /// Recording from `since` on, knowing the tables as the baseline described them.
    pub fn recording_from(since: Lsn, baseline: Vec<RelationSchema>) -> Self {
        let mut memory = Self {
            since: Some(since),
            ..Self::default()
        };
        for schema in baseline {
            let schema = Arc::new(schema);
            memory.base.insert(schema.oid, schema.clone());
            memory.last_seen.insert(schema.oid, schema);
        }
        memory
    }

    /// Where the schema log starts recording, if it does.
    pub fn since(&self) -> Option<Lsn> {
        self.since.or(self.marked)
    }

    /// The schema log no longer records: nothing known is exact any more.
    pub fn forget_since(&mut self) {
        self.since = None;
        self.marked = None;
        self.base.clear();
        self.updates.clear();
    }

    /// Forgets what was learned from transactions committing at or after `position`: a session
    /// starting there reads them again. What lies before is stored, and becomes the base.
    pub fn rewind(&mut self, position: Lsn) {
        for (oid, updates) in &mut self.updates {
            updates.retain(|(commit, _)| *commit < position);
            if let Some((_, schema)) = updates.pop() {
                match schema {
                    Some(schema) => self.base.insert(*oid, schema),
                    None => self.base.remove(oid),
                };
            }
        }
        self.updates.clear();
        if self.marked.is_some_and(|marked| marked >= position) {
            self.marked = None;
        }
    }

    /// The table's exact current definition, when the schema log was recording at `commit`.
    fn exact(&self, oid: Oid, commit: Lsn) -> Option<&Arc<RelationSchema>> {
        if self.since().is_none_or(|since| since > commit) {
            return None;
        }
        match self.updates.get(&oid).and_then(|updates| updates.last()) {
            Some((_, schema)) => schema.as_ref(),
            None => self.base.get(&oid),
        }
    }

    fn record(&mut self, commit: Lsn, oid: Oid, schema: Option<Arc<RelationSchema>>) {
        if let Some(schema) = &schema {
            self.last_seen.insert(oid, schema.clone());
        }
        self.updates.entry(oid).or_default().push((commit, schema));
    }
}

/// The connections a streaming session uses.
pub(crate) struct Connections {
    pub sql: SqlSession,
    pub walsender: WalSender,
    pub tls: Option<Arc<rustls::ClientConfig>>,
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
    let (version, streaming) = match plan.stream_beside {
        Some(_) => ('2', ", streaming 'on'"),
        None => ('1', ""),
    };
    format!(
        "START_REPLICATION SLOT {} LOGICAL {} (proto_version '{version}', publication_names '{publication}'{messages}{streaming})",
        plan.slot, plan.start
    )
}

/// Streaming in progress transactions needs pgoutput protocol 2 (PostgreSQL 14). A server that
/// cannot convert some text to UTF-8 makes capture reread a transaction raw up to its commit
/// position, which a transaction still streaming does not have yet: such servers send whole
/// transactions.
pub(crate) fn can_stream_in_progress(server_version_num: i32, encoding: &ServerEncoding) -> bool {
    server_version_num >= 140_000 && *encoding == ServerEncoding::Utf8
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
    schemas: &'a mut SchemaMemory,
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
    /// Transactions the server streams before they commit; `None` when it sends them whole.
    streamed: Option<StreamedTransactions>,
    /// The transaction whose stream block is being read.
    stream_block: Option<Xid>,
    /// A streamed transaction that committed, being stored from its spill file.
    replay: Option<Replay>,
}

/// A committed streamed transaction whose messages are being handed to the writer.
struct Replay {
    reader: SpillReader,
    commit_lsn: Lsn,
    end_lsn: Lsn,
    committed_at: chrono::DateTime<Utc>,
}

/// How long a batch for the writer may wait for more transactions once everything the server sent
/// is read.
const BATCH_LINGER: Duration = Duration::from_millis(25);

/// Resolves when a batch queued at `since` has waited [`BATCH_LINGER`]; never without a batch.
async fn linger(since: Option<tokio::time::Instant>) {
    match since {
        Some(since) => tokio::time::sleep_until(since + BATCH_LINGER).await,
        None => std::future::pending().await,
    }
}

/// Spilled messages handed over between two looks at the server connection while a streamed
/// transaction is stored.
const REPLAY_STEP: usize = 4096;

pub(crate) async fn run_session(
    connections: &mut Connections,
    writer: &mut WriterHandle,
    observer: &Observer,
    plan: &SessionPlan<'_>,
    stop: &mut watch::Receiver<bool>,
    schemas: &mut SchemaMemory,
    report: &mut SessionReport,
) -> Result<SessionEnd, CaptureError> {
    let (walsender, sql) = (&mut connections.walsender, &connections.sql);
    schemas.rewind(plan.start);
    walsender.start_replication(&start_command(plan)).await?;
    observer(CaptureEvent::Streaming { from: plan.start });
    let mut session = Session {
        sql,
        schemas,
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
        streamed: plan.stream_beside.map(StreamedTransactions::beside),
        stream_block: None,
        replay: None,
    };
    let status_every = match plan.target {
        Some(_) => ONCE_POLL,
        None => STATUS_INTERVAL,
    };
    let mut status_timer = tokio::time::interval(status_every);
    let mut progress_timer = tokio::time::interval(PROGRESS_INTERVAL);
    let mut slot_timer = tokio::time::interval(SLOT_STATUS_INTERVAL);
    // After a long stretch without looking (a streamed transaction being stored), one tick each.
    for timer in [&mut status_timer, &mut progress_timer, &mut slot_timer] {
        timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    }
    let mut confirmed = Lsn::ZERO;
    let mut stopping = false;
    let mut last_status = std::time::Instant::now();
    let mut last_progress = std::time::Instant::now();
    loop {
        // A committed streamed transaction is stored before anything else is read; the server
        // hears from us meanwhile, so it does not time the connection out.
        if session.replay.is_some() {
            session.replay_step().await?;
            report.open_commit = session.open_commit;
            if last_status.elapsed() >= STATUS_INTERVAL {
                let stored = session.writer.progress().stored;
                send_status(walsender, session.received, stored, false).await?;
                last_status = std::time::Instant::now();
            }
            if last_progress.elapsed() >= PROGRESS_INTERVAL {
                session.report_progress();
                last_progress = std::time::Instant::now();
            }
            continue;
        }
        // While stopping, read on only to finish the open transaction.
        let reading = !(stopping || session.target_reached) || session.in_transaction;
        // Transactions are handed to the writer in batches: once what the server sent so far is
        // read (the next read would wait) and the batch has waited BATCH_LINGER, or when nothing
        // more will be read. While following a source that commits a thousand small transactions
        // a second, the writer is then woken a hundred times a second instead of a thousand.
        let lingered = session
            .writer
            .waiting_since()
            .is_some_and(|since| since.elapsed() >= BATCH_LINGER);
        if !reading || (lingered && !walsender.has_buffered_message()) {
            session.writer.send().await?;
        }
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
        tokio::select! {
            biased;
            () = stop_requested(stop), if !stopping => {
                stopping = true;
            }
            () = linger(session.writer.waiting_since()), if !walsender.has_buffered_message() => {}
            frame = walsender.next_copy_data(), if reading => {
                let Some(frame) = frame? else {
                    return Err(CaptureError::ConnectionLost {
                        endpoint: sql.endpoint.clone(),
                        cause: std::io::Error::new(
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
                session.report_progress();
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
    /// Tells the observer how far capture is.
    fn report_progress(&self) {
        let progress = self.writer.progress();
        (self.observer)(CaptureEvent::Progress {
            stored: progress.stored,
            received: self.received,
            changes: progress.changes,
            transactions: progress.transactions,
            last_commit_time: self.last_commit_time,
        });
    }

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
                    self.writer.stage(WriteCommand::Advance(wal_end)).await?;
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
                if let (Some(xid), Some(streamed)) = (self.stream_block, self.streamed.as_mut()) {
                    match split_streamed(&data)? {
                        Streamed::Message { xid: sender, body } => {
                            streamed.append(xid, sender.unwrap_or(xid), wal_start, &body)?;
                            return Ok(false);
                        }
                        Streamed::Control(_) => {}
                    }
                }
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
        if !message.is_stream_control() {
            return self.apply(lsn, message).await;
        }
        let Some(streamed) = self.streamed.as_mut() else {
            return Err(CaptureError::Protocol {
                what: "a streamed transaction, though streaming was not asked for; run capture again, and report it with the output of rowtrail capture -v if it happens again".into(),
            });
        };
        match message {
            LogicalMessage::StreamStart { xid, first_segment } => {
                streamed.start(xid, first_segment)?;
                self.stream_block = Some(xid);
            }
            LogicalMessage::StreamStop => {
                if let Some(xid) = self.stream_block {
                    streamed.end_block(xid)?;
                }
                let (transactions, messages) = streamed.pending();
                tracing::debug!(
                    transactions,
                    messages,
                    "a stream block ended; held until commit"
                );
                self.stream_block = None;
            }
            LogicalMessage::StreamAbort { xid, subxid } => streamed.abort(xid, subxid)?,
            LogicalMessage::StreamCommit {
                xid,
                commit_lsn,
                end_lsn,
                committed_at,
            } => {
                let reader = streamed.commit(xid)?;
                self.apply(
                    lsn,
                    LogicalMessage::Begin {
                        final_lsn: commit_lsn,
                        committed_at,
                        xid,
                    },
                )
                .await?;
                let replay = Replay {
                    reader,
                    commit_lsn,
                    end_lsn,
                    committed_at,
                };
                self.replay = Some(replay);
            }
            _ => {}
        }
        Ok(())
    }

    /// Hands the next spilled messages of the committed streamed transaction to the writer, and
    /// its commit after the last.
    async fn replay_step(&mut self) -> Result<(), CaptureError> {
        let Some(mut replay) = self.replay.take() else {
            return Ok(());
        };
        for _ in 0..REPLAY_STEP {
            match replay.reader.next_message()? {
                Some(spilled) => {
                    let message = LogicalMessage::decode(&spilled.body)?;
                    self.apply(spilled.lsn, message).await?;
                }
                None => {
                    drop(replay.reader);
                    return self
                        .end_replay(replay.commit_lsn, replay.end_lsn, replay.committed_at)
                        .await;
                }
            }
        }
        self.replay = Some(replay);
        Ok(())
    }

    async fn end_replay(
        &mut self,
        commit_lsn: Lsn,
        end_lsn: Lsn,
        committed_at: chrono::DateTime<Utc>,
    ) -> Result<(), CaptureError> {
        self.apply(
            commit_lsn,
            LogicalMessage::Commit {
                commit_lsn,
                end_lsn,
                committed_at,
            },
        )
        .await
    }

    /// Handles a message of protocol 1: one of an ordinary transaction, or of a streamed one
    /// read back at its commit.
    async fn apply(&mut self, lsn: Lsn, message: LogicalMessage) -> Result<(), CaptureError> {
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
                self.writer.stage(WriteCommand::Commit { end_lsn }).await?;
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
            } if prefix == schema_log::PREFIX => {
                if transactional && self.in_transaction {
                    self.schema_log_message(lsn, &content).await?;
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
            LogicalMessage::StreamStart { .. }
            | LogicalMessage::StreamStop
            | LogicalMessage::StreamCommit { .. }
            | LogicalMessage::StreamAbort { .. } => {
                return Err(CaptureError::Protocol {
                    what: "a stream message inside a streamed transaction; run capture again (with --no-streaming if it happens again), and report it with the output of rowtrail capture -v".into(),
                });
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

    /// A message of the source's schema log: where recording starts, or a table's schema change.
    async fn schema_log_message(&mut self, lsn: Lsn, content: &[u8]) -> Result<(), CaptureError> {
        let commit = self.open_commit.unwrap_or(lsn);
        match parse_schema_log(content) {
            Ok(SchemaLogMessage::Tracking) => {
                if self.schemas.since().is_none() {
                    self.schemas.marked = Some(commit);
                    self.writer
                        .push(WriteCommand::SchemaLogSince(Some(commit)))
                        .await?;
                }
            }
            Ok(SchemaLogMessage::Table(event)) => {
                let wanted = match self.plan.scope {
                    Some(scope) => scope.contains(&event.oid),
                    None => {
                        self.plan.all_tables
                            || self.plan.captured.contains(&event.oid)
                            || self.schemas.last_seen.contains_key(&event.oid)
                    }
                };
                if wanted {
                    let schema = event.schema.clone().map(Arc::new);
                    self.schemas.record(commit, event.oid, schema);
                    self.writer
                        .push(WriteCommand::SchemaChange { lsn, event })
                        .await?;
                }
            }
            Err(reason) => (self.observer)(CaptureEvent::Warning(format!(
                "ignored a schema log message at {lsn}: {reason}"
            ))),
        }
        Ok(())
    }

    async fn relation(&mut self, relation: RelationMessage, lsn: Lsn) -> Result<(), CaptureError> {
        if let Some(scope) = self.plan.scope
            && !scope.contains(&relation.oid)
        {
            self.ignored.insert(relation.oid);
            return Ok(());
        }
        self.ignored.remove(&relation.oid);
        let commit = self.open_commit.unwrap_or(lsn);
        // The schema log's record of the table, when it has one of this shape, is exact; the
        // catalog describes the table as it is now, which may be later than the change.
        let exact = self
            .schemas
            .exact(relation.oid, commit)
            .and_then(|schema| details_from_schema(&relation, schema));
        let details = match exact {
            Some(details) => details,
            None => self.details_read_later(&relation).await?,
        };
        let schema = build_schema(&relation, &details);
        self.schemas
            .last_seen
            .insert(schema.oid, Arc::new(schema.clone()));
        // A version begins with the transaction that first used it.
        self.writer
            .push(WriteCommand::Relation {
                schema,
                lsn: commit,
            })
            .await
    }

    /// The catalog's details of a table as it is now. A table the catalog no longer has keeps the
    /// key (and foreign keys) capture stored for it before, never none.
    async fn details_read_later(
        &mut self,
        relation: &RelationMessage,
    ) -> Result<CatalogDetails, CaptureError> {
        let (mut details, exists) = catalog::relation_details(self.sql, relation, true).await?;
        for (name, column) in details.type_names.iter_mut().zip(&relation.columns) {
            if (name == "???" || name.is_empty())
                && let Some(known) = self.type_names.get(&column.type_oid)
            {
                name.clone_from(known);
            }
        }
        if !exists && let Some(stored) = self.schemas.last_seen.get(&relation.oid) {
            details.primary_key = stored.key_column_names().map(str::to_owned).collect();
            details.foreign_keys.clone_from(&stored.foreign_keys);
            details.identity_columns = stored
                .columns
                .iter()
                .filter_map(|column| Some((column.name.clone(), column.identity?)))
                .collect();
            details.attnums = relation
                .columns
                .iter()
                .map(|column| {
                    stored
                        .columns
                        .iter()
                        .find(|known| known.name == column.name)
                        .and_then(|known| known.attnum)
                })
                .collect();
        }
        Ok(details)
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
            all_tables: true,
            captured: &HashSet::new(),
            stream_beside: None,
        };
        assert_eq!(
            start_command(&plan),
            "START_REPLICATION SLOT rowtrail LOGICAL 16/B374D848 (proto_version '1', publication_names '\"it''s\"', messages 'true')"
        );
        let streaming = SessionPlan {
            stream_beside: Some(std::path::Path::new("c.rowtrail")),
            ..plan
        };
        assert!(start_command(&streaming).ends_with(
            "(proto_version '2', publication_names '\"it''s\"', messages 'true', streaming 'on')"
        ));
        let plan = SessionPlan {
            stream_beside: None,
            ..streaming
        };
        let old = SessionPlan {
            server_version_num: 130_000,
            ..plan
        };
        assert!(!start_command(&old).contains("messages"));
    }

    fn version(name: &str) -> Arc<RelationSchema> {
        Arc::new(RelationSchema {
            oid: 7,
            table: crate::model::TableName::new("public", name),
            replica_identity: crate::model::ReplicaIdentity::Full,
            columns: Vec::new(),
            key: Vec::new(),
            foreign_keys: Vec::new(),
            key_read_later: false,
        })
    }

    #[test]
    fn schema_memory_forgets_what_a_restarted_session_reads_again() {
        let mut memory = SchemaMemory::new(KnownSchemas {
            schema_log_since: Some(Lsn(10)),
            schemas: vec![(Lsn(10), version("v1")), (Lsn(5), version("older"))],
        });
        let name = |memory: &SchemaMemory, at: u64| {
            memory
                .exact(7, Lsn(at))
                .map(|schema| schema.table.name.clone())
        };
        assert_eq!(name(&memory, 9), None, "before the schema log recorded");
        assert_eq!(name(&memory, 25).as_deref(), Some("v1"));
        memory.record(Lsn(20), 7, Some(version("v2")));
        assert_eq!(name(&memory, 25).as_deref(), Some("v2"));
        memory.rewind(Lsn(20));
        assert_eq!(
            name(&memory, 25).as_deref(),
            Some("v1"),
            "committed at the restart point: read again"
        );
        memory.record(Lsn(20), 7, Some(version("v2")));
        memory.rewind(Lsn(30));
        memory.rewind(Lsn(30));
        assert_eq!(name(&memory, 35).as_deref(), Some("v2"), "stored: kept");
        memory.record(Lsn(40), 7, None);
        assert_eq!(name(&memory, 45), None, "dropped");

        let mut marked = SchemaMemory::new(KnownSchemas::default());
        marked.marked = Some(Lsn(50));
        marked.rewind(Lsn(50));
        assert_eq!(marked.since(), None, "the mark is read again");
        marked.marked = Some(Lsn(50));
        marked.rewind(Lsn(60));
        assert_eq!(marked.since(), Some(Lsn(50)));
    }

    #[test]
    fn backoff_doubles_up_to_thirty_seconds() {
        let waits: Vec<u64> = (1..=8).map(|attempt| backoff(attempt).as_secs()).collect();
        assert_eq!(waits, vec![1, 2, 4, 8, 16, 30, 30, 30]);
    }
}
