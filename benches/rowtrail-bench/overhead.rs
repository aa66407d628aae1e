//! Source overhead: pgbench's TPC-B-like load (2 clients) on a server with production durability,
//! run three times on a freshly initialised database: with no slot, with `rowtrail capture`
//! following, and with a row-level audit trigger writing jsonb old/new rows to an audit table.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rowtrail::model::Lsn;

use crate::server::{Server, rowtrail};

const DATABASE: &str = "bench_tpcb";
const SLOT: &str = "bench_overhead";
const TABLES: &str = "pgbench_accounts,pgbench_branches,pgbench_tellers,pgbench_history";

/// How the source runs during one pgbench run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    NoSlot,
    Rowtrail,
    Trigger,
}

pub struct OverheadFigures {
    pub seconds: u64,
    pub scale: u32,
    pub no_slot_tps: f64,
    pub rowtrail_tps: f64,
    pub trigger_tps: f64,
    /// Changes rowtrail stored during its run (beyond its baseline).
    pub captured: i64,
    /// Changes the server made during that run, as counted from pgbench's transactions.
    pub expected: i64,
    /// How long capture took to store the last change after pgbench stopped.
    pub catch_up_ms: f64,
    /// CPU time rowtrail used during the pgbench run, as a share of one core.
    pub rowtrail_cpu: f64,
}

pub fn measure(server: &Server, dir: &Path, seconds: u64, scale: u32) -> OverheadFigures {
    let no_slot_tps = run(server, dir, Mode::NoSlot, seconds, scale).tps;
    let with_rowtrail = run(server, dir, Mode::Rowtrail, seconds, scale);
    let trigger_tps = run(server, dir, Mode::Trigger, seconds, scale).tps;
    OverheadFigures {
        seconds,
        scale,
        no_slot_tps,
        rowtrail_tps: with_rowtrail.tps,
        trigger_tps,
        captured: with_rowtrail.captured,
        expected: with_rowtrail.transactions * 4,
        catch_up_ms: with_rowtrail.catch_up_ms,
        rowtrail_cpu: with_rowtrail.cpu,
    }
}

struct Run {
    tps: f64,
    transactions: i64,
    captured: i64,
    catch_up_ms: f64,
    cpu: f64,
}

fn run(server: &Server, dir: &Path, mode: Mode, seconds: u64, scale: u32) -> Run {
    server.create_database(DATABASE);
    let conninfo = server.conninfo(DATABASE);
    let init = server
        .program("pgbench")
        .args(["-i", "-q", "-s", &scale.to_string(), &conninfo])
        .output()
        .unwrap();
    assert!(
        init.status.success(),
        "pgbench -i failed: {}",
        String::from_utf8_lossy(&init.stderr)
    );
    // pgbench_history has no key; rowtrail refuses to publish it without a replica identity (its
    // updates would fail), so every run sets one, as the hint says. It only gets inserts, whose WAL
    // the identity does not change.
    server.sql(
        DATABASE,
        "ALTER TABLE pgbench_history REPLICA IDENTITY FULL",
    );
    let cache = dir.join("overhead.rowtrail");
    let mut capture = None;
    match mode {
        Mode::NoSlot => {}
        Mode::Rowtrail => {
            remove_cache(&cache);
            capture = Some(start_following(rowtrail(&[
                "capture",
                "--source",
                &conninfo,
                "--cache",
                &cache.display().to_string(),
                "--tables",
                TABLES,
                "--slot",
                SLOT,
            ])));
        }
        Mode::Trigger => {
            server.sql(DATABASE, AUDIT_TRIGGER);
        }
    }
    server.sql(DATABASE, "VACUUM ANALYZE");
    server.sql(DATABASE, "CHECKPOINT");
    let cpu_before = capture.as_ref().map_or(0.0, cpu_seconds);
    let bench_started = Instant::now();
    let bench = server
        .program("pgbench")
        .args([
            "-n",
            "-c",
            "2",
            "-j",
            "2",
            "-T",
            &seconds.to_string(),
            &conninfo,
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&bench.stdout);
    assert!(
        bench.status.success(),
        "pgbench failed: {stdout}{}",
        String::from_utf8_lossy(&bench.stderr)
    );
    let tps = number_after(&stdout, "tps = ");
    let transactions = number_after(&stdout, "number of transactions actually processed: ") as i64;
    let mut result = Run {
        tps,
        transactions,
        captured: 0,
        catch_up_ms: 0.0,
        cpu: 0.0,
    };
    if let Some(capture) = capture {
        result.cpu = (cpu_seconds(&capture) - cpu_before) / bench_started.elapsed().as_secs_f64();
        let stopped = Instant::now();
        let target: Lsn = server
            .value(DATABASE, "SELECT pg_current_wal_lsn()")
            .parse()
            .unwrap();
        // Caught up once the cache has stored everything pgbench wrote.
        let reader = rusqlite::Connection::open(&cache).unwrap();
        while stored_position(&reader) < target {
            std::thread::sleep(Duration::from_millis(5));
        }
        result.catch_up_ms = stopped.elapsed().as_secs_f64() * 1000.0;
        stop(capture);
        result.captured = streamed_changes(&reader);
        drop(reader);
        server.sql(
            DATABASE,
            &format!("SELECT pg_drop_replication_slot('{SLOT}'); DROP PUBLICATION rowtrail"),
        );
        remove_cache(&cache);
    }
    result
}

/// A row-level audit trigger in the style of the PostgreSQL wiki's and supa_audit: one audit row per
/// changed row, with the old and new rows as jsonb.
const AUDIT_TRIGGER: &str = "
CREATE TABLE audit_log (
    id bigserial PRIMARY KEY,
    table_name text NOT NULL,
    op text NOT NULL,
    old_row jsonb,
    new_row jsonb,
    changed_at timestamptz NOT NULL DEFAULT now(),
    changed_by text NOT NULL DEFAULT current_user
);
CREATE FUNCTION audit_row() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO audit_log (table_name, op, old_row, new_row)
    VALUES (TG_TABLE_NAME, TG_OP,
            CASE WHEN TG_OP IN ('UPDATE', 'DELETE') THEN to_jsonb(OLD) END,
            CASE WHEN TG_OP IN ('INSERT', 'UPDATE') THEN to_jsonb(NEW) END);
    RETURN NULL;
END $$;
CREATE TRIGGER audit AFTER INSERT OR UPDATE OR DELETE ON pgbench_accounts FOR EACH ROW EXECUTE FUNCTION audit_row();
CREATE TRIGGER audit AFTER INSERT OR UPDATE OR DELETE ON pgbench_tellers FOR EACH ROW EXECUTE FUNCTION audit_row();
CREATE TRIGGER audit AFTER INSERT OR UPDATE OR DELETE ON pgbench_branches FOR EACH ROW EXECUTE FUNCTION audit_row();
CREATE TRIGGER audit AFTER INSERT OR UPDATE OR DELETE ON pgbench_history FOR EACH ROW EXECUTE FUNCTION audit_row();
";

/// Starts a `rowtrail capture` command (without `--once`) and returns once its baseline is stored
/// and it streams.
pub fn start_following(mut command: Command) -> Child {
    let mut child = command
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (lines, received) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = lines.send(line);
        }
    });
    let mut said = Vec::new();
    loop {
        match received.recv_timeout(Duration::from_secs(600)) {
            Ok(line) if line.starts_with("streaming changes") => return child,
            Ok(line) => said.push(line),
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "rowtrail capture did not start streaming:\n{}",
                    said.join("\n")
                );
            }
        }
    }
}

/// Stops capture the way a user does (SIGINT) and waits for it.
pub fn stop(mut child: Child) {
    let _ = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    let status = child.wait().unwrap();
    assert!(status.success(), "rowtrail capture exited with {status}");
}

/// CPU seconds (user and system) a child process has used so far, from /proc.
fn cpu_seconds(child: &Child) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", child.id())).unwrap_or_default();
    // Fields after the command name (which is in parentheses): utime and stime are the 12th and
    // 13th, in clock ticks (100 per second on Linux).
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or(Vec::new(), |(_, rest)| rest.split_whitespace().collect());
    let ticks = |index: usize| {
        fields
            .get(index)
            .and_then(|field| field.parse::<f64>().ok())
    };
    (ticks(11).unwrap_or(0.0) + ticks(12).unwrap_or(0.0)) / 100.0
}

/// The source position the cache has durably stored.
fn stored_position(cache: &rusqlite::Connection) -> Lsn {
    let position: i64 = cache
        .query_row("SELECT position FROM capture_state", [], |row| row.get(0))
        .unwrap();
    Lsn(position as u64)
}

/// Changes the cache holds beyond its baseline.
fn streamed_changes(cache: &rusqlite::Connection) -> i64 {
    cache
        .query_row(
            "SELECT coalesce(sum(change_count), 0) FROM transactions WHERE is_baseline = 0",
            [],
            |row| row.get(0),
        )
        .unwrap()
}

fn remove_cache(cache: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", cache.display()));
    }
}

/// The number after `label` in pgbench's report.
fn number_after(report: &str, label: &str) -> f64 {
    report
        .lines()
        .find_map(|line| line.trim().strip_prefix(label))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|number| number.parse().ok())
        .unwrap_or_else(|| panic!("no '{label}' in pgbench's report:\n{report}"))
}
