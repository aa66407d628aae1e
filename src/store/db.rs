//! One way to ask questions of a cache, whichever database keeps it: a SQLite file, or a shared
//! store on PostgreSQL reached through a [`Remote`] (implemented in `crate::shared`, which owns the
//! PostgreSQL connection). Readers write SQL once, in the subset both engines speak: `?N`
//! placeholders (rewritten to `$N` for PostgreSQL), no engine-specific functions outside
//! [`Dialect`], `CAST(… AS BIGINT)` where PostgreSQL would otherwise make a numeric.

use std::cell::Cell as Flag;

use rusqlite::Connection;
use rusqlite::types::{ToSqlOutput, ValueRef};

/// A value read from or sent to either engine.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Null,
    Int(i64),
    Real(f64),
    Text(String),
    Bytes(Vec<u8>),
    Bool(bool),
}

impl Cell {
    /// The text form PostgreSQL parses for a parameter of any type; `None` for NULL.
    pub fn text(&self) -> Option<String> {
        match self {
            Cell::Null => None,
            Cell::Int(value) => Some(value.to_string()),
            Cell::Real(value) => Some(value.to_string()),
            Cell::Text(text) => Some(text.clone()),
            Cell::Bytes(bytes) => Some(format!(
                "\\x{}",
                bytes
                    .iter()
                    .map(|byte| format!("{byte:02x}"))
                    .collect::<String>()
            )),
            Cell::Bool(flag) => Some(flag.to_string()),
        }
    }

    fn as_ref(&self) -> CellRef<'_> {
        match self {
            Cell::Null => CellRef::Null,
            Cell::Int(value) => CellRef::Int(*value),
            Cell::Real(value) => CellRef::Real(*value),
            Cell::Text(text) => CellRef::Text(text),
            Cell::Bytes(bytes) => CellRef::Bytes(bytes),
            Cell::Bool(flag) => CellRef::Bool(*flag),
        }
    }
}

impl rusqlite::ToSql for Cell {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self {
            Cell::Null => ToSqlOutput::Borrowed(ValueRef::Null),
            Cell::Int(value) => ToSqlOutput::Borrowed(ValueRef::Integer(*value)),
            Cell::Real(value) => ToSqlOutput::Borrowed(ValueRef::Real(*value)),
            Cell::Text(text) => ToSqlOutput::Borrowed(ValueRef::Text(text.as_bytes())),
            Cell::Bytes(bytes) => ToSqlOutput::Borrowed(ValueRef::Blob(bytes)),
            Cell::Bool(flag) => ToSqlOutput::Borrowed(ValueRef::Integer(i64::from(*flag))),
        })
    }
}

/// A value as read, borrowed from the row.
#[derive(Debug, Clone, Copy)]
pub enum CellRef<'a> {
    Null,
    Int(i64),
    Real(f64),
    Text(&'a str),
    Bytes(&'a [u8]),
    Bool(bool),
}

/// A query parameter.
pub trait ToDb {
    fn cell(&self) -> Cell;
}

impl ToDb for i64 {
    fn cell(&self) -> Cell {
        Cell::Int(*self)
    }
}
impl ToDb for i32 {
    fn cell(&self) -> Cell {
        Cell::Int(i64::from(*self))
    }
}
impl ToDb for u32 {
    fn cell(&self) -> Cell {
        Cell::Int(i64::from(*self))
    }
}
impl ToDb for bool {
    fn cell(&self) -> Cell {
        Cell::Bool(*self)
    }
}
impl ToDb for str {
    fn cell(&self) -> Cell {
        Cell::Text(self.to_owned())
    }
}
impl ToDb for String {
    fn cell(&self) -> Cell {
        Cell::Text(self.clone())
    }
}
impl<T: ToDb> ToDb for Option<T> {
    fn cell(&self) -> Cell {
        self.as_ref().map_or(Cell::Null, ToDb::cell)
    }
}
impl<T: ToDb + ?Sized> ToDb for &T {
    fn cell(&self) -> Cell {
        (**self).cell()
    }
}

/// A value a row can be read as.
pub trait FromDb: Sized {
    fn from_cell(cell: CellRef<'_>) -> Result<Self, String>;
}

impl FromDb for i64 {
    fn from_cell(cell: CellRef<'_>) -> Result<Self, String> {
        match cell {
            CellRef::Int(value) => Ok(value),
            CellRef::Bool(flag) => Ok(i64::from(flag)),
            other => Err(format!("expected an integer, found {other:?}")),
        }
    }
}
impl FromDb for u32 {
    fn from_cell(cell: CellRef<'_>) -> Result<Self, String> {
        let value = i64::from_cell(cell)?;
        u32::try_from(value).map_err(|_| format!("{value} is out of range"))
    }
}
impl FromDb for usize {
    fn from_cell(cell: CellRef<'_>) -> Result<Self, String> {
        let value = i64::from_cell(cell)?;
        usize::try_from(value).map_err(|_| format!("{value} is out of range"))
    }
}
impl FromDb for f64 {
    fn from_cell(cell: CellRef<'_>) -> Result<Self, String> {
        match cell {
            CellRef::Real(value) => Ok(value),
            CellRef::Int(value) => Ok(value as f64),
            other => Err(format!("expected a number, found {other:?}")),
        }
    }
}
impl FromDb for bool {
    fn from_cell(cell: CellRef<'_>) -> Result<Self, String> {
        match cell {
            CellRef::Bool(flag) => Ok(flag),
            CellRef::Int(value) => Ok(value != 0),
            other => Err(format!("expected a boolean, found {other:?}")),
        }
    }
}
impl FromDb for String {
    fn from_cell(cell: CellRef<'_>) -> Result<Self, String> {
        match cell {
            CellRef::Text(text) => Ok(text.to_owned()),
            other => Err(format!("expected text, found {other:?}")),
        }
    }
}
impl<T: FromDb> FromDb for Option<T> {
    fn from_cell(cell: CellRef<'_>) -> Result<Self, String> {
        match cell {
            CellRef::Null => Ok(None),
            other => T::from_cell(other).map(Some),
        }
    }
}

/// A query failed.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
    /// The shared store's server said no, or could not be reached.
    #[error("{0}")]
    Remote(String),
    /// A value of another type than the reader expects.
    #[error("column {column}: {what}")]
    Type { column: usize, what: String },
    #[error("the query returned no row")]
    NoRow,
}

/// A shared store's connection, as the store needs it. Rows come back whole.
pub trait Remote: Send {
    /// Runs a query with text-form parameters (`None` is NULL; `$N` placeholders).
    fn query(&self, sql: &str, params: &[Option<String>]) -> Result<Vec<Vec<Cell>>, String>;
    /// Runs a statement; the number of rows it changed.
    fn execute(&self, sql: &str, params: &[Option<String>]) -> Result<u64, String>;
    /// Runs statements without parameters (`BEGIN`, `COMMIT`, …).
    fn batch(&self, sql: &str) -> Result<(), String>;
}

/// Which SQL the database speaks, for the few things the engines say differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    /// The text of element `index` of a JSON array held as text in `expr`.
    pub fn json_element(self, expr: &str, index: usize) -> String {
        match self {
            Dialect::Sqlite => format!("json_extract({expr}, '$[{index}]')"),
            Dialect::Postgres => format!("(({expr})::jsonb ->> {index})"),
        }
    }

    /// The text of member `key` (a column position) of a JSON object held as text in `expr`.
    pub fn json_member(self, expr: &str, key: usize) -> String {
        match self {
            Dialect::Sqlite => format!("json_extract({expr}, '$.\"{key}\"')"),
            Dialect::Postgres => format!("(({expr})::jsonb ->> '{key}')"),
        }
    }

    /// True when the JSON object held as text in `expr` has member `key` (a column position).
    pub fn json_has(self, expr: &str, key: usize) -> String {
        match self {
            Dialect::Sqlite => format!("json_type({expr}, '$.\"{key}\"') IS NOT NULL"),
            Dialect::Postgres => format!("jsonb_exists(({expr})::jsonb, '{key}')"),
        }
    }

    /// A JSON array of the given SQL values, as text (each engine compares it with arrays it
    /// made itself).
    pub fn json_array(self, values: &[String]) -> String {
        match self {
            Dialect::Sqlite => format!("json_array({})", values.join(", ")),
            Dialect::Postgres => format!("CAST(json_build_array({}) AS TEXT)", values.join(", ")),
        }
    }

    /// The text at a dotted field (`user.id`) of a JSON object held as text in `expr`, with the
    /// path as the parameter `placeholder` holds it (see [`Dialect::json_path`]).
    pub fn json_path_text(self, expr: &str, placeholder: &str) -> String {
        match self {
            Dialect::Sqlite => format!("CAST(json_extract({expr}, {placeholder}) AS TEXT)"),
            Dialect::Postgres => format!("(({expr})::jsonb #>> CAST({placeholder} AS TEXT[]))"),
        }
    }

    /// The path parameter for [`Dialect::json_path_text`]: `$."user"."id"` for SQLite, the text
    /// array `{"user","id"}` for PostgreSQL.
    pub fn json_path(self, field: &str) -> String {
        match self {
            Dialect::Sqlite => {
                let mut path = String::from("$");
                for part in field.split('.') {
                    path.push_str(&format!(".\"{}\"", part.replace('"', "\\\"")));
                }
                path
            }
            Dialect::Postgres => {
                let parts: Vec<String> = field
                    .split('.')
                    .map(|part| format!("\"{}\"", part.replace('\\', "\\\\").replace('"', "\\\"")))
                    .collect();
                format!("{{{}}}", parts.join(","))
            }
        }
    }
}

/// The database of a cache.
pub enum Db {
    Sqlite(Connection),
    Remote {
        remote: Box<dyn Remote>,
        /// Open transactions (snapshots, index batches): nested ones are savepoints.
        depth: Flag<usize>,
    },
}

/// One row of a result.
pub enum DbRow<'a> {
    Sqlite(&'a rusqlite::Row<'a>),
    Remote(&'a [Cell]),
}

impl DbRow<'_> {
    pub fn get<T: FromDb>(&self, index: usize) -> Result<T, DbError> {
        let typed = |cell: CellRef<'_>| {
            T::from_cell(cell).map_err(|what| DbError::Type {
                column: index,
                what,
            })
        };
        match self {
            DbRow::Sqlite(row) => {
                let cell = match row.get_ref(index)? {
                    ValueRef::Null => CellRef::Null,
                    ValueRef::Integer(value) => CellRef::Int(value),
                    ValueRef::Real(value) => CellRef::Real(value),
                    ValueRef::Text(bytes) => {
                        CellRef::Text(std::str::from_utf8(bytes).map_err(|error| {
                            DbError::Type {
                                column: index,
                                what: error.to_string(),
                            }
                        })?)
                    }
                    ValueRef::Blob(bytes) => CellRef::Bytes(bytes),
                };
                typed(cell)
            }
            DbRow::Remote(cells) => match cells.get(index) {
                Some(cell) => typed(cell.as_ref()),
                None => Err(DbError::Type {
                    column: index,
                    what: "no such column".into(),
                }),
            },
        }
    }
}

/// `?N` placeholders as PostgreSQL's `$N`, outside quoted text.
pub fn dollar_placeholders(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut quoted: Option<char> = None;
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        match quoted {
            Some(quote) => {
                if c == quote {
                    quoted = None;
                }
                out.push(c);
            }
            None if c == '\'' || c == '"' => {
                quoted = Some(c);
                out.push(c);
            }
            None if c == '?' && chars.peek().is_some_and(char::is_ascii_digit) => out.push('$'),
            None => out.push(c),
        }
    }
    out
}

fn texts(params: &[&dyn ToDb]) -> Vec<Option<String>> {
    params.iter().map(|param| param.cell().text()).collect()
}

/// Questions both a cache's [`Db`] and a bare SQLite connection (capture's writer) answer.
pub trait Query {
    fn dialect(&self) -> Dialect;

    /// Calls `visit` with each row until it returns false. A cache file streams its rows; a
    /// shared store sends them whole, so callers page big scans themselves.
    fn each_row(
        &self,
        sql: &str,
        params: &[&dyn ToDb],
        visit: &mut dyn FnMut(&DbRow<'_>) -> Result<bool, DbError>,
    ) -> Result<(), DbError>;

    /// [`Query::each_row`] with a closure.
    fn for_each(
        &self,
        sql: &str,
        params: &[&dyn ToDb],
        mut visit: impl FnMut(&DbRow<'_>) -> Result<bool, DbError>,
    ) -> Result<(), DbError>
    where
        Self: Sized,
    {
        self.each_row(sql, params, &mut visit)
    }

    /// Every row, each read by `read`.
    fn query_map<T>(
        &self,
        sql: &str,
        params: &[&dyn ToDb],
        mut read: impl FnMut(&DbRow<'_>) -> Result<T, DbError>,
    ) -> Result<Vec<T>, DbError>
    where
        Self: Sized,
    {
        let mut all = Vec::new();
        self.each_row(sql, params, &mut |row| {
            all.push(read(row)?);
            Ok(true)
        })?;
        Ok(all)
    }

    /// The first row, if any.
    fn query_opt<T>(
        &self,
        sql: &str,
        params: &[&dyn ToDb],
        read: impl FnOnce(&DbRow<'_>) -> Result<T, DbError>,
    ) -> Result<Option<T>, DbError>
    where
        Self: Sized,
    {
        let mut read = Some(read);
        let mut found = None;
        self.each_row(sql, params, &mut |row| {
            if let Some(read) = read.take() {
                found = Some(read(row)?);
            }
            Ok(false)
        })?;
        Ok(found)
    }

    /// The first row; [`DbError::NoRow`] when there is none.
    fn query_row<T>(
        &self,
        sql: &str,
        params: &[&dyn ToDb],
        read: impl FnOnce(&DbRow<'_>) -> Result<T, DbError>,
    ) -> Result<T, DbError>
    where
        Self: Sized,
    {
        self.query_opt(sql, params, read)?.ok_or(DbError::NoRow)
    }
}

fn sqlite_each_row(
    connection: &Connection,
    sql: &str,
    params: &[&dyn ToDb],
    visit: &mut dyn FnMut(&DbRow<'_>) -> Result<bool, DbError>,
) -> Result<(), DbError> {
    let cells: Vec<Cell> = params.iter().map(|param| param.cell()).collect();
    let mut statement = connection.prepare_cached(sql)?;
    let mut rows = statement.query(rusqlite::params_from_iter(cells.iter()))?;
    while let Some(row) = rows.next()? {
        if !visit(&DbRow::Sqlite(row))? {
            break;
        }
    }
    Ok(())
}

impl Query for Connection {
    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }

    fn each_row(
        &self,
        sql: &str,
        params: &[&dyn ToDb],
        visit: &mut dyn FnMut(&DbRow<'_>) -> Result<bool, DbError>,
    ) -> Result<(), DbError> {
        sqlite_each_row(self, sql, params, visit)
    }
}

impl Query for Db {
    fn dialect(&self) -> Dialect {
        match self {
            Db::Sqlite(_) => Dialect::Sqlite,
            Db::Remote { .. } => Dialect::Postgres,
        }
    }

    fn each_row(
        &self,
        sql: &str,
        params: &[&dyn ToDb],
        visit: &mut dyn FnMut(&DbRow<'_>) -> Result<bool, DbError>,
    ) -> Result<(), DbError> {
        match self {
            Db::Sqlite(connection) => sqlite_each_row(connection, sql, params, visit),
            Db::Remote { remote, .. } => {
                let rows = remote
                    .query(&dollar_placeholders(sql), &texts(params))
                    .map_err(DbError::Remote)?;
                for row in &rows {
                    if !visit(&DbRow::Remote(row))? {
                        break;
                    }
                }
                Ok(())
            }
        }
    }
}

impl Db {
    /// The SQLite connection, for what only a cache file has.
    pub fn sqlite(&self) -> Option<&Connection> {
        match self {
            Db::Sqlite(connection) => Some(connection),
            Db::Remote { .. } => None,
        }
    }

    /// Runs a statement; the number of rows it changed.
    pub fn execute(&self, sql: &str, params: &[&dyn ToDb]) -> Result<usize, DbError> {
        match self {
            Db::Sqlite(connection) => {
                let cells: Vec<Cell> = params.iter().map(|param| param.cell()).collect();
                Ok(connection
                    .prepare_cached(sql)?
                    .execute(rusqlite::params_from_iter(cells.iter()))?)
            }
            Db::Remote { remote, .. } => remote
                .execute(&dollar_placeholders(sql), &texts(params))
                .map(|count| count as usize)
                .map_err(DbError::Remote),
        }
    }

    /// Starts a transaction that ends with [`DbTransaction::commit`], or rolls back when dropped.
    /// On a cache file it cannot be nested; on a shared store a nested one is a savepoint. A
    /// shared store reads one snapshot throughout (repeatable read).
    pub fn transaction(&self) -> Result<DbTransaction<'_>, DbError> {
        match self {
            Db::Sqlite(connection) => {
                connection.execute_batch("BEGIN")?;
                Ok(DbTransaction {
                    db: self,
                    open: true,
                })
            }
            Db::Remote { remote, depth } => {
                let sql = match depth.get() {
                    0 => "BEGIN ISOLATION LEVEL REPEATABLE READ".to_owned(),
                    level => format!("SAVEPOINT rowtrail_{level}"),
                };
                remote.batch(&sql).map_err(DbError::Remote)?;
                depth.set(depth.get() + 1);
                Ok(DbTransaction {
                    db: self,
                    open: true,
                })
            }
        }
    }

    fn end(&self, commit: bool) -> Result<(), DbError> {
        match self {
            Db::Sqlite(connection) => {
                connection.execute_batch(if commit { "COMMIT" } else { "ROLLBACK" })?;
                Ok(())
            }
            Db::Remote { remote, depth } => {
                let level = depth.get().saturating_sub(1);
                depth.set(level);
                let sql = match (level, commit) {
                    (0, true) => "COMMIT".to_owned(),
                    (0, false) => "ROLLBACK".to_owned(),
                    (level, true) => format!("RELEASE SAVEPOINT rowtrail_{level}"),
                    (level, false) => format!("ROLLBACK TO SAVEPOINT rowtrail_{level}"),
                };
                remote.batch(&sql).map_err(DbError::Remote)
            }
        }
    }
}

/// An open transaction of a [`Db`].
pub struct DbTransaction<'a> {
    db: &'a Db,
    open: bool,
}

impl DbTransaction<'_> {
    pub fn commit(mut self) -> Result<(), DbError> {
        self.open = false;
        self.db.end(true)
    }
}

impl Drop for DbTransaction<'_> {
    fn drop(&mut self) {
        if self.open {
            let _ = self.db.end(false);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // In tests a failed unwrap is a failed test.
mod tests {
    use super::*;

    #[test]
    fn placeholders_become_dollars_outside_quotes() {
        assert_eq!(
            dollar_placeholders("SELECT '?1', \"a?2\" FROM t WHERE a = ?1 AND b = ?12 AND c ? 'k'"),
            "SELECT '?1', \"a?2\" FROM t WHERE a = $1 AND b = $12 AND c ? 'k'"
        );
    }

    #[test]
    fn json_paths_quote_each_part_in_both_dialects() {
        assert_eq!(Dialect::Sqlite.json_path("user"), "$.\"user\"");
        assert_eq!(Dialect::Sqlite.json_path("actor.id"), "$.\"actor\".\"id\"");
        assert_eq!(
            Dialect::Postgres.json_path("actor.id"),
            "{\"actor\",\"id\"}"
        );
        assert_eq!(Dialect::Postgres.json_path("a\"b"), "{\"a\\\"b\"}");
    }

    #[test]
    fn both_engines_read_the_same_cells() {
        let connection = Connection::open_in_memory().unwrap();
        let db = Db::Sqlite(connection);
        let (id, text, missing, flag): (i64, String, Option<i64>, bool) = db
            .query_row("SELECT ?1, ?2, NULL, ?3", &[&7i64, &"x", &true], |row| {
                Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
            })
            .unwrap();
        assert_eq!((id, text.as_str(), missing, flag), (7, "x", None, true));
        let cells = [
            Cell::Int(7),
            Cell::Text("x".into()),
            Cell::Null,
            Cell::Bool(true),
        ];
        let row = DbRow::Remote(&cells);
        assert_eq!(row.get::<i64>(0).unwrap(), 7);
        assert_eq!(row.get::<Option<String>>(2).unwrap(), None);
        assert!(row.get::<String>(0).is_err(), "no silent conversion");
    }
}
