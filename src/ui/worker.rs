//! Background readers of the cache. The UI thread never queries SQLite: it sends `Request`s to
//! three named reader threads, each with its own read connection, and drains their `Reply`s each
//! frame. `rowtrail-reader` answers pages, details and scripts; `rowtrail-scanner` builds
//! timeline indexes; `rowtrail-histogram` counts changes over time and reads the overview
//! (tables, time span). The last two may scan millions of rows, so they never hold up a page, and
//! they give up as soon as the filter changes. A fourth thread, `rowtrail-watcher`, reads the
//! newest change id every few seconds, so changes that another process stores (a capture in a
//! terminal, a publisher into a shared store) reach the screen.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::time::Duration;

use crate::model::{ChangeId, LoggedChange};
use crate::model::{Image, Moment};
use crate::restore::{Script, UndoTarget, restore_script, undo_script};
use crate::store::{Cache, Facets, LogFilter, SourceIdentity, TableSummary, TimeSpan};

use super::Message;

/// The most changes of a related history the detail panel lists.
pub const RELATED_ROWS: usize = 2_000;

/// How often the watcher reads the newest change id: one indexed lookup, on a file or a store.
const WATCH_INTERVAL: Duration = Duration::from_secs(2);

/// What a worker is asked.
#[derive(Debug, Clone)]
pub enum Request {
    Open(PathBuf),
    /// Tables, context fields and the time span: what the filter panel shows.
    Overview,
    Page {
        generation: u64,
        filter: LogFilter,
        top: ChangeId,
        skip: usize,
        count: usize,
        /// Where the rows go: an index page or the head.
        slot: RowSlot,
    },
    Head {
        generation: u64,
        filter: LogFilter,
        above: ChangeId,
    },
    BuildIndex {
        generation: u64,
        filter: LogFilter,
    },
    Histogram {
        generation: u64,
        filter: LogFilter,
        span: TimeSpan,
        buckets: usize,
    },
    Detail(ChangeId),
    /// The related history of a change's record (`history::related`).
    Related(ChangeId),
    /// Write a timeline or a story to a file.
    Export(Box<super::export::ExportRequest>),
    /// The newest change of the record of `table` whose single-column key is `key`.
    NewestOfRecord {
        table: crate::model::TableName,
        key: String,
    },
    RecordAt {
        change: ChangeId,
        moment: Moment,
    },
    /// The record of a change and every related row at a moment (`at --related`).
    RelatedAt {
        change: ChangeId,
        moment: Moment,
    },
    Script {
        request: ScriptRequest,
        /// Write the other columns and leave those the cache's column rules protect as they are.
        leave_protected: bool,
    },
    /// The newest change at or before a time (for jumping in the timeline).
    Locate(chrono::DateTime<chrono::Utc>),
    /// Where a transaction's matching rows are in a timeline's index, to fold them.
    Fold {
        generation: u64,
        filter: LogFilter,
        tx_id: i64,
        /// The newest id the index covers, and its anchors (every `STRIDE`th id, newest first).
        top: ChangeId,
        anchors: Arc<Vec<ChangeId>>,
    },
    /// What the changes matching a filter have in common.
    Facets {
        generation: u64,
        filter: LogFilter,
    },
    /// The saved views and what their links name as the source.
    Views,
    /// Check a view (its tables, predicate and columns) and save it.
    SaveView(crate::model::SavedView),
    RemoveView(String),
    /// A view's labelled timeline.
    View(crate::model::SavedView),
}

impl Request {
    /// The generation and filter a timeline request carries, and whether it is the one that
    /// reports a filter that cannot run (the index).
    fn filter(&self) -> Option<(u64, &LogFilter, bool)> {
        match self {
            Self::BuildIndex { generation, filter } => Some((*generation, filter, true)),
            Self::Page {
                generation, filter, ..
            }
            | Self::Head {
                generation, filter, ..
            }
            | Self::Histogram {
                generation, filter, ..
            }
            | Self::Fold {
                generation, filter, ..
            }
            | Self::Facets { generation, filter } => Some((*generation, filter, false)),
            _ => None,
        }
    }
}

/// Where fetched rows belong in the timeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RowSlot {
    /// Index page number (by index rank / page size).
    Page(u64),
    /// The rows newer than the index, by id.
    Head,
}

/// A script the user asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScriptRequest {
    Undo {
        target: UndoTarget,
        cascade: bool,
    },
    /// Put the record of this change back as it was right after it.
    RestoreVersion(ChangeId),
    /// Put the record of this change and every related row back as they were at the moment.
    RestoreStory {
        change: ChangeId,
        moment: Moment,
    },
}

/// Everything the detail panel shows about one change.
#[derive(Debug, Clone)]
pub struct Detail {
    pub change: LoggedChange,
    /// The transaction's changes (at most 200).
    pub transaction: Vec<LoggedChange>,
    /// Every version of the record, oldest first.
    pub history: Vec<LoggedChange>,
    /// The erasure (`rowtrail forget`) that removed the change's values, if one did.
    pub erased: Option<crate::store::maintenance::ErasureEntry>,
}

/// What a worker answers.
#[derive(Debug)]
pub enum Reply {
    Opened {
        path: PathBuf,
        source: SourceIdentity,
        newest: Option<ChangeId>,
        /// The import that fed the cache, when an import did.
        import: Option<crate::store::ImportState>,
        /// The cache's column rules.
        rules: crate::model::ColumnRules,
        /// The newest prune (`rowtrail prune`, `capture --retain`): where the history begins.
        pruned: Option<crate::store::maintenance::PruneEntry>,
    },
    Overview {
        tables: Vec<TableSummary>,
        context_fields: Vec<String>,
        span: Option<TimeSpan>,
        newest: Option<ChangeId>,
    },
    Rows {
        generation: u64,
        slot: RowSlot,
        rows: Vec<LoggedChange>,
    },
    Head {
        generation: u64,
        ids: Vec<ChangeId>,
    },
    /// Part of an index: anchors from `first_anchor` on, and how many ids are scanned so far.
    Index {
        generation: u64,
        top: ChangeId,
        first_anchor: usize,
        anchors: Vec<ChangeId>,
        scanned: u64,
        complete: bool,
    },
    Histogram {
        generation: u64,
        span: TimeSpan,
        counts: Vec<u64>,
    },
    Detail(Box<Detail>),
    /// The newest change of a record, to open (`NewestOfRecord`).
    OpenChange(ChangeId),
    /// What an export wrote, or why it could not.
    Exported(Result<String, String>),
    /// The story of the record of `change`, newest first (at most `RELATED_ROWS`), or why
    /// there is none.
    Related {
        change: ChangeId,
        story: Result<Vec<crate::history::related::Related>, String>,
    },
    RecordAt {
        change: ChangeId,
        moment: Moment,
        image: Option<Image>,
    },
    RelatedAt {
        change: ChangeId,
        moment: Moment,
        members: Result<Vec<crate::history::related::Member>, String>,
    },
    Script(Result<Script, String>),
    Located(ChangeId),
    /// A transaction's newest matching change, how many match, and the newest's rank in the
    /// index (`None` when it is newer than the index).
    Fold {
        generation: u64,
        tx_id: i64,
        newest: ChangeId,
        count: u64,
        index_rank: Option<u64>,
    },
    Facets {
        generation: u64,
        facets: Facets,
    },
    Views {
        views: Vec<crate::model::SavedView>,
        source: crate::model::LinkSource,
    },
    /// A view was saved (and should open), or why not.
    ViewSaved(Result<crate::model::SavedView, String>),
    /// A view's timeline, newest first, or why it cannot be read.
    View {
        view: crate::model::SavedView,
        rows: Result<super::views::ViewRows, String>,
    },
    /// The newest change stored in the cache at `path`, as its watcher saw it change (another
    /// process may have stored it).
    Grew {
        path: PathBuf,
        newest: ChangeId,
    },
    /// Something failed; the app shows the message in its banner.
    Failed(String),
    /// The filter of this generation cannot run (a search names a column no table has).
    FilterRejected {
        generation: u64,
        message: String,
    },
}

/// Rows between index anchors: the index keeps every 256th id, so any rank is at most 255 rows
/// past a known id.
pub const STRIDE: u64 = 256;

/// The reader threads of one open cache.
pub struct Workers {
    quick: SyncSender<Request>,
    index: SyncSender<Request>,
    histogram: SyncSender<Request>,
    /// Requests for a reader whose queue was full, oldest first: sent on the next frames, never
    /// dropped, since something waits for each answer.
    waiting: RefCell<Outbox>,
    /// The newest filter generation; scans for older generations stop early.
    generation: Arc<AtomicU64>,
    /// Dropped with the workers, which ends the watcher.
    _watching: SyncSender<()>,
}

/// Requests waiting for room in a reader's queue.
#[derive(Debug, Default)]
pub struct Outbox {
    requests: VecDeque<Request>,
}

impl Outbox {
    pub fn push(&mut self, request: Request) {
        self.requests.push_back(request);
    }

    /// Sends waiting requests in order until `send` finds no room; returns false if the reader is
    /// gone.
    pub fn flush(&mut self, mut send: impl FnMut(Request) -> Delivery) -> bool {
        while let Some(request) = self.requests.pop_front() {
            match send(request) {
                Delivery::Sent => {}
                Delivery::Full(request) => {
                    self.requests.push_front(*request);
                    return true;
                }
                Delivery::Gone => return false,
            }
        }
        true
    }

    pub fn is_empty(&self) -> bool {
        self.requests.is_empty()
    }
}

/// What became of a request handed to a reader's queue.
pub enum Delivery {
    Sent,
    /// No room: the request comes back.
    Full(Box<Request>),
    /// The reader has stopped.
    Gone,
}

impl Delivery {
    fn of(result: Result<(), TrySendError<Request>>) -> Self {
        match result {
            Ok(()) => Self::Sent,
            Err(TrySendError::Full(request)) => Self::Full(Box::new(request)),
            Err(TrySendError::Disconnected(_)) => Self::Gone,
        }
    }
}

impl Workers {
    pub fn start(
        path: PathBuf,
        inbox: SyncSender<Message>,
        ctx: egui::Context,
    ) -> Result<Self, std::io::Error> {
        let generation = Arc::new(AtomicU64::new(0));
        let lane = |name: &str| spawn(name, inbox.clone(), ctx.clone(), generation.clone());
        let (quick, index, histogram) = (
            lane("rowtrail-reader")?,
            lane("rowtrail-scanner")?,
            lane("rowtrail-histogram")?,
        );
        for sender in [&quick, &index, &histogram] {
            let _ = sender.send(Request::Open(path.clone()));
        }
        let (watching, stop) = sync_channel::<()>(1);
        std::thread::Builder::new()
            .name("rowtrail-watcher".to_owned())
            .spawn(move || watch(&path, &stop, &inbox, &ctx))?;
        Ok(Self {
            quick,
            index,
            histogram,
            waiting: RefCell::new(Outbox::default()),
            generation,
            _watching: watching,
        })
    }

    /// Sends a request to the thread it belongs to without ever waiting: a request that finds its
    /// reader's queue full waits in the outbox and goes with a later frame ([`Workers::flush`]).
    pub fn send(&self, request: Request) {
        if let Request::BuildIndex { generation, .. }
        | Request::Histogram { generation, .. }
        | Request::Facets { generation, .. } = &request
        {
            self.generation.fetch_max(*generation, Ordering::SeqCst);
        }
        self.waiting.borrow_mut().push(request);
        self.flush();
    }

    /// Sends what waits in the outbox, as far as the readers' queues have room.
    pub fn flush(&self) {
        let sent = self.waiting.borrow_mut().flush(|request| {
            let lane = match &request {
                Request::BuildIndex { .. } => &self.index,
                // The overview (tables, time span) reads every table's counts: on a large
                // cache it would hold up the first page behind it on the quick lane.
                Request::Histogram { .. }
                | Request::Facets { .. }
                | Request::View(_)
                | Request::Overview => &self.histogram,
                _ => &self.quick,
            };
            Delivery::of(lane.try_send(request))
        });
        if !sent {
            tracing::warn!("a cache reader thread has stopped");
        }
    }

    /// True while requests wait for room (the UI keeps repainting until they are sent).
    pub fn has_waiting(&self) -> bool {
        !self.waiting.borrow().is_empty()
    }
}

fn spawn(
    name: &str,
    inbox: SyncSender<Message>,
    ctx: egui::Context,
    generation: Arc<AtomicU64>,
) -> Result<SyncSender<Request>, std::io::Error> {
    let (sender, receiver) = sync_channel::<Request>(256);
    std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || serve(receiver, inbox, ctx, generation))?;
    Ok(sender)
}

fn serve(
    requests: Receiver<Request>,
    inbox: SyncSender<Message>,
    ctx: egui::Context,
    generation: Arc<AtomicU64>,
) {
    let mut cache: Option<Cache> = None;
    let reply = |reply: Reply| {
        // The UI drains its inbox every frame; if it is gone, so is the app.
        let _ = inbox.send(Message::Reply(reply));
        ctx.request_repaint();
    };
    while let Ok(request) = requests.recv() {
        if let Request::Open(path) = &request {
            match crate::shared::open_cache(path).and_then(|opened| {
                let source = opened.source()?;
                let newest = opened.newest_change().ok();
                let import = opened.import_state()?;
                let rules = opened.column_rules()?;
                let pruned = opened.prunes()?.pop();
                Ok((opened, source, newest, import, rules, pruned))
            }) {
                Ok((opened, source, newest, import, rules, pruned)) => {
                    cache = Some(opened);
                    reply(Reply::Opened {
                        path: path.clone(),
                        source,
                        newest,
                        import,
                        rules,
                        pruned,
                    });
                }
                Err(error) => reply(Reply::Failed(error.to_string())),
            }
            continue;
        }
        let Some(cache) = cache.as_ref() else {
            continue;
        };
        match answer(cache, request, &generation, &reply) {
            Ok(Some(answer)) => reply(answer),
            Ok(None) => {}
            Err(error) => reply(Reply::Failed(error)),
        }
    }
}

/// Reads the newest change id every [`WATCH_INTERVAL`] until `stop`'s sender is dropped, and
/// says when it changed. A failure to open or read (a store's server restarting) is tried again
/// on the next round with a new connection; the readers report failures of their own.
fn watch(
    path: &std::path::Path,
    stop: &Receiver<()>,
    inbox: &SyncSender<Message>,
    ctx: &egui::Context,
) {
    let mut cache: Option<Cache> = None;
    let mut seen: Option<ChangeId> = None;
    loop {
        if cache.is_none() {
            cache = crate::shared::open_cache(path).ok();
        }
        if let Some(open) = &cache {
            match open.newest_change() {
                Ok(newest) if seen != Some(newest) => {
                    seen = Some(newest);
                    let report = Reply::Grew {
                        path: path.to_owned(),
                        newest,
                    };
                    if inbox.send(Message::Reply(report)).is_err() {
                        return;
                    }
                    // Taken in at the next look rather than at once: while this app captures
                    // into the cache itself, capture's reports are already on their way.
                    ctx.request_repaint_after(super::capture_task::FOLLOW_REFRESH);
                }
                Ok(_) | Err(crate::store::StoreError::EmptyHistory) => {}
                Err(error) => {
                    tracing::debug!(%error, "the watcher could not read the newest change");
                    cache = None;
                }
            }
        }
        match stop.recv_timeout(WATCH_INTERVAL) {
            Err(RecvTimeoutError::Timeout) => {}
            Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
        }
    }
}

fn answer(
    cache: &Cache,
    request: Request,
    generation: &AtomicU64,
    reply: &impl Fn(Reply),
) -> Result<Option<Reply>, String> {
    let text = |error: crate::store::StoreError| error.to_string();
    // A search naming what no table has is the filter's problem, said once (to the index
    // request), not a failure of every request that carries it.
    if let Some((of, filter, rejects)) = request.filter()
        && let Err(crate::store::StoreError::BadSearch(message)) = cache.filter_sql(filter)
    {
        return Ok(rejects.then_some(Reply::FilterRejected {
            generation: of,
            message,
        }));
    }
    Ok(Some(match request {
        Request::Open(_) => return Ok(None),
        Request::Overview => Reply::Overview {
            tables: cache.tables().map_err(text)?,
            context_fields: cache.context_fields().map_err(text)?,
            span: cache.time_span().map_err(text)?,
            newest: cache.newest_change().ok(),
        },
        Request::Page {
            generation,
            filter,
            top,
            skip,
            count,
            slot,
        } => Reply::Rows {
            generation,
            slot,
            rows: cache.page(&filter, top, skip, count).map_err(text)?,
        },
        Request::Head {
            generation,
            filter,
            above,
        } => Reply::Head {
            generation,
            ids: cache.ids_above(&filter, above).map_err(text)?,
        },
        Request::BuildIndex {
            generation: wanted,
            filter,
        } => {
            build_index(cache, wanted, &filter, generation, reply).map_err(text)?;
            return Ok(None);
        }
        Request::Histogram {
            generation: wanted,
            filter,
            span,
            buckets,
        } => {
            let current = || generation.load(Ordering::Relaxed) == wanted;
            let counts = cache
                .histogram(&filter, span.0, span.1, buckets, current)
                .map_err(text)?;
            if !current() {
                return Ok(None);
            }
            Reply::Histogram {
                generation: wanted,
                span,
                counts,
            }
        }
        Request::Detail(id) => {
            let Some(change) = cache.change(id).map_err(text)? else {
                return Err(format!("change {id} is not in this cache"));
            };
            let transaction = cache.transaction(change.tx.id, Some(200)).map_err(text)?;
            let history = match change.schema.has_key()
                && !matches!(
                    change.change.op,
                    crate::model::Op::Truncate | crate::model::Op::Gap | crate::model::Op::Ddl
                ) {
                true => {
                    let record = cache.record_of(&change).map_err(text)?;
                    cache.record_history(&record).map_err(text)?
                }
                false => vec![change.clone()],
            };
            let erased = cache.erasure_of(id).map_err(text)?;
            Reply::Detail(Box::new(Detail {
                change,
                transaction,
                history,
                erased,
            }))
        }
        Request::NewestOfRecord { table, key } => {
            let (_, schema) = cache.find_table(&table).map_err(text)?;
            let column = schema
                .key_column_names()
                .next()
                .ok_or_else(|| format!("{table} has no key"))?
                .to_owned();
            let filter = crate::store::KeyFilter(serde_json::Map::from_iter([(
                column,
                serde_json::Value::String(key),
            )]));
            let record = cache.record(&table, &filter).map_err(text)?;
            let newest = cache
                .record_history(&record)
                .map_err(text)?
                .last()
                .map(|change| change.id)
                .ok_or_else(|| format!("{table} has no record with key {}", record.key))?;
            Reply::OpenChange(newest)
        }
        Request::Export(request) => Reply::Exported(export(cache, &request)),
        Request::Views => Reply::Views {
            views: cache.views().map_err(text)?,
            source: cache.link_source().map_err(text)?,
        },
        Request::SaveView(view) => Reply::ViewSaved(
            crate::related::check_view(cache, &view)
                .map_err(|error| error.to_string())
                .and_then(|_| cache.save_view(&view).map_err(text))
                .map(|()| view),
        ),
        Request::RemoveView(name) => {
            cache.remove_view(&name).map_err(text)?;
            Reply::Views {
                views: cache.views().map_err(text)?,
                source: cache.link_source().map_err(text)?,
            }
        }
        Request::View(view) => Reply::View {
            rows: crate::related::view_newest(cache, &view, super::views::VIEW_ROWS)
                .map(|changes| super::views::ViewRows { changes })
                .map_err(|error| error.to_string()),
            view,
        },
        Request::Related(id) => {
            let Some(change) = cache.change(id).map_err(text)? else {
                return Err(format!("change {id} is not in this cache"));
            };
            let story = cache
                .record_of(&change)
                .map_err(|error| error.to_string())
                .and_then(|record| {
                    crate::related::related_newest(
                        cache,
                        &record,
                        &crate::related::StoryOptions::default(),
                        RELATED_ROWS,
                    )
                    .map_err(|error| error.to_string())
                });
            Reply::Related { change: id, story }
        }
        Request::RecordAt { change, moment } => {
            let Some(entry) = cache.change(change).map_err(text)? else {
                return Err(format!("change {change} is not in this cache"));
            };
            let record = cache.record_of(&entry).map_err(text)?;
            let cut = cache.resolve_moment(moment).map_err(text)?;
            Reply::RecordAt {
                change,
                moment,
                image: cache.record_at(&record, cut).map_err(text)?,
            }
        }
        Request::RelatedAt { change, moment } => {
            // Every failure is shown where the rows would be (a moment before history began).
            let members = (|| {
                let entry = cache
                    .change(change)?
                    .ok_or(crate::store::StoreError::UnknownChange { id: change })?;
                let record = cache.record_of(&entry)?;
                let cut = cache.resolve_moment(moment)?;
                crate::related::related_at(
                    cache,
                    &record,
                    &crate::related::StoryOptions::default(),
                    cut,
                )
            })()
            .map_err(|error: crate::related::RelatedError| error.to_string());
            Reply::RelatedAt {
                change,
                moment,
                members,
            }
        }
        Request::Script {
            request,
            leave_protected,
        } => Reply::Script(
            script(cache, &request, leave_protected).map_err(|error| error.to_string()),
        ),
        Request::Fold {
            generation,
            filter,
            tx_id,
            top,
            anchors,
        } => {
            // A transaction with no matching change has nothing to fold (count 0).
            let (newest, count) = cache
                .transaction_span(&filter, tx_id)
                .map_err(text)?
                .unwrap_or((ChangeId(0), 0));
            let index_rank = match count > 0 && newest <= top {
                true => Some(index_rank(cache, &filter, newest, &anchors).map_err(text)?),
                false => None,
            };
            Reply::Fold {
                generation,
                tx_id,
                newest,
                count,
                index_rank,
            }
        }
        Request::Facets {
            generation: wanted,
            filter,
        } => {
            let current = || generation.load(Ordering::Relaxed) == wanted;
            let facets = cache.facets(&filter, FACET_ROWS, current).map_err(text)?;
            if !current() {
                return Ok(None);
            }
            Reply::Facets {
                generation: wanted,
                facets,
            }
        }
        Request::Locate(time) => match cache.resolve_moment(Moment::Time(time)) {
            Ok(id) => Reply::Located(id),
            // Before the history starts: the oldest change.
            Err(crate::store::StoreError::BeforeHistory { first, .. }) => Reply::Located(first),
            Err(error) => return Err(error.to_string()),
        },
    }))
}

fn script(
    cache: &Cache,
    request: &ScriptRequest,
    leave_protected: bool,
) -> Result<Script, crate::related::RelatedError> {
    Ok(match request {
        ScriptRequest::Undo { target, cascade } => {
            undo_script(cache, target, *cascade, true, leave_protected)?
        }
        ScriptRequest::RestoreVersion(id) => {
            let change = cache
                .change(*id)?
                .ok_or(crate::store::StoreError::UnknownChange { id: *id })?;
            let record = cache.record_of(&change)?;
            restore_script(
                cache,
                &record,
                Moment::AfterChange(*id),
                true,
                leave_protected,
            )?
        }
        ScriptRequest::RestoreStory { change, moment } => {
            let entry = cache
                .change(*change)?
                .ok_or(crate::store::StoreError::UnknownChange { id: *change })?;
            let record = cache.record_of(&entry)?;
            crate::related::restore_related(
                cache,
                &record,
                &crate::related::StoryOptions::default(),
                *moment,
                &match moment {
                    Moment::BeforeChange(id) => format!("just before change {id}"),
                    Moment::AfterChange(id) => format!("just after change {id}"),
                    Moment::Time(time) => time.format("%Y-%m-%d %H:%M:%S%.6f UTC").to_string(),
                    Moment::Lsn(lsn) => format!("WAL position {lsn}"),
                },
                true,
            )?
        }
    })
}

/// How many of the newest matching changes the facets count.
pub const FACET_ROWS: u64 = 200_000;

/// The rank of a matching change in an index: the anchor at or above it, plus the matching
/// changes between them.
fn index_rank(
    cache: &Cache,
    filter: &LogFilter,
    id: ChangeId,
    anchors: &[ChangeId],
) -> Result<u64, crate::store::StoreError> {
    let above = anchors.partition_point(|anchor| *anchor > id);
    if anchors.get(above) == Some(&id) {
        return Ok(above as u64 * STRIDE);
    }
    let Some(anchor) = above.checked_sub(1).and_then(|index| anchors.get(index)) else {
        return Ok(0);
    };
    let between = cache.count_between(filter, id, *anchor)?;
    Ok((above as u64 - 1) * STRIDE + between)
}

/// Scans the ids matching `filter`, newest first, keeping every `STRIDE`th as an anchor, and
/// reports progress after the first 4,096 ids (so the top of the list shows at once) and then every
/// 200,000; stops as soon as a newer generation is asked for.
fn build_index(
    cache: &Cache,
    wanted: u64,
    filter: &LogFilter,
    generation: &AtomicU64,
    reply: &impl Fn(Reply),
) -> Result<(), crate::store::StoreError> {
    let top = match cache.newest_change() {
        Ok(top) => top,
        Err(crate::store::StoreError::EmptyHistory) => ChangeId(0),
        Err(error) => return Err(error),
    };
    let mut anchors: Vec<ChangeId> = Vec::new();
    let mut sent = 0usize;
    let mut scanned = 0u64;
    let mut stale = false;
    cache.scan_ids(filter, top, |id| {
        if scanned.is_multiple_of(STRIDE) {
            anchors.push(id);
        }
        scanned += 1;
        if scanned.is_multiple_of(4096) && generation.load(Ordering::Relaxed) != wanted {
            stale = true;
            return false;
        }
        if scanned == 4096 || scanned.is_multiple_of(200_000) {
            reply(Reply::Index {
                generation: wanted,
                top,
                first_anchor: sent,
                anchors: anchors[sent..].to_vec(),
                scanned,
                complete: false,
            });
            sent = anchors.len();
        }
        true
    })?;
    if !stale {
        reply(Reply::Index {
            generation: wanted,
            top,
            first_anchor: sent,
            anchors: anchors[sent..].to_vec(),
            scanned,
            complete: true,
        });
    }
    Ok(())
}

/// Writes an export (`ExportRequest`) to its file, readable by its owner only (it holds
/// production data), and says what it wrote.
fn export(cache: &Cache, request: &super::export::ExportRequest) -> Result<String, String> {
    use super::export::{EXPORT_ROWS, ExportSource};
    use crate::history::report::{Entry, Format, ReportHead, csv, html, markdown};
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let text = |error: &dyn std::fmt::Display| error.to_string();
    let changes;
    let story;
    let entries: Vec<Entry<'_>> = match &request.source {
        ExportSource::Timeline(filter) => {
            let filter = LogFilter {
                before: None,
                limit: Some(EXPORT_ROWS),
                ..(**filter).clone()
            };
            changes = cache.log(&filter).map_err(|error| text(&error))?;
            changes
                .iter()
                .map(|change| Entry {
                    change,
                    path: None,
                    view: None,
                })
                .collect()
        }
        ExportSource::Story(id) => {
            let change = cache
                .change(*id)
                .map_err(|error| text(&error))?
                .ok_or_else(|| format!("change {id} is not in this cache"))?;
            let record = cache.record_of(&change).map_err(|error| text(&error))?;
            story = crate::related::related_history(
                cache,
                &record,
                &crate::related::StoryOptions::default(),
            )
            .map_err(|error| text(&error))?;
            story
                .iter()
                .map(|related| Entry {
                    change: &related.change,
                    path: Some(&related.path),
                    view: None,
                })
                .collect()
        }
    };
    let head = ReportHead {
        title: request.title.clone(),
        source: cache.source().map_err(|error| text(&error))?.display,
        made_at: chrono::Utc::now()
            .format("%Y-%m-%d %H:%M:%S UTC")
            .to_string(),
        script: None,
    };
    let body = match request.format {
        Format::Csv => csv(&entries).map_err(|error| text(&error))?,
        Format::Markdown => markdown(&head, &entries),
        Format::Html => html(&head, &entries),
    };
    let path = &request.path;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut file| file.write_all(body.as_bytes()))
        .map_err(|error| {
            format!(
                "could not write {}: {error}; check that the folder exists and that you may write there",
                path.display()
            )
        })?;
    Ok(format!(
        "Wrote {} to {}",
        match entries.len() {
            1 => "1 change".to_owned(),
            count => format!("{count} changes"),
        },
        path.display()
    ))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // In tests a failed unwrap is a failed test.
mod tests {
    use super::*;

    #[test]
    fn item7_a_full_reader_queue_delays_requests_and_never_drops_them() {
        let (sender, receiver) = sync_channel::<Request>(2);
        let mut outbox = Outbox::default();
        for id in 1..=5 {
            outbox.push(Request::Detail(ChangeId(id)));
        }
        assert!(outbox.flush(|request| Delivery::of(sender.try_send(request))));
        assert_eq!(outbox.requests.len(), 3, "two fit, three wait");
        let mut answered = Vec::new();
        while !outbox.is_empty() {
            while let Ok(Request::Detail(id)) = receiver.try_recv() {
                answered.push(id.0);
            }
            assert!(outbox.flush(|request| Delivery::of(sender.try_send(request))));
        }
        while let Ok(Request::Detail(id)) = receiver.try_recv() {
            answered.push(id.0);
        }
        assert_eq!(answered, vec![1, 2, 3, 4, 5], "all of them, in order");
        drop(receiver);
        outbox.push(Request::Overview);
        assert!(
            !outbox.flush(|request| Delivery::of(sender.try_send(request))),
            "a reader that is gone"
        );
    }
}
