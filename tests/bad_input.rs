//! Bad input: each gets one clear line with a hint, exit code 2, no panic, and the cache untouched.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly on unexpected values.

mod support;

use std::sync::OnceLock;

use rowtrail::local_pg::{LocalPgOptions, LocalPostgres};
use support::{assert_clean_failure, fresh_db, rowtrail};

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|arg| (*arg).to_owned()).collect()
}

fn capture_args(source: &str, cache: &std::path::Path, extra: &[&str]) -> Vec<String> {
    let mut list = args(&[
        "capture",
        "--source",
        source,
        "--cache",
        cache.to_str().unwrap(),
        "--once",
    ]);
    list.extend(args(extra));
    list
}

#[test]
fn unreachable_host() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("c.db");
    let output = rowtrail(&capture_args(
        "postgres://u:p@127.0.0.1:1/db?connect_timeout=3",
        &cache,
        &[],
    ));
    assert_clean_failure(&output, 2, "could not connect to 127.0.0.1:1");
    assert!(!cache.exists(), "nothing was created");
    let output = rowtrail(&args(&[
        "doctor",
        "--source",
        "host=127.0.0.1 port=1 user=u dbname=d",
    ]));
    assert_clean_failure(&output, 2, "check that PostgreSQL runs there");
}

#[test]
fn malformed_connection_strings_and_names() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("c.db");
    let output = rowtrail(&capture_args(
        "host=h sslmode=sometimes user=u",
        &cache,
        &[],
    ));
    assert_clean_failure(&output, 2, "sslmode='sometimes' is invalid");
    let output = rowtrail(&capture_args(
        "host=h user=u",
        &cache,
        &["--tables", "a..b"],
    ));
    assert_clean_failure(&output, 2, "is not a table name");
    let db = fresh_db("badslot");
    let output = rowtrail(&capture_args(&db.url(), &cache, &["--slot", "Bad-Slot"]));
    assert_clean_failure(&output, 2, "not a valid slot name");
}

#[test]
fn wrong_password() {
    let db = fresh_db("password");
    let url = db.url().replace(db.server.password().expose(), "wrong");
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("c.db");
    let output = rowtrail(&capture_args(&url, &cache, &[]));
    assert_clean_failure(&output, 2, "password authentication failed");
    assert!(!cache.exists());
    let no_password = url.replace(":wrong@", "@");
    let output = rowtrail(&capture_args(&no_password, &cache, &[]));
    assert_clean_failure(&output, 2, "set PGPASSWORD, add a line to ~/.pgpass");
}

#[test]
fn missing_replication_privilege() {
    let db = fresh_db("privilege");
    db.sql(
        "DO $$ BEGIN
           IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'plain') THEN
             CREATE ROLE plain LOGIN PASSWORD 'pw';
           END IF;
         END $$;
         CREATE TABLE t (id int PRIMARY KEY);",
    );
    let url = format!(
        "postgres://plain:pw@127.0.0.1:{}/{}?sslmode=disable",
        db.server.port(),
        db.name
    );
    let output = rowtrail(&capture_args(&url, &db.cache(), &[]));
    assert_clean_failure(&output, 2, "ALTER ROLE \"plain\" REPLICATION;");
    let output = rowtrail(&args(&["doctor", "--source", &url]));
    assert_eq!(output.status.code(), Some(1));
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(
        report.contains("FAIL  replication privilege: plain may not use replication -- fix: ALTER ROLE \"plain\" REPLICATION;"),
        "{report}"
    );
}

fn replica_server() -> &'static LocalPostgres {
    static SERVER: OnceLock<LocalPostgres> = OnceLock::new();
    SERVER.get_or_init(|| {
        LocalPostgres::start(&LocalPgOptions {
            wal_level: "replica".into(),
            ..LocalPgOptions::default()
        })
        .unwrap()
    })
}

#[test]
fn wal_level_not_logical() {
    let server = replica_server();
    server.create_database("replica_only").unwrap();
    server
        .psql("replica_only", "CREATE TABLE t (id int PRIMARY KEY);")
        .unwrap();
    let url = server.url("replica_only");
    let dir = tempfile::tempdir().unwrap();
    let output = rowtrail(&capture_args(&url, &dir.path().join("c.db"), &[]));
    assert_clean_failure(
        &output,
        2,
        "wal_level is 'replica'; logical capture needs 'logical': run ALTER SYSTEM SET wal_level = logical; then restart PostgreSQL",
    );
    let output = rowtrail(&args(&["doctor", "--source", &url]));
    assert_eq!(output.status.code(), Some(1));
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(
        report.contains("FAIL  wal_level: is 'replica'; logical capture needs 'logical' -- fix: ALTER SYSTEM SET wal_level = logical;"),
        "{report}"
    );
    assert!(
        report.ends_with("capture cannot run: 1 problem to fix (1 warning)\n"),
        "{report}"
    );
}

#[test]
fn unknown_table() {
    let db = fresh_db("unknown");
    db.sql("CREATE TABLE present (id int PRIMARY KEY);");
    let output = rowtrail(&capture_args(
        &db.url(),
        &db.cache(),
        &[
            "--tables",
            "present,public.absent",
            "--slot",
            "unknown_slot",
        ],
    ));
    assert_clean_failure(&output, 2, "table public.absent was not found in database");
    let output = rowtrail(&args(&[
        "doctor",
        "--source",
        &db.url(),
        "--tables",
        "absent",
    ]));
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stdout).contains("FAIL  public.absent: no such table"));
}

#[test]
fn slot_owned_by_another_plugin() {
    let db = fresh_db("plugin");
    db.sql(
        "CREATE TABLE t (id int PRIMARY KEY);
         SELECT pg_create_logical_replication_slot('plugin_other', 'test_decoding');",
    );
    let output = rowtrail(&capture_args(
        &db.url(),
        &db.cache(),
        &["--slot", "plugin_other"],
    ));
    assert_clean_failure(
        &output,
        2,
        "uses the output plugin 'test_decoding', not pgoutput",
    );
    db.sql("SELECT pg_drop_replication_slot('plugin_other');");
}

#[test]
fn a_file_that_is_not_a_cache_is_left_alone() {
    let db = fresh_db("notcache");
    db.sql("CREATE TABLE t (id int PRIMARY KEY);");
    let text = db.dir.path().join("notes.txt");
    std::fs::write(&text, "my precious notes\n").unwrap();
    let output = rowtrail(&capture_args(
        &db.url(),
        &text,
        &["--slot", "notcache_slot"],
    ));
    assert_clean_failure(
        &output,
        2,
        "is not a rowtrail cache (not an SQLite database)",
    );
    assert_eq!(
        std::fs::read_to_string(&text).unwrap(),
        "my precious notes\n"
    );
    let output = rowtrail(&args(&["log", "--cache", text.to_str().unwrap()]));
    assert_clean_failure(&output, 2, "is not a rowtrail cache");
    let output = rowtrail(&args(&["log", "--cache", "/nonexistent/cache.db"]));
    assert_clean_failure(&output, 2, "does not exist");
    let slot =
        db.sql("SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'notcache_slot'");
    assert_eq!(slot, "0", "no slot was created for a refused cache");
}

#[test]
fn a_cache_from_another_source_is_refused_and_kept() {
    let first = fresh_db("first");
    let second = fresh_db("second");
    for db in [&first, &second] {
        db.sql("CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1);");
    }
    first.capture_ok(&[]);
    let before = first.log(&[]);
    let output = rowtrail(&capture_args(
        &second.url(),
        &first.cache(),
        &["--slot", &second.name],
    ));
    assert_clean_failure(&output, 2, "use a new --cache file for this source");
    assert_eq!(first.log(&[]), before, "the cache is untouched");
    let output = rowtrail(&capture_args(
        &first.url(),
        &first.cache(),
        &["--slot", "another_slot"],
    ));
    assert_clean_failure(
        &output,
        2,
        &format!("is fed by replication slot '{}'", first.name),
    );
}

#[test]
fn bad_log_arguments() {
    let db = fresh_db("logargs");
    db.sql("CREATE TABLE t (id int PRIMARY KEY, v text);");
    db.capture_ok(&[]);
    let cache = db.cache();
    let cache = cache.to_str().unwrap();
    let cases: [(&[&str], &str); 6] = [
        (&["--since", "yesterday"], "is not a time"),
        (&["--op", "upsert"], "is not an operation"),
        (
            &["--table", "nope"],
            "table public.nope is not in this cache; it holds: public.t",
        ),
        (&["--table", "t", "--key", "7"], "is not a JSON object"),
        (
            &["--table", "t", "--key", r#"{"code": 1}"#],
            "the key of public.t is (id)",
        ),
        (&["--context", "user"], "is not KEY=VALUE"),
    ];
    for (extra, expected) in cases {
        let mut list = args(&["log", "--cache", cache]);
        list.extend(args(extra));
        assert_clean_failure(&rowtrail(&list), 2, expected);
    }
}

#[test]
fn tables_without_identity_are_refused_before_publishing() {
    let db = fresh_db("noident");
    db.sql("CREATE TABLE loose (a int, b text);");
    let output = rowtrail(&capture_args(
        &db.url(),
        &db.cache(),
        &["--slot", "noident_slot"],
    ));
    assert_clean_failure(
        &output,
        2,
        "ALTER TABLE \"public\".\"loose\" REPLICA IDENTITY FULL;",
    );
    let publications = db.sql("SELECT count(*) FROM pg_publication");
    assert_eq!(
        publications, "0",
        "nothing was published, so the table's writes still work"
    );
    db.sql("UPDATE loose SET a = 1;");
}
