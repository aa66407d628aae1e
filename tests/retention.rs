//! Retention and erasure (issue 16): `rowtrail prune`, `capture --retain` and `rowtrail forget`
//! on caches captured from a real PostgreSQL. Each test is named after what it shows.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly on unexpected values.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::process::Output;

use serde_json::Value as Json;
use support::{TestDb, assert_clean_failure, fresh_db, rowtrail};

const SCHEMA: &str = "
    CREATE TABLE customers (id int PRIMARY KEY, name text, email text, notes text);
    ALTER TABLE customers ALTER COLUMN notes SET STORAGE EXTERNAL;
    CREATE TABLE orders (
        id int PRIMARY KEY,
        customer_id int REFERENCES customers ON UPDATE CASCADE ON DELETE CASCADE,
        status text);
    -- No key: rows are a multiset, folded by value.
    CREATE TABLE events (kind text, n int);
    ALTER TABLE events REPLICA IDENTITY FULL;
    -- Gets its key mid-stream.
    CREATE TABLE tags (id int NOT NULL, label text);
    ALTER TABLE tags REPLICA IDENTITY FULL;
    CREATE TABLE logs (id int PRIMARY KEY, line text);
";

/// A small deterministic generator (the workload must be the same on every run).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, below: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((self.0 >> 33) % below as u64) as usize
    }
}

/// Random transactions over the tables above, tracking which rows exist.
struct Workload {
    random: Lcg,
    customers: BTreeSet<i32>,
    orders: BTreeMap<i32, i32>,
    next_id: i32,
}

impl Workload {
    fn new(seed: u64) -> Self {
        Self {
            random: Lcg(seed),
            customers: BTreeSet::new(),
            orders: BTreeMap::new(),
            next_id: 1,
        }
    }

    fn pick(&mut self, set: &[i32]) -> Option<i32> {
        (!set.is_empty()).then(|| set[self.random.next(set.len())])
    }

    fn statement(&mut self) -> String {
        let customers: Vec<i32> = self.customers.iter().copied().collect();
        let orders: Vec<i32> = self.orders.keys().copied().collect();
        let id = self.next_id;
        let (operation, customer, order) = (
            self.random.next(11),
            self.pick(&customers),
            self.pick(&orders),
        );
        match (operation, customer, order) {
            (0 | 1, _, _) => {
                self.next_id += 1;
                self.customers.insert(id);
                format!(
                    "INSERT INTO customers VALUES ({id}, 'name {id}', 'c{id}@x.io', repeat('note {id} ', 500))"
                )
            }
            (2, Some(customer), _) => format!(
                "UPDATE customers SET name = 'renamed {} {customer}' WHERE id = {customer}",
                self.random.next(100)
            ),
            // The key changes; orders follow by ON UPDATE CASCADE.
            (3, Some(customer), _) => {
                self.next_id += 1;
                self.customers.remove(&customer);
                self.customers.insert(id);
                for owner in self.orders.values_mut() {
                    if *owner == customer {
                        *owner = id;
                    }
                }
                format!("UPDATE customers SET id = {id} WHERE id = {customer}")
            }
            (4, Some(customer), _) => {
                self.customers.remove(&customer);
                self.orders.retain(|_, owner| *owner != customer);
                format!("DELETE FROM customers WHERE id = {customer}")
            }
            (5 | 6, Some(customer), _) => {
                self.next_id += 1;
                self.orders.insert(id, customer);
                format!("INSERT INTO orders VALUES ({id}, {customer}, 'new')")
            }
            (7, _, Some(order)) => format!(
                "UPDATE orders SET status = 'status {}' WHERE id = {order}",
                self.random.next(5)
            ),
            (8, _, Some(order)) => {
                self.orders.remove(&order);
                format!("DELETE FROM orders WHERE id = {order}")
            }
            (9, _, _) => {
                self.next_id += 1;
                format!(
                    "INSERT INTO events VALUES ('kind {}', {}); INSERT INTO tags VALUES ({id}, 'tag')",
                    self.random.next(3),
                    self.random.next(3)
                )
            }
            (10, _, _) => format!(
                "DELETE FROM events WHERE ctid = (SELECT ctid FROM events WHERE kind = 'kind {}' LIMIT 1);
                 UPDATE events SET n = n + 1 WHERE ctid = (SELECT ctid FROM events LIMIT 1);
                 UPDATE tags SET label = 'tag {}' WHERE id = (SELECT min(id) FROM tags)",
                self.random.next(3),
                self.random.next(9)
            ),
            // Nothing to change the picked way yet.
            _ => "SELECT 1".to_owned(),
        }
    }

    /// Runs `count` transactions on the database.
    fn run(&mut self, db: &TestDb, count: usize) {
        for _ in 0..count {
            db.sql(&self.transaction());
        }
    }

    /// One transaction of one to four statements.
    fn transaction(&mut self) -> String {
        let count = 1 + self.random.next(4);
        let statements: Vec<String> = (0..count).map(|_| self.statement()).collect();
        format!("BEGIN; {}; COMMIT;", statements.join("; "))
    }
}

fn run(db: &TestDb, command: &str, args: &[&str]) -> Output {
    let mut all = vec![
        command.to_owned(),
        "--cache".to_owned(),
        db.cache().to_string_lossy().into_owned(),
    ];
    all.extend(args.iter().map(|arg| (*arg).to_owned()));
    rowtrail(&all)
}

/// What a command printed and how it ended, for comparing before and after a prune.
/// A script's "written at" line is left out: it is the only line that may differ.
fn outcome(output: &Output) -> String {
    let stdout: Vec<String> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|line| !line.starts_with("-- written "))
        .map(str::to_owned)
        .collect();
    format!(
        "{:?}\n{}\n{}",
        output.status.code(),
        stdout.join("\n"),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn cache_size(db: &TestDb) -> u64 {
    let mut size = 0;
    for suffix in ["", "-wal"] {
        let mut path = db.cache().into_os_string();
        path.push(suffix);
        size += std::fs::metadata(path).map_or(0, |meta| meta.len());
    }
    size
}

/// Everything a user can ask of the history at and after a moment: each table at the moment,
/// and for each change after it its diff, its undo script and its record put back to the moment.
fn answers(db: &TestDb, moments: &[String], changes: &[Json]) -> Vec<String> {
    let mut answers = Vec::new();
    for moment in moments {
        for table in ["customers", "orders", "events", "tags", "logs"] {
            answers.push(format!(
                "at {table} {moment}: {}",
                outcome(&run(db, "at", &["--table", table, "--time", moment]))
            ));
        }
    }
    for change in changes {
        let id = change["id"].to_string();
        answers.push(format!(
            "show {id}: {}",
            outcome(&run(db, "show", &[&id, "--json"]))
        ));
        answers.push(format!(
            "undo {id}: {}",
            outcome(&run(db, "undo", &["--change", &id]))
        ));
        if change["table"] == "customers" && change["op"] != "ddl" {
            let key = change["key"].to_string();
            answers.push(format!(
                "restore {key}: {}",
                outcome(&run(
                    db,
                    "restore",
                    &["--table", "customers", "--key", &key, "--time", &moments[0]]
                ))
            ));
        }
    }
    answers
}

#[test]
fn prune_keeps_every_state_diff_and_restore_after_the_cut_and_the_file_shrinks() {
    let db = fresh_db("prune");
    db.sql(SCHEMA);
    let mut workload = Workload::new(16);
    workload.run(&db, 10);
    db.capture_ok(&[]);
    // Before the cut: a table created and dropped, a truncate, a key added, many changes.
    db.sql("CREATE TABLE scratch (id int PRIMARY KEY, secret text); INSERT INTO scratch VALUES (1, 'old scratch');");
    db.sql("INSERT INTO logs SELECT g, 'line ' || g FROM generate_series(1, 300) g");
    workload.run(&db, 40);
    db.sql("DROP TABLE scratch");
    db.sql("TRUNCATE logs; INSERT INTO logs VALUES (1, 'after the truncate')");
    db.sql("ALTER TABLE tags ADD PRIMARY KEY (id)");
    workload.run(&db, 20);
    db.capture_ok(&[]);
    let cut = db.log(&[]).last().unwrap().clone();
    // After the cut: more of everything, a column added.
    workload.run(&db, 25);
    db.sql("ALTER TABLE customers ADD COLUMN vip boolean DEFAULT false");
    workload.run(&db, 15);
    db.capture_ok(&[]);

    let all = db.log(&[]);
    let cut_id = cut["id"].as_i64().unwrap();
    let after: Vec<Json> = all
        .iter()
        .filter(|change| change["id"].as_i64().unwrap() > cut_id)
        .cloned()
        .collect();
    assert!(after.len() > 50, "{} changes after the cut", after.len());
    // Moments: the cut itself (by time and by change), and the end of every later transaction.
    let mut moments = vec![
        cut["committed_at"].as_str().unwrap().to_owned(),
        format!("change:{cut_id}"),
    ];
    for pair in after.windows(2) {
        if pair[0]["xid"] != pair[1]["xid"] {
            moments.push(format!("change:{}", pair[0]["id"]));
        }
    }
    moments.push("now".to_owned());
    let before = answers(&db, &moments, &after);
    let size_before = cache_size(&db);

    let output = run(
        &db,
        "prune",
        &["--before", cut["committed_at"].as_str().unwrap()],
    );
    assert!(output.status.success(), "{}", outcome(&output));
    let said = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(said.starts_with("pruned the history before"), "{said}");

    let after_prune = answers(&db, &moments, &after);
    for (old, new) in before.iter().zip(&after_prune) {
        assert_eq!(old, new, "an answer changed with the prune");
    }
    assert_eq!(before.len(), after_prune.len());
    let size_after = cache_size(&db);
    assert!(
        size_after < size_before,
        "the cache did not shrink: {size_before} → {size_after} bytes ({said})"
    );

    // The history now begins with a baseline at the cut: nothing before it is readable.
    let remaining = db.log(&[]);
    let first_after = remaining
        .iter()
        .position(|change| change["id"].as_i64().unwrap() > cut_id)
        .unwrap();
    assert!(
        remaining[..first_after]
            .iter()
            .all(|change| change["op"] == "snapshot"),
        "only snapshots before the cut"
    );
    assert!(
        !remaining.iter().any(|change| change["table"] == "scratch"),
        "the dropped table's history is gone"
    );
    let early = run(
        &db,
        "at",
        &[
            "--table",
            "customers",
            "--time",
            all[0]["committed_at"].as_str().unwrap(),
        ],
    );
    assert_clean_failure(&early, 2, "before the history in this cache starts");

    // Capture goes on after a prune, and the cache agrees with the database.
    workload.run(&db, 10);
    db.capture_ok(&[]);
    let cached: BTreeSet<String> = db
        .on_cache("at", &["--table", "orders", "--time", "now"])
        .lines()
        .map(|line| {
            let row: Json = serde_json::from_str(line).unwrap();
            format!(
                "{}|{}|{}",
                row["id"].as_str().unwrap(),
                row["customer_id"].as_str().unwrap(),
                row["status"].as_str().unwrap()
            )
        })
        .collect();
    let live: BTreeSet<String> = db
        .sql("SELECT id, customer_id, status FROM orders")
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(cached, live);

    // A second prune at the same moment has nothing to do.
    let again = run(
        &db,
        "prune",
        &["--before", cut["committed_at"].as_str().unwrap()],
    );
    assert!(
        String::from_utf8_lossy(&again.stdout).contains("already one baseline"),
        "{}",
        outcome(&again)
    );

    // A later prune folds only what came since into the same baseline, and keeps every later
    // state too.
    let all = db.log(&[]);
    // The end of a transaction: moments inside the cut's transaction are before the cut.
    let mut end = all.len() - 30;
    while all[end + 1]["xid"] == all[end]["xid"] {
        end += 1;
    }
    let cut = all[end].clone();
    let cut_id = cut["id"].as_i64().unwrap();
    let after: Vec<Json> = all
        .iter()
        .filter(|change| change["id"].as_i64().unwrap() > cut_id)
        .cloned()
        .collect();
    let mut moments = vec![cut["committed_at"].as_str().unwrap().to_owned()];
    moments.extend(
        after
            .iter()
            .map(|change| format!("change:{}", change["id"])),
    );
    let before = answers(&db, &moments, &after);
    let output = run(
        &db,
        "prune",
        &["--before", cut["committed_at"].as_str().unwrap()],
    );
    assert!(output.status.success(), "{}", outcome(&output));
    let after_prune = answers(&db, &moments, &after);
    for (old, new) in before.iter().zip(&after_prune) {
        assert_eq!(old, new, "an answer changed with the second prune");
    }
    let baselines: BTreeSet<String> = db
        .log(&[])
        .iter()
        .filter(|change| change["op"] == "snapshot")
        .map(|change| change["commit_lsn"].to_string())
        .collect();
    assert_eq!(baselines.len(), 1, "one baseline: {baselines:?}");

    // The newest transaction is always kept, so no change id is ever given out twice.
    let newest = db.log(&[]).last().unwrap()["id"].clone();
    let output = run(&db, "prune", &["--before", "now"]);
    assert!(output.status.success(), "{}", outcome(&output));
    assert_eq!(db.log(&[]).last().unwrap()["id"], newest);
    assert_ne!(db.log(&[]).last().unwrap()["op"], "snapshot");
}

#[test]
fn capture_with_retain_prunes_as_it_goes() {
    let db = fresh_db("retain");
    db.sql(SCHEMA);
    let mut workload = Workload::new(7);
    workload.run(&db, 20);
    db.capture_ok(&[]);
    workload.run(&db, 20);
    db.capture_ok(&[]);
    let before = db.log(&[]).len();
    // New caches hand freed pages back in place; one made before that (no auto-vacuum) is
    // rewritten once by its first prune.
    let auto_vacuum = || -> i64 {
        let connection = rusqlite::Connection::open(db.cache()).unwrap();
        connection
            .query_row("PRAGMA auto_vacuum", [], |row| row.get(0))
            .unwrap()
    };
    assert_eq!(auto_vacuum(), 2, "incremental");
    rusqlite::Connection::open(db.cache())
        .unwrap()
        .execute_batch("PRAGMA auto_vacuum = NONE; VACUUM")
        .unwrap();
    assert_eq!(auto_vacuum(), 0);
    std::thread::sleep(std::time::Duration::from_secs(2));
    db.sql(&workload.transaction());
    let output = db.capture_once(&["--retain", "1s"]);
    let said = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "{said}");
    assert!(said.contains("pruned the history before"), "{said}");
    assert!(said.contains("rewritten once"), "{said}");
    assert_eq!(auto_vacuum(), 2, "incremental from now on");
    let remaining = db.log(&[]);
    assert!(remaining.len() < before, "{} → {}", before, remaining.len());
    // What is left is the baseline and the last transaction; the cache still equals the source.
    let kinds: BTreeSet<&str> = remaining
        .iter()
        .map(|change| change["op"].as_str().unwrap())
        .collect();
    assert!(kinds.contains("snapshot"), "{kinds:?}");
    let cached = db.on_cache("at", &["--table", "customers", "--time", "now"]);
    let ids: BTreeSet<String> = cached
        .lines()
        .map(|line| {
            serde_json::from_str::<Json>(line).unwrap()["id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    let live: BTreeSet<String> = db
        .sql("SELECT id FROM customers")
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(ids, live);
    let bad = rowtrail(&[
        "capture".into(),
        "--source".into(),
        db.url(),
        "--cache".into(),
        db.cache().to_string_lossy().into_owned(),
        "--once".into(),
        "--retain".into(),
        "soon".into(),
    ]);
    assert_clean_failure(&bad, 2, "--retain");
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle.as_bytes())
}

/// Every byte of the cache and the files SQLite keeps beside it.
fn cache_bytes(db: &TestDb) -> Vec<u8> {
    let mut bytes = Vec::new();
    for entry in std::fs::read_dir(db.dir.path()).unwrap() {
        let entry = entry.unwrap();
        if entry.file_name().to_string_lossy().starts_with("cache.db") {
            bytes.extend(std::fs::read(entry.path()).unwrap());
        }
    }
    bytes
}

#[test]
fn forget_removes_a_record_and_its_story_from_every_byte_and_keeps_that_its_changes_happened() {
    let db = fresh_db("forget");
    db.sql(SCHEMA);
    db.sql(
        "INSERT INTO customers VALUES
            (7, 'SENTINEL-name-7', 'SENTINEL-7@x.io', repeat('SENTINEL-note ', 400)),
            (8, 'Bob', 'bob@x.io', 'keep me');
         INSERT INTO orders VALUES (70, 7, 'SENTINEL-status-70'), (80, 8, 'bob order');
         -- Neighbours on the same pages, so erased values leave free space among live rows.
         INSERT INTO customers SELECT g, 'other ' || g, g || '@x.io', 'short' FROM generate_series(100, 400) g;",
    );
    db.capture_ok(&[]);
    db.sql(
        "BEGIN;
         SELECT pg_logical_emit_message(true, 'rowtrail',
             '{\"user\": \"ann\", \"query\": \"UPDATE customers SET name = ''SENTINEL-in-sql''\"}');
         UPDATE customers SET name = 'SENTINEL-name-7b', email = 'SENTINEL-7b@x.io' WHERE id = 7;
         UPDATE customers SET name = 'Bobby' WHERE id = 8;
         COMMIT;",
    );
    db.sql("INSERT INTO orders VALUES (71, 7, 'SENTINEL-status-71'), (81, 8, 'second bob order')");
    db.sql("UPDATE orders SET status = 'SENTINEL-status-70b' WHERE id = 70");
    db.sql("DELETE FROM orders WHERE id = 71");
    db.sql(
        "INSERT INTO customers VALUES (50, 'SENTINEL-moved', 'm@x.io', 'x');
         UPDATE customers SET id = 51 WHERE id = 50;
         INSERT INTO customers VALUES (50, 'SENTINEL-reused', 'r@x.io', 'y');",
    );
    db.sql(
        "UPDATE customers SET notes = 'SENTINEL-notes-short' WHERE id = 7;
         UPDATE customers SET name = name || ' again' WHERE id BETWEEN 100 AND 400;",
    );
    db.capture_ok(&[]);
    assert!(
        contains(&cache_bytes(&db), "SENTINEL"),
        "the workload stored them"
    );

    let log_before = db.log(&[]);
    let bob_before = db.on_cache(
        "history",
        &["--table", "customers", "--key", r#"{"id": 8}"#],
    );
    let orders_of_bob = db.on_cache("at", &["--table", "orders", "--time", "now"]);

    let output = run(
        &db,
        "forget",
        &["--table", "customers", "--key", r#"{"id": 7}"#, "--related"],
    );
    assert!(output.status.success(), "{}", outcome(&output));
    let said = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        said.contains(
            "erased the values of 7 changes of 3 records (public.customers 1, public.orders 2)"
        ),
        "{said}"
    );
    assert!(said.contains("SQL text taken out of 1 context"), "{said}");
    // A key given to another record after the first moved away: forgetting the key erases both.
    let output = run(
        &db,
        "forget",
        &["--table", "customers", "--key", r#"{"id": 50}"#],
    );
    let said = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "{}", outcome(&output));
    assert!(
        said.contains("changes of 2 records (public.customers 2)"),
        "{said}"
    );

    let bytes = cache_bytes(&db);
    assert!(
        !contains(&bytes, "SENTINEL"),
        "an erased value is still in the cache's files"
    );
    assert!(contains(&bytes, "Bobby"), "other records' values stay");

    // Every change is still there: same ids, operations, times, transactions and context.
    let log_after = db.log(&[]);
    let outline = |log: &[Json]| -> Vec<String> {
        log.iter()
            .map(|change| {
                format!(
                    "{} {} {} {} {} {} {}",
                    change["id"],
                    change["table"],
                    change["op"],
                    change["key"],
                    change["xid"],
                    change["committed_at"],
                    change["context"]["user"]
                )
            })
            .collect()
    };
    assert_eq!(outline(&log_before), outline(&log_after));
    let erased: Vec<&Json> = log_after
        .iter()
        .filter(|change| {
            change["key"] == serde_json::json!({"id": "7"})
                || change["key"] == serde_json::json!({"id": "70"})
                || change["key"] == serde_json::json!({"id": "71"})
        })
        .collect();
    assert_eq!(erased.len(), 7);
    assert!(
        erased
            .iter()
            .any(|change| change["context"]["user"] == "ann")
    );
    for change in &erased {
        for image in ["before", "after"] {
            if let Some(row) = change[image].as_object() {
                assert!(row.len() <= 1, "only the key stays: {change}");
            }
        }
    }
    // Other records' history is unchanged, but for the SQL text of the transaction they shared
    // with the erased record: it quoted an erased value.
    assert_eq!(
        bob_before.replace(" query=UPDATE customers SET name = 'SENTINEL-in-sql'", ""),
        db.on_cache(
            "history",
            &["--table", "customers", "--key", r#"{"id": 8}"#]
        )
    );
    let bob_rows = |text: &str| -> Vec<String> {
        text.lines()
            .filter(|line| line.contains("bob"))
            .map(str::to_owned)
            .collect()
    };
    assert_eq!(
        bob_rows(&orders_of_bob),
        bob_rows(&db.on_cache("at", &["--table", "orders", "--time", "now"]))
    );
    // `show` says what happened to the values; nothing can put them back.
    let erased_id = erased[1]["id"].to_string();
    let shown = db.on_cache("show", &[&erased_id]);
    assert!(shown.contains("erased by rowtrail forget"), "{shown}");
    let undo = run(&db, "undo", &["--change", &erased_id]);
    assert_clean_failure(&undo, 2, "were erased on");
    let restore = run(
        &db,
        "restore",
        &[
            "--table",
            "customers",
            "--key",
            r#"{"id": 7}"#,
            "--time",
            "now",
        ],
    );
    assert_clean_failure(&restore, 2, "were erased on");

    // Bad input: an unknown record, a shared store.
    let unknown = run(
        &db,
        "forget",
        &["--table", "customers", "--key", r#"{"id": 999}"#],
    );
    assert_clean_failure(&unknown, 2, "no record");
}
