//! Everything that can go wrong while talking to the source, each with what to do about it.

use postgres_protocol::message::backend::ErrorFields;

use crate::decode::DecodeError;
use crate::model::Lsn;
use crate::store::StoreError;

use super::conninfo::ConnInfoError;
use super::tls::TlsSetupError;

/// An error reported by the PostgreSQL server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerError {
    /// The SQLSTATE code, e.g. `42501`.
    pub code: String,
    pub message: String,
    pub detail: Option<String>,
    pub hint: Option<String>,
}

impl ServerError {
    pub(crate) fn from_fields(mut fields: ErrorFields<'_>) -> Self {
        let mut error = ServerError {
            code: String::new(),
            message: String::new(),
            detail: None,
            hint: None,
        };
        while let Ok(Some(field)) = fallible_iterator::FallibleIterator::next(&mut fields) {
            let value = String::from_utf8_lossy(field.value_bytes()).into_owned();
            match field.type_() {
                b'C' => error.code = value,
                b'M' => error.message = value,
                b'D' => error.detail = Some(value),
                b'H' => error.hint = Some(value),
                _ => {}
            }
        }
        error
    }

    pub(crate) fn from_db_error(error: &tokio_postgres::error::DbError) -> Self {
        ServerError {
            code: error.code().code().to_owned(),
            message: error.message().to_owned(),
            detail: error.detail().map(str::to_owned),
            hint: error.hint().map(str::to_owned),
        }
    }

    /// Connection failures (class 08, but not a protocol violation), a server shutting down or
    /// starting up (57P01-57P03), a slot still held by a dying connection (55006), and too many
    /// connections (53300).
    pub fn is_transient(&self) -> bool {
        match self.code.as_str() {
            "08P01" => false,
            code if code.starts_with("08") => true,
            "57P01" | "57P02" | "57P03" | "55006" | "53300" => true,
            _ => false,
        }
    }

    /// What the user can do about it: rowtrail's advice for codes it knows, else the server's hint.
    fn advice(&self) -> Option<String> {
        let ours = match self.code.as_str() {
            "28P01" => Some(
                "check the user name and password (PGPASSWORD, ~/.pgpass or the connection URL)",
            ),
            "28000" if self.message.contains("pg_hba.conf") => Some(
                "allow the client in pg_hba.conf (for capture also a 'replication' line, e.g. host replication USER ADDRESS/32 scram-sha-256) and reload PostgreSQL",
            ),
            "28000" => Some("check the user name and that the role may log in"),
            "3D000" => Some("check the database name in the connection string (dbname)"),
            "42501"
                if ["table", "view", "schema", "relation", "sequence"]
                    .iter()
                    .any(|object| {
                        self.message
                            .contains(&format!("permission denied for {object}"))
                    }) =>
            {
                Some(
                    "let the role read it: GRANT USAGE ON SCHEMA that_schema TO name; GRANT SELECT ON that_schema.that_table TO name;",
                )
            }
            "42501" => Some(
                "give the role the REPLICATION attribute (ALTER ROLE name REPLICATION;) or use a superuser; on Amazon RDS/Aurora: GRANT rds_replication TO name;",
            ),
            "55006" => Some(
                "another process is using the replication slot: stop the other capture (or wait for its connection to time out), or use another --slot",
            ),
            "53400" => Some(
                "all replication slots or WAL senders are in use: drop unused slots (SELECT pg_drop_replication_slot(name)) or raise max_replication_slots / max_wal_senders and restart PostgreSQL",
            ),
            "53300" => Some(
                "too many connections: raise max_connections or max_wal_senders and restart PostgreSQL",
            ),
            "55000" if self.message.contains("wal_level") => {
                Some("run ALTER SYSTEM SET wal_level = logical; then restart PostgreSQL")
            }
            "42704" if self.message.contains("replication slot") => {
                Some("the slot does not exist: check --slot, or run capture to create it")
            }
            _ => None,
        };
        ours.map(str::to_owned).or_else(|| self.hint.clone())
    }
}

impl std::fmt::Display for ServerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", one_line(&self.message))?;
        if let Some(detail) = &self.detail {
            write!(f, " ({})", one_line(detail))?;
        }
        write!(f, " [SQLSTATE {}]", self.code)?;
        if let Some(advice) = self.advice() {
            write!(f, "; {}", one_line(&advice))?;
        }
        Ok(())
    }
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Capture, doctor or teardown could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error(transparent)]
    ConnInfo(#[from] ConnInfoError),
    #[error(transparent)]
    TlsSetup(#[from] TlsSetupError),
    #[error(
        "could not connect to {endpoint}: {reason}; check that PostgreSQL runs there and accepts connections (host, port, firewall)"
    )]
    Connect { endpoint: String, reason: String },
    #[error(
        "TLS with {endpoint} failed: {reason}; check sslmode and sslrootcert, or the server's certificate"
    )]
    Tls { endpoint: String, reason: String },
    #[error(
        "the server at {endpoint} asks user {user} for a password and none was given: set PGPASSWORD, add a line to ~/.pgpass, or put it in the connection URL"
    )]
    NoPassword { user: String, endpoint: String },
    #[error("{action} failed: {error}")]
    Server { action: String, error: ServerError },
    #[error("lost the connection to {endpoint}: {cause}")]
    ConnectionLost {
        endpoint: String,
        cause: std::io::Error,
    },
    #[error("the server broke the replication protocol: {what}")]
    Protocol { what: String },
    #[error(
        "could not read the change stream: {0}; nothing after the last stored position was kept, so capture starts there again when run: if it fails the same way, report it with the output of rowtrail capture -v"
    )]
    Decode(DecodeError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(
        "{} not found in database {database}: check the names (schema.table, double quotes for capitals), list tables with \\dt in psql",
        tables_phrase(.tables)
    )]
    UnknownTables {
        tables: Vec<String>,
        database: String,
    },
    #[error("capture cannot run: {0}")]
    NotReady(String),
    #[error(
        "replication slot '{slot}' uses the output plugin '{plugin}', not pgoutput: choose another --slot, or drop it with rowtrail teardown --slot {slot} if nothing else uses it"
    )]
    SlotPlugin { slot: String, plugin: String },
    #[error(
        "replication slot '{slot}' already exists but this cache has no history from it, so the baseline snapshot cannot be taken: use a new --slot name, or drop the slot with rowtrail teardown --slot {slot}"
    )]
    SlotWithoutCache { slot: String },
    #[error(
        "replication slot '{slot}', which feeds this cache, no longer exists on the source: the changes since {position} are lost to it; go on in this cache after a gap with rowtrail capture --new-baseline (the history will say it is missing from {position}), or start a new cache file"
    )]
    SlotMissing { slot: String, position: Lsn },
    #[error(
        "replication slot '{slot}' was invalidated by the server: it fell so far behind that the server removed WAL it still needed (max_slot_wal_keep_size), so the changes since {position} are lost to this cache; go on after a gap with rowtrail capture --new-baseline (the history will say it is missing from {position}), or start a new cache file; to keep it from happening again, capture more often or raise max_slot_wal_keep_size"
    )]
    SlotInvalidated { slot: String, position: Lsn },
    #[error(
        "replication slot '{slot}' has already confirmed changes up to {slot_position}, but this cache only holds them up to {cache_position}: it is an older copy of the cache; use the current cache file, or start a new cache with a new slot"
    )]
    CacheBehindSlot {
        slot: String,
        slot_position: Lsn,
        cache_position: Lsn,
    },
    #[error("'{0}' is not a valid slot name: use 1-63 lower-case letters, digits and underscores")]
    BadSlotName(String),
    #[error(
        "could not keep a transaction the server streams before its commit in {}: {cause}; check the free space and permissions of the cache's directory, then run capture again (nothing stored was lost)",
        .path.display()
    )]
    Spill {
        path: std::path::PathBuf,
        cause: std::io::Error,
    },
    #[error(
        "the cache writer stopped unexpectedly; everything before the last stored position is safe: run capture again to go on from there"
    )]
    WriterGone,
}

impl From<DecodeError> for CaptureError {
    fn from(error: DecodeError) -> Self {
        Self::Decode(error)
    }
}

fn tables_phrase(tables: &[String]) -> String {
    match tables {
        [one] => format!("table {one} was"),
        many => format!("tables {} were", many.join(", ")),
    }
}

impl CaptureError {
    pub(crate) fn server(action: String, error: ServerError) -> Self {
        Self::Server { action, error }
    }

    /// Converts an error from a tokio-postgres (SQL) connection.
    pub(crate) fn sql(action: &str, endpoint: &str, error: tokio_postgres::Error) -> Self {
        if let Some(db_error) = error.as_db_error() {
            return Self::server(action.to_owned(), ServerError::from_db_error(db_error));
        }
        let mut chain: Vec<String> = Vec::new();
        let mut is_tls = false;
        let mut is_io = false;
        let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(&error);
        while let Some(current) = cause {
            let text = current.to_string();
            is_tls |= current.downcast_ref::<rustls::Error>().is_some();
            if let Some(io) = current.downcast_ref::<std::io::Error>() {
                is_io = true;
                // rustls reports handshake and certificate failures as InvalidData I/O errors.
                is_tls |= io.kind() == std::io::ErrorKind::InvalidData
                    || io
                        .get_ref()
                        .is_some_and(|inner| inner.downcast_ref::<rustls::Error>().is_some());
            }
            if !chain.iter().any(|known| known.contains(&text)) {
                chain.push(text);
            }
            cause = current.source();
        }
        let reason = chain.join(": ");
        match (is_tls, is_io) {
            (true, _) => Self::Tls {
                endpoint: endpoint.to_owned(),
                reason,
            },
            (false, true) => Self::Connect {
                endpoint: endpoint.to_owned(),
                reason,
            },
            (false, false) => Self::Protocol {
                what: format!("{action}: {reason}"),
            },
        }
    }

    /// True for failures that may go away by themselves (a dropped connection, a restarting server,
    /// a slot still held by a connection that is dying), so capture should retry with backoff.
    /// Decided by the error's kind and SQLSTATE only: authentication failures (class 28), protocol
    /// violations (08P01 and our own `Protocol`), TLS and decoding errors stop capture at once.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Connect { .. } | Self::ConnectionLost { .. } => true,
            Self::Server { error, .. } => error.is_transient(),
            _ => false,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // In tests a failed unwrap is a failed test.
mod tests {
    use super::*;

    fn server(code: &str) -> CaptureError {
        CaptureError::server(
            "streaming changes".into(),
            ServerError {
                code: code.into(),
                message: "m".into(),
                detail: None,
                hint: None,
            },
        )
    }

    #[test]
    fn errors_are_transient_by_kind_and_sqlstate_only() {
        for code in ["08006", "08001", "57P01", "57P03", "55006", "53300"] {
            assert!(server(code).is_transient(), "{code}");
        }
        // Authentication, protocol violations, privileges, missing objects: stop at once.
        for code in [
            "28P01", "28000", "08P01", "42501", "42704", "3D000", "53400",
        ] {
            assert!(!server(code).is_transient(), "{code}");
        }
        let lost = CaptureError::ConnectionLost {
            endpoint: "db:5432".into(),
            cause: std::io::ErrorKind::UnexpectedEof.into(),
        };
        assert!(lost.is_transient());
        let protocol = CaptureError::Protocol {
            what: "connection lost while reading".into(),
        };
        assert!(
            !protocol.is_transient(),
            "a protocol error whatever its text"
        );
        let decode = CaptureError::Decode(DecodeError::UnexpectedTag { tag: b'?' });
        assert!(!decode.is_transient());
    }
}
