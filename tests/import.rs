//! `rowtrail import`: an audit store's history, imported, is the history capture stores from the
//! WAL for the same workload, change by change, allowing only for what the store lacks (WAL
//! positions, commit times, the context capture has no source for).

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly on unexpected values.

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use support::{
    OpenSession, TestDb, assert_clean_failure, fresh_db, log_json, rowtrail, rowtrail_command,
    wait_until,
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

/// Our own SQL for what Bemi's worker writes (and the Debezium events it reads).
const BEMI: &str = include_str!("support/bemi.sql");
/// Our own SQL for supa_audit's documented layout.
const SUPA_AUDIT: &str = include_str!("support/supa_audit.sql");
/// Our own SQL for what PaperTrail writes (its `versions`, YAML objects and changes).
const PAPER_TRAIL: &str = include_str!("support/paper_trail.sql");
/// Our own SQL for pgMemento 0.7's documented layout (its log tables and triggers).
const PGMEMENTO: &str = include_str!("support/pgmemento.sql");

/// The audit stores a test database can be given.
#[derive(Clone, Copy, PartialEq)]
enum Kept {
    Trigger,
    Bemi,
    SupaAudit,
    PaperTrail,
    PgMemento,
}

fn shop(label: &str) -> TestDb {
    shop_with(label, Kept::Trigger)
}

/// Three tables of every type, kept by `kept`, with capture's baseline taken before any change.
fn shop_with(label: &str, kept: Kept) -> TestDb {
    let db = fresh_db(label);
    db.sql(match kept {
        Kept::Trigger => AUDIT_TRIGGER,
        Kept::Bemi => BEMI,
        Kept::SupaAudit => SUPA_AUDIT,
        Kept::PaperTrail => PAPER_TRAIL,
        Kept::PgMemento => PGMEMENTO,
    });
    db.sql(
        "CREATE TABLE customers (id int PRIMARY KEY, name text, vip boolean, since timestamptz,
                                 profile jsonb, balance numeric(12,2), tags text[]);
         CREATE TABLE orders (id bigint PRIMARY KEY, customer_id int REFERENCES customers,
                              status text, note text, raw bytea);
         CREATE TABLE lines (order_id bigint, line int, sku text, PRIMARY KEY (order_id, line));",
    );
    for table in ["customers", "orders", "lines"] {
        match kept {
            Kept::Trigger => audit(&db, table),
            Kept::Bemi => drop(db.sql(&format!(
                "CREATE TRIGGER bemi AFTER INSERT OR UPDATE OR DELETE ON {table}
                     FOR EACH ROW EXECUTE FUNCTION bemi_capture();
                 CREATE TRIGGER bemi_truncate AFTER TRUNCATE ON {table}
                     FOR EACH STATEMENT EXECUTE FUNCTION bemi_capture();"
            ))),
            Kept::SupaAudit => drop(db.sql(&format!("SELECT audit.enable_tracking('{table}')"))),
            // orders logs new data too; the others only old data (pgMemento's default).
            Kept::PgMemento => drop(db.sql(&format!(
                "SELECT pgmemento.create_table_audit('{table}', 'public', 'pgmemento_audit_id', true, {})",
                table == "orders"
            ))),
            // PaperTrail needs an id column: lines has none.
            Kept::PaperTrail if table == "lines" => {}
            Kept::PaperTrail => drop(db.sql(&format!(
                "CREATE TRIGGER paper_trail AFTER INSERT OR UPDATE OR DELETE ON {table}
                     FOR EACH ROW EXECUTE FUNCTION paper_trail_version();"
            ))),
        }
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
    assert_same_history_lacking(imported, captured, &Lacks::default());
}

fn import_args(db: &TestDb, cache: &Path, extra: &[&str]) -> Vec<String> {
    import_args_as("pg-audit-trigger", &db.url(), cache, extra)
}

fn import_args_as(format: &str, from: &str, cache: &Path, extra: &[&str]) -> Vec<String> {
    let mut args = vec![
        "import".to_owned(),
        "--from".to_owned(),
        from.to_owned(),
        "--format".to_owned(),
        format.to_owned(),
        "--cache".to_owned(),
        cache.to_str().unwrap().to_owned(),
    ];
    args.extend(extra.iter().map(|arg| (*arg).to_owned()));
    args
}

fn import_ok(db: &TestDb, cache: &Path) -> String {
    import_ok_as("pg-audit-trigger", &db.url(), cache)
}

fn import_ok_as(format: &str, from: &str, cache: &Path) -> String {
    let output = rowtrail(&import_args_as(format, from, cache, &[]));
    assert!(
        output.status.success(),
        "import failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stderr).unwrap()
}

/// The history as transactions (in order, with their xids), each a sorted list of its changes
/// without the facts a store lacks: table, op, key, before, after, unavailable.
fn transactions(cache: &Path) -> Vec<(Option<u64>, Vec<String>)> {
    transactions_lacking(cache, &Lacks::default())
}

/// What a store does not record, left out of a comparison.
#[derive(Default)]
struct Lacks {
    /// Transaction ids.
    xids: bool,
    /// The key of these tables (no catalog, no id column).
    keys_of: &'static [&'static str],
    /// The old rows of these tables (no key to tell Debezium's fillers from values).
    before_of: &'static [&'static str],
    /// The store keeps only these tables (empty: all).
    only: &'static [&'static str],
}

fn transactions_lacking(cache: &Path, lacks: &Lacks) -> Vec<(Option<u64>, Vec<String>)> {
    let mut by_tx: Vec<(String, Option<u64>, Vec<String>)> = Vec::new();
    for change in log_json(cache, &[]) {
        if change["op"] == "snapshot" || change["op"] == "ddl" {
            continue;
        }
        let commit = change["commit_lsn"].as_str().unwrap().to_owned();
        let xid = change["xid"].as_u64().filter(|_| !lacks.xids);
        let table = change["table"].as_str().unwrap();
        if !lacks.only.is_empty() && !lacks.only.contains(&table) {
            continue;
        }
        let key = if lacks.keys_of.contains(&table) {
            serde_json::Value::Null
        } else {
            change["key"].clone()
        };
        let before = if lacks.before_of.contains(&table) {
            serde_json::Value::Null
        } else {
            change["before"].clone()
        };
        let text = serde_json::json!({
            "table": change["table"], "op": change["op"], "key": key,
            "before": before, "after": change["after"],
            "unavailable": change["unavailable"],
        })
        .to_string();
        match by_tx.last_mut() {
            Some((last, _, changes)) if *last == commit => changes.push(text),
            _ => by_tx.push((commit, xid, vec![text])),
        }
    }
    by_tx
        .into_iter()
        .map(|(_, xid, mut changes)| {
            changes.sort();
            (xid, changes)
        })
        .collect()
}

/// Fails with the first transaction where the two histories differ, leaving out what the
/// imported store lacks.
fn assert_same_history_lacking(imported: &Path, captured: &Path, lacks: &Lacks) {
    let imported = transactions_lacking(imported, lacks);
    let captured = transactions_lacking(captured, lacks);
    for (index, (one, two)) in imported.iter().zip(&captured).enumerate() {
        assert_eq!(one, two, "transaction {index} differs (imported, captured)");
    }
    assert_eq!(
        imported.len(),
        captured.len(),
        "transactions imported and captured"
    );
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
    follow_killed_and_restarted(Kept::Trigger, "pg-audit-trigger");
}

#[test]
fn a_followed_bemi_import_killed_and_started_again_holds_every_change_once() {
    follow_killed_and_restarted(Kept::Bemi, "bemi");
}

#[test]
fn a_followed_pgmemento_import_killed_and_started_again_holds_every_change_once() {
    follow_killed_and_restarted(Kept::PgMemento, "pgmemento");
}

#[test]
fn a_followed_supa_audit_import_killed_and_started_again_holds_every_change_once() {
    follow_killed_and_restarted(Kept::SupaAudit, "supa-audit");
}

/// A file of Debezium events followed as it grows (as a Kafka consumer writes it), the import
/// killed and started again.
#[test]
fn a_followed_debezium_file_killed_and_started_again_holds_every_change_once() {
    follow_killed_and_restarted(Kept::Bemi, "debezium");
}

/// Follows the store while transactions commit, killed three times and started again, then
/// imports the rest once: the history equals capture's.
fn follow_killed_and_restarted(kept: Kept, format: &str) {
    let db = shop_with(&format!("import_follow_{}", format.replace('-', "_")), kept);
    run_workload(&db, &WORKLOAD[..4]);
    let imported: PathBuf = db.dir.path().join("followed.rowtrail");
    // Debezium: the events written so far, appended to a file the import follows.
    let events = db.dir.path().join("events.jsonl");
    let mut exported = 0i64;
    let mut export = || {
        if format != "debezium" {
            return;
        }
        let lines = db.sql(&format!(
            "SELECT jsonb_build_object('schema', debezium_schema(rel), 'payload', event)::text
             FROM debezium_events WHERE n > {exported} ORDER BY n"
        ));
        exported = db
            .sql("SELECT coalesce(max(n), 0) FROM debezium_events")
            .trim()
            .parse()
            .unwrap();
        use std::io::Write;
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&events)
            .unwrap();
        for line in lines.lines() {
            writeln!(file, "{line}").unwrap();
        }
    };
    export();
    let from = if format == "debezium" {
        events.to_str().unwrap().to_owned()
    } else {
        db.url()
    };
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
            .args(import_args_as(format, &from, &imported, &["--follow"]))
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
            if i % 5 == 4 {
                export();
            }
        }
        assert!(
            wait_until(Duration::from_secs(30), || count(&imported) > before + 10),
            "the followed import picked up new rows"
        );
        child.kill().unwrap();
        child.wait().unwrap();
    }
    run_workload(&db, &WORKLOAD[4..]);
    export();
    import_ok_as(format, &from, &imported);
    db.capture_ok(&["--tables", "customers,orders,lines"]);
    let lacks = match kept {
        Kept::SupaAudit => Lacks {
            xids: true,
            ..Lacks::default()
        },
        _ if format == "debezium" => Lacks {
            xids: false,
            keys_of: &["lines"],
            before_of: &["lines"],
            ..Lacks::default()
        },
        _ => Lacks::default(),
    };
    assert_same_history_lacking(&imported, &db.cache(), &lacks);
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
    let stored = || -> i64 {
        // Read-only: a file not there yet is not created by looking.
        rusqlite::Connection::open_with_flags(&imported, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .and_then(|cache| {
                cache.query_row("SELECT count(*) FROM transactions", [], |row| row.get(0))
            })
            .unwrap_or(0)
    };
    // Each run is killed as soon as it has committed a batch more than the run before (the
    // file is watched every few milliseconds), so runs die half done however fast this build is.
    for _ in 0..4 {
        let before = stored();
        let mut child = rowtrail_command()
            .args(import_args(&db, &imported, &[]))
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let exited = loop {
            if child.try_wait().unwrap().is_some() {
                break true;
            }
            let now = stored();
            if now > before && now < 3000 {
                child.kill().unwrap();
                child.wait().unwrap();
                kills += 1;
                break false;
            }
            std::thread::sleep(Duration::from_millis(2));
        };
        if exited {
            break;
        }
    }
    import_ok(&db, &imported);
    assert!(kills >= 1, "at least one import was killed half done");
    assert_same_history(&imported, &db.cache());
    assert_eq!(transactions(&imported).len(), 3000);
}

/// A transaction that commits while an older one is still running is imported in the same round
/// as the ones that committed before it: two transactions that changed the same row keep their
/// order whatever their ids, and a store's ignored columns are unavailable, not gone; a column
/// dropped inside a transaction keeps the values the rows before the drop had.
#[test]
fn order_ignored_columns_and_a_column_dropped_mid_transaction() {
    let db = shop("import_order");
    db.sql("INSERT INTO customers (id, name) VALUES (1, 'start')");
    let mut later = OpenSession::open(&db);
    let mut open = OpenSession::open(&db);
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
    later.close();
    open.close();
    // Capture agrees on everything but the store's ignored and dropped columns.
    db.capture_ok(&["--tables", "customers,orders,lines"]);
}

/// Bemi's `changes`, filled as its worker fills it (values in Debezium's encoding, before-images
/// only where pgoutput sends them), imports as capture stores the same workload, with the
/// application's context.
#[test]
fn bemis_changes_import_as_capture_stores_the_same_workload() {
    let db = shop_with("import_bemi", Kept::Bemi);
    run_workload(&db, WORKLOAD);
    db.sql(
        "BEGIN; SET LOCAL bemi.context = '{\"user\": \"ann\", \"endpoint\": \"PUT /orders\"}';
                UPDATE orders SET status = 'sent' WHERE id = 10; COMMIT",
    );
    db.capture_ok(&["--tables", "customers,orders,lines"]);
    let imported: PathBuf = db.dir.path().join("bemi.rowtrail");
    let said = import_ok_as("bemi", &db.url(), &imported);
    assert!(
        said.contains("imported 19 changes in 11 transactions"),
        "{said}"
    );
    assert_same_history(&imported, &db.cache());
    let last = log_json(&imported, &["--table", "orders"]).pop().unwrap();
    assert_eq!(last["context"]["user"], "ann", "{last:?}");
    // Types come from the catalog beside the store: the undo script is typed, and puts the
    // customer back when run.
    let update = log_json(&imported, &["--table", "customers"])
        .into_iter()
        .find(|change| change["op"] == "update" && change["key"]["id"] == "1")
        .unwrap();
    let restore = rowtrail(&[
        "undo".to_owned(),
        "--cache".to_owned(),
        imported.to_str().unwrap().to_owned(),
        "--change".to_owned(),
        update["id"].to_string(),
    ]);
    assert!(
        restore.status.success(),
        "{}",
        String::from_utf8_lossy(&restore.stderr)
    );
    let sql = String::from_utf8(restore.stdout).unwrap();
    assert!(sql.contains("'10.50'::numeric(12,2)"), "{sql}");
    db.sql(&sql);
    assert_eq!(
        db.sql("SELECT name, balance, profile FROM customers WHERE id = 1")
            .trim(),
        "Ann|10.50|{\"a\": [1, 2]}"
    );
    // Again: only the restore is new.
    let again = import_ok_as("bemi", &db.url(), &imported);
    assert!(
        again.contains("imported 1 changes in 1 transactions"),
        "{again}"
    );
    let nothing = import_ok_as("bemi", &db.url(), &imported);
    assert!(
        nothing.contains("imported 0 changes in 0 transactions"),
        "{nothing}"
    );
}

/// Debezium's events, with their schema part from a file and without it from standard input,
/// import as capture stores the same workload; the types come from the schema part.
#[test]
fn debezium_events_import_as_capture_stores_the_same_workload() {
    let db = shop_with("import_debezium", Kept::Bemi);
    run_workload(&db, WORKLOAD);
    db.capture_ok(&["--tables", "customers,orders,lines"]);
    let with_schema = db.sql(
        "SELECT jsonb_build_object('schema', debezium_schema(rel), 'payload', event)::text
         FROM debezium_events ORDER BY n",
    );
    let file = db.dir.path().join("events.jsonl");
    // A tombstone after the delete, as Kafka keeps them, and a heartbeat.
    let mut lines: Vec<&str> = with_schema.lines().collect();
    lines.insert(3, "null");
    lines.insert(5, r#"{"ts_ms": 1704164645000}"#);
    std::fs::write(&file, lines.join("\n") + "\n").unwrap();
    let imported: PathBuf = db.dir.path().join("debezium.rowtrail");
    let said = import_ok_as("debezium", file.to_str().unwrap(), &imported);
    assert!(
        said.contains("imported 18 changes in 10 transactions"),
        "{said}"
    );
    // Without the catalog, a table's key is its id column: lines has none, so its old rows
    // keep Debezium's fillers (nulls outside the key) where capture knows the values.
    let lacks = Lacks {
        xids: false,
        keys_of: &["lines"],
        before_of: &["lines"],
        ..Lacks::default()
    };
    assert_same_history_lacking(&imported, &db.cache(), &lacks);
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
    let sql = String::from_utf8(restore.stdout).unwrap();
    assert!(sql.contains("'10.50'::numeric"), "{sql}");
    // The same file again: everything is already there.
    let again = import_ok_as("debezium", file.to_str().unwrap(), &imported);
    assert!(
        again.contains("imported 0 changes in 0 transactions"),
        "{again}"
    );
    // Without the schema part, from standard input: the same changes, values as sent.
    let payloads = db.sql("SELECT event::text FROM debezium_events ORDER BY n");
    let piped: PathBuf = db.dir.path().join("piped.rowtrail");
    let mut child = rowtrail_command()
        .args(import_args_as("debezium", "-", &piped, &[]))
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(payloads.as_bytes()).unwrap();
    }
    let output = child.wait_with_output().unwrap();
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{said}");
    assert!(
        said.contains("imported 18 changes in 10 transactions"),
        "{said}"
    );
    let orders = log_json(&piped, &["--table", "orders"]);
    assert_eq!(orders[0]["after"]["status"], "new");
    assert_eq!(orders[0]["key"]["id"], "10");
    // Without the schema part, with --catalog: keys (lines' too) and types from the database,
    // so the history is capture's, change by change.
    let payload_file = db.dir.path().join("payloads.jsonl");
    std::fs::write(&payload_file, &payloads).unwrap();
    let cataloged: PathBuf = db.dir.path().join("cataloged.rowtrail");
    let output = rowtrail(&import_args_as(
        "debezium",
        payload_file.to_str().unwrap(),
        &cataloged,
        &["--catalog", &db.url()],
    ));
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{said}");
    assert_same_history(&cataloged, &db.cache());
    // --catalog is for events only.
    let refused = rowtrail(&import_args_as(
        "bemi",
        &db.url(),
        &db.dir.path().join("refused.rowtrail"),
        &["--catalog", &db.url()],
    ));
    assert_clean_failure(&refused, 2, "--catalog is for debezium");
}

/// supa_audit's `record_version` imports as capture stores the same workload; it keeps no
/// transaction ids, so those are left out of the comparison.
#[test]
fn supa_audit_imports_as_capture_stores_the_same_workload() {
    let db = shop_with("import_supa", Kept::SupaAudit);
    run_workload(&db, WORKLOAD);
    db.capture_ok(&["--tables", "customers,orders,lines"]);
    let imported: PathBuf = db.dir.path().join("supa.rowtrail");
    let said = import_ok_as("supa-audit", &db.url(), &imported);
    assert!(
        said.contains("imported 18 changes in 10 transactions"),
        "{said}"
    );
    let lacks = Lacks {
        xids: true,
        ..Lacks::default()
    };
    assert_same_history_lacking(&imported, &db.cache(), &lacks);
}

/// pgMemento's log imports as capture stores the same workload: rows rebuilt from the changed
/// columns an UPDATE keeps, the later history and the table as it is now (an INSERT's row too,
/// where the table logs no new data), with the real transaction ids and who as the context.
#[test]
fn pgmementos_log_imports_as_capture_stores_the_same_workload() {
    let db = shop_with("import_pgmemento", Kept::PgMemento);
    db.sql("SET pgmemento.session_info = '{\"client_user\": \"ann\"}'");
    run_workload(&db, WORKLOAD);
    db.capture_ok(&["--tables", "customers,orders,lines"]);
    let imported: PathBuf = db.dir.path().join("pgmemento.rowtrail");
    let said = import_ok_as("pgmemento", &db.url(), &imported);
    assert!(
        said.contains("imported 18 changes in 10 transactions"),
        "{said}"
    );
    assert_same_history(&imported, &db.cache());
    let first = &log_json(&imported, &["--table", "customers"])[0];
    assert_eq!(first["context"]["user_name"], "postgres", "{first}");
    // Found by a look at the database, with its rows per table.
    let spec = rowtrail::capture::ConnectionSpec::resolve(
        &db.url(),
        &rowtrail::capture::conninfo::ProcessEnvironment,
    )
    .unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let stores = runtime.block_on(rowtrail::import::detect(&spec)).unwrap().1;
    let found = stores
        .iter()
        .find(|store| store.format == rowtrail::import::AuditFormat::PgMemento)
        .expect("the pgMemento store is found");
    assert_eq!(found.rows(), 19, "{:?}", found.tables);
    // A role that may read pgMemento's tables but not the audited ones' history elsewhere: the
    // store it may not read is listed with why, the others stay importable.
    db.sql(
        "CREATE ROLE limited LOGIN PASSWORD 'limited-pw';
         GRANT USAGE ON SCHEMA pgmemento TO limited;
         GRANT SELECT ON pgmemento.table_event_log, pgmemento.transaction_log TO limited;",
    );
    let url = db.url();
    let limited_url = format!(
        "postgres://limited:limited-pw@{}",
        &url[url.find('@').unwrap() + 1..]
    );
    let spec = rowtrail::capture::ConnectionSpec::resolve(
        &limited_url,
        &rowtrail::capture::conninfo::ProcessEnvironment,
    )
    .unwrap();
    let stores = runtime.block_on(rowtrail::import::detect(&spec)).unwrap().1;
    let unreadable = stores
        .iter()
        .find(|store| store.format == rowtrail::import::AuditFormat::PgMemento)
        .and_then(|store| store.unreadable.clone())
        .expect("the store it may not read is listed, with why");
    assert!(unreadable.contains("GRANT SELECT"), "{unreadable}");
    // A row whose event is not a change pgMemento logs: its row and field, or skipped.
    db.sql("INSERT INTO customers (id, name) VALUES (40, 'x')");
    db.sql(
        "UPDATE pgmemento.table_event_log SET op_id = 42
         WHERE id = (SELECT max(id) FROM pgmemento.table_event_log)",
    );
    db.sql("INSERT INTO customers (id, name) VALUES (41, 'y')");
    let stopped = rowtrail(&import_args_as("pgmemento", &db.url(), &imported, &[]));
    assert_clean_failure(&stopped, 2, "op_id of its event is 42");
    let skipped = rowtrail(&import_args_as(
        "pgmemento",
        &db.url(),
        &imported,
        &["--on-error", "skip"],
    ));
    let said = String::from_utf8_lossy(&skipped.stderr);
    assert!(
        said.contains("imported 1 changes") && said.contains("skipped 1 rows"),
        "{said}"
    );
}

/// A transaction that holds a low record_version id commits after higher ids were imported: the
/// next import takes it, once; a rolled-back id is not waited for forever.
#[test]
fn supa_audit_rows_committed_late_are_imported_once() {
    let db = shop_with("import_supa_late", Kept::SupaAudit);
    db.sql("INSERT INTO customers (id, name) VALUES (1, 'start')");
    let mut late = OpenSession::open(&db);
    late.run("BEGIN; INSERT INTO orders (id, status) VALUES (1, 'late');");
    db.sql("INSERT INTO orders (id, status) VALUES (2, 'early')");
    db.sql("BEGIN; INSERT INTO orders (id, status) VALUES (3, 'never'); ROLLBACK");
    db.sql("INSERT INTO orders (id, status) VALUES (4, 'after')");
    let imported: PathBuf = db.dir.path().join("late.rowtrail");
    import_ok_as("supa-audit", &db.url(), &imported);
    let statuses = |cache: &Path| -> Vec<String> {
        log_json(cache, &["--table", "orders"])
            .iter()
            .map(|change| change["after"]["status"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(statuses(&imported), ["early", "after"]);
    late.run("COMMIT;");
    import_ok_as("supa-audit", &db.url(), &imported);
    assert_eq!(statuses(&imported), ["early", "after", "late"]);
    db.sql("INSERT INTO orders (id, status) VALUES (5, 'last')");
    import_ok_as("supa-audit", &db.url(), &imported);
    import_ok_as("supa-audit", &db.url(), &imported);
    assert_eq!(statuses(&imported), ["early", "after", "late", "last"]);
    let cursor: String = rusqlite::Connection::open(&imported)
        .unwrap()
        .query_row("SELECT cursor FROM import_state", [], |row| row.get(0))
        .unwrap();
    assert!(
        cursor.contains("\"holes\":[]"),
        "the rolled-back id is forgotten: {cursor}"
    );
    late.close();
}

/// Each new format's bad input: one clear line naming the row or line and the field; with
/// --on-error skip the rest is imported and the skipped rows counted.
#[test]
fn bad_rows_of_every_format_get_one_clear_line() {
    // Bemi: an operation it does not write.
    let db = shop_with("import_bad_formats", Kept::Bemi);
    db.sql("INSERT INTO customers (id, name) VALUES (1, 'a')");
    db.sql("ALTER TABLE changes DROP CONSTRAINT changes_operation_check");
    db.sql("UPDATE changes SET operation = 'UPSERT'");
    db.sql("INSERT INTO customers (id, name) VALUES (2, 'b')");
    let cache = db.dir.path().join("bemi.rowtrail");
    let stopped = rowtrail(&import_args_as("bemi", &db.url(), &cache, &[]));
    assert_clean_failure(&stopped, 2, "operation is \"UPSERT\"");
    let skipped = rowtrail(&import_args_as(
        "bemi",
        &db.url(),
        &cache,
        &["--on-error", "skip"],
    ));
    let said = String::from_utf8_lossy(&skipped.stderr);
    assert!(skipped.status.success(), "{said}");
    assert!(
        said.contains("imported 1 changes") && said.contains("skipped 1 rows"),
        "{said}"
    );
    // Debezium: a line that is not JSON, and an unknown op.
    let file = db.dir.path().join("bad.jsonl");
    let good = db.sql("SELECT event::text FROM debezium_events ORDER BY n");
    std::fs::write(
        &file,
        format!(
            "{}\n{{not json\n{{\"op\":\"x\",\"source\":{{\"schema\":\"public\",\"table\":\"t\",\"ts_ms\":1}}}}\n",
            good.trim()
        ),
    )
    .unwrap();
    let events = db.dir.path().join("events.rowtrail");
    let stopped = rowtrail(&import_args_as(
        "debezium",
        file.to_str().unwrap(),
        &events,
        &[],
    ));
    assert_clean_failure(&stopped, 2, "line 3: the line is not JSON");
    // The first transaction stays; the second was still open at the bad line, which may have
    // been part of it, so it waits for a run that reads past the line.
    assert_eq!(log_json(&events, &[]).len(), 1, "what came before stays");
    let skipped = rowtrail(&import_args_as(
        "debezium",
        file.to_str().unwrap(),
        &events,
        &["--on-error", "skip"],
    ));
    let said = String::from_utf8_lossy(&skipped.stderr);
    assert!(said.contains("skipped 2 rows"), "{said}");
    assert!(said.contains("line 4: op is \"x\""), "{said}");
    let missing = rowtrail(&import_args_as("debezium", "/no/such/file", &events, &[]));
    assert_clean_failure(&missing, 2, "cannot read /no/such/file");
    let database = rowtrail(&import_args_as("debezium", &db.url(), &events, &[]));
    assert_clean_failure(&database, 2, "debezium reads a file of events");
    // supa_audit: no table, then a table of another shape.
    let none = rowtrail(&import_args_as(
        "supa-audit",
        &db.url(),
        &db.dir.path().join("supa.rowtrail"),
        &[],
    ));
    assert_clean_failure(
        &none,
        2,
        "has no audit.record_version table of the supa-audit layout",
    );
    db.sql("CREATE SCHEMA audit; CREATE TABLE audit.record_version (id bigint, op text)");
    let shape = rowtrail(&import_args_as(
        "supa-audit",
        &db.url(),
        &db.dir.path().join("supa.rowtrail"),
        &[],
    ));
    assert_clean_failure(&shape, 2, "it has no column ts");
}

/// PaperTrail's `versions`, written as its YAML serializer writes them, import as capture stores
/// the same workload for the tables it versions (it needs an id column, so lines is not), with
/// whodunnit as the context; a model whose table Rails' naming does not find is named with
/// --table-of, and a Ruby object it cannot read is an error of its row.
#[test]
fn paper_trails_versions_import_as_capture_stores_the_same_workload() {
    let db = shop_with("import_paper_trail", Kept::PaperTrail);
    run_workload(&db, WORKLOAD);
    db.sql(
        "BEGIN; SET LOCAL paper_trail.whodunnit = 'ann';
                UPDATE orders SET status = 'sent', note = 'rush' WHERE id = 10; COMMIT",
    );
    db.capture_ok(&["--tables", "customers,orders,lines"]);
    let imported: PathBuf = db.dir.path().join("paper_trail.rowtrail");
    let said = import_ok_as("paper-trail", &db.url(), &imported);
    assert!(
        said.contains("imported 12 changes in 8 transactions"),
        "{said}"
    );
    let lacks = Lacks {
        xids: true,
        only: &["customers", "orders"],
        ..Lacks::default()
    };
    assert_same_history_lacking(&imported, &db.cache(), &lacks);
    let last = log_json(&imported, &["--table", "orders"]).pop().unwrap();
    assert_eq!(last["context"]["whodunnit"], "ann", "{last:?}");
    // The undo script is typed and puts the customer back.
    let update = log_json(&imported, &["--table", "customers"])
        .into_iter()
        .find(|change| change["op"] == "update" && change["key"]["id"] == "1")
        .unwrap();
    let restore = rowtrail(&[
        "undo".to_owned(),
        "--cache".to_owned(),
        imported.to_str().unwrap().to_owned(),
        "--change".to_owned(),
        update["id"].to_string(),
    ]);
    let sql = String::from_utf8(restore.stdout).unwrap();
    assert!(sql.contains("'10.50'::numeric(12,2)"), "{sql}");
    db.sql(&sql);
    assert_eq!(
        db.sql("SELECT name, balance FROM customers WHERE id = 1")
            .trim(),
        "Ann|10.50"
    );
    // A model named otherwise, and a Ruby object that cannot be read.
    db.sql(
        "CREATE TABLE shop_notes (id int PRIMARY KEY, body text);
         INSERT INTO versions (item_type, item_id, event, object, object_changes, created_at)
         VALUES ('Memo', 1, 'create', NULL, E'---\nid:\n-\n- 1\nbody:\n-\n- \"hi\"\n', now()),
                ('Memo', 1, 'update', E'---\nid: 1\nbody: !ruby/object:Money\n  cents: 1\n',
                 E'---\nbody:\n- x\n- y\n', now());",
    );
    let unnamed = rowtrail(&import_args_as("paper-trail", &db.url(), &imported, &[]));
    assert_clean_failure(
        &unnamed,
        2,
        "item_type is \"Memo\", and no table memos was found",
    );
    let named = rowtrail(&import_args_as(
        "paper-trail",
        &db.url(),
        &imported,
        &["--table-of", "Memo=public.shop_notes"],
    ));
    assert_clean_failure(&named, 2, "tagged !ruby/object:Money");
    let notes = log_json(&imported, &["--table", "shop_notes"]);
    assert_eq!(
        notes.len(),
        1,
        "the create before the bad row stays: {notes:?}"
    );
    assert_eq!(notes[0]["after"]["body"], "hi");
}

/// A followed file whose transaction is written in two parts, a few seconds apart: the import
/// waits for the rest (for the next transaction or the end of the input) instead of taking the
/// first part for the whole and dropping the rest.
#[test]
fn a_debezium_transaction_written_in_two_parts_is_imported_whole() {
    let db = shop_with("import_debezium_parts", Kept::Bemi);
    db.sql("BEGIN; INSERT INTO customers (id, name) VALUES (1, 'a'), (2, 'b'); COMMIT");
    db.sql("INSERT INTO customers (id, name) VALUES (3, 'c')");
    let events: Vec<String> = db
        .sql("SELECT event::text FROM debezium_events ORDER BY n")
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(events.len(), 3);
    let file = db.dir.path().join("parts.jsonl");
    std::fs::write(&file, format!("{}\n", events[0])).unwrap();
    let imported = db.dir.path().join("parts.rowtrail");
    let mut child = rowtrail_command()
        .args(import_args_as(
            "debezium",
            file.to_str().unwrap(),
            &imported,
            &["--follow"],
        ))
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Longer than the quiet second after which what was read is saved.
    std::thread::sleep(Duration::from_millis(2_500));
    {
        use std::io::Write;
        let mut appended = std::fs::OpenOptions::new()
            .append(true)
            .open(&file)
            .unwrap();
        writeln!(appended, "{}\n{}", events[1], events[2]).unwrap();
    }
    let count = || {
        if imported.exists() {
            log_json(&imported, &[]).len()
        } else {
            0
        }
    };
    assert!(
        wait_until(Duration::from_secs(30), || count() >= 2),
        "the first transaction came in"
    );
    child.kill().unwrap();
    child.wait().unwrap();
    let changes = log_json(&imported, &[]);
    let first: Vec<&serde_json::Value> = changes
        .iter()
        .filter(|change| change["key"]["id"] == "1" || change["key"]["id"] == "2")
        .collect();
    assert_eq!(first.len(), 2, "{changes:?}");
    assert_eq!(
        first[0]["commit_lsn"], first[1]["commit_lsn"],
        "one transaction"
    );
    // Started again, the rest of the file comes in once.
    import_ok_as("debezium", file.to_str().unwrap(), &imported);
    assert_eq!(log_json(&imported, &[]).len(), 3);
}
