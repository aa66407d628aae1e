//! pgMemento (`pgmemento.transaction_log`, `table_event_log`, `row_log`): one row per row change,
//! written by its triggers in the changing transaction.
//!
//! - `transaction_log` has one row per transaction: `txid` (`txid_current()`), who
//!   (`user_name`, `client_name`, `application_name`, `session_info`), its start time.
//! - `table_event_log` has one row per table, operation and statement: `op_id` (3 INSERT,
//!   4 UPDATE, 7 DELETE, 8 TRUNCATE; the others are DDL), `stmt_time`, and the `event_key` its
//!   rows name.
//! - `row_log` has one row per row changed: the row's `audit_id` (the audited table's
//!   `pgmemento_audit_id` column, unique across tables and kept for the row's life), `old_data`
//!   (an UPDATE: only the changed columns' old values; a DELETE or TRUNCATE: the whole old row)
//!   and `new_data` (only where the table logs new data: an INSERT's whole row, an UPDATE's
//!   changed columns' new values).
//!
//! So full rows are rebuilt backwards ([`rebuild`]): a record's state now is its row in the
//! table (found by its audit id), and the state before each of its changes is the state after
//! it with the change's `old_data` laid over. The rows of a batch, their records' later rows
//! and the records as the tables hold them now are read in one statement, so they agree.
//! Values are `to_jsonb`'s, read as text per JSON type and put back in PostgreSQL's text form
//! by the column's type in the catalog. `import` walks the transactions in commit order
//! ([`super::rounds`]).

use std::collections::HashMap;

use serde_json::{Map, Value as Json};
use tokio::sync::watch;

use crate::model::{Context, TableName};
use crate::store::SourceIdentity;

use super::rounds::{TransactionLog, import_rounds};
use super::sink::{ImportedTransaction, Sink};
use super::supa_audit::{Triple, fields_from, triples_of};
use super::{
    AuditFormat, Fields, ImportError, ImportOptions, ImportSummary, ImportedChange, ImportedOp,
    RowError, Store,
};

/// The store's table of row changes (the one that says a database has the store).
pub(super) const TABLE: &str = "pgmemento.row_log";

/// Each audited table and how many row changes the store holds for it, most first.
pub(super) const TABLES_SQL: &str = "SELECT e.schema_name || '.' || e.table_name, count(*)
     FROM pgmemento.row_log r JOIN pgmemento.table_event_log e ON e.event_key = r.event_key
     GROUP BY 1 ORDER BY 2 DESC, 1";

/// The columns of `row_log` the import reads, and their types (`new_data` is read where the
/// table has it: pgMemento 0.7 on).
pub(super) const COLUMNS: &[(&str, &str)] = &[
    ("id", "bigint"),
    ("audit_id", "bigint"),
    ("event_key", "text"),
    ("old_data", "jsonb"),
];

const EVENT_TABLE: &str = "pgmemento.table_event_log";
const EVENT_COLUMNS: &[(&str, &str)] = &[
    ("transaction_id", "integer|bigint"),
    ("stmt_time", "timestamp with time zone"),
    ("op_id", "smallint|integer"),
    ("table_name", "text"),
    ("schema_name", "text"),
    ("event_key", "text"),
];

const TRANSACTION_TABLE: &str = "pgmemento.transaction_log";
const TRANSACTION_COLUMNS: &[(&str, &str)] = &[
    ("id", "integer|bigint"),
    ("txid", "bigint"),
    ("user_name", "text"),
    ("client_name", "text"),
    ("application_name", "text"),
    ("session_info", "jsonb"),
];

/// The audit id column pgMemento adds to a table unless told another name.
const DEFAULT_AUDIT_ID_COLUMN: &str = "pgmemento_audit_id";

/// What an event's `op_id` says was done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventOp {
    Insert,
    Update,
    Delete,
    Truncate,
    /// `DROP TABLE`: its rows hold the whole rows the table had (where it logs old data).
    DropTable,
    /// A change of the table's shape whose rows (`ALTER COLUMN`, `DROP COLUMN`) hold the
    /// columns' old values: part of a record's history, not a change of its own.
    Ddl,
    Unknown(i16),
}

impl EventOp {
    pub fn of(op_id: i16) -> Self {
        match op_id {
            3 => Self::Insert,
            4 => Self::Update,
            7 => Self::Delete,
            8 => Self::Truncate,
            9 => Self::DropTable,
            1 | 11 | 12 | 2 | 21 | 22 | 5 | 6 | 81 => Self::Ddl,
            other => Self::Unknown(other),
        }
    }
}

/// One `row_log` entry of a record, as [`rebuild`] reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub op: EventOp,
    pub old_data: Option<Vec<Triple>>,
    pub new_data: Option<Vec<Triple>>,
}

/// A record's row, or some of its columns, as `to_jsonb` read.
pub type Image = Vec<Triple>;

/// The images before and after a change.
pub type Images = (Option<Image>, Option<Image>);

/// A record's state, walking back through its history.
enum State {
    Row(Vec<Triple>),
    /// It did not exist.
    Gone,
    /// Not known: only the columns an entry names are.
    Unknown,
}

/// The images before and after each of a record's entries (`chain`, in `row_log` order, up to
/// its newest), given the record as its table holds it now (`Some(None)`: not there; `None`:
/// the table cannot say, as when it was dropped). An image is partial (only some columns)
/// where the history does not give the whole row.
pub fn rebuild(chain: &[Entry], now: Option<Option<Vec<Triple>>>) -> Vec<Images> {
    let mut state = match now {
        Some(Some(row)) => State::Row(row),
        Some(None) => State::Gone,
        None => State::Unknown,
    };
    let mut images = Vec::with_capacity(chain.len());
    for entry in chain.iter().rev() {
        // An empty image (`{}`: the side of a merged entry a table does not log) says nothing.
        let old_data = entry.old_data.clone().filter(|image| !image.is_empty());
        let new_data = entry.new_data.clone().filter(|image| !image.is_empty());
        let (before, after, earlier) = match entry.op {
            EventOp::Insert => {
                let after = match state {
                    State::Row(row) => Some(row),
                    _ => new_data,
                };
                (None, after, State::Gone)
            }
            EventOp::Update => match (state, old_data) {
                (State::Row(row), Some(old)) => {
                    let before = laid_over(&row, Some(&old));
                    (Some(before.clone()), Some(row), State::Row(before))
                }
                // The table logs no old data: the row after is known, the one before is not
                // (the record's earlier history completes it).
                (State::Row(row), None) => (None, Some(row), State::Unknown),
                (State::Gone | State::Unknown, old) => (old, new_data, State::Unknown),
            },
            EventOp::Delete | EventOp::Truncate => {
                let earlier = old_data.clone().map_or(State::Unknown, State::Row);
                (old_data, None, earlier)
            }
            EventOp::DropTable => {
                let earlier = old_data.map_or(State::Unknown, State::Row);
                (None, None, earlier)
            }
            EventOp::Ddl | EventOp::Unknown(_) => {
                let earlier = match state {
                    State::Row(row) => State::Row(laid_over(&row, entry.old_data.as_deref())),
                    other => other,
                };
                (None, None, earlier)
            }
        };
        images.push((before, after));
        state = earlier;
    }
    images.reverse();
    images
}

/// `row` with the columns of `over` set to its values (added where `row` lacks them).
fn laid_over(row: &[Triple], over: Option<&[Triple]>) -> Vec<Triple> {
    let mut row = row.to_vec();
    for triple in over.unwrap_or_default() {
        match row.iter_mut().find(|own| own.0 == triple.0) {
            Some(slot) => *slot = triple.clone(),
            None => row.push(triple.clone()),
        }
    }
    row
}

/// One `row_log` row with its event and transaction, its images rebuilt.
#[derive(Debug, Clone, PartialEq)]
pub struct LoggedRow {
    pub id: i64,
    pub op: EventOp,
    pub table: TableName,
    /// `stmt_time`, microseconds since 1970.
    pub stmt_micros: i64,
    pub event_key: String,
    pub before: Option<Vec<Triple>>,
    pub after: Option<Vec<Triple>>,
    pub user_name: Option<String>,
    pub client_name: Option<String>,
    pub application_name: Option<String>,
    pub session_info: Option<String>,
}

/// Who made the change, as pgMemento recorded it; `None` when it recorded nothing.
pub fn context_of(row: &LoggedRow) -> Option<Context> {
    let mut context = Map::new();
    for (name, value) in [
        ("user_name", &row.user_name),
        ("client_name", &row.client_name),
        ("application_name", &row.application_name),
    ] {
        if let Some(value) = value.as_ref().filter(|value| !value.is_empty()) {
            context.insert(name.to_owned(), Json::String(value.clone()));
        }
    }
    if let Some(info) = &row.session_info {
        let value = serde_json::from_str(info).unwrap_or_else(|_| Json::String(info.clone()));
        context.insert("session_info".to_owned(), value);
    }
    (!context.is_empty()).then_some(context)
}

/// Imports pgMemento's log into the cache, round after round with `--follow`.
pub(super) async fn import(
    store: &Store,
    options: &ImportOptions,
    source: &SourceIdentity,
    stop: watch::Receiver<bool>,
    progress: &(dyn Fn(&ImportSummary) + Sync),
) -> Result<ImportSummary, ImportError> {
    store
        .check_table(AuditFormat::PgMemento, TABLE, COLUMNS)
        .await?;
    store
        .check_table(AuditFormat::PgMemento, EVENT_TABLE, EVENT_COLUMNS)
        .await?;
    store
        .check_table(
            AuditFormat::PgMemento,
            TRANSACTION_TABLE,
            TRANSACTION_COLUMNS,
        )
        .await?;
    let facts = store
        .session
        .query_one(
            "looking for pgMemento's new_data and audit_table_log",
            "SELECT EXISTS (SELECT FROM pg_attribute WHERE attrelid = 'pgmemento.row_log'::regclass
                              AND attname = 'new_data' AND NOT attisdropped),
                    to_regclass('pgmemento.audit_table_log') IS NOT NULL",
            &[],
        )
        .await?;
    let mut log = Log {
        store,
        new_data: facts.get(0),
        table_log: facts.get(1),
        audit_columns: HashMap::new(),
    };
    let mut sink = Sink::open(options, source)?;
    import_rounds(&mut log, store, &mut sink, options, stop, progress).await?;
    Ok(sink.summary)
}

struct Log<'a> {
    store: &'a Store,
    /// `row_log` has `new_data`; `audit_table_log` exists.
    new_data: bool,
    table_log: bool,
    /// Each table's audit id column, once looked up (`None`: the table is gone, or has none).
    audit_columns: HashMap<TableName, Option<String>>,
}

/// `to_jsonb` image of `value` as `[[column, JSON type, text], ...]` (NULL stays NULL).
fn image_sql(value: &str) -> String {
    format!(
        "CASE WHEN {value} IS NOT NULL THEN coalesce((SELECT json_agg(json_build_array(j.key, jsonb_typeof(j.value), j.value #>> '{{}}')) FROM jsonb_each({value}) j)::text, '[]') END"
    )
}

fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

impl Log<'_> {
    /// The audit id column of `table` as the table has it now (`None`: no such table, or it
    /// has no such column).
    async fn audit_column(&mut self, table: &TableName) -> Result<Option<String>, ImportError> {
        if let Some(column) = self.audit_columns.get(table) {
            return Ok(column.clone());
        }
        let named = if self.table_log {
            self.store
                .session
                .query_opt(
                    "reading pgMemento's audit_table_log",
                    "SELECT audit_id_column FROM pgmemento.audit_table_log
                     WHERE schema_name = $1 AND table_name = $2 AND upper(txid_range) IS NULL
                     ORDER BY id DESC LIMIT 1",
                    &[&table.schema, &table.name],
                )
                .await?
                .map(|row| row.get::<_, String>(0))
        } else {
            None
        };
        let column = named.unwrap_or_else(|| DEFAULT_AUDIT_ID_COLUMN.to_owned());
        let qualified = format!(
            "{}.{}",
            quote_ident(&table.schema),
            quote_ident(&table.name)
        );
        let exists = self
            .store
            .session
            .query_one(
                "looking up an audited table",
                "SELECT EXISTS (SELECT FROM pg_attribute WHERE attrelid = to_regclass($1)
                                  AND attname = $2 AND NOT attisdropped)",
                &[&qualified, &column],
            )
            .await?
            .get::<_, bool>(0);
        let column = exists.then_some(column);
        self.audit_columns.insert(table.clone(), column.clone());
        Ok(column)
    }
}

impl TransactionLog for Log<'_> {
    type Row = LoggedRow;

    /// A batch holds its rows' images and their records' later ones: fewer transactions than
    /// the wiki trigger's keep its memory down.
    const BATCH_TRANSACTIONS: usize = 100;

    const TRANSACTIONS_SQL: &'static str = "SELECT t.txid, min(r.id), max(r.id)
         FROM pgmemento.transaction_log t
         JOIN pgmemento.table_event_log e ON e.transaction_id = t.id
         JOIN pgmemento.row_log r ON r.event_key = e.event_key
         WHERE t.txid >= $1
           AND txid_visible_in_snapshot(t.txid, $2::text::txid_snapshot)
           AND t.txid <> ALL($3)
         GROUP BY t.txid HAVING max(r.id) > $4 ORDER BY 3";

    const ENDED_SQL: &'static str = "SELECT DISTINCT t.txid FROM pgmemento.transaction_log t
         JOIN pgmemento.table_event_log e ON e.transaction_id = t.id
         JOIN pgmemento.row_log r ON r.event_key = e.event_key
         WHERE t.txid >= $1 AND txid_visible_in_snapshot(t.txid, $2::text::txid_snapshot)
         ORDER BY 1";

    async fn read(
        &mut self,
        transactions: &[i64],
        first: i64,
        last: i64,
    ) -> Result<HashMap<i64, Vec<LoggedRow>>, ImportError> {
        let new_data = if self.new_data {
            image_sql("r.new_data")
        } else {
            "NULL::text".to_owned()
        };
        let sql = "SELECT r.id, r.audit_id, e.op_id::int2, e.schema_name, e.table_name,
                    (extract(epoch FROM e.stmt_time) * 1000000)::int8, r.event_key, t.txid,
                    t.user_name, t.client_name, t.application_name, t.session_info::text
             FROM pgmemento.row_log r
             JOIN pgmemento.table_event_log e ON e.event_key = r.event_key
             JOIN pgmemento.transaction_log t ON t.id = e.transaction_id
             WHERE r.id BETWEEN $2 AND $3 AND t.txid = ANY($1)
             ORDER BY r.id";
        let rows = self
            .store
            .session
            .query(
                "reading pgMemento's row_log",
                sql,
                &[&transactions, &first, &last],
            )
            .await?;
        // Each row's record, and each record's table.
        let mut audit_ids: Vec<i64> = Vec::with_capacity(rows.len());
        let mut tables: Vec<(TableName, Vec<i64>)> = Vec::new();
        for row in &rows {
            let audit_id: i64 = row.get(1);
            let table = TableName::new(
                row.get::<_, Option<String>>(3).unwrap_or_default(),
                row.get::<_, Option<String>>(4).unwrap_or_default(),
            );
            audit_ids.push(audit_id);
            match tables.iter_mut().find(|(known, _)| *known == table) {
                Some((_, ids)) => ids.push(audit_id),
                None => tables.push((table, vec![audit_id])),
            }
        }
        audit_ids.sort_unstable();
        audit_ids.dedup();
        // The records' rows from the batch on, and the records as their tables hold them now,
        // in one statement (one snapshot).
        let mut parts = vec![format!(
            "SELECT r.audit_id, r.id, e.op_id::int2, {}, {new_data}
             FROM pgmemento.row_log r JOIN pgmemento.table_event_log e ON e.event_key = r.event_key
             WHERE r.audit_id = ANY($1) AND r.id >= $2",
            image_sql("r.old_data")
        )];
        let mut known_now: Vec<i64> = Vec::new();
        for (table, ids) in &tables {
            if let Some(column) = self.audit_column(table).await? {
                known_now.extend(ids);
                parts.push(format!(
                    "SELECT t.{column}::int8, NULL::int8, NULL::int2, {}, NULL::text
                     FROM {}.{} t WHERE t.{column} = ANY($1)",
                    image_sql("to_jsonb(t)"),
                    quote_ident(&table.schema),
                    quote_ident(&table.name),
                    column = quote_ident(&column),
                ));
            }
        }
        let sql = parts.join(" UNION ALL ");
        let chain_rows = self
            .store
            .session
            .query(
                "reading pgMemento's later rows and the records now",
                &sql,
                &[&audit_ids, &first],
            )
            .await?;
        let mut chains: HashMap<i64, Vec<(i64, Entry)>> = HashMap::new();
        let mut now: HashMap<i64, Vec<Triple>> = HashMap::new();
        for row in &chain_rows {
            let audit_id: i64 = row.get(0);
            let image = |column: usize| -> Result<Option<Vec<Triple>>, ImportError> {
                row.get::<_, Option<String>>(column)
                    .map(|text| triples_of(&text))
                    .transpose()
                    .map_err(|reason| {
                        ImportError::BadRow(RowError {
                            row: format!("row_log audit_id {audit_id}"),
                            field: "old_data".to_owned(),
                            reason,
                        })
                    })
            };
            match row.get::<_, Option<i64>>(1) {
                Some(id) => chains.entry(audit_id).or_default().push((
                    id,
                    Entry {
                        op: EventOp::of(row.get(2)),
                        old_data: image(3)?,
                        new_data: image(4)?,
                    },
                )),
                None => {
                    now.insert(audit_id, image(3)?.unwrap_or_default());
                }
            }
        }
        known_now.sort_unstable();
        let mut images: HashMap<i64, Images> = HashMap::new();
        for (audit_id, mut chain) in chains {
            chain.sort_by_key(|(id, _)| *id);
            let record_now = known_now
                .binary_search(&audit_id)
                .is_ok()
                .then(|| now.remove(&audit_id));
            let entries: Vec<Entry> = chain.iter().map(|(_, entry)| entry.clone()).collect();
            for ((id, _), pair) in chain.iter().zip(rebuild(&entries, record_now)) {
                images.insert(*id, pair);
            }
        }
        let mut by_tx: HashMap<i64, Vec<LoggedRow>> = HashMap::new();
        for row in &rows {
            let id: i64 = row.get(0);
            let (before, after) = images.remove(&id).unwrap_or((None, None));
            by_tx.entry(row.get(7)).or_default().push(LoggedRow {
                id,
                op: EventOp::of(row.get(2)),
                table: TableName::new(
                    row.get::<_, Option<String>>(3).unwrap_or_default(),
                    row.get::<_, Option<String>>(4).unwrap_or_default(),
                ),
                stmt_micros: row.get::<_, Option<i64>>(5).unwrap_or(i64::MIN),
                event_key: row.get(6),
                before,
                after,
                user_name: row.get(8),
                client_name: row.get(9),
                application_name: row.get(10),
                session_info: row.get(11),
            });
        }
        Ok(by_tx)
    }

    /// Writes one transaction's rows in `row_log` order: a TRUNCATE once per event, DDL rows
    /// not at all; its time is the start of its last statement.
    async fn write(
        &mut self,
        sink: &mut Sink,
        txid: i64,
        rows: Vec<LoggedRow>,
    ) -> Result<(), ImportError> {
        let mut changes = Vec::with_capacity(rows.len());
        let mut committed_micros = i64::MIN;
        let mut truncated: Vec<&str> = Vec::new();
        for row in &rows {
            committed_micros = committed_micros.max(row.stmt_micros);
            if row.op == EventOp::Truncate {
                if truncated.contains(&row.event_key.as_str()) {
                    continue;
                }
                truncated.push(&row.event_key);
            }
            let catalog = sink
                .catalog_schema(
                    &self.store.session,
                    self.store.server_version_num,
                    &row.table,
                )
                .await?
                .cloned();
            match change_of(row, catalog.as_ref()) {
                Ok(Some(change)) => changes.push((change, context_of(row))),
                Ok(None) => {}
                Err(error) => sink.bad_row(error)?,
            }
        }
        sink.write(ImportedTransaction::new(
            Some(txid),
            committed_micros,
            changes,
        ))
    }
}

/// The change one rebuilt row records (`None` for a DDL row); `catalog` is its table as the
/// catalog beside the store has it.
pub fn change_of(
    row: &LoggedRow,
    catalog: Option<&crate::model::RelationSchema>,
) -> Result<Option<ImportedChange>, RowError> {
    let error = |field: &str, reason: String| RowError {
        row: format!("row_log id {}", row.id),
        field: field.to_owned(),
        reason,
    };
    let fields = |image: &Option<Vec<Triple>>| -> Option<Fields> {
        image.as_ref().map(|triples| fields_from(triples, catalog))
    };
    let op = match row.op {
        EventOp::Insert => ImportedOp::Insert,
        EventOp::Update => ImportedOp::Update,
        EventOp::Delete => ImportedOp::Delete,
        EventOp::Truncate => ImportedOp::Truncate,
        EventOp::Ddl | EventOp::DropTable => return Ok(None),
        EventOp::Unknown(op_id) => {
            return Err(error(
                "op_id",
                format!(
                    "of its event is {op_id}, not a change pgMemento logs (3 INSERT, 4 UPDATE, 7 DELETE, 8 TRUNCATE)"
                ),
            ));
        }
    };
    let (before, after) = match op {
        ImportedOp::Truncate => (None, None),
        ImportedOp::Insert => (None, fields(&row.after)),
        ImportedOp::Delete => (fields(&row.before), None),
        ImportedOp::Update => (fields(&row.before), fields(&row.after)),
    };
    match op {
        ImportedOp::Insert if after.is_none() => {
            return Err(error(
                "new_data",
                "is NULL, and the record's later history does not give its row (its table logs no new data, and the record is no longer in it)".to_owned(),
            ));
        }
        ImportedOp::Delete if before.is_none() => {
            return Err(error(
                "old_data",
                "is NULL for a DELETE: its table logs no old data (log_old_data false)".to_owned(),
            ));
        }
        ImportedOp::Update if after.is_none() => {
            return Err(error(
                "new_data",
                "is NULL, and the record's later history does not give its row after this UPDATE (its table logs no new data, and no longer holds the record)".to_owned(),
            ));
        }
        _ => {}
    }
    Ok(Some(ImportedChange {
        table: row.table.clone(),
        op,
        before,
        after,
        key: Vec::new(),
        types: Vec::new(),
    }))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // In tests a failed unwrap is a failed test.
mod tests {
    use super::*;

    fn triples(pairs: &[(&str, &str)]) -> Vec<Triple> {
        pairs
            .iter()
            .map(|(name, value)| {
                (
                    (*name).to_owned(),
                    "number".to_owned(),
                    Some((*value).to_owned()),
                )
            })
            .collect()
    }

    fn entry(op: EventOp, old: Option<&[(&str, &str)]>) -> Entry {
        Entry {
            op,
            old_data: old.map(triples),
            new_data: None,
        }
    }

    #[test]
    fn rows_are_rebuilt_backwards_from_the_table_now() {
        // Insert (no data logged), two updates of different columns, the row as it is now.
        let chain = [
            entry(EventOp::Insert, None),
            entry(EventOp::Update, Some(&[("a", "1")])),
            entry(EventOp::Update, Some(&[("b", "10")])),
        ];
        let now = triples(&[("id", "7"), ("a", "2"), ("b", "20")]);
        let images = rebuild(&chain, Some(Some(now.clone())));
        let v1 = triples(&[("id", "7"), ("a", "1"), ("b", "10")]);
        let v2 = triples(&[("id", "7"), ("a", "2"), ("b", "10")]);
        assert_eq!(images[0], (None, Some(v1.clone())));
        assert_eq!(images[1], (Some(v1), Some(v2.clone())));
        assert_eq!(images[2], (Some(v2), Some(now)));
    }

    #[test]
    fn a_table_that_logs_no_old_data_keeps_its_new_rows_and_no_guesses() {
        // log_old_data false, log_new_data true: an UPDATE's old side is NULL or {}.
        let inserted = triples(&[("id", "1"), ("a", "1")]);
        let chain = [
            Entry {
                op: EventOp::Insert,
                old_data: None,
                new_data: Some(inserted.clone()),
            },
            Entry {
                op: EventOp::Update,
                old_data: Some(Vec::new()),
                new_data: Some(triples(&[("a", "2")])),
            },
        ];
        let now = triples(&[("id", "1"), ("a", "2")]);
        let images = rebuild(&chain, Some(Some(now.clone())));
        // The update's row before is left to the record's history, not taken to be today's.
        assert_eq!(images[1], (None, Some(now)));
        assert_eq!(images[0], (None, Some(inserted)));
    }

    #[test]
    fn a_delete_gives_the_whole_row_before_it() {
        let full = [("id", "3"), ("a", "5")];
        let chain = [
            entry(EventOp::Insert, None),
            entry(EventOp::Update, Some(&[("a", "4")])),
            entry(EventOp::Delete, Some(&full)),
        ];
        // Not in the table now.
        let images = rebuild(&chain, Some(None));
        assert_eq!(images[2], (Some(triples(&full)), None));
        assert_eq!(images[0], (None, Some(triples(&[("id", "3"), ("a", "4")]))));
    }

    #[test]
    fn without_the_table_an_update_keeps_only_its_columns() {
        let chain = [entry(EventOp::Update, Some(&[("a", "4")]))];
        let images = rebuild(&chain, None);
        assert_eq!(images[0], (Some(triples(&[("a", "4")])), None));
        let row = LoggedRow {
            id: 9,
            op: EventOp::Update,
            table: TableName::new("public", "t"),
            stmt_micros: 0,
            event_key: "k".into(),
            before: images[0].0.clone(),
            after: None,
            user_name: None,
            client_name: None,
            application_name: None,
            session_info: None,
        };
        // Its state after is not known: an error of its row, not a guess.
        let error = change_of(&row, None).unwrap_err();
        assert_eq!(error.field, "new_data");
        let with_new = LoggedRow {
            after: Some(triples(&[("a", "5")])),
            ..row.clone()
        };
        let change = change_of(&with_new, None).unwrap().unwrap();
        assert_eq!(change.before, Some(vec![("a".into(), Some("4".into()))]));
        assert_eq!(change.after, Some(vec![("a".into(), Some("5".into()))]));
        let unknown = LoggedRow {
            op: EventOp::Unknown(42),
            ..row
        };
        let error = change_of(&unknown, None).unwrap_err();
        assert_eq!(error.row, "row_log id 9");
        assert!(error.reason.contains("42"), "{error}");
    }

    #[test]
    fn the_context_is_who_and_the_session_info() {
        let row = LoggedRow {
            id: 1,
            op: EventOp::Insert,
            table: TableName::new("public", "t"),
            stmt_micros: 0,
            event_key: "k".into(),
            before: None,
            after: None,
            user_name: Some("ann".into()),
            client_name: None,
            application_name: Some(String::new()),
            session_info: Some(r#"{"client_user":"tester"}"#.into()),
        };
        let context = context_of(&row).unwrap();
        assert_eq!(context["user_name"], "ann");
        assert_eq!(context["session_info"]["client_user"], "tester");
        assert!(!context.contains_key("application_name"));
    }
}
