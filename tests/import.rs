//! `rowtrail import`: an audit store's history, imported, is the history capture stores from the
//! WAL for the same workload, change by change, allowing only for what the store lacks (WAL
//! positions, commit times, the context capture has no source for).

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly on unexpected values.

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use support::{
    TestDb, assert_clean_failure, fresh_db, log_json, rowtrail, rowtrail_command, wait_until,
};

/// Our own SQL for the PostgreSQL wiki's audit trigger, with its documented layout: the
/// `audit.logged_actions` table, and a trigger function that records `hstore(OLD.*)` /
/// `hstore(NEW.*)`, the changed fields of an update, and statement-level rows.
const AUDIT_TRIGGER: &str = include_str!("support/audit_trigger.sql");

/// Audits a table as the wiki's `audit.audit_table(t)` does: rows, queries, truncates.
fn audit(db: &TestDb, table: &str) {
    db.sql(&format!(
        "CREATE TRIGGER audit_trigger_row AFTER INSERT OR UPDATE OR DELETE ON {table}
             FOR EACH ROW EXECUTE PROCEDURE audit.if_modified_func('true');
         CREATE TRIGGER audit_trigger_stm AFTER TRUNCATE ON {table}
             FOR EACH STATEMENT EXECUTE PROCEDURE audit.if_modified_func('true');"
    ));
}

fn shop(label: &str) -> TestDb {
    let db = fresh_db(label);
    db.sql(AUDIT_TRIGGER);
    db.sql(
        "CREATE TABLE customers (id int PRIMARY KEY, name text, vip boolean, since timestamptz,
                                 profile jsonb, balance numeric(12,2), tags text[]);
         CREATE TABLE orders (id bigint PRIMARY KEY, customer_id int REFERENCES customers,
                              status text, note text, raw bytea);
         CREATE TABLE lines (order_id bigint, line int, sku text, PRIMARY KEY (order_id, line));",
    );
    for table in ["customers", "orders", "lines"] {
        audit(&db, table);
    }
    // The reference: capture from the WAL, its (empty) baseline taken before any change.
    db.capture_ok(&["--tables", "customers,orders,lines"]);
    db
}

/// Every type, NULLs, quotes, multi-row transactions, key changes, deletes, a truncate.
const WORKLOAD: &[&str] = &[
    "INSERT INTO customers VALUES (1, 'Ann', true, '2024-01-02 03:04:05+00', '{\"a\": [1, 2]}', 10.50, '{x,y}'),
                                  (2, 'O''Brien \"Bo\"', false, NULL, NULL, NULL, NULL)",
    "BEGIN; INSERT INTO orders VALUES (10, 1, 'new', NULL, '\\xdeadbeef'), (11, 2, 'new', 'a\nb', NULL);
            INSERT INTO lines VALUES (10, 1, 'A'), (10, 2, 'B'), (11, 1, 'C'); COMMIT",
    "UPDATE customers SET name = 'Ann B', balance = 11.25, profile = '{\"a\": [1, 2, 3]}' WHERE id = 1",
    "UPDATE orders SET status = 'paid', note = NULL WHERE id = 11",
    "BEGIN; UPDATE lines SET line = 3 WHERE order_id = 10 AND line = 2; DELETE FROM lines WHERE order_id = 11; COMMIT",
    "UPDATE customers SET vip = NULL, tags = '{}' WHERE id = 2",
    "DELETE FROM orders WHERE id = 11",
    "BEGIN; INSERT INTO customers VALUES (3, 'Cy', true, now(), '{}', 0, '{z}'); UPDATE customers SET name = 'Cy 2' WHERE id = 3; UPDATE customers SET name = 'Cy 3' WHERE id = 3; COMMIT",
    "TRUNCATE lines",
    "INSERT INTO lines VALUES (10, 9, 'Z')",
];

fn run_workload(db: &TestDb, statements: &[&str]) {
    for statement in statements {
        db.sql(statement);
    }
}

/// Fails with the first transaction where the two histories differ.
fn assert_same_history(imported: &Path, captured: &Path) {
    let (imported, captured) = (transactions(imported), transactions(captured));
    for (index, (one, two)) in imported.iter().zip(&captured).enumerate() {
        assert_eq!(one, two, "transaction {index} differs (imported, captured)");
    }
    assert_eq!(
        imported.len(),
        captured.len(),
        "transactions imported and captured"
    );
}

fn import_args(db: &TestDb, cache: &Path, extra: &[&str]) -> Vec<String> {
    let mut args = vec![
        "import".to_owned(),
        "--from".to_owned(),
        db.url(),
        "--format".to_owned(),
        "pg-audit-trigger".to_owned(),
        "--cache".to_owned(),
        cache.to_str().unwrap().to_owned(),
    ];
    args.extend(extra.iter().map(|arg| (*arg).to_owned()));
    args
}

fn import_ok(db: &TestDb, cache: &Path) -> String {
    let output = rowtrail(&import_args(db, cache, &[]));
    assert!(
        output.status.success(),
        "import failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stderr).unwrap()
}

/// The history as transactions (by xid, in order), each a sorted list of its changes without
/// the facts a store lacks: table, op, key, before, after, unavailable.
fn transactions(cache: &Path) -> Vec<(u64, Vec<String>)> {
    let mut by_tx: Vec<(u64, Vec<String>)> = Vec::new();
    for change in log_json(cache, &[]) {
        if change["op"] == "snapshot" || change["op"] == "ddl" {
            continue;
        }
        let xid = change["xid"].as_u64().unwrap();
        let text = serde_json::json!({
            "table": change["table"], "op": change["op"], "key": change["key"],
            "before": change["before"], "after": change["after"],
            "unavailable": change["unavailable"],
        })
        .to_string();
        match by_tx.last_mut() {
            Some((last, changes)) if *last == xid => changes.push(text),
            _ => by_tx.push((xid, vec![text])),
        }
    }
    for (_, changes) in &mut by_tx {
        changes.sort();
    }
    by_tx
}

#[test]
fn the_wiki_audit_trigger_imports_as_capture_stores_the_same_workload() {
    let db = shop("import_trigger");
    run_workload(&db, WORKLOAD);
    db.capture_ok(&["--tables", "customers,orders,lines"]);
    let imported: PathBuf = db.dir.path().join("imported.rowtrail");
    let said = import_ok(&db, &imported);
    assert!(
        said.contains("imported 18 changes in 10 transactions"),
        "{said}"
    );
    let captured = transactions(&db.cache());
    assert_eq!(captured.len(), 10, "{captured:?}");
    assert_same_history(&imported, &db.cache());
    // Who did it: the trigger's session facts are the changes' context.
    let log = log_json(&imported, &["--table", "orders"]);
    assert!(
        log[0]["context"]["client_query"]
            .as_str()
            .unwrap()
            .contains("INSERT INTO orders"),
        "{:?}",
        log[0]["context"]
    );
    // Types come from the catalog beside the store: the undo script is typed.
    let restore = rowtrail(&[
        "undo".to_owned(),
        "--cache".to_owned(),
        imported.to_str().unwrap().to_owned(),
        "--change".to_owned(),
        log_json(&imported, &["--table", "customers"])
            .iter()
            .find(|change| change["op"] == "update" && change["key"]["id"] == "1")
            .unwrap()["id"]
            .to_string(),
    ]);
    assert!(
        restore.status.success(),
        "{}",
        String::from_utf8_lossy(&restore.stderr)
    );
    let sql = String::from_utf8(restore.stdout).unwrap();
    assert!(sql.contains("'10.50'::numeric(12,2)"), "{sql}");
    // Run on the source, the script puts customer 1 back.
    db.sql(&sql);
    assert_eq!(
        db.sql("SELECT name, balance FROM customers WHERE id = 1")
            .trim(),
        "Ann|10.50"
    );
    // Importing again adds only the restore the script made, and then nothing.
    let again = import_ok(&db, &imported);
    assert!(
        again.contains("imported 1 changes in 1 transactions"),
        "{again}"
    );
    let restored = log_json(&imported, &["--table", "customers"]);
    let last = restored.last().unwrap();
    assert_eq!(
        (last["op"].as_str(), last["after"]["name"].as_str()),
        (Some("update"), Some("Ann"))
    );
    let nothing = import_ok(&db, &imported);
    assert!(
        nothing.contains("imported 0 changes in 0 transactions"),
        "{nothing}"
    );
    assert_eq!(transactions(&imported).len(), 11);
}

#[test]
fn a_followed_import_killed_and_started_again_holds_every_change_once() {
    let db = shop("import_follow");
    run_workload(&db, &WORKLOAD[..4]);
    let imported: PathBuf = db.dir.path().join("followed.rowtrail");
    let count = |cache: &Path| -> usize {
        if !cache.exists() {
            return 0;
        }
        let output = rowtrail(&[
            "log".to_owned(),
            "--cache".to_owned(),
            cache.to_str().unwrap().to_owned(),
            "--json".to_owned(),
            "--limit".to_owned(),
            "0".to_owned(),
        ]);
        String::from_utf8_lossy(&output.stdout).lines().count()
    };
    for round in 0..3 {
        let mut child = rowtrail_command()
            .args(import_args(&db, &imported, &["--follow"]))
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let before = count(&imported);
        for i in 0..20 {
            let id = 100 + round * 100 + i;
            db.sql(&format!(
                "BEGIN; INSERT INTO orders VALUES ({id}, 1, 'new', NULL, NULL);
                        UPDATE orders SET status = 'seen' WHERE id = {id}; COMMIT"
            ));
        }
        assert!(
            wait_until(Duration::from_secs(30), || count(&imported) > before + 10),
            "the followed import picked up new rows"
        );
        child.kill().unwrap();
        child.wait().unwrap();
    }
    run_workload(&db, &WORKLOAD[4..]);
    import_ok(&db, &imported);
    db.capture_ok(&["--tables", "customers,orders,lines"]);
    assert_same_history(&imported, &db.cache());
}

#[test]
fn bad_stores_and_rows_get_one_clear_line() {
    let db = fresh_db("import_bad");
    let cache = db.dir.path().join("bad.rowtrail");
    let none = rowtrail(&import_args(&db, &cache, &[]));
    assert_clean_failure(
        &none,
        2,
        "has no audit.logged_actions table of the pg-audit-trigger layout",
    );
    let unknown = rowtrail(&[
        "import".to_owned(),
        "--format".to_owned(),
        "oracle".to_owned(),
        "--cache".to_owned(),
        cache.to_str().unwrap().to_owned(),
    ]);
    assert_clean_failure(&unknown, 2, "unknown format \"oracle\"");
    db.sql(AUDIT_TRIGGER);
    db.sql("CREATE TABLE t (id int PRIMARY KEY, v text);");
    audit(&db, "t");
    db.sql("INSERT INTO t VALUES (1, 'a'); UPDATE t SET v = 'b' WHERE id = 1;");
    // A row-level entry without its row, as a broken or hand-edited store may hold.
    db.sql(
        "INSERT INTO audit.logged_actions (schema_name, table_name, relid, action_tstamp_tx,
             action_tstamp_stm, action_tstamp_clk, transaction_id, action, statement_only)
         SELECT 'public', 't', 't'::regclass, now(), now(), now(), txid_current(), 'I', false;",
    );
    db.sql("INSERT INTO t VALUES (2, 'c');");
    let stopped = rowtrail(&import_args(&db, &cache, &[]));
    assert_clean_failure(&stopped, 2, "row_data is NULL for a row-level change");
    let stderr = String::from_utf8_lossy(&stopped.stderr);
    assert!(stderr.contains("event_id 3"), "{stderr}");
    // What came before the bad row stays.
    let kept = log_json(&cache, &[]);
    assert_eq!(kept.len(), 2, "{kept:?}");
    let skipped = rowtrail(&import_args(&db, &cache, &["--on-error", "skip"]));
    assert!(skipped.status.success());
    let said = String::from_utf8_lossy(&skipped.stderr);
    assert!(said.contains("skipped 1 rows"), "{said}");
    let all = log_json(&cache, &[]);
    assert_eq!(all.len(), 3, "{all:?}");
    // A captured cache is not imported into, and an imported cache is not captured into.
    db.capture_ok(&[]);
    let into_captured = rowtrail(&import_args(&db, &db.cache(), &[]));
    assert_clean_failure(&into_captured, 2, "is fed by capture, not by an import");
    let imported = db.dir.path().join("imported.rowtrail");
    assert!(
        rowtrail(&import_args(&db, &imported, &["--on-error", "skip"]))
            .status
            .success()
    );
    let capture_into_import = rowtrail(&[
        "capture".to_owned(),
        "--source".to_owned(),
        db.url(),
        "--cache".to_owned(),
        imported.to_str().unwrap().to_owned(),
        "--once".to_owned(),
        "--slot".to_owned(),
        format!("{}_2", db.name),
    ]);
    assert_clean_failure(
        &capture_into_import,
        2,
        "holds an import from an audit store",
    );
}

/// An import killed in the middle of a long history, again and again, then run to the end,
/// holds every change once: where it resumes is committed with each batch of changes.
#[test]
fn an_import_killed_mid_way_resumes_exactly_where_it_stopped() {
    let db = shop("import_kill");
    db.sql(
        "DO $$ BEGIN
           FOR i IN 1..3000 LOOP
             INSERT INTO orders VALUES (i, NULL, 'new', NULL, NULL);
             IF i % 3 = 0 THEN UPDATE orders SET status = 'paid' WHERE id = i - 1; END IF;
             COMMIT;
           END LOOP;
         END $$;",
    );
    db.capture_ok(&["--tables", "customers,orders,lines"]);
    let imported: PathBuf = db.dir.path().join("killed.rowtrail");
    let mut kills = 0;
    // Longer and longer runs, so some are killed half done however fast this build is.
    for delay in [150, 300, 450, 600, 900, 1500, 2500, 4000] {
        let mut child = rowtrail_command()
            .args(import_args(&db, &imported, &[]))
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay));
        if child.try_wait().unwrap().is_some() {
            break;
        } else {
            child.kill().unwrap();
            child.wait().unwrap();
            let stored: i64 = rusqlite::Connection::open(&imported)
                .and_then(|cache| {
                    cache.query_row("SELECT count(*) FROM transactions", [], |row| row.get(0))
                })
                .unwrap_or(0);
            if (1..3000).contains(&stored) {
                kills += 1;
            }
        }
        child.wait().unwrap();
    }
    import_ok(&db, &imported);
    assert!(kills >= 1, "at least one import was killed half done");
    assert_same_history(&imported, &db.cache());
    assert_eq!(transactions(&imported).len(), 3000);
}

/// A psql session kept open, to hold a transaction while others commit.
struct Session {
    child: std::process::Child,
    marks: PathBuf,
    count: usize,
}

impl Session {
    fn open(db: &TestDb) -> Self {
        let child = std::process::Command::new("psql")
            .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", &db.url()])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
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
    fn run(&mut self, sql: &str) {
        use std::io::Write;
        self.count += 1;
        let mark = format!("{}-{}", self.marks.display(), self.count);
        let stdin = self.child.stdin.as_mut().unwrap();
        writeln!(stdin, "{sql}\n\\! touch {mark}").unwrap();
        stdin.flush().unwrap();
        assert!(
            wait_until(Duration::from_secs(30), || Path::new(&mark).exists()),
            "psql ran {sql}"
        );
    }
}

/// A transaction that commits while an older one is still running is imported in the same round
/// as the ones that committed before it: two transactions that changed the same row keep their
/// order whatever their ids, and a store's ignored columns are unavailable, not gone; a column
/// dropped inside a transaction keeps the values the rows before the drop had.
#[test]
fn order_ignored_columns_and_a_column_dropped_mid_transaction() {
    let db = shop("import_order");
    db.sql("INSERT INTO customers (id, name) VALUES (1, 'start')");
    let mut later = Session::open(&db);
    let mut open = Session::open(&db);
    // The second writer takes its transaction id first.
    later.run("BEGIN; INSERT INTO lines VALUES (1, 1, 'x');");
    // An older transaction stays open through the import.
    open.run("BEGIN; SELECT txid_current();");
    // The first writer, with a newer id, changes the row and commits.
    db.sql("UPDATE customers SET name = 'first' WHERE id = 1");
    later.run("UPDATE customers SET name = 'second' WHERE id = 1; COMMIT;");
    let imported: PathBuf = db.dir.path().join("order.rowtrail");
    import_ok(&db, &imported);
    let names: Vec<String> = log_json(&imported, &["--table", "customers"])
        .iter()
        .map(|change| change["after"]["name"].as_str().unwrap_or("").to_owned())
        .collect();
    assert_eq!(names, ["start", "first", "second"]);
    open.run("COMMIT;");
    // Ignored columns, and a drop inside a transaction.
    db.sql(
        "CREATE TABLE notes (id int PRIMARY KEY, body text, secret text, old text);
         CREATE TRIGGER audit_trigger_row AFTER INSERT OR UPDATE OR DELETE ON notes
             FOR EACH ROW EXECUTE PROCEDURE audit.if_modified_func('true', '{secret}');
         INSERT INTO notes VALUES (1, 'a', 's1', 'o1');
         BEGIN; UPDATE notes SET body = 'b' WHERE id = 1; ALTER TABLE notes DROP COLUMN old;
                UPDATE notes SET body = 'c' WHERE id = 1; COMMIT;",
    );
    import_ok(&db, &imported);
    let mut notes = log_json(&imported, &["--table", "notes"]);
    // The drop is noticed, as capture notices a shape change it has no record of.
    let noticed: Vec<serde_json::Value> = notes
        .iter()
        .filter(|change| change["op"] == "ddl")
        .cloned()
        .collect();
    assert_eq!(noticed.len(), 1, "{notes:?}");
    assert_eq!(noticed[0]["ddl"]["edits"][0], "dropped column old");
    notes.retain(|change| change["op"] != "ddl");
    assert_eq!(notes.len(), 3, "{notes:?}");
    assert_eq!(notes[0]["after"]["old"], "o1");
    assert_eq!(notes[1]["before"]["old"], "o1", "{:?}", notes[1]);
    assert_eq!(notes[1]["after"]["body"], "b");
    assert_eq!(notes[2]["after"]["body"], "c");
    assert!(notes[2]["after"].get("old").is_none(), "{:?}", notes[2]);
    for note in &notes {
        assert_eq!(note["key"]["id"], "1");
        assert!(
            note["unavailable"]
                .as_array()
                .unwrap()
                .iter()
                .any(|column| column == "secret"),
            "{note:?}"
        );
    }
    drop(later.child.stdin.take());
    drop(open.child.stdin.take());
    later.child.wait().unwrap();
    open.child.wait().unwrap();
    // Capture agrees on everything but the store's ignored and dropped columns.
    db.capture_ok(&["--tables", "customers,orders,lines"]);
}
