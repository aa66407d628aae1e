//! Everything that talks to the source PostgreSQL server: connection settings and TLS, the
//! doctor's checks, and capture itself (publication, slot, baseline, streaming into the cache).
//!
//! Architecture invariant: only this module opens connections to PostgreSQL. It hands decoded
//! changes to `store` and never writes SQLite itself.
//! Architecture invariant: the position confirmed to the server is always one the cache has
//! durably stored, so a crash at any moment loses nothing and stores nothing twice.

pub(crate) mod catalog;
pub mod conninfo;
pub mod doctor;
mod encoding;
pub mod error;
pub mod mask_key;
pub mod schema_log;
pub(crate) mod session;
mod setup;
mod sink;
mod stream;
mod streamed;
pub mod tls;
pub mod walsender;

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tokio::sync::watch;

use crate::model::{ColumnProtection, Lsn, Oid, TableName};
use crate::store::{BaselineState, CacheWriter, CaptureState, SourceIdentity, StoreError};

pub use conninfo::ConnectionSpec;
pub use error::{CaptureError, ServerError};

use encoding::{Reception, ServerEncoding};
use schema_log::SchemaLogState;
use session::SqlSession;
use sink::{WriteCommand, WriterHandle};
use stream::{Connections, SchemaMemory, SessionEnd, SessionPlan, SessionReport};
use walsender::WalSender;

/// What to capture, from where, into which cache.
#[derive(Debug, Clone)]
pub struct CaptureOptions {
    pub source: ConnectionSpec,
    pub cache: PathBuf,
    /// `None` for every table of the database.
    pub tables: Option<Vec<TableName>>,
    pub slot: String,
    pub publication: String,
    /// Capture up to the server's WAL position at start, then return.
    pub once: bool,
    /// When the slot that fed the cache was invalidated or dropped, take a new baseline into the
    /// same cache, after a gap in its history, instead of stopping.
    pub new_baseline: bool,
    /// Let the server stream large transactions before they commit (PostgreSQL 14 and later),
    /// kept in a file beside the cache until they do; `false` for whole transactions only.
    pub stream_in_progress: bool,
    /// Columns whose values never reach the cache as they are (empty: the cache's own rules).
    pub protection: ColumnProtection,
    /// Keep only this much history: older changes are folded into the baseline as capture goes
    /// (`crate::retention`): before streaming starts, then hourly on the writer thread.
    pub retain: Option<chrono::Duration>,
}

/// What capture is doing, for the command line and the app's status bar.
#[derive(Debug, Clone, PartialEq)]
pub enum CaptureEvent {
    Connected {
        source: String,
        server_version: String,
    },
    PublicationCreated {
        name: String,
        all_tables: bool,
        tables: usize,
    },
    PublicationReused {
        name: String,
        tables: usize,
    },
    /// The schema log (an event trigger recording schema changes) was installed on the source.
    SchemaLogInstalled,
    /// A slot left by a capture that died during its baseline was dropped, to start over.
    StaleSlotDropped {
        name: String,
    },
    SlotCreated {
        name: String,
        consistent_point: Lsn,
    },
    BaselineStarted {
        tables: usize,
    },
    BaselineProgress {
        table: TableName,
        rows: u64,
        estimated_rows: u64,
    },
    BaselineDone {
        rows: u64,
        tables: usize,
    },
    Streaming {
        from: Lsn,
    },
    Progress {
        /// Everything committed before this is in the cache.
        stored: Lsn,
        /// The server's position as last reported.
        received: Lsn,
        /// Changes and transactions stored during this run.
        changes: u64,
        transactions: u64,
        last_commit_time: Option<DateTime<Utc>>,
    },
    /// How much WAL the server keeps for the slot (reported every half minute while streaming).
    SlotStatus {
        retained_wal_bytes: i64,
    },
    Warning(String),
    /// `--retain` folded old history into the baseline (one line for people).
    Pruned(String),
    Reconnecting {
        attempt: u32,
        delay: Duration,
        error: String,
    },
    Stopped {
        position: Lsn,
        changes: u64,
        transactions: u64,
    },
}

/// How often `--retain` prunes while capture follows the source.
const RETAIN_EVERY: Duration = Duration::from_secs(3600);

/// Prunes the history older than `age` (`--retain`), reporting what it did; a failed prune is a
/// warning (the history is unchanged) and capture goes on.
fn prune_for_retain(
    path: &std::path::Path,
    age: chrono::Duration,
    rewrite: crate::retention::Rewrite,
    observer: &Observer,
) {
    let pruned = crate::store::Cache::open(path)
        .map_err(crate::retention::RetentionError::from)
        .and_then(|cache| {
            crate::retention::prune_older_than(&cache, age, chrono::Utc::now(), rewrite)
        });
    match pruned {
        Ok(pruned) if pruned.changed || pruned.shrink.is_some() => {
            observer(CaptureEvent::Pruned(pruned.summary()));
        }
        Ok(_) => {}
        Err(error) => observer(CaptureEvent::Warning(format!(
            "could not prune the history older than --retain: {error}"
        ))),
    }
}

/// The writer's hourly upkeep for `--retain AGE`: the same prune, never rewriting the file.
fn retention_upkeep(age: chrono::Duration, observer: Observer) -> sink::Upkeep {
    sink::Upkeep {
        every: RETAIN_EVERY,
        run: Box::new(move |path| {
            prune_for_retain(path, age, crate::retention::Rewrite::Never, &observer);
        }),
    }
}

/// Receives capture events; called from the capture thread.
pub type Observer = Arc<dyn Fn(CaptureEvent) + Send + Sync>;

/// How a capture run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CaptureSummary {
    pub position: Lsn,
    pub changes: u64,
    pub transactions: u64,
    pub timings: CaptureTimings,
}

/// Where a run's time went, which `rowtrail capture` reports when it stops.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CaptureTimings {
    /// Connecting, the checks, the cache's opening, the slot and the baseline when there was one.
    pub preparing: Duration,
    /// Streaming until stopped or, with `--once`, until the end it aimed for was stored.
    pub streaming: Duration,
    /// Storing what was left and closing the cache.
    pub finishing: Duration,
}

/// Slot names PostgreSQL accepts: lower-case letters, digits and underscores, at most 63.
pub fn validate_slot_name(name: &str) -> Result<(), CaptureError> {
    let valid = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'_');
    match valid {
        true => Ok(()),
        false => Err(CaptureError::BadSlotName(name.to_owned())),
    }
}

/// The slot the app and the demo capture through: one per database, since slots are per server
/// and one database's capture must not consume another's.
pub fn slot_for_database(database: &str) -> String {
    let cleaned: String = database
        .chars()
        .map(|c| match c.is_ascii_alphanumeric() {
            true => c.to_ascii_lowercase(),
            false => '_',
        })
        .collect();
    let mut name = format!("rowtrail_{cleaned}");
    name.truncate(63);
    name
}

/// How many times `--once` retries a lost connection before giving up.
const ONCE_RETRIES: u32 = 5;

/// Runs capture until `stop` becomes true (after the current transaction), or with `once` until
/// the server's position at start is stored. Transient connection failures after streaming began
/// are retried with backoff; everything else is returned.
pub async fn run(
    options: CaptureOptions,
    observer: Observer,
    mut stop: watch::Receiver<bool>,
) -> Result<CaptureSummary, CaptureError> {
    let started = Instant::now();
    validate_slot_name(&options.slot)?;
    let tls = tls::client_config(&options.source.tls)?;
    let sql = SqlSession::connect(&options.source, tls.clone()).await?;
    let facts = catalog::server_facts(&sql).await?;
    require_capture_possible(&facts)?;
    let encoding = ServerEncoding::from_name(&facts.encoding);
    let mut walsender =
        WalSender::connect(&options.source, tls.clone(), encoding.usual_reception()).await?;
    let identity = walsender.identify_system().await?;
    observer(CaptureEvent::Connected {
        source: options.source.to_string(),
        server_version: facts.version.clone(),
    });
    let source = SourceIdentity {
        system_identifier: identity.system_id.clone(),
        database: facts.database.clone(),
        display: options.source.to_string(),
        server_version: facts.version.clone(),
    };
    let cache_path = options.cache.clone();
    let protection = options.protection.clone();
    let mut writer = tokio::task::spawn_blocking(move || {
        let mut writer = CacheWriter::open(&cache_path, &source)?;
        writer.protect(&protection.rules, protection.key)?;
        Ok::<_, StoreError>(writer)
    })
    .await
    .map_err(|_| CaptureError::WriterGone)??;
    if writer.import_state()?.is_some() {
        return Err(StoreError::ImportedCache {
            path: options.cache.clone(),
        }
        .into());
    }
    let state = writer.capture_state()?;
    if let Some(state) = &state
        && state.slot != options.slot
    {
        return Err(StoreError::OtherSlot {
            path: options.cache.clone(),
            cached: state.slot.clone(),
            given: options.slot.clone(),
        }
        .into());
    }
    if let Some(age) = options.retain {
        // The first prune runs once the writer has checked that the cache is this source's and
        // this slot's, and before streaming: on a large cache, or one made before incremental
        // vacuum (rewritten once), it may take minutes, which the hourly prunes between
        // transactions must not. The writer commits what it set up first (its rules), so the
        // prune's connection has the file to itself.
        writer.flush()?;
        let path = options.cache.clone();
        let observer = observer.clone();
        let writer_back = tokio::task::spawn_blocking(move || {
            prune_for_retain(&path, age, crate::retention::Rewrite::Allowed, &observer);
            writer
        })
        .await
        .map_err(|_| CaptureError::WriterGone)?;
        writer = writer_back;
    }

    // Two captures of one database may start together: one sets up at a time, so neither
    // trips over the publication or schema log the other is creating. The lock goes with the
    // session if setup fails.
    sql.execute(
        "waiting for another capture's setup",
        "SELECT pg_advisory_lock(hashtext('rowtrail setup'))",
    )
    .await?;
    let publication = setup::ensure_publication(&sql, &options, &facts, &observer).await?;
    let captured: Vec<catalog::TableInfo> = match &options.tables {
        Some(requested) => publication
            .tables
            .iter()
            .filter(|table| in_request(table, requested))
            .cloned()
            .collect(),
        None => publication.tables.clone(),
    };
    let scope: Option<HashSet<Oid>> = options
        .tables
        .as_ref()
        .map(|_| captured.iter().map(|table| table.oid).collect());

    let schema_log = ensure_schema_log(&sql, &facts, &observer).await?;
    sql.execute(
        "ending the setup",
        "SELECT pg_advisory_unlock(hashtext('rowtrail setup'))",
    )
    .await?;
    let mut slot = catalog::slot(&sql, &options.slot).await?;
    if let Some(found) = &slot {
        check_slot(&options.slot, found, &facts.database)?;
        if found.active_pid.is_some() {
            wait_for_slot(&sql, &options.slot).await?;
            slot = catalog::slot(&sql, &options.slot).await?;
        }
    }
    let start = match (state, slot) {
        (Some(state), slot)
            if state.baseline == BaselineState::Complete
                && slot.as_ref().is_none_or(|slot| slot.invalidated) =>
        {
            let lost = match slot.is_some() {
                true => CaptureError::SlotInvalidated {
                    slot: options.slot.clone(),
                    position: state.position,
                },
                false => CaptureError::SlotMissing {
                    slot: options.slot.clone(),
                    position: state.position,
                },
            };
            if !options.new_baseline {
                return Err(lost);
            }
            // History has a gap from the last stored position: a new slot and a new baseline.
            if slot.is_some() {
                drop_slot(&sql, &options.slot).await?;
                observer(CaptureEvent::StaleSlotDropped {
                    name: options.slot.clone(),
                });
            }
            observer(CaptureEvent::Warning(format!(
                "{lost}: taking a new baseline (--new-baseline); the history has a gap from {}",
                state.position
            )));
            writer.set_capture_state(&CaptureState {
                baseline: BaselineState::Pending,
                ..state
            })?;
            Some(())
        }
        (Some(state), Some(slot)) if state.baseline == BaselineState::Complete => {
            if let Some(confirmed) = slot.confirmed_flush
                && confirmed > state.position
            {
                return Err(CaptureError::CacheBehindSlot {
                    slot: options.slot.clone(),
                    slot_position: confirmed,
                    cache_position: state.position,
                });
            }
            None
        }
        (Some(_pending), existing) => {
            // A capture died during its baseline: the slot (if it got made) is ours, start over.
            if existing.is_some() {
                drop_slot(&sql, &options.slot).await?;
                observer(CaptureEvent::StaleSlotDropped {
                    name: options.slot.clone(),
                });
            }
            writer.discard_incomplete_baseline()?;
            Some(())
        }
        (None, Some(_)) => {
            return Err(CaptureError::SlotWithoutCache {
                slot: options.slot.clone(),
            });
        }
        (None, None) => Some(()),
    };

    let upkeep = options
        .retain
        .map(|age| retention_upkeep(age, observer.clone()));
    let mut schemas = SchemaMemory::new(writer.known_schemas()?);
    // After a new baseline, streaming starts at the slot's consistent point.
    let mut resume_from = Lsn::ZERO;
    let mut writer = match start {
        None => {
            let mut handle = WriterHandle::spawn(writer, upkeep)?;
            match (schema_log, schemas.since()) {
                (SchemaLogState::Current, None) => {
                    // Installed before (by another capture): recorded from this mark on.
                    schema_log::mark_tracking(&sql).await?;
                }
                (SchemaLogState::Current, Some(_)) => {}
                (_, Some(_)) => {
                    // Removed or disabled since: what was recorded still stands, nothing after.
                    schemas.forget_since();
                    handle.push(WriteCommand::SchemaLogSince(None)).await?;
                    handle.send().await?;
                }
                (_, None) => {}
            }
            handle
        }
        Some(()) => {
            // A cache that already holds history gets a new baseline after a gap from where its
            // history ends.
            let gap_from = writer.history_end()?;
            writer.set_capture_state(&CaptureState {
                slot: options.slot.clone(),
                publication: options.publication.clone(),
                baseline: BaselineState::Pending,
                position: gap_from.unwrap_or(Lsn::ZERO),
            })?;
            let created = match walsender.create_slot_with_snapshot(&options.slot).await {
                Ok(created) => created,
                Err(error) => {
                    // The slot is not ours after all (another capture may have just made it).
                    writer.discard_incomplete_baseline()?;
                    return Err(error);
                }
            };
            observer(CaptureEvent::SlotCreated {
                name: options.slot.clone(),
                consistent_point: created.consistent_point,
            });
            let mut handle = WriterHandle::spawn(writer, upkeep)?;
            // Raw text of encodings other than UTF8 and SQL_ASCII is converted on a connection
            // of its own: the snapshot's transaction must not see the errors of failed tries.
            let transcoder = match &encoding {
                ServerEncoding::Other(_) => {
                    Some(SqlSession::connect(&options.source, tls.clone()).await?)
                }
                ServerEncoding::Utf8 | ServerEncoding::SqlAscii => None,
            };
            let baseline = setup::take_baseline(
                &sql,
                &created,
                &captured,
                &facts,
                &mut handle,
                &observer,
                (transcoder.as_ref(), gap_from),
            )
            .await?;
            resume_from = created.consistent_point;
            if schema_log == SchemaLogState::Current {
                // The log was in place when the slot was made: every schema change since is in it.
                schemas = SchemaMemory::recording_from(created.consistent_point, baseline);
                handle
                    .push(WriteCommand::SchemaLogSince(Some(created.consistent_point)))
                    .await?;
                handle.send().await?;
            }
            handle
        }
    };

    let once_target = match options.once {
        true => Some(catalog::once_target(&sql).await?),
        false => None,
    };
    let connections = Connections {
        sql,
        walsender,
        tls,
    };
    let captured_oids: HashSet<Oid> = captured.iter().map(|table| table.oid).collect();
    let plan = StreamPlan {
        options: &options,
        scope: scope.as_ref(),
        facts: &facts,
        encoding,
        resume_from,
        once_target,
        all_tables: publication.all_tables && options.tables.is_none(),
        captured: &captured_oids,
    };
    // Transactions a capture that died was holding until their commit: the server sends them again.
    streamed::remove_leftovers(&options.cache);
    let streaming_from = Instant::now();
    stream_with_retries(
        &plan,
        connections,
        &mut writer,
        &mut schemas,
        &observer,
        &mut stop,
    )
    .await?;
    let finishing_from = Instant::now();
    let progress = writer.finish().await?;
    let timings = CaptureTimings {
        preparing: streaming_from - started,
        streaming: finishing_from - streaming_from,
        finishing: finishing_from.elapsed(),
    };
    observer(CaptureEvent::Stopped {
        position: progress.stored,
        changes: progress.changes,
        transactions: progress.transactions,
    });
    Ok(CaptureSummary {
        position: progress.stored,
        changes: progress.changes,
        transactions: progress.transactions,
        timings,
    })
}

/// What streaming needs to know, fixed for the whole run.
struct StreamPlan<'a> {
    options: &'a CaptureOptions,
    scope: Option<&'a HashSet<Oid>>,
    facts: &'a catalog::ServerFacts,
    encoding: ServerEncoding,
    /// After a new baseline, streaming starts at the slot's consistent point.
    resume_from: Lsn,
    once_target: Option<Lsn>,
    all_tables: bool,
    captured: &'a HashSet<Oid>,
}

/// Streams sessions until stopped or the `--once` target is stored, reconnecting after transient
/// failures with a backoff that only starts over after a session stored something, and reading a
/// transaction the server cannot convert to UTF-8 as raw bytes (see `encoding`).
async fn stream_with_retries(
    plan: &StreamPlan<'_>,
    mut connections: Connections,
    writer: &mut WriterHandle,
    schemas: &mut SchemaMemory,
    observer: &Observer,
    stop: &mut watch::Receiver<bool>,
) -> Result<(), CaptureError> {
    let options = plan.options;
    let mut reception = plan.encoding.usual_reception();
    // While a transaction the server could not convert is read raw: its commit position.
    let mut raw_until: Option<Lsn> = None;
    let mut attempt = 0u32;
    loop {
        let start = writer.progress().stored.max(plan.resume_from);
        let session_plan = SessionPlan {
            slot: &options.slot,
            publication: &options.publication,
            start,
            target: match (plan.once_target, raw_until) {
                (Some(once), Some(until)) => Some(once.min(until)),
                (once, until) => once.or(until),
            },
            scope: plan.scope,
            server_version_num: plan.facts.version_num,
            encoding: &plan.encoding,
            reception,
            all_tables: plan.all_tables,
            captured: plan.captured,
            stream_beside: (options.stream_in_progress
                && stream::can_stream_in_progress(plan.facts.version_num, &plan.encoding))
            .then_some(options.cache.as_path()),
        };
        let mut report = SessionReport::default();
        let outcome = stream::run_session(
            &mut connections,
            writer,
            observer,
            &session_plan,
            stop,
            schemas,
            &mut report,
        )
        .await;
        let failure = match outcome {
            Ok(SessionEnd::Stopped) => return Ok(()),
            Ok(SessionEnd::ReachedTarget) => match raw_until {
                Some(until) if plan.once_target.is_none_or(|once| until < once) => {
                    // The transaction is stored: let the server convert again.
                    raw_until = None;
                    reception = plan.encoding.usual_reception();
                    None
                }
                _ => return Ok(()),
            },
            Err(error)
                if encoding::is_untranslatable(&error) && reception == Reception::Converted =>
            {
                let until = report.open_commit.unwrap_or(Lsn(start.0 + 1));
                observer(CaptureEvent::Warning(format!(
                    "the transaction committing at {until} holds text with no UTF-8 equivalent in encoding {}; reading it as the server stores it ({error})",
                    plan.facts.encoding
                )));
                raw_until = Some(until);
                reception = Reception::Raw;
                None
            }
            Err(error) if error.is_transient() => Some(error),
            Err(error) => return Err(slot_lost_or(error, &connections.sql, options, writer).await),
        };
        writer.push(WriteCommand::Rollback).await?;
        if let Some(error) = failure {
            // Only a session that got something stored starts the backoff over; one that fails
            // right after every reconnect keeps doubling it (and --once gives up).
            if writer.progress().stored > start {
                attempt = 0;
            }
            if !wait_to_retry(options, &mut attempt, error, observer, stop).await? {
                return Ok(());
            }
        }
        loop {
            match reconnect(options, connections.tls.clone(), writer, reception).await {
                Ok((sql, walsender)) => {
                    connections.sql = sql;
                    connections.walsender = walsender;
                    break;
                }
                Err(error) if error.is_transient() => {
                    if !wait_to_retry(options, &mut attempt, error, observer, stop).await? {
                        return Ok(());
                    }
                }
                Err(error) => return Err(error),
            }
        }
    }
}

/// A slot the server invalidated fails to start with an error of its own (SQLSTATE 55000); say
/// what it means for the history when that is what happened.
async fn slot_lost_or(
    error: CaptureError,
    sql: &SqlSession,
    options: &CaptureOptions,
    writer: &WriterHandle,
) -> CaptureError {
    let invalidated = matches!(&error, CaptureError::Server { error: server, .. } if server.code == "55000")
        && matches!(catalog::slot(sql, &options.slot).await, Ok(Some(slot)) if slot.invalidated);
    match invalidated {
        true => CaptureError::SlotInvalidated {
            slot: options.slot.clone(),
            position: writer.progress().stored,
        },
        false => error,
    }
}

/// Counts a failed attempt and waits out its backoff. Returns the error once `--once` has used
/// up its retries, `Ok(false)` when stop was requested meanwhile.
async fn wait_to_retry(
    options: &CaptureOptions,
    attempt: &mut u32,
    error: CaptureError,
    observer: &Observer,
    stop: &mut watch::Receiver<bool>,
) -> Result<bool, CaptureError> {
    *attempt += 1;
    if options.once && *attempt > ONCE_RETRIES {
        return Err(error);
    }
    let delay = stream::backoff(*attempt);
    observer(CaptureEvent::Reconnecting {
        attempt: *attempt,
        delay,
        error: error.to_string(),
    });
    tokio::select! {
        () = tokio::time::sleep(delay) => Ok(true),
        () = stream::stop_requested(stop) => Ok(false),
    }
}

/// Makes sure the source's schema log is in place when this role may install it (a superuser),
/// and says what it costs when it is not.
async fn ensure_schema_log(
    sql: &SqlSession,
    facts: &catalog::ServerFacts,
    observer: &Observer,
) -> Result<SchemaLogState, CaptureError> {
    let state = schema_log::state(sql).await?;
    if state == SchemaLogState::Current {
        return Ok(state);
    }
    if facts.is_superuser {
        schema_log::install(sql, facts.version_num).await?;
        observer(CaptureEvent::SchemaLogInstalled);
        return Ok(SchemaLogState::Current);
    }
    observer(CaptureEvent::Warning(format!(
        "schema changes are not recorded as they happen (rowtrail's schema log is {}; installing it takes a superuser): keys of REPLICA IDENTITY FULL tables are read from the catalog when capture reads their changes, which may be later, and a dropped table is noticed only when its name comes back; run capture once as a superuser, or see rowtrail doctor",
        match state {
            SchemaLogState::Missing => "not installed",
            _ => "outdated or disabled",
        }
    )));
    Ok(state)
}

/// With `--tables`, a published table is captured when it was named, or is a partition of a
/// named partitioned table (the publication sends partitions under their own names).
fn in_request(table: &catalog::TableInfo, requested: &[TableName]) -> bool {
    requested.contains(&table.name)
        || table
            .parent
            .as_ref()
            .is_some_and(|parent| requested.contains(parent))
}

fn require_capture_possible(facts: &catalog::ServerFacts) -> Result<(), CaptureError> {
    if facts.version_num < 100_000 {
        return Err(CaptureError::NotReady(format!(
            "PostgreSQL {} has no logical replication: rowtrail needs PostgreSQL 10 or newer",
            facts.version
        )));
    }
    if facts.wal_level != "logical" {
        return Err(CaptureError::NotReady(format!(
            "wal_level is '{}'; logical capture needs 'logical': run ALTER SYSTEM SET wal_level = logical; then restart PostgreSQL",
            facts.wal_level
        )));
    }
    if !facts.may_replicate() {
        return Err(CaptureError::NotReady(format!(
            "user {} may not use replication: run ALTER ROLE {} REPLICATION; as a superuser (Amazon RDS: GRANT rds_replication TO {};)",
            facts.user,
            crate::model::quote_ident(&facts.user),
            crate::model::quote_ident(&facts.user)
        )));
    }
    Ok(())
}

fn check_slot(name: &str, slot: &catalog::SlotInfo, database: &str) -> Result<(), CaptureError> {
    if slot.slot_type != "logical" || slot.plugin.as_deref() != Some("pgoutput") {
        return Err(CaptureError::SlotPlugin {
            slot: name.to_owned(),
            plugin: slot
                .plugin
                .clone()
                .unwrap_or_else(|| format!("none ({} slot)", slot.slot_type)),
        });
    }
    if let Some(slot_database) = &slot.database
        && slot_database != database
    {
        return Err(CaptureError::NotReady(format!(
            "replication slot '{name}' belongs to database {slot_database}, not {database}: choose another --slot"
        )));
    }
    Ok(())
}

async fn drop_slot(sql: &SqlSession, name: &str) -> Result<(), CaptureError> {
    sql.query(
        "dropping the replication slot",
        "SELECT pg_drop_replication_slot($1)",
        &[&name],
    )
    .await
    .map(|_| ())
}

async fn reconnect(
    options: &CaptureOptions,
    tls: Option<Arc<rustls::ClientConfig>>,
    writer: &WriterHandle,
    reception: Reception,
) -> Result<(SqlSession, WalSender), CaptureError> {
    let sql = SqlSession::connect(&options.source, tls.clone()).await?;
    wait_for_slot(&sql, &options.slot).await?;
    let slot = catalog::slot(&sql, &options.slot).await?;
    let stored = writer.progress().stored;
    match slot {
        None => {
            return Err(CaptureError::SlotMissing {
                slot: options.slot.clone(),
                position: stored,
            });
        }
        Some(slot) if slot.invalidated => {
            return Err(CaptureError::SlotInvalidated {
                slot: options.slot.clone(),
                position: stored,
            });
        }
        Some(slot) => {
            if let Some(confirmed) = slot.confirmed_flush
                && confirmed > stored
            {
                return Err(CaptureError::CacheBehindSlot {
                    slot: options.slot.clone(),
                    slot_position: confirmed,
                    cache_position: stored,
                });
            }
        }
    }
    let walsender = WalSender::connect(&options.source, tls, reception).await?;
    Ok((sql, walsender))
}

/// Waits out a slot that another connection still holds, up to a limit: a capture that was just
/// killed keeps its slot until the server notices the connection is gone.
async fn wait_for_slot(sql: &SqlSession, name: &str) -> Result<(), CaptureError> {
    let started = Instant::now();
    loop {
        match catalog::slot(sql, name).await? {
            Some(slot) if slot.active_pid.is_some() => {
                if started.elapsed() > stream::SLOT_BUSY_PATIENCE {
                    return Err(CaptureError::Server {
                        action: format!("taking replication slot '{name}'"),
                        error: ServerError {
                            code: "55006".into(),
                            message: format!(
                                "replication slot \"{name}\" is active for PID {}",
                                slot.active_pid.unwrap_or_default()
                            ),
                            detail: None,
                            hint: None,
                        },
                    });
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            _ => return Ok(()),
        }
    }
}

/// Runs an SQL script (a restore script) on the source as it is; the script brings its own
/// transaction. An error leaves nothing applied: the open transaction ends with the connection.
pub async fn run_script(spec: &ConnectionSpec, script: &str) -> Result<(), CaptureError> {
    let tls = tls::client_config(&spec.tls)?;
    let sql = SqlSession::connect(spec, tls).await?;
    sql.execute("running the script", script).await
}

/// What teardown removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TeardownReport {
    pub slot_dropped: bool,
    /// `None` when no publication was named.
    pub publication_dropped: Option<bool>,
    pub schema_log: SchemaLogTeardown,
}

/// What became of the schema log (see `schema_log`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SchemaLogTeardown {
    Absent,
    Removed,
    /// Other logical slots of the database may still read it.
    KeptForOtherSlots,
    /// It is no longer needed, but removing it takes a superuser.
    NeedsSuperuser,
}

/// Drops the replication slot (refusing while a capture uses it) and, if named, the publication.
pub async fn teardown(
    spec: &ConnectionSpec,
    slot: &str,
    publication: Option<&str>,
) -> Result<TeardownReport, CaptureError> {
    validate_slot_name(slot)?;
    let tls = tls::client_config(&spec.tls)?;
    let sql = SqlSession::connect(spec, tls).await?;
    let slot_dropped = match catalog::slot(&sql, slot).await? {
        Some(info) => {
            if let Some(pid) = info.active_pid {
                return Err(CaptureError::NotReady(format!(
                    "replication slot '{slot}' is in use by a running capture (server process {pid}): stop that capture first"
                )));
            }
            drop_slot(&sql, slot).await?;
            true
        }
        None => false,
    };
    let publication_dropped = match publication {
        Some(name) => {
            let exists = catalog::publication(&sql, name).await?.is_some();
            if exists {
                sql.execute(
                    "dropping the publication",
                    &format!("DROP PUBLICATION {}", crate::model::quote_ident(name)),
                )
                .await?;
            }
            Some(exists)
        }
        None => None,
    };
    let schema_log = remove_schema_log_if_unused(&sql).await?;
    Ok(TeardownReport {
        slot_dropped,
        publication_dropped,
        schema_log,
    })
}

/// Removes the schema log once no logical slot of this database is left to read it; a role that
/// may not is told how.
async fn remove_schema_log_if_unused(sql: &SqlSession) -> Result<SchemaLogTeardown, CaptureError> {
    if schema_log::state(sql).await? == SchemaLogState::Missing {
        return Ok(SchemaLogTeardown::Absent);
    }
    let remaining: i64 = sql
        .query_one(
            "counting replication slots",
            "SELECT count(*) FROM pg_replication_slots
             WHERE slot_type = 'logical' AND database = current_database()",
            &[],
        )
        .await?
        .get(0);
    if remaining > 0 {
        return Ok(SchemaLogTeardown::KeptForOtherSlots);
    }
    let facts = catalog::server_facts(sql).await?;
    match facts.is_superuser {
        true => {
            schema_log::remove(sql).await?;
            Ok(SchemaLogTeardown::Removed)
        }
        false => Ok(SchemaLogTeardown::NeedsSuperuser),
    }
}
