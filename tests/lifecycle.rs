//! The life of a capture setup: a copied cache reads on its own; teardown removes what capture made.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly on unexpected values.

mod support;

use support::{assert_clean_failure, fresh_db, log_json, rowtrail};

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|arg| (*arg).to_owned()).collect()
}

#[test]
fn a_copied_cache_is_readable_on_its_own() {
    let db = fresh_db("copy");
    db.sql("CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t VALUES (1, 'a');");
    db.capture_ok(&[]);
    db.sql("UPDATE t SET v = 'b';");
    db.capture_ok(&[]);
    let elsewhere = tempfile::tempdir().unwrap();
    let copy = elsewhere.path().join("copied.db");
    std::fs::copy(db.cache(), &copy).unwrap();
    assert!(
        !db.dir.path().join("cache.db-wal").exists()
            || std::fs::metadata(db.dir.path().join("cache.db-wal"))
                .unwrap()
                .len()
                == 0,
        "capture leaves no unmerged write-ahead log behind"
    );
    assert_eq!(log_json(&copy, &[]), db.log(&[]));
}

#[test]
fn teardown_drops_the_slot_and_publication() {
    let db = fresh_db("teardown");
    db.sql("CREATE TABLE t (id int PRIMARY KEY);");
    db.capture_ok(&["--publication", "teardown_pub"]);
    let slots = || {
        db.sql(&format!(
            "SELECT count(*) FROM pg_replication_slots WHERE slot_name = '{}'",
            db.name
        ))
    };
    let publications =
        || db.sql("SELECT count(*) FROM pg_publication WHERE pubname = 'teardown_pub'");
    assert_eq!((slots(), publications()), ("1".into(), "1".into()));

    let output = rowtrail(&args(&[
        "teardown",
        "--source",
        &db.url(),
        "--slot",
        &db.name,
        "--publication",
        "teardown_pub",
    ]));
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains(&format!("dropped replication slot {}", db.name)),
        "{stdout}"
    );
    assert!(
        stdout.contains("dropped publication teardown_pub"),
        "{stdout}"
    );
    assert_eq!((slots(), publications()), ("0".into(), "0".into()));

    let again = rowtrail(&args(&[
        "teardown",
        "--source",
        &db.url(),
        "--slot",
        &db.name,
    ]));
    assert_clean_failure(&again, 2, "nothing to drop");
    // The cache still reads, and capturing again says the slot is gone rather than guessing.
    assert_eq!(db.log(&[]).len(), 0);
    let output = db.capture_once(&["--publication", "teardown_pub"]);
    assert_clean_failure(&output, 2, "no longer exists on the source");
}

#[test]
fn teardown_refuses_a_slot_in_use() {
    let db = fresh_db("busy");
    db.sql(&format!(
        "CREATE TABLE t (id int PRIMARY KEY); CREATE PUBLICATION busy_pub FOR TABLE t;
         SELECT pg_create_logical_replication_slot('{}', 'pgoutput');",
        db.name
    ));
    // Hold the slot with pg_recvlogical, as another consumer would.
    let mut holder = std::process::Command::new(db.server.bin_dir().join("pg_recvlogical"))
        .args(["-h"])
        .arg(db.server.socket_dir())
        .args([
            "-p",
            &db.server.port().to_string(),
            "-U",
            "postgres",
            "-d",
            &db.name,
        ])
        .args(["--slot", &db.name, "--start", "-f", "/dev/null"])
        .args(["-o", "proto_version=1", "-o", "publication_names=busy_pub"])
        .env("PGPASSFILE", db.server.pgpass())
        .stdin(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let busy = support::wait_until(std::time::Duration::from_secs(60), || {
        db.sql(&format!(
            "SELECT active FROM pg_replication_slots WHERE slot_name = '{}'",
            db.name
        )) == "t"
    });
    assert!(busy, "the slot never became active");
    let output = rowtrail(&args(&[
        "teardown",
        "--source",
        &db.url(),
        "--slot",
        &db.name,
    ]));
    assert_clean_failure(&output, 2, "is in use by a running capture");
    holder.kill().unwrap();
    holder.wait().unwrap();
    assert!(support::wait_until(
        std::time::Duration::from_secs(60),
        || {
            db.sql(&format!(
                "SELECT active FROM pg_replication_slots WHERE slot_name = '{}'",
                db.name
            )) == "f"
        }
    ));
    let output = rowtrail(&args(&[
        "teardown",
        "--source",
        &db.url(),
        "--slot",
        &db.name,
    ]));
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}
