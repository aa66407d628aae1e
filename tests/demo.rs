//! `rowtrail demo`: the check that a fresh machine captures the simulated shop from a private
//! PostgreSQL, the stories it tells, keeping and removing its files, and the offline story.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly on unexpected values.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Output;

use support::{assert_clean_failure, log_json, rowtrail_command};

/// Runs `rowtrail demo` with its temporary files under `tmp`.
fn demo(args: &[&str], tmp: &Path) -> Output {
    rowtrail_command()
        .arg("demo")
        .args(args)
        .env("TMPDIR", tmp)
        .output()
        .expect("run rowtrail demo")
}

/// A directory the server's OS user can reach (the test may run as root, the server as postgres).
fn open_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

fn summary(output: &Output) -> String {
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "demo --check failed: {}{stdout}",
        String::from_utf8_lossy(&output.stderr)
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "one summary line: {stdout}");
    lines[0].to_owned()
}

/// The number before `word` in a summary line, e.g. 118 in "118 changes".
fn figure(line: &str, word: &str) -> u64 {
    let words: Vec<&str> = line.split(' ').collect();
    let at = words
        .iter()
        .position(|w| w.trim_start_matches('(') == word)
        .unwrap();
    words[at - 1].trim_start_matches('(').parse().unwrap()
}

/// The four stories are in a demo cache, told the way the guide says.
fn assert_stories(cache: &Path) {
    let plan = log_json(
        cache,
        &[
            "--table",
            "customers",
            "--key",
            r#"{"id": 42}"#,
            "--op",
            "update",
        ],
    );
    assert!(
        plan.iter().any(|change| change["after"]["plan"] == "pro"
            && change["before"]["plan"] == "free"
            && change["context"]["user"] == "ann@shop.example"),
        "customer 42's plan change: {plan:?}"
    );
    let price = log_json(
        cache,
        &[
            "--table",
            "products",
            "--key",
            r#"{"id": 7}"#,
            "--op",
            "update",
        ],
    );
    assert!(
        price.iter().any(
            |change| change["before"]["price"] == "19.99" && change["after"]["price"] == "1.99"
        ),
        "product 7's price edit: {price:?}"
    );
    let purge = log_json(cache, &["--context", "job=purge-abandoned-carts"]);
    assert!(purge.len() >= 3, "the buggy job deletes items: {purge:?}");
    assert!(purge.iter().all(|change| change["op"] == "delete"
        && change["table"] == "order_items"
        && change["before"]["qty"].is_string()));
    let ticket = log_json(
        cache,
        &[
            "--table",
            "support_tickets",
            "--key",
            r#"{"id": 5}"#,
            "--op",
            "delete",
        ],
    );
    assert_eq!(ticket.len(), 1, "ticket 5 deleted: {ticket:?}");
    // REPLICA IDENTITY DEFAULT sends only the key; the before-image comes from the baseline.
    assert!(ticket[0]["before"]["subject"].is_string(), "{ticket:?}");
    assert_eq!(ticket[0]["context"]["user"], "carol@shop.example");
}

#[test]
fn demo_check_captures_the_simulated_shop_and_keeps_it_when_asked() {
    let tmp = open_dir();
    let keep = tmp.path().join("kept");
    let output = demo(&["--check", "--keep", keep.to_str().unwrap()], tmp.path());
    let line = summary(&output);
    assert!(line.starts_with("demo check passed: "), "{line}");
    assert!(figure(&line, "changes") >= 100, "{line}");
    assert!(figure(&line, "baseline") > 300, "{line}");
    assert!(line.contains("each with its context"), "{line}");
    assert!(line.contains("a private PostgreSQL 1"), "{line}");

    let cache = keep.join("shop.rowtrail");
    assert!(cache.is_file(), "the cache stays in {}", keep.display());
    assert!(
        keep.join("data/PG_VERSION").is_file(),
        "the server's data stays"
    );
    assert!(
        !keep.join("data/postmaster.pid").exists(),
        "the server was stopped"
    );
    assert_stories(&cache);

    // Ticket 5 can be put back from the cache alone.
    let deleted = log_json(
        &cache,
        &[
            "--table",
            "support_tickets",
            "--key",
            r#"{"id": 5}"#,
            "--op",
            "delete",
        ],
    );
    let id = deleted[0]["id"].as_i64().unwrap().to_string();
    let undo = rowtrail_command()
        .args(["undo", "--cache", cache.to_str().unwrap(), "--change", &id])
        .output()
        .unwrap();
    let script = String::from_utf8_lossy(&undo.stdout);
    assert!(
        undo.status.success(),
        "{}",
        String::from_utf8_lossy(&undo.stderr)
    );
    assert!(
        script.contains(r#"INSERT INTO "public"."support_tickets""#)
            || script.contains("INSERT INTO public.support_tickets"),
        "{script}"
    );
}

#[test]
fn demo_check_removes_its_server_and_files() {
    let tmp = open_dir();
    let output = demo(&["--check"], tmp.path());
    let line = summary(&output);
    // A demo that fell back to its offline story would leave nothing behind either: this is
    // about the live server's files.
    assert!(
        line.contains("captured from a private PostgreSQL"),
        "the demo ran live: {line}"
    );
    assert!(line.contains("a temporary cache (now removed"), "{line}");
    let left: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().collect();
    assert!(left.is_empty(), "nothing stays behind: {left:?}");
}

#[test]
fn offline_demo_tells_the_same_story_without_a_server() {
    let tmp = open_dir();
    let keep = tmp.path().join("offline");
    let output = demo(
        &["--check", "--offline", "--keep", keep.to_str().unwrap()],
        tmp.path(),
    );
    let line = summary(&output);
    assert!(line.contains("the offline story (no server)"), "{line}");
    assert!(figure(&line, "changes") >= 100, "{line}");
    assert!(!keep.join("data").exists(), "no server was started");
    assert_stories(&keep.join("shop.rowtrail"));
}

#[test]
fn keep_refuses_a_directory_that_holds_files() {
    let tmp = open_dir();
    std::fs::write(tmp.path().join("notes.txt"), "mine").unwrap();
    let output = demo(
        &["--check", "--keep", tmp.path().to_str().unwrap()],
        tmp.path(),
    );
    assert_clean_failure(&output, 2, "already holds files");
    assert_eq!(
        std::fs::read_to_string(tmp.path().join("notes.txt")).unwrap(),
        "mine"
    );
}
