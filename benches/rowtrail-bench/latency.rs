//! Commit-to-cache latency: marker transactions (10 rows each) committed at a steady rate while
//! `rowtrail capture` follows; the cache is polled every 2 ms, and each transaction's latency is the
//! time it was first seen in the cache minus its commit time at the source (the same clock).

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use chrono::Utc;
use rusqlite::{Connection, OpenFlags};

use crate::overhead;
use crate::server::{Server, rowtrail};
use crate::stats::percentile;

const DATABASE: &str = "bench_latency";
const ROWS_PER_TX: u64 = 10;

pub struct LatencyFigures {
    /// The rate asked for, changes/s.
    pub offered: f64,
    /// The rate the generator reached, changes/s.
    pub achieved: f64,
    pub transactions: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

/// Runs markers at `rate` changes/s for `seconds` and measures when each lands in the cache.
pub fn measure(server: &Server, dir: &Path, rate: f64, seconds: f64) -> LatencyFigures {
    server.create_database(DATABASE);
    server.sql(
        DATABASE,
        "CREATE TABLE marker (id bigserial PRIMARY KEY, tx int NOT NULL, note text NOT NULL,
                              sent_at timestamptz NOT NULL DEFAULT clock_timestamp())",
    );
    let cache = dir.join("latency.rowtrail");
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", cache.display()));
    }
    let conninfo = server.conninfo(DATABASE);
    let capture = overhead::start_following(rowtrail(&[
        "capture",
        "--source",
        &conninfo,
        "--cache",
        &cache.display().to_string(),
        "--slot",
        "bench_latency",
    ]));
    let transactions = ((rate * seconds) / ROWS_PER_TX as f64).ceil().max(1.0) as u64;
    let interval_us = 1e6 * ROWS_PER_TX as f64 / rate;
    let generator_sql = format!(
        "DO $$
         DECLARE started timestamptz := clock_timestamp();
         BEGIN
           FOR t IN 1..{transactions} LOOP
             INSERT INTO marker (tx, note) SELECT t, 'marker ' || g FROM generate_series(1, {ROWS_PER_TX}) g;
             COMMIT;
             PERFORM pg_sleep(greatest(0, extract(epoch FROM started + t * interval '{interval_us} microseconds' - clock_timestamp())));
           END LOOP;
         END $$;"
    );
    let mut generator = server.program("psql");
    generator.args([
        "-X",
        "-q",
        "-v",
        "ON_ERROR_STOP=1",
        "-d",
        &conninfo,
        "-c",
        &generator_sql,
    ]);
    let generating = Instant::now();
    let mut generator = generator.spawn().unwrap();

    let reader = Connection::open_with_flags(&cache, OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    let mut seen_at: HashMap<i64, i64> = HashMap::new();
    let mut last_id = 0i64;
    let mut generated_in = None;
    loop {
        let now = Utc::now().timestamp_micros();
        let mut statement = reader
            .prepare_cached(
                "SELECT id, committed_at FROM transactions WHERE id > ?1 AND is_baseline = 0 ORDER BY id",
            )
            .unwrap();
        let rows: Vec<(i64, i64)> = statement
            .query_map([last_id], |row| Ok((row.get(0)?, row.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        for (id, committed_at) in rows {
            seen_at.insert(id, now - committed_at);
            last_id = id;
        }
        if generated_in.is_none() && generator.try_wait().unwrap().is_some() {
            generated_in = Some(generating.elapsed());
        }
        if generated_in.is_some() && seen_at.len() as u64 >= transactions {
            break;
        }
        assert!(
            generating.elapsed() < Duration::from_secs_f64(seconds * 4.0 + 60.0),
            "only {} of {transactions} marker transactions reached the cache",
            seen_at.len()
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    let generated_in = generated_in.unwrap_or_else(|| generating.elapsed());
    assert!(
        generator.wait().unwrap().success(),
        "the marker generator failed"
    );
    overhead::stop(capture);
    let latencies: Vec<f64> = seen_at
        .values()
        .map(|&micros| micros as f64 / 1000.0)
        .collect();
    LatencyFigures {
        offered: rate,
        achieved: (transactions * ROWS_PER_TX) as f64 / generated_in.as_secs_f64(),
        transactions: latencies.len(),
        p50_ms: percentile(&latencies, 0.5),
        p99_ms: percentile(&latencies, 0.99),
        max_ms: percentile(&latencies, 1.0),
    }
}
