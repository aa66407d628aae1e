//! Source overhead: pgbench's TPC-B-like load (2 clients) on a server with production durability,
//! in interleaved rounds on one database: each round runs pgbench once without capture, once
//! with `rowtrail capture` following, and once with a row-level audit trigger writing jsonb
//! old/new rows to an audit table, in an order that rotates from round to round. Each round's
//! TPS is compared with the same round's run without capture, so a noisy machine's drift cancels
//! out; the figures are the median ratios with a 95% bootstrap confidence interval.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rowtrail::model::Lsn;

use crate::server::{Server, rowtrail};
use crate::stats::percentile;

const DATABASE: &str = "bench_tpcb";
const SLOT: &str = "bench_overhead";
const TABLES: &str = "pgbench_accounts,pgbench_branches,pgbench_tellers,pgbench_history";
const AUDITED: [&str; 4] = [
    "pgbench_accounts",
    "pgbench_tellers",
    "pgbench_branches",
    "pgbench_history",
];

/// How the source runs during one pgbench run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    NoCapture,
    Rowtrail,
    Trigger,
}

/// A median with its 95% confidence interval.
#[derive(Debug, Clone, Copy, Default)]
pub struct Estimate {
    pub median: f64,
    pub low: f64,
    pub high: f64,
}

pub struct OverheadFigures {
    pub seconds: u64,
    pub rounds: usize,
    pub scale: u32,
    /// Median TPS of each mode over the rounds.
    pub no_capture_tps: f64,
    pub rowtrail_tps: f64,
    pub trigger_tps: f64,
    /// Per round: rowtrail's TPS / the same round's TPS without capture.
    pub rowtrail_ratio: Estimate,
    pub trigger_ratio: Estimate,
    /// rowtrail's TPS loss / the trigger's, from the median ratios.
    pub loss_ratio: Estimate,
    /// Changes rowtrail stored during its runs.
    pub captured: i64,
    /// Changes the server made during those runs, as counted from pgbench's transactions.
    pub expected: i64,
    /// Median time capture took to store the last change after pgbench stopped.
    pub catch_up_ms: f64,
    /// CPU time rowtrail used during its runs, as a share of one core.
    pub rowtrail_cpu: f64,
    /// rowtrail's CPU per change stored while following, in microseconds.
    pub cpu_us_per_change: f64,
    /// The same while catching up with what the other modes' runs wrote, and how many changes.
    pub catch_up_us_per_change: f64,
    pub catch_up_changes: i64,
}

pub fn measure(
    server: &Server,
    dir: &Path,
    seconds: u64,
    scale: u32,
    rounds: usize,
) -> OverheadFigures {
    prepare(server, scale);
    let cache = dir.join("overhead.rowtrail");
    remove_cache(&cache);
    // The slot and the baseline are made once; each rowtrail run resumes from the slot.
    let capture = start_following(capture_command(server, &cache));
    let reader = rusqlite::Connection::open(&cache).unwrap();
    wait_caught_up(server, &reader);
    stop(capture);

    let mut runs: Vec<[f64; 3]> = Vec::new();
    let (mut captured, mut transactions) = (0i64, 0i64);
    let (mut cpu, mut cpu_seconds_span) = (0.0, 0.0);
    let mut catch_ups = Vec::new();
    let (mut catch_up_cpu, mut catch_up_changes) = (0.0, 0i64);
    for round in 0..rounds {
        let mut tps = [0.0; 3];
        for turn in 0..3 {
            let mode = [Mode::NoCapture, Mode::Rowtrail, Mode::Trigger][(round + turn) % 3];
            match mode {
                Mode::NoCapture => tps[0] = pgbench(server, seconds).tps,
                Mode::Trigger => {
                    set_triggers(server, true);
                    tps[2] = pgbench(server, seconds).tps;
                    set_triggers(server, false);
                }
                Mode::Rowtrail => {
                    let capture = start_following(capture_command(server, &cache));
                    // What the other modes wrote since is read first, outside the measured run:
                    // the same work done catching up, for the CPU per change.
                    let (caught_before, cpu_start) =
                        (streamed_changes(&reader), cpu_seconds(&capture));
                    wait_caught_up(server, &reader);
                    let stored_before = streamed_changes(&reader);
                    catch_up_cpu += cpu_seconds(&capture) - cpu_start;
                    catch_up_changes += stored_before - caught_before;
                    let cpu_before = cpu_seconds(&capture);
                    let started = Instant::now();
                    let bench = pgbench(server, seconds);
                    cpu += cpu_seconds(&capture) - cpu_before;
                    cpu_seconds_span += started.elapsed().as_secs_f64();
                    let stopped = Instant::now();
                    wait_caught_up(server, &reader);
                    catch_ups.push(stopped.elapsed().as_secs_f64() * 1000.0);
                    stop(capture);
                    captured += streamed_changes(&reader) - stored_before;
                    transactions += bench.transactions;
                    tps[1] = bench.tps;
                }
            }
        }
        eprintln!(
            "  round {}: TPS without capture {:.0}, with rowtrail {:.0}, with the trigger {:.0}",
            round + 1,
            tps[0],
            tps[1],
            tps[2]
        );
        runs.push(tps);
    }
    drop(reader);
    server.sql(
        DATABASE,
        &format!("SELECT pg_drop_replication_slot('{SLOT}'); DROP PUBLICATION rowtrail"),
    );
    remove_cache(&cache);

    let column = |index: usize| runs.iter().map(|run| run[index]).collect::<Vec<_>>();
    let (rowtrail_ratio, trigger_ratio, loss_ratio) = bootstrap(&runs);
    OverheadFigures {
        seconds,
        rounds,
        scale,
        no_capture_tps: percentile(&column(0), 0.5),
        rowtrail_tps: percentile(&column(1), 0.5),
        trigger_tps: percentile(&column(2), 0.5),
        rowtrail_ratio,
        trigger_ratio,
        loss_ratio,
        captured,
        expected: transactions * 4,
        catch_up_ms: percentile(&catch_ups, 0.5),
        rowtrail_cpu: cpu / cpu_seconds_span.max(f64::EPSILON),
        cpu_us_per_change: cpu * 1e6 / captured.max(1) as f64,
        catch_up_us_per_change: catch_up_cpu * 1e6 / catch_up_changes.max(1) as f64,
        catch_up_changes,
    }
}

/// Medians of the per-round ratios (rowtrail / no capture, trigger / no capture) and of the loss
/// ratio, each with a 95% interval from 2,000 resamplings of the rounds (a fixed seed, so a run
/// can be repeated).
fn bootstrap(runs: &[[f64; 3]]) -> (Estimate, Estimate, Estimate) {
    let ratios = |runs: &[[f64; 3]]| {
        let rowtrail: Vec<f64> = runs.iter().map(|run| run[1] / run[0]).collect();
        let trigger: Vec<f64> = runs.iter().map(|run| run[2] / run[0]).collect();
        let (r, t) = (percentile(&rowtrail, 0.5), percentile(&trigger, 0.5));
        (r, t, (1.0 - r) / (1.0 - t))
    };
    let (r, t, loss) = ratios(runs);
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let mut samples = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..2000 {
        let resample: Vec<[f64; 3]> = (0..runs.len())
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                runs[(state % runs.len() as u64) as usize]
            })
            .collect();
        let (r, t, loss) = ratios(&resample);
        samples.0.push(r);
        samples.1.push(t);
        samples.2.push(loss);
    }
    let estimate = |median: f64, values: &[f64]| Estimate {
        median,
        low: percentile(values, 0.025),
        high: percentile(values, 0.975),
    };
    (
        estimate(r, &samples.0),
        estimate(t, &samples.1),
        estimate(loss, &samples.2),
    )
}

fn prepare(server: &Server, scale: u32) {
    server.create_database(DATABASE);
    let init = server
        .program("pgbench")
        .args([
            "-i",
            "-q",
            "-s",
            &scale.to_string(),
            &server.conninfo(DATABASE),
        ])
        .output()
        .unwrap();
    assert!(
        init.status.success(),
        "pgbench -i failed: {}",
        String::from_utf8_lossy(&init.stderr)
    );
    // pgbench_history has no key; rowtrail refuses to publish it without a replica identity (its
    // updates would fail), so it gets one, as the hint says. It only gets inserts, whose WAL the
    // identity does not change.
    server.sql(
        DATABASE,
        "ALTER TABLE pgbench_history REPLICA IDENTITY FULL",
    );
    server.sql(DATABASE, AUDIT_TRIGGER);
    set_triggers(server, false);
    server.sql(DATABASE, "VACUUM ANALYZE");
}

fn set_triggers(server: &Server, enabled: bool) {
    let action = if enabled { "ENABLE" } else { "DISABLE" };
    let sql: String = AUDITED
        .iter()
        .map(|table| format!("ALTER TABLE {table} {action} TRIGGER audit;"))
        .collect();
    server.sql(DATABASE, &sql);
}

fn capture_command(server: &Server, cache: &Path) -> Command {
    rowtrail(&[
        "capture",
        "--source",
        &server.conninfo(DATABASE),
        "--cache",
        &cache.display().to_string(),
        "--tables",
        TABLES,
        "--slot",
        SLOT,
    ])
}

/// Waits until the cache holds everything the server has written so far.
fn wait_caught_up(server: &Server, reader: &rusqlite::Connection) {
    let target: Lsn = server
        .value(DATABASE, "SELECT pg_current_wal_lsn()")
        .parse()
        .unwrap();
    let started = Instant::now();
    while stored_position(reader) < target {
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "capture did not catch up"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

struct Bench {
    tps: f64,
    transactions: i64,
}

/// One pgbench run of `seconds`, after a checkpoint so that no run pays for another's writes.
fn pgbench(server: &Server, seconds: u64) -> Bench {
    server.sql(DATABASE, "CHECKPOINT");
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
            &server.conninfo(DATABASE),
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&bench.stdout);
    assert!(
        bench.status.success(),
        "pgbench failed: {stdout}{}",
        String::from_utf8_lossy(&bench.stderr)
    );
    Bench {
        tps: number_after(&stdout, "tps = "),
        transactions: number_after(&stdout, "number of transactions actually processed: ") as i64,
    }
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
