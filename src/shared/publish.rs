//! Copies the journal (a cache file) into the shared store, whole transactions at a time, each
//! batch in one PostgreSQL transaction with the advance of `rowtrail.publish_state`.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use chrono::{DateTime, Datelike, Utc};
use tokio_postgres::Transaction;
use tokio_postgres::types::ToSql;

use crate::capture::conninfo::ConnectionSpec;
use crate::capture::session::SqlSession;
use crate::capture::{CaptureError, tls};
use crate::store::SourceIdentity;
use crate::store::journal::{Journal, JournalBatch, JournalCursor};

use super::SharedError;
use super::layout::{self, FORMAT_VERSION, SCHEMA};

/// Changes per store transaction (a source transaction larger than this goes whole).
pub const BATCH_CHANGES: usize = 20_000;

/// Rows per `INSERT … SELECT FROM unnest(…)` statement.
const ROWS_PER_STATEMENT: usize = 5_000;

/// What one call published.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Published {
    pub transactions: u64,
    pub changes: u64,
    /// The store holds everything the journal held when the call began.
    pub caught_up: bool,
}

/// Publishes one journal into one store.
pub struct Publisher {
    journal: Journal,
    session: SqlSession,
    /// The store, for messages: `host:port/database`.
    store: String,
}

impl Publisher {
    /// Opens the journal and connects to the store, creating the store's schema when the database
    /// has none.
    pub async fn connect(spec: &ConnectionSpec, journal: &Path) -> Result<Self, SharedError> {
        let journal = Journal::open(journal)?;
        let tls = tls::client_config(&spec.tls).map_err(CaptureError::from)?;
        let session = SqlSession::connect(spec, tls).await?;
        let store = format!("{}/{}", session.endpoint, spec.dbname);
        let mut publisher = Self {
            journal,
            session,
            store,
        };
        publisher.refuse_the_source_itself().await?;
        publisher.ensure_layout().await?;
        Ok(publisher)
    }

    /// Where the store is, for messages.
    pub fn store(&self) -> &str {
        &self.store
    }

    /// A store inside the database it records would record its own writes, without end.
    async fn refuse_the_source_itself(&self) -> Result<(), SharedError> {
        let source = self.journal.source()?;
        let database: String = self
            .session
            .query_one("looking at the store", "SELECT current_database()", &[])
            .await?
            .get(0);
        // Another role may not read the cluster's identity: then the database's name decides
        // only together with it, so nothing is refused on a guess.
        let system = self
            .session
            .query_one(
                "looking at the store",
                "SELECT system_identifier::text FROM pg_control_system()",
                &[],
            )
            .await
            .map(|row| row.get::<_, String>(0))
            .ok();
        if database == source.database && system.as_deref() == Some(&source.system_identifier) {
            return Err(SharedError::SameDatabase {
                store: self.store.clone(),
            });
        }
        Ok(())
    }

    async fn ensure_layout(&mut self) -> Result<(), SharedError> {
        let endpoint = self.session.endpoint.clone();
        let sql = |action: &'static str| {
            let endpoint = endpoint.clone();
            move |error| CaptureError::sql(action, &endpoint, error)
        };
        let tx = self
            .session
            .client
            .transaction()
            .await
            .map_err(sql("preparing the store"))?;
        // One creator at a time; the lock ends with the transaction.
        tx.execute(
            "SELECT pg_advisory_xact_lock(hashtext('rowtrail store'))",
            &[],
        )
        .await
        .map_err(sql("preparing the store"))?;
        let schema_exists = tx
            .query_opt("SELECT 1 FROM pg_namespace WHERE nspname = $1", &[&SCHEMA])
            .await
            .map_err(sql("looking for the store"))?
            .is_some();
        if !schema_exists {
            tx.batch_execute(layout::CREATE)
                .await
                .map_err(sql("creating the store's tables"))?;
            tx.execute(
                "INSERT INTO rowtrail.publish_state VALUES (1, 0, 0, 0, '', now())",
                &[],
            )
            .await
            .map_err(sql("creating the store's tables"))?;
        } else {
            let version: Option<i32> = tx
                .query_opt(
                    "SELECT format_version FROM rowtrail.store_info
                     WHERE to_regclass('rowtrail.store_info') IS NOT NULL AND id = 1",
                    &[],
                )
                .await
                .ok()
                .flatten()
                .map(|row| row.get(0));
            match version {
                None => {
                    return Err(SharedError::NotAStore {
                        store: self.store.clone(),
                        schema: SCHEMA.to_owned(),
                    });
                }
                Some(version) if version > FORMAT_VERSION => {
                    return Err(SharedError::TooNew {
                        store: self.store.clone(),
                        version,
                        supported: FORMAT_VERSION,
                    });
                }
                Some(_) => {}
            }
        }
        // Added after the first stores were made: created in any store that lacks it.
        tx.batch_execute(layout::COLUMN_RULES)
            .await
            .map_err(sql("creating the store's tables"))?;
        tx.batch_execute(layout::BEMI_VIEW)
            .await
            .map_err(sql("creating the Bemi-layout view"))?;
        tx.commit().await.map_err(sql("preparing the store"))?;
        Ok(())
    }

    /// Publishes until the store holds everything the journal held when it began.
    pub async fn publish_all(&mut self) -> Result<Published, SharedError> {
        let mut total = Published::default();
        loop {
            let batch = self.publish_batch(BATCH_CHANGES).await?;
            total.transactions += batch.transactions;
            total.changes += batch.changes;
            if batch.caught_up {
                total.caught_up = true;
                return Ok(total);
            }
        }
    }

    /// Publishes the next whole transactions, about `max_changes` changes, in one store
    /// transaction.
    pub async fn publish_batch(&mut self, max_changes: usize) -> Result<Published, SharedError> {
        let endpoint = self.session.endpoint.clone();
        let sql = |action: &'static str| {
            let endpoint = endpoint.clone();
            move |error| CaptureError::sql(action, &endpoint, error)
        };
        if self.journal.baseline_pending()? {
            return Err(SharedError::BaselinePending {
                journal: self.journal.path().display().to_string(),
            });
        }
        let tx = self
            .session
            .client
            .transaction()
            .await
            .map_err(sql("starting to publish"))?;
        // The state row's lock keeps a second publisher out until this one commits.
        let state = tx
            .query_one(
                "SELECT through_tx, through_commit_lsn, journal,
                        (SELECT coalesce(max(id), 0) FROM rowtrail.relations),
                        (SELECT coalesce(max(id), 0) FROM rowtrail.contexts)
                 FROM rowtrail.publish_state WHERE id = 1 FOR UPDATE",
                &[],
            )
            .await
            .map_err(sql("reading where the store stands"))?;
        let cursor = JournalCursor {
            through_tx: state.get(0),
            through_relation: state.get(3),
            through_context: state.get(4),
        };
        let through_commit_lsn: i64 = state.get(1);
        let fed_by: String = state.get(2);
        let source = self.journal.source()?;
        check_source(&tx, &self.store, &endpoint, self.journal.path(), &source).await?;
        if cursor.through_tx > 0
            && self.journal.commit_lsn_of(cursor.through_tx)? != Some(through_commit_lsn)
        {
            return Err(SharedError::OtherJournal {
                store: self.store.clone(),
                journal: self.journal.path().display().to_string(),
                tx: cursor.through_tx,
                fed_by,
            });
        }
        let batch = self.journal.batch(cursor, max_changes)?;
        let published = Published {
            transactions: batch.transactions.len() as u64,
            changes: batch.changes.len() as u64,
            caught_up: batch
                .transactions
                .last()
                .map_or(cursor.through_tx, |last| last.id)
                >= batch.newest_tx,
        };
        write_batch(&tx, &batch, published.caught_up)
            .await
            .map_err(sql("publishing changes"))?;
        let last = batch.transactions.last();
        tx.execute(
            "UPDATE rowtrail.publish_state
             SET through_tx = $1, through_change = greatest(through_change, $2),
                 through_commit_lsn = $3, journal = $4, published_at = now()
             WHERE id = 1",
            &[
                &last.map_or(cursor.through_tx, |row| row.id),
                &batch.changes.last().map_or(0, |row| row.id),
                &last.map_or(through_commit_lsn, |row| row.commit_lsn),
                &self.journal.path().display().to_string(),
            ],
        )
        .await
        .map_err(sql("recording what was published"))?;
        tx.commit().await.map_err(sql("publishing changes"))?;
        Ok(published)
    }
}

/// Refuses a store that holds another database's history; records the source in a new one.
async fn check_source(
    tx: &Transaction<'_>,
    store: &str,
    endpoint: &str,
    journal: &Path,
    source: &SourceIdentity,
) -> Result<(), SharedError> {
    let stored = tx
        .query_opt(
            "SELECT system_identifier, database, display FROM rowtrail.source WHERE id = 1",
            &[],
        )
        .await
        .map_err(|error| CaptureError::sql("reading the store's source", endpoint, error))?;
    match stored {
        Some(row) => {
            let (system, database, display): (String, String, String) =
                (row.get(0), row.get(1), row.get(2));
            if system != source.system_identifier || database != source.database {
                return Err(SharedError::OtherSource {
                    store: store.to_owned(),
                    stored: format!(
                        "database '{database}' of PostgreSQL system {system} ({display})"
                    ),
                    journal: journal.display().to_string(),
                    given: format!(
                        "database '{}' of PostgreSQL system {} ({})",
                        source.database, source.system_identifier, source.display
                    ),
                });
            }
        }
        None => {
            tx.execute(
                    "INSERT INTO rowtrail.source
                         (id, kind, system_identifier, database, display, server_version, created_at)
                     VALUES (1, 'postgres', $1, $2, $3, $4, $5)",
                    &[
                        &source.system_identifier,
                        &source.database,
                        &source.display,
                        &source.server_version,
                        &Utc::now().to_rfc3339(),
                    ],
                )
                .await
                .map_err(|error| {
                    CaptureError::sql("recording the store's source", endpoint, error)
                })?;
        }
    }
    Ok(())
}

/// The months (year, month) that the changes' commit times fall in.
fn months_of(batch: &JournalBatch) -> BTreeSet<(i32, u32)> {
    batch
        .transactions
        .iter()
        .filter_map(|tx| DateTime::<Utc>::from_timestamp_micros(tx.committed_at))
        .map(|time| (time.year(), time.month()))
        .collect()
}

async fn write_batch(
    tx: &Transaction<'_>,
    batch: &JournalBatch,
    caught_up: bool,
) -> Result<(), tokio_postgres::Error> {
    // Tables: their names and drops follow the journal; their counts are the store's own.
    let newest_change = batch.changes.last().map(|change| change.id);
    for chunk in batch.tables.chunks(ROWS_PER_STATEMENT) {
        let ids: Vec<i64> = chunk.iter().map(|row| row.id).collect();
        let oids: Vec<i64> = chunk.iter().map(|row| row.oid).collect();
        let schemas: Vec<&str> = chunk.iter().map(|row| row.schema_name.as_str()).collect();
        let names: Vec<&str> = chunk.iter().map(|row| row.name.as_str()).collect();
        // A drop is recorded once the change that says so is in the store.
        let dropped: Vec<Option<i64>> = chunk
            .iter()
            .map(|row| row.dropped_change)
            .map(|dropped| dropped.filter(|id| newest_change.is_some_and(|newest| *id <= newest)))
            .collect();
        tx.execute(
            "INSERT INTO rowtrail.tables (id, oid, schema_name, name, dropped_change)
             SELECT * FROM unnest($1::int8[], $2::int8[], $3::text[], $4::text[], $5::int8[])
             ON CONFLICT (id) DO UPDATE SET oid = excluded.oid, schema_name = excluded.schema_name,
                 name = excluded.name,
                 dropped_change = coalesce(excluded.dropped_change, rowtrail.tables.dropped_change)",
            &[&ids, &oids, &schemas, &names, &dropped],
        )
        .await?;
    }
    for chunk in batch.relations.chunks(ROWS_PER_STATEMENT) {
        let ids: Vec<i64> = chunk.iter().map(|row| row.id).collect();
        let tables: Vec<i64> = chunk.iter().map(|row| row.table_id).collect();
        let definitions: Vec<&str> = chunk.iter().map(|row| row.definition.as_str()).collect();
        let lsns: Vec<i64> = chunk.iter().map(|row| row.first_lsn).collect();
        tx.execute(
            "INSERT INTO rowtrail.relations (id, table_id, definition, first_lsn)
             SELECT * FROM unnest($1::int8[], $2::int8[], $3::text[], $4::int8[])",
            &[&ids, &tables, &definitions, &lsns],
        )
        .await?;
    }
    for chunk in batch.contexts.chunks(ROWS_PER_STATEMENT) {
        let ids: Vec<i64> = chunk.iter().map(|(id, _)| *id).collect();
        let bodies: Vec<&str> = chunk.iter().map(|(_, body)| body.as_str()).collect();
        tx.execute(
            "INSERT INTO rowtrail.contexts (id, body) SELECT * FROM unnest($1::int8[], $2::text[])",
            &[&ids, &bodies],
        )
        .await?;
    }
    for (year, month) in months_of(batch) {
        tx.batch_execute(&layout::create_partition(year, month))
            .await?;
    }
    for chunk in batch.transactions.chunks(ROWS_PER_STATEMENT) {
        let column = |get: fn(&crate::store::journal::TransactionRow) -> i64| -> Vec<i64> {
            chunk.iter().map(get).collect()
        };
        let ids = column(|row| row.id);
        let xids: Vec<Option<i64>> = chunk.iter().map(|row| row.xid).collect();
        let commits = column(|row| row.commit_lsn);
        let ends = column(|row| row.end_lsn);
        let times = column(|row| row.committed_at);
        let counts = column(|row| row.change_count);
        let contexts: Vec<Option<i64>> = chunk.iter().map(|row| row.context_id).collect();
        let origins: Vec<Option<&str>> = chunk.iter().map(|row| row.origin.as_deref()).collect();
        let baselines = column(|row| row.is_baseline);
        tx.execute(
            "INSERT INTO rowtrail.transactions
                 (id, xid, commit_lsn, end_lsn, committed_at, change_count, context_id, origin, is_baseline)
             SELECT * FROM unnest($1::int8[], $2::int8[], $3::int8[], $4::int8[], $5::int8[],
                                  $6::int8[], $7::int8[], $8::text[], $9::int8[])",
            &[
                &ids, &xids, &commits, &ends, &times, &counts, &contexts, &origins, &baselines,
            ],
        )
        .await?;
    }
    for chunk in batch.changes.chunks(ROWS_PER_STATEMENT) {
        let ids: Vec<i64> = chunk.iter().map(|row| row.id).collect();
        let txs: Vec<i64> = chunk.iter().map(|row| row.tx_id).collect();
        let lsns: Vec<i64> = chunk.iter().map(|row| row.lsn).collect();
        let tables: Vec<i64> = chunk.iter().map(|row| row.table_id).collect();
        let relations: Vec<i64> = chunk.iter().map(|row| row.relation_id).collect();
        let ops: Vec<&str> = chunk.iter().map(|row| row.op.as_str()).collect();
        let keys: Vec<&str> = chunk.iter().map(|row| row.key.as_str()).collect();
        let old_keys: Vec<Option<&str>> = chunk.iter().map(|row| row.old_key.as_deref()).collect();
        let befores: Vec<Option<&str>> = chunk.iter().map(|row| row.before.as_deref()).collect();
        let afters: Vec<Option<&str>> = chunk.iter().map(|row| row.after.as_deref()).collect();
        let unavailable: Vec<Option<&str>> =
            chunk.iter().map(|row| row.unavailable.as_deref()).collect();
        let contexts: Vec<Option<i64>> = chunk.iter().map(|row| row.context_id).collect();
        let times: Vec<i64> = chunk.iter().map(|row| row.committed_at).collect();
        let params: [&(dyn ToSql + Sync); 13] = [
            &ids,
            &txs,
            &lsns,
            &tables,
            &relations,
            &ops,
            &keys,
            &old_keys,
            &befores,
            &afters,
            &unavailable,
            &contexts,
            &times,
        ];
        tx.execute(
            "INSERT INTO rowtrail.changes
                 (id, tx_id, lsn, table_id, relation_id, op, key, old_key, before, after,
                  unavailable, context_id, commit_time)
             SELECT id, tx_id, lsn, table_id, relation_id, op, key, old_key, before, after,
                    unavailable, context_id,
                    timestamptz '1970-01-01 00:00:00+00' + micros * interval '1 microsecond'
             FROM unnest($1::int8[], $2::int8[], $3::int8[], $4::int8[], $5::int8[], $6::text[],
                         $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::int8[],
                         $13::int8[])
                  AS c (id, tx_id, lsn, table_id, relation_id, op, key, old_key, before, after,
                        unavailable, context_id, micros)",
            &params,
        )
        .await?;
    }
    // Counts per table, and per table, operation and minute (the timeline's histogram).
    let mut per_table: HashMap<i64, i64> = HashMap::new();
    let mut per_minute: HashMap<(i64, &str, i64), i64> = HashMap::new();
    for change in &batch.changes {
        *per_table.entry(change.table_id).or_default() += 1;
        *per_minute
            .entry((
                change.table_id,
                change.op.as_str(),
                change.committed_at.div_euclid(60_000_000),
            ))
            .or_default() += 1;
    }
    if !per_table.is_empty() {
        let (ids, counts): (Vec<i64>, Vec<i64>) = per_table.into_iter().unzip();
        tx.execute(
            "UPDATE rowtrail.tables t SET change_count = t.change_count + n.count
             FROM unnest($1::int8[], $2::int8[]) AS n (id, count) WHERE t.id = n.id",
            &[&ids, &counts],
        )
        .await?;
    }
    if !per_minute.is_empty() {
        let mut tables = Vec::new();
        let mut ops = Vec::new();
        let mut minutes = Vec::new();
        let mut counts = Vec::new();
        for ((table, op, minute), count) in per_minute {
            tables.push(table);
            ops.push(op);
            minutes.push(minute);
            counts.push(count);
        }
        tx.execute(
            "INSERT INTO rowtrail.change_minutes (table_id, op, minute, count)
             SELECT * FROM unnest($1::int8[], $2::text[], $3::int8[], $4::int8[])
             ON CONFLICT (table_id, op, minute)
             DO UPDATE SET count = rowtrail.change_minutes.count + excluded.count",
            &[&tables, &ops, &minutes, &counts],
        )
        .await?;
    }
    // Where the store stands on the source: the journal's own position once the store has caught
    // up, else the end of the newest transaction it holds.
    if let Some(state) = &batch.capture_state {
        let position = match (caught_up, batch.transactions.last()) {
            (true, _) => Some(state.position),
            (false, Some(last)) => Some(last.end_lsn),
            (false, None) => None,
        };
        tx.execute(
            "INSERT INTO rowtrail.capture_state
                 (id, slot, publication, baseline, position, updated_at, schema_log_since)
             VALUES (1, $1, $2, $3, coalesce($4::int8, 0), $5, $6)
             ON CONFLICT (id) DO UPDATE SET slot = excluded.slot,
                 publication = excluded.publication, baseline = excluded.baseline,
                 position = coalesce($4, rowtrail.capture_state.position),
                 updated_at = excluded.updated_at, schema_log_since = excluded.schema_log_since",
            &[
                &state.slot,
                &state.publication,
                &state.baseline,
                &position,
                &state.updated_at,
                &state.schema_log_since,
            ],
        )
        .await?;
    }
    for (pattern, protection, fingerprint, created_at, derived_from) in &batch.column_rules {
        tx.execute(
            "INSERT INTO rowtrail.column_rules
                 (pattern, protection, key_fingerprint, created_at, derived_from)
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (pattern, protection) DO NOTHING",
            &[pattern, protection, fingerprint, created_at, derived_from],
        )
        .await?;
    }
    if let (Some(state), true) = (&batch.import_state, caught_up) {
        tx.execute(
            "INSERT INTO rowtrail.import_state (id, format, source, cursor, lacking, updated_at)
             VALUES (1, $1, $2, $3, $4, $5)
             ON CONFLICT (id) DO UPDATE SET format = excluded.format, source = excluded.source,
                 cursor = excluded.cursor, lacking = excluded.lacking,
                 updated_at = excluded.updated_at",
            &[
                &state.format,
                &state.source,
                &state.cursor,
                &state.lacking,
                &state.updated_at,
            ],
        )
        .await?;
    }
    Ok(())
}
