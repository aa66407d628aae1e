//! Capture throughput and cache size: each workload is written once into the WAL, then read by
//! `pg_recvlogical` (pgoutput to /dev/null: what the server can decode and send) and by
//! `rowtrail capture --once` into a fresh cache, each from its own slot created before the workload.
//! A third slot, read with `pg_logical_slot_get_binary_changes`, counts the bytes pgoutput sends.

use std::path::Path;

use rowtrail::model::Op;
use rowtrail::store::Cache;

use crate::server::{Server, file_size, rowtrail};
use crate::stats::run_timed;

/// One workload: tables and rows made before the slots, then the changes to capture.
pub struct Workload {
    pub name: &'static str,
    pub database: &'static str,
    pub setup: String,
    pub work: String,
    pub changes: u64,
}

/// The three workloads; `scale` is 1.0 for the full sizes.
pub fn workloads(scale: f64) -> Vec<Workload> {
    let transactions = (100_000.0 * scale) as u64;
    let wide_rows = (100_000.0 * scale) as u64;
    let bulk_rows = (1_000_000.0 * scale) as u64;
    vec![
        Workload {
            name: "small rows, 10 changes per transaction",
            database: "bench_small",
            setup: "CREATE TABLE small (id bigint PRIMARY KEY, n int NOT NULL, note text NOT NULL);
                    INSERT INTO small SELECT g, g, 'note ' || g FROM generate_series(1, 6) g;"
                .to_owned(),
            // Each transaction inserts 6 rows, updates 3 and deletes 1 of the previous transaction's
            // rows (REPLICA IDENTITY DEFAULT: the server sends no old values, rowtrail fills them in).
            work: format!(
                "DO $$
                 DECLARE t bigint;
                 BEGIN
                   FOR t IN 0..{last} LOOP
                     INSERT INTO small SELECT (t + 1) * 6 + g, g, 'note ' || ((t + 1) * 6 + g) FROM generate_series(1, 6) g;
                     UPDATE small SET n = n + 1 WHERE id BETWEEN t * 6 + 1 AND t * 6 + 3;
                     DELETE FROM small WHERE id = t * 6 + 6;
                     COMMIT;
                   END LOOP;
                 END $$;",
                last = transactions - 1
            ),
            changes: transactions * 10,
        },
        Workload {
            name: "wide rows with jsonb, REPLICA IDENTITY FULL, updates",
            database: "bench_wide",
            setup: format!(
                "CREATE TABLE wide (id int PRIMARY KEY, {texts}, {numbers}, changed_at timestamptz NOT NULL, doc jsonb NOT NULL);
                 ALTER TABLE wide REPLICA IDENTITY FULL;
                 INSERT INTO wide SELECT g, {text_values}, {number_values}, now(),
                   jsonb_build_object('customer', jsonb_build_object('id', g, 'name', 'Customer ' || g, 'tags', jsonb_build_array('a', 'b', g % 7)),
                                      'lines', (SELECT jsonb_agg(jsonb_build_object('sku', 'SKU-' || (g * 13 + l) % 5000, 'qty', l, 'price', (g + l) % 100 + 0.99)) FROM generate_series(1, 8) l),
                                      'note', repeat('x', 200), 'v', 0)
                 FROM generate_series(1, {wide_rows}) g;",
                texts = (1..=10).map(|i| format!("t{i} text NOT NULL")).collect::<Vec<_>>().join(", "),
                numbers = (1..=5).map(|i| format!("n{i} bigint NOT NULL")).collect::<Vec<_>>().join(", "),
                text_values = (1..=10).map(|i| format!("md5((g * {i})::text)")).collect::<Vec<_>>().join(", "),
                number_values = (1..=5).map(|i| format!("g * {i}")).collect::<Vec<_>>().join(", "),
            ),
            // 1,000 rows per transaction; each change carries the whole old and new row.
            work: format!(
                "DO $$
                 DECLARE t int;
                 BEGIN
                   FOR t IN 0..{last} LOOP
                     UPDATE wide SET n1 = n1 + 1, changed_at = now(), doc = jsonb_set(doc, '{{v}}', to_jsonb(t))
                       WHERE id > t * 1000 AND id <= (t + 1) * 1000;
                     COMMIT;
                   END LOOP;
                 END $$;",
                last = wide_rows.div_ceil(1000) - 1
            ),
            changes: wide_rows,
        },
        Workload {
            name: "inserts in one transaction",
            database: "bench_bulk",
            setup: "CREATE TABLE bulk (id int PRIMARY KEY, n int NOT NULL, note text NOT NULL);".to_owned(),
            work: format!(
                "INSERT INTO bulk SELECT g, g % 100, 'row ' || g FROM generate_series(1, {bulk_rows}) g;"
            ),
            changes: bulk_rows,
        },
    ]
}

/// What one workload measured.
#[derive(Debug, Clone)]
pub struct CaptureRun {
    pub name: &'static str,
    pub changes: u64,
    pub workload_seconds: f64,
    pub recvlogical_seconds: f64,
    pub rowtrail_seconds: f64,
    pub rowtrail_peak_mb: f64,
    /// Where rowtrail's time went, as its last line says: preparing, streaming, finishing.
    pub rowtrail_phases: Option<[f64; 3]>,
    pub pgoutput_bytes: u64,
    pub cache_bytes: u64,
    /// What the server spilled to its own disk for rowtrail's slot, and streamed to rowtrail
    /// before commit (`pg_stat_replication_slots`).
    pub server_spill_bytes: u64,
    pub streamed_bytes: u64,
}

impl CaptureRun {
    pub fn recvlogical_rate(&self) -> f64 {
        self.changes as f64 / self.recvlogical_seconds
    }

    pub fn rowtrail_rate(&self) -> f64 {
        self.changes as f64 / self.rowtrail_seconds
    }
}

const PUBLICATION: &str = "rowtrail";
const SLOT_RECV: &str = "bench_recvlogical";
const SLOT_BYTES: &str = "bench_bytes";
const SLOT_ROWTRAIL: &str = "bench_rowtrail";

fn capture_once(server: &Server, db: &str, cache: &Path) -> crate::stats::Timed {
    let source = server.conninfo(db);
    let cache = cache.to_str().unwrap();
    let timed = run_timed(&mut rowtrail(&[
        "capture",
        "--once",
        "--source",
        &source,
        "--cache",
        cache,
        "--slot",
        SLOT_ROWTRAIL,
        "--publication",
        PUBLICATION,
    ]));
    assert!(
        timed.output.status.success(),
        "rowtrail capture failed: {}",
        String::from_utf8_lossy(&timed.output.stderr)
    );
    timed
}

/// The phases `capture` reports on its last line: `(preparing 0.21 s, streaming 7.30 s,
/// finishing 0.20 s)`.
fn phases(stderr: &[u8]) -> Option<[f64; 3]> {
    let text = String::from_utf8_lossy(stderr);
    let line = text
        .lines()
        .rev()
        .find(|line| line.starts_with("stopped at "))?;
    let seconds = |name: &str| -> Option<f64> {
        let rest = &line[line.find(&format!("{name} "))? + name.len() + 1..];
        rest.split_whitespace().next()?.parse().ok()
    };
    Some([
        seconds("preparing")?,
        seconds("streaming")?,
        seconds("finishing")?,
    ])
}

fn captured_changes(cache: &Path) -> u64 {
    Cache::open(cache)
        .unwrap()
        .counts()
        .unwrap()
        .into_iter()
        .filter(|(_, op, _)| *op != Op::Snapshot)
        .map(|(_, _, count)| count as u64)
        .sum()
}

/// Runs one workload and measures both readers.
pub fn run(server: &Server, workload: &Workload, dir: &Path) -> CaptureRun {
    let db = workload.database;
    eprintln!("capture: {} ({} changes)", workload.name, workload.changes);
    server.create_database(db);
    server.sql(db, &workload.setup);
    server.sql(
        db,
        &format!("CREATE PUBLICATION {PUBLICATION} FOR ALL TABLES;"),
    );
    server.sql(
        db,
        &format!(
            "SELECT pg_create_logical_replication_slot('{SLOT_RECV}', 'pgoutput');
             SELECT pg_create_logical_replication_slot('{SLOT_BYTES}', 'pgoutput');"
        ),
    );
    // rowtrail's first run creates its slot and stores the tables as they are (the baseline).
    let cache = dir.join(format!("{db}.rowtrail"));
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", cache.display()));
    }
    capture_once(server, db, &cache);
    let baseline_bytes = file_size(&cache);

    let started = std::time::Instant::now();
    server.sql(db, &workload.work);
    let workload_seconds = started.elapsed().as_secs_f64();
    let end = server.value(db, "SELECT pg_current_wal_lsn()");

    let recv = run_timed(server.program("pg_recvlogical").args([
        "-d",
        &server.conninfo(db),
        "--slot",
        SLOT_RECV,
        "--start",
        "--no-loop",
        // What rowtrail asks for: protocol 2 with transactions streamed before they commit.
        "-o",
        "proto_version=2",
        "-o",
        "streaming=on",
        "-o",
        &format!("publication_names={PUBLICATION}"),
        "-o",
        "messages=true",
        "--endpos",
        &end,
        "-f",
        "/dev/null",
    ]));
    assert!(
        recv.output.status.success(),
        "pg_recvlogical failed: {}",
        String::from_utf8_lossy(&recv.output.stderr)
    );
    let ours = capture_once(server, db, &cache);
    let stored = captured_changes(&cache);
    assert_eq!(
        stored, workload.changes,
        "rowtrail stored {stored} changes, the workload made {}",
        workload.changes
    );
    let pgoutput_bytes: u64 = server
        .value(
            db,
            &format!(
                "SELECT coalesce(sum(octet_length(data)), 0) FROM pg_logical_slot_get_binary_changes('{SLOT_BYTES}', '{end}', NULL,
                   'proto_version', '1', 'publication_names', '{PUBLICATION}', 'messages', 'true')"
            ),
        )
        .parse()
        .unwrap();
    let slot_stats = |column: &str| -> u64 {
        server
            .value(
                db,
                &format!(
                    "SELECT {column} FROM pg_stat_replication_slots WHERE slot_name = '{SLOT_ROWTRAIL}'"
                ),
            )
            .parse()
            .unwrap_or(0)
    };
    let run = CaptureRun {
        name: workload.name,
        changes: workload.changes,
        workload_seconds,
        recvlogical_seconds: recv.seconds,
        rowtrail_seconds: ours.seconds,
        rowtrail_peak_mb: ours.peak_mb,
        rowtrail_phases: phases(&ours.output.stderr),
        pgoutput_bytes,
        cache_bytes: file_size(&cache).saturating_sub(baseline_bytes),
        server_spill_bytes: slot_stats("spill_bytes"),
        streamed_bytes: slot_stats("stream_bytes"),
    };
    eprintln!(
        "  written in {:.1} s; pg_recvlogical {:.2} s ({:.0}/s); rowtrail {:.2} s ({:.0}/s, peak {:.0} MB; {:?})",
        run.workload_seconds,
        run.recvlogical_seconds,
        run.recvlogical_rate(),
        run.rowtrail_seconds,
        run.rowtrail_rate(),
        run.rowtrail_peak_mb,
        run.rowtrail_phases
    );
    server.sql(
        db,
        &format!(
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE database = '{db}';"
        ),
    );
    server.sql("postgres", &format!("DROP DATABASE {db}"));
    run
}
