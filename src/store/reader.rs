//! Reads the cache: what it came from, its tables, and pages of changes newest first.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::model::{
    Change, ChangeId, LoggedChange, Lsn, Op, RelationSchema, Row, SchemaChange, Search, TableName,
    Term, TransactionInfo, Value, Xid,
};
use chrono::{DateTime, Utc};

use super::codec::{self, EncodedImages};
use super::db::{Db, DbError, DbRow, Dialect, Query, Remote, ToDb};
use super::{CaptureState, SourceIdentity, SqliteContext, StoreError, op_code, op_from_code};

/// A read handle on a cache file. Reading never writes, so it can run beside a capture.
pub struct Cache {
    connection: Db,
    path: PathBuf,
    relations: RefCell<HashMap<i64, Arc<RelationSchema>>>,
}

/// A table the cache holds history for. A table dropped and created again under the same name is
/// two tables, each with its own id and history.
#[derive(Debug, Clone)]
pub struct TableSummary {
    /// The cache's id of the table.
    pub id: i64,
    pub table: TableName,
    pub change_count: i64,
    /// Its newest schema version.
    pub schema: Arc<RelationSchema>,
    /// When it was dropped, if the schema log said so.
    pub dropped_at: Option<DateTime<Utc>>,
    /// A newer table has the same name: this one was dropped (or renamed) before it was created.
    pub superseded: bool,
}

impl TableSummary {
    /// The name as lists show it: `orders`, `orders (dropped 2026-11-26 14:02:07 UTC)`, or
    /// `orders (earlier table)` when a newer table took the name.
    pub fn label(&self) -> String {
        match (self.dropped_at, self.superseded) {
            (Some(time), _) => format!(
                "{} (dropped {})",
                self.table.short(),
                time.format("%Y-%m-%d %H:%M:%S UTC")
            ),
            (None, true) => format!("{} (earlier table)", self.table.short()),
            (None, false) => self.table.short(),
        }
    }
}

/// A table as it is now, in the cache's eyes.
#[derive(Debug, Clone)]
pub struct TableState {
    pub id: i64,
    /// Its newest schema version.
    pub schema: Arc<RelationSchema>,
    /// The schema change entry that dropped it.
    pub dropped_by: Option<ChangeId>,
}

/// A record key as a user gives it: column name to value (JSON string or number).
#[derive(Debug, Clone, PartialEq)]
pub struct KeyFilter(pub serde_json::Map<String, serde_json::Value>);

/// A filter as SQL: a condition over `changes c`, `transactions t` and `contexts ctx`, its
/// parameters, and which joins it needs.
pub(crate) struct FilterSql {
    conditions: Vec<String>,
    pub condition: String,
    values: Vec<Box<dyn ToDb>>,
    /// How the database writes what the engines say differently.
    pub dialect: Dialect,
    pub needs_transactions: bool,
    pub needs_contexts: bool,
    /// Table ids of a table filter, for queries over the per-minute rollup.
    pub table_ids: Option<Vec<String>>,
    pub op: Option<&'static str>,
    /// True when the per-minute rollup can answer counts (table, operation and time terms only).
    pub only_rollup_terms: bool,
}

impl FilterSql {
    fn new(dialect: Dialect) -> Self {
        Self {
            conditions: Vec::new(),
            condition: String::new(),
            values: Vec::new(),
            dialect,
            needs_transactions: false,
            needs_contexts: false,
            table_ids: None,
            op: None,
            only_rollup_terms: true,
        }
    }

    fn bind(&mut self, value: Box<dyn ToDb>) -> String {
        self.values.push(value);
        format!("?{}", self.values.len())
    }

    pub fn params(&self) -> Vec<&dyn ToDb> {
        self.values.iter().map(|value| value.as_ref()).collect()
    }

    /// The `FROM` clause with just the joins the condition needs.
    pub fn from(&self) -> &'static str {
        match (self.needs_transactions, self.needs_contexts) {
            (false, false) => "FROM changes c",
            (true, false) => "FROM changes c JOIN transactions t ON t.id = c.tx_id",
            (false, true) => "FROM changes c LEFT JOIN contexts ctx ON ctx.id = c.context_id",
            (true, true) => {
                "FROM changes c JOIN transactions t ON t.id = c.tx_id LEFT JOIN contexts ctx ON ctx.id = c.context_id"
            }
        }
    }
}

/// Which changes to list. Everything combines with AND.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LogFilter {
    pub table: Option<TableName>,
    /// With `table`: only the table of that name with this id (a name dropped and created again
    /// has several); `None` for all of them.
    pub table_id: Option<i64>,
    /// Needs `table`.
    pub key: Option<KeyFilter>,
    pub op: Option<Op>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    /// Context fields that must equal the given text (`user=ann`; dotted names reach into objects).
    pub context: Vec<(String, String)>,
    /// Context fields whose text must start with the given text (`endpoint=PUT /orders` matches
    /// `PUT /orders/7`).
    pub context_prefixes: Vec<(String, String)>,
    /// Only updates that changed each of these columns.
    pub changed: Vec<String>,
    pub xid: Option<Xid>,
    /// Search terms (`model::Search`): column values, keys as shown, free text.
    pub search: Option<Search>,
    /// Only changes older than this one (for paging).
    pub before: Option<ChangeId>,
    /// At most this many changes; `None` for all.
    pub limit: Option<usize>,
}

/// Text for a `LIKE … ESCAPE '\\'` pattern that matches it literally.
fn like_escape(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

fn join_ids(ids: &[i64]) -> String {
    ids.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

pub(crate) fn load_relation(
    connection: &impl Query,
    path: &Path,
    id: i64,
) -> Result<Arc<RelationSchema>, StoreError> {
    let definition: String = connection
        .query_row(
            "SELECT definition FROM relations WHERE id = ?1",
            &[&id],
            |row| row.get(0),
        )
        .context(path, "reading a schema version")?;
    serde_json::from_str(&definition)
        .map(Arc::new)
        .map_err(|error| StoreError::Damaged {
            path: path.to_owned(),
            what: format!("schema version {id}: {error}"),
        })
}

impl Cache {
    /// Opens an existing cache; refuses files that are not rowtrail caches.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let connection = Db::Sqlite(super::open_existing(path)?);
        super::read_source(&connection, path)?;
        Ok(Self {
            connection,
            path: path.to_owned(),
            relations: RefCell::new(HashMap::new()),
        })
    }

    /// Opens a shared store through its connection (`crate::shared` makes one); `location`
    /// names it in messages. Refuses a database that holds no rowtrail store.
    pub fn open_remote(remote: Box<dyn Remote>, location: &str) -> Result<Self, StoreError> {
        let connection = Db::Remote {
            remote,
            depth: std::cell::Cell::new(0),
        };
        let path = PathBuf::from(location);
        super::read_source(&connection, &path)?;
        Ok(Self {
            connection,
            path,
            relations: RefCell::new(HashMap::new()),
        })
    }

    /// True for a shared store on PostgreSQL, false for a cache file.
    pub fn is_shared(&self) -> bool {
        self.connection.dialect() == Dialect::Postgres
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `read` in one read transaction: it sees one state of the cache however much capture
    /// writes meanwhile, and takes the file's lock once instead of once per query. Not nestable.
    pub fn snapshot<T, E: From<StoreError>>(
        &self,
        read: impl FnOnce() -> Result<T, E>,
    ) -> Result<T, E> {
        let transaction = self
            .connection
            .transaction()
            .context(&self.path, "starting a read")?;
        let result = read()?;
        transaction.commit().context(&self.path, "ending a read")?;
        Ok(result)
    }

    pub fn source(&self) -> Result<SourceIdentity, StoreError> {
        super::read_source(&self.connection, &self.path)
    }

    pub fn capture_state(&self) -> Result<Option<CaptureState>, StoreError> {
        super::read_capture_state(&self.connection, &self.path)
    }

    /// The table with this oid: its id, its newest schema version, and the change that dropped
    /// it, if one did.
    pub fn table_by_oid(&self, oid: crate::model::Oid) -> Result<TableState, StoreError> {
        let found: Option<(i64, Option<i64>)> = self
            .connection
            .query_opt(
                "SELECT id, dropped_change FROM tables WHERE oid = ?1",
                &[&oid],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .context(&self.path, "finding a table")?;
        let (id, dropped) =
            found.ok_or_else(|| self.damaged(format!("no table with oid {oid}")))?;
        Ok(TableState {
            id,
            schema: self.newest_schema(id)?,
            dropped_by: dropped.map(ChangeId),
        })
    }

    /// The newest schema version of a table.
    pub(crate) fn newest_schema(&self, table_id: i64) -> Result<Arc<RelationSchema>, StoreError> {
        let id: i64 = self
            .connection
            .query_row(
                "SELECT max(id) FROM relations WHERE table_id = ?1",
                &[&table_id],
                |row| row.get(0),
            )
            .context(&self.path, "reading schema versions")?;
        self.relation(id)
    }

    /// A schema version by its id.
    pub(crate) fn schema_version(&self, id: i64) -> Result<Arc<RelationSchema>, StoreError> {
        self.relation(id)
    }

    pub(super) fn relation(&self, id: i64) -> Result<Arc<RelationSchema>, StoreError> {
        if let Some(schema) = self.relations.borrow().get(&id) {
            return Ok(schema.clone());
        }
        let schema = load_relation(&self.connection, &self.path, id)?;
        self.relations.borrow_mut().insert(id, schema.clone());
        Ok(schema)
    }

    /// Every table with history, by name (a name's tables oldest first), with its change count,
    /// newest schema version, and whether it was dropped.
    pub fn tables(&self) -> Result<Vec<TableSummary>, StoreError> {
        let rows: Vec<(i64, i64, i64, Option<i64>, bool)> = self
            .connection
            .query_map(
                "SELECT t.id, t.change_count, (SELECT max(r.id) FROM relations r WHERE r.table_id = t.id),
                        (SELECT tx.committed_at FROM changes d JOIN transactions tx ON tx.id = d.tx_id
                         WHERE d.id = t.dropped_change),
                        EXISTS (SELECT 1 FROM tables n WHERE n.schema_name = t.schema_name
                                AND n.name = t.name AND n.id > t.id)
                 FROM tables t ORDER BY t.schema_name, t.name, t.id",
                &[],
                |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?, row.get(4)?)),
            )
            .context(&self.path, "listing tables")?;
        rows.into_iter()
            .map(|(id, change_count, relation_id, dropped_at, superseded)| {
                let schema = self.relation(relation_id)?;
                Ok(TableSummary {
                    id,
                    table: schema.table.clone(),
                    change_count,
                    schema,
                    dropped_at: dropped_at.and_then(DateTime::from_timestamp_micros),
                    superseded,
                })
            })
            .collect()
    }

    /// The table of this name that existed right after change `cut`: the newest one whose history
    /// had begun by then. `None` when none had, or when it had been dropped by then.
    pub(crate) fn table_at_moment(
        &self,
        table: &TableName,
        cut: ChangeId,
    ) -> Result<Option<i64>, StoreError> {
        let (ids, _) = self.find_table(table)?;
        for id in ids.iter().rev() {
            let (first, dropped): (Option<i64>, Option<i64>) = self
                .connection
                .query_row(
                    "SELECT (SELECT min(c.id) FROM changes c WHERE c.table_id = ?1),
                            (SELECT dropped_change FROM tables WHERE id = ?1)",
                    &[id],
                    |row| Ok((row.get(0)?, row.get(1)?)),
                )
                .context(&self.path, "finding a table")?;
            if first.is_some_and(|first| first <= cut.0) {
                return Ok(match dropped {
                    Some(dropped) if dropped <= cut.0 => None,
                    _ => Some(*id),
                });
            }
        }
        Ok(None)
    }

    /// The ids of the tables with this name (a table dropped and created again has two), and the
    /// newest schema version among them.
    pub(crate) fn find_table(
        &self,
        table: &TableName,
    ) -> Result<(Vec<i64>, Arc<RelationSchema>), StoreError> {
        let ids: Vec<(i64, i64)> = self
            .connection
            .query_map(
                "SELECT t.id, (SELECT max(r.id) FROM relations r WHERE r.table_id = t.id)
                 FROM tables t WHERE t.schema_name = ?1 AND t.name = ?2 ORDER BY t.id",
                &[&table.schema, &table.name],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .context(&self.path, "finding a table")?;
        let Some(&(_, newest)) = ids.last() else {
            let known: Vec<String> = self
                .tables()?
                .iter()
                .map(|summary| summary.table.to_string())
                .collect();
            return Err(StoreError::UnknownTable {
                table: table.to_string(),
                known: match known.is_empty() {
                    true => "no tables yet".to_owned(),
                    false => known.join(", "),
                },
            });
        };
        Ok((
            ids.iter().map(|(id, _)| *id).collect(),
            self.relation(newest)?,
        ))
    }

    /// Resolves a user's key against a table's key columns into the stored key text.
    pub fn resolve_key(&self, table: &TableName, key: &KeyFilter) -> Result<String, StoreError> {
        let (_, schema) = self.find_table(table)?;
        resolve_key(&schema, key).map(|values| codec::encode_key(&values))
    }

    /// Changes matching `filter`, newest first.
    pub fn log(&self, filter: &LogFilter) -> Result<Vec<LoggedChange>, StoreError> {
        let sql = self.filter_sql(filter)?;
        let limit = match filter.limit {
            Some(limit) => format!("LIMIT {limit}"),
            None => String::new(),
        };
        self.changes_where(
            &sql.condition,
            &sql.params(),
            &format!("ORDER BY c.id DESC {limit}"),
        )
    }

    /// Turns a filter into an SQL condition over `changes c`, `transactions t` and `contexts ctx`.
    pub(crate) fn filter_sql(&self, filter: &LogFilter) -> Result<FilterSql, StoreError> {
        let mut sql = FilterSql::new(self.connection.dialect());
        if let Some(table) = &filter.table {
            let (mut ids, mut schema) = self.find_table(table)?;
            if let Some(id) = filter.table_id.filter(|id| ids.contains(id)) {
                ids = vec![id];
                schema = self.newest_schema(id)?;
            }
            let ids: Vec<String> = ids.iter().map(ToString::to_string).collect();
            let id_list = ids.join(",");
            sql.conditions.push(format!("c.table_id IN ({id_list})"));
            sql.table_ids = Some(ids);
            if let Some(key) = &filter.key {
                let key = codec::encode_key(&resolve_key(&schema, key)?);
                let placeholder = sql.bind(Box::new(key));
                sql.conditions
                    .push(super::under_or_moved_from(&id_list, &placeholder, None));
                sql.only_rollup_terms = false;
            }
        } else if filter.key.is_some() {
            return Err(StoreError::BadKey(
                "a key needs a table: add --table".to_owned(),
            ));
        }
        if let Some(op) = filter.op {
            let placeholder = sql.bind(Box::new(op_code(op)));
            sql.conditions.push(format!("c.op = {placeholder}"));
            sql.op = Some(op_code(op));
        }
        if let Some(since) = filter.since {
            let placeholder = sql.bind(Box::new(since.timestamp_micros()));
            sql.conditions
                .push(format!("t.committed_at >= {placeholder}"));
            sql.needs_transactions = true;
        }
        if let Some(until) = filter.until {
            let placeholder = sql.bind(Box::new(until.timestamp_micros()));
            sql.conditions
                .push(format!("t.committed_at <= {placeholder}"));
            sql.needs_transactions = true;
        }
        for (field, value) in &filter.context {
            let path = sql.bind(Box::new(sql.dialect.json_path(field)));
            let value = sql.bind(Box::new(value.clone()));
            sql.conditions.push(format!(
                "{} = {value}",
                sql.dialect.json_path_text("ctx.body", &path)
            ));
            sql.needs_contexts = true;
            sql.only_rollup_terms = false;
        }
        for (field, prefix) in &filter.context_prefixes {
            let path = sql.bind(Box::new(sql.dialect.json_path(field)));
            let pattern = sql.bind(Box::new(format!("{}%", like_escape(prefix))));
            sql.conditions.push(format!(
                "{} LIKE {pattern} ESCAPE '\\'",
                sql.dialect.json_path_text("ctx.body", &path)
            ));
            sql.needs_contexts = true;
            sql.only_rollup_terms = false;
        }
        for column in &filter.changed {
            let mut by_position: std::collections::BTreeMap<usize, Vec<i64>> = Default::default();
            for (relation_id, _, schema) in self.all_relations()? {
                if let Some(index) = schema.column_index(column) {
                    by_position.entry(index).or_default().push(relation_id);
                }
            }
            let alternatives: Vec<String> = by_position
                .iter()
                .map(|(index, relations)| {
                    format!(
                        "(c.relation_id IN ({}) AND {})",
                        join_ids(relations),
                        sql.dialect.json_has("c.before", *index)
                    )
                })
                .collect();
            sql.conditions.push(match alternatives.is_empty() {
                true => "0 = 1".to_owned(),
                false => format!("(c.op = 'U' AND ({}))", alternatives.join(" OR ")),
            });
            sql.only_rollup_terms = false;
        }
        if let Some(xid) = filter.xid {
            let placeholder = sql.bind(Box::new(i64::from(xid.0)));
            sql.conditions.push(format!("t.xid = {placeholder}"));
            sql.needs_transactions = true;
            sql.only_rollup_terms = false;
        }
        if let Some(search) = &filter.search {
            self.search_sql(&mut sql, search)?;
        }
        if let Some(before) = filter.before {
            let placeholder = sql.bind(Box::new(before.0));
            sql.conditions.push(format!("c.id < {placeholder}"));
        }
        if sql.conditions.is_empty() {
            sql.conditions.push("1 = 1".to_owned());
        }
        sql.condition = sql.conditions.join(" AND ");
        Ok(sql)
    }

    /// Adds the terms of a search to a filter's SQL.
    fn search_sql(&self, sql: &mut FilterSql, search: &Search) -> Result<(), StoreError> {
        for term in &search.terms {
            sql.only_rollup_terms = false;
            match term {
                Term::Text(text) => {
                    let pattern = format!("%{}%", like_escape(text));
                    let placeholder = sql.bind(Box::new(pattern));
                    sql.conditions.push(format!(
                        "(c.key LIKE {placeholder} ESCAPE '\\' OR c.after LIKE {placeholder} ESCAPE '\\' OR c.before LIKE {placeholder} ESCAPE '\\')"
                    ));
                }
                Term::Column {
                    table,
                    column,
                    value,
                } => {
                    // Schema versions with this column, by the column's position.
                    let mut by_position: std::collections::BTreeMap<usize, Vec<i64>> =
                        Default::default();
                    for (relation_id, _, schema) in self.all_relations()? {
                        if table.as_ref().is_some_and(|table| *table != schema.table) {
                            continue;
                        }
                        if let Some(index) = schema.column_index(column) {
                            by_position.entry(index).or_default().push(relation_id);
                        }
                    }
                    if by_position.is_empty() {
                        return Err(StoreError::BadSearch(format!(
                            "no table{} in this cache has a column named {column}: check the name (it is matched exactly)",
                            table
                                .as_ref()
                                .map_or(String::new(), |table| format!(" named {table}"))
                        )));
                    }
                    let indexed = self.search_by_reference(table.as_ref(), column)?;
                    let value = sql.bind(Box::new(value.clone()));
                    let dialect = sql.dialect;
                    let alternatives: Vec<String> = by_position
                        .iter()
                        .map(|(index, relations)| {
                            format!(
                                "(c.relation_id IN ({}) AND ({} = {value} OR (CASE c.op WHEN 'U' THEN {} ELSE {} END) = {value}))",
                                join_ids(relations),
                                dialect.json_element("c.after", *index),
                                dialect.json_member("c.before", *index),
                                dialect.json_element("c.before", *index),
                            )
                        })
                        .collect();
                    let images = format!("({})", alternatives.join(" OR "));
                    sql.conditions.push(match indexed {
                        // Up to where the index reaches, it names the changes; newer ones are
                        // read as they are.
                        Some((links, covered)) => format!(
                            "((c.id <= {covered} AND c.id IN (SELECT r.change_id FROM refs r
                                 WHERE r.link_id IN ({}) AND r.value = {}))
                              OR (c.id > {covered} AND {images}))",
                            join_ids(&links),
                            dialect.json_array(&[format!("CAST({value} AS TEXT)")])
                        ),
                        None => images,
                    });
                }
                Term::Key(pairs) => {
                    // Whole keys are one index lookup per table; part of a key is matched by
                    // position in the stored key.
                    let mut whole: std::collections::BTreeMap<String, Vec<i64>> =
                        Default::default();
                    let mut partial: std::collections::BTreeMap<Vec<usize>, Vec<i64>> =
                        Default::default();
                    for (relation_id, table_id, schema) in self.all_relations()? {
                        let names: Vec<&str> = schema.key_column_names().collect();
                        let positions: Option<Vec<usize>> = pairs
                            .iter()
                            .map(|(name, _)| names.iter().position(|key| key == name))
                            .collect();
                        let Some(positions) = positions else {
                            continue;
                        };
                        if positions.len() == names.len() {
                            let mut values = vec![Value::Null; names.len()];
                            for (position, (_, value)) in positions.iter().zip(pairs) {
                                values[*position] = Value::text(value.clone());
                            }
                            let tables = whole.entry(codec::encode_key(&values)).or_default();
                            if !tables.contains(&table_id) {
                                tables.push(table_id);
                            }
                        } else {
                            partial.entry(positions).or_default().push(relation_id);
                        }
                    }
                    if whole.is_empty() && partial.is_empty() {
                        let names: Vec<&str> =
                            pairs.iter().map(|(name, _)| name.as_str()).collect();
                        return Err(StoreError::BadSearch(format!(
                            "no table in this cache has a key with {}: check the names, or search for a column with {}:VALUE",
                            names.join(", "),
                            names.first().copied().unwrap_or("column")
                        )));
                    }
                    let mut alternatives = Vec::new();
                    for (key, tables) in whole {
                        let key = sql.bind(Box::new(key));
                        alternatives.push(format!(
                            "(c.table_id IN ({}) AND c.key = {key})",
                            join_ids(&tables)
                        ));
                    }
                    for (positions, relations) in partial {
                        let mut parts =
                            vec![format!("c.relation_id IN ({})", join_ids(&relations))];
                        for (position, (_, value)) in positions.iter().zip(pairs) {
                            let value = sql.bind(Box::new(value.clone()));
                            parts.push(format!(
                                "{} = {value}",
                                sql.dialect.json_element("c.key", *position)
                            ));
                        }
                        alternatives.push(format!("({})", parts.join(" AND ")));
                    }
                    sql.conditions
                        .push(format!("({})", alternatives.join(" OR ")));
                }
            }
        }
        Ok(())
    }

    /// Every schema version in the cache: its id, its table's id, and the version.
    pub(super) fn all_relations(&self) -> Result<Vec<(i64, i64, Arc<RelationSchema>)>, StoreError> {
        let ids: Vec<(i64, i64)> = self
            .connection
            .query_map(
                "SELECT id, table_id FROM relations ORDER BY id",
                &[],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .context(&self.path, "reading schema versions")?;
        ids.into_iter()
            .map(|(id, table_id)| Ok((id, table_id, self.relation(id)?)))
            .collect()
    }

    /// Changes matching an SQL condition over `changes c` and `transactions t`, hydrated.
    pub(crate) fn changes_where(
        &self,
        condition: &str,
        params: &[&dyn ToDb],
        order: &str,
    ) -> Result<Vec<LoggedChange>, StoreError> {
        let sql = format!("{CHANGE_SELECT} WHERE {condition} {order}");
        let rows = self
            .connection
            .query_map(&sql, params, StoredRow::read)
            .context(&self.path, "reading changes")?;
        rows.into_iter().map(|row| self.hydrate(row)).collect()
    }

    /// Outlines of the changes matching an SQL condition over `changes c`: everything but the
    /// row images and the context, read from the stored keys alone. An outline's images hold the
    /// record's key columns (the key before an update that changed it in `before`) and mark every
    /// other column unavailable (schema changes and gaps are read whole). For folds that only
    /// need to know which record changed, and when, over thousands of changes; read the full
    /// change by id for anything shown.
    pub(crate) fn outlines_where(
        &self,
        condition: &str,
        params: &[&dyn ToDb],
    ) -> Result<Vec<LoggedChange>, StoreError> {
        let sql = format!("{OUTLINE_SELECT} WHERE {condition}");
        let rows = self
            .connection
            .query_map(&sql, params, OutlineRow::read)
            .context(&self.path, "reading changes")?;
        rows.into_iter().map(|row| self.outline(row)).collect()
    }

    fn outline(&self, row: OutlineRow) -> Result<LoggedChange, StoreError> {
        let op = op_from_code(&row.stored.op)
            .ok_or_else(|| self.damaged(format!("unknown op {}", row.stored.op)))?;
        if matches!(op, Op::Ddl | Op::Gap) {
            // What happened is in the images: read the whole change (they are rare).
            let id = ChangeId(row.stored.id);
            return self
                .change(id)?
                .ok_or_else(|| self.damaged(format!("change {id} vanished while read")));
        }
        let schema = self.relation(row.stored.relation_id)?;
        let image = |key: &str| -> Result<Row, StoreError> {
            let values = codec::decode_key(key).map_err(|error| self.damaged(error.to_string()))?;
            let mut image = vec![Value::Unavailable; schema.columns.len()];
            for (&index, value) in schema.key.iter().zip(values) {
                if let Some(slot) = image.get_mut(index) {
                    *slot = value;
                }
            }
            Ok(image)
        };
        let (before, after) = match op {
            Op::Insert | Op::Snapshot => (None, Some(image(&row.key)?)),
            Op::Update => (
                row.old_key.as_deref().map(image).transpose()?,
                Some(image(&row.key)?),
            ),
            Op::Delete => (Some(image(&row.key)?), None),
            _ => (None, None),
        };
        let mut change = self.hydrate(row.stored)?;
        change.change = Change { op, before, after };
        Ok(change)
    }

    pub(crate) fn connection(&self) -> &Db {
        &self.connection
    }

    /// The column rules the history was captured under (`capture --exclude/--mask/--rules`).
    /// A shared store published by a build older than the rules has none.
    pub fn column_rules(&self) -> Result<crate::model::ColumnRules, StoreError> {
        if self.is_shared() {
            let present: bool = self
                .connection
                .query_row(
                    "SELECT EXISTS (SELECT 1 FROM pg_tables
                     WHERE schemaname = 'rowtrail' AND tablename = 'column_rules')",
                    &[],
                    |row| row.get(0),
                )
                .context(&self.path, "reading the column rules")?;
            if !present {
                return Ok(crate::model::ColumnRules::default());
            }
        }
        Ok(super::read_column_rules(&self.connection, &self.path)?.rules)
    }

    /// Where the import that fed this cache resumes, and what its store does not record; `None`
    /// for a captured cache.
    pub fn import_state(&self) -> Result<Option<super::ImportState>, StoreError> {
        super::read_import_state(&self.connection, &self.path)
    }

    /// One change by id.
    pub fn change(&self, id: ChangeId) -> Result<Option<LoggedChange>, StoreError> {
        Ok(self.changes_where("c.id = ?1", &[&id.0], "")?.pop())
    }

    /// Counts of stored changes per table and operation, for checks and summaries.
    pub fn counts(&self) -> Result<Vec<(TableName, Op, i64)>, StoreError> {
        let rows: Vec<(i64, String, i64)> = self
            .connection
            .query_map(
                "SELECT max(relation_id), op, count(*) FROM changes GROUP BY table_id, op
                 ORDER BY table_id, op",
                &[],
                |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
            )
            .context(&self.path, "counting changes")?;
        rows.into_iter()
            .map(|(relation_id, op, count)| {
                let op =
                    op_from_code(&op).ok_or_else(|| self.damaged(format!("unknown op {op}")))?;
                Ok((self.relation(relation_id)?.table.clone(), op, count))
            })
            .collect()
    }

    pub(crate) fn damaged(&self, what: String) -> StoreError {
        StoreError::Damaged {
            path: self.path.clone(),
            what,
        }
    }

    fn hydrate(&self, row: StoredRow) -> Result<LoggedChange, StoreError> {
        let op =
            op_from_code(&row.op).ok_or_else(|| self.damaged(format!("unknown op {}", row.op)))?;
        let change =
            codec::decode(op, &row.images).map_err(|error| self.damaged(error.to_string()))?;
        let schema = self.relation(row.relation_id)?;
        let schema_change = match op {
            Op::Ddl => Some(self.schema_change(row.id, row.images.after.as_deref())?),
            _ => None,
        };
        let gap_from = match op {
            Op::Gap => Some(
                row.images
                    .after
                    .as_deref()
                    .and_then(|text| serde_json::from_str::<serde_json::Value>(text).ok())
                    .and_then(|body| body.get("from").and_then(serde_json::Value::as_u64))
                    .map(Lsn)
                    .ok_or_else(|| self.damaged(format!("gap {}", row.id)))?,
            ),
            _ => None,
        };
        let context = match row.context {
            Some(body) => match serde_json::from_str(&body) {
                Ok(serde_json::Value::Object(map)) => Some(map),
                _ => return Err(self.damaged(format!("context of change {}", row.id))),
            },
            None => None,
        };
        Ok(LoggedChange {
            id: ChangeId(row.id),
            lsn: Lsn(row.lsn as u64),
            tx: TransactionInfo {
                id: row.tx_id,
                xid: row.xid.map(Xid),
                commit_lsn: Lsn(row.commit_lsn as u64),
                committed_at: DateTime::from_timestamp_micros(row.committed_at)
                    .ok_or_else(|| self.damaged(format!("commit time of change {}", row.id)))?,
                origin: row.origin,
                is_baseline: row.is_baseline,
                change_count: row.change_count,
            },
            table_id: row.table_id,
            table: schema.table.clone(),
            schema,
            change,
            context,
            schema_change,
            gap_from,
        })
    }

    /// Reads what a schema change entry stored: `{"command", "statement", "before", "dropped",
    /// "noticed"}`, `before` being the id of the schema version before.
    fn schema_change(&self, id: i64, stored: Option<&str>) -> Result<SchemaChange, StoreError> {
        let damaged = || self.damaged(format!("schema change {id}"));
        let body: serde_json::Value = stored
            .and_then(|text| serde_json::from_str(text).ok())
            .ok_or_else(damaged)?;
        let text = |field: &str| body.get(field).and_then(serde_json::Value::as_str);
        let flag = |field: &str| body.get(field).and_then(serde_json::Value::as_bool) == Some(true);
        Ok(SchemaChange {
            command: text("command").ok_or_else(damaged)?.to_owned(),
            statement: text("statement").map(str::to_owned),
            before: match body.get("before").and_then(serde_json::Value::as_i64) {
                Some(relation_id) => Some(self.relation(relation_id)?),
                None => None,
            },
            dropped: flag("dropped"),
            noticed: flag("noticed"),
        })
    }
}

/// Everything a `LoggedChange` is read from.
const CHANGE_SELECT: &str =
    "SELECT c.id, c.lsn, c.relation_id, c.op, c.before, c.after, c.unavailable, ctx.body,
        t.xid, t.commit_lsn, t.committed_at, t.origin, t.is_baseline, c.tx_id, t.change_count,
        c.table_id
     FROM changes c
     JOIN transactions t ON t.id = c.tx_id
     LEFT JOIN contexts ctx ON ctx.id = c.context_id";

/// `CHANGE_SELECT` without the images and the context, and with the stored keys.
const OUTLINE_SELECT: &str = "SELECT c.id, c.lsn, c.relation_id, c.op, NULL, NULL, NULL, NULL,
        t.xid, t.commit_lsn, t.committed_at, t.origin, t.is_baseline, c.tx_id, t.change_count,
        c.table_id, c.key, c.old_key
     FROM changes c
     JOIN transactions t ON t.id = c.tx_id";

struct OutlineRow {
    stored: StoredRow,
    key: String,
    old_key: Option<String>,
}

impl OutlineRow {
    fn read(row: &DbRow<'_>) -> Result<Self, DbError> {
        Ok(Self {
            stored: StoredRow::read(row)?,
            key: row.get(16)?,
            old_key: row.get(17)?,
        })
    }
}

struct StoredRow {
    id: i64,
    lsn: i64,
    relation_id: i64,
    op: String,
    images: EncodedImages,
    context: Option<String>,
    xid: Option<u32>,
    commit_lsn: i64,
    committed_at: i64,
    origin: Option<String>,
    is_baseline: bool,
    tx_id: i64,
    change_count: i64,
    table_id: i64,
}

impl StoredRow {
    fn read(row: &DbRow<'_>) -> Result<Self, DbError> {
        Ok(Self {
            id: row.get(0)?,
            lsn: row.get(1)?,
            relation_id: row.get(2)?,
            op: row.get(3)?,
            images: EncodedImages {
                before: row.get(4)?,
                after: row.get(5)?,
                unavailable: row.get(6)?,
            },
            context: row.get(7)?,
            xid: row.get(8)?,
            commit_lsn: row.get(9)?,
            committed_at: row.get(10)?,
            origin: row.get(11)?,
            is_baseline: row.get(12)?,
            tx_id: row.get(13)?,
            change_count: row.get(14)?,
            table_id: row.get(15)?,
        })
    }
}

/// Matches a user's key (column → JSON string or number) to a schema's key columns.
pub(crate) fn resolve_key(
    schema: &RelationSchema,
    key: &KeyFilter,
) -> Result<Vec<Value>, StoreError> {
    let names: Vec<&str> = schema.key_column_names().collect();
    let expected = || {
        let example: Vec<String> = names
            .iter()
            .map(|name| format!("\"{name}\": ..."))
            .collect();
        format!("{{{}}}", example.join(", "))
    };
    if names.is_empty() {
        return Err(StoreError::BadKey(format!(
            "{} has no primary key, so its records cannot be found by key",
            schema.table
        )));
    }
    if key.0.len() != names.len() || names.iter().any(|name| !key.0.contains_key(*name)) {
        return Err(StoreError::BadKey(format!(
            "the key of {} is ({}): give --key '{}'",
            schema.table,
            names.join(", "),
            expected()
        )));
    }
    names
        .iter()
        .map(|name| match &key.0[*name] {
            serde_json::Value::String(text) => Ok(Value::text(text.clone())),
            serde_json::Value::Number(number) => Ok(Value::text(number.to_string())),
            serde_json::Value::Bool(flag) => Ok(Value::text(flag.to_string())),
            other => Err(StoreError::BadKey(format!(
                "key value {other} for {name} must be a JSON string or number"
            ))),
        })
        .collect()
}
