//! SIGKILL capture again and again while a workload of 100,000+ changes runs; afterwards the cache
//! holds exactly the committed changes: the same count per table and operation as an audit trigger
//! recorded on the source, no change twice, and change by change the same transactions, tables,
//! operations and before and after images, value by value.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly on unexpected values.

mod support;

use std::collections::BTreeMap;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use support::{OpenSession, TestDb, fresh_db, rowtrail_command, wait_until};

const SCHEMA: &str = "
CREATE TABLE accounts (id int PRIMARY KEY, balance bigint NOT NULL, note text);
ALTER TABLE accounts REPLICA IDENTITY FULL;
CREATE TABLE orders (id bigserial PRIMARY KEY, account_id int NOT NULL, status text NOT NULL, total numeric(12,2));
CREATE TABLE items (order_id bigint, line int, qty int, PRIMARY KEY (order_id, line));
INSERT INTO accounts SELECT g, 1000, 'account ' || g FROM generate_series(1, 200) g;

-- The ground truth: every row change with its transaction and both images, values as text.
CREATE TABLE audit (seq bigserial, xid bigint NOT NULL, tbl text NOT NULL, op text NOT NULL,
                    old jsonb, new jsonb);
CREATE FUNCTION row_text(row_json jsonb) RETURNS jsonb LANGUAGE sql IMMUTABLE AS $$
  SELECT jsonb_object_agg(key, value) FROM jsonb_each_text(row_json)
$$;
CREATE FUNCTION audit_row() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO audit (xid, tbl, op, old, new) VALUES (txid_current() % 4294967296, TG_TABLE_NAME,
    lower(TG_OP),
    CASE WHEN TG_OP <> 'INSERT' THEN row_text(to_jsonb(OLD)) END,
    CASE WHEN TG_OP <> 'DELETE' THEN row_text(to_jsonb(NEW)) END);
  RETURN NULL;
END $$;
CREATE TRIGGER audit_accounts AFTER INSERT OR UPDATE OR DELETE ON accounts FOR EACH ROW EXECUTE FUNCTION audit_row();
CREATE TRIGGER audit_orders AFTER INSERT OR UPDATE OR DELETE ON orders FOR EACH ROW EXECUTE FUNCTION audit_row();
CREATE TRIGGER audit_items AFTER INSERT OR UPDATE OR DELETE ON items FOR EACH ROW EXECUTE FUNCTION audit_row();

-- Each transaction makes 10 row changes across the three tables.
CREATE PROCEDURE workload(transactions int, seed int) LANGUAGE plpgsql AS $$
DECLARE
  new_order bigint;
  account int;
BEGIN
  PERFORM setseed(seed / 100.0);
  FOR i IN 1..transactions LOOP
    account := 1 + floor(random() * 200)::int;
    INSERT INTO orders (account_id, status, total) VALUES (account, 'new', 0) RETURNING id INTO new_order;
    INSERT INTO items SELECT new_order, l, 1 + floor(random() * 5)::int FROM generate_series(1, 4) l;
    UPDATE items SET qty = qty + 1 WHERE items.order_id = new_order AND line = 1;
    DELETE FROM items WHERE items.order_id = new_order AND line = 4;
    UPDATE orders SET status = 'paid', total = 12.50 WHERE id = new_order;
    UPDATE accounts SET balance = balance - 12 WHERE id = account;
    IF i % 3 = 0 THEN
      DELETE FROM orders WHERE id = new_order - 1 AND status = 'paid';
    ELSE
      UPDATE accounts SET note = 'busy ' || i WHERE id = account;
    END IF;
    COMMIT;
    IF i % 20 = 0 THEN PERFORM pg_sleep(0.01); END IF;
  END LOOP;
END $$;
";

fn spawn_capture(db: &TestDb, log: &std::fs::File) -> Child {
    rowtrail_command()
        .args(["capture", "--source", &db.url(), "--cache"])
        .arg(db.cache())
        .args(["--slot", &db.name, "--tables", "accounts,orders,items"])
        .stdout(Stdio::null())
        .stderr(Stdio::from(log.try_clone().unwrap()))
        .spawn()
        .unwrap()
}

#[test]
fn sigkill_during_a_workload_loses_and_duplicates_nothing() {
    let db = fresh_db("crash");
    db.sql(SCHEMA);
    db.sql("TRUNCATE audit;");
    db.capture_ok(&["--tables", "accounts,orders,items"]);
    let log = std::fs::File::create(db.dir.path().join("capture.log")).unwrap();

    // Two concurrent clients, 10,400 transactions of about 10 changes each: about 104,000 changes.
    let workers: Vec<_> = (0..2)
        .map(|seed| {
            let server = db.server;
            let name = db.name.clone();
            std::thread::spawn(move || server.psql(&name, &format!("CALL workload(5200, {seed});")))
        })
        .collect();

    let mut child = spawn_capture(&db, &log);
    let mut kills = 0;
    let mut state = 0x9E37_79B9u32;
    let started = Instant::now();
    while workers.iter().any(|worker| !worker.is_finished()) {
        state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        let pause = Duration::from_millis(300 + u64::from(state >> 22) % 1200);
        std::thread::sleep(pause);
        child.kill().unwrap();
        child.wait().unwrap();
        kills += 1;
        child = spawn_capture(&db, &log);
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "the workload took too long"
        );
    }
    for worker in workers {
        worker.join().unwrap().expect("workload");
    }
    child.kill().unwrap();
    child.wait().unwrap();
    kills += 1;

    // Catch up with everything committed, possibly after the server still holds the slot briefly.
    let caught_up = wait_until(Duration::from_secs(60), || {
        db.capture_once(&["--tables", "accounts,orders,items"])
            .status
            .success()
    });
    assert!(
        caught_up,
        "{}",
        std::fs::read_to_string(db.dir.path().join("capture.log")).unwrap()
    );
    assert!(
        kills >= 3,
        "only {kills} kills: the workload ended too soon to test anything"
    );

    let total = assert_cache_matches_audit(&db, &format!("after {kills} kills"));
    assert!(total >= 100_000, "the workload made only {total} changes");
    eprintln!(
        "{total} changes, {kills} kills, {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

/// The file a capture keeps a streamed transaction in, if there is one.
fn streamed_spill(db: &TestDb) -> Option<std::fs::Metadata> {
    std::fs::read_dir(db.dir.path())
        .unwrap()
        .flatten()
        .find(|entry| {
            entry
                .file_name()
                .to_string_lossy()
                .starts_with(".cache.db.streamed-")
        })
        .and_then(|entry| entry.metadata().ok())
}

/// Its inode, to tell a new one from a leftover of the same name.
fn streamed_spill_inode(db: &TestDb) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    streamed_spill(db).map(|meta| meta.ino())
}

/// A transaction larger than `logical_decoding_work_mem` is streamed by the server before it
/// commits. Capture is killed while it holds the first part; the transaction goes on (a savepoint
/// rolled back, one released) and commits after small transactions; capture is killed again
/// while the server streams it anew. The next capture stores it once, whole, without what was
/// rolled back, and leaves nothing beside the cache.
#[test]
fn sigkill_while_a_transaction_is_streamed_stores_it_once_at_its_commit() {
    let db = fresh_db("crash_streamed");
    db.sql(SCHEMA);
    db.sql("TRUNCATE audit;");
    // The smallest limit: the server streams a transaction past 64 kB of changes.
    db.sql(&format!(
        "ALTER DATABASE {} SET logical_decoding_work_mem = '64kB'",
        db.name
    ));
    db.capture_ok(&["--tables", "accounts,orders,items"]);
    let log = std::fs::File::create(db.dir.path().join("capture.log")).unwrap();
    let log_text = || std::fs::read_to_string(db.dir.path().join("capture.log")).unwrap();

    let mut child = spawn_capture(&db, &log);
    let mut big = OpenSession::open(&db);
    big.run(
        "BEGIN; INSERT INTO orders (account_id, status, total) \
         SELECT 1 + g % 200, 'bulk', g FROM generate_series(1, 40000) g;",
    );
    assert!(
        wait_until(Duration::from_secs(60), || streamed_spill(&db)
            .is_some_and(|meta| meta.len() > 0)),
        "capture keeps the streamed part beside the cache: {}",
        log_text()
    );
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(streamed_spill(&db).is_some(), "a killed capture leaves it");

    db.sql("CALL workload(60, 3);");
    big.run(
        "SAVEPOINT a; UPDATE accounts SET balance = balance + 1; \
         INSERT INTO items SELECT o.id, 1, 1 FROM orders o WHERE o.status = 'bulk'; \
         ROLLBACK TO SAVEPOINT a; \
         UPDATE orders SET status = 'bulk done' WHERE status = 'bulk' AND id % 2 = 0; \
         SAVEPOINT b; DELETE FROM orders WHERE status = 'bulk' AND id % 3 = 0; RELEASE SAVEPOINT b; \
         UPDATE accounts SET note = 'after the savepoints' WHERE id = 7; COMMIT;",
    );
    big.close();
    db.sql("CALL workload(20, 4);");

    // Again: the new capture removes what the killed one left, and is killed in turn while the
    // server streams the transaction anew (if that is slow enough to be seen).
    let leftover = streamed_spill_inode(&db).expect("the leftover");
    child = spawn_capture(&db, &log);
    assert!(
        wait_until(Duration::from_secs(30), || streamed_spill_inode(&db)
            != Some(leftover)),
        "the next capture removes what the killed one left: {}",
        log_text()
    );
    let seen_anew = wait_until(Duration::from_secs(5), || {
        streamed_spill_inode(&db).is_some_and(|inode| inode != leftover)
    });
    child.kill().unwrap();
    child.wait().unwrap();
    eprintln!("killed while streamed anew: {seen_anew}");

    let caught_up = wait_until(Duration::from_secs(60), || {
        db.capture_once(&["--tables", "accounts,orders,items"])
            .status
            .success()
    });
    assert!(caught_up, "{}", log_text());
    let total = assert_cache_matches_audit(&db, "after a kill mid-stream");
    assert!(total > 6_000, "only {total} changes");
    assert!(
        streamed_spill(&db).is_none(),
        "nothing is left beside the cache"
    );
    // The server's statistics reach the view shortly after the walsender reports them.
    let streamed = wait_until(Duration::from_secs(10), || {
        db.sql(&format!(
            "SELECT stream_txns > 0 FROM pg_stat_replication_slots WHERE slot_name = '{}'",
            db.name
        )) == "t"
    });
    assert!(streamed, "the server streamed the transaction");
}

/// Compares the cache with the audit trigger's record: the same count per table and operation,
/// no change twice, and transaction by transaction the same changes in the same order with the
/// same images. Returns how many changes there are.
fn assert_cache_matches_audit(db: &TestDb, when: &str) -> i64 {
    let truth: BTreeMap<(String, String), i64> = db
        .sql("SELECT tbl, op, count(*) FROM audit GROUP BY 1, 2 ORDER BY 1, 2")
        .lines()
        .map(|line| {
            let parts: Vec<&str> = line.split('|').collect();
            (
                (parts[0].to_owned(), parts[1].to_owned()),
                parts[2].parse().unwrap(),
            )
        })
        .collect();
    let total: i64 = truth.values().sum();

    let cache = rowtrail::store::Cache::open(&db.cache()).unwrap();
    let captured: BTreeMap<(String, String), i64> = cache
        .counts()
        .unwrap()
        .into_iter()
        .filter(|(_, op, _)| *op != rowtrail::model::Op::Snapshot)
        .map(|(table, op, count)| ((table.name, op.to_string()), count))
        .collect();
    assert_eq!(captured, truth, "per table and operation, {when}");

    let sqlite = rusqlite::Connection::open(db.cache()).unwrap();
    let (changes, distinct): (i64, i64) = sqlite
        .query_row(
            "SELECT count(*), count(DISTINCT lsn) FROM changes WHERE op <> 'S'",
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .unwrap();
    assert_eq!(changes, distinct, "no change stored twice");
    assert_eq!(changes, total);

    // Change by change: each transaction's changes, in order, with every value of both images.
    type Row = (String, String, serde_json::Value, serde_json::Value);
    let mut expected: BTreeMap<u64, Vec<Row>> = BTreeMap::new();
    for line in db
        .sql("SELECT xid, tbl, op, coalesce(old::text, 'null'), coalesce(new::text, 'null') FROM audit ORDER BY seq")
        .lines()
    {
        let parts: Vec<&str> = line.splitn(5, '|').collect();
        expected.entry(parts[0].parse().unwrap()).or_default().push((
            parts[1].to_owned(),
            parts[2].to_owned(),
            serde_json::from_str(parts[3]).unwrap(),
            serde_json::from_str(parts[4]).unwrap(),
        ));
    }
    let mut stored: BTreeMap<u64, Vec<Row>> = BTreeMap::new();
    for change in support::log_json(&db.cache(), &[]) {
        if change["op"] == "snapshot" {
            continue;
        }
        assert_eq!(change["unavailable"], serde_json::json!([]), "{change}");
        stored
            .entry(change["xid"].as_u64().unwrap())
            .or_default()
            .push((
                change["table"].as_str().unwrap().to_owned(),
                change["op"].as_str().unwrap().to_owned(),
                change["before"].clone(),
                change["after"].clone(),
            ));
    }
    assert_eq!(stored.len(), expected.len(), "transactions");
    for (xid, rows) in &expected {
        assert_eq!(stored.get(xid), Some(rows), "transaction {xid}");
    }
    total
}
