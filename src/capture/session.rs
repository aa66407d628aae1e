//! Ordinary SQL connections to the source (catalog questions, publication and slot management,
//! the baseline snapshot), through tokio-postgres.

use std::sync::Arc;

use rustls::ClientConfig;
use tokio_postgres::config::{ChannelBinding as PgChannelBinding, SslMode as PgSslMode};

use super::conninfo::{ChannelBinding, ConnectionSpec, Endpoint, Host, SslMode};
use super::error::CaptureError;

/// Session settings that make values print the same way everywhere rowtrail reads them: in the
/// replication stream, in the baseline `COPY`, and in what `::text` prints under these settings.
pub const SESSION_SETTINGS: [(&str, &str); 4] = [
    ("TimeZone", "UTC"),
    ("DateStyle", "ISO, MDY"),
    ("IntervalStyle", "postgres"),
    ("extra_float_digits", "3"),
];

/// An open SQL connection and where it goes.
pub struct SqlSession {
    pub client: tokio_postgres::Client,
    /// `host:port` of the server, for messages.
    pub endpoint: String,
}

impl SqlSession {
    /// Connects to the first endpoint that accepts, with rowtrail's session settings.
    pub async fn connect(
        spec: &ConnectionSpec,
        tls: Option<Arc<ClientConfig>>,
    ) -> Result<Self, CaptureError> {
        first_reachable(spec, |endpoint| connect_one(spec, endpoint, tls.clone())).await
    }

    /// Runs SQL and wraps failures with what was being done.
    pub async fn execute(&self, action: &str, sql: &str) -> Result<(), CaptureError> {
        self.client
            .batch_execute(sql)
            .await
            .map_err(|error| CaptureError::sql(action, &self.endpoint, error))
    }

    pub async fn query(
        &self,
        action: &str,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Vec<tokio_postgres::Row>, CaptureError> {
        self.client
            .query(sql, params)
            .await
            .map_err(|error| CaptureError::sql(action, &self.endpoint, error))
    }

    pub async fn query_opt(
        &self,
        action: &str,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Option<tokio_postgres::Row>, CaptureError> {
        self.client
            .query_opt(sql, params)
            .await
            .map_err(|error| CaptureError::sql(action, &self.endpoint, error))
    }

    pub async fn query_one(
        &self,
        action: &str,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<tokio_postgres::Row, CaptureError> {
        self.client
            .query_one(sql, params)
            .await
            .map_err(|error| CaptureError::sql(action, &self.endpoint, error))
    }
}

/// Tries the endpoints in order, as libpq does with several hosts: the first connection that
/// succeeds, or the last error.
pub(crate) async fn first_reachable<'a, T, F, Fut>(
    spec: &'a ConnectionSpec,
    mut connect: F,
) -> Result<T, CaptureError>
where
    F: FnMut(&'a Endpoint) -> Fut,
    Fut: std::future::Future<Output = Result<T, CaptureError>>,
{
    let mut last_error = None;
    for endpoint in &spec.endpoints {
        match connect(endpoint).await {
            Ok(connection) => return Ok(connection),
            Err(error) => last_error = Some(error),
        }
    }
    Err(last_error.unwrap_or(CaptureError::Protocol {
        what: "no host to connect to".into(),
    }))
}

async fn connect_one(
    spec: &ConnectionSpec,
    endpoint: &Endpoint,
    tls: Option<Arc<ClientConfig>>,
) -> Result<SqlSession, CaptureError> {
    let mut config = tokio_postgres::Config::new();
    match &endpoint.host {
        Host::Tcp(host) => config.host(host),
        Host::Unix(dir) => config.host_path(dir),
    };
    config
        .port(endpoint.port)
        .user(&spec.user)
        .dbname(&spec.dbname)
        .application_name(&spec.application_name)
        .connect_timeout(spec.connect_timeout);
    if let Some(password) = &endpoint.password {
        config.password(password.expose());
    }
    let settings: Vec<String> = SESSION_SETTINGS
        .iter()
        .map(|(name, value)| format!("-c {name}={}", value.replace(' ', "\\ ")))
        .collect();
    let options = match &spec.options {
        Some(options) => format!("{options} {}", settings.join(" ")),
        None => settings.join(" "),
    };
    config.options(&options);
    config.channel_binding(match spec.tls.channel_binding {
        ChannelBinding::Disable => PgChannelBinding::Disable,
        ChannelBinding::Prefer => PgChannelBinding::Prefer,
        ChannelBinding::Require => PgChannelBinding::Require,
    });
    // As in libpq, TLS is never used over Unix sockets.
    config.ssl_mode(match (&endpoint.host, spec.tls.mode) {
        (Host::Unix(_), _) | (_, SslMode::Disable) => PgSslMode::Disable,
        (_, SslMode::Prefer) => PgSslMode::Prefer,
        (_, SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull) => PgSslMode::Require,
    });
    let name = endpoint.to_string();
    let password_given = endpoint.password.is_some();
    let binding_required = spec.tls.channel_binding == ChannelBinding::Require;
    let failed = |error: tokio_postgres::Error| {
        let login_failed =
            error.as_db_error().is_none() && !error.is_closed() && !has_io_cause(&error);
        match (
            is_password_missing(&error, password_given),
            binding_required && login_failed,
        ) {
            (true, _) => CaptureError::NoPassword {
                user: spec.user.clone(),
                endpoint: name.clone(),
            },
            // tokio-postgres refuses to authenticate without the binding it was told to require.
            (false, true) => CaptureError::Tls {
                endpoint: name.clone(),
                reason: format!(
                    "channel_binding=require, but the server did not bind authentication to TLS ({error}): the server may not be who it claims; use TLS with scram-sha-256 (PostgreSQL 11+), or channel_binding=prefer"
                ),
            },
            (false, false) => CaptureError::sql(&format!("connecting to {name}"), &name, error),
        }
    };
    let client = match tls {
        Some(tls) => {
            let connector = tokio_postgres_rustls::MakeRustlsConnect::new((*tls).clone());
            let (client, connection) = config.connect(connector).await.map_err(failed)?;
            spawn_connection(connection);
            client
        }
        None => {
            let (client, connection) = config
                .connect(tokio_postgres::NoTls)
                .await
                .map_err(failed)?;
            spawn_connection(connection);
            client
        }
    };
    Ok(SqlSession {
        client,
        endpoint: name,
    })
}

/// tokio-postgres reports a password the server asked for but was not given as a configuration
/// error, and has no public error kind to say so. A login that failed without a server error and
/// without an I/O cause, when no password was given, is that error.
fn is_password_missing(error: &tokio_postgres::Error, password_given: bool) -> bool {
    !password_given && error.as_db_error().is_none() && !error.is_closed() && !has_io_cause(error)
}

/// True when an I/O error is among the error's causes.
fn has_io_cause(error: &tokio_postgres::Error) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(current) = cause {
        if current.downcast_ref::<std::io::Error>().is_some() {
            return true;
        }
        cause = current.source();
    }
    false
}

fn spawn_connection<S, T>(connection: tokio_postgres::Connection<S, T>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::debug!("SQL connection ended: {error}");
        }
    });
}
