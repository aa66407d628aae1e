//! Capture against a real PostgreSQL: what ends up in the cache for each kind of change.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly on unexpected values.

mod support;

use serde_json::{Value, json};
use support::{OpenSession, fresh_db, ops, rowtrail};

#[test]
fn inserts_updates_deletes_and_transactions() {
    let db = fresh_db("dml");
    db.sql(
        "CREATE TABLE accounts (id int PRIMARY KEY, name text, balance numeric);
         ALTER TABLE accounts REPLICA IDENTITY FULL;
         INSERT INTO accounts VALUES (1, 'ann', 10);",
    );
    db.capture_ok(&[]);
    db.sql(
        "INSERT INTO accounts VALUES (2, 'bob', 20);
         UPDATE accounts SET balance = 15 WHERE id = 1;
         DELETE FROM accounts WHERE id = 2;
         BEGIN;
           INSERT INTO accounts VALUES (3, 'cy', 30);
           INSERT INTO accounts VALUES (4, 'di', 40);
           UPDATE accounts SET name = 'anne' WHERE id = 1;
         COMMIT;
         BEGIN;
           INSERT INTO accounts VALUES (5, 'never', 0);
           UPDATE accounts SET balance = 0;
         ROLLBACK;",
    );
    db.capture_ok(&[]);
    let log = db.log(&[]);
    let seen: Vec<(String, Value)> = log
        .iter()
        .map(|change| {
            (
                change["op"].as_str().unwrap().to_owned(),
                change["key"].clone(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        vec![
            ("snapshot".into(), json!({"id": "1"})),
            ("insert".into(), json!({"id": "2"})),
            ("update".into(), json!({"id": "1"})),
            ("delete".into(), json!({"id": "2"})),
            ("insert".into(), json!({"id": "3"})),
            ("insert".into(), json!({"id": "4"})),
            ("update".into(), json!({"id": "1"})),
        ],
        "the rolled-back transaction left nothing"
    );
    let ids: Vec<i64> = log
        .iter()
        .map(|change| change["id"].as_i64().unwrap())
        .collect();
    assert!(
        ids.windows(2).all(|pair| pair[0] < pair[1]),
        "ids increase in commit order"
    );
    let xids: Vec<&Value> = log[4..7].iter().map(|change| &change["xid"]).collect();
    assert!(
        xids.iter().all(|xid| *xid == xids[0]),
        "one transaction, one xid"
    );
    assert_ne!(log[1]["xid"], log[2]["xid"]);
    assert_eq!(log[0]["xid"], Value::Null, "baseline rows have no xid");

    let update = &log[2];
    assert_eq!(
        update["before"],
        json!({"id": "1", "name": "ann", "balance": "10"})
    );
    assert_eq!(
        update["after"],
        json!({"id": "1", "name": "ann", "balance": "15"})
    );
    assert_eq!(update["changed"], json!(["balance"]));
    assert_eq!(update["unavailable"], json!([]));
    let delete = &log[3];
    assert_eq!(
        delete["before"],
        json!({"id": "2", "name": "bob", "balance": "20"})
    );
    assert_eq!(delete["after"], Value::Null);
    for change in &log {
        for field in ["lsn", "commit_lsn"] {
            let lsn = change[field].as_str().unwrap();
            assert!(lsn.contains('/'), "{field} {lsn}");
        }
        let time = change["committed_at"].as_str().unwrap();
        assert!(
            time.ends_with('Z') && time.len() == 27,
            "RFC 3339 UTC with microseconds: {time}"
        );
    }
}

#[test]
fn default_identity_before_images_come_from_history() {
    let db = fresh_db("identity");
    db.sql(
        "CREATE TABLE d (id int PRIMARY KEY, v text, w int);
         CREATE TABLE f (id int PRIMARY KEY, v text, w int);
         ALTER TABLE f REPLICA IDENTITY FULL;
         INSERT INTO d VALUES (1, 'a', 1), (2, 'b', 2);
         INSERT INTO f VALUES (1, 'a', 1), (2, 'b', 2);",
    );
    db.capture_ok(&[]);
    db.sql(
        "UPDATE d SET v = 'a2' WHERE id = 1; UPDATE f SET v = 'a2' WHERE id = 1;
         UPDATE d SET id = 10 WHERE id = 2; UPDATE f SET id = 10 WHERE id = 2;
         DELETE FROM d WHERE id = 1; DELETE FROM f WHERE id = 1;",
    );
    db.capture_ok(&[]);
    for table in ["d", "f"] {
        let log = db.log(&["--table", table, "--op", "update"]);
        assert_eq!(log.len(), 2, "{table}");
        assert_eq!(
            log[0]["before"],
            json!({"id": "1", "v": "a", "w": "1"}),
            "{table}"
        );
        assert_eq!(log[0]["changed"], json!(["v"]), "{table}");
        assert_eq!(
            log[1]["before"],
            json!({"id": "2", "v": "b", "w": "2"}),
            "{table}"
        );
        assert_eq!(log[1]["key"], json!({"id": "10"}), "{table}: the new key");
        let delete = db.log(&["--table", table, "--op", "delete"]);
        assert_eq!(
            delete[0]["before"],
            json!({"id": "1", "v": "a2", "w": "1"}),
            "{table}"
        );
        assert_eq!(delete[0]["unavailable"], json!([]), "{table}");
        let history = db.log(&["--table", table, "--key", r#"{"id": 10}"#]);
        assert_eq!(
            ops(&history)
                .iter()
                .map(|(op, _)| op.as_str())
                .collect::<Vec<_>>(),
            vec!["update"],
            "{table}: found by its new key"
        );
        let history = db.log(&["--table", table, "--key", r#"{"id": "2"}"#]);
        assert_eq!(
            history.len(),
            2,
            "{table}: the old key finds the snapshot and the key update"
        );
    }
}

#[test]
fn unchanged_toast_values_are_filled_not_stored_as_placeholders() {
    let db = fresh_db("toast");
    // EXTERNAL storage keeps the big value out of line and uncompressed, so an update that does not
    // touch it sends it as 'unchanged'.
    db.sql(
        "CREATE TABLE docs (id int PRIMARY KEY, title text, body text);
         ALTER TABLE docs ALTER COLUMN body SET STORAGE EXTERNAL;
         CREATE TABLE fdocs (id int PRIMARY KEY, title text, body text);
         ALTER TABLE fdocs ALTER COLUMN body SET STORAGE EXTERNAL;
         ALTER TABLE fdocs REPLICA IDENTITY FULL;
         INSERT INTO docs VALUES (1, 'one', repeat('x', 20000));
         INSERT INTO fdocs VALUES (1, 'one', repeat('y', 20000));",
    );
    db.capture_ok(&[]);
    db.sql(
        "INSERT INTO docs VALUES (2, 'two', repeat('z', 30000));
         UPDATE docs SET title = 'uno' WHERE id = 1;
         UPDATE docs SET title = 'dos' WHERE id = 2;
         UPDATE docs SET title = 'eins' WHERE id = 1;
         UPDATE fdocs SET title = 'uno' WHERE id = 1;",
    );
    db.capture_ok(&[]);
    for (table, id, letter, length) in [
        ("docs", 1, "x", 20000),
        ("docs", 2, "z", 30000),
        ("fdocs", 1, "y", 20000),
    ] {
        let key = format!(r#"{{"id": {id}}}"#);
        for update in db.log(&["--table", table, "--key", &key, "--op", "update"]) {
            let body = update["after"]["body"].as_str().unwrap();
            assert_eq!(body, letter.repeat(length), "{table} {id}");
            assert_eq!(update["before"]["body"].as_str().unwrap().len(), length);
            assert_eq!(update["unavailable"], json!([]));
            assert_eq!(update["changed"], json!(["title"]));
        }
    }
}

#[test]
fn truncate_is_recorded_per_table() {
    let db = fresh_db("truncate");
    db.sql(
        "CREATE TABLE a (id int PRIMARY KEY); CREATE TABLE b (id int PRIMARY KEY);
         INSERT INTO a VALUES (1), (2); INSERT INTO b VALUES (1);",
    );
    db.capture_ok(&[]);
    db.sql("TRUNCATE a, b; INSERT INTO a VALUES (3);");
    db.capture_ok(&[]);
    let log = db.log(&["--since", "1h"]);
    let tail: Vec<(String, String)> = ops(&log).into_iter().skip(3).collect();
    assert_eq!(
        tail,
        vec![
            ("truncate".into(), "a".into()),
            ("truncate".into(), "b".into()),
            ("insert".into(), "a".into())
        ]
    );
    assert_eq!(log[3]["before"], Value::Null);
    assert_eq!(log[3]["after"], Value::Null);
    assert_eq!(log[3]["key"], json!({}));
}

#[test]
fn schema_changes_mid_stream_keep_each_change_with_its_columns() {
    let db = fresh_db("alter");
    db.sql(
        "CREATE TABLE items (id int PRIMARY KEY, name text);
         INSERT INTO items VALUES (1, 'one');",
    );
    db.capture_ok(&[]);
    db.sql(
        "INSERT INTO items VALUES (2, 'two');
         ALTER TABLE items ADD COLUMN price numeric DEFAULT 0;
         INSERT INTO items VALUES (3, 'three', 3.5);
         ALTER TABLE items RENAME COLUMN name TO title;
         UPDATE items SET title = 'THREE' WHERE id = 3;
         ALTER TABLE items DROP COLUMN price;
         INSERT INTO items VALUES (4, 'four');
         ALTER TABLE items ALTER COLUMN id TYPE bigint;
         INSERT INTO items VALUES (5, 'five');",
    );
    db.capture_ok(&[]);
    let log = db.log(&[]);
    let afters: Vec<Value> = log
        .iter()
        .filter(|change| change["op"] != "ddl")
        .map(|change| change["after"].clone())
        .collect();
    let commands: Vec<&Value> = log
        .iter()
        .filter(|change| change["op"] == "ddl")
        .map(|change| &change["ddl"]["command"])
        .collect();
    assert_eq!(commands.len(), 4, "each ALTER TABLE is in the history too");
    assert_eq!(
        afters,
        vec![
            json!({"id": "1", "name": "one"}),
            json!({"id": "2", "name": "two"}),
            json!({"id": "3", "name": "three", "price": "3.5"}),
            json!({"id": "3", "title": "THREE", "price": "3.5"}),
            json!({"id": "4", "title": "four"}),
            json!({"id": "5", "title": "five"}),
        ]
    );
}

#[test]
fn keys_composite_non_id_and_missing() {
    let db = fresh_db("keys");
    db.sql(
        "CREATE TABLE stock (tenant int, sku text, qty int, PRIMARY KEY (sku, tenant));
         CREATE TABLE products (code text PRIMARY KEY, label text);
         CREATE TABLE events (at timestamptz, what text);
         ALTER TABLE events REPLICA IDENTITY FULL;",
    );
    db.capture_ok(&[]);
    db.sql(
        "INSERT INTO stock VALUES (1, 'A-1', 5); UPDATE stock SET qty = 4 WHERE sku = 'A-1';
         INSERT INTO products VALUES ('p1', 'Pen'); DELETE FROM products;
         INSERT INTO events VALUES ('2026-01-02 03:04:05+00', 'boot'), ('2026-01-02 03:04:05+00', 'boot');
         DELETE FROM events WHERE ctid = (SELECT ctid FROM events LIMIT 1);",
    );
    db.capture_ok(&[]);
    let stock = db.log(&["--table", "stock"]);
    assert_eq!(
        stock[1]["key"],
        json!({"sku": "A-1", "tenant": "1"}),
        "key in primary key order"
    );
    let found = db.log(&[
        "--table",
        "stock",
        "--key",
        r#"{"tenant": 1, "sku": "A-1"}"#,
    ]);
    assert_eq!(found.len(), 2);
    let products = db.log(&["--table", "products"]);
    assert_eq!(products[1]["key"], json!({"code": "p1"}));
    assert_eq!(products[1]["before"], json!({"code": "p1", "label": "Pen"}));
    let events = db.log(&["--table", "events"]);
    assert_eq!(ops(&events).len(), 3);
    assert_eq!(events[2]["op"], "delete");
    assert_eq!(events[2]["key"], json!({}), "no key without a primary key");
    assert_eq!(events[2]["before"]["what"], "boot");
}

#[test]
fn values_are_exactly_what_text_casts_print() {
    let db = fresh_db("types");
    let table = "CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
         CREATE DOMAIN flag AS boolean;
         CREATE TABLE t (
           id int PRIMARY KEY, n numeric(60,25), ts timestamptz, tsz timestamp, iv interval,
           j jsonb, arr text[], raw bytea, u uuid, ip inet, m mood, b boolean, fl flag, c char(6),
           f float8, r real, txt text, d date, tr tstzrange, nested jsonb);
         ALTER TABLE t REPLICA IDENTITY FULL;";
    let rows = "INSERT INTO t VALUES
          ({id}, 123456789012345678901234567890.1234567890123456789012345, '2026-11-23 14:35:01.123456+05:30',
           '1999-12-31 23:59:59.999999', '1 year 2 mons 3 days 04:05:06.789',
           '{{\"address\": {{\"city\": \"Oslo\"}}, \"n\": [1, 2.50, null]}}', ARRAY['a', 'b c', 'd\"e', NULL, 'ünï'],
           '\\x00ff10', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '10.1.2.3', 'happy', true, false, 'ab',
           0.1, 3.4028235e38, E'tab\\there\\nnew line \\\\ back ✓ 東京', '2026-02-28', '[2026-01-01,2026-02-01)',
           '[]'),
          ({id2}, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, '::1', NULL, NULL, NULL, NULL,
           'NaN', '-Infinity', '', NULL, 'empty', 'null');";
    db.sql(table);
    db.sql(
        &rows
            .replace("{id}", "1")
            .replace("{id2}", "2")
            .replace("{{", "{")
            .replace("}}", "}"),
    );
    db.capture_ok(&[]);
    db.sql(
        &rows
            .replace("{id}", "3")
            .replace("{id2}", "4")
            .replace("{{", "{")
            .replace("}}", "}"),
    );
    db.sql("UPDATE t SET n = n + 1, txt = txt || '!' WHERE id IN (1, 3);");
    db.capture_ok(&[]);

    let columns = [
        "n", "ts", "tsz", "iv", "j", "arr", "raw", "u", "ip", "m", "b", "fl", "c", "f", "r", "txt",
        "d", "tr", "nested",
    ];
    let expected_row = |id: i64| -> Value {
        let select: Vec<String> = columns
            .iter()
            .map(|column| format!("'{column}', {column}::text"))
            .collect();
        let json = db.sql(&format!(
            "SELECT json_build_object('id', id::text, {}) FROM t WHERE id = {id}",
            select.join(", ")
        ));
        serde_json::from_str(&json).unwrap()
    };
    let log = db.log(&[]);
    let snapshots: Vec<&Value> = log
        .iter()
        .filter(|change| change["op"] == "snapshot")
        .collect();
    let inserts: Vec<&Value> = log
        .iter()
        .filter(|change| change["op"] == "insert")
        .collect();
    let updates: Vec<&Value> = log
        .iter()
        .filter(|change| change["op"] == "update")
        .collect();
    assert_eq!((snapshots.len(), inserts.len(), updates.len()), (2, 2, 2));
    // Rows 2 and 4 are unchanged since: baseline (COPY) and stream (pgoutput) both print like ::text.
    assert_eq!(snapshots[1]["after"], expected_row(2));
    assert_eq!(inserts[1]["after"], expected_row(4));
    // Rows 1 and 3 were updated: the after images are the current rows.
    assert_eq!(updates[0]["after"], expected_row(1));
    assert_eq!(updates[1]["after"], expected_row(3));
    assert_eq!(updates[0]["changed"], json!(["n", "txt"]));
    assert_eq!(
        updates[0]["before"]["n"],
        "123456789012345678901234567890.1234567890123456789012345"
    );
    assert_eq!(snapshots[0]["after"]["b"], "true");
    assert_eq!(snapshots[0]["after"]["c"], "ab");
    assert_eq!(snapshots[0]["after"]["ip"], "10.1.2.3/32");
    assert_eq!(snapshots[1]["after"]["n"], Value::Null);
}

#[test]
fn context_messages_attach_to_the_changes_that_follow() {
    let db = fresh_db("context");
    db.sql("CREATE TABLE orders (id int PRIMARY KEY, status text);");
    db.capture_ok(&[]);
    db.sql(
        r#"BEGIN;
           INSERT INTO orders VALUES (1, 'new');
           SELECT pg_logical_emit_message(true, 'rowtrail', '{"user": "ann", "endpoint": "PUT /orders/7"}');
           INSERT INTO orders VALUES (2, 'new');
           SELECT pg_logical_emit_message(true, 'other', 'ignored');
           SELECT pg_logical_emit_message(true, 'rowtrail', 'not json');
           UPDATE orders SET status = 'paid' WHERE id = 1;
           SELECT pg_logical_emit_message(true, '_bemi', '{"user": "job", "request_id": 42}');
           DELETE FROM orders WHERE id = 2;
           SELECT pg_logical_emit_message(false, 'rowtrail', '{"user": "mallory"}');
         COMMIT;
         INSERT INTO orders VALUES (3, 'new');"#,
    );
    let output = db.capture_once(&[]);
    assert!(output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("ignored a context message"), "{stderr}");
    let contexts: Vec<Value> = db
        .log(&[])
        .into_iter()
        .map(|change| change["context"].clone())
        .collect();
    let ann = json!({"user": "ann", "endpoint": "PUT /orders/7"});
    assert_eq!(
        contexts,
        vec![
            Value::Null,
            ann.clone(),
            ann,
            json!({"user": "job", "request_id": 42}),
            Value::Null
        ]
    );
    let by_ann = db.log(&["--context", "user=ann"]);
    assert_eq!(by_ann.len(), 2);
    let by_request = db.log(&["--context", "request_id=42"]);
    assert_eq!(by_request.len(), 1);
    assert_eq!(by_request[0]["op"], "delete");
}

#[test]
fn log_filters_combine() {
    let db = fresh_db("filters");
    db.sql(
        "CREATE TABLE a (id int PRIMARY KEY, v int); CREATE TABLE b (id int PRIMARY KEY, v int);
         INSERT INTO a VALUES (1, 1);",
    );
    db.capture_ok(&[]);
    let xid = db.sql(
        "BEGIN; INSERT INTO b VALUES (1, 1); UPDATE a SET v = 2; SELECT txid_current() % 4294967296; COMMIT;",
    );
    db.sql("UPDATE a SET v = 3; DELETE FROM b;");
    db.capture_ok(&[]);
    assert_eq!(db.log(&[]).len(), 5);
    assert_eq!(db.log(&["--table", "a"]).len(), 3);
    assert_eq!(db.log(&["--table", "public.a", "--op", "update"]).len(), 2);
    assert_eq!(db.log(&["--op", "delete"]).len(), 1);
    assert_eq!(
        db.log(&["--table", "b", "--search", "1"]).len(),
        2,
        "the key matches"
    );
    assert_eq!(db.log(&["--search", "nothing like it"]).len(), 0);
    assert_eq!(db.log(&["--tx", xid.trim()]).len(), 2);
    assert_eq!(db.log(&["--since", "10m", "--op", "snapshot"]).len(), 1);
    assert_eq!(db.log(&["--until", "2000-01-01 00:00"]).len(), 0);
    assert_eq!(
        db.log(&["--since", "2000-01-01T00:00:00Z", "--until", "1m"])
            .len(),
        0
    );
    let limited = support::rowtrail(&[
        "log".into(),
        "--cache".into(),
        db.cache().to_string_lossy().into_owned(),
        "--limit".into(),
        "2".into(),
        "--json".into(),
    ]);
    let lines: Vec<Value> = String::from_utf8(limited.stdout)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["op"], "delete", "newest first");
    let table = support::rowtrail(&[
        "log".into(),
        "--cache".into(),
        db.cache().to_string_lossy().into_owned(),
    ]);
    let text = String::from_utf8(table.stdout).unwrap();
    assert!(text.starts_with("      ID  COMMITTED (local)"), "{text}");
    assert_eq!(text.lines().count(), 6);
}

#[test]
fn capture_resumes_without_duplicates_or_gaps() {
    let db = fresh_db("resume");
    db.sql("CREATE TABLE c (id serial PRIMARY KEY, v int);");
    db.capture_ok(&[]);
    for round in 0..5 {
        db.sql(&format!(
            "INSERT INTO c (v) SELECT g FROM generate_series(1, {}) g;",
            round + 1
        ));
        db.capture_ok(&[]);
        db.capture_ok(&[]);
    }
    let log = db.log(&[]);
    assert_eq!(log.len(), 15);
    let keys: Vec<&str> = log
        .iter()
        .map(|change| change["key"]["id"].as_str().unwrap())
        .collect();
    let expected: Vec<String> = (1..=15).map(|id| id.to_string()).collect();
    assert_eq!(keys, expected);
}

/// A transaction larger than `logical_decoding_work_mem` (set to its 64 kB minimum) is streamed by
/// the server before it commits, in blocks between which other transactions commit; one streamed
/// transaction rolls back whole, and savepoints roll back inside the other. The cache stores
/// exactly what a capture with `--no-streaming` stores from the same changes (which the server
/// kept on its own disk instead), and the table as it is now.
#[test]
fn issue15_a_transaction_streamed_before_its_commit_is_stored_as_if_sent_whole() {
    let db = fresh_db("streamed");
    db.sql(&format!(
        "ALTER DATABASE {} SET logical_decoding_work_mem = '64kB';
         CREATE TABLE t (id int PRIMARY KEY, v text, n int);
         CREATE TABLE u (id int PRIMARY KEY, note text);
         INSERT INTO t VALUES (0, 'seed', 0);",
        db.name
    ));
    db.capture_ok(&[]);
    let whole = db.dir.path().join("whole.db");
    let whole_slot = format!("{}_whole", db.name);
    let capture_whole = || {
        let output = rowtrail(&[
            "capture".into(),
            "--source".into(),
            db.url(),
            "--cache".into(),
            whole.to_string_lossy().into_owned(),
            "--slot".into(),
            whole_slot.clone(),
            "--once".into(),
            "--no-streaming".into(),
        ]);
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    };
    capture_whole();

    let mut big = OpenSession::open(&db);
    big.run("BEGIN; INSERT INTO t SELECT g, 'a' || g, g FROM generate_series(1, 3000) g;");
    db.sql("INSERT INTO t VALUES (100001, 'small', 1);");
    big.run(
        "SAVEPOINT s1; UPDATE t SET n = n + 1 WHERE id <= 2000; \
         INSERT INTO u SELECT g, 'u' || g FROM generate_series(1, 500) g; \
         SAVEPOINT s2; DELETE FROM t WHERE id > 2500 AND id < 100000; UPDATE u SET note = 'gone'; \
         ROLLBACK TO SAVEPOINT s2; UPDATE t SET v = 'after the rollback' WHERE id = 5; \
         RELEASE SAVEPOINT s1;",
    );
    db.sql(
        "BEGIN; INSERT INTO t SELECT g, 'never', g FROM generate_series(20001, 24000) g; ROLLBACK;",
    );
    db.sql("UPDATE t SET v = 'small again' WHERE id = 100001;");
    big.run(
        "SAVEPOINT s3; INSERT INTO t SELECT g, 'b', g FROM generate_series(5001, 7000) g; \
         ROLLBACK TO SAVEPOINT s3; DELETE FROM t WHERE id BETWEEN 10 AND 20; \
         UPDATE u SET note = 'kept' WHERE id <= 3; COMMIT;",
    );
    big.close();

    db.capture_ok(&[]);
    capture_whole();
    // (transactions streamed, transactions the server spilled to its disk) per slot.
    let stats = |slot: &str| -> (i64, i64) {
        let line = db.sql(&format!(
            "SELECT stream_txns, spill_txns FROM pg_stat_replication_slots WHERE slot_name = '{slot}'"
        ));
        let mut numbers = line.split('|').map(|number| number.parse().unwrap_or(-1));
        (numbers.next().unwrap_or(-1), numbers.next().unwrap_or(-1))
    };
    assert!(
        support::wait_until(std::time::Duration::from_secs(10), || {
            let ((streamed, _), (whole_streamed, whole_spilled)) =
                (stats(&db.name), stats(&whole_slot));
            streamed >= 2 && whole_streamed == 0 && whole_spilled >= 1
        }),
        "streamed on one slot, spilled by the server on the other: {:?} / {:?}",
        stats(&db.name),
        stats(&whole_slot)
    );

    let streamed = db.log(&[]);
    let sent_whole = support::log_json(&whole, &[]);
    assert_eq!(streamed.len(), sent_whole.len());
    // 3,000 + 500 inserts, 2,001 + 1 updates of t and 3 of u, 11 deletes; the two small
    // transactions' changes; the baseline's row.
    assert_eq!(streamed.len(), 3500 + 2005 + 11 + 2 + 1);
    for (one, other) in streamed.iter().zip(&sent_whole) {
        if one["op"] != "snapshot" {
            assert_eq!(one, other);
        }
    }
    let mut now: Vec<Value> = db
        .on_cache("at", &["--table", "t", "--time", "now"])
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let mut source: Vec<Value> = db
        .sql("SELECT json_build_object('id', id::text, 'v', v, 'n', n::text) FROM t")
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let by_id = |row: &Value| row["id"].as_str().unwrap().parse::<i64>().unwrap();
    now.sort_by_key(by_id);
    source.sort_by_key(by_id);
    assert_eq!(now, source);
}
