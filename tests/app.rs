//! The desktop app, driven by its accessible labels with egui_kittest over caches captured from a
//! real PostgreSQL: select a change and see its diff, filter, record history, state at a moment,
//! the undo script, and a bad cache.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly on unexpected values.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use egui_kittest::Harness;
use egui_kittest::kittest::{NodeT, Queryable};
use rowtrail::ui::{AppOptions, Clock, RowtrailApp};
use support::{TestDb, fresh_db};

/// A small shop: a customer and an order, changed by ann and bob.
fn shop(label: &str) -> TestDb {
    let db = fresh_db(label);
    db.sql(
        "CREATE TABLE customers (id int PRIMARY KEY, name text, plan text);
         CREATE TABLE orders (id int PRIMARY KEY, customer_id int REFERENCES customers, status text, total numeric(10,2));
         ALTER TABLE orders REPLICA IDENTITY FULL;
         INSERT INTO customers VALUES (1, 'Acme', 'free');
         INSERT INTO orders VALUES (7, 1, 'new', 12.50);",
    );
    db.capture_ok(&[]);
    db.sql(
        r#"BEGIN; SELECT pg_logical_emit_message(true, 'rowtrail', '{"user": "ann"}');
             UPDATE orders SET status = 'paid' WHERE id = 7; COMMIT;
           BEGIN; SELECT pg_logical_emit_message(true, 'rowtrail', '{"user": "bob"}');
             UPDATE customers SET plan = 'pro' WHERE id = 1; COMMIT;
           BEGIN; SELECT pg_logical_emit_message(true, 'rowtrail', '{"user": "ann"}');
             UPDATE orders SET status = 'shipped' WHERE id = 7;
             INSERT INTO orders VALUES (8, 1, 'new', 3.00); COMMIT;"#,
    );
    db.capture_ok(&[]);
    db
}

fn app(cache: &Path) -> Harness<'static, RowtrailApp> {
    let cache = cache.to_owned();
    Harness::builder()
        .with_size(egui::Vec2::new(1400.0, 900.0))
        .build_eframe(move |creation| {
            RowtrailApp::fresh(
                creation.egui_ctx.clone(),
                AppOptions {
                    cache: Some(cache),
                    ..options()
                },
            )
        })
}

/// The app's options for a test: a fixed clock, and local time two hours east of UTC whatever the
/// machine's zone, so the screen is the same on every machine.
fn options() -> AppOptions {
    AppOptions {
        clock: Clock::fixed(
            chrono::Utc::now(),
            chrono::FixedOffset::east_opt(2 * 3600).unwrap(),
        ),
        ..AppOptions::default()
    }
}

/// Steps the app until `ready` holds (workers answer on their own threads), or fails after 60 s.
fn wait_for(
    harness: &mut Harness<'_, RowtrailApp>,
    what: &str,
    ready: impl Fn(&Harness<'_, RowtrailApp>) -> bool,
) {
    let started = Instant::now();
    loop {
        harness.step();
        if ready(harness) {
            return;
        }
        if started.elapsed() >= Duration::from_secs(60) {
            let labels: Vec<String> = harness
                .query_all_by_label_contains("")
                .filter_map(|node| node.accesskit_node().label())
                .collect();
            panic!("timed out waiting for {what}; the screen says: {labels:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Clicks the widget labelled `label` once it has stayed in place for a frame: a dialog
/// that grows when its content arrives is re-centred on the next frame, and a click at
/// the old position would miss.
fn click_settled(harness: &mut Harness<'_, RowtrailApp>, label: &str) {
    let mut last = harness.get_by_label(label).rect();
    for _ in 0..100 {
        harness.step();
        let now = harness.get_by_label(label).rect();
        if now == last {
            break;
        }
        last = now;
    }
    harness.get_by_label(label).click();
}

fn has(harness: &Harness<'_, RowtrailApp>, text: &str) -> bool {
    harness.query_all_by_label_contains(text).next().is_some()
}

fn rows(harness: &Harness<'_, RowtrailApp>) -> Vec<String> {
    harness
        .query_all_by_role(egui::accesskit::Role::ListBoxOption)
        .filter_map(|node| node.accesskit_node().label())
        .collect()
}

#[test]
fn selecting_a_change_shows_its_diff_transaction_and_context() {
    let db = shop("app_diff");
    let mut harness = app(&db.cache());
    wait_for(&mut harness, "the timeline", |h| rows(h).len() == 6);
    let listed = rows(&harness);
    assert!(
        listed[0].contains("insert  orders  id=8  user=ann"),
        "{listed:?}"
    );
    assert!(
        listed[2].contains("update  customers  id=1  user=bob  plan"),
        "{listed:?}"
    );
    harness
        .get_by_label_contains("update  customers  id=1")
        .click();
    wait_for(&mut harness, "the detail", |h| has(h, "Undo this change"));
    assert!(has(&harness, "update of public.customers (id)=(1)"));
    assert!(
        has(&harness, "+02:00 (just now)"),
        "local time at the app's fixed offset, relative to its fixed clock"
    );
    for text in [
        "plan",
        "free",
        "pro",
        "bob",
        "Transaction: 1 change",
        "2 unchanged columns",
    ] {
        assert!(has(&harness, text), "{text} is shown");
    }
}

#[test]
fn filters_by_table_and_by_context_user() {
    let db = shop("app_filter");
    let mut harness = app(&db.cache());
    wait_for(&mut harness, "the timeline", |h| rows(h).len() == 6);
    harness.get_by_label("customers  2").click();
    wait_for(&mut harness, "the table filter", |h| rows(h).len() == 2);
    assert!(rows(&harness).iter().all(|row| row.contains("customers")));
    assert!(has(&harness, "2 changes match"));
    harness.get_by_label_contains("All tables").click();
    wait_for(&mut harness, "all tables again", |h| rows(h).len() == 6);

    harness.get_by_label("Context field").click();
    wait_for(&mut harness, "the context fields", |h| {
        h.query_by_label("user").is_some()
    });
    harness.get_by_label("user").click();
    harness.get_by_label("Context value").focus();
    harness.step();
    harness.get_by_label("Context value").type_text("ann");
    wait_for(&mut harness, "the context filter", |h| rows(h).len() == 3);
    assert!(
        rows(&harness).iter().all(|row| row.contains("user=ann")),
        "{:?}",
        rows(&harness)
    );
}

#[test]
fn record_history_and_the_state_at_control() {
    let db = shop("app_history");
    let mut harness = app(&db.cache());
    wait_for(&mut harness, "the timeline", |h| rows(h).len() == 6);
    harness
        .get_all_by_label_contains("update  orders  id=7  user=ann  status")
        .next()
        .unwrap()
        .click();
    wait_for(&mut harness, "the detail", |h| has(h, "Record history (3)"));
    harness.get_by_label("Record history (3)").click();
    wait_for(&mut harness, "the history tab", |h| {
        has(h, "State at a moment")
    });
    assert!(has(&harness, "snapshot · id=7"));
    let slider = harness.get_by_label("State at");
    let lowest = slider.accesskit_node().min_numeric_value().unwrap();
    slider.set_value_accesskit(lowest);
    wait_for(&mut harness, "the record at its first version", |h| {
        has(h, "At ") && h.query_all_by_label("new").next().is_some()
    });
    let slider = harness.get_by_label("State at");
    let highest = slider.accesskit_node().max_numeric_value().unwrap();
    slider.set_value_accesskit(highest);
    wait_for(&mut harness, "the record at its newest version", |h| {
        has(h, "At ") && h.query_all_by_label("shipped").next().is_some()
    });
}

#[test]
fn undo_this_change_previews_the_script() {
    let db = shop("app_undo");
    let mut harness = app(&db.cache());
    wait_for(&mut harness, "the timeline", |h| rows(h).len() == 6);
    harness
        .get_by_label_contains("update  customers  id=1")
        .click();
    wait_for(&mut harness, "the detail", |h| has(h, "Undo this change"));
    harness.get_by_label("Undo this change").click();
    wait_for(&mut harness, "the script", |h| {
        h.query_by_label("Restore script").is_some()
    });
    let script = harness.get_by_label("Restore script").value().unwrap();
    assert!(
        script.contains("UPDATE \"public\".\"customers\" SET \"plan\" = 'free'::text"),
        "{script}"
    );
    assert!(script.contains("rowtrail guard"), "{script}");
    assert!(has(&harness, "Run on source…"));
    click_settled(&mut harness, "Close");
    wait_for(&mut harness, "the dialog to close", |h| {
        h.query_by_label("Restore script").is_none()
    });
}

#[test]
fn the_keyboard_moves_through_the_timeline() {
    let db = shop("app_keys");
    let mut harness = app(&db.cache());
    wait_for(&mut harness, "the timeline", |h| rows(h).len() == 6);
    harness.key_press(egui::Key::ArrowDown);
    harness.key_press(egui::Key::ArrowDown);
    harness.key_press(egui::Key::Enter);
    wait_for(&mut harness, "the detail", |h| {
        has(h, "update of public.customers (id)=(1)")
    });
}

#[test]
fn a_bad_cache_shows_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notes.txt");
    std::fs::write(&path, "not a cache at all").unwrap();
    let mut harness = app(&path);
    wait_for(&mut harness, "the error banner", |h| {
        has(h, "is not a rowtrail cache")
    });
    assert!(
        has(&harness, "Connect a database…"),
        "the welcome screen stays usable"
    );
    harness.get_by_label("Dismiss").click();
    wait_for(&mut harness, "the banner to go", |h| {
        !has(h, "is not a rowtrail cache")
    });
}

#[test]
fn connect_checks_the_source_and_captures_live() {
    let db = fresh_db("app_connect");
    db.sql("CREATE TABLE notes (id int PRIMARY KEY, body text); ALTER TABLE notes REPLICA IDENTITY FULL; INSERT INTO notes VALUES (1, 'first');");
    let cache = db.dir.path().join("live.rowtrail");
    let mut harness = Harness::builder()
        .with_size(egui::Vec2::new(1400.0, 900.0))
        .build_eframe(|creation| RowtrailApp::fresh(creation.egui_ctx.clone(), options()));
    harness.run_steps(2);
    harness.get_by_label("Connect a database…").click();
    wait_for(&mut harness, "the connect dialog", |h| {
        h.query_by_label("Connection URL").is_some()
    });
    let url = harness.get_by_label("Connection URL");
    url.focus();
    harness.step();
    harness.get_by_label("Connection URL").type_text(&db.url());
    harness.step();
    harness.get_by_label("Check").click();
    wait_for(&mut harness, "the checklist", |h| {
        has(h, "Capture can run.")
    });
    assert!(has(
        &harness,
        "REPLICA IDENTITY FULL: complete before-images"
    ));
    let field = harness.get_by_label("Cache file");
    field.focus();
    harness.step();
    harness.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::A);
    harness
        .get_by_label("Cache file")
        .type_text(&cache.display().to_string());
    harness.step();
    harness.get_by_label("Start capture").click();
    wait_for(&mut harness, "the baseline in the timeline", |h| {
        rows(h).len() == 1
    });
    db.sql("INSERT INTO notes VALUES (2, 'second');");
    wait_for(&mut harness, "the live change", |h| {
        rows(h)
            .iter()
            .any(|row| row.contains("insert  notes  id=2"))
    });
    assert!(has(&harness, "streaming"));
    harness.get_by_label("Stop capture").click();
    wait_for(&mut harness, "capture to stop", |h| {
        has(h, "capture stopped")
    });
    db.sql(&format!(
        "SELECT pg_drop_replication_slot('rowtrail_{}');",
        db.name
    ));
}

#[test]
fn try_the_demo_starts_a_live_shop_with_its_guide_and_identity_warning() {
    let mut harness = Harness::builder()
        .with_size(egui::Vec2::new(1400.0, 900.0))
        .build_eframe(|creation| RowtrailApp::fresh(creation.egui_ctx.clone(), options()));
    harness.run_steps(2);
    harness.get_by_label("Try the demo").click();
    wait_for(&mut harness, "the demo's server to start", |h| {
        has(h, "Stories to find")
    });
    wait_for(&mut harness, "live changes from the simulator", |h| {
        has(h, "streaming")
            && rows(h)
                .iter()
                .any(|row| row.contains("request_id") || row.contains("user="))
    });
    // The table list is its own reply; it can come a frame after the timeline.
    wait_for(&mut harness, "the table list", |h| {
        h.query_all_by_label("partial").next().is_some()
    });
    assert!(has(&harness, "support_tickets"));
    let partial: Vec<_> = harness.query_all_by_label("partial").collect();
    assert_eq!(
        partial.len(),
        1,
        "only support_tickets keeps REPLICA IDENTITY DEFAULT"
    );
    harness.get_by_label("Hide").click();
    wait_for(&mut harness, "the guide to go", |h| {
        !has(h, "Stories to find")
    });
    harness.get_by_label("Stop capture").click();
    wait_for(&mut harness, "capture to stop", |h| {
        has(h, "capture stopped")
    });
}

#[test]
fn the_offline_demo_opens_its_cache_with_a_banner() {
    let demo = rowtrail::demo::Demo::start(&rowtrail::demo::DemoOptions {
        keep: None,
        pace: rowtrail::demo::Pace::Human,
        offline: true,
    })
    .unwrap();
    assert!(!demo.is_live());
    let mut harness = Harness::builder()
        .with_size(egui::Vec2::new(1400.0, 900.0))
        .build_eframe(move |creation| {
            RowtrailApp::fresh(
                creation.egui_ctx.clone(),
                AppOptions {
                    demo: Some(demo),
                    ..options()
                },
            )
        });
    wait_for(&mut harness, "the offline story", |h| rows(h).len() > 20);
    assert!(has(&harness, "capture is not live"));
    assert!(has(&harness, "Stories to find"));
    assert!(!has(&harness, "streaming"));
}

#[test]
fn a_capture_whose_slot_was_invalidated_offers_a_new_baseline() {
    use rowtrail::local_pg::{LocalPgOptions, LocalPostgres};
    let server = LocalPostgres::start(&LocalPgOptions {
        settings: vec![
            ("max_slot_wal_keep_size".into(), "1MB".into()),
            ("wal_keep_size".into(), "0".into()),
        ],
        ..LocalPgOptions::default()
    })
    .unwrap();
    server.create_database("lapsed").unwrap();
    let sql = |text: &str| server.psql("lapsed", text).unwrap();
    sql("CREATE TABLE notes (id int PRIMARY KEY, body text);
         ALTER TABLE notes REPLICA IDENTITY FULL;
         INSERT INTO notes VALUES (1, 'first'), (2, 'second');
         CREATE TABLE filler (id int PRIMARY KEY, pad text);");
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("lapsed.rowtrail");
    // Captured before, through the slot the app uses for this database.
    let output = support::rowtrail(&[
        "capture".into(),
        "--source".into(),
        server.url("lapsed"),
        "--cache".into(),
        cache.to_string_lossy().into_owned(),
        "--slot".into(),
        "rowtrail_lapsed".into(),
        "--once".into(),
    ]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    sql("DELETE FROM notes WHERE id = 2;");
    for round in 0..4 {
        sql(&format!(
            "INSERT INTO filler SELECT g, repeat('x', 2000) FROM generate_series({}, {}) g;
             SELECT pg_switch_wal(); CHECKPOINT;",
            round * 10_000 + 1,
            round * 10_000 + 10_000
        ));
    }
    let mut harness = Harness::builder()
        .with_size(egui::Vec2::new(1400.0, 900.0))
        .build_eframe(|creation| RowtrailApp::fresh(creation.egui_ctx.clone(), options()));
    harness.run_steps(2);
    harness.get_by_label("Connect a database…").click();
    wait_for(&mut harness, "the connect dialog", |h| {
        h.query_by_label("Connection URL").is_some()
    });
    harness.get_by_label("Connection URL").focus();
    harness.step();
    harness
        .get_by_label("Connection URL")
        .type_text(&server.url("lapsed"));
    harness.step();
    harness.get_by_label("Check").click();
    wait_for(&mut harness, "the checklist", |h| {
        h.query_by_label("Cache file").is_some()
    });
    harness.get_by_label("Cache file").focus();
    harness.step();
    harness.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::A);
    harness
        .get_by_label("Cache file")
        .type_text(&cache.display().to_string());
    harness.step();
    harness.get_by_label("Start capture").click();
    wait_for(&mut harness, "the offer of a new baseline", |h| {
        has(h, "Start a new baseline")
    });
    assert!(has(&harness, "was invalidated by the server"));
    harness.get_by_label("Start a new baseline").click();
    wait_for(&mut harness, "the cache after the new baseline", |h| {
        h.query_by_label_contains("notes  4").is_some()
    });
    harness.get_by_label_contains("notes  4").click();
    wait_for(&mut harness, "the gap in the timeline", |h| {
        rows(h).iter().any(|row| row.contains("gap  notes"))
    });
    wait_for(&mut harness, "capture streaming again", |h| {
        has(h, "streaming")
    });
    harness.get_by_label("Stop capture").click();
    wait_for(&mut harness, "capture to stop", |h| {
        has(h, "capture stopped")
    });
}
