//! Appends captured transactions to the cache.
//!
//! The writer is fed in stream order: relation schemas, then `begin`, row changes and `commit` for
//! each source transaction. It groups whole source transactions into SQLite transactions and only
//! reports a position as stored ([`CacheWriter::flush`]) once SQLite has committed it, so the
//! position confirmed to the server never runs ahead of the file.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use rusqlite::config::DbConfig;
use rusqlite::{Connection, OptionalExtension, params};

use crate::decode::ddl::TableEvent;
use crate::decode::image::{PriorRow, RowChange, complete_images, complete_imported};
use crate::model::{
    Change, ColumnRule, ColumnRules, Context, Lsn, MaskKey, Masking, Oid, Op, Protection,
    RelationSchema, Row, RowMask, Value, Xid,
};

use super::codec::{self, EncodedImages};
use super::{
    BaselineState, CaptureState, ImportState, SourceIdentity, SqliteContext, StoreError,
    StoredRules, describe_rules, op_code, op_from_code,
};

/// Context fields that hold SQL text (the wiki audit trigger's and pgMemento's `client_query`,
/// Debezium's `query`, and `statement`), left out of caches with column rules.
pub(super) const SQL_TEXT_KEYS: &[&str] = &["client_query", "query", "statement"];

/// The rules and key for one schema version's rows.
fn masking<'a>(current: &'a CurrentRelation, key: Option<&'a MaskKey>) -> Option<Masking<'a>> {
    current.mask.as_deref().map(|mask| Masking { mask, key })
}

/// The facts of a source transaction known when it begins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxMeta {
    /// `None` for the baseline, which is not a source transaction.
    pub xid: Option<Xid>,
    pub commit_lsn: Lsn,
    pub committed_at: DateTime<Utc>,
    pub is_baseline: bool,
}

#[derive(Debug, Clone)]
struct CurrentRelation {
    relation_id: i64,
    table_id: i64,
    schema: Arc<RelationSchema>,
    /// What the cache's column rules do to this version's rows, if anything.
    mask: Option<Arc<RowMask>>,
}

#[derive(Debug)]
struct OpenTx {
    meta: TxMeta,
    /// The stream replays a transaction the cache already holds: ignore its changes.
    already_stored: bool,
    /// Inserted on the first change, so transactions without changes leave no row.
    row_id: Option<i64>,
    change_count: i64,
    context_id: Option<i64>,
    first_context_id: Option<i64>,
    origin: Option<String>,
    /// Change counts per (table, operation), for the table totals and the per-minute rollup.
    counts: HashMap<(i64, &'static str), i64>,
}

/// What the cache knows of the source's tables before capture streams (see
/// [`CacheWriter::known_schemas`]).
#[derive(Debug, Clone, Default)]
pub struct KnownSchemas {
    /// Where the source's schema log began recording schema changes for this cache.
    pub schema_log_since: Option<Lsn>,
    /// Each table's newest schema version and the position it began at.
    pub schemas: Vec<(Lsn, Arc<RelationSchema>)>,
}

/// What a schema change entry says, before it is stored.
struct SchemaChangeEntry<'a> {
    command: &'a str,
    statement: Option<&'a str>,
    /// The schema version before.
    before: Option<i64>,
    dropped: bool,
    noticed: bool,
}

/// The only writer of a cache file.
pub struct CacheWriter {
    connection: Connection,
    path: PathBuf,
    relations: HashMap<i64, Arc<RelationSchema>>,
    current: HashMap<Oid, CurrentRelation>,
    open_tx: Option<OpenTx>,
    in_sqlite_tx: bool,
    /// The position durably committed to the file.
    stored_position: Lsn,
    /// The position written inside the open SQLite transaction.
    staged_position: Lsn,
    staged_changes: usize,
    staged_transactions: usize,
    /// Change counts of the open SQLite transaction per (table, operation, minute), written to the
    /// table totals and the per-minute rollup just before it commits.
    staged_counts: HashMap<(i64, &'static str, i64), i64>,
    /// Changes and transactions made durable since this writer was opened.
    durable_changes: u64,
    durable_transactions: u64,
    /// The cache's column rules (fixed when its history began) and the key of its `hash` rules.
    rules: StoredRules,
    mask_key: Option<Arc<MaskKey>>,
}

impl CacheWriter {
    /// Opens (or creates) the cache for capture from `source`.
    pub fn open(path: &Path, source: &SourceIdentity) -> Result<Self, StoreError> {
        let connection = super::open_for_capture(path, source)?;
        // Every statement of the write path stays prepared (the default cache holds 16).
        connection.set_prepared_statement_cache_capacity(64);
        // Without the planner stability guarantee SQLite re-plans a statement whenever a bound
        // value might pick a different plan (partial indexes, STAT4), which it decided for the
        // record lookup on every call: a quarter of capture's CPU went to re-preparing it.
        connection
            .set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)
            .context(path, "configuring the query planner")?;
        let position =
            super::read_capture_state(&connection, path)?.map_or(Lsn::ZERO, |state| state.position);
        let rules = super::read_column_rules(&connection, path)?;
        Ok(Self {
            connection,
            path: path.to_owned(),
            relations: HashMap::new(),
            current: HashMap::new(),
            open_tx: None,
            in_sqlite_tx: false,
            stored_position: position,
            staged_position: position,
            staged_changes: 0,
            staged_transactions: 0,
            staged_counts: HashMap::new(),
            durable_changes: 0,
            durable_transactions: 0,
            rules,
            mask_key: None,
        })
    }

    /// Settles the column rules before anything is stored: `given` (from `--exclude`, `--mask`,
    /// `--rules`) become the cache's rules while it holds no history, must equal them once it
    /// does, and may be left empty to keep them. `key` is the key of `hash` rules; it must be the
    /// one the cache was made with. Returns the rules in force.
    pub fn protect(
        &mut self,
        given: &ColumnRules,
        key: Option<MaskKey>,
    ) -> Result<ColumnRules, StoreError> {
        if !given.is_empty() && *given != self.rules.given {
            let history: bool = self
                .connection
                .query_row("SELECT EXISTS (SELECT 1 FROM changes)", [], |row| {
                    row.get(0)
                })
                .context(&self.path, "reading the cache")?;
            if history {
                return Err(StoreError::OtherRules {
                    path: self.path.clone(),
                    stored: describe_rules(&self.rules.given),
                    given: describe_rules(given),
                });
            }
            // Rules stored by a capture that failed before any history: replaced, key and all.
            self.rules.key_fingerprint = None;
            let fingerprint = match given.needs_key() {
                true => Some(self.key_for(given, key.as_ref())?.fingerprint().to_owned()),
                false => None,
            };
            let now = Utc::now().to_rfc3339();
            self.ensure_sqlite_tx()?;
            // Rules a capture stored before it failed, with no history yet, are replaced.
            self.connection
                .execute("DELETE FROM column_rules", [])
                .context(&self.path, "recording the column rules")?;
            for rule in given.rules() {
                self.connection
                    .execute(
                        "INSERT INTO column_rules (pattern, protection, key_fingerprint, created_at)
                         VALUES (?1, ?2, ?3, ?4)",
                        params![
                            rule.pattern,
                            rule.protection.name(),
                            fingerprint.as_deref().filter(|_| rule.protection
                                == Protection::Hash),
                            now
                        ],
                    )
                    .context(&self.path, "recording the column rules")?;
            }
            self.commit_sqlite()?;
            self.rules = StoredRules {
                rules: given.clone(),
                given: given.clone(),
                key_fingerprint: fingerprint,
            };
        }
        if self.rules.rules.needs_key() {
            let rules = self.rules.rules.clone();
            self.key_for(&rules, key.as_ref())?;
            self.mask_key = key.map(Arc::new);
        }
        // Versions registered before the rules were settled get their masks now.
        let mut current = std::mem::take(&mut self.current);
        for relation in current.values_mut() {
            relation.mask = self.rules.rules.row_mask(&relation.schema)?.map(Arc::new);
        }
        self.current = current;
        Ok(self.rules.rules.clone())
    }

    /// A record's last row as stored, masked where the current version protects a column its own
    /// version did not (a column renamed into a rule's pattern): values completed from it must
    /// not bring the raw value back.
    fn masked_prior(&self, current: &CurrentRelation, prior: &RelationSchema, mut row: Row) -> Row {
        let Some(mask) = &current.mask else {
            return row;
        };
        // The usual case, a row of the current version, is masked as this one is.
        if std::ptr::eq(prior, &*current.schema) || *prior == *current.schema {
            return row;
        }
        let held = self.rules.rules.row_mask(prior).ok().flatten();
        for &(index, protection) in mask.positions() {
            let Some(at) = current
                .schema
                .columns
                .get(index)
                .and_then(|column| prior.matching_column(column))
            else {
                continue;
            };
            if held
                .as_ref()
                .and_then(|held| held.protection_at(at))
                .is_some_and(|held| held >= protection)
            {
                continue;
            }
            RowMask::single(at, protection).apply(&mut row, self.mask_key.as_deref());
        }
        row
    }

    /// Refuses to store rows when the rules hash values and no key was settled (a writer that
    /// skipped [`CacheWriter::protect`]): the values would otherwise be dropped and keys merge.
    fn require_key(&self) -> Result<(), StoreError> {
        match self.rules.rules.needs_key() && self.mask_key.is_none() {
            true => Err(StoreError::MaskKey {
                path: self.path.clone(),
                rules: describe_rules(&self.rules.rules),
                fingerprint: self.rules.key_fingerprint.clone().unwrap_or_default(),
                problem: "no key was given".to_owned(),
            }),
            false => Ok(()),
        }
    }

    /// Checks that `key` is the key the rules hash with (the stored fingerprint, once there is one).
    fn key_for<'k>(
        &self,
        rules: &ColumnRules,
        key: Option<&'k MaskKey>,
    ) -> Result<&'k MaskKey, StoreError> {
        let problem = |problem: String| StoreError::MaskKey {
            path: self.path.clone(),
            rules: describe_rules(rules),
            fingerprint: self
                .rules
                .key_fingerprint
                .clone()
                .unwrap_or_else(|| "(none yet)".to_owned()),
            problem,
        };
        let key = key.ok_or_else(|| problem("no key was given".to_owned()))?;
        match &self.rules.key_fingerprint {
            Some(stored) if stored != key.fingerprint() => Err(problem(format!(
                "the key given has the fingerprint {}",
                key.fingerprint()
            ))),
            _ => Ok(key),
        }
    }

    pub fn capture_state(&self) -> Result<Option<CaptureState>, StoreError> {
        super::read_capture_state(&self.connection, &self.path)
    }

    /// Where an import into this cache resumes (`None` before the first, or for a captured cache).
    pub fn import_state(&self) -> Result<Option<ImportState>, StoreError> {
        super::read_import_state(&self.connection, &self.path)
    }

    /// Records where the import resumes, in the SQLite transaction of the changes staged so far:
    /// both become durable at the next [`CacheWriter::flush`], or neither. `expected` is the
    /// cursor this import last read or wrote: when the cache holds another, another import wrote
    /// it meanwhile, and nothing is recorded (false; the caller drops what it staged).
    pub fn set_import_state(
        &mut self,
        expected: Option<&str>,
        state: &ImportState,
    ) -> Result<bool, StoreError> {
        // The write lock is held from here to the commit: no other import writes in between.
        self.ensure_sqlite_tx()?;
        let stored = super::read_import_state(&self.connection, &self.path)?;
        if stored.as_ref().map(|stored| stored.cursor.as_str()) != expected {
            return Ok(false);
        }
        let lacking = serde_json::Value::from(state.lacking.clone()).to_string();
        self.connection
            .prepare_cached(
                "INSERT INTO import_state (id, format, source, cursor, lacking, updated_at)
                 VALUES (1, ?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (id) DO UPDATE SET format = ?1, source = ?2, cursor = ?3,
                     lacking = ?4, updated_at = ?5",
            )
            .and_then(|mut statement| {
                statement.execute(params![
                    state.format,
                    state.source,
                    state.cursor,
                    lacking,
                    Utc::now().to_rfc3339()
                ])
            })
            .context(&self.path, "recording where the import resumes")?;
        Ok(true)
    }

    /// Stores one change an audit store recorded, with images as complete as the store has them
    /// (values it did not record are `Value::Unavailable`).
    pub fn imported_change(
        &mut self,
        lsn: Lsn,
        oid: Oid,
        change: &Change,
    ) -> Result<(), StoreError> {
        self.require_key()?;
        let current = self.current(oid)?;
        let mut change = change.clone();
        if let Some(masking) = masking(&current, self.mask_key.as_deref()) {
            for row in [change.before.as_mut(), change.after.as_mut()]
                .into_iter()
                .flatten()
            {
                masking.apply(row);
            }
        }
        let schema = &current.schema;
        let incomplete = |row: &Option<Row>| {
            row.as_ref()
                .is_none_or(|row| row.iter().any(|value| !value.is_available()))
        };
        let needs_prior = match change.op {
            Op::Update => incomplete(&change.before),
            Op::Delete => incomplete(&change.before),
            _ => false,
        };
        let prior = match needs_prior && schema.has_key() {
            true => {
                let image = match change.op {
                    Op::Update if change.before.is_none() => change.after.as_ref(),
                    _ => change.before.as_ref(),
                };
                let key = image.map(|row| crate::model::key_of(schema, row));
                match key {
                    Some(key) if key.iter().all(Value::is_available) => {
                        self.prior_row(current.table_id, &codec::encode_key(&key))?
                    }
                    _ => None,
                }
            }
            false => None,
        };
        let prior = prior.map(|(schema, row)| {
            let row = self.masked_prior(&current, &schema, row);
            (schema, row)
        });
        let prior = prior.as_ref().map(|(schema, row)| PriorRow {
            schema: schema.as_ref(),
            row,
        });
        let complete = complete_imported(schema, change, prior);
        self.insert_change(lsn, &current, &complete)
    }

    /// Records which slot and publication feed this cache, and the baseline state, at once.
    pub fn set_capture_state(&mut self, state: &CaptureState) -> Result<(), StoreError> {
        self.ensure_sqlite_tx()?;
        self.connection
            .execute(
                "INSERT INTO capture_state (id, slot, publication, baseline, position, updated_at)
                 VALUES (1, ?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (id) DO UPDATE SET slot = ?1, publication = ?2, baseline = ?3,
                     position = ?4, updated_at = ?5",
                params![
                    state.slot,
                    state.publication,
                    match state.baseline {
                        BaselineState::Pending => "pending",
                        BaselineState::Complete => "complete",
                    },
                    state.position.0 as i64,
                    Utc::now().to_rfc3339(),
                ],
            )
            .context(&self.path, "recording the capture state")?;
        self.staged_position = state.position;
        self.commit_sqlite()?;
        Ok(())
    }

    /// Where the cache's history ends (the end of its newest transaction), if it holds any.
    pub fn history_end(&self) -> Result<Option<Lsn>, StoreError> {
        let end: Option<i64> = self
            .connection
            .query_row("SELECT max(end_lsn) FROM transactions", [], |row| {
                row.get(0)
            })
            .context(&self.path, "reading where history ends")?;
        Ok(end.map(|end| Lsn(end as u64)))
    }

    /// Marks every table the cache knows (and that was not dropped) as missing its history from
    /// `from` on: a gap, inside the baseline transaction that follows it.
    pub fn gap(&mut self, from: Lsn) -> Result<(), StoreError> {
        let tables: Vec<(i64, i64)> = self
            .connection
            .prepare(
                "SELECT t.id, (SELECT max(r.id) FROM relations r WHERE r.table_id = t.id)
                 FROM tables t WHERE t.dropped_change IS NULL",
            )
            .and_then(|mut statement| {
                statement
                    .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
                    .collect()
            })
            .context(&self.path, "listing tables")?;
        let body = serde_json::json!({ "from": from.0 }).to_string();
        let at = self.open_tx.as_ref().map_or(from, |tx| tx.meta.commit_lsn);
        for (table_id, relation_id) in tables {
            let current = CurrentRelation {
                relation_id,
                table_id,
                schema: self.relation(relation_id)?,
                mask: None,
            };
            let change = Change {
                op: Op::Gap,
                before: None,
                after: None,
            };
            self.insert_change_with(at, &current, &change, Some(body.clone()))?;
        }
        Ok(())
    }

    /// Forgets a baseline that was never completed, so it can be taken again: the baseline
    /// transactions after the stored position (a first baseline, or one after a gap).
    pub fn discard_incomplete_baseline(&mut self) -> Result<(), StoreError> {
        self.ensure_sqlite_tx()?;
        self.connection
            .execute_batch(
                "DELETE FROM changes WHERE tx_id IN (SELECT id FROM transactions WHERE is_baseline = 1
                     AND commit_lsn > coalesce((SELECT position FROM capture_state), 0));
                 DELETE FROM transactions WHERE is_baseline = 1
                     AND commit_lsn > coalesce((SELECT position FROM capture_state), 0);
                 DELETE FROM capture_state WHERE NOT EXISTS (SELECT 1 FROM transactions);
                 DELETE FROM change_minutes;
                 INSERT INTO change_minutes (table_id, op, minute, count)
                     SELECT c.table_id, c.op, t.committed_at / 60000000, count(*)
                     FROM changes c JOIN transactions t ON t.id = c.tx_id GROUP BY 1, 2, 3;
                 UPDATE tables SET change_count = (SELECT count(*) FROM changes c WHERE c.table_id = tables.id);
                 -- Ids of discarded changes will be used again: the index of references forgets them.
                 DELETE FROM refs WHERE change_id > (SELECT coalesce(max(id), 0) FROM changes);
                 UPDATE ref_links SET indexed_to =
                     min(indexed_to, (SELECT coalesce(max(id), 0) FROM changes));",
            )
            .context(&self.path, "discarding an incomplete baseline")?;
        self.commit_sqlite()?;
        let position = super::read_capture_state(&self.connection, &self.path)?
            .map_or(Lsn::ZERO, |state| state.position);
        self.stored_position = position;
        self.staged_position = position;
        Ok(())
    }

    /// The cache file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The position up to which every change is durably stored.
    pub fn stored_position(&self) -> Lsn {
        self.stored_position
    }

    /// Changes written since the last SQLite commit.
    pub fn staged_changes(&self) -> usize {
        self.staged_changes
    }

    /// Changes and transactions made durable since this writer was opened.
    pub fn durable_counts(&self) -> (u64, u64) {
        (self.durable_changes, self.durable_transactions)
    }

    /// True between `begin` and `commit`.
    pub fn in_transaction(&self) -> bool {
        self.open_tx.is_some()
    }

    /// The schema log's start and the newest schema version of each table that was not dropped,
    /// with where it began: what capture knows of the tables before it streams.
    pub fn known_schemas(&mut self) -> Result<KnownSchemas, StoreError> {
        let schema_log_since: Option<i64> = self
            .connection
            .query_row(
                "SELECT schema_log_since FROM capture_state WHERE id = 1",
                [],
                |row| row.get(0),
            )
            .optional()
            .context(&self.path, "reading the capture state")?
            .flatten();
        let latest: Vec<(i64, i64)> = self
            .connection
            .prepare(
                "SELECT r.id, r.first_lsn FROM tables t
                 JOIN relations r ON r.id = (SELECT max(id) FROM relations WHERE table_id = t.id)
                 WHERE t.dropped_change IS NULL",
            )
            .and_then(|mut statement| {
                statement
                    .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
                    .collect()
            })
            .context(&self.path, "reading schema versions")?;
        let mut schemas = Vec::new();
        for (id, first_lsn) in latest {
            schemas.push((Lsn(first_lsn as u64), self.relation(id)?));
        }
        Ok(KnownSchemas {
            schema_log_since: schema_log_since.map(|lsn| Lsn(lsn as u64)),
            schemas,
        })
    }

    /// Records that the source's schema log records schema changes from `lsn` on (`None`: no
    /// longer, it was removed).
    pub fn set_schema_log_since(&mut self, lsn: Option<Lsn>) -> Result<(), StoreError> {
        self.ensure_sqlite_tx()?;
        self.connection
            .execute(
                "UPDATE capture_state SET schema_log_since = ?1 WHERE id = 1",
                [lsn.map(|lsn| lsn.0 as i64)],
            )
            .context(&self.path, "recording where the schema log starts")?;
        Ok(())
    }

    /// Makes `schema` the current shape of its table, storing it as a new version unless it equals
    /// the latest one already stored. When a table the cache already holds changes shape without
    /// a record of the command (no schema log), a schema change entry says capture noticed it.
    pub fn register_relation(
        &mut self,
        schema: RelationSchema,
        lsn: Lsn,
    ) -> Result<(), StoreError> {
        let (table_id, before, relation_id) = self.store_version(schema, lsn)?;
        if let Some(before) = before
            && self.open_tx.is_some()
            && !self.skipping()
        {
            let entry = SchemaChangeEntry {
                command: "schema change",
                statement: None,
                before: Some(before),
                dropped: false,
                noticed: true,
            };
            self.insert_schema_change(lsn, table_id, relation_id, &entry)?;
        }
        Ok(())
    }

    /// Stores a schema change the source's schema log recorded: the table's new schema version
    /// (or its drop) and an entry in its history.
    pub fn schema_change(&mut self, lsn: Lsn, event: &TableEvent) -> Result<(), StoreError> {
        if self.skipping() {
            // Replayed: the entry is stored; the version still becomes current.
            if let Some(schema) = &event.schema {
                self.store_version(schema.clone(), lsn)?;
            }
            return Ok(());
        }
        match &event.schema {
            Some(schema) => {
                let is_new =
                    !self.current.contains_key(&event.oid) && !self.table_known(event.oid)?;
                let (table_id, replaced, relation_id) = self.store_version(schema.clone(), lsn)?;
                let entry = SchemaChangeEntry {
                    command: &event.command,
                    statement: event.statement.as_deref(),
                    // A command that left the shape as it was (CREATE INDEX) has the same version
                    // before and after.
                    before: (!is_new).then(|| replaced.unwrap_or(relation_id)),
                    dropped: false,
                    noticed: false,
                };
                self.insert_schema_change(lsn, table_id, relation_id, &entry)?;
                Ok(())
            }
            None => {
                let found: Option<(i64, Option<i64>)> = self
                    .connection
                    .query_row(
                        "SELECT t.id, (SELECT max(r.id) FROM relations r WHERE r.table_id = t.id)
                         FROM tables t WHERE t.oid = ?1 AND t.dropped_change IS NULL",
                        [event.oid],
                        |row| Ok((row.get(0)?, row.get(1)?)),
                    )
                    .optional()
                    .context(&self.path, "finding a dropped table")?;
                // A table the cache never held (not captured) leaves nothing to record.
                let Some((table_id, Some(relation_id))) = found else {
                    return Ok(());
                };
                let entry = SchemaChangeEntry {
                    command: &event.command,
                    statement: event.statement.as_deref(),
                    before: Some(relation_id),
                    dropped: true,
                    noticed: false,
                };
                let change_id = self.insert_schema_change(lsn, table_id, relation_id, &entry)?;
                self.connection
                    .execute(
                        "UPDATE tables SET dropped_change = ?2 WHERE id = ?1",
                        params![table_id, change_id],
                    )
                    .context(&self.path, "recording a dropped table")?;
                self.current.remove(&event.oid);
                Ok(())
            }
        }
    }

    fn table_known(&self, oid: Oid) -> Result<bool, StoreError> {
        self.connection
            .query_row("SELECT 1 FROM tables WHERE oid = ?1", [oid], |_| Ok(()))
            .optional()
            .map(|found| found.is_some())
            .context(&self.path, "finding a table")
    }

    /// Stores an `Op::Ddl` entry; returns its change id.
    fn insert_schema_change(
        &mut self,
        lsn: Lsn,
        table_id: i64,
        relation_id: i64,
        entry: &SchemaChangeEntry<'_>,
    ) -> Result<i64, StoreError> {
        let mut body = serde_json::Map::new();
        body.insert("command".into(), entry.command.into());
        // A statement may carry values (`DEFAULT '…'`, `WHERE ssn = …`): under column rules only
        // the command and what it did to the table are kept.
        if let Some(statement) = entry.statement.filter(|_| self.rules.rules.is_empty()) {
            body.insert("statement".into(), statement.into());
        }
        if let Some(before) = entry.before {
            body.insert("before".into(), before.into());
        }
        if entry.dropped {
            body.insert("dropped".into(), true.into());
        }
        if entry.noticed {
            body.insert("noticed".into(), true.into());
        }
        let current = CurrentRelation {
            relation_id,
            table_id,
            schema: self.relation(relation_id)?,
            mask: None,
        };
        let change = Change {
            op: Op::Ddl,
            before: None,
            after: None,
        };
        self.insert_change_with(
            lsn,
            &current,
            &change,
            Some(serde_json::Value::Object(body).to_string()),
        )?;
        Ok(self.connection.last_insert_rowid())
    }

    /// Stores `schema` as its table's newest version unless equal to it, and makes it current.
    /// Returns the table id, the version it replaced (if it replaced one) and its own version id.
    fn store_version(
        &mut self,
        schema: RelationSchema,
        lsn: Lsn,
    ) -> Result<(i64, Option<i64>, i64), StoreError> {
        self.ensure_sqlite_tx()?;
        let path = self.path.clone();
        let table_id: i64 = self
            .connection
            .query_row(
                "INSERT INTO tables (oid, schema_name, name) VALUES (?1, ?2, ?3)
                 ON CONFLICT (oid) DO UPDATE SET schema_name = ?2, name = ?3
                 RETURNING id",
                params![schema.oid, schema.table.schema, schema.table.name],
                |row| row.get(0),
            )
            .context(&path, "recording a table")?;
        let latest: Option<i64> = self
            .connection
            .query_row(
                "SELECT max(id) FROM relations WHERE table_id = ?1",
                [table_id],
                |row| row.get(0),
            )
            .context(&path, "reading schema versions")?;
        let mut replaced = None;
        let relation_id = match latest {
            Some(id) if *self.relation(id)? == schema => id,
            _ => {
                replaced = latest;
                let definition =
                    serde_json::to_string(&schema).map_err(|error| StoreError::Damaged {
                        path: path.clone(),
                        what: error.to_string(),
                    })?;
                self.connection
                    .query_row(
                        "INSERT INTO relations (table_id, definition, first_lsn) VALUES (?1, ?2, ?3)
                         RETURNING id",
                        params![table_id, definition, lsn.0 as i64],
                        |row| row.get(0),
                    )
                    .context(&path, "recording a schema version")?
            }
        };
        let schema = Arc::new(schema);
        // The version this one replaces, as the cache has it (also after a restart).
        if let Some(previous) = replaced {
            let previous = self.relation(previous)?;
            self.carry_rules(&previous, &schema)?;
        }
        let mask = self.rules.rules.row_mask(&schema)?.map(Arc::new);
        self.relations.insert(relation_id, schema.clone());
        self.current.insert(
            schema.oid,
            CurrentRelation {
                relation_id,
                table_id,
                schema,
                mask,
            },
        );
        Ok((table_id, replaced, relation_id))
    }

    /// Keeps what protected a column protecting it in a new schema version of its table, when a
    /// rename (of the table or the column) takes it out of its rule's pattern: a rule for the new
    /// name is stored beside the one it continues, in the open SQLite transaction.
    fn carry_rules(
        &mut self,
        previous: &RelationSchema,
        schema: &RelationSchema,
    ) -> Result<(), StoreError> {
        // A version whose rules cannot apply (a key column they exclude) protected nothing.
        let Some(mask) = self.rules.rules.row_mask(previous).ok().flatten() else {
            return Ok(());
        };
        let now = self.rules.rules.row_mask(schema)?;
        let mut derived = Vec::new();
        for (index, protection) in mask.carried_to(previous, schema) {
            if now
                .as_ref()
                .and_then(|now| now.protection_at(index))
                .is_some_and(|held| held >= protection)
            {
                continue;
            }
            let (Some(column), Some(old)) = (
                schema.columns.get(index),
                previous
                    .columns
                    .iter()
                    .position(|old| schema.matching_column(old) == Some(index)),
            ) else {
                continue;
            };
            let old_name = previous.columns.get(old).map(|old| old.name.as_str());
            let from = self
                .rules
                .rules
                .rule_for(&previous.table, old_name.unwrap_or_default())
                .map_or_else(String::new, ToString::to_string);
            derived.push((
                ColumnRule {
                    pattern: format!(
                        "{}.{}.{}",
                        schema.table.schema, schema.table.name, column.name
                    ),
                    protection,
                },
                from,
            ));
        }
        if derived.is_empty() {
            return Ok(());
        }
        let now = Utc::now().to_rfc3339();
        let mut rules: Vec<ColumnRule> = self.rules.rules.rules().to_vec();
        for (rule, from) in derived {
            self.connection
                .execute(
                    "INSERT INTO column_rules
                         (pattern, protection, key_fingerprint, created_at, derived_from)
                     VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (pattern, protection) DO NOTHING",
                    params![
                        rule.pattern,
                        rule.protection.name(),
                        self.rules
                            .key_fingerprint
                            .as_deref()
                            .filter(|_| rule.protection == Protection::Hash),
                        now,
                        from
                    ],
                )
                .context(&self.path, "recording the column rules")?;
            rules.push(rule);
        }
        self.rules.rules = ColumnRules::new(rules);
        Ok(())
    }

    /// The current schema version of a table, once registered.
    pub fn current_schema(&self, oid: Oid) -> Option<Arc<RelationSchema>> {
        self.current.get(&oid).map(|current| current.schema.clone())
    }

    fn relation(&mut self, id: i64) -> Result<Arc<RelationSchema>, StoreError> {
        if let Some(schema) = self.relations.get(&id) {
            return Ok(schema.clone());
        }
        let schema = super::reader::load_relation(&self.connection, &self.path, id)?;
        self.relations.insert(id, schema.clone());
        Ok(schema)
    }

    /// Starts a source transaction. A transaction committed before the stored position is already
    /// in the cache; its changes are skipped so nothing is stored twice.
    pub fn begin(&mut self, meta: TxMeta) -> Result<(), StoreError> {
        let already_stored = !meta.is_baseline && meta.commit_lsn < self.staged_position;
        if already_stored {
            tracing::debug!(commit_lsn = %meta.commit_lsn, "skipping a transaction the cache already holds");
        }
        self.open_tx = Some(OpenTx {
            meta,
            already_stored,
            row_id: None,
            change_count: 0,
            context_id: None,
            first_context_id: None,
            origin: None,
            counts: HashMap::new(),
        });
        Ok(())
    }

    /// Sets the application context for the changes that follow in this transaction.
    pub fn set_context(&mut self, context: &Context) -> Result<(), StoreError> {
        let mut context = context.clone();
        // SQL text an audit store or a CDC event recorded may carry the very values the column
        // rules keep out: under rules it is not stored.
        if !self.rules.rules.is_empty() {
            for key in SQL_TEXT_KEYS {
                context.remove(*key);
            }
        }
        let body = serde_json::Value::Object(context).to_string();
        self.ensure_sqlite_tx()?;
        let id: i64 = self
            .connection
            .prepare_cached(
                "INSERT INTO contexts (body) VALUES (?1)
                 ON CONFLICT (body) DO UPDATE SET body = excluded.body RETURNING id",
            )
            .and_then(|mut statement| statement.query_row([body], |row| row.get(0)))
            .context(&self.path, "storing a context")?;
        if let Some(tx) = self.open_tx.as_mut() {
            tx.context_id = Some(id);
            tx.first_context_id.get_or_insert(id);
        }
        Ok(())
    }

    pub fn set_origin(&mut self, origin: String) {
        if let Some(tx) = self.open_tx.as_mut() {
            tx.origin = Some(origin);
        }
    }

    fn current(&self, oid: Oid) -> Result<CurrentRelation, StoreError> {
        self.current
            .get(&oid)
            .cloned()
            .ok_or(StoreError::UnknownRelation { oid })
    }

    /// Stores one row change, completing its images from the cache where the source left gaps.
    pub fn row_change(&mut self, lsn: Lsn, oid: Oid, change: &RowChange) -> Result<(), StoreError> {
        if self.skipping() {
            return Ok(());
        }
        self.require_key()?;
        let current = self.current(oid)?;
        let schema = &current.schema;
        let key = self.mask_key.clone();
        let masking = masking(&current, key.as_deref());
        let prior = match change.needs_prior() && schema.has_key() {
            true => {
                let mut key = change.lookup_key(schema)?;
                if let Some(masking) = &masking {
                    masking.apply_to_key(schema, &mut key);
                }
                self.prior_row(current.table_id, &codec::encode_key(&key))?
            }
            false => None,
        };
        let prior = prior.map(|(schema, row)| {
            let row = self.masked_prior(&current, &schema, row);
            (schema, row)
        });
        let prior = prior.as_ref().map(|(schema, row)| PriorRow {
            schema: schema.as_ref(),
            row,
        });
        let complete = complete_images(schema, change, prior, masking)?;
        self.insert_change(lsn, &current, &complete)
    }

    /// Stores one row of the baseline snapshot.
    pub fn snapshot_row(&mut self, lsn: Lsn, oid: Oid, mut row: Row) -> Result<(), StoreError> {
        self.require_key()?;
        let current = self.current(oid)?;
        if let Some(masking) = masking(&current, self.mask_key.as_deref()) {
            masking.apply(&mut row);
        }
        let change = Change {
            op: Op::Snapshot,
            before: None,
            after: Some(row),
        };
        self.insert_change(lsn, &current, &change)
    }

    /// Stores a truncate of each table.
    pub fn truncate(&mut self, lsn: Lsn, oids: &[Oid]) -> Result<(), StoreError> {
        if self.skipping() {
            return Ok(());
        }
        for &oid in oids {
            let current = self.current(oid)?;
            let change = Change {
                op: Op::Truncate,
                before: None,
                after: None,
            };
            self.insert_change(lsn, &current, &change)?;
        }
        Ok(())
    }

    fn skipping(&self) -> bool {
        self.open_tx.as_ref().is_some_and(|tx| tx.already_stored)
    }

    /// The record's last known row: the after-image of its newest change, unless that removed it.
    fn prior_row(
        &mut self,
        table_id: i64,
        key: &str,
    ) -> Result<Option<(Arc<RelationSchema>, Row)>, StoreError> {
        let found = self
            .connection
            .prepare_cached(
                "SELECT relation_id, op, before, after, unavailable FROM changes
                 WHERE table_id = ?1 AND key = ?2 ORDER BY id DESC LIMIT 1",
            )
            .and_then(|mut statement| {
                statement
                    .query_row(params![table_id, key], |row| {
                        Ok((
                            row.get::<_, i64>(0)?,
                            row.get::<_, String>(1)?,
                            EncodedImages {
                                before: row.get(2)?,
                                after: row.get(3)?,
                                unavailable: row.get(4)?,
                            },
                        ))
                    })
                    .optional()
            })
            .context(&self.path, "looking up a record's last row")?;
        let Some((relation_id, op, images)) = found else {
            return Ok(None);
        };
        let op = op_from_code(&op).ok_or_else(|| self.damaged(format!("unknown op {op}")))?;
        let change = codec::decode(op, &images).map_err(|error| self.damaged(error.to_string()))?;
        let schema = self.relation(relation_id)?;
        Ok(change.after.map(|row| (schema, row)))
    }

    fn damaged(&self, what: String) -> StoreError {
        StoreError::Damaged {
            path: self.path.clone(),
            what,
        }
    }

    fn insert_change(
        &mut self,
        lsn: Lsn,
        current: &CurrentRelation,
        change: &Change,
    ) -> Result<(), StoreError> {
        self.insert_change_with(lsn, current, change, None)
    }

    /// Inserts a change; `ddl` is what a schema change entry stores in `after` instead of an image.
    fn insert_change_with(
        &mut self,
        lsn: Lsn,
        current: &CurrentRelation,
        change: &Change,
        ddl: Option<String>,
    ) -> Result<(), StoreError> {
        let tx_row = self.transaction_row()?;
        let schema = &current.schema;
        let key = codec::encode_key(&change.key(schema));
        let old_key = change
            .old_key(schema)
            .map(|old_key| codec::encode_key(&old_key));
        let mut images = codec::encode(change);
        if ddl.is_some() {
            images.after = ddl;
        }
        let context_id = self.open_tx.as_ref().and_then(|tx| tx.context_id);
        self.connection
            .prepare_cached(
                "INSERT INTO changes (tx_id, lsn, table_id, relation_id, op, key, old_key, before, after,
                     unavailable, context_id)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            )
            .and_then(|mut statement| {
                statement.execute(params![
                    tx_row,
                    lsn.0 as i64,
                    current.table_id,
                    current.relation_id,
                    op_code(change.op),
                    key,
                    old_key,
                    images.before,
                    images.after,
                    images.unavailable,
                    context_id,
                ])
            })
            .context(&self.path, "storing a change")?;
        if let Some(tx) = self.open_tx.as_mut() {
            tx.change_count += 1;
            *tx.counts
                .entry((current.table_id, op_code(change.op)))
                .or_default() += 1;
        }
        self.staged_changes += 1;
        Ok(())
    }

    /// The row id of the open transaction, inserting its row on first use.
    fn transaction_row(&mut self) -> Result<i64, StoreError> {
        let Some(tx) = self.open_tx.as_ref() else {
            return Err(self.damaged("a change arrived outside a transaction".into()));
        };
        if let Some(id) = tx.row_id {
            return Ok(id);
        }
        let meta = tx.meta.clone();
        self.ensure_sqlite_tx()?;
        let id: i64 = self
            .connection
            .prepare_cached(
                "INSERT INTO transactions (xid, commit_lsn, end_lsn, committed_at, change_count, is_baseline)
                 VALUES (?1, ?2, ?2, ?3, 0, ?4) RETURNING id",
            )
            .and_then(|mut statement| {
                statement.query_row(
                    params![
                        meta.xid.map(|xid| xid.0),
                        meta.commit_lsn.0 as i64,
                        meta.committed_at.timestamp_micros(),
                        meta.is_baseline,
                    ],
                    |row| row.get(0),
                )
            })
            .context(&self.path, "storing a transaction")?;
        if let Some(tx) = self.open_tx.as_mut() {
            tx.row_id = Some(id);
        }
        Ok(id)
    }

    /// Ends the source transaction. Its changes and the new position are written in the same SQLite
    /// transaction; they become durable at the next [`CacheWriter::flush`].
    pub fn commit(&mut self, end_lsn: Lsn) -> Result<(), StoreError> {
        let Some(tx) = self.open_tx.take() else {
            return Err(self.damaged("a commit arrived outside a transaction".into()));
        };
        if tx.already_stored {
            return Ok(());
        }
        self.ensure_sqlite_tx()?;
        if let Some(row_id) = tx.row_id {
            self.connection
                .prepare_cached(
                    "UPDATE transactions SET end_lsn = ?2, change_count = ?3, context_id = ?4, origin = ?5
                     WHERE id = ?1",
                )
                .and_then(|mut statement| {
                    statement.execute(params![
                        row_id,
                        end_lsn.0 as i64,
                        tx.change_count,
                        tx.first_context_id,
                        tx.origin
                    ])
                })
                .context(&self.path, "finishing a transaction")?;
            let minute = tx.meta.committed_at.timestamp_micros() / 60_000_000;
            for ((table_id, op), count) in tx.counts {
                *self
                    .staged_counts
                    .entry((table_id, op, minute))
                    .or_default() += count;
            }
            self.staged_transactions += 1;
        }
        if tx.meta.is_baseline {
            self.connection
                .execute(
                    "UPDATE capture_state SET baseline = 'complete' WHERE id = 1",
                    [],
                )
                .context(&self.path, "recording the baseline")?;
        }
        self.staged_position = self.staged_position.max(end_lsn);
        Ok(())
    }

    /// Moves the position forward when the server reports progress with nothing for us to store.
    pub fn advance(&mut self, position: Lsn) -> Result<(), StoreError> {
        if self.open_tx.is_some() || position <= self.staged_position {
            return Ok(());
        }
        self.ensure_sqlite_tx()?;
        self.staged_position = position;
        Ok(())
    }

    /// Commits what is staged unless a source transaction is still open, and returns the position
    /// that is now durable.
    pub fn flush(&mut self) -> Result<Lsn, StoreError> {
        if self.open_tx.is_none() && self.in_sqlite_tx {
            self.commit_sqlite()?;
        }
        Ok(self.stored_position)
    }

    fn ensure_sqlite_tx(&mut self) -> Result<(), StoreError> {
        if !self.in_sqlite_tx {
            self.connection
                .execute_batch("BEGIN IMMEDIATE")
                .context(&self.path, "starting a write")?;
            self.in_sqlite_tx = true;
        }
        Ok(())
    }

    /// Writes what the open SQLite transaction staged in memory: change counts and the position.
    fn write_staged(&mut self) -> Result<(), StoreError> {
        for ((table_id, op, minute), count) in std::mem::take(&mut self.staged_counts) {
            self.connection
                .prepare_cached("UPDATE tables SET change_count = change_count + ?2 WHERE id = ?1")
                .and_then(|mut statement| statement.execute(params![table_id, count]))
                .context(&self.path, "counting changes")?;
            self.connection
                .prepare_cached(
                    "INSERT INTO change_minutes (table_id, op, minute, count) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (table_id, op, minute) DO UPDATE SET count = count + excluded.count",
                )
                .and_then(|mut statement| statement.execute(params![table_id, op, minute, count]))
                .context(&self.path, "counting changes")?;
        }
        if self.staged_position != self.stored_position {
            self.connection
                .prepare_cached(
                    "UPDATE capture_state SET position = ?1, updated_at = ?2 WHERE id = 1",
                )
                .and_then(|mut statement| {
                    statement.execute(params![
                        self.staged_position.0 as i64,
                        Utc::now().to_rfc3339()
                    ])
                })
                .context(&self.path, "recording the position")?;
        }
        Ok(())
    }

    fn commit_sqlite(&mut self) -> Result<(), StoreError> {
        if self.in_sqlite_tx {
            self.write_staged()?;
            self.connection
                .execute_batch("COMMIT")
                .context(&self.path, "committing")?;
            self.in_sqlite_tx = false;
        }
        self.stored_position = self.staged_position;
        self.durable_changes += self.staged_changes as u64;
        self.durable_transactions += self.staged_transactions as u64;
        self.staged_changes = 0;
        self.staged_transactions = 0;
        Ok(())
    }

    /// Drops everything not yet durable: the open SQLite transaction, the open source transaction,
    /// and the relation versions known from this stream (the server describes them again).
    pub fn rollback(&mut self) -> Result<(), StoreError> {
        if self.in_sqlite_tx {
            self.connection
                .execute_batch("ROLLBACK")
                .context(&self.path, "rolling back")?;
            self.in_sqlite_tx = false;
        }
        self.open_tx = None;
        self.current.clear();
        self.relations.clear();
        self.staged_position = self.stored_position;
        self.staged_changes = 0;
        self.staged_transactions = 0;
        self.staged_counts.clear();
        Ok(())
    }
}
