//! libpq-compatible connection settings: URLs and `key=value` strings, the `PG*` environment
//! variables, defaults, and `~/.pgpass`.
//!
//! Written by hand because tokio-postgres's parser rejects `sslmode=verify-ca|verify-full` and the
//! `sslrootcert`/`sslcert`/`sslkey` keys, and no maintained crate parses libpq strings, the
//! environment and the password file together. Parsing is pure; the only I/O is reading the
//! password file, done through [`Environment`] so tests can supply their own.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How to use TLS, with libpq's meaning for each mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    /// Never use TLS.
    Disable,
    /// Use TLS when the server offers it; do not verify the certificate.
    Prefer,
    /// Always use TLS; verify the certificate chain only when a root certificate is configured.
    Require,
    /// Always use TLS and verify the certificate chain, but not the host name.
    VerifyCa,
    /// Always use TLS, verify the chain and that the certificate names the host.
    VerifyFull,
}

impl SslMode {
    fn parse(text: &str) -> Result<Self, ConnInfoError> {
        match text {
            "disable" => Ok(Self::Disable),
            "prefer" => Ok(Self::Prefer),
            "require" => Ok(Self::Require),
            "verify-ca" => Ok(Self::VerifyCa),
            "verify-full" => Ok(Self::VerifyFull),
            other => Err(ConnInfoError::BadValue {
                key: "sslmode".into(),
                value: other.into(),
                expected: "disable, prefer, require, verify-ca or verify-full",
            }),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Disable => "disable",
            Self::Prefer => "prefer",
            Self::Require => "require",
            Self::VerifyCa => "verify-ca",
            Self::VerifyFull => "verify-full",
        }
    }
}

/// Where the server listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    Tcp(String),
    /// A directory holding the server's Unix socket (`.s.PGSQL.<port>`).
    Unix(PathBuf),
}

impl Host {
    fn parse(text: &str) -> Self {
        match text.starts_with('/') {
            true => Self::Unix(PathBuf::from(text)),
            false => Self::Tcp(text.to_owned()),
        }
    }

    /// The name `~/.pgpass` matches against: `localhost` for Unix sockets, as in libpq.
    fn pgpass_name(&self) -> &str {
        match self {
            Self::Tcp(name) => name,
            Self::Unix(_) => "localhost",
        }
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Tcp(name) if name.contains(':') => write!(f, "[{name}]"),
            Self::Tcp(name) => f.write_str(name),
            Self::Unix(dir) => write!(f, "{}", dir.display()),
        }
    }
}

/// A password: held, passed on, never shown. `Debug` and `Display` print `********`, so one can
/// never reach an error message, a log line or the screen by accident.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Password(String);

impl Password {
    pub fn new(text: impl Into<String>) -> Self {
        Self(text.into())
    }

    /// 32 hexadecimal digits from the operating system's random generator.
    pub fn random() -> Self {
        use ring::rand::SecureRandom;
        let mut bytes = [0u8; 16];
        // SystemRandom reads the OS's generator; it fails only where no such generator exists.
        let filled = ring::rand::SystemRandom::new().fill(&mut bytes).is_ok();
        let mut text: String = bytes.iter().map(|byte| format!("{byte:02x}")).collect();
        if !filled {
            // Last resort, still not guessable from outside the process: time and address.
            let seed = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|time| time.as_nanos())
                .unwrap_or(0);
            text = format!("{seed:032x}{:x}", &bytes as *const _ as usize);
        }
        Self(text)
    }

    /// The password itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The text, for an input field that edits it.
    pub fn as_mut_string(&mut self) -> &mut String {
        &mut self.0
    }

    /// The password as a field of a pgpass file (`:` and `\` escaped).
    pub fn pgpass_field(&self) -> String {
        self.0.replace('\\', "\\\\").replace(':', "\\:")
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(********)")
    }
}

impl fmt::Display for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("********")
    }
}

/// One server to try, with the password that applies to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub host: Host,
    pub port: u16,
    pub password: Option<Password>,
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.host {
            Host::Tcp(_) => write!(f, "{}:{}", self.host, self.port),
            Host::Unix(dir) => write!(f, "{}:{} (socket)", dir.display(), self.port),
        }
    }
}

/// Where trusted root certificates come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootCerts {
    File(PathBuf),
    /// The operating system's trust store (`sslrootcert=system`).
    System,
}

/// libpq's `channel_binding`: whether SCRAM authentication binds itself to the TLS connection
/// (`SCRAM-SHA-256-PLUS`), so a man in the middle holding another certificate cannot relay it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelBinding {
    Disable,
    /// Bind when the connection is TLS and the server offers it (the default).
    Prefer,
    /// Refuse to authenticate without it.
    Require,
}

impl ChannelBinding {
    pub fn parse(text: &str) -> Result<Self, ConnInfoError> {
        match text {
            "disable" => Ok(Self::Disable),
            "prefer" => Ok(Self::Prefer),
            "require" => Ok(Self::Require),
            other => Err(ConnInfoError::BadValue {
                key: "channel_binding".into(),
                value: other.into(),
                expected: "disable, prefer or require",
            }),
        }
    }
}

/// TLS settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    pub mode: SslMode,
    pub channel_binding: ChannelBinding,
    pub root_certs: Option<RootCerts>,
    /// A client certificate and its private key, both PEM files.
    pub client_cert: Option<(PathBuf, PathBuf)>,
}

/// Fully resolved settings for connecting to one database.
#[derive(Clone, PartialEq, Eq)]
pub struct ConnectionSpec {
    pub endpoints: Vec<Endpoint>,
    pub user: String,
    pub dbname: String,
    pub tls: TlsSettings,
    pub application_name: String,
    pub connect_timeout: Duration,
    pub options: Option<String>,
}

impl fmt::Debug for ConnectionSpec {
    // Written out so that passwords never reach logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectionSpec")
            .field("target", &self.to_string())
            .field("sslmode", &self.tls.mode)
            .finish_non_exhaustive()
    }
}

impl fmt::Display for ConnectionSpec {
    /// `user@host:port/dbname`, never with the password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let endpoints: Vec<String> = self.endpoints.iter().map(ToString::to_string).collect();
        write!(f, "{}@{}/{}", self.user, endpoints.join(","), self.dbname)
    }
}

/// A connection string could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnInfoError {
    #[error(
        "connection string is malformed: {reason}; use postgres://user@host:5432/db or 'host=... dbname=...'"
    )]
    Malformed { reason: String },
    #[error("connection option '{key}' is not supported; supported: {}", SUPPORTED_KEYS.join(", "))]
    UnknownKey { key: String },
    #[error("connection option {key}='{value}' is invalid: expected {expected}")]
    BadValue {
        key: String,
        value: String,
        expected: &'static str,
    },
    #[error("{count} hosts but {ports} ports were given: give one port, or one per host")]
    PortCount { count: usize, ports: usize },
    #[error(
        "sslmode={mode} needs a root certificate to verify the server: set sslrootcert=/path/to/ca.pem, or sslrootcert=system for the operating system's store"
    )]
    NoRootCert { mode: &'static str },
    #[error(
        "could not determine the user name: set PGUSER or put user=... in the connection string"
    )]
    NoUser,
}

const SUPPORTED_KEYS: [&str; 14] = [
    "host",
    "port",
    "dbname",
    "user",
    "password",
    "passfile",
    "sslmode",
    "sslrootcert",
    "sslcert",
    "sslkey",
    "channel_binding",
    "application_name",
    "connect_timeout",
    "options",
];

/// The process environment as far as connecting is concerned: variables, the home directory, and
/// reading files (the password file and default certificate locations).
pub trait Environment {
    fn var(&self, name: &str) -> Option<String>;
    fn home(&self) -> Option<PathBuf>;
    /// The contents of a password file, or `None` when it is missing or not private (libpq ignores a
    /// password file that others can read).
    fn read_password_file(&self, path: &Path) -> Option<String>;
    /// Whether a file (or socket) exists at `path`.
    fn file_exists(&self, path: &Path) -> bool;
}

/// The real environment of this process.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessEnvironment;

impl Environment for ProcessEnvironment {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|value| !value.is_empty())
    }

    fn home(&self) -> Option<PathBuf> {
        self.var("HOME").map(PathBuf::from)
    }

    fn read_password_file(&self, path: &Path) -> Option<String> {
        use std::os::unix::fs::PermissionsExt;
        let metadata = std::fs::metadata(path).ok()?;
        if metadata.permissions().mode() & 0o077 != 0 {
            tracing::warn!(
                "password file {} has group or world access; it is ignored (chmod 0600 it)",
                path.display()
            );
            return None;
        }
        std::fs::read_to_string(path).ok()
    }

    fn file_exists(&self, path: &Path) -> bool {
        path.exists()
    }
}

impl ConnectionSpec {
    /// Parses a URL (`postgres://...`) or `key=value` string and fills in what it leaves out from
    /// the environment, the defaults and the password file, as libpq does. An empty string means
    /// "everything from the environment".
    pub fn resolve(text: &str, env: &dyn Environment) -> Result<Self, ConnInfoError> {
        let given = parse_conninfo(text)?;
        let setting = |key: &str, var: &str| -> Option<String> {
            given
                .get(key)
                .cloned()
                .or_else(|| env.var(var))
                .filter(|value| !value.is_empty())
        };

        let ports: Vec<u16> = match setting("port", "PGPORT") {
            Some(ports) => ports
                .split(',')
                .map(|port| match port.trim() {
                    "" => Ok(5432),
                    port => port.parse().map_err(|_| ConnInfoError::BadValue {
                        key: "port".into(),
                        value: port.into(),
                        expected: "a port number",
                    }),
                })
                .collect::<Result<_, _>>()?,
            None => vec![5432],
        };
        let hosts: Vec<Host> = match setting("host", "PGHOST") {
            Some(hosts) => hosts.split(',').map(str::trim).map(Host::parse).collect(),
            None => vec![default_host(env, ports.first().copied().unwrap_or(5432))],
        };
        if ports.len() != 1 && ports.len() != hosts.len() {
            return Err(ConnInfoError::PortCount {
                count: hosts.len(),
                ports: ports.len(),
            });
        }

        let user = setting("user", "PGUSER")
            .or_else(|| env.var("USER"))
            .or_else(|| env.var("LOGNAME"))
            .ok_or(ConnInfoError::NoUser)?;
        let dbname = setting("dbname", "PGDATABASE").unwrap_or_else(|| user.clone());
        let password = setting("password", "PGPASSWORD");
        let passfile = setting("passfile", "PGPASSFILE")
            .map(PathBuf::from)
            .or_else(|| env.home().map(|home| home.join(".pgpass")));
        let pgpass = match (&password, &passfile) {
            (None, Some(path)) => env
                .read_password_file(path)
                .map(|text| parse_pgpass(&text))
                .unwrap_or_default(),
            _ => Vec::new(),
        };

        let endpoints = hosts
            .into_iter()
            .enumerate()
            .map(|(index, host)| {
                let port = ports.get(index).or(ports.first()).copied().unwrap_or(5432);
                let password = password.clone().map(Password::new).or_else(|| {
                    pgpass
                        .iter()
                        .find(|entry| entry.matches(host.pgpass_name(), port, &dbname, &user))
                        .map(|entry| entry.password.clone())
                });
                Endpoint {
                    host,
                    port,
                    password,
                }
            })
            .collect();

        let mode = match setting("sslmode", "PGSSLMODE") {
            Some(mode) => SslMode::parse(&mode)?,
            None => SslMode::Prefer,
        };
        let channel_binding = match setting("channel_binding", "PGCHANNELBINDING") {
            Some(value) => ChannelBinding::parse(&value)?,
            None => ChannelBinding::Prefer,
        };
        if channel_binding == ChannelBinding::Require && mode == SslMode::Disable {
            return Err(ConnInfoError::BadValue {
                key: "channel_binding".into(),
                value: "require".into(),
                expected: "TLS to bind to: use sslmode=require (or stronger) with it",
            });
        }
        let dot_postgresql = env.home().map(|home| home.join(".postgresql"));
        let root_certs = match setting("sslrootcert", "PGSSLROOTCERT") {
            Some(value) if value == "system" => Some(RootCerts::System),
            Some(path) => Some(RootCerts::File(PathBuf::from(path))),
            None => dot_postgresql
                .as_ref()
                .map(|dir| dir.join("root.crt"))
                .filter(|path| env.file_exists(path))
                .map(RootCerts::File),
        };
        if matches!(mode, SslMode::VerifyCa | SslMode::VerifyFull) && root_certs.is_none() {
            return Err(ConnInfoError::NoRootCert {
                mode: mode.as_str(),
            });
        }
        let default_file = |name: &str| {
            dot_postgresql
                .as_ref()
                .map(|dir| dir.join(name))
                .filter(|path| env.file_exists(path))
        };
        let cert = setting("sslcert", "PGSSLCERT")
            .map(PathBuf::from)
            .or_else(|| default_file("postgresql.crt"));
        let key = setting("sslkey", "PGSSLKEY")
            .map(PathBuf::from)
            .or_else(|| default_file("postgresql.key"));

        let connect_timeout = match setting("connect_timeout", "PGCONNECT_TIMEOUT") {
            Some(seconds) => match seconds.parse::<u64>() {
                Ok(0) => Duration::from_secs(10),
                Ok(seconds) => Duration::from_secs(seconds.max(2)),
                Err(_) => {
                    return Err(ConnInfoError::BadValue {
                        key: "connect_timeout".into(),
                        value: seconds,
                        expected: "a number of seconds",
                    });
                }
            },
            None => Duration::from_secs(10),
        };

        Ok(Self {
            endpoints,
            user,
            dbname,
            tls: TlsSettings {
                mode,
                channel_binding,
                root_certs,
                client_cert: cert.zip(key),
            },
            application_name: setting("application_name", "PGAPPNAME")
                .unwrap_or_else(|| "rowtrail".to_owned()),
            connect_timeout,
            options: setting("options", "PGOPTIONS"),
        })
    }
}

/// libpq's default: the local Unix socket when one is listening in a usual place, else localhost.
fn default_host(env: &dyn Environment, port: u16) -> Host {
    for dir in ["/var/run/postgresql", "/tmp"] {
        if env.file_exists(&Path::new(dir).join(format!(".s.PGSQL.{port}"))) {
            return Host::Unix(PathBuf::from(dir));
        }
    }
    Host::Tcp("localhost".to_owned())
}

/// Where a connection string points, for people: `user@host:port/dbname` with the parts it gives,
/// never its password. Pure: no environment, no files.
/// A connection URL for a source as a cache names it (`user@host:port/db`, as `ConnectionSpec`
/// displays it; sockets as `/dir:port (socket)`), to run scripts on the source a cache came from.
/// Text that is not in that form comes back as it is.
pub fn url_for_display(display: &str) -> String {
    fn encode(text: &str) -> String {
        text.bytes()
            .map(|byte| match byte {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                    (byte as char).to_string()
                }
                other => format!("%{other:02X}"),
            })
            .collect()
    }
    let Some((user, rest)) = display.split_once('@') else {
        return display.to_owned();
    };
    let rest = rest.replace(" (socket)", "");
    let Some((hosts, database)) = rest.rsplit_once('/') else {
        return display.to_owned();
    };
    let hosts: Option<Vec<String>> = hosts
        .split(',')
        .map(|endpoint| {
            let (host, port) = endpoint.rsplit_once(':')?;
            Some(format!("{}:{port}", encode(host)))
        })
        .collect();
    match hosts {
        Some(hosts) => format!(
            "postgresql://{}@{}/{}",
            encode(user),
            hosts.join(","),
            encode(database)
        ),
        None => display.to_owned(),
    }
}

pub fn describe_target(text: &str) -> String {
    let Ok(settings) = parse_conninfo(text) else {
        return "the database of a malformed connection string".to_owned();
    };
    let part = |key: &str| settings.get(key).map(String::as_str).unwrap_or("");
    let mut target = String::new();
    if !part("user").is_empty() {
        target.push_str(part("user"));
        target.push('@');
    }
    target.push_str(match part("host") {
        "" => "localhost",
        host => host,
    });
    if !part("port").is_empty() {
        target.push(':');
        target.push_str(part("port"));
    }
    target.push('/');
    target.push_str(part("dbname"));
    target
}

/// Splits a connection string into its settings, without applying defaults.
pub fn parse_conninfo(text: &str) -> Result<BTreeMap<String, String>, ConnInfoError> {
    let text = text.trim();
    let settings = if text.starts_with("postgres://") || text.starts_with("postgresql://") {
        parse_url(text)?
    } else {
        parse_key_values(text)?
    };
    for key in settings.keys() {
        if !SUPPORTED_KEYS.contains(&key.as_str()) {
            return Err(ConnInfoError::UnknownKey { key: key.clone() });
        }
    }
    Ok(settings)
}

fn malformed(reason: impl Into<String>) -> ConnInfoError {
    ConnInfoError::Malformed {
        reason: reason.into(),
    }
}

fn parse_url(text: &str) -> Result<BTreeMap<String, String>, ConnInfoError> {
    let mut settings = BTreeMap::new();
    let rest = text
        .split_once("://")
        .map(|(_, rest)| rest)
        .ok_or_else(|| malformed("missing ://"))?;
    let (rest, query) = match rest.split_once('?') {
        Some((rest, query)) => (rest, Some(query)),
        None => (rest, None),
    };
    let (authority, path) = match rest.split_once('/') {
        Some((authority, path)) => (authority, Some(path)),
        None => (rest, None),
    };
    let (userinfo, hostlist) = match authority.rsplit_once('@') {
        Some((userinfo, hostlist)) => (Some(userinfo), hostlist),
        None => (None, authority),
    };
    if let Some(userinfo) = userinfo {
        let (user, password) = match userinfo.split_once(':') {
            Some((user, password)) => (user, Some(password)),
            None => (userinfo, None),
        };
        if !user.is_empty() {
            settings.insert("user".into(), percent_decode(user, Shown::Yes)?);
        }
        if let Some(password) = password {
            settings.insert("password".into(), percent_decode(password, Shown::No)?);
        }
    }
    if !hostlist.is_empty() {
        let mut hosts = Vec::new();
        let mut ports = Vec::new();
        for spec in hostlist.split(',') {
            let (host, port) = split_host_port(spec)?;
            hosts.push(percent_decode(host, Shown::Yes)?);
            ports.push(port.to_owned());
        }
        if hosts.iter().any(|host| !host.is_empty()) {
            settings.insert("host".into(), hosts.join(","));
        }
        if ports.iter().any(|port| !port.is_empty()) {
            settings.insert("port".into(), ports.join(","));
        }
    }
    if let Some(path) = path.filter(|path| !path.is_empty()) {
        settings.insert("dbname".into(), percent_decode(path, Shown::Yes)?);
    }
    for pair in query.into_iter().flat_map(|query| query.split('&')) {
        if pair.is_empty() {
            continue;
        }
        // Not shown: an unescaped '&' in a password splits it into such a parameter.
        let (key, value) = pair.split_once('=').ok_or_else(|| {
            malformed(
                "a parameter of the URL query has no '=' (not shown: it may be part of a password; write & in a value as %26)",
            )
        })?;
        let key = percent_decode(key, Shown::Yes)?;
        let value = match key.as_str() {
            "password" => percent_decode(value, Shown::No)?,
            _ => percent_decode(value, Shown::Yes)?,
        };
        settings.insert(key, value);
    }
    Ok(settings)
}

fn split_host_port(spec: &str) -> Result<(&str, &str), ConnInfoError> {
    if let Some(rest) = spec.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or_else(|| malformed("unclosed [ in an IPv6 host"))?;
        return Ok((host, after.strip_prefix(':').unwrap_or(after)));
    }
    Ok(spec.split_once(':').unwrap_or((spec, "")))
}

/// Whether a part of a connection string may appear in an error message.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Shown {
    Yes,
    /// A password: errors name the part, never its text.
    No,
}

fn percent_decode(text: &str, shown: Shown) -> Result<String, ConnInfoError> {
    let what = match shown {
        Shown::Yes => format!("'{text}'"),
        Shown::No => "the password".to_owned(),
    };
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'%' {
            let hex = text
                .get(index + 1..index + 3)
                .and_then(|hex| u8::from_str_radix(hex, 16).ok())
                .ok_or_else(|| {
                    malformed(format!("bad percent-escape in {what}: write % as %25"))
                })?;
            decoded.push(hex);
            index += 3;
        } else {
            decoded.push(bytes[index]);
            index += 1;
        }
    }
    String::from_utf8(decoded).map_err(|_| malformed(format!("{what} is not UTF-8 once decoded")))
}

fn parse_key_values(text: &str) -> Result<BTreeMap<String, String>, ConnInfoError> {
    let mut settings = BTreeMap::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.peek().is_none() {
            return Ok(settings);
        }
        let mut key = String::new();
        while let Some(c) = chars.next_if(|c| *c != '=' && !c.is_whitespace()) {
            key.push(c);
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.next() != Some('=') {
            let shown = match SUPPORTED_KEYS.contains(&key.as_str()) {
                true => format!("'{key}'"),
                false => {
                    "a word that is not an option name (not shown: it may be a password)".to_owned()
                }
            };
            return Err(malformed(format!("{shown} is not followed by '='")));
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        if chars.next_if_eq(&'\'').is_some() {
            loop {
                match chars.next() {
                    Some('\\') => value.extend(chars.next()),
                    Some('\'') => break,
                    Some(c) => value.push(c),
                    None => {
                        return Err(malformed(format!(
                            "unterminated quote in the value of {key}"
                        )));
                    }
                }
            }
        } else {
            while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                match c {
                    '\\' => value.extend(chars.next()),
                    c => value.push(c),
                }
            }
        }
        settings.insert(key, value);
    }
}

/// One line of a password file: `hostname:port:database:username:password`, `*` matching anything.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PgpassEntry {
    fields: [String; 4],
    password: Password,
}

impl PgpassEntry {
    fn matches(&self, host: &str, port: u16, dbname: &str, user: &str) -> bool {
        let port = port.to_string();
        self.fields
            .iter()
            .zip([host, port.as_str(), dbname, user])
            .all(|(pattern, value)| pattern == "*" || pattern == value)
    }
}

fn parse_pgpass(text: &str) -> Vec<PgpassEntry> {
    text.lines()
        .filter(|line| !line.trim_start().starts_with('#') && !line.trim().is_empty())
        .filter_map(|line| {
            let mut fields = Vec::with_capacity(5);
            let mut field = String::new();
            let mut chars = line.chars();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => field.extend(chars.next()),
                    ':' if fields.len() < 4 => fields.push(std::mem::take(&mut field)),
                    c => field.push(c),
                }
            }
            fields.push(field);
            let password = fields.pop()?;
            let fields: [String; 4] = fields.try_into().ok()?;
            Some(PgpassEntry {
                fields,
                password: Password::new(password),
            })
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // In tests a failed unwrap is a failed test.
mod tests {
    use super::*;

    #[test]
    fn passwords_are_never_shown() {
        let spec = ConnectionSpec::resolve("postgres://ann:s3cret@db.example.com/shop", &env(&[]))
            .unwrap();
        let shown = format!(
            "{spec} {spec:?} {:?} {:?}",
            spec.endpoints, spec.endpoints[0].password
        );
        assert!(!shown.contains("s3cret"), "{shown}");
        assert_eq!(
            spec.endpoints[0].password.as_ref().map(Password::expose),
            Some("s3cret")
        );
        let error =
            ConnectionSpec::resolve("postgres://ann:s3%zzcret@db.example.com/shop", &env(&[]))
                .unwrap_err();
        assert!(!error.to_string().contains("s3"), "{error}");
        assert!(error.to_string().contains("the password"), "{error}");
        let pgpass = Password::new("a:b\\c");
        assert_eq!(pgpass.pgpass_field(), "a\\:b\\\\c");
        assert_ne!(Password::random(), Password::random());
    }

    #[test]
    fn targets_are_described_without_passwords() {
        assert_eq!(
            describe_target("postgres://ann:s3cret@db.example.com:6543/shop?sslmode=require"),
            "ann@db.example.com:6543/shop"
        );
        assert_eq!(
            describe_target("host=/tmp port=5433 user=bob password=s3cret dbname=shop"),
            "bob@/tmp:5433/shop"
        );
        assert!(!describe_target("postgres://ann:s3cret@/shop").contains("s3cret"));
        assert_eq!(
            describe_target("not a url"),
            "the database of a malformed connection string"
        );
    }
    use std::collections::HashMap;

    #[derive(Default)]
    struct FakeEnv {
        vars: HashMap<String, String>,
        pgpass: Option<String>,
        files: Vec<PathBuf>,
    }

    impl Environment for FakeEnv {
        fn var(&self, name: &str) -> Option<String> {
            self.vars.get(name).cloned()
        }
        fn home(&self) -> Option<PathBuf> {
            Some(PathBuf::from("/home/ann"))
        }
        fn read_password_file(&self, path: &Path) -> Option<String> {
            (path == Path::new("/home/ann/.pgpass"))
                .then(|| self.pgpass.clone())
                .flatten()
        }
        fn file_exists(&self, path: &Path) -> bool {
            self.files.iter().any(|file| file == path)
        }
    }

    fn env(vars: &[(&str, &str)]) -> FakeEnv {
        FakeEnv {
            vars: vars
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn url_with_everything() {
        let spec = ConnectionSpec::resolve(
            "postgresql://ann:s%40cret@db.example.com:6543/shop?sslmode=require&application_name=x",
            &env(&[]),
        )
        .unwrap();
        assert_eq!(
            spec.endpoints,
            vec![Endpoint {
                host: Host::Tcp("db.example.com".into()),
                port: 6543,
                password: Some(Password::new("s@cret"))
            }]
        );
        assert_eq!(spec.user, "ann");
        assert_eq!(spec.dbname, "shop");
        assert_eq!(spec.tls.mode, SslMode::Require);
        assert_eq!(spec.application_name, "x");
        assert_eq!(spec.to_string(), "ann@db.example.com:6543/shop");
        assert!(!format!("{spec:?}").contains("s@cret"));
    }

    #[test]
    fn url_hosts_ipv6_and_sockets() {
        let spec = ConnectionSpec::resolve(
            "postgres://u@[::1]:5433,%2Fvar%2Frun%2Fpostgresql/db",
            &env(&[]),
        )
        .unwrap();
        assert_eq!(spec.endpoints[0].host, Host::Tcp("::1".into()));
        assert_eq!(spec.endpoints[0].port, 5433);
        assert_eq!(
            spec.endpoints[1].host,
            Host::Unix("/var/run/postgresql".into())
        );
        assert_eq!(spec.endpoints[1].port, 5432);
        assert_eq!(spec.endpoints[0].to_string(), "[::1]:5433");
    }

    #[test]
    fn key_value_strings_with_quotes() {
        let spec = ConnectionSpec::resolve(
            r"host=/tmp port = 5444 user=bob password='it''s \'q\' x' dbname=a\ b sslmode=disable",
            &env(&[]),
        );
        // libpq does not treat '' as an escaped quote inside quotes: the value ends there.
        assert!(spec.is_err());
        let spec = ConnectionSpec::resolve(
            r"host=/tmp port = 5444 user=bob password='it\'s q x' dbname=a\ b sslmode=disable",
            &env(&[]),
        )
        .unwrap();
        assert_eq!(spec.endpoints[0].host, Host::Unix("/tmp".into()));
        assert_eq!(spec.endpoints[0].port, 5444);
        assert_eq!(
            spec.endpoints[0].password.as_ref().map(Password::expose),
            Some("it's q x")
        );
        assert_eq!(spec.dbname, "a b");
        assert_eq!(spec.tls.mode, SslMode::Disable);
    }

    #[test]
    fn environment_fills_the_gaps_and_the_string_wins() {
        let vars = [
            ("PGHOST", "envhost"),
            ("PGPORT", "7000"),
            ("PGUSER", "envuser"),
            ("PGDATABASE", "envdb"),
            ("PGPASSWORD", "envpw"),
            ("PGSSLMODE", "disable"),
        ];
        let spec = ConnectionSpec::resolve("", &env(&vars)).unwrap();
        assert_eq!(spec.to_string(), "envuser@envhost:7000/envdb");
        assert_eq!(
            spec.endpoints[0].password.as_ref().map(Password::expose),
            Some("envpw")
        );
        let spec = ConnectionSpec::resolve("postgres://other@/mine", &env(&vars)).unwrap();
        assert_eq!(spec.to_string(), "other@envhost:7000/mine");
    }

    #[test]
    fn defaults_follow_libpq() {
        let spec = ConnectionSpec::resolve("", &env(&[("USER", "ann")])).unwrap();
        assert_eq!(spec.user, "ann");
        assert_eq!(spec.dbname, "ann");
        assert_eq!(spec.endpoints[0].host, Host::Tcp("localhost".into()));
        assert_eq!(spec.tls.mode, SslMode::Prefer);
        assert_eq!(spec.application_name, "rowtrail");
    }

    #[test]
    fn password_file_matches_host_port_db_user_with_wildcards() {
        let mut fake = env(&[]);
        fake.pgpass = Some(
            "# comment\n\
             other:5432:*:ann:wrong\n\
             db.example.com:5432:shop:ann:p\\:w\\\\d\n\
             localhost:*:*:*:socketpw\n"
                .into(),
        );
        let spec = ConnectionSpec::resolve("postgres://ann@db.example.com/shop", &fake).unwrap();
        assert_eq!(
            spec.endpoints[0].password.as_ref().map(Password::expose),
            Some("p:w\\d")
        );
        let spec = ConnectionSpec::resolve("host=/run/pg user=x dbname=y", &fake).unwrap();
        assert_eq!(
            spec.endpoints[0].password.as_ref().map(Password::expose),
            Some("socketpw")
        );
        let spec = ConnectionSpec::resolve("host=elsewhere user=x", &fake).unwrap();
        assert_eq!(spec.endpoints[0].password, None);
    }

    #[test]
    fn tls_settings_and_their_errors() {
        assert!(matches!(
            ConnectionSpec::resolve("host=h user=u sslmode=verify-full", &env(&[])),
            Err(ConnInfoError::NoRootCert { .. })
        ));
        let spec = ConnectionSpec::resolve(
            "host=h user=u sslmode=verify-ca sslrootcert=/etc/ca.pem",
            &env(&[]),
        )
        .unwrap();
        assert_eq!(
            spec.tls.root_certs,
            Some(RootCerts::File("/etc/ca.pem".into()))
        );
        let mut fake = env(&[]);
        fake.files = vec![PathBuf::from("/home/ann/.postgresql/root.crt")];
        let spec = ConnectionSpec::resolve("host=h user=u sslmode=verify-full", &fake).unwrap();
        assert!(spec.tls.root_certs.is_some());
        let spec = ConnectionSpec::resolve(
            "host=h user=u sslmode=verify-full sslrootcert=system",
            &env(&[]),
        )
        .unwrap();
        assert_eq!(spec.tls.root_certs, Some(RootCerts::System));
    }

    #[test]
    fn bad_strings_give_clear_errors() {
        let cases = [
            ("host=h user=u sslmode=allow", "sslmode"),
            ("host=h user=u bogus=1", "not supported"),
            ("host=h user=u port=abc", "port number"),
            ("host=h user u", "not followed by '='"),
            ("host='unterminated", "unterminated"),
            ("postgres://u@h/db?sslmode", "no '='"),
            ("postgres://u@h/d%zz", "percent-escape"),
            ("host=a,b,c port=1,2 user=u", "ports"),
        ];
        for (text, expected) in cases {
            let error = ConnectionSpec::resolve(text, &env(&[]))
                .unwrap_err()
                .to_string();
            assert!(error.contains(expected), "{text}: {error}");
        }
    }

    #[test]
    fn a_source_as_a_cache_names_it_becomes_a_url() {
        assert_eq!(
            url_for_display("ann@db.example:5432/shop"),
            "postgresql://ann@db.example:5432/shop"
        );
        let socket = url_for_display("postgres@/tmp/pg dir:5499 (socket)/my db");
        assert_eq!(
            socket,
            "postgresql://postgres@%2Ftmp%2Fpg%20dir:5499/my%20db"
        );
        let settings = parse_conninfo(&socket).unwrap();
        assert_eq!(
            settings.get("host").map(String::as_str),
            Some("/tmp/pg dir")
        );
        assert_eq!(settings.get("dbname").map(String::as_str), Some("my db"));
        assert_eq!(
            url_for_display("a@h1:5432,h2:5433/db"),
            "postgresql://a@h1:5432,h2:5433/db"
        );
    }
}
