//! Import rate per audit-store format: one workload written through every store at once (the
//! stores' SQL is the tests' own, `tests/support/*.sql`), then `rowtrail import` of each, timed
//! as a whole process with its peak memory.

use std::path::Path;

use crate::server::{Server, file_size, rowtrail};
use crate::stats::run_timed;

const AUDIT_TRIGGER: &str = include_str!("../../tests/support/audit_trigger.sql");
const BEMI: &str = include_str!("../../tests/support/bemi.sql");
const SUPA_AUDIT: &str = include_str!("../../tests/support/supa_audit.sql");
const PAPER_TRAIL: &str = include_str!("../../tests/support/paper_trail.sql");
const PGMEMENTO: &str = include_str!("../../tests/support/pgmemento.sql");

/// Rows changed per transaction.
const PER_TRANSACTION: u64 = 100;

/// One format's import.
pub struct ImportRun {
    pub format: &'static str,
    pub changes: u64,
    pub transactions: u64,
    pub seconds: f64,
    pub peak_mb: f64,
    pub cache_bytes: u64,
}

impl ImportRun {
    pub fn rate(&self) -> f64 {
        self.changes as f64 / self.seconds
    }
}

/// The workload: `changes` row changes in transactions of 100 rows — a fifth inserts, then
/// updates of two columns, the last tenth deletes — on a table of six columns of five types.
fn workload(changes: u64) -> String {
    let transactions = changes / PER_TRANSACTION;
    let inserts = transactions / 5;
    let deletes = transactions / 10;
    let rows = inserts * PER_TRANSACTION;
    let mut sql = String::new();
    for t in 0..transactions {
        let statement = if t < inserts {
            let first = t * PER_TRANSACTION + 1;
            format!(
                "INSERT INTO items SELECT i, 'item ' || i, i % 7, (i % 1000) / 10.0, NULL,
                        '2026-01-01 00:00:00+00'::timestamptz + i * interval '1 minute'
                 FROM generate_series({first}, {}) i;",
                first + PER_TRANSACTION - 1
            )
        } else if t < transactions - deletes {
            // Each update transaction takes the next 100 rows, round and round.
            let first = (t * PER_TRANSACTION) % rows + 1;
            format!(
                "UPDATE items SET qty = qty + 1, note = 'round {t}'
                 WHERE id BETWEEN {first} AND {};",
                first + PER_TRANSACTION - 1
            )
        } else {
            let first = (transactions - 1 - t) * PER_TRANSACTION + 1;
            format!(
                "DELETE FROM items WHERE id BETWEEN {first} AND {};",
                first + PER_TRANSACTION - 1
            )
        };
        sql.push_str(&statement);
        sql.push('\n');
    }
    sql
}

const TABLE: &str = "CREATE TABLE items (id int PRIMARY KEY, name text, qty int,
                                         price numeric(10,2), note text, updated timestamptz);";

/// Writes the workload through every store and imports each; `changes` row changes.
pub fn measure(server: &Server, dir: &Path, changes: u64) -> Vec<ImportRun> {
    // The wiki trigger and supa_audit both use the schema `audit`: two databases.
    let one = "bench_import_a";
    let two = "bench_import_b";
    server.create_database(one);
    server.create_database(two);
    server.sql(one, AUDIT_TRIGGER);
    server.sql(one, BEMI);
    server.sql(one, PAPER_TRAIL);
    server.sql(one, PGMEMENTO);
    server.sql(one, TABLE);
    server.sql(
        one,
        "CREATE TRIGGER audit_trigger_row AFTER INSERT OR UPDATE OR DELETE ON items
             FOR EACH ROW EXECUTE PROCEDURE audit.if_modified_func('true');
         CREATE TRIGGER bemi AFTER INSERT OR UPDATE OR DELETE ON items
             FOR EACH ROW EXECUTE FUNCTION bemi_capture();
         CREATE TRIGGER paper_trail AFTER INSERT OR UPDATE OR DELETE ON items
             FOR EACH ROW EXECUTE FUNCTION paper_trail_version();
         SELECT pgmemento.create_table_audit('items');",
    );
    server.sql(two, SUPA_AUDIT);
    server.sql(two, TABLE);
    server.sql(two, "SELECT audit.enable_tracking('items');");
    eprintln!("import: writing {changes} changes through every store");
    let work = workload(changes);
    server.sql(one, &work);
    server.sql(two, &work);
    // Debezium's events, as a consumer of the topic would write them, schema part included.
    let events = dir.join("events.jsonl");
    let lines = server.sql(
        one,
        "SELECT jsonb_build_object('schema', debezium_schema(rel), 'payload', event)::text
         FROM debezium_events ORDER BY n",
    );
    std::fs::write(&events, lines).unwrap();
    let from_one = server.pg.url(one);
    let from_two = server.pg.url(two);
    let events_path = events.to_str().unwrap().to_owned();
    [
        ("pg-audit-trigger", from_one.as_str()),
        ("bemi", from_one.as_str()),
        ("supa-audit", from_two.as_str()),
        ("pgmemento", from_one.as_str()),
        ("paper-trail", from_one.as_str()),
        ("debezium", events_path.as_str()),
    ]
    .into_iter()
    .map(|(format, from)| import(dir, format, from, changes))
    .collect()
}

fn import(dir: &Path, format: &'static str, from: &str, changes: u64) -> ImportRun {
    let cache = dir.join(format!("{format}.rowtrail"));
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", cache.display()));
    }
    let cache_text = cache.to_str().unwrap();
    let timed = run_timed(&mut rowtrail(&[
        "import", "--from", from, "--format", format, "--cache", cache_text,
    ]));
    let said = String::from_utf8_lossy(&timed.output.stderr);
    assert!(
        timed.output.status.success(),
        "{format} import failed: {said}"
    );
    // "imported N changes in M transactions"
    let count = |after: &str| -> u64 {
        said.split(after)
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|number| number.replace(',', "").parse().ok())
            .unwrap_or(0)
    };
    let imported = count("imported ");
    let transactions = count("changes in ");
    assert_eq!(
        imported, changes,
        "{format} imported {imported} changes, the workload made {changes}: {said}"
    );
    eprintln!(
        "  {format}: {imported} changes in {:.2} s ({:.0}/s, peak {:.0} MB)",
        timed.seconds,
        imported as f64 / timed.seconds,
        timed.peak_mb
    );
    ImportRun {
        format,
        changes: imported,
        transactions,
        seconds: timed.seconds,
        peak_mb: timed.peak_mb,
        cache_bytes: file_size(&cache),
    }
}
