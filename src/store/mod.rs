//! The history cache: one SQLite file (WAL mode) that holds everything rowtrail knows about a
//! source, readable without the source.
//!
//! Architecture invariant: only this module touches SQLite. It stores and returns `model` types;
//! it knows nothing of the replication protocol beyond the decoded row changes it is handed.
//! Architecture invariant: a file that is not a rowtrail cache, or belongs to another source, is
//! refused before anything is written to it.

pub mod codec;
pub mod db;
mod facets;
pub mod journal;
pub mod maintenance;
mod reader;
mod record;
mod references;
mod related;
mod schema;
mod timeline;
mod views;
mod writer;

use std::io::Read;
use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags};

use crate::model::{ColumnRule, ColumnRules, Lsn, Op};

use db::Query;

pub use facets::Facets;
pub use reader::{Cache, KeyFilter, LogFilter, TableState, TableSummary};
pub use record::RecordRef;
pub use timeline::TimeSpan;
pub use writer::{CacheWriter, KnownSchemas, TxMeta};

/// What the cache says about the database it was captured from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceIdentity {
    /// The cluster's system identifier, which stays the same across restarts and renames.
    pub system_identifier: String,
    pub database: String,
    /// `user@host:port/db` for people; never holds a password.
    pub display: String,
    pub server_version: String,
}

/// Whether the baseline snapshot was completely stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BaselineState {
    /// The slot was (being) created but the baseline was not committed: the slot is ours to drop.
    Pending,
    Complete,
}

/// How capture resumes into this cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaptureState {
    pub slot: String,
    pub publication: String,
    pub baseline: BaselineState,
    /// Every change committed before this position is stored.
    pub position: Lsn,
}

/// A cache could not be opened, read or written.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cache file {} does not exist: check the path, or create it with rowtrail capture", .path.display())]
    NotFound { path: PathBuf },
    #[error("{} is not a rowtrail cache ({reason}): check the cache file's path", .path.display())]
    NotACache { path: PathBuf, reason: String },
    #[error("{} is empty, not a rowtrail cache yet: run rowtrail capture --cache {} first", .path.display(), .path.display())]
    Empty { path: PathBuf },
    #[error("{} was written by a newer rowtrail (cache format {version}, this build reads up to {supported}): upgrade rowtrail", .path.display())]
    TooNew {
        path: PathBuf,
        version: i32,
        supported: i32,
    },
    #[error("{} holds the history of {cached}, not of {given}: use a new --cache file for this source", .path.display())]
    OtherSource {
        path: PathBuf,
        cached: String,
        given: String,
    },
    #[error("{} is fed by replication slot '{cached}', not '{given}': pass --slot {cached}, or use a new --cache file", .path.display())]
    OtherSlot {
        path: PathBuf,
        cached: String,
        given: String,
    },
    #[error(
        "{} holds an import from an audit store (rowtrail import), not a capture: capture into a new cache file", .path.display()
    )]
    ImportedCache { path: PathBuf },
    #[error("could not create {}: {cause}; choose a cache file in a folder you can write", .path.display())]
    Create {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("could not read {}: {cause}; check the path and its permissions", .path.display())]
    Io {
        path: PathBuf,
        cause: std::io::Error,
    },
    /// SQLite failed in a way that points at the disk or the file system.
    #[error("cache {} failed while {action}: {cause}; if the disk is full or read-only, free space or fix permissions and retry", .path.display())]
    Disk {
        path: PathBuf,
        action: &'static str,
        cause: rusqlite::Error,
    },
    #[error("cache {} is busy while {action}: another program holds it (a capture writing to it?); wait for it, or stop it", .path.display())]
    Busy { path: PathBuf, action: &'static str },
    /// Any other SQLite failure.
    #[error("cache {} failed while {action}: {cause}; if this happens again, check the file with sqlite3 FILE 'PRAGMA integrity_check' and report it", .path.display())]
    Sqlite {
        path: PathBuf,
        action: &'static str,
        cause: rusqlite::Error,
    },
    /// The shared store on PostgreSQL failed or could not be reached.
    #[error(
        "the shared store at {location} failed while {action}: {reason}; check that its server runs and that this role may read schema rowtrail (GRANT USAGE ON SCHEMA rowtrail, GRANT SELECT ON ALL TABLES IN SCHEMA rowtrail)"
    )]
    Remote {
        location: String,
        action: &'static str,
        reason: String,
    },
    #[error("cache {} is damaged: {what}; restore it from a copy, or start a new cache", .path.display())]
    Damaged { path: PathBuf, what: String },
    #[error(transparent)]
    Rule(#[from] crate::model::RuleError),
    #[error(
        "{} already holds history under other column rules ({stored}; given {given}): rules are fixed when a cache's history begins (hint: run without --exclude/--mask/--rules to keep its rules, or capture into a new cache)", .path.display()
    )]
    OtherRules {
        path: PathBuf,
        stored: String,
        given: String,
    },
    #[error(
        "{} hashes columns ({rules}) with the mask key {fingerprint}: {problem} (hint: pass --mask-key with the key file the cache was made with)", .path.display()
    )]
    MaskKey {
        path: PathBuf,
        rules: String,
        fingerprint: String,
        problem: String,
    },
    #[error(
        "a change refers to table oid {oid}, which the stream has not described; run capture again (it resumes from the last stored position)"
    )]
    UnknownRelation { oid: u32 },
    #[error(
        "could not store a change: {0}; run capture again (it resumes from the last stored position), and report it if it fails the same way"
    )]
    Decode(crate::decode::DecodeError),
    #[error("table {table} is not in this cache; it holds: {known}")]
    UnknownTable { table: String, known: String },
    #[error("{0}")]
    BadKey(String),
    /// A search names something no table in the cache has.
    #[error("{0}")]
    BadSearch(String),
    #[error("the cache holds no changes yet: run rowtrail capture first")]
    EmptyHistory,
    #[error(
        "{moment} is before the history in this cache starts (at {start}, change {first}): pick a later moment"
    )]
    BeforeHistory {
        moment: String,
        start: String,
        first: crate::model::ChangeId,
    },
    #[error(
        "{location} is a shared store: {action} works on a cache file (hint: run it on the cache that feeds the store)"
    )]
    SharedStoreMaintenance {
        location: String,
        action: &'static str,
    },
    #[error(
        "{} changed while erasing (change {change} was pruned meanwhile): nothing was erased; run rowtrail forget again", .path.display()
    )]
    ChangedMeanwhile {
        path: PathBuf,
        change: crate::model::ChangeId,
    },
    #[error("there is no change {id} in this cache: list changes with rowtrail log")]
    UnknownChange { id: crate::model::ChangeId },
    #[error("no transaction with xid {xid} in this cache: list transactions with rowtrail log")]
    UnknownTransaction { xid: crate::model::Xid },
    #[error(
        "xid {xid} names {count} transactions in this cache (xids wrap around): undo by --change ID instead"
    )]
    AmbiguousTransaction {
        xid: crate::model::Xid,
        count: usize,
    },
}

/// Adds the path and the action to SQLite errors.
trait SqliteContext<T> {
    fn context(self, path: &Path, action: &'static str) -> Result<T, StoreError>;
}

impl<T> SqliteContext<T> for rusqlite::Result<T> {
    fn context(self, path: &Path, action: &'static str) -> Result<T, StoreError> {
        self.map_err(|cause| sqlite_error(path, action, cause))
    }
}

impl<T> SqliteContext<T> for Result<T, db::DbError> {
    fn context(self, path: &Path, action: &'static str) -> Result<T, StoreError> {
        self.map_err(|error| match error {
            db::DbError::Sqlite(cause) => sqlite_error(path, action, cause),
            db::DbError::Remote(reason) => StoreError::Remote {
                location: path.display().to_string(),
                action,
                reason,
            },
            db::DbError::Type { column, what } => StoreError::Damaged {
                path: path.to_owned(),
                what: format!(
                    "{action}: a stored value has the wrong type (column {column}: {what})"
                ),
            },
            db::DbError::NoRow => sqlite_error(path, action, rusqlite::Error::QueryReturnedNoRows),
        })
    }
}

impl From<crate::decode::DecodeError> for StoreError {
    fn from(error: crate::decode::DecodeError) -> Self {
        Self::Decode(error)
    }
}

/// Says what a SQLite failure means for the user, by its error code: a damaged file, the disk, a
/// lock held elsewhere, a stored value of the wrong type, or something else.
fn sqlite_error(path: &Path, action: &'static str, cause: rusqlite::Error) -> StoreError {
    use rusqlite::ErrorCode;
    let path = path.to_owned();
    match &cause {
        rusqlite::Error::SqliteFailure(failure, _) => match failure.code {
            ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase => StoreError::Damaged {
                path,
                what: format!("{action}: {cause}"),
            },
            ErrorCode::DiskFull
            | ErrorCode::SystemIoFailure
            | ErrorCode::ReadOnly
            | ErrorCode::CannotOpen
            | ErrorCode::PermissionDenied
            | ErrorCode::FileLockingProtocolFailed => StoreError::Disk {
                path,
                action,
                cause,
            },
            ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked => {
                StoreError::Busy { path, action }
            }
            _ => StoreError::Sqlite {
                path,
                action,
                cause,
            },
        },
        rusqlite::Error::InvalidColumnType(..)
        | rusqlite::Error::FromSqlConversionFailure(..)
        | rusqlite::Error::IntegralValueOutOfRange(..) => StoreError::Damaged {
            path,
            what: format!("{action}: a stored value has the wrong type ({cause})"),
        },
        _ => StoreError::Sqlite {
            path,
            action,
            cause,
        },
    }
}

/// `c.id IN (...)`: the changes of tables `table_ids` (a comma-separated list) stored under `key`
/// (a placeholder) or moved away from it by an update of the key; with `from_id` (a placeholder),
/// only those from that id on. Written as two index lookups: SQLite plans the equivalent OR as a
/// scan over all of the table's changes.
pub(crate) fn under_or_moved_from(table_ids: &str, key: &str, from_id: Option<&str>) -> String {
    let from = |alias: &str| from_id.map_or(String::new(), |id| format!(" AND {alias}.id >= {id}"));
    format!(
        "c.id IN (SELECT k.id FROM changes k WHERE k.table_id IN ({table_ids}) AND k.key = {key}{}
                  UNION ALL
                  SELECT m.id FROM changes m WHERE m.table_id IN ({table_ids}) AND m.old_key = {key}
                      AND m.old_key IS NOT NULL{})",
        from("k"),
        from("m"),
    )
}

pub(crate) fn op_code(op: Op) -> &'static str {
    match op {
        Op::Insert => "I",
        Op::Update => "U",
        Op::Delete => "D",
        Op::Truncate => "T",
        Op::Snapshot => "S",
        Op::Ddl => "L",
        Op::Gap => "G",
    }
}

pub(crate) fn op_from_code(code: &str) -> Option<Op> {
    Op::ALL.into_iter().find(|op| op_code(*op) == code)
}

/// What the first bytes of a file say about it, read without opening it as a database.
#[derive(Debug, PartialEq, Eq)]
enum FileKind {
    Missing,
    Empty,
    Cache,
}

/// Reads the SQLite header: the magic string and `application_id` (offset 68). The application id
/// is written before the file switches to WAL mode, so the main file always has it; `user_version`
/// may still sit in the WAL and is read through SQLite instead.
fn inspect(path: &Path) -> Result<FileKind, StoreError> {
    let io_error = |cause| StoreError::Io {
        path: path.to_owned(),
        cause,
    };
    let mut file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(FileKind::Missing),
        Err(error) => return Err(io_error(error)),
    };
    if file.metadata().map_err(io_error)?.is_dir() {
        return Err(StoreError::NotACache {
            path: path.to_owned(),
            reason: "it is a directory".into(),
        });
    }
    let mut header = Vec::with_capacity(100);
    file.by_ref()
        .take(100)
        .read_to_end(&mut header)
        .map_err(io_error)?;
    if header.is_empty() {
        return Ok(FileKind::Empty);
    }
    let not_a_cache = |reason: &str| StoreError::NotACache {
        path: path.to_owned(),
        reason: reason.to_owned(),
    };
    if header.len() < 100 || !header.starts_with(b"SQLite format 3\0") {
        return Err(not_a_cache("not an SQLite database"));
    }
    let read_i32 = |offset: usize| {
        i32::from_be_bytes([
            header[offset],
            header[offset + 1],
            header[offset + 2],
            header[offset + 3],
        ])
    };
    if read_i32(68) != schema::APPLICATION_ID {
        return Err(not_a_cache("an SQLite database of another application"));
    }
    Ok(FileKind::Cache)
}

/// Page cache sizes (KiB): the writer keeps more of the indexes it updates in memory.
const READER_CACHE_KIB: i32 = 16 * 1024;
const WRITER_CACHE_KIB: i32 = 64 * 1024;

fn configure(connection: &Connection, path: &Path, cache_kib: i32) -> Result<(), StoreError> {
    connection
        .busy_timeout(std::time::Duration::from_secs(10))
        .context(path, "configuring")?;
    connection
        .execute_batch(&format!(
            "PRAGMA foreign_keys = OFF; PRAGMA cache_size = -{cache_kib};"
        ))
        .context(path, "configuring")
}

/// A cache may come from someone else, so before anything of it is read: triggers and views are
/// switched off (rowtrail creates neither, and a crafted one would run on our writes or reads),
/// nothing in the file's schema is trusted to call functions with side effects, and the schema
/// itself cannot be edited by SQL (`defensive`).
fn harden(connection: &Connection, path: &Path) -> Result<(), StoreError> {
    use rusqlite::config::DbConfig;
    for (setting, on) in [
        (DbConfig::SQLITE_DBCONFIG_ENABLE_TRIGGER, false),
        (DbConfig::SQLITE_DBCONFIG_ENABLE_VIEW, false),
        (DbConfig::SQLITE_DBCONFIG_TRUSTED_SCHEMA, false),
        (DbConfig::SQLITE_DBCONFIG_DEFENSIVE, true),
    ] {
        connection
            .set_db_config(setting, on)
            .context(path, "securing the connection")?;
    }
    Ok(())
}

/// Refuses a file that holds anything rowtrail does not create (a trigger, a view, a table of
/// its own): such a cache was altered elsewhere.
fn check_objects(connection: &Connection, path: &Path) -> Result<(), StoreError> {
    let objects: Vec<(String, String)> = connection
        .prepare("SELECT type, name FROM sqlite_schema")
        .and_then(|mut statement| {
            statement
                .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
                .collect()
        })
        .context(path, "reading the file's schema")?;
    for (kind, name) in objects {
        let known = match kind.as_str() {
            "table" => schema::TABLES.contains(&name.as_str()) || name.starts_with("sqlite_stat"),
            "index" => {
                schema::INDEXES.contains(&name.as_str()) || name.starts_with("sqlite_autoindex_")
            }
            _ => false,
        };
        if !known {
            return Err(StoreError::NotACache {
                path: path.to_owned(),
                reason: format!(
                    "it holds a {kind} named '{name}', which rowtrail never creates, so it was altered elsewhere and is not opened"
                ),
            });
        }
    }
    Ok(())
}

fn migrate(connection: &mut Connection, path: &Path, from: i32) -> Result<(), StoreError> {
    use rusqlite::config::DbConfig;
    for (index, migration) in schema::MIGRATIONS.iter().enumerate().skip(from as usize) {
        // A migration that edits the schema's own text needs the defensive flag off meanwhile.
        let edits_schema = matches!(migration, schema::Migration::Code(_));
        if edits_schema {
            connection
                .set_db_config(DbConfig::SQLITE_DBCONFIG_DEFENSIVE, false)
                .context(path, "migrating")?;
        }
        let tx = connection.transaction().context(path, "migrating")?;
        match migration {
            schema::Migration::Sql(sql) => tx.execute_batch(sql),
            schema::Migration::Code(step) => step(&tx),
        }
        .map_err(|cause| StoreError::Damaged {
            path: path.to_owned(),
            what: format!(
                "its tables do not match its format version {} ({cause})",
                index
            ),
        })?;
        tx.pragma_update(None, "user_version", index as i32 + 1)
            .context(path, "migrating")?;
        tx.commit().context(path, "migrating")?;
        if edits_schema {
            connection
                .set_db_config(DbConfig::SQLITE_DBCONFIG_DEFENSIVE, true)
                .context(path, "migrating")?;
        }
    }
    Ok(())
}

/// Creates a directory for a cache (with its missing parents) that only its owner can enter:
/// caches hold production data. A directory that exists is left as it is: it may be anyone's
/// (a home directory, `/tmp`), and the cache file itself is readable by its owner only.
pub fn create_private_dir(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
}

/// rowtrail's own directory (its data directory, a private server's): created as
/// [`create_private_dir`] does, and closed to others if it exists open. Never for a directory
/// someone chose to put a cache in.
pub fn close_own_dir(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    create_private_dir(path)?;
    let mode = std::fs::metadata(path)?.permissions().mode();
    if mode & 0o077 != 0 {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode & 0o700))?;
    }
    Ok(())
}

/// Creates an empty file readable by its owner only: a cache holds production data. SQLite
/// creates the `-wal` and `-shm` files with the same permissions.
fn create_private(path: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .map(drop)
        .map_err(|cause| StoreError::Create {
            path: path.to_owned(),
            cause,
        })
}

/// Opens an existing cache for reading; refuses anything that is not a rowtrail cache.
pub(crate) fn open_existing(path: &Path) -> Result<Connection, StoreError> {
    match inspect(path)? {
        FileKind::Missing => {
            return Err(StoreError::NotFound {
                path: path.to_owned(),
            });
        }
        FileKind::Empty => {
            return Err(StoreError::Empty {
                path: path.to_owned(),
            });
        }
        FileKind::Cache => {}
    }
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let mut connection = Connection::open_with_flags(path, flags).context(path, "opening")?;
    harden(&connection, path)?;
    configure(&connection, path, READER_CACHE_KIB)?;
    check_objects(&connection, path)?;
    let version: i32 = connection
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .context(path, "reading the format version")?;
    if version < 1 {
        return Err(StoreError::Damaged {
            path: path.to_owned(),
            what: format!("its format version is {version}, which no rowtrail wrote"),
        });
    }
    if version > schema::CURRENT_VERSION {
        return Err(StoreError::TooNew {
            path: path.to_owned(),
            version,
            supported: schema::CURRENT_VERSION,
        });
    }
    migrate(&mut connection, path, version)?;
    Ok(connection)
}

/// Opens the cache capture writes to, creating it when missing or empty. Refuses a cache that
/// holds another source's history, before writing anything.
pub(crate) fn open_for_capture(
    path: &Path,
    source: &SourceIdentity,
) -> Result<Connection, StoreError> {
    let connection = match inspect(path)? {
        FileKind::Missing | FileKind::Empty => {
            create_private(path)?;
            let mut connection = Connection::open(path).context(path, "creating")?;
            harden(&connection, path)?;
            // Before anything is written (SQLite fixes it with the first page): retention and
            // erasure hand freed pages back to the disk.
            connection
                .execute_batch("PRAGMA auto_vacuum = INCREMENTAL")
                .context(path, "creating")?;
            connection
                .pragma_update(None, "application_id", schema::APPLICATION_ID)
                .context(path, "creating")?;
            connection
                .pragma_update(None, "journal_mode", "WAL")
                .context(path, "creating")?;
            configure(&connection, path, WRITER_CACHE_KIB)?;
            migrate(&mut connection, path, 0)?;
            connection
                .execute(
                    "INSERT INTO source (id, kind, system_identifier, database, display, server_version, created_at)
                     VALUES (1, 'postgres', ?1, ?2, ?3, ?4, ?5)",
                    (
                        &source.system_identifier,
                        &source.database,
                        &source.display,
                        &source.server_version,
                        chrono::Utc::now().to_rfc3339(),
                    ),
                )
                .context(path, "creating")?;
            connection
        }
        FileKind::Cache => {
            let connection = open_existing(path)?;
            let cached = read_source(&connection, path)?;
            if cached.system_identifier != source.system_identifier
                || cached.database != source.database
            {
                return Err(StoreError::OtherSource {
                    path: path.to_owned(),
                    cached: describe_source(&cached),
                    given: describe_source(source),
                });
            }
            connection
        }
    };
    connection
        .execute_batch(&format!(
            "PRAGMA synchronous = FULL; PRAGMA cache_size = -{WRITER_CACHE_KIB};"
        ))
        .context(path, "configuring")?;
    // `rowtrail prune` or `forget` may hold the file for minutes (rewriting it): capture waits
    // for them rather than fail. Two captures never share a cache (the slot admits one).
    connection
        .busy_timeout(std::time::Duration::from_secs(30 * 60))
        .context(path, "configuring")?;
    Ok(connection)
}

fn describe_source(source: &SourceIdentity) -> String {
    format!(
        "database '{}' of PostgreSQL system {} ({})",
        source.database, source.system_identifier, source.display
    )
}

pub(crate) fn read_source(db: &impl Query, path: &Path) -> Result<SourceIdentity, StoreError> {
    db.query_opt(
        "SELECT system_identifier, database, display, server_version FROM source WHERE id = 1",
        &[],
        |row| {
            Ok(SourceIdentity {
                system_identifier: row.get(0)?,
                database: row.get(1)?,
                display: row.get(2)?,
                server_version: row.get(3)?,
            })
        },
    )
    .context(path, "reading the source")?
    .ok_or_else(|| StoreError::Damaged {
        path: path.to_owned(),
        what: "it does not say which database it came from".into(),
    })
}

pub(crate) fn read_capture_state(
    db: &impl Query,
    path: &Path,
) -> Result<Option<CaptureState>, StoreError> {
    db.query_opt(
        "SELECT slot, publication, baseline, position FROM capture_state WHERE id = 1",
        &[],
        |row| {
            Ok(CaptureState {
                slot: row.get(0)?,
                publication: row.get(1)?,
                baseline: match row.get::<String>(2)?.as_str() {
                    "complete" => BaselineState::Complete,
                    _ => BaselineState::Pending,
                },
                position: Lsn(row.get::<i64>(3)? as u64),
            })
        },
    )
    .context(path, "reading the capture state")
}

/// Where an import from an audit store resumes, and what that store does not record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportState {
    /// The store's format (`pg-audit-trigger`, ...).
    pub format: String,
    /// Where it reads, for people; never a password.
    pub source: String,
    /// The format's own resume position, as JSON.
    pub cursor: String,
    /// What the store does not record, one sentence each (shown in the app).
    pub lacking: Vec<String>,
}

/// The column rules a cache was made with, and the fingerprint of the key of its `hash` rules.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoredRules {
    /// Every rule in force: those given, and those that carry them across renames.
    pub rules: ColumnRules,
    /// The rules a user gave (what a later capture's flags are compared with).
    pub given: ColumnRules,
    pub key_fingerprint: Option<String>,
}

/// Rules as people write them (`exclude customers.password_hash, mask *.email=hash`), or `none`.
pub fn describe_rules(rules: &ColumnRules) -> String {
    match rules.is_empty() {
        true => "none".to_owned(),
        false => rules
            .rules()
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", "),
    }
}

pub(crate) fn read_column_rules(db: &impl Query, path: &Path) -> Result<StoredRules, StoreError> {
    let rows: Vec<(String, String, Option<String>, Option<String>)> = db
        .query_map(
            "SELECT pattern, protection, key_fingerprint, derived_from FROM column_rules ORDER BY id",
            &[],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?)),
        )
        .context(path, "reading the column rules")?;
    let mut rules = Vec::new();
    let mut given = Vec::new();
    let mut key_fingerprint = None;
    for (pattern, protection, fingerprint, derived_from) in rows {
        let rule = match protection.as_str() {
            "exclude" => ColumnRule::exclude(&pattern),
            how => ColumnRule::mask(&format!("{pattern}={how}")),
        }
        .map_err(|error| StoreError::Damaged {
            path: path.to_owned(),
            what: format!("column rule: {error}"),
        })?;
        key_fingerprint = key_fingerprint.or(fingerprint);
        if derived_from.is_none() {
            given.push(rule.clone());
        }
        rules.push(rule);
    }
    Ok(StoredRules {
        rules: ColumnRules::new(rules),
        given: ColumnRules::new(given),
        key_fingerprint,
    })
}

pub(crate) fn read_import_state(
    db: &impl Query,
    path: &Path,
) -> Result<Option<ImportState>, StoreError> {
    let row: Option<(String, String, String, String)> = db
        .query_opt(
            "SELECT format, source, cursor, lacking FROM import_state WHERE id = 1",
            &[],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?)),
        )
        .context(path, "reading the import state")?;
    row.map(|(format, source, cursor, lacking)| {
        let lacking = serde_json::from_str(&lacking).map_err(|error| StoreError::Damaged {
            path: path.to_owned(),
            what: format!("the import state: {error}"),
        })?;
        Ok(ImportState {
            format,
            source,
            cursor,
            lacking,
        })
    })
    .transpose()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // In tests a failed unwrap is a failed test.
mod tests {
    use super::*;

    fn identity(system: &str) -> SourceIdentity {
        SourceIdentity {
            system_identifier: system.into(),
            database: "shop".into(),
            display: "ann@localhost:5432/shop".into(),
            server_version: "15.4".into(),
        }
    }

    #[test]
    fn refuses_files_that_are_not_caches_without_touching_them() {
        let dir = tempfile::tempdir().unwrap();
        let text = dir.path().join("notes.txt");
        std::fs::write(&text, "hello, this is not a database at all").unwrap();
        let other = dir.path().join("other.sqlite");
        Connection::open(&other)
            .unwrap()
            .execute_batch("CREATE TABLE t (x); INSERT INTO t VALUES (1);")
            .unwrap();
        let before = std::fs::read(&other).unwrap();

        for path in [&text, &other] {
            let error = open_for_capture(path, &identity("1")).unwrap_err();
            assert!(matches!(error, StoreError::NotACache { .. }), "{error}");
            assert!(matches!(
                open_existing(path),
                Err(StoreError::NotACache { .. })
            ));
        }
        assert_eq!(
            std::fs::read(&text).unwrap(),
            b"hello, this is not a database at all"
        );
        assert_eq!(std::fs::read(&other).unwrap(), before);
        assert!(matches!(
            open_existing(&dir.path().join("missing.db")),
            Err(StoreError::NotFound { .. })
        ));
    }

    #[test]
    fn a_new_cache_holds_exactly_the_known_objects_and_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cache.db");
        let connection = open_for_capture(&path, &identity("1")).unwrap();
        let names: Vec<String> = connection
            .prepare("SELECT name FROM sqlite_schema WHERE name NOT LIKE 'sqlite_%' ORDER BY name")
            .unwrap()
            .query_map([], |row| row.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let mut known: Vec<String> = schema::TABLES
            .iter()
            .chain(schema::INDEXES)
            .map(|name| (*name).to_owned())
            .collect();
        known.sort();
        assert_eq!(names, known);
        for file in ["cache.db", "cache.db-wal", "cache.db-shm"] {
            let mode = std::fs::metadata(dir.path().join(file))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o077, 0, "{file} is readable by others: {mode:o}");
        }
    }

    #[test]
    fn refuses_another_source() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cache.db");
        drop(open_for_capture(&path, &identity("1")).unwrap());
        drop(open_for_capture(&path, &identity("1")).unwrap());
        let error = open_for_capture(&path, &identity("2")).unwrap_err();
        assert!(matches!(error, StoreError::OtherSource { .. }), "{error}");
        assert!(error.to_string().contains("use a new --cache file"));
    }

    #[test]
    fn refuses_a_newer_format() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cache.db");
        let connection = open_for_capture(&path, &identity("1")).unwrap();
        connection.pragma_update(None, "user_version", 99).unwrap();
        drop(connection);
        assert!(matches!(
            open_existing(&path),
            Err(StoreError::TooNew { version: 99, .. })
        ));
    }
}
