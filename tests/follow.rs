//! Capture as a long-running process: live changes, clean stops on signals, reconnecting.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly on unexpected values.

mod support;

use std::process::Child;
use std::time::Duration;

use support::{fresh_db, wait_for_exit, wait_until};

fn signal(child: &Child, name: &str) {
    let status = std::process::Command::new("kill")
        .args([&format!("-{name}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn live_changes_arrive_and_sigterm_stops_cleanly() {
    let db = fresh_db("live");
    db.sql("CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t VALUES (0, 'base');");
    let mut child = db.spawn_capture(&db.url(), &[]);
    assert!(
        wait_until(Duration::from_secs(30), || db.slot_active()),
        "capture did not start streaming: {}",
        db.capture_log()
    );
    for id in 1..=20 {
        db.sql(&format!("INSERT INTO t VALUES ({id}, 'live');"));
    }
    assert!(
        wait_until(Duration::from_secs(30), || db.log(&[]).len() == 21),
        "live changes did not arrive: {}",
        db.capture_log()
    );
    signal(&child, "TERM");
    let status =
        wait_for_exit(&mut child, Duration::from_secs(30)).expect("capture exits after SIGTERM");
    assert!(status.success(), "{status}: {}", db.capture_log());
    let log = db.capture_log();
    assert!(
        log.contains("stopping after the current transaction"),
        "{log}"
    );
    assert!(log.contains("stopped at"), "{log}");
    assert!(!db.slot_active());
    // The server was told everything is stored: the slot's confirmed position covers the last commit.
    let unconfirmed = db.sql(&format!(
        "SELECT count(*) FROM pg_logical_slot_peek_binary_changes('{}', NULL, NULL,
             'proto_version', '1', 'publication_names', 'rowtrail')",
        db.name
    ));
    assert_eq!(unconfirmed, "0", "no changes left unconfirmed in the slot");
}

#[test]
fn reconnects_when_the_connection_drops() {
    let db = fresh_db("reconnect");
    db.sql("CREATE TABLE t (id int PRIMARY KEY);");
    let mut child = db.spawn_capture(&db.url(), &[]);
    assert!(
        wait_until(Duration::from_secs(30), || db.slot_active()),
        "{}",
        db.capture_log()
    );
    db.sql("INSERT INTO t VALUES (1);");
    assert!(wait_until(Duration::from_secs(30), || db.log(&[]).len() == 1));
    db.sql(&format!(
        "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = '{}'",
        db.name
    ));
    db.sql("INSERT INTO t VALUES (2); INSERT INTO t VALUES (3);");
    assert!(
        wait_until(Duration::from_secs(60), || db.log(&[]).len() == 3),
        "changes after the drop did not arrive: {}",
        db.capture_log()
    );
    assert!(
        db.capture_log().contains("reconnecting in"),
        "{}",
        db.capture_log()
    );
    signal(&child, "INT");
    let status =
        wait_for_exit(&mut child, Duration::from_secs(30)).expect("capture exits after SIGINT");
    assert!(status.success(), "{}", db.capture_log());
    let keys: Vec<String> = db
        .log(&[])
        .iter()
        .map(|change| change["key"]["id"].to_string())
        .collect();
    assert_eq!(
        keys,
        vec!["\"1\"", "\"2\"", "\"3\""],
        "each change exactly once"
    );
}
