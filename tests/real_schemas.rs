//! Capture on real schemas (issue 10): keys as they were at the change, tables that are dropped and
//! come back, schema changes as history, values that are not UTF-8, and capture that is never
//! stopped for good by what it reads. Each test is named after the item it shows.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly on unexpected values.

mod support;

use std::process::{Child, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rowtrail::local_pg::{LocalPgOptions, LocalPostgres};
use serde_json::json;
use support::{TestDb, fresh_db, rowtrail, wait_for_exit, wait_until};

fn keys(log: &[serde_json::Value]) -> Vec<serde_json::Value> {
    log.iter().map(|change| change["key"].clone()).collect()
}

#[test]
fn item4_include_columns_are_not_part_of_the_primary_key() {
    let db = fresh_db("include");
    db.sql(
        "CREATE TABLE d (a int, b text, c text, PRIMARY KEY (a) INCLUDE (b));
         CREATE TABLE f (a int, b text, c text, PRIMARY KEY (a) INCLUDE (b));
         ALTER TABLE f REPLICA IDENTITY FULL;
         CREATE TABLE i (a int NOT NULL, b text NOT NULL, c text);
         CREATE UNIQUE INDEX i_a ON i (a) INCLUDE (b);
         ALTER TABLE i REPLICA IDENTITY USING INDEX i_a;
         INSERT INTO d VALUES (1, 'x', 'y'); INSERT INTO f VALUES (1, 'x', 'y');
         INSERT INTO i VALUES (1, 'x', 'y');",
    );
    db.capture_ok(&[]);
    db.sql(
        "INSERT INTO d VALUES (2, 'x', 'y'); INSERT INTO f VALUES (2, 'x', 'y');
         INSERT INTO i VALUES (2, 'x', 'y');
         UPDATE d SET b = 'z' WHERE a = 1; UPDATE f SET b = 'z' WHERE a = 1;
         UPDATE i SET b = 'z' WHERE a = 1;",
    );
    db.capture_ok(&[]);
    for table in ["d", "f", "i"] {
        let log = db.log(&["--table", table]);
        assert_eq!(
            keys(&log),
            vec![json!({"a": "1"}), json!({"a": "2"}), json!({"a": "1"})],
            "{table}: snapshot, insert and update keyed by a alone"
        );
        let history = db.log(&["--table", table, "--key", r#"{"a": 1}"#]);
        assert_eq!(history.len(), 2, "{table}: one record across the update");
    }
}

#[test]
fn item7_tables_in_pg_catalog_keep_their_schema_name() {
    let db = fresh_db("pgcatalog");
    db.sql(
        "SET allow_system_table_mods = on;
         CREATE TABLE pg_catalog.rowtrail_item7 (id int PRIMARY KEY, v text);
         ALTER TABLE pg_catalog.rowtrail_item7 REPLICA IDENTITY FULL;
         INSERT INTO pg_catalog.rowtrail_item7 VALUES (1, 'a');
         CREATE TABLE plain (id int PRIMARY KEY);",
    );
    db.capture_ok(&[]);
    db.sql("INSERT INTO pg_catalog.rowtrail_item7 VALUES (2, 'b');");
    db.capture_ok(&[]);
    let log = db.log(&["--table", "pg_catalog.rowtrail_item7"]);
    assert_eq!(log.len(), 2, "snapshot and insert: {log:?}");
    for change in &log {
        assert_eq!(change["schema"], "pg_catalog");
        assert_eq!(change["table"], "rowtrail_item7");
    }
}

/// A psql session kept open, to hold a temporary table while capture starts.
struct OpenSession(Child);

impl OpenSession {
    fn start(db: &TestDb, sql: &str) -> Self {
        use std::io::Write;
        let server = db.server;
        let mut child = std::process::Command::new(server.bin_dir().join("psql"))
            .args(["-X", "-q", "-h"])
            .arg(server.socket_dir())
            .args([
                "-p",
                &server.port().to_string(),
                "-U",
                "postgres",
                "-d",
                &db.name,
            ])
            .env("PGPASSFILE", server.pgpass())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdin = child.stdin.as_mut().unwrap();
        writeln!(stdin, "{sql}").unwrap();
        stdin.flush().unwrap();
        Self(child)
    }
}

impl Drop for OpenSession {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn item8_unlogged_and_temporary_tables_without_keys_do_not_block_capture() {
    let db = fresh_db("unpublished");
    db.sql(
        "CREATE TABLE kept (id int PRIMARY KEY, v text);
         CREATE UNLOGGED TABLE scratch (v text);
         INSERT INTO kept VALUES (1, 'a'); INSERT INTO scratch VALUES ('s');",
    );
    let _session = OpenSession::start(&db, "CREATE TEMP TABLE tmp_nokey (v text);");
    assert!(
        wait_until(Duration::from_secs(60), || db.sql(
            "SELECT count(*) FROM pg_class WHERE relname = 'tmp_nokey' AND relpersistence = 't'"
        ) == "1"),
        "the temporary table was not created"
    );
    db.capture_ok(&[]);
    db.sql("INSERT INTO kept VALUES (2, 'b'); UPDATE scratch SET v = 't';");
    db.capture_ok(&[]);
    let tables: Vec<String> = db
        .log(&[])
        .iter()
        .map(|change| change["table"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(tables, vec!["kept", "kept"]);

    // Named on purpose, an unlogged table gets a clear refusal instead.
    let other = fresh_db("unpublished_named");
    other.sql("CREATE UNLOGGED TABLE scratch (v text);");
    let output = other.capture_once(&["--tables", "scratch", "--publication", "named"]);
    support::assert_clean_failure(&output, 2, "unlogged or temporary");
}

#[test]
fn item9_once_captures_commits_the_server_has_not_flushed_yet() {
    // A server of its own whose WAL writer sleeps long, so an asynchronous commit stays unflushed.
    let server = LocalPostgres::start(&LocalPgOptions {
        settings: vec![("wal_writer_delay".into(), "10s".into())],
        ..LocalPgOptions::default()
    })
    .unwrap();
    server.create_database("async_commit").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache.db");
    let capture = || {
        rowtrail(&[
            "capture".into(),
            "--source".into(),
            server.url("async_commit"),
            "--cache".into(),
            cache.to_str().unwrap().into(),
            "--once".into(),
        ])
    };
    server
        .psql(
            "async_commit",
            "CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (0);",
        )
        .unwrap();
    assert!(capture().status.success());
    for round in 1..=3 {
        server
            .psql(
                "async_commit",
                &format!("SET synchronous_commit = off; INSERT INTO t VALUES ({round});"),
            )
            .unwrap();
        let started = Instant::now();
        let output = capture();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let log = support::log_json(&cache, &[]);
        assert_eq!(
            log.last().unwrap()["key"],
            json!({"id": round.to_string()}),
            "round {round}: the asynchronous commit is captured by --once"
        );
        assert!(
            started.elapsed() < Duration::from_secs(8),
            "--once did not wait for the WAL writer: {:?}",
            started.elapsed()
        );
    }
}

/// Terminates the walsender that serves `slot` whenever one appears, until dropped.
struct WalSenderKiller {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl WalSenderKiller {
    fn start(server: &'static LocalPostgres, database: &str, slot: &str) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let (flag, database, slot) = (stop.clone(), database.to_owned(), slot.to_owned());
        let thread = std::thread::spawn(move || {
            while !flag.load(Ordering::SeqCst) {
                let _ = server.psql(
                    &database,
                    &format!(
                        "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots
                         WHERE slot_name = '{slot}' AND active_pid IS NOT NULL"
                    ),
                );
                std::thread::sleep(Duration::from_millis(10));
            }
        });
        Self {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for WalSenderKiller {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[test]
fn item10_once_backs_off_and_gives_up_when_every_session_fails_at_once() {
    // A server of its own: other tests' WAL would let sessions store progress between kills.
    let server: &'static LocalPostgres = Box::leak(Box::new(
        LocalPostgres::start(&LocalPgOptions::default()).unwrap(),
    ));
    server.create_database("retry_limit").unwrap();
    let db = TestDb {
        server,
        name: "retry_limit".into(),
        dir: tempfile::tempdir().unwrap(),
    };
    db.sql("CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t VALUES (0, 'base');");
    db.capture_ok(&[]);
    // One big transaction: no session killed within milliseconds can store any of it.
    db.sql("INSERT INTO t SELECT g, repeat('x', 100) FROM generate_series(1, 200000) g;");
    let killer = WalSenderKiller::start(db.server, &db.name, &db.name);
    let mut child = db.spawn_capture(&db.url(), &["--once"]);
    let status = wait_for_exit(&mut child, Duration::from_secs(120));
    drop(killer);
    if status.is_none() {
        let _ = child.kill();
    }
    let log = db.capture_log();
    let status = status.unwrap_or_else(|| panic!("--once kept retrying: {log}"));
    assert_eq!(status.code(), Some(2), "{log}");
    let waits: Vec<&str> = log
        .lines()
        .filter_map(|line| line.split("reconnecting in ").nth(1))
        .filter_map(|rest| rest.split(' ').next())
        .collect();
    // A session may get a little further into the WAL before it is killed (keepalives move the
    // stored position), which starts the backoff over; sessions that store nothing double it.
    assert_eq!(
        waits[waits.len() - 5..],
        ["1", "2", "4", "8", "16"],
        "the backoff doubles across sessions that store nothing: {log}"
    );
    let last = log.lines().last().unwrap();
    assert!(last.starts_with("error:"), "{log}");
}

#[test]
fn item10_an_authentication_failure_stops_capture_at_once() {
    let db = fresh_db("auth_fail");
    let role = format!("{}_role", db.name);
    db.sql(&format!(
        "CREATE TABLE t (id int PRIMARY KEY);
         CREATE ROLE {role} LOGIN REPLICATION PASSWORD 'first';
         GRANT SELECT ON t TO {role};
         CREATE PUBLICATION pub_auth FOR TABLE t;"
    ));
    let url = format!(
        "postgres://{role}:first@127.0.0.1:{}/{}?sslmode=disable",
        db.server.port(),
        db.name
    );
    let mut child = db.spawn_capture(&url, &["--publication", "pub_auth"]);
    assert!(
        wait_until(Duration::from_secs(30), || db.slot_active()),
        "capture did not start: {}",
        db.capture_log()
    );
    db.sql(&format!(
        "ALTER ROLE {role} PASSWORD 'second';
         SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = '{}';",
        db.name
    ));
    let status = wait_for_exit(&mut child, Duration::from_secs(20));
    if status.is_none() {
        let _ = child.kill();
    }
    let log = db.capture_log();
    assert_eq!(
        status.and_then(|status| status.code()),
        Some(2),
        "capture must stop: {log}"
    );
    let reconnects = log.matches("reconnecting in").count();
    assert_eq!(reconnects, 1, "one reconnect, then the login fails: {log}");
    let last = log.lines().last().unwrap();
    assert!(
        last.starts_with("error:") && last.contains("28P01") && !last.contains("first"),
        "{log}"
    );
}

/// The rows of `table` as the hex of each value's bytes in the server's encoding, by id.
fn raw_rows(db: &TestDb, table: &str) -> String {
    db.sql(&format!(
        "SELECT id, encode(convert_to(v, current_setting('server_encoding')), 'hex')
         FROM {table} ORDER BY id"
    ))
}

/// Captures `t (id, v)` in a database of `encoding` where `odd` is the SQL of a value the server
/// cannot turn into UTF-8, around ordinary values (`plain`, written in UTF-8), through the
/// baseline and the stream; checks every value and that an undo script puts the odd ones back
/// byte for byte. Returns the log.
fn capture_odd_values(
    db: &TestDb,
    plain: &str,
    odd: &str,
    odd_hex: &str,
    odd_shown: &str,
) -> Vec<serde_json::Value> {
    db.sql(&format!(
        "SET client_encoding = 'UTF8';
         CREATE TABLE t (id int PRIMARY KEY, v text, c char(8));
         ALTER TABLE t REPLICA IDENTITY FULL;
         INSERT INTO t VALUES (1, {odd}, {odd}), (2, '{plain}', 'x');"
    ));
    db.capture_ok(&[]);
    db.sql(&format!(
        "SET client_encoding = 'UTF8';
         BEGIN;
           INSERT INTO t VALUES (3, 'before', 'b');
           INSERT INTO t VALUES (4, {odd}, {odd});
           UPDATE t SET v = '{plain}' || v WHERE id = 1;
           INSERT INTO t VALUES (5, 'after {plain}', 'a');
         COMMIT;
         INSERT INTO t VALUES (6, 'next {plain}', 'n');
         DELETE FROM t WHERE id IN (1, 4);"
    ));
    db.capture_ok(&[]);
    db.sql(&format!(
        "SET client_encoding = 'UTF8'; INSERT INTO t VALUES (7, 'later {plain}', 'l');"
    ));
    db.capture_ok(&[]);
    let log = db.log(&["--table", "t"]);
    let value = |id: &str, op: &str| {
        log.iter()
            .find(|change| change["key"]["id"] == id && change["op"] == op)
            .unwrap_or_else(|| panic!("no {op} of {id}: {log:?}"))
            .clone()
    };
    let odd_json = json!({ "hex": odd_hex });
    assert_eq!(value("1", "snapshot")["after"]["v"], odd_json, "baseline");
    assert_eq!(
        value("1", "snapshot")["after"]["c"],
        odd_json,
        "baseline char(n)"
    );
    assert_eq!(value("2", "snapshot")["after"]["v"], json!(plain));
    assert_eq!(value("3", "insert")["after"]["v"], json!("before"));
    assert_eq!(value("4", "insert")["after"]["v"], odd_json, "stream");
    assert_eq!(
        value("4", "insert")["after"]["c"],
        odd_json,
        "stream char(n)"
    );
    assert_eq!(
        value("5", "insert")["after"]["v"],
        json!(format!("after {plain}"))
    );
    assert_eq!(
        value("6", "insert")["after"]["v"],
        json!(format!("next {plain}"))
    );
    assert_eq!(
        value("7", "insert")["after"]["v"],
        json!(format!("later {plain}"))
    );
    assert_eq!(value("1", "update")["before"]["v"], odd_json);
    assert_eq!(value("4", "delete")["before"]["v"], odd_json);
    assert_eq!(log.len(), 10, "nothing lost around the odd values: {log:?}");

    // Undo the deletes: the odd bytes go back exactly.
    let before = raw_rows(db, "t");
    let delete_of_4 = value("4", "delete")["id"].to_string();
    let update_of_1 = value("1", "update")["id"].to_string();
    let delete_of_1 = value("1", "delete")["id"].to_string();
    let script = db.on_cache(
        "undo",
        &["--change", &delete_of_4, &delete_of_1, &update_of_1],
    );
    db.server
        .psql(&db.name, &script)
        .unwrap_or_else(|error| panic!("{error}\n{script}"));
    let after = raw_rows(db, "t");
    assert!(after.contains(&format!("1|{odd_hex}")), "{before}\n{after}");
    assert!(after.contains(&format!("4|{odd_hex}")), "{before}\n{after}");
    let shown = db.on_cache("show", &[&delete_of_4]);
    assert!(shown.contains(odd_shown), "shown escaped: {shown}");
    log
}

#[test]
fn item1_sql_ascii_values_that_are_not_utf8_are_kept_byte_for_byte() {
    let db = support::fresh_db_with_encoding("sqlascii", "SQL_ASCII");
    let log = capture_odd_values(&db, "café", "E'caf\\xe9'", "636166e9", "caf\\xe9");
    // UTF-8 bytes in a SQL_ASCII database are text.
    assert!(
        log.iter()
            .any(|change| change["after"]["v"] == "after café")
    );
}

#[test]
fn item1_win1252_characters_without_a_utf8_equivalent_do_not_stop_capture() {
    let db = support::fresh_db_with_encoding("win1252", "WIN1252");
    // 0x81 is unassigned in WIN1252: the server stores it but cannot convert it to UTF-8.
    capture_odd_values(
        &db,
        "é€",
        "convert_from('\\x6181'::bytea, 'WIN1252')",
        "6181",
        "a\\x81",
    );
}

#[test]
fn item1_euc_jp_characters_without_a_utf8_equivalent_do_not_stop_capture() {
    let db = support::fresh_db_with_encoding("eucjp", "EUC_JP");
    // 0xA9A1 is well-formed EUC_JP but maps to no character.
    capture_odd_values(
        &db,
        "日本語",
        "convert_from('\\xa9a1'::bytea, 'EUC_JP')",
        "a9a1",
        "\\xa9\\xa1",
    );
}

#[test]
fn item1_latin1_text_is_captured_and_restored_exactly() {
    let db = support::fresh_db_with_encoding("latin1", "LATIN1");
    db.sql(
        "SET client_encoding = 'UTF8';
         CREATE TABLE t (id int PRIMARY KEY, v text);
         INSERT INTO t VALUES (1, 'Ålesund ÿ');",
    );
    db.capture_ok(&[]);
    db.sql(
        "SET client_encoding = 'UTF8'; UPDATE t SET v = 'Zürich ©' WHERE id = 1; DELETE FROM t;",
    );
    db.capture_ok(&[]);
    let log = db.log(&["--table", "t"]);
    let values: Vec<&serde_json::Value> = log.iter().map(|change| &change["before"]["v"]).collect();
    assert_eq!(log[0]["after"]["v"], "Ålesund ÿ");
    assert_eq!(log[1]["after"]["v"], "Zürich ©");
    assert_eq!(values[2], "Zürich ©");
    let script = db.on_cache(
        "undo",
        &[
            "--change",
            &log[1]["id"].to_string(),
            &log[2]["id"].to_string(),
        ],
    );
    db.server
        .psql(&db.name, &script)
        .unwrap_or_else(|error| panic!("{error}\n{script}"));
    assert_eq!(
        raw_rows(&db, "t"),
        "1|c56c6573756e6420ff",
        "Ålesund ÿ in LATIN1 bytes"
    );
}

/// Keys as they were at each change, with capture reading everything long after it happened:
/// a key added to a keyless table, a primary key replaced, a table dropped before capture reads
/// it. Written in UTF-8 SQL; `odd` is a value of the database's encoding.
fn keys_as_they_were(db: &TestDb) {
    db.sql(
        "SET client_encoding = 'UTF8';
         CREATE TABLE f (id int NOT NULL, v text);
         ALTER TABLE f REPLICA IDENTITY FULL;
         CREATE TABLE d (a int PRIMARY KEY, b int NOT NULL, v text);
         CREATE TABLE g (id int PRIMARY KEY, v text);
         ALTER TABLE g REPLICA IDENTITY FULL;
         INSERT INTO g VALUES (1, 'kept');",
    );
    db.capture_ok(&[]);
    db.sql(
        "SET client_encoding = 'UTF8';
         INSERT INTO f SELECT g, 'ünï' FROM generate_series(1, 50) g;
         UPDATE f SET v = 'before key' WHERE id = 1;
         ALTER TABLE f ADD PRIMARY KEY (id);
         INSERT INTO f VALUES (51, 'after key');
         UPDATE f SET v = 'after key' WHERE id = 2;
         INSERT INTO d VALUES (1, 10, 'a');
         ALTER TABLE d DROP CONSTRAINT d_pkey, ADD PRIMARY KEY (b);
         INSERT INTO d VALUES (2, 20, 'b');
         UPDATE d SET v = 'a2' WHERE a = 1;
         INSERT INTO g VALUES (2, 'gone soon');
         UPDATE g SET v = 'still' WHERE id = 1;
         DROP TABLE g;",
    );
    db.capture_ok(&[]);
    let rows = |table: &str| -> Vec<(String, serde_json::Value)> {
        db.log(&["--table", table])
            .iter()
            .filter(|change| change["op"] != "ddl")
            .map(|change| {
                (
                    change["op"].as_str().unwrap().to_owned(),
                    change["key"].clone(),
                )
            })
            .collect()
    };
    let f = rows("f");
    assert_eq!(f.len(), 53, "{f:?}");
    assert!(
        f[..51].iter().all(|(_, key)| *key == json!({})),
        "the 50 inserts and the update before the key was added have no key: {f:?}"
    );
    assert_eq!(f[51], ("insert".into(), json!({"id": "51"})));
    assert_eq!(f[52], ("update".into(), json!({"id": "2"})));
    assert_eq!(
        rows("d"),
        vec![
            ("insert".into(), json!({"a": "1"})),
            ("insert".into(), json!({"b": "20"})),
            ("update".into(), json!({"b": "10"})),
        ],
        "each change of d under the key it had"
    );
    assert_eq!(
        rows("g"),
        vec![
            ("snapshot".into(), json!({"id": "1"})),
            ("insert".into(), json!({"id": "2"})),
            ("update".into(), json!({"id": "1"})),
        ],
        "a dropped table keeps its key"
    );
    for change in db.log(&[]) {
        assert_eq!(change["key_read_later"], false, "{change}");
    }
    // The table at the end holds what the source holds.
    let at = db.on_cache("at", &["--table", "f", "--time", "now", "--json"]);
    assert_eq!(at.lines().count(), 51, "{at}");
    assert_eq!(db.sql("SELECT count(*) FROM f WHERE v = 'after key'"), "2");
    assert_eq!(at.matches("after key").count(), 2, "{at}");
}

#[test]
fn item2_keys_are_read_as_they_were_at_the_change() {
    let db = fresh_db("keys_then");
    keys_as_they_were(&db);
    let doctor = support::rowtrail(&[
        "doctor".into(),
        "--source".into(),
        db.url(),
        "--slot".into(),
        db.name.clone(),
    ]);
    let report = String::from_utf8_lossy(&doctor.stdout);
    assert!(
        report.contains("schema changes") && report.contains("recorded as they happen"),
        "{report}"
    );
}

#[test]
fn item2_keys_are_read_as_they_were_in_a_sql_ascii_database() {
    keys_as_they_were(&support::fresh_db_with_encoding(
        "keys_sqlascii",
        "SQL_ASCII",
    ));
}

#[test]
fn item2_keys_are_read_as_they_were_in_a_latin1_database() {
    keys_as_they_were(&support::fresh_db_with_encoding("keys_latin1", "LATIN1"));
}

/// A role that may replicate but is no superuser: it cannot install the schema log.
fn replication_role(db: &TestDb, tables: &str) -> String {
    let role = format!("{}_r", db.name);
    db.sql(&format!(
        "CREATE ROLE {role} LOGIN REPLICATION PASSWORD 'secret';
         GRANT SELECT ON {tables} TO {role};
         CREATE PUBLICATION rowtrail FOR TABLE {tables};"
    ));
    format!(
        "postgres://{role}:secret@127.0.0.1:{}/{}?sslmode=disable",
        db.server.port(),
        db.name
    )
}

fn capture_as(db: &TestDb, url: &str) -> std::process::Output {
    rowtrail(&[
        "capture".into(),
        "--source".into(),
        url.into(),
        "--cache".into(),
        db.cache().to_string_lossy().into_owned(),
        "--once".into(),
        "--slot".into(),
        db.name.clone(),
    ])
}

#[test]
fn item2_without_the_schema_log_keys_are_marked_read_later_and_doctor_says_so() {
    let db = fresh_db("keys_later");
    db.sql(
        "CREATE TABLE f (id int NOT NULL, v text);
         ALTER TABLE f REPLICA IDENTITY FULL;
         CREATE TABLE g (id int PRIMARY KEY, v text);
         ALTER TABLE g REPLICA IDENTITY FULL;
         INSERT INTO g VALUES (1, 'a');",
    );
    let url = replication_role(&db, "f, g");
    let output = capture_as(&db, &url);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("schema changes are not recorded as they happen"),
        "{stderr}"
    );
    assert_eq!(db.sql("SELECT count(*) FROM pg_event_trigger"), "0");
    db.sql(
        "INSERT INTO f VALUES (1, 'x');
         ALTER TABLE f ADD PRIMARY KEY (id);
         INSERT INTO g VALUES (2, 'b');
         DROP TABLE g;",
    );
    let output = capture_as(&db, &url);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let f = db.log(&["--table", "f", "--op", "insert"]);
    assert_eq!(f[0]["key"], json!({"id": "1"}), "read from today's catalog");
    assert_eq!(f[0]["key_read_later"], true, "and marked so");
    let g = db.log(&["--table", "g", "--op", "insert"]);
    assert_eq!(
        g[0]["key"],
        json!({"id": "2"}),
        "the key stored before the drop"
    );
    // Noticed, not recorded: the schema change entry says so.
    let noticed = db.log(&["--table", "f", "--op", "ddl"]);
    assert_eq!(noticed[0]["ddl"]["noticed_later"], true);
    assert_eq!(noticed[0]["ddl"]["edits"], json!(["key none → (id)"]));
    let doctor = support::rowtrail(&[
        "doctor".into(),
        "--source".into(),
        url,
        "--slot".into(),
        db.name.clone(),
    ]);
    let report = String::from_utf8_lossy(&doctor.stdout);
    assert!(
        report.contains("read later") && report.contains("superuser"),
        "{report}"
    );
}

#[test]
fn item3_schema_changes_are_entries_in_the_history() {
    let db = fresh_db("ddl_history");
    db.sql(
        "CREATE TABLE items (id int PRIMARY KEY, name text, legacy text, price int);
         ALTER TABLE items REPLICA IDENTITY FULL;
         INSERT INTO items VALUES (1, 'one', 'x', 5);",
    );
    db.capture_ok(&[]);
    db.sql(
        "ALTER TABLE items ADD COLUMN note text;
         ALTER TABLE items DROP COLUMN legacy;
         ALTER TABLE items RENAME COLUMN name TO title;
         ALTER TABLE items ALTER COLUMN price TYPE numeric(12,2);
         BEGIN;
           INSERT INTO items VALUES (2, 'two', 7, 'n');
           ALTER TABLE items DROP CONSTRAINT items_pkey;
           ALTER TABLE items ADD PRIMARY KEY (id, title);
         COMMIT;
         CREATE INDEX items_note ON items (note);
         DROP TABLE items;",
    );
    db.capture_ok(&[]);
    let ddl = db.log(&["--op", "ddl"]);
    let summary: Vec<(String, Vec<String>)> = ddl
        .iter()
        .map(|change| {
            let entry = &change["ddl"];
            let edits = entry["edits"]
                .as_array()
                .unwrap()
                .iter()
                .map(|edit| edit.as_str().unwrap().to_owned())
                .collect();
            (entry["command"].as_str().unwrap().to_owned(), edits)
        })
        .collect();
    let expected: Vec<(&str, Vec<&str>)> = vec![
        ("ALTER TABLE", vec!["added column note text"]),
        ("ALTER TABLE", vec!["dropped column legacy"]),
        ("ALTER TABLE", vec!["renamed column name to title"]),
        ("ALTER TABLE", vec!["column price: integer → numeric(12,2)"]),
        ("ALTER TABLE", vec!["key (id) → none"]),
        ("ALTER TABLE", vec!["key none → (id, title)"]),
        ("CREATE INDEX", vec![]),
        ("DROP TABLE", vec![]),
    ];
    let expected: Vec<(String, Vec<String>)> = expected
        .into_iter()
        .map(|(command, edits)| {
            (
                command.to_owned(),
                edits.into_iter().map(str::to_owned).collect(),
            )
        })
        .collect();
    assert_eq!(summary, expected);
    let drop = ddl.last().unwrap();
    assert_eq!(drop["ddl"]["dropped"], true);
    assert_eq!(drop["ddl"]["after"], serde_json::Value::Null);
    assert_eq!(
        ddl[0]["ddl"]["statement"],
        "ALTER TABLE items ADD COLUMN note text;"
    );
    assert_eq!(
        ddl[0]["ddl"]["before"]["columns"].as_array().unwrap().len(),
        4
    );
    assert_eq!(
        ddl[0]["ddl"]["after"]["columns"].as_array().unwrap().len(),
        5
    );
    // Between the row changes, in commit order.
    let ops: Vec<String> = db
        .log(&["--table", "items"])
        .iter()
        .map(|change| change["op"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        ops,
        vec![
            "snapshot", "ddl", "ddl", "ddl", "ddl", "insert", "ddl", "ddl", "ddl", "ddl"
        ]
    );
    let shown = db.on_cache("show", &[&ddl[2]["id"].to_string()]);
    assert!(
        shown.contains("ALTER TABLE of public.items")
            && shown.contains("statement: ALTER TABLE items RENAME COLUMN name TO title;")
            && shown.contains("renamed column name to title"),
        "{shown}"
    );
    // Undo restores rows, not schemas.
    let undo = support::rowtrail(&[
        "undo".into(),
        "--cache".into(),
        db.cache().to_string_lossy().into_owned(),
        "--change".into(),
        ddl[0]["id"].to_string(),
    ]);
    support::assert_clean_failure(&undo, 2, "is a schema change");
    // The table is gone: its rows cannot be put back.
    let insert = db.log(&["--op", "insert"]);
    let undo = support::rowtrail(&[
        "undo".into(),
        "--cache".into(),
        db.cache().to_string_lossy().into_owned(),
        "--tx".into(),
        insert[0]["xid"].to_string(),
    ]);
    support::assert_clean_failure(&undo, 2, "was dropped by change");
}

#[test]
fn item5_a_dropped_and_recreated_table_is_a_new_table() {
    let db = fresh_db("recreated");
    db.sql(
        "CREATE TABLE t (id int PRIMARY KEY, v text);
         INSERT INTO t VALUES (1, 'old one'), (2, 'old two');",
    );
    db.capture_ok(&[]);
    db.sql(
        "UPDATE t SET v = 'old one, edited' WHERE id = 1;
         DROP TABLE t;
         CREATE TABLE t (id int PRIMARY KEY, v text, extra int);
         INSERT INTO t VALUES (1, 'new one', 1);",
    );
    db.capture_ok(&[]);
    let now = db.on_cache("at", &["--table", "t", "--time", "now", "--json"]);
    assert_eq!(now.lines().count(), 1, "only the new table: {now}");
    assert!(now.contains("new one"), "{now}");
    let log = db.log(&["--table", "t"]);
    let update = log.iter().find(|change| change["op"] == "update").unwrap();
    let drop = log
        .iter()
        .find(|change| change["ddl"]["dropped"] == true)
        .unwrap();
    let before_drop = format!("change:{}", update["id"]);
    let then = db.on_cache("at", &["--table", "t", "--time", &before_drop, "--json"]);
    assert_eq!(then.lines().count(), 2, "the old table as it was: {then}");
    assert!(then.contains("old one, edited"), "{then}");
    let after_drop = format!("change:{}", drop["id"]);
    let gone = db.on_cache("at", &["--table", "t", "--time", &after_drop, "--json"]);
    assert_eq!(
        gone, "",
        "between the drop and the new table there is no table"
    );
    let record = db.on_cache(
        "at",
        &[
            "--table",
            "t",
            "--key",
            r#"{"id": 1}"#,
            "--time",
            &after_drop,
            "--json",
        ],
    );
    assert_eq!(record.trim(), "null", "the old record ends with its table");
    let history = db.on_cache(
        "history",
        &["--table", "t", "--key", r#"{"id": 1}"#, "--json"],
    );
    assert_eq!(
        history.lines().count(),
        1,
        "record 1 of the new table: {history}"
    );
    // Both tables are listed, the old one as dropped.
    let cache = rowtrail::store::Cache::open(&db.cache()).unwrap();
    let tables = cache.tables().unwrap();
    let labels: Vec<String> = tables
        .iter()
        .map(rowtrail::store::TableSummary::label)
        .collect();
    assert_eq!(labels.len(), 2, "{labels:?}");
    assert!(labels[0].starts_with("t (dropped "), "{labels:?}");
    assert_eq!(labels[1], "t");
}

#[test]
fn item6_keyless_rows_are_matched_across_added_and_renamed_columns() {
    let db = fresh_db("keyless_versions");
    db.sql(
        "CREATE TABLE k (a int, b text);
         ALTER TABLE k REPLICA IDENTITY FULL;
         INSERT INTO k VALUES (1, 'x'), (2, 'y'), (2, 'y');",
    );
    db.capture_ok(&[]);
    db.sql(
        "ALTER TABLE k ADD COLUMN c int DEFAULT 0;
         UPDATE k SET b = 'x2' WHERE a = 1;
         ALTER TABLE k RENAME COLUMN b TO bee;
         UPDATE k SET c = 5 WHERE a = 1;
         DELETE FROM k WHERE ctid = (SELECT ctid FROM k WHERE a = 2 LIMIT 1);
         INSERT INTO k VALUES (3, 'z', 1);",
    );
    db.capture_ok(&[]);
    let at = db.on_cache("at", &["--table", "k", "--time", "now", "--json"]);
    let mut rows: Vec<String> = at.lines().map(str::to_owned).collect();
    rows.sort();
    assert_eq!(
        rows,
        vec![
            r#"{"a":"1","bee":"x2","c":"5"}"#,
            r#"{"a":"2","b":"y"}"#,
            r#"{"a":"3","bee":"z","c":"1"}"#,
        ],
        "each row once, under the version that last wrote it"
    );
    assert_eq!(db.sql("SELECT count(*) FROM k"), "3");
}

#[test]
fn item3_schema_changes_reach_partitions_and_inheriting_tables() {
    let db = fresh_db("ddl_partitions");
    db.sql(
        "CREATE TABLE p (id int, region text, v text, PRIMARY KEY (id, region))
             PARTITION BY LIST (region);
         CREATE TABLE p_eu PARTITION OF p FOR VALUES IN ('eu');
         CREATE TABLE p_us PARTITION OF p FOR VALUES IN ('us');
         ALTER TABLE p_eu REPLICA IDENTITY FULL; ALTER TABLE p_us REPLICA IDENTITY FULL;
         CREATE TABLE base (id int PRIMARY KEY, v text);
         CREATE TABLE child (extra int) INHERITS (base);
         ALTER TABLE child REPLICA IDENTITY FULL;
         INSERT INTO p VALUES (1, 'eu', 'a'), (2, 'us', 'b');
         INSERT INTO child VALUES (1, 'c', 10);",
    );
    db.capture_ok(&[]);
    db.sql(
        "ALTER TABLE p ADD COLUMN note text;
         INSERT INTO p VALUES (3, 'eu', 'c', 'noted');
         UPDATE p SET note = 'us note' WHERE id = 2;
         ALTER TABLE base ADD COLUMN w int;
         UPDATE child SET w = 7 WHERE id = 1;
         CREATE TABLE p_asia PARTITION OF p FOR VALUES IN ('asia');
         INSERT INTO p VALUES (4, 'asia', 'd', 'new partition');",
    );
    db.capture_ok(&[]);
    for partition in ["p_eu", "p_us"] {
        let ddl = db.log(&["--table", partition, "--op", "ddl"]);
        assert_eq!(ddl.len(), 1, "{partition}: {ddl:?}");
        assert_eq!(ddl[0]["ddl"]["edits"], json!(["added column note text"]));
    }
    let eu = db.log(&["--table", "p_eu", "--op", "insert"]);
    assert_eq!(eu[0]["key"], json!({"id": "3", "region": "eu"}));
    assert_eq!(eu[0]["after"]["note"], "noted");
    let us = db.log(&["--table", "p_us", "--op", "update"]);
    assert_eq!(us[0]["key"], json!({"id": "2", "region": "us"}));
    let child = db.log(&["--table", "child"]);
    let child_ops: Vec<&str> = child
        .iter()
        .map(|change| change["op"].as_str().unwrap())
        .collect();
    assert_eq!(child_ops, vec!["snapshot", "ddl", "update"]);
    assert_eq!(child[1]["ddl"]["edits"], json!(["added column w integer"]));
    assert_eq!(
        child[2]["key"],
        json!({}),
        "inheritance does not pass the primary key on"
    );
    let asia = db.log(&["--table", "p_asia"]);
    let asia_ops: Vec<&str> = asia
        .iter()
        .map(|change| change["op"].as_str().unwrap())
        .collect();
    assert_eq!(
        asia_ops,
        vec!["ddl", "insert"],
        "a new partition starts with its creation"
    );
    assert_eq!(asia[0]["ddl"]["command"], "CREATE TABLE");
    assert_eq!(asia[1]["key"], json!({"id": "4", "region": "asia"}));
    let at = db.on_cache("at", &["--table", "p_eu", "--time", "now", "--json"]);
    assert_eq!(at.lines().count(), 2, "{at}");
}

#[test]
fn item3_restore_scripts_follow_later_schema_changes_and_refuse_dropped_tables() {
    let db = fresh_db("restore_after_ddl");
    db.sql(
        "CREATE TABLE t (id int PRIMARY KEY, email text, legacy text);
         ALTER TABLE t REPLICA IDENTITY FULL;
         INSERT INTO t VALUES (1, 'ann@old', 'x'), (2, 'bob@old', 'y');
         CREATE TABLE u (id int PRIMARY KEY, v text);
         INSERT INTO u VALUES (1, 'first u');",
    );
    db.capture_ok(&[]);
    db.sql(
        "UPDATE t SET email = 'ann@new' WHERE id = 1;
         DELETE FROM t WHERE id = 2;
         ALTER TABLE t RENAME COLUMN email TO email_address;
         ALTER TABLE t DROP COLUMN legacy;
         UPDATE u SET v = 'edited' WHERE id = 1;
         DROP TABLE u;
         CREATE TABLE u (id int PRIMARY KEY, v text);
         INSERT INTO u VALUES (1, 'second u');",
    );
    db.capture_ok(&[]);
    let changes = db.log(&["--table", "t"]);
    let ids: Vec<String> = changes
        .iter()
        .filter(|change| change["op"] == "update" || change["op"] == "delete")
        .map(|change| change["id"].to_string())
        .collect();
    let mut args = vec!["--change"];
    args.extend(ids.iter().map(String::as_str));
    let script = db.on_cache("undo", &args);
    assert!(script.contains("\"email_address\""), "{script}");
    assert!(
        script.contains("column legacy of public.t was dropped since"),
        "{script}"
    );
    db.server
        .psql(&db.name, &script)
        .unwrap_or_else(|error| panic!("{error}\n{script}"));
    assert_eq!(
        db.sql("SELECT id, email_address FROM t ORDER BY id"),
        "1|ann@old\n2|bob@old"
    );
    // The old u is gone: its changes cannot be put back into the new u.
    let old_update = db.log(&["--table", "u", "--op", "update"]);
    let undo = support::rowtrail(&[
        "undo".into(),
        "--cache".into(),
        db.cache().to_string_lossy().into_owned(),
        "--change".into(),
        old_update[0]["id"].to_string(),
    ]);
    support::assert_clean_failure(&undo, 2, "was dropped by change");
    assert_eq!(db.sql("SELECT v FROM u"), "second u");
    // A transaction that changed rows and the schema: the rows are undone, the schema is not.
    db.sql(
        "BEGIN;
           UPDATE t SET email_address = 'ann@later' WHERE id = 1;
           ALTER TABLE t ADD COLUMN n int;
         COMMIT;",
    );
    db.capture_ok(&[]);
    let last = db.log(&["--table", "t", "--op", "update"]);
    let xid = last.last().unwrap()["xid"].to_string();
    let script = db.on_cache("undo", &["--tx", &xid]);
    assert!(
        script.contains("not undone: change") && script.contains("ALTER TABLE of public.t"),
        "{script}"
    );
    db.server
        .psql(&db.name, &script)
        .unwrap_or_else(|error| panic!("{error}\n{script}"));
    assert_eq!(
        db.sql("SELECT email_address FROM t WHERE id = 1"),
        "ann@old"
    );
}
