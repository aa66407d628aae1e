//! Safe with a cache from someone else, on a shared machine, and under pressure (issue 11). Each
//! test is named after the item it shows.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly on unexpected values.

mod support;

use rusqlite::Connection;
use support::{TestDb, assert_clean_failure, fresh_db, rowtrail};

/// Rewrites every stored schema version of the cache with `edit` (a crafted cache).
fn tamper_schemas(db: &TestDb, edit: impl Fn(&mut serde_json::Value)) {
    let connection = Connection::open(db.cache()).unwrap();
    let rows: Vec<(i64, String)> = connection
        .prepare("SELECT id, definition FROM relations")
        .unwrap()
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    for (id, definition) in rows {
        let mut value: serde_json::Value = serde_json::from_str(&definition).unwrap();
        edit(&mut value);
        connection
            .execute(
                "UPDATE relations SET definition = ?1 WHERE id = ?2",
                rusqlite::params![value.to_string(), id],
            )
            .unwrap();
    }
}

fn on_cache(db: &TestDb, args: &[&str]) -> std::process::Output {
    let mut all = vec![
        args[0].to_owned(),
        "--cache".to_owned(),
        db.cache().to_string_lossy().into_owned(),
    ];
    all.extend(args[1..].iter().map(|arg| (*arg).to_owned()));
    rowtrail(&all)
}

#[test]
fn item1_every_type_name_format_type_prints_is_accepted() {
    let db = fresh_db("type_names");
    db.sql(
        r#"CREATE SCHEMA "My Schema";
           CREATE TYPE "My Schema"."My ""Type""" AS ENUM ('a');
           CREATE DOMAIN "My Schema".positive AS numeric(10,2) CHECK (VALUE > 0);
           CREATE TABLE typed (
             a numeric(12,4), b varchar(20), c char(3), d bit(4), e varbit(5), f timestamp(3),
             g timestamptz(3), h time(2), i timetz(2), j interval day to second(3),
             k interval year, l interval(2), m int[], n text[][], o "My Schema"."My ""Type"""[],
             p "My Schema".positive, q "char", r double precision, s float4, t money);"#,
    );
    let names = db.sql(
        "SELECT format_type(atttypid, atttypmod) FROM pg_attribute
         WHERE attrelid = 'typed'::regclass AND attnum > 0
         UNION ALL SELECT format_type(oid, NULL) FROM pg_type
         UNION ALL SELECT format_type(oid, 10) FROM pg_type WHERE typname IN ('numeric', 'varchar', 'bpchar', 'bit', 'varbit', 'timestamp', 'timestamptz', 'time', 'timetz')",
    );
    let mut count = 0;
    for name in names.lines() {
        assert!(
            rowtrail::history::sql::is_type_name(name),
            "format_type printed {name:?}, which is refused"
        );
        count += 1;
    }
    assert!(count > 500, "{count} type names checked");
}

#[test]
fn item1_a_crafted_type_name_never_reaches_a_script() {
    let db = fresh_db("crafted_types");
    db.sql(
        "CREATE TABLE t (id int PRIMARY KEY, v text);
         ALTER TABLE t REPLICA IDENTITY FULL;
         INSERT INTO t VALUES (1, 'a');",
    );
    db.capture_ok(&[]);
    db.sql("UPDATE t SET v = 'b' WHERE id = 1;");
    db.capture_ok(&[]);
    let update = db.log(&["--op", "update"])[0]["id"].to_string();
    for hostile in [
        "text IS NULL OR pg_terminate_backend(pg_backend_pid()) IS NULL",
        "text) OR (true",
        "numeric(pg_sleep(10))",
        "text; DROP TABLE t; --",
    ] {
        tamper_schemas(&db, |definition| {
            definition["columns"][1]["type_name"] = serde_json::Value::from(hostile);
        });
        let output = on_cache(&db, &["undo", "--change", &update]);
        assert_clean_failure(&output, 2, "which rowtrail will not put into SQL");
        assert!(output.stdout.is_empty(), "no script for {hostile}");
    }
    // Hostile names and values are quoted, whatever they hold.
    tamper_schemas(&db, |definition| {
        definition["columns"][1]["type_name"] = serde_json::Value::from("text");
        definition["columns"][1]["name"] = serde_json::Value::from("v\"; DROP TABLE t; --");
        definition["table"]["schema"] = serde_json::Value::from("pub\"lic");
    });
    let output = on_cache(&db, &["undo", "--change", &update]);
    let script = String::from_utf8_lossy(&output.stdout);
    assert!(
        script.contains(r#""pub""lic"."t""#) && script.contains(r#""v""; DROP TABLE t; --""#),
        "{script}"
    );
}

/// A cache captured from a small table, with an insert and an update after the baseline.
fn captured(label: &str) -> TestDb {
    let db = fresh_db(label);
    db.sql(
        "CREATE TABLE t (id int PRIMARY KEY, v text);
         ALTER TABLE t REPLICA IDENTITY FULL;
         INSERT INTO t VALUES (1, 'a');",
    );
    db.capture_ok(&[]);
    db.sql("INSERT INTO t VALUES (2, 'b'); UPDATE t SET v = 'c' WHERE id = 1;");
    db.capture_ok(&[]);
    db
}

#[test]
fn item2_opening_a_cache_never_runs_what_someone_put_in_it() {
    let db = captured("crafted_trigger");
    let connection = Connection::open(db.cache()).unwrap();
    connection
        .execute_batch(
            "CREATE TABLE pwned (at TEXT);
             CREATE TRIGGER evil AFTER INSERT ON changes BEGIN INSERT INTO pwned VALUES ('ran'); END;",
        )
        .unwrap();
    drop(connection);
    db.sql("INSERT INTO t VALUES (3, 'd');");
    let capture = db.capture_once(&[]);
    assert_clean_failure(&capture, 2, "which rowtrail never creates");
    let log = on_cache(&db, &["log"]);
    assert_clean_failure(&log, 2, "it holds a table named 'pwned'");
    let connection = Connection::open(db.cache()).unwrap();
    let ran: i64 = connection
        .query_row("SELECT count(*) FROM pwned", [], |row| row.get(0))
        .unwrap();
    assert_eq!(ran, 0, "the crafted trigger never ran");
}

#[test]
fn item2_a_damaged_cache_gets_a_clear_error_never_a_panic() {
    let db = captured("damaged");
    let pristine = std::fs::read(db.cache()).unwrap();
    let damage = |sql: &str| {
        std::fs::write(db.cache(), &pristine).unwrap();
        for suffix in ["-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", db.cache().display()));
        }
        Connection::open(db.cache())
            .unwrap()
            .execute_batch(&format!("PRAGMA foreign_keys = OFF; {sql}"))
            .unwrap();
    };
    let cases: Vec<(&str, &str)> = vec![
        ("PRAGMA user_version = 99;", "written by a newer rowtrail"),
        ("PRAGMA user_version = 0;", "format version is 0"),
        (
            "UPDATE changes SET after = 'not json' WHERE op = 'I';",
            "is damaged",
        ),
        (
            "UPDATE relations SET definition = '{\"oid\": 1}';",
            "is damaged",
        ),
        (
            "UPDATE transactions SET committed_at = 'yesterday';",
            "wrong type",
        ),
        (
            "UPDATE changes SET before = '{\"99\": \"x\"}' WHERE op = 'U';",
            "is damaged",
        ),
        (
            "INSERT INTO contexts (id, body) VALUES (1, '[1]'); UPDATE changes SET context_id = 1;",
            "is damaged",
        ),
    ];
    for (sql, expected) in cases {
        damage(sql);
        let output = on_cache(&db, &["log", "--json", "--limit", "0"]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!stderr.contains("panicked"), "{sql}: {stderr}");
        assert_clean_failure(&output, 2, expected);
    }
    // A truncated file.
    std::fs::write(db.cache(), &pristine[..pristine.len() / 2]).unwrap();
    for suffix in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db.cache().display()));
    }
    for command in [&["log"][..], &["at", "--table", "t", "--time", "now"]] {
        let output = on_cache(&db, command);
        assert_clean_failure(&output, 2, "is damaged");
        assert!(
            !String::from_utf8_lossy(&output.stderr).contains("disk is full"),
            "a damaged file is not a full disk"
        );
    }
}

#[test]
fn item4_caches_and_their_directory_are_readable_by_their_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let db = captured("private_files");
    let mode = |path: &std::path::Path| std::fs::metadata(path).unwrap().permissions().mode();
    assert_eq!(mode(&db.cache()) & 0o777, 0o600);
    for suffix in ["-wal", "-shm"] {
        let path = std::path::PathBuf::from(format!("{}{suffix}", db.cache().display()));
        if path.exists() {
            assert_eq!(mode(&path) & 0o077, 0, "{}", path.display());
        }
    }
    let shared = db.dir.path().join("share/rowtrail");
    std::fs::create_dir_all(&shared).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o755)).unwrap();
    rowtrail::store::close_own_dir(&shared).unwrap();
    assert_eq!(
        mode(&shared) & 0o777,
        0o700,
        "rowtrail's own directory is closed"
    );
    let fresh = db.dir.path().join("new/data/rowtrail");
    rowtrail::store::create_private_dir(&fresh).unwrap();
    assert_eq!(mode(&fresh) & 0o777, 0o700);
    // A directory someone put a cache in (a home directory, /tmp) is never changed.
    let theirs = db.dir.path().join("theirs");
    std::fs::create_dir_all(&theirs).unwrap();
    std::fs::set_permissions(&theirs, std::fs::Permissions::from_mode(0o1777)).unwrap();
    rowtrail::store::create_private_dir(&theirs).unwrap();
    assert_eq!(
        mode(&theirs) & 0o7777,
        0o1777,
        "an existing directory is left alone"
    );
}

#[test]
fn item9_an_error_states_its_cause_once() {
    let output = rowtrail(&[
        "doctor".into(),
        "--source".into(),
        "host=127.0.0.1 port=1 dbname=x user=u sslmode=verify-full sslrootcert=/nonexistent/ca.pem"
            .into(),
    ]);
    assert_clean_failure(
        &output,
        2,
        "could not read certificates from /nonexistent/ca.pem",
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        stderr.matches("No such file or directory").count(),
        1,
        "{stderr}"
    );
    // A cache path that is a directory's child of a file: an I/O error, said once.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("file");
    std::fs::write(&file, "x").unwrap();
    let output = rowtrail(&[
        "log".into(),
        "--cache".into(),
        file.join("cache.db").to_string_lossy().into_owned(),
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.matches("Not a directory").count() <= 1, "{stderr}");
}

#[test]
fn item3_the_demo_server_is_closed_to_other_local_users() {
    use std::os::unix::fs::PermissionsExt;
    let keep = tempfile::tempdir().unwrap();
    let dir = keep.path().join("demo");
    let demo = rowtrail::demo::Demo::start(&rowtrail::demo::DemoOptions {
        keep: Some(dir.clone()),
        pace: rowtrail::demo::Pace::Fast,
        offline: false,
    })
    .unwrap();
    assert!(demo.is_live());
    let mode =
        |path: &std::path::Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    for private in [dir.clone(), dir.join("socket"), dir.join("data")] {
        assert_eq!(mode(&private), 0o700, "{}", private.display());
    }
    assert_eq!(mode(&dir.join("pgpass")), 0o600);
    assert!(
        !dir.join("pwfile").exists(),
        "the password file is gone after initdb"
    );
    let hba = std::fs::read_to_string(dir.join("data/pg_hba.conf")).unwrap();
    let rules: Vec<&str> = hba
        .lines()
        .filter(|line| !line.trim_start().starts_with('#') && !line.trim().is_empty())
        .collect();
    assert!(
        rules
            .iter()
            .all(|rule| rule.trim_end().ends_with("scram-sha-256")),
        "every connection needs the password, the socket too: {rules:?}"
    );
    let (_, password) = demo.login().unwrap();
    assert_ne!(password.expose(), "rowtrail");
    assert!(password.expose().len() >= 32);
    assert_eq!(
        format!("{password:?} {password}"),
        "Password(********) ********"
    );
    // The command the demo prints reaches the database, through the pgpass file.
    let command = demo.psql_command().unwrap();
    assert!(command.starts_with(&format!("PGPASSFILE={}", dir.join("pgpass").display())));
    let output = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "PATH={}:$PATH {command} -X -A -t -c 'SELECT count(*) > 0 FROM customers'",
            rowtrail::local_pg::LocalPostgres::find_bin_dir()
                .unwrap()
                .display()
        ))
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        "t",
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // Without the password, the socket turns a local user away.
    let port = command
        .split(" -p ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .unwrap();
    let output = std::process::Command::new(
        rowtrail::local_pg::LocalPostgres::find_bin_dir()
            .unwrap()
            .join("psql"),
    )
    .args(["-X", "-w", "-h"])
    .arg(dir.join("socket"))
    .args(["-p", port, "-U", "postgres", "-c", "SELECT 1", "shop"])
    .env("PGPASSFILE", "/nonexistent")
    .output()
    .unwrap();
    assert!(
        !output.status.success(),
        "a password-less login over the socket must fail"
    );
}

#[test]
fn item5_a_password_never_reaches_an_error_message() {
    for source in [
        "postgres://ann:s3cret%zz@127.0.0.1:1/shop",
        "postgres://ann@127.0.0.1:1/shop?password=s3cret%zz",
        "postgres://ann@127.0.0.1:1/shop?s3cret",
        "host=127.0.0.1 port=1 user=ann s3cret dbname=shop",
        "postgres://ann:s3cret@127.0.0.1:1/shop?sslmode=bogus",
    ] {
        let output = rowtrail(&[
            "doctor".into(),
            "--source".into(),
            source.into(),
            "-vv".into(),
        ]);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert_eq!(output.status.code(), Some(2), "{source}: {text}");
        assert!(!text.contains("s3cret"), "{source} leaked: {text}");
    }
}

#[test]
fn item10_a_slot_the_server_invalidated_is_a_gap_never_silently_skipped() {
    use rowtrail::local_pg::{LocalPgOptions, LocalPostgres};
    // A server that gives up WAL a slot still needs once it keeps more than 1 MB of it.
    let server = LocalPostgres::start(&LocalPgOptions {
        settings: vec![
            ("max_slot_wal_keep_size".into(), "1MB".into()),
            ("wal_keep_size".into(), "0".into()),
        ],
        ..LocalPgOptions::default()
    })
    .unwrap();
    server.create_database("gap").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("gap.db");
    let sql = |text: &str| server.psql("gap", text).unwrap();
    let capture = |extra: &[&str]| {
        let mut args = vec![
            "capture".to_owned(),
            "--source".to_owned(),
            server.url("gap"),
            "--cache".to_owned(),
            cache.to_string_lossy().into_owned(),
            "--once".to_owned(),
        ];
        args.extend(extra.iter().map(|arg| (*arg).to_owned()));
        rowtrail(&args)
    };
    sql("CREATE TABLE t (id int PRIMARY KEY, v text);
         ALTER TABLE t REPLICA IDENTITY FULL;
         INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 5) g;
         CREATE TABLE filler (id int PRIMARY KEY, pad text);");
    assert!(capture(&[]).status.success());
    // Changes capture never reads: the server drops their WAL.
    sql("DELETE FROM t WHERE id = 2; UPDATE t SET v = 'changed' WHERE id = 3;");
    for round in 0..4 {
        sql(&format!(
            "INSERT INTO filler SELECT g, repeat('x', 2000) FROM generate_series({}, {}) g;
             SELECT pg_switch_wal(); CHECKPOINT;",
            round * 10_000 + 1,
            round * 10_000 + 10_000
        ));
    }
    assert_eq!(
        sql("SELECT wal_status FROM pg_replication_slots WHERE slot_name = 'rowtrail'"),
        "lost",
        "the server invalidated the slot"
    );
    let before = support::log_json(&cache, &[]).len();
    let output = capture(&[]);
    assert_clean_failure(&output, 2, "was invalidated by the server");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--new-baseline"), "{stderr}");
    assert_eq!(
        support::log_json(&cache, &[]).len(),
        before,
        "nothing stored after the gap"
    );

    sql("INSERT INTO t VALUES (6, 'after');");
    let output = capture(&["--new-baseline"]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let gaps = support::log_json(&cache, &["--op", "gap"]);
    let tables: Vec<&str> = gaps
        .iter()
        .map(|gap| gap["table"].as_str().unwrap())
        .collect();
    assert!(
        tables.contains(&"t") && tables.contains(&"filler"),
        "{gaps:?}"
    );
    assert!(gaps[0]["gap"]["from"].as_str().unwrap().contains('/'));
    // The table after the gap is the table as it is: the row deleted in the gap is gone.
    let now = String::from_utf8(
        rowtrail(&[
            "at".into(),
            "--cache".into(),
            cache.to_string_lossy().into_owned(),
            "--table".into(),
            "t".into(),
            "--time".into(),
            "now".into(),
            "--json".into(),
        ])
        .stdout,
    )
    .unwrap();
    let mut rows: Vec<&str> = now.lines().collect();
    rows.sort();
    assert_eq!(
        rows,
        vec![
            r#"{"id":"1","v":"v1"}"#,
            r#"{"id":"3","v":"changed"}"#,
            r#"{"id":"4","v":"v4"}"#,
            r#"{"id":"5","v":"v5"}"#,
            r#"{"id":"6","v":"after"}"#,
        ]
    );
    let record = String::from_utf8(
        rowtrail(&[
            "at".into(),
            "--cache".into(),
            cache.to_string_lossy().into_owned(),
            "--table".into(),
            "t".into(),
            "--key".into(),
            r#"{"id": 2}"#.into(),
            "--time".into(),
            "now".into(),
        ])
        .stdout,
    )
    .unwrap();
    assert_eq!(record.trim(), "absent", "deleted in the gap");
    // Capture goes on from the new baseline.
    sql("UPDATE t SET v = 'later' WHERE id = 1;");
    assert!(capture(&[]).status.success());
    let last = support::log_json(&cache, &["--table", "t"]);
    assert_eq!(last.last().unwrap()["after"]["v"], "later");
}
