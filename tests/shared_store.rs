//! The shared store on PostgreSQL: `capture --into` and `publish` copy a cache into schema
//! rowtrail of another database, each change exactly once however often they are killed; the
//! Bemi-layout view reads back through rowtrail's own Bemi import; what the store cannot hold is
//! refused with a clear error.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly on unexpected values.

mod support;

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use support::{TestDb, assert_clean_failure, fresh_db, rowtrail, rowtrail_command, wait_until};

const SCHEMA: &str = "
CREATE TABLE accounts (id int PRIMARY KEY, balance numeric(12,2) NOT NULL, note text, flags jsonb,
                       active boolean NOT NULL DEFAULT true, photo bytea, seen timestamptz);
CREATE TABLE orders (id bigserial PRIMARY KEY, account_id int NOT NULL, status text NOT NULL);
CREATE TABLE items (order_id bigint, line int, qty int, PRIMARY KEY (order_id, line));
INSERT INTO accounts SELECT g, 1000, 'account ' || g, '{\"tier\": 1}', true, '\\x00ff', now()
    FROM generate_series(1, 100) g;

-- Each transaction makes 9 or 10 row changes across the three tables.
CREATE PROCEDURE workload(transactions int, seed int) LANGUAGE plpgsql AS $$
DECLARE
  new_order bigint;
  account int;
BEGIN
  PERFORM setseed(seed / 100.0);
  FOR i IN 1..transactions LOOP
    account := 1 + floor(random() * 100)::int;
    INSERT INTO orders (account_id, status) VALUES (account, 'new') RETURNING id INTO new_order;
    INSERT INTO items SELECT new_order, l, 1 + floor(random() * 5)::int FROM generate_series(1, 4) l;
    UPDATE items SET qty = qty + 1 WHERE items.order_id = new_order AND line = 1;
    DELETE FROM items WHERE items.order_id = new_order AND line = 4;
    UPDATE orders SET status = 'paid' WHERE id = new_order;
    UPDATE accounts SET balance = balance - 12.5, flags = jsonb_build_object('tier', i % 3),
                        active = (i % 2 = 0), seen = now()
     WHERE id = account;
    IF i % 3 = 0 THEN
      DELETE FROM orders WHERE id = new_order - 1 AND status = 'paid';
    END IF;
    COMMIT;
    IF i % 4 = 0 THEN PERFORM pg_sleep(0.02); END IF;
  END LOOP;
END $$;
";

const TABLES: &str = "accounts,orders,items";

fn spawn(db: &TestDb, args: &[&str], log: &std::fs::File) -> Child {
    rowtrail_command()
        .args(args)
        .args(["--cache"])
        .arg(db.cache())
        .stdout(Stdio::null())
        .stderr(Stdio::from(log.try_clone().unwrap()))
        .spawn()
        .unwrap()
}

/// Every row of a query, each as the JSON array the query builds, in order.
fn sqlite_rows(db: &TestDb, sql: &str) -> Vec<serde_json::Value> {
    let connection = rusqlite::Connection::open(db.cache()).unwrap();
    let mut statement = connection.prepare(sql).unwrap();
    statement
        .query_map([], |row| row.get::<_, String>(0))
        .unwrap()
        .map(|text| serde_json::from_str(&text.unwrap()).unwrap())
        .collect()
}

fn store_rows(store: &TestDb, sql: &str) -> Vec<serde_json::Value> {
    store
        .sql(sql)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

/// The cache and the store hold the same rows, table by table.
fn assert_store_equals_cache(db: &TestDb, store: &TestDb) {
    let pairs = [
        (
            "changes",
            "SELECT json_array(id, tx_id, lsn, table_id, relation_id, op, key, old_key, before, after, unavailable, context_id) FROM changes ORDER BY id",
            "SELECT json_build_array(id, tx_id, lsn, table_id, relation_id, op, key, old_key, before, after, unavailable, context_id) FROM rowtrail.changes ORDER BY id",
        ),
        (
            "transactions",
            "SELECT json_array(id, xid, commit_lsn, end_lsn, committed_at, change_count, context_id, origin, is_baseline) FROM transactions ORDER BY id",
            "SELECT json_build_array(id, xid, commit_lsn, end_lsn, committed_at, change_count, context_id, origin, is_baseline) FROM rowtrail.transactions ORDER BY id",
        ),
        (
            "tables",
            "SELECT json_array(id, oid, schema_name, name, change_count, dropped_change) FROM tables ORDER BY id",
            "SELECT json_build_array(id, oid, schema_name, name, change_count, dropped_change) FROM rowtrail.tables ORDER BY id",
        ),
        (
            "relations",
            "SELECT json_array(id, table_id, definition, first_lsn) FROM relations ORDER BY id",
            "SELECT json_build_array(id, table_id, definition, first_lsn) FROM rowtrail.relations ORDER BY id",
        ),
        (
            "change_minutes",
            "SELECT json_array(table_id, op, minute, count) FROM change_minutes ORDER BY 1",
            "SELECT json_build_array(table_id, op, minute, count) FROM rowtrail.change_minutes ORDER BY table_id, op, minute",
        ),
        (
            "source",
            "SELECT json_array(system_identifier, database, display) FROM source",
            "SELECT json_build_array(system_identifier, database, display) FROM rowtrail.source",
        ),
        (
            "capture_state",
            "SELECT json_array(slot, publication, baseline, position) FROM capture_state",
            "SELECT json_build_array(slot, publication, baseline, position) FROM rowtrail.capture_state",
        ),
    ];
    for (table, in_cache, in_store) in pairs {
        let cached = sqlite_rows(db, in_cache);
        let stored = store_rows(store, in_store);
        assert_eq!(stored.len(), cached.len(), "{table}: row count");
        for (stored, cached) in stored.iter().zip(&cached) {
            assert_eq!(stored, cached, "{table}");
        }
    }
}

#[test]
fn capture_into_a_shared_store_killed_again_and_again_holds_every_change_once() {
    let db = fresh_db("shared_src");
    let store = fresh_db("shared_store");
    db.sql(SCHEMA);
    let into = store.url();
    db.capture_ok(&["--tables", TABLES, "--into", &into]);
    let log = std::fs::File::create(db.dir.path().join("capture.log")).unwrap();
    let capture_args = [
        "capture",
        "--source",
        &db.url(),
        "--slot",
        &db.name,
        "--tables",
        TABLES,
        "--into",
        &into,
    ];
    let publish_args = ["publish", "--follow", "--into", &into];

    // Two clients, 5,000 transactions of about ten changes each, while capture (and with it the
    // publisher) is killed again and again; every other round a second publisher runs beside it.
    let workers: Vec<_> = (0..2)
        .map(|seed| {
            let server = db.server;
            let name = db.name.clone();
            std::thread::spawn(move || server.psql(&name, &format!("CALL workload(2500, {seed});")))
        })
        .collect();
    let published_through = || -> i64 {
        store
            .sql("SELECT through_tx FROM rowtrail.publish_state")
            .parse()
            .unwrap()
    };
    let mut advances = Vec::new();
    let mut kills = 0;
    let mut state = 0x2545_F491u32;
    let started = Instant::now();
    while workers.iter().any(|worker| !worker.is_finished()) {
        let mut children = vec![spawn(&db, &capture_args, &log)];
        if kills % 2 == 1 {
            children.push(spawn(&db, &publish_args, &log));
        }
        state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        std::thread::sleep(Duration::from_millis(400 + u64::from(state >> 22) % 1500));
        for mut child in children {
            child.kill().unwrap();
            child.wait().unwrap();
        }
        kills += 1;
        advances.push(published_through());
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "the workload took too long"
        );
    }
    for worker in workers {
        worker.join().unwrap().expect("workload");
    }
    let caught_up = wait_until(Duration::from_secs(60), || {
        db.capture_once(&["--tables", TABLES, "--into", &into])
            .status
            .success()
    });
    let capture_log = std::fs::read_to_string(db.dir.path().join("capture.log")).unwrap();
    assert!(caught_up, "{capture_log}");
    assert!(
        kills >= 3,
        "only {kills} kills: the workload ended too soon"
    );
    advances.dedup();
    assert!(
        advances.len() >= 3,
        "the store should have grown while capture ran, between kills: {advances:?}\n{capture_log}"
    );

    assert_store_equals_cache(&db, &store);
    let changes: i64 = store
        .sql("SELECT count(*) FROM rowtrail.changes WHERE op <> 'S'")
        .parse()
        .unwrap();
    assert!(changes >= 25_000, "only {changes} changes");
    assert_eq!(
        store.sql("SELECT count(*) - count(DISTINCT lsn) FROM rowtrail.changes WHERE op <> 'S'"),
        "0",
        "no change twice"
    );
    // Each month's changes are in their own partition.
    let partitions = store.sql(
        "SELECT string_agg(c.relname, ',') FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
         WHERE i.inhparent = 'rowtrail.changes'::regclass",
    );
    assert!(partitions.starts_with("changes_20"), "{partitions}");

    // Publishing again finds nothing new.
    let again = support::publish(&db.cache(), &into);
    assert!(again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains(
            "published 0 changes in 0 transactions into the shared store (it holds everything"
        ),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    eprintln!(
        "{changes} changes, {kills} kills, store advanced {} times, {:.1} s",
        advances.len(),
        started.elapsed().as_secs_f64()
    );
}

#[test]
fn the_bemi_view_reads_back_through_rowtraits_bemi_import() {
    let db = fresh_db("shared_bemi_src");
    let store = fresh_db("shared_bemi_store");
    db.sql(SCHEMA);
    db.capture_ok(&["--tables", TABLES]);
    db.sql("CALL workload(40, 7);");
    db.sql("UPDATE accounts SET note = NULL, photo = '\\xdeadbeef' WHERE id = 3;");
    db.capture_ok(&["--tables", TABLES]);
    let published = support::publish(&db.cache(), &store.url());
    assert!(
        published.status.success(),
        "{}",
        String::from_utf8_lossy(&published.stderr)
    );

    // Bemi's layout: typed values, {} for a missing image, the key as text.
    let update = store.sql(
        "SELECT primary_key, operation, after -> 'balance', jsonb_typeof(after -> 'active'), after -> 'flags' -> 'tier', after ->> 'photo', before ->> 'note'
         FROM rowtrail_bemi.changes WHERE \"table\" = 'accounts' AND after ->> 'photo' = '\\xdeadbeef'",
    );
    let parts: Vec<&str> = update.split('|').collect();
    assert_eq!(parts[0], "3");
    assert_eq!(parts[1], "UPDATE");
    assert!(parts[2].parse::<f64>().is_ok(), "a number: {update}");
    assert_eq!(parts[3], "boolean");
    assert!(parts[4].parse::<i64>().is_ok(), "json as json: {update}");
    assert!(
        parts[6].starts_with("account 3"),
        "before has the old note: {update}"
    );
    assert_eq!(
        store.sql(
            "SELECT before::text, operation FROM rowtrail_bemi.changes WHERE operation = 'CREATE' LIMIT 1"
        ),
        "{}|CREATE"
    );
    let snapshot_rows: i64 = db.sql("SELECT count(*) FROM accounts").parse().unwrap();
    let view_rows: i64 = store
        .sql("SELECT count(*) FROM rowtrail_bemi.changes")
        .parse()
        .unwrap();
    let stored_rows: i64 = store
        .sql("SELECT count(*) FROM rowtrail.changes")
        .parse()
        .unwrap();
    assert_eq!(
        view_rows,
        stored_rows - snapshot_rows,
        "all but the baseline"
    );

    // rowtrail's own Bemi import reads the view as Bemi's table: the same changes, in the same
    // transactions, with the same values.
    let back = store.dir.path().join("back.db");
    let url = format!("{}&options=-csearch_path%3Drowtrail_bemi", store.url());
    let imported = rowtrail(&[
        "import".into(),
        "--format".into(),
        "bemi".into(),
        "--from".into(),
        url,
        "--cache".into(),
        back.to_string_lossy().into_owned(),
    ]);
    assert!(
        imported.status.success(),
        "{}",
        String::from_utf8_lossy(&imported.stderr)
    );
    // Without the source's catalog beside the store, a numeric's scale (987.50 read back as
    // 987.5) and a jsonb value's spacing are not in the view: values compare as numbers and JSON.
    let value = |text: &serde_json::Value| -> serde_json::Value {
        let Some(text) = text.as_str() else {
            return text.clone();
        };
        match (
            text.parse::<f64>(),
            serde_json::from_str::<serde_json::Value>(text),
        ) {
            (Ok(number), _) => serde_json::json!(number),
            (_, Ok(json)) if json.is_object() => json,
            _ => serde_json::json!(text),
        }
    };
    let shape = |changes: Vec<serde_json::Value>| -> Vec<serde_json::Value> {
        changes
            .into_iter()
            .filter(|change| change["op"] != "snapshot")
            .map(|change| {
                let after: serde_json::Map<String, serde_json::Value> = change["after"]
                    .as_object()
                    .map(|row| {
                        row.iter()
                            .map(|(column, text)| (column.clone(), value(text)))
                            .collect()
                    })
                    .unwrap_or_default();
                serde_json::json!([change["xid"], change["table"], change["op"], after])
            })
            .collect()
    };
    let captured = shape(db.log(&[]));
    let read_back = shape(support::log_json(&back, &[]));
    assert_eq!(read_back.len(), captured.len());
    for (back, captured) in read_back.iter().zip(&captured) {
        assert_eq!(back, captured);
    }
}

#[test]
fn the_store_refuses_what_it_cannot_hold() {
    let db = fresh_db("shared_refuse");
    db.sql("CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t VALUES (1, 'a');");
    db.capture_ok(&[]);
    let publish = |into: String| support::publish(&db.cache(), &into);
    // The source itself: the store would record its own writes.
    assert_clean_failure(
        &publish(db.url()),
        2,
        "is the database whose history it would hold",
    );
    // A schema rowtrail that rowtrail did not make.
    let foreign = fresh_db("shared_foreign");
    foreign.sql("CREATE SCHEMA rowtrail; CREATE TABLE rowtrail.changes (x int);");
    assert_clean_failure(&publish(foreign.url()), 2, "is not a rowtrail store");
    assert_eq!(
        foreign.sql("SELECT count(*) FROM rowtrail.changes"),
        "0",
        "left as it was"
    );
    // A store that holds another database's history.
    let store = fresh_db("shared_other");
    assert!(publish(store.url()).status.success());
    let other = fresh_db("shared_other_src");
    other.sql("CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1);");
    other.capture_ok(&[]);
    let from_other = support::publish(&other.cache(), &store.url());
    assert_clean_failure(&from_other, 2, "holds the history of database");
    // Another cache of the same database: its transactions are not the ones the store holds.
    let copy = db.dir.path().join("second.db");
    let capture_into_copy = || {
        rowtrail(&[
            "capture".into(),
            "--source".into(),
            db.url(),
            "--cache".into(),
            copy.to_string_lossy().into_owned(),
            "--slot".into(),
            format!("{}_2", db.name),
            "--once".into(),
        ])
    };
    assert!(capture_into_copy().status.success());
    db.sql("INSERT INTO t VALUES (2, 'b');");
    assert!(capture_into_copy().status.success());
    let from_copy = support::publish(&copy, &store.url());
    assert_clean_failure(&from_copy, 2, "was filled from another cache");
    // An unreachable store: capture --into says so and stops (the cache keeps what it captured).
    let unreachable = db.capture_once(&["--into", "postgres://nobody@127.0.0.1:1/none"]);
    assert_clean_failure(&unreachable, 2, "the shared store was not fed");
}

/// Runs a rowtrail command on `cache` (a file or a store's URL) and returns its standard output.
fn read_with(cache: &str, args: &[&str]) -> String {
    let mut all: Vec<String> = args.iter().map(|arg| (*arg).to_owned()).collect();
    all.insert(1, "--cache".into());
    all.insert(2, cache.to_owned());
    let output = rowtrail(&all);
    assert!(
        output.status.success(),
        "{args:?} on {cache}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    // A script names the cache it came from and when it was written; the rest must agree.
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .filter(|line| !line.starts_with("-- cache:") && !line.starts_with("-- written"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn every_command_reads_the_store_as_it_reads_the_cache() {
    let db = fresh_db("shared_read_src");
    let store = fresh_db("shared_read_store");
    db.sql(
        "CREATE TABLE customers (id int PRIMARY KEY, name text, email text);
         CREATE TABLE orders (id int PRIMARY KEY, customer_id int REFERENCES customers ON DELETE CASCADE ON UPDATE CASCADE,
                              status text, note text);
         ALTER TABLE orders REPLICA IDENTITY FULL;
         CREATE TABLE events (id bigserial PRIMARY KEY, body text);",
    );
    db.capture_ok(&[]);
    db.sql(
        r#"BEGIN; SELECT pg_logical_emit_message(true, 'rowtrail', '{"user": "ann", "request": {"path": "PUT /orders/10"}}');
           INSERT INTO customers VALUES (1, 'Ann', 'ann@example.com'), (2, 'Bo', 'bo@example.com'), (3, 'Cy', NULL);
           INSERT INTO orders VALUES (10, 2, 'new', repeat('x', 3000)), (11, 2, 'new', 'n'), (12, 1, 'new', NULL);
           COMMIT;
           BEGIN; SELECT pg_logical_emit_message(true, 'rowtrail', '{"user": "bob"}');
           UPDATE orders SET status = 'paid' WHERE id IN (10, 12);
           UPDATE customers SET id = 20, name = 'Bo Ltd' WHERE id = 2;
           COMMIT;
           UPDATE orders SET customer_id = 1 WHERE id = 11;
           INSERT INTO events (body) SELECT 'event ' || g FROM generate_series(1, 30) g;
           TRUNCATE events;
           DELETE FROM customers WHERE id = 1;
           ALTER TABLE customers ADD COLUMN tier int DEFAULT 1;
           UPDATE customers SET tier = 2 WHERE id = 3;
           DROP TABLE events;
           CREATE TABLE events (id int PRIMARY KEY, kind text);
           INSERT INTO events VALUES (1, 'again');"#,
    );
    db.capture_ok(&[]);
    let published = support::publish(&db.cache(), &store.url());
    assert!(
        published.status.success(),
        "{}",
        String::from_utf8_lossy(&published.stderr)
    );
    let file = db.cache().to_string_lossy().into_owned();
    let url = store.url();
    let changes = db.log(&[]);
    let update = changes
        .iter()
        .find(|change| change["op"] == "update" && change["table"] == "orders")
        .unwrap();
    let update_id = update["id"].to_string();
    let xid = update["xid"].to_string();
    let middle = changes[changes.len() / 2]["committed_at"]
        .as_str()
        .unwrap()
        .to_owned();
    let commands: Vec<Vec<&str>> = vec![
        vec!["log", "--json"],
        vec!["log"],
        vec![
            "log",
            "--json",
            "--table",
            "customers",
            "--key",
            r#"{"id": 20}"#,
        ],
        vec!["log", "--json", "--op", "update", "--context", "user=bob"],
        vec!["log", "--json", "--context", "request.path=PUT /orders/10"],
        vec!["log", "--json", "--search", "status:paid"],
        vec!["log", "--json", "--search", "Ann"],
        vec!["log", "--json", "--search", "id=20"],
        vec!["log", "--json", "--tx", &xid],
        vec!["log", "--json", "--since", &middle, "--limit", "3"],
        vec!["show", &update_id],
        vec!["show", "--json", &update_id],
        vec!["history", "--table", "customers", "--key", r#"{"id": 20}"#],
        vec![
            "history",
            "--json",
            "--table",
            "orders",
            "--key",
            r#"{"id": 10}"#,
        ],
        vec!["at", "--table", "customers", "--time", &middle],
        vec!["at", "--table", "orders", "--time", "now"],
        vec!["at", "--table", "events", "--time", "now"],
        vec![
            "at",
            "--table",
            "customers",
            "--key",
            r#"{"id": 20}"#,
            "--time",
            "now",
            "--related",
        ],
        vec!["undo", "--tx", &xid],
        vec!["undo", "--change", &update_id, "--cascade"],
        vec![
            "restore",
            "--table",
            "customers",
            "--key",
            r#"{"id": 1}"#,
            "--time",
            &middle,
        ],
        vec![
            "related",
            "--table",
            "customers",
            "--key",
            r#"{"id": 20}"#,
            "--json",
        ],
        vec!["related", "--table", "customers", "--key", r#"{"id": 20}"#],
        vec![
            "view",
            "--table",
            "orders",
            "--where",
            "status = 'paid'",
            "--json",
        ],
        vec![
            "view",
            "--table",
            "orders",
            "--where",
            "status = 'paid'",
            "--time",
            "now",
        ],
    ];
    for command in &commands {
        let from_file = read_with(&file, command);
        let from_store = read_with(&url, command);
        assert!(!from_file.trim().is_empty(), "{command:?} printed nothing");
        assert_eq!(from_store, from_file, "{command:?}");
    }

    // A role that may only read the store reads it the same (related history without writing
    // its index of references).
    store.sql(
        "CREATE ROLE store_reader LOGIN PASSWORD 'reader';
         GRANT USAGE ON SCHEMA rowtrail TO store_reader;
         GRANT SELECT ON ALL TABLES IN SCHEMA rowtrail TO store_reader;",
    );
    let reader_url = format!(
        "postgres://store_reader:reader@{}",
        url.split_once('@').unwrap().1
    );
    for command in &commands {
        assert_eq!(
            read_with(&reader_url, command),
            read_with(&file, command),
            "{command:?} as a reader"
        );
    }
    // It cannot save a view there, and says why.
    let refused = rowtrail(&[
        "view".into(),
        "--cache".into(),
        reader_url.clone(),
        "--table".into(),
        "orders".into(),
        "--where".into(),
        "status = 'paid'".into(),
        "--save".into(),
        "paid".into(),
    ]);
    assert_clean_failure(&refused, 2, "permission denied");
    // A database without a store.
    let empty = fresh_db("shared_read_none");
    let none = rowtrail(&["log".into(), "--cache".into(), empty.url()]);
    assert_clean_failure(&none, 2, "has no rowtrail store");
}
