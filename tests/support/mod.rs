//! Shared helpers: one private PostgreSQL server per test binary, a fresh database per test, and
//! running the real `rowtrail` binary against them.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)] // Each test binary uses a different subset; setup failures should panic loudly.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use rowtrail::local_pg::{LocalPgOptions, LocalPostgres};

pub fn server() -> &'static LocalPostgres {
    static SERVER: OnceLock<LocalPostgres> = OnceLock::new();
    SERVER
        .get_or_init(|| LocalPostgres::start(&LocalPgOptions::default()).expect("start PostgreSQL"))
}

/// A database of its own for one test, on the shared server.
pub struct TestDb {
    pub server: &'static LocalPostgres,
    pub name: String,
    pub dir: tempfile::TempDir,
}

pub fn fresh_db(label: &str) -> TestDb {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let server = server();
    let name = format!("{label}_{}", COUNTER.fetch_add(1, Ordering::SeqCst));
    server.create_database(&name).expect("create database");
    TestDb {
        server,
        name,
        dir: tempfile::tempdir().expect("temp dir"),
    }
}

/// A database of its own that stores text in `encoding`.
pub fn fresh_db_with_encoding(label: &str, encoding: &str) -> TestDb {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let server = server();
    let name = format!("{label}_{}", COUNTER.fetch_add(1, Ordering::SeqCst));
    server
        .create_database_with_encoding(&name, encoding)
        .expect("create database");
    TestDb {
        server,
        name,
        dir: tempfile::tempdir().expect("temp dir"),
    }
}

impl TestDb {
    /// Starts `rowtrail capture` on this test's cache and slot (follow mode unless `extra` says
    /// `--once`), its standard error going to `capture.log` in the test's directory.
    pub fn spawn_capture(&self, source: &str, extra: &[&str]) -> Child {
        let log = std::fs::File::create(self.dir.path().join("capture.log")).unwrap();
        rowtrail_command()
            .args(["capture", "--source", source, "--cache"])
            .arg(self.cache())
            .args(["--slot", &self.name])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap()
    }

    /// What the capture started by [`TestDb::spawn_capture`] printed.
    pub fn capture_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("capture.log")).unwrap_or_default()
    }

    /// True while a capture holds this test's slot.
    pub fn slot_active(&self) -> bool {
        self.sql(&format!(
            "SELECT active FROM pg_replication_slots WHERE slot_name = '{}'",
            self.name
        )) == "t"
    }

    /// Runs a rowtrail command on this test's cache and returns its standard output.
    pub fn on_cache(&self, command: &str, args: &[&str]) -> String {
        let mut all = vec![
            command.to_owned(),
            "--cache".to_owned(),
            self.cache().to_string_lossy().into_owned(),
        ];
        all.extend(args.iter().map(|arg| (*arg).to_owned()));
        let output = rowtrail(&all);
        assert!(
            output.status.success(),
            "{command} {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    }

    /// Runs SQL (several statements allowed) and returns psql's unaligned output.
    pub fn sql(&self, sql: &str) -> String {
        self.server
            .psql(&self.name, sql)
            .unwrap_or_else(|error| panic!("SQL failed: {error}\n{sql}"))
    }

    pub fn try_sql(&self, sql: &str) -> Result<String, String> {
        self.server
            .psql(&self.name, sql)
            .map_err(|error| error.to_string())
    }

    /// A TCP URL with the superuser's password.
    pub fn url(&self) -> String {
        self.server.url(&self.name)
    }

    pub fn cache(&self) -> PathBuf {
        self.dir.path().join("cache.db")
    }

    /// `rowtrail capture --once` into this test's cache.
    pub fn capture_once(&self, extra: &[&str]) -> Output {
        let mut args = vec![
            "capture".to_owned(),
            "--source".to_owned(),
            self.url(),
            "--cache".to_owned(),
            self.cache().to_str().unwrap().to_owned(),
            "--once".to_owned(),
            // Slots are per cluster: one per test database.
            "--slot".to_owned(),
            self.name.clone(),
        ];
        args.extend(extra.iter().map(|arg| (*arg).to_owned()));
        rowtrail(&args)
    }

    /// Captures once and fails the test with the output if it did not succeed.
    pub fn capture_ok(&self, extra: &[&str]) {
        let output = self.capture_once(extra);
        assert!(
            output.status.success(),
            "capture failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// `rowtrail log --json` on this test's cache, oldest first.
    pub fn log(&self, extra: &[&str]) -> Vec<serde_json::Value> {
        log_json(&self.cache(), extra)
    }
}

/// `rowtrail publish --cache CACHE --into INTO`: a cache into a shared store.
pub fn publish(cache: &Path, into: &str) -> Output {
    rowtrail(&[
        "publish".into(),
        "--cache".into(),
        cache.to_string_lossy().into_owned(),
        "--into".into(),
        into.to_owned(),
    ])
}

pub fn log_json(cache: &Path, extra: &[&str]) -> Vec<serde_json::Value> {
    let mut args = vec![
        "log".to_owned(),
        "--cache".to_owned(),
        cache.to_str().unwrap().to_owned(),
        "--json".to_owned(),
        "--limit".to_owned(),
        "0".to_owned(),
    ];
    args.extend(extra.iter().map(|arg| (*arg).to_owned()));
    let output = rowtrail(&args);
    assert!(
        output.status.success(),
        "log failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let mut lines: Vec<serde_json::Value> = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).expect("JSON line"))
        .collect();
    lines.reverse();
    lines
}

/// The rowtrail binary with a clean environment (no PG* variables from the outside).
pub fn rowtrail_command() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_rowtrail"));
    for (name, _) in std::env::vars() {
        if name.starts_with("PG") {
            command.env_remove(name);
        }
    }
    command.env("HOME", std::env::temp_dir().join("rowtrail-test-home"));
    command.env("TZ", "UTC");
    command
}

pub fn rowtrail(args: &[String]) -> Output {
    rowtrail_command()
        .args(args)
        .output()
        .expect("run rowtrail")
}

/// Polls `condition` until it holds or `limit` passes.
pub fn wait_until(limit: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let started = Instant::now();
    while started.elapsed() < limit {
        if condition() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    condition()
}

/// Waits for a child process to exit, up to `limit`.
pub fn wait_for_exit(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let mut status = None;
    wait_until(limit, || {
        status = child.try_wait().unwrap();
        status.is_some()
    });
    status
}

/// Extracts (op, table) pairs for compact assertions.
pub fn ops(changes: &[serde_json::Value]) -> Vec<(String, String)> {
    changes
        .iter()
        .map(|change| {
            (
                change["op"].as_str().unwrap().to_owned(),
                change["table"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// Asserts a failed command printed exactly one line, an error with a hint, and no panic.
pub fn assert_clean_failure(output: &Output, code: i32, expected: &str) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        output.status.code(),
        Some(code),
        "exit code; stderr: {stderr}"
    );
    assert!(!stderr.contains("panicked"), "panic: {stderr}");
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|line| line.starts_with("error:"))
        .collect();
    assert_eq!(errors.len(), 1, "one error line expected: {stderr}");
    assert!(
        errors[0].contains(expected),
        "expected '{expected}' in: {}",
        errors[0]
    );
}

/// A psql session kept open, to hold a transaction while others commit.
pub struct OpenSession {
    child: Child,
    marks: PathBuf,
    count: usize,
}

impl OpenSession {
    pub fn open(db: &TestDb) -> Self {
        let child = Command::new(db.server.bin_dir().join("psql"))
            .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", &db.url()])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let marks = db.dir.path().join(format!("session-{}", child.id()));
        Self {
            child,
            marks,
            count: 0,
        }
    }

    /// Runs SQL in the session and waits until psql has carried it out.
    pub fn run(&mut self, sql: &str) {
        use std::io::Write;
        self.count += 1;
        let mark = format!("{}-{}", self.marks.display(), self.count);
        let stdin = self.child.stdin.as_mut().unwrap();
        writeln!(stdin, "{sql}\n\\! touch {mark}").unwrap();
        stdin.flush().unwrap();
        assert!(
            wait_until(Duration::from_secs(60), || Path::new(&mark).exists()),
            "psql ran {sql}"
        );
    }

    /// Ends the session (psql exits at the end of its input).
    pub fn close(mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}
