//! The cache writer thread. SQLite writes and fsyncs block, so they run on their own thread, fed
//! through a bounded channel in stream order; the stream task keeps answering the server meanwhile.
//! The thread reports the durably stored position back through a watch channel, and only that
//! position is ever confirmed to the server.

use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};

use crate::decode::ddl::TableEvent;
use crate::decode::image::RowChange;
use crate::model::{Context, Lsn, Oid, RelationSchema, Row};
use crate::store::{CacheWriter, StoreError, TxMeta};

use super::error::CaptureError;

/// One step for the writer, in stream order.
#[derive(Debug)]
pub enum WriteCommand {
    Relation {
        schema: RelationSchema,
        lsn: Lsn,
    },
    /// A schema change the source's schema log recorded.
    SchemaChange {
        lsn: Lsn,
        event: Box<TableEvent>,
    },
    /// The source's schema log records schema changes from here on (`None`: no longer).
    SchemaLogSince(Option<Lsn>),
    Begin(TxMeta),
    Context(Context),
    Origin(String),
    Row {
        lsn: Lsn,
        oid: Oid,
        change: RowChange,
    },
    Snapshot {
        lsn: Lsn,
        oid: Oid,
        row: Row,
    },
    Truncate {
        lsn: Lsn,
        oids: Vec<Oid>,
    },
    Commit {
        end_lsn: Lsn,
    },
    /// The server reports progress with nothing to store.
    Advance(Lsn),
    /// History is missing from `from` to the baseline being taken (an invalidated slot).
    Gap {
        from: Lsn,
    },
    /// The connection broke: drop everything not yet durable; the server sends it again.
    Rollback,
}

/// What the writer has made durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WriterProgress {
    pub stored: Lsn,
    pub changes: u64,
    pub transactions: u64,
}

/// Commands are sent in batches of at most this many: the stream sends a batch when it is full
/// or when the stream has read everything the server sent so far.
const BATCH: usize = 1024;
/// Batches the channel holds before the stream waits for the writer.
const CHANNEL_BATCHES: usize = 64;
/// Commit at least this often while busy, so confirmations keep flowing.
const MAX_UNFLUSHED: Duration = Duration::from_millis(500);
const MAX_UNFLUSHED_CHANGES: usize = 50_000;
/// Group commit: when the stream goes quiet less than this after the last commit, wait the rest
/// for more before committing. Each commit fsyncs, and a source committing a thousand small
/// transactions a second would otherwise get a thousand fsyncs a second competing with its own.
const GROUP_COMMIT: Duration = Duration::from_millis(20);

/// Work the writer thread does on its own file between transactions, once per `every` (the
/// first time `every` after it starts): `capture --retain` prunes old history there, so it never
/// competes with the writer for the file.
pub struct Upkeep {
    pub every: Duration,
    pub run: Box<dyn FnMut(&std::path::Path) + Send>,
}

/// The stream task's end of the writer thread.
pub struct WriterHandle {
    sender: Option<mpsc::Sender<Vec<WriteCommand>>>,
    progress: watch::Receiver<WriterProgress>,
    thread: Option<JoinHandle<Result<(), StoreError>>>,
    batch: Vec<WriteCommand>,
    /// When the first command of the unsent batch was queued.
    batch_since: Option<tokio::time::Instant>,
}

impl WriterHandle {
    pub fn spawn(writer: CacheWriter, upkeep: Option<Upkeep>) -> Result<Self, CaptureError> {
        let (sender, receiver) = mpsc::channel(CHANNEL_BATCHES);
        let (progress_sender, progress) = watch::channel(WriterProgress {
            stored: writer.stored_position(),
            ..WriterProgress::default()
        });
        // Only for waiting on the channel with a timeout; the writes themselves stay synchronous.
        let waiter = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .map_err(|error| CaptureError::Protocol {
                what: format!("could not start the cache writer's timer: {error}"),
            })?;
        let thread = std::thread::Builder::new()
            .name("rowtrail-cache-writer".into())
            .spawn(move || write_loop(writer, receiver, progress_sender, &waiter, upkeep))
            .map_err(|error| CaptureError::Protocol {
                what: format!("could not start the cache writer thread: {error}"),
            })?;
        Ok(Self {
            sender: Some(sender),
            progress,
            thread: Some(thread),
            batch: Vec::with_capacity(BATCH),
            batch_since: None,
        })
    }

    /// Queues a command, sending the batch when it is full or the command ends a transaction.
    pub async fn push(&mut self, command: WriteCommand) -> Result<(), CaptureError> {
        let ends_unit = matches!(
            command,
            WriteCommand::Commit { .. } | WriteCommand::Advance(_) | WriteCommand::Rollback
        );
        self.queue(command);
        if ends_unit || self.batch.len() >= BATCH {
            self.send().await?;
        }
        Ok(())
    }

    /// Queues a command that ends a transaction (or advances past idle WAL) without sending the
    /// batch: the stream sends it once it has read everything the server sent so far
    /// ([`WriterHandle::send`]). While capture catches up, a batch then holds many small
    /// transactions instead of one, and the writer thread is woken per batch, not per commit.
    pub async fn stage(&mut self, command: WriteCommand) -> Result<(), CaptureError> {
        self.queue(command);
        if self.batch.len() >= BATCH {
            self.send().await?;
        }
        Ok(())
    }

    fn queue(&mut self, command: WriteCommand) {
        if self.batch.is_empty() {
            self.batch_since = Some(tokio::time::Instant::now());
        }
        self.batch.push(command);
    }

    /// When the first command of what is queued and not yet sent was queued.
    pub fn waiting_since(&self) -> Option<tokio::time::Instant> {
        self.batch_since
    }

    /// Sends what is queued.
    pub async fn send(&mut self) -> Result<(), CaptureError> {
        self.batch_since = None;
        if self.batch.is_empty() {
            return Ok(());
        }
        let batch = std::mem::replace(&mut self.batch, Vec::with_capacity(BATCH));
        let sent = match &self.sender {
            Some(sender) => sender.send(batch).await.is_ok(),
            None => false,
        };
        match sent {
            true => Ok(()),
            false => Err(self.writer_error()),
        }
    }

    /// The latest durable progress.
    pub fn progress(&self) -> WriterProgress {
        *self.progress.borrow()
    }

    /// Resolves when the writer reports new progress; an error if the writer stopped.
    pub async fn changed(&mut self) -> Result<WriterProgress, CaptureError> {
        match self.progress.changed().await {
            Ok(()) => Ok(self.progress()),
            Err(_) => Err(self.writer_error()),
        }
    }

    /// Stops the thread after it has written everything queued, returning its final progress.
    pub async fn finish(mut self) -> Result<WriterProgress, CaptureError> {
        self.send().await?;
        self.sender = None;
        let thread = self.thread.take();
        let result = tokio::task::spawn_blocking(move || thread.map(JoinHandle::join))
            .await
            .map_err(|_| CaptureError::WriterGone)?;
        match result {
            Some(Ok(Ok(()))) | None => Ok(self.progress()),
            Some(Ok(Err(error))) => Err(error.into()),
            Some(Err(_)) => Err(CaptureError::WriterGone),
        }
    }

    /// The writer's own error after it stopped; it only stops on an error while the sender lives.
    fn writer_error(&mut self) -> CaptureError {
        self.sender = None;
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(Err(error))) => error.into(),
            _ => CaptureError::WriterGone,
        }
    }
}

fn write_loop(
    mut writer: CacheWriter,
    mut receiver: mpsc::Receiver<Vec<WriteCommand>>,
    progress: watch::Sender<WriterProgress>,
    waiter: &tokio::runtime::Runtime,
    mut upkeep: Option<Upkeep>,
) -> Result<(), StoreError> {
    let mut last_flush = Instant::now();
    let mut last_upkeep = Instant::now();
    let mut reported = WriterProgress {
        stored: writer.stored_position(),
        ..WriterProgress::default()
    };
    // Commits what is staged unless a source transaction is still open (a batch may end in
    // the middle of one); says whether it committed.
    let mut flush = |writer: &mut CacheWriter| -> Result<bool, StoreError> {
        if writer.in_transaction() {
            return Ok(false);
        }
        let stored = writer.flush()?;
        if let Some(upkeep) = &mut upkeep
            && last_upkeep.elapsed() >= upkeep.every
        {
            (upkeep.run)(writer.path());
            last_upkeep = Instant::now();
        }
        let (changes, transactions) = writer.durable_counts();
        let now = WriterProgress {
            stored,
            changes,
            transactions,
        };
        if now != reported {
            reported = now;
            progress.send_replace(now);
        }
        Ok(true)
    };
    let mut unflushed = false;
    loop {
        let wait = GROUP_COMMIT.saturating_sub(last_flush.elapsed());
        let next = match unflushed {
            true => waiter.block_on(async { tokio::time::timeout(wait, receiver.recv()).await }),
            false => Ok(receiver.blocking_recv()),
        };
        let batch = match next {
            Ok(Some(batch)) => batch,
            Ok(None) => break,
            Err(_quiet) => {
                if flush(&mut writer)? {
                    last_flush = Instant::now();
                }
                // Committed, or only the rest of an open transaction can make it committable:
                // wait for the next batch either way.
                unflushed = false;
                continue;
            }
        };
        for command in batch {
            apply(&mut writer, command)?;
        }
        unflushed = true;
        let idle = receiver.is_empty();
        if (idle && last_flush.elapsed() >= GROUP_COMMIT)
            || writer.staged_changes() >= MAX_UNFLUSHED_CHANGES
            || last_flush.elapsed() >= MAX_UNFLUSHED
        {
            // A batch that ended inside a transaction leaves `last_flush` as it was, so the
            // commit is tried again after the next batch.
            if flush(&mut writer)? {
                last_flush = Instant::now();
                unflushed = false;
            }
        }
    }
    flush(&mut writer).map(|_| ())
}

fn apply(writer: &mut CacheWriter, command: WriteCommand) -> Result<(), StoreError> {
    match command {
        WriteCommand::Relation { schema, lsn } => writer.register_relation(schema, lsn),
        WriteCommand::SchemaChange { lsn, event } => writer.schema_change(lsn, &event),
        WriteCommand::SchemaLogSince(lsn) => writer.set_schema_log_since(lsn),
        WriteCommand::Begin(meta) => writer.begin(meta),
        WriteCommand::Context(context) => writer.set_context(&context),
        WriteCommand::Origin(origin) => {
            writer.set_origin(origin);
            Ok(())
        }
        WriteCommand::Row { lsn, oid, change } => writer.row_change(lsn, oid, &change),
        WriteCommand::Snapshot { lsn, oid, row } => writer.snapshot_row(lsn, oid, row),
        WriteCommand::Truncate { lsn, oids } => writer.truncate(lsn, &oids),
        WriteCommand::Commit { end_lsn } => writer.commit(end_lsn),
        WriteCommand::Advance(position) => writer.advance(position),
        WriteCommand::Gap { from } => writer.gap(from),
        WriteCommand::Rollback => writer.rollback(),
    }
}
