//! Reading a shared store: the PostgreSQL connection behind `store::Cache` when `--cache` is a
//! `postgres://` URL. Queries run one at a time on a runtime of their own, so the cache's callers
//! (the CLI, the app's worker threads) stay synchronous; parameters go as text, which the server
//! parses for whatever type the query needs; every result comes back whole.

use std::cell::RefCell;
use std::collections::HashMap;
use std::error::Error;
use std::path::Path;
use std::sync::Mutex;

use bytes::BytesMut;
use tokio_postgres::Statement;
use tokio_postgres::types::{Format, FromSql, IsNull, ToSql, Type, to_sql_checked};

use crate::capture::conninfo::{ConnectionSpec, Password, ProcessEnvironment};
use crate::capture::session::SqlSession;
use crate::capture::{CaptureError, tls};
use crate::store::db::{Cell, Remote};
use crate::store::{Cache, StoreError};

use super::layout::SCHEMA;

/// True when `location` names a shared store rather than a cache file.
pub fn is_store_url(location: &str) -> bool {
    location.starts_with("postgres://") || location.starts_with("postgresql://")
}

/// Opens a cache file, or the shared store a `postgres://` URL names.
pub fn open_cache(location: &Path) -> Result<Cache, StoreError> {
    match location.to_str().filter(|text| is_store_url(text)) {
        Some(url) => open_store(url),
        None => Cache::open(location),
    }
}

/// Passwords typed in the app for a store's URL: kept in this process's memory only, so the
/// URL that names the open store (in the recent list, the title) never holds one.
static PASSWORDS: Mutex<Vec<(String, Password)>> = Mutex::new(Vec::new());

/// Remembers, for this process, the password to use with `url` (one the user typed).
pub fn remember_password(url: &str, password: Password) {
    if let Ok(mut passwords) = PASSWORDS.lock() {
        passwords.retain(|(known, _)| known != url);
        if !password.is_empty() {
            passwords.push((url.to_owned(), password));
        }
    }
}

fn typed_password(url: &str) -> Option<Password> {
    PASSWORDS.lock().ok().and_then(|passwords| {
        passwords
            .iter()
            .find(|(known, _)| known == url)
            .map(|(_, password)| password.clone())
    })
}

/// What the database `spec` names holds as a shared store, for people (`history of database
/// shop: 1,234 changes of 5 tables`); `None` when it holds none or this role cannot read it.
pub async fn describe_store(spec: &ConnectionSpec) -> Option<String> {
    let tls = tls::client_config(&spec.tls).ok()?;
    let session = SqlSession::connect(spec, tls).await.ok()?;
    let row = session
        .query_one(
            "looking for a shared store",
            "SELECT (SELECT database FROM rowtrail.source),
                    (SELECT CAST(coalesce(sum(change_count), 0) AS BIGINT) FROM rowtrail.tables),
                    (SELECT count(*) FROM rowtrail.tables)
             WHERE to_regclass('rowtrail.store_info') IS NOT NULL",
            &[],
        )
        .await
        .ok()?;
    let database: Option<String> = row.get(0);
    let changes: i64 = row.get(1);
    let tables: i64 = row.get(2);
    Some(format!(
        "rowtrail's shared store: history of database {} ({} changes of {} tables)",
        database.unwrap_or_else(|| "(none yet)".to_owned()),
        changes,
        tables
    ))
}

/// Opens the shared store in the database `url` names.
pub fn open_store(url: &str) -> Result<Cache, StoreError> {
    let failed = |action: &'static str, reason: String| StoreError::Remote {
        location: url.to_owned(),
        action,
        reason,
    };
    let mut spec = ConnectionSpec::resolve(url, &ProcessEnvironment)
        .map_err(|error| failed("reading its address", error.to_string()))?;
    if let Some(password) = typed_password(url) {
        for endpoint in &mut spec.endpoints {
            endpoint.password = Some(password.clone());
        }
    }
    // Unqualified names are the store's tables, as in a cache file. The same few statements
    // run thousands of times (one per record an undo covers): planned once, not per run, which
    // over the partitions of `changes` costs more than running them. No JIT: a generic plan's
    // estimates can pass its threshold for a lookup that reads a few rows, and compiling took
    // 20 ms where the lookup takes 0.1.
    let settings =
        format!("-c search_path={SCHEMA} -c plan_cache_mode=force_generic_plan -c jit=off");
    spec.options = Some(match spec.options.take() {
        Some(options) => format!("{options} {settings}"),
        None => settings,
    });
    let location = spec.to_string();
    let remote = PgRemote::connect(&spec).map_err(|reason| failed("connecting", reason))?;
    let found = remote
        .query("SELECT to_regclass('rowtrail.store_info') IS NOT NULL", &[])
        .map_err(|reason| failed("looking for the store", reason))?;
    if !matches!(
        found.first().and_then(|row| row.first()),
        Some(Cell::Bool(true))
    ) {
        return Err(failed(
            "looking for the store",
            format!(
                "database {} has no rowtrail store (schema {SCHEMA}): fill one with rowtrail capture --into URL, or rowtrail publish --cache FILE --into URL",
                spec.dbname
            ),
        ));
    }
    Cache::open_remote(Box::new(remote), &location)
}

/// A connection to the store's database.
pub struct PgRemote {
    runtime: tokio::runtime::Runtime,
    session: SqlSession,
    statements: RefCell<HashMap<String, Statement>>,
}

impl PgRemote {
    pub fn connect(spec: &ConnectionSpec) -> Result<Self, String> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|error| format!("could not start the async runtime: {error}"))?;
        let tls = tls::client_config(&spec.tls).map_err(|error| error.to_string())?;
        let session = runtime
            .block_on(SqlSession::connect(spec, tls))
            .map_err(|error| error.to_string())?;
        Ok(Self {
            runtime,
            session,
            statements: RefCell::new(HashMap::new()),
        })
    }

    fn failed(&self, error: tokio_postgres::Error) -> String {
        CaptureError::sql("reading the store", &self.session.endpoint, error).to_string()
    }

    fn statement(&self, sql: &str) -> Result<Statement, String> {
        if let Some(statement) = self.statements.borrow().get(sql) {
            return Ok(statement.clone());
        }
        let statement = self
            .runtime
            .block_on(self.session.client.prepare(sql))
            .map_err(|error| self.failed(error))?;
        let mut statements = self.statements.borrow_mut();
        if statements.len() >= 256 {
            statements.clear();
        }
        statements.insert(sql.to_owned(), statement.clone());
        Ok(statement)
    }
}

impl Remote for PgRemote {
    fn query(&self, sql: &str, params: &[Option<String>]) -> Result<Vec<Vec<Cell>>, String> {
        let statement = self.statement(sql)?;
        let texts: Vec<TextParam<'_>> = params.iter().map(|p| TextParam(p.as_deref())).collect();
        let bound: Vec<&(dyn ToSql + Sync)> =
            texts.iter().map(|p| p as &(dyn ToSql + Sync)).collect();
        let rows = self
            .runtime
            .block_on(self.session.client.query(&statement, &bound))
            .map_err(|error| self.failed(error))?;
        rows.iter()
            .map(|row| {
                (0..row.len())
                    .map(|index| {
                        row.try_get::<_, AnyCell>(index)
                            .map(|cell| cell.0)
                            .map_err(|error| self.failed(error))
                    })
                    .collect()
            })
            .collect()
    }

    fn execute(&self, sql: &str, params: &[Option<String>]) -> Result<u64, String> {
        let statement = self.statement(sql)?;
        let texts: Vec<TextParam<'_>> = params.iter().map(|p| TextParam(p.as_deref())).collect();
        let bound: Vec<&(dyn ToSql + Sync)> =
            texts.iter().map(|p| p as &(dyn ToSql + Sync)).collect();
        self.runtime
            .block_on(self.session.client.execute(&statement, &bound))
            .map_err(|error| self.failed(error))
    }

    fn batch(&self, sql: &str) -> Result<(), String> {
        self.runtime
            .block_on(self.session.client.batch_execute(sql))
            .map_err(|error| self.failed(error))
    }
}

/// A parameter in text form: the server parses it as the type the query gives it.
#[derive(Debug)]
struct TextParam<'a>(Option<&'a str>);

impl ToSql for TextParam<'_> {
    fn to_sql(
        &self,
        _ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn Error + Sync + Send>> {
        match self.0 {
            None => Ok(IsNull::Yes),
            Some(text) => {
                out.extend_from_slice(text.as_bytes());
                Ok(IsNull::No)
            }
        }
    }

    fn accepts(_ty: &Type) -> bool {
        true
    }

    fn encode_format(&self, _ty: &Type) -> Format {
        Format::Text
    }

    to_sql_checked!();
}

/// A result value of any type the store's queries return.
struct AnyCell(Cell);

impl<'a> FromSql<'a> for AnyCell {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn Error + Sync + Send>> {
        let cell = match *ty {
            Type::INT2 => Cell::Int(i64::from(i16::from_sql(ty, raw)?)),
            Type::INT4 => Cell::Int(i64::from(i32::from_sql(ty, raw)?)),
            Type::INT8 => Cell::Int(i64::from_sql(ty, raw)?),
            Type::OID => Cell::Int(i64::from(u32::from_sql(ty, raw)?)),
            Type::FLOAT4 => Cell::Real(f64::from(f32::from_sql(ty, raw)?)),
            Type::FLOAT8 => Cell::Real(f64::from_sql(ty, raw)?),
            Type::BOOL => Cell::Bool(bool::from_sql(ty, raw)?),
            Type::BYTEA => Cell::Bytes(raw.to_vec()),
            // jsonb's binary form is a version byte, then the text.
            Type::JSONB => Cell::Text(String::from_utf8(raw.get(1..).unwrap_or(&[]).to_vec())?),
            Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::JSON | Type::UNKNOWN => {
                Cell::Text(String::from_utf8(raw.to_vec())?)
            }
            ref other => return Err(format!("values of type {other} are not read").into()),
        };
        Ok(AnyCell(cell))
    }

    fn from_sql_null(_ty: &Type) -> Result<Self, Box<dyn Error + Sync + Send>> {
        Ok(AnyCell(Cell::Null))
    }

    fn accepts(_ty: &Type) -> bool {
        true
    }
}
