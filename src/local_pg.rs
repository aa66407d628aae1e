//! A private PostgreSQL server in a temporary directory, for the tests, the demo and the
//! benchmarks: found on this machine, started with `wal_level = logical` on a free port with its
//! socket in its own directory, and removed again when dropped.
//!
//! `initdb` refuses to run as root, so when this process is root the server runs as the `postgres`
//! OS user (through `Command::uid`, no `unsafe`). A watchdog shell process holds a pipe from this
//! process; if this process dies without dropping the server (a test binary ending, a SIGKILL), the
//! pipe closes and the watchdog stops the server and removes its directory.

use crate::capture::conninfo::Password;
use std::io::Write as _;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

/// The private server could not be set up or used.
#[derive(Debug, thiserror::Error)]
pub enum LocalPgError {
    #[error(
        "no PostgreSQL server binaries found (looked for initdb on PATH, in pg_config --bindir and in /usr/lib/postgresql/*/bin): install them, e.g. apt-get install postgresql"
    )]
    NoBinaries,
    #[error(
        "running as root, but there is no 'postgres' OS user to run the server as (initdb refuses root): create one, e.g. useradd --system postgres"
    )]
    NoPostgresUser,
    #[error("{action} failed: {cause}")]
    Io {
        action: String,
        cause: std::io::Error,
    },
    #[error("{command} failed ({status}): {output}")]
    Command {
        command: String,
        status: String,
        output: String,
    },
    #[error(
        "the PostgreSQL server did not become ready within {seconds} s; its log ends with: {log}"
    )]
    NotReady { seconds: u64, log: String },
}

fn io_error(action: impl Into<String>) -> impl FnOnce(std::io::Error) -> LocalPgError {
    let action = action.into();
    move |cause| LocalPgError::Io { action, cause }
}

/// How to set up the server.
#[derive(Debug, Clone)]
pub struct LocalPgOptions {
    /// `wal_level`; capture needs `logical`.
    pub wal_level: String,
    /// Password of the `postgres` superuser, for every connection (TCP and the socket); a random
    /// one by default. It is kept only in the server's 0600 `pgpass` file in its directory.
    pub password: Password,
    /// A PEM certificate and key to turn on TLS.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// More `name=value` settings.
    pub settings: Vec<(String, String)>,
    /// Keep the data here after stopping instead of deleting it.
    pub keep_dir: Option<PathBuf>,
}

impl Default for LocalPgOptions {
    fn default() -> Self {
        Self {
            wal_level: "logical".into(),
            password: Password::random(),
            tls: None,
            settings: Vec::new(),
            keep_dir: None,
        }
    }
}

/// A running private server. Dropping it stops the server and deletes its files.
pub struct LocalPostgres {
    bin_dir: PathBuf,
    root: PathBuf,
    port: u16,
    password: Password,
    server: Option<Child>,
    keep: bool,
    run_as: Option<(u32, u32)>,
    _watchdog: Option<ChildStdin>,
}

impl LocalPostgres {
    /// Where the server binaries are: the directory of `initdb` on PATH, else `pg_config --bindir`,
    /// else the newest `/usr/lib/postgresql/*/bin`.
    pub fn find_bin_dir() -> Result<PathBuf, LocalPgError> {
        let has_server =
            |dir: &Path| dir.join("initdb").is_file() && dir.join("postgres").is_file();
        // A PATH entry may hold symlinks to the real directory, which also has psql and pg_ctl.
        let resolved = |dir: &Path| {
            std::fs::canonicalize(dir.join("initdb"))
                .ok()
                .and_then(|initdb| initdb.parent().map(Path::to_path_buf))
                .filter(|dir| has_server(dir))
        };
        if let Some(path) = std::env::var_os("PATH")
            && let Some(dir) = std::env::split_paths(&path).find_map(|dir| resolved(&dir))
        {
            return Ok(dir);
        }
        if let Ok(output) = Command::new("pg_config").arg("--bindir").output() {
            let dir = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
            if output.status.success() && has_server(&dir) {
                return Ok(dir);
            }
        }
        let mut candidates: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|entry| {
                let version = entry.file_name().to_string_lossy().parse::<u32>().ok()?;
                let dir = entry.path().join("bin");
                has_server(&dir).then_some((version, dir))
            })
            .collect();
        candidates.sort();
        candidates
            .pop()
            .map(|(_, dir)| dir)
            .ok_or(LocalPgError::NoBinaries)
    }

    /// Creates a cluster in a new temporary directory and starts it.
    pub fn start(options: &LocalPgOptions) -> Result<Self, LocalPgError> {
        let bin_dir = Self::find_bin_dir()?;
        let run_as = match is_root() {
            true => Some(postgres_user()?),
            false => None,
        };
        // Only the owner (and the server's user) may enter: it holds the data and the socket.
        let root = match &options.keep_dir {
            Some(dir) => {
                create_private_dir(dir)?;
                // initdb and the server run elsewhere (as another user when we are root): a
                // relative path would name another place for them.
                std::path::absolute(dir)
                    .map_err(io_error(format!("resolving {}", dir.display())))?
            }
            None => make_temp_dir()?,
        };
        let data = root.join("data");
        let socket_dir = root.join("socket");
        create_private_dir(&socket_dir)?;
        let pgpass = root.join(PGPASS_FILE);
        // A kept server started again keeps the password it was made with.
        let password = match (data.join("PG_VERSION").exists(), read_pgpass(&pgpass)) {
            (true, Some(password)) => password,
            _ => options.password.clone(),
        };
        write_private(
            &pgpass,
            &format!("*:*:*:postgres:{}\n", password.pgpass_field()),
        )?;
        if let Some((uid, gid)) = run_as {
            for path in [&root, &socket_dir] {
                std::os::unix::fs::chown(path, Some(uid), Some(gid))
                    .map_err(io_error(format!("handing {} to postgres", path.display())))?;
            }
        }
        let mut server = Self {
            bin_dir,
            root,
            port: 0,
            password,
            server: None,
            keep: options.keep_dir.is_some(),
            run_as,
            _watchdog: None,
        };
        if !data.join("PG_VERSION").exists() {
            // initdb reads the password from a file: one only the server's user can read, gone
            // as soon as initdb is.
            let pwfile = server.root.join("pwfile");
            write_private(&pwfile, &format!("{}\n", server.password.expose()))?;
            if let Some((uid, gid)) = run_as {
                std::os::unix::fs::chown(&pwfile, Some(uid), Some(gid))
                    .map_err(io_error("handing the password file to postgres"))?;
            }
            let initdb = server.run(
                "initdb",
                &[
                    "-D",
                    &data.to_string_lossy(),
                    "-U",
                    "postgres",
                    "--auth-local=scram-sha-256",
                    "--auth-host=scram-sha-256",
                    "--pwfile",
                    &pwfile.to_string_lossy(),
                    "--encoding=UTF8",
                    "--locale=C",
                    "--no-sync",
                ],
            );
            let removed = std::fs::remove_file(&pwfile);
            initdb?;
            removed.map_err(io_error("removing the password file"))?;
        }
        server.port = free_port()?;
        let mut settings: Vec<(String, String)> = vec![
            ("port".into(), server.port.to_string()),
            ("listen_addresses".into(), "127.0.0.1".into()),
            (
                "unix_socket_directories".into(),
                socket_dir.to_string_lossy().into_owned(),
            ),
            ("wal_level".into(), options.wal_level.clone()),
            ("max_replication_slots".into(), "32".into()),
            ("max_wal_senders".into(), "32".into()),
            ("max_connections".into(), "100".into()),
            ("fsync".into(), "off".into()),
            ("full_page_writes".into(), "off".into()),
            ("log_min_messages".into(), "warning".into()),
            ("TimeZone".into(), "UTC".into()),
        ];
        if let Some((cert, key)) = &options.tls {
            for (name, source) in [("server.crt", cert), ("server.key", key)] {
                let target = data.join(name);
                std::fs::copy(source, &target).map_err(io_error(format!("copying {name}")))?;
                std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o600))
                    .map_err(io_error(format!("protecting {name}")))?;
                if let Some((uid, gid)) = run_as {
                    std::os::unix::fs::chown(&target, Some(uid), Some(gid))
                        .map_err(io_error(format!("handing {name} to postgres")))?;
                }
            }
            settings.push(("ssl".into(), "on".into()));
        }
        settings.extend(options.settings.iter().cloned());
        let log = std::fs::File::create(server.root.join("server.log"))
            .map_err(io_error("creating the server log"))?;
        let log_err = log
            .try_clone()
            .map_err(io_error("opening the server log"))?;
        let mut command = Command::new(server.bin_dir.join("postgres"));
        command.arg("-D").arg(&data);
        for (name, value) in &settings {
            command.arg("-c").arg(format!("{name}={value}"));
        }
        command
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log_err));
        if let Some((uid, gid)) = run_as {
            std::os::unix::process::CommandExt::uid(&mut command, uid);
            std::os::unix::process::CommandExt::gid(&mut command, gid);
        }
        let child = command.spawn().map_err(io_error("starting postgres"))?;
        server._watchdog = Some(spawn_watchdog(child.id(), &server.root, server.keep)?);
        server.server = Some(child);
        server.wait_until_ready(Duration::from_secs(60))?;
        Ok(server)
    }

    fn wait_until_ready(&mut self, limit: Duration) -> Result<(), LocalPgError> {
        let started = Instant::now();
        loop {
            if self.psql("postgres", "SELECT 1").is_ok() {
                return Ok(());
            }
            let exited = self
                .server
                .as_mut()
                .and_then(|child| child.try_wait().ok().flatten())
                .is_some();
            if exited || started.elapsed() > limit {
                return Err(LocalPgError::NotReady {
                    seconds: limit.as_secs(),
                    log: self.log_tail(),
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The last lines of the server log, for error messages.
    pub fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.root.join("server.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(5)..].join(" | ")
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn password(&self) -> &Password {
        &self.password
    }

    /// The `pgpass` file (0600) that holds the superuser's password, for `PGPASSFILE`.
    pub fn pgpass(&self) -> PathBuf {
        self.root.join(PGPASS_FILE)
    }

    /// The `psql` command that reaches `dbname`, its password coming from the pgpass file.
    pub fn psql_command(&self, dbname: &str) -> String {
        format!(
            "PGPASSFILE={} psql -h 127.0.0.1 -p {} -U postgres {dbname}",
            self.pgpass().display(),
            self.port
        )
    }

    /// The directory holding the server's Unix socket.
    pub fn socket_dir(&self) -> PathBuf {
        self.root.join("socket")
    }

    /// The directory holding everything of this server.
    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn bin_dir(&self) -> &Path {
        &self.bin_dir
    }

    /// A TCP URL for the superuser, with the password.
    pub fn url(&self, dbname: &str) -> String {
        format!(
            "postgres://postgres:{}@127.0.0.1:{}/{dbname}?sslmode=disable",
            self.password.expose(),
            self.port
        )
    }

    /// A key=value string over the Unix socket, with the password.
    pub fn socket_conninfo(&self, dbname: &str) -> String {
        format!(
            "host={} port={} user=postgres dbname={dbname} password={}",
            self.socket_dir().display(),
            self.port,
            self.password.expose()
        )
    }

    /// Runs SQL through psql as the superuser and returns its unaligned, tuples-only output.
    pub fn psql(&self, dbname: &str, sql: &str) -> Result<String, LocalPgError> {
        let output = Command::new(self.bin_dir.join("psql"))
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"])
            .arg("-h")
            .arg(self.socket_dir())
            .arg("-p")
            .arg(self.port.to_string())
            .args(["-U", "postgres", "-d", dbname])
            .env("PGTZ", "UTC")
            .env("PGPASSFILE", self.pgpass())
            .env("PGOPTIONS", "-c extra_float_digits=3")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .and_then(|mut child| {
                if let Some(mut stdin) = child.stdin.take() {
                    stdin.write_all(sql.as_bytes())?;
                }
                child.wait_with_output()
            })
            .map_err(io_error("running psql"))?;
        if !output.status.success() {
            return Err(LocalPgError::Command {
                command: "psql".into(),
                status: output.status.to_string(),
                output: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
            });
        }
        Ok(String::from_utf8_lossy(&output.stdout)
            .trim_end()
            .to_owned())
    }

    /// Creates a fresh database.
    pub fn create_database(&self, name: &str) -> Result<(), LocalPgError> {
        self.psql(
            "postgres",
            &format!("CREATE DATABASE {}", crate::model::quote_ident(name)),
        )
        .map(|_| ())
    }

    /// Creates a fresh database that stores text in `encoding` (`LATIN1`, `SQL_ASCII`, ...).
    pub fn create_database_with_encoding(
        &self,
        name: &str,
        encoding: &str,
    ) -> Result<(), LocalPgError> {
        self.psql(
            "postgres",
            &format!(
                "CREATE DATABASE {} TEMPLATE template0 ENCODING {} LC_COLLATE 'C' LC_CTYPE 'C'",
                crate::model::quote_ident(name),
                crate::history::sql::quote_literal(encoding)
            ),
        )
        .map(|_| ())
    }

    fn run(&self, program: &str, args: &[&str]) -> Result<(), LocalPgError> {
        let mut command = Command::new(self.bin_dir.join(program));
        command.args(args).current_dir(&self.root);
        if let Some((uid, gid)) = self.run_as {
            std::os::unix::process::CommandExt::uid(&mut command, uid);
            std::os::unix::process::CommandExt::gid(&mut command, gid);
        }
        let output = command
            .output()
            .map_err(io_error(format!("running {program}")))?;
        if !output.status.success() {
            return Err(LocalPgError::Command {
                command: program.into(),
                status: output.status.to_string(),
                output: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
            });
        }
        Ok(())
    }

    /// Stops the server (fast shutdown), waiting for it to exit.
    pub fn stop(&mut self) {
        let data = self.root.join("data");
        let _ = self.run(
            "pg_ctl",
            &["stop", "-D", &data.to_string_lossy(), "-m", "fast", "-w"],
        );
        if let Some(mut child) = self.server.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for LocalPostgres {
    fn drop(&mut self) {
        self.stop();
        if !self.keep {
            let _ = std::fs::remove_dir_all(&self.root);
        }
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|output| String::from_utf8_lossy(&output.stdout).trim() == "0")
        .unwrap_or(false)
}

fn postgres_user() -> Result<(u32, u32), LocalPgError> {
    let passwd = std::fs::read_to_string("/etc/passwd").map_err(io_error("reading /etc/passwd"))?;
    passwd
        .lines()
        .map(|line| line.split(':').collect::<Vec<_>>())
        .find(|fields| fields.first() == Some(&"postgres"))
        .and_then(|fields| Some((fields.get(2)?.parse().ok()?, fields.get(3)?.parse().ok()?)))
        .ok_or(LocalPgError::NoPostgresUser)
}

fn make_temp_dir() -> Result<PathBuf, LocalPgError> {
    let base = std::env::temp_dir();
    for attempt in 0..100u32 {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|time| time.subsec_nanos())
            .unwrap_or(0);
        let dir = base.join(format!(
            "rowtrail-pg-{}-{nanos:x}-{attempt}",
            std::process::id()
        ));
        let created = {
            use std::os::unix::fs::DirBuilderExt;
            std::fs::DirBuilder::new().mode(0o700).create(&dir)
        };
        match created {
            Ok(()) => return Ok(dir),
            Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(error) => return Err(io_error("creating a temporary directory")(error)),
        }
    }
    Err(LocalPgError::Io {
        action: "creating a temporary directory".into(),
        cause: std::io::ErrorKind::AlreadyExists.into(),
    })
}

/// The name of the password file in the server's directory.
const PGPASS_FILE: &str = "pgpass";

fn create_private_dir(path: &Path) -> Result<(), LocalPgError> {
    crate::store::close_own_dir(path).map_err(io_error(format!("creating {}", path.display())))
}

/// Writes a file only its owner can read.
fn write_private(path: &Path, text: &str) -> Result<(), LocalPgError> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(io_error(format!("writing {}", path.display())))?;
    file.write_all(text.as_bytes())
        .map_err(io_error(format!("writing {}", path.display())))
}

/// The password of a pgpass file this module wrote.
fn read_pgpass(path: &Path) -> Option<Password> {
    let text = std::fs::read_to_string(path).ok()?;
    let line = text.lines().next()?;
    let field = line.strip_prefix("*:*:*:postgres:")?;
    Some(Password::new(
        field.replace("\\:", ":").replace("\\\\", "\\"),
    ))
}

fn free_port() -> Result<u16, LocalPgError> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .map_err(io_error("finding a free port"))
}

/// Starts `sh` waiting on a pipe from this process; when the pipe closes it stops the server and,
/// unless the data is kept, removes the directory.
fn spawn_watchdog(pid: u32, root: &Path, keep: bool) -> Result<ChildStdin, LocalPgError> {
    let cleanup = match keep {
        true => String::new(),
        false => format!("rm -rf '{}'", root.to_string_lossy().replace('\'', "'\\''")),
    };
    let script = format!(
        "while read -r _; do :; done; kill -INT {pid} 2>/dev/null; \
         i=0; while kill -0 {pid} 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done; \
         kill -KILL {pid} 2>/dev/null; {cleanup}"
    );
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(io_error("starting the server watchdog"))?;
    child.stdin.take().ok_or(LocalPgError::Io {
        action: "starting the server watchdog".into(),
        cause: std::io::ErrorKind::BrokenPipe.into(),
    })
}
