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
    app_with(AppOptions {
        cache: Some(cache.to_owned()),
        ..options()
    })
}

/// A fresh app started with these options.
fn app_with(options: AppOptions) -> Harness<'static, RowtrailApp> {
    let mut options = Some(options);
    Harness::builder()
        .with_size(egui::Vec2::new(1400.0, 900.0))
        .build_eframe(move |creation| {
            RowtrailApp::fresh(
                creation.egui_ctx.clone(),
                options.take().unwrap_or_default(),
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
                .query_all(egui_kittest::kittest::By::new().include_labels())
                .filter_map(|node| {
                    let node = node.accesskit_node();
                    node.label().or_else(|| node.value())
                })
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

/// A fresh app with nothing open.
fn empty_app() -> Harness<'static, RowtrailApp> {
    let mut harness = Harness::builder()
        .with_size(egui::Vec2::new(1400.0, 900.0))
        .build_eframe(|creation| RowtrailApp::fresh(creation.egui_ctx.clone(), options()));
    harness.run_steps(2);
    harness
}

/// Clicks `button`, waits for the dialog's field `field`, and types `text` into it.
fn type_into_dialog(harness: &mut Harness<'_, RowtrailApp>, button: &str, field: &str, text: &str) {
    harness.get_by_label(button).click();
    wait_for(harness, field, |h| h.query_by_label(field).is_some());
    harness.get_by_label(field).focus();
    harness.step();
    harness.get_by_label(field).type_text(text);
}

/// Opens *Open audit database…* from the welcome screen and types `url`.
fn open_audit_dialog(harness: &mut Harness<'_, RowtrailApp>, url: &str) {
    type_into_dialog(harness, "Open audit database…", "Audit database URL", url);
}

/// Opens the connect dialog, checks `url`, and waits for the checklist.
fn check_source(harness: &mut Harness<'_, RowtrailApp>, url: &str) {
    type_into_dialog(harness, "Connect a database…", "Connection URL", url);
    harness.step();
    harness.get_by_label("Check").click();
    wait_for(harness, "the checklist", |h| {
        h.query_by_label("Cache file").is_some()
    });
}

/// Replaces the text of the field labelled `label`.
fn retype(harness: &mut Harness<'_, RowtrailApp>, label: &str, text: &str) {
    harness.get_by_label(label).focus();
    harness.step();
    harness.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::A);
    harness.get_by_label(label).type_text(text);
    harness.step();
}

/// Types the cache file into the checked connect dialog and starts capture.
fn start_capture(harness: &mut Harness<'_, RowtrailApp>, cache: &Path) {
    retype(harness, "Cache file", &cache.display().to_string());
    click_settled(harness, "Start capture");
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
    open_row(&mut harness, "update  customers  id=1");
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
    // The facets name the field too; the list's entry is the one that is not a plain label.
    let entry = |h: &Harness<'_, RowtrailApp>| {
        h.query_all_by_label("user")
            .find(|node| node.accesskit_node().role() != egui::accesskit::Role::Label)
            .map(|node| node.rect())
    };
    wait_for(&mut harness, "the context fields", |h| entry(h).is_some());
    harness
        .query_all_by_label("user")
        .find(|node| node.accesskit_node().role() != egui::accesskit::Role::Label)
        .unwrap()
        .click();
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
    open_row(&mut harness, "update  orders  id=7  user=ann  status");
    wait_for(&mut harness, "the record history", |h| {
        has(h, "Record history (3)")
    });
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
    open_row(&mut harness, "update  customers  id=1");
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
    let mut harness = empty_app();
    check_source(&mut harness, &db.url());
    assert!(has(&harness, "Capture can run."));
    assert!(has(
        &harness,
        "REPLICA IDENTITY FULL: complete before-images"
    ));
    start_capture(&mut harness, &cache);
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
    let mut harness = empty_app();
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
    // The guide opens customer 42's story: its orders and their items in one timeline.
    click_settled(&mut harness, "Open customer 42's story");
    wait_for(&mut harness, "customer 42's story", |h| {
        has(h, "customers 42 › orders ") && has(h, "› order_items (")
    });
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
    let mut harness = empty_app();
    check_source(&mut harness, &server.url("lapsed"));
    start_capture(&mut harness, &cache);
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

// The app as people use it (issue 12).

/// Clicks the first timeline row whose text contains `text`, and waits for its detail.
fn open_row(harness: &mut Harness<'_, RowtrailApp>, text: &str) {
    wait_for(harness, "the row", |h| {
        rows(h).iter().any(|row| row.contains(text))
    });
    let row = |h: &Harness<'_, RowtrailApp>| {
        h.get_all_by_label_contains(text)
            .find(|node| node.accesskit_node().role() == egui::accesskit::Role::ListBoxOption)
            .unwrap()
            .rect()
    };
    // Rows move while the panels around them fill in: click once the row stays put, in its
    // Time cell (the middle of a row may be a column border, which takes the click).
    let mut last = row(harness);
    for _ in 0..100 {
        harness.step();
        let now = row(harness);
        if now == last {
            break;
        }
        last = now;
    }
    let at = egui::pos2(last.left() + 40.0, last.center().y);
    harness.hover_at(at);
    harness.step();
    harness.event(egui::Event::PointerButton {
        pos: at,
        button: egui::PointerButton::Primary,
        pressed: true,
        modifiers: egui::Modifiers::NONE,
    });
    harness.event(egui::Event::PointerButton {
        pos: at,
        button: egui::PointerButton::Primary,
        pressed: false,
        modifiers: egui::Modifiers::NONE,
    });
    wait_for(harness, "the detail", |h| has(h, "Undo this change"));
}

/// The `rowtrail log --json` changes of a cache.
fn logged(cache: &Path) -> Vec<serde_json::Value> {
    support::log_json(cache, &[])
}

#[test]
fn item1_undo_transaction_puts_back_every_row_of_a_transaction_and_says_who_did_it() {
    let db = shop("app_undo_tx");
    db.sql(
        r#"BEGIN; SELECT pg_logical_emit_message(true, 'rowtrail', '{"user": "mallory"}');
             UPDATE orders SET status = 'lost' WHERE id = 7;
             UPDATE customers SET plan = 'none' WHERE id = 1;
             DELETE FROM orders WHERE id = 8; COMMIT;"#,
    );
    db.capture_ok(&[]);
    let before_fix = db.sql("SELECT status FROM orders WHERE id = 7");
    assert_eq!(before_fix, "lost");
    let mut harness = app(&db.cache());
    open_row(&mut harness, "delete  orders  id=8");
    harness.get_by_label("Undo transaction").click();
    wait_for(&mut harness, "the script", |h| {
        h.query_by_label("Restore script").is_some()
    });
    let script = harness.get_by_label("Restore script").value().unwrap();
    assert!(script.contains("undo transaction"), "{script}");
    assert!(
        script.contains("INSERT INTO \"public\".\"orders\""),
        "{script}"
    );
    assert!(
        script.contains("UPDATE \"public\".\"customers\""),
        "{script}"
    );
    assert!(
        script.contains("pg_logical_emit_message(true, 'rowtrail'"),
        "the script records who made the repair: {script}"
    );
    // The source the cache names, as a connection URL (not as a label).
    let database = harness.get_by_label("Database").value().unwrap();
    assert!(
        database.starts_with("postgresql://postgres@127.0.0.1:"),
        "{database}"
    );
    retype(&mut harness, "Password", db.server.password().expose());
    click_settled(&mut harness, "Run on source…");
    wait_for(&mut harness, "the confirmation", |h| {
        h.query_by_label("Run it").is_some()
    });
    click_settled(&mut harness, "Run it");
    wait_for(&mut harness, "the run", |h| {
        has(h, "The script ran and committed.")
    });
    assert_eq!(db.sql("SELECT status FROM orders WHERE id = 7"), "shipped");
    assert_eq!(db.sql("SELECT plan FROM customers WHERE id = 1"), "pro");
    assert_eq!(db.sql("SELECT status FROM orders WHERE id = 8"), "new");
    // The repair is in the history as what it is.
    db.capture_ok(&[]);
    let repair = logged(&db.cache())
        .into_iter()
        .find(|change| {
            change["op"] == "insert"
                && change["key"]["id"] == "8"
                && change["context"]["tool"] == "rowtrail"
        })
        .expect("the re-inserted order, written by the repair");
    let context = &repair["context"];
    assert_eq!(context["tool"], "rowtrail", "{repair}");
    assert!(
        context["undo"]
            .as_str()
            .unwrap()
            .starts_with("transaction "),
        "{repair}"
    );
    let user = context["user"].as_str().unwrap();
    assert!(
        !user.is_empty() && user != "unknown",
        "the OS user, even where USER is not set: {repair}"
    );
}

#[test]
fn item2_enter_in_a_text_field_stays_in_the_field() {
    let db = shop("app_enter");
    let mut harness = app(&db.cache());
    open_row(&mut harness, "update  orders  id=7  user=ann  status");
    harness.get_by_label_contains("Record history").click();
    wait_for(&mut harness, "the history tab", |h| {
        has(h, "State at a moment")
    });
    // A time typed into State at, and Enter: the record at that moment shows and stays.
    let first = logged(&db.cache())
        .iter()
        .filter(|change| change["table"] == "orders")
        .map(|change| change["committed_at"].as_str().unwrap().to_owned())
        .min()
        .unwrap();
    let first = chrono::DateTime::parse_from_rfc3339(&first).unwrap();
    let typed = first
        .with_timezone(&chrono::FixedOffset::east_opt(2 * 3600).unwrap())
        .format("%Y-%m-%d %H:%M:%S%.6f")
        .to_string();
    harness.get_by_label("At time").focus();
    harness.step();
    harness.get_by_label("At time").type_text(&typed);
    harness.key_press(egui::Key::Enter);
    wait_for(&mut harness, "the record at that moment", |h| {
        has(h, "At 2")
    });
    harness.run_steps(10);
    assert!(
        has(&harness, "At 2") && has(&harness, "State at a moment"),
        "the answer stays: nothing else took the Enter"
    );
    // Enter in the From filter filters; it does not open the timeline's row under the cursor.
    harness.get_by_label("From").focus();
    harness.step();
    harness.get_by_label("From").type_text("1d");
    harness.key_press(egui::Key::Enter);
    harness.run_steps(20);
    assert!(
        has(&harness, "At 2"),
        "the detail was not reopened by the Enter"
    );
    assert!(
        !harness.get_by_label("Change").is_focused(),
        "the Enter did not move the keyboard into the detail"
    );
}

#[test]
fn item3_typed_times_are_read_in_the_zone_shown() {
    let db = shop("app_zone");
    let mut harness = app(&db.cache());
    wait_for(&mut harness, "the timeline", |h| rows(h).len() == 6);
    let today_utc = chrono::Utc::now().format("%Y-%m-%d").to_string();
    harness.get_by_label("UTC").click();
    harness.step();
    harness.get_by_label("From").focus();
    harness.step();
    harness.get_by_label("From").type_text("12:50");
    harness.step();
    wait_for(&mut harness, "the time understood, in UTC", |h| {
        has(h, &format!("= {today_utc} 12:50:00 UTC"))
    });
    // Back to local time (two hours east): the field keeps meaning the same moment.
    harness.get_by_label("UTC").click();
    wait_for(&mut harness, "the time in local time", |h| {
        has(h, &format!("= {today_utc} 14:50:00 +02:00"))
    });
    assert_eq!(
        harness.get_by_label("From").value().unwrap(),
        format!("{today_utc} 14:50:00")
    );
}

#[test]
fn item4_the_open_record_follows_live_changes() {
    let db = fresh_db("app_live_record");
    db.sql("CREATE TABLE notes (id int PRIMARY KEY, body text); ALTER TABLE notes REPLICA IDENTITY FULL; INSERT INTO notes VALUES (1, 'first');");
    let cache = db.dir.path().join("live.rowtrail");
    let mut harness = empty_app();
    check_source(&mut harness, &db.url());
    start_capture(&mut harness, &cache);
    wait_for(&mut harness, "the baseline", |h| rows(h).len() == 1);
    open_row(&mut harness, "snapshot  notes  id=1");
    assert!(has(&harness, "Record history (1)"));
    db.sql("UPDATE notes SET body = 'second' WHERE id = 1;");
    wait_for(&mut harness, "the new version in the open record", |h| {
        has(h, "Record history (2)")
    });
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
fn item5_the_connect_dialog_checks_the_slot_capture_will_use() {
    let db = fresh_db("app_busy_slot");
    let slot = format!("rowtrail_{}", db.name);
    db.sql(&format!(
        "CREATE TABLE notes (id int PRIMARY KEY, body text);
         CREATE PUBLICATION busy_pub FOR ALL TABLES;
         SELECT pg_create_logical_replication_slot('{slot}', 'pgoutput');"
    ));
    // Hold the slot with pg_recvlogical, as another capture would.
    let mut holder = std::process::Command::new(db.server.bin_dir().join("pg_recvlogical"))
        .arg("-h")
        .arg(db.server.socket_dir())
        .args(["-p", &db.server.port().to_string()])
        .args(["-U", "postgres", "-d", &db.name, "--slot", &slot])
        .args(["--start", "-f", "/dev/null"])
        .args(["-o", "proto_version=1", "-o", "publication_names=busy_pub"])
        .env("PGPASSFILE", db.server.pgpass())
        .stdin(std::process::Stdio::null())
        .spawn()
        .unwrap();
    assert!(support::wait_until(Duration::from_secs(60), || db.sql(
        &format!("SELECT active FROM pg_replication_slots WHERE slot_name = '{slot}'")
    ) == "t"));
    let mut harness = empty_app();
    check_source(&mut harness, &db.url());
    assert!(
        has(&harness, &format!("slot {slot}")),
        "the slot capture will use"
    );
    assert!(has(
        &harness,
        "Capture cannot start while another capture reads its slot"
    ));
    assert!(
        harness
            .get_by_label("Start capture")
            .accesskit_node()
            .is_disabled()
    );
    holder.kill().unwrap();
    holder.wait().unwrap();

    // A capture that fails says why in the status bar and offers Retry.
    assert!(support::wait_until(Duration::from_secs(60), || db.sql(
        &format!("SELECT active FROM pg_replication_slots WHERE slot_name = '{slot}'")
    ) == "f"));
    click_settled(&mut harness, "Check");
    wait_for(&mut harness, "the checklist again", |h| {
        has(h, "Capture can run.")
    });
    start_capture(
        &mut harness,
        Path::new("/proc/rowtrail-cannot-write/x.rowtrail"),
    );
    wait_for(&mut harness, "the failure", |h| has(h, "capture stopped:"));
    assert!(has(&harness, "Retry"));
    db.sql(&format!("SELECT pg_drop_replication_slot('{slot}');"));
}

#[test]
fn item7_timeline_columns_are_resizable_and_cut_text_with_an_ellipsis() {
    let db = fresh_db("app_columns");
    db.sql(
        "CREATE TABLE lines (order_id int, line int, note text, PRIMARY KEY (order_id, line));
         INSERT INTO lines VALUES (4242, 17, 'x');",
    );
    db.capture_ok(&[]);
    db.sql(
        r#"BEGIN; SELECT pg_logical_emit_message(true, 'rowtrail', '{"user": "a.very.long.user.name@support.example.com", "endpoint": "PUT /orders/4242/lines/17"}');
             UPDATE lines SET note = 'y'; COMMIT;"#,
    );
    db.capture_ok(&[]);
    let mut harness = app(&db.cache());
    wait_for(&mut harness, "the timeline", |h| rows(h).len() == 2);
    // The Key column fits composite keys whole.
    wait_for(&mut harness, "the key", |h| {
        h.query_all_by_label("order_id=4242,line=17")
            .next()
            .is_some()
    });
    harness.run_steps(3);
    let key = harness
        .query_all_by_label("order_id=4242,line=17")
        .next()
        .unwrap()
        .rect();
    let who_header = harness
        .query_all_by_label("Who")
        .map(|node| node.rect())
        .min_by(|a, b| a.top().total_cmp(&b.top()))
        .unwrap();
    assert!(
        key.width() > 120.0 && key.right() <= who_header.left(),
        "the Key column grew past its first 90 px to fit the key: {key:?}, Who at {who_header:?}"
    );
    // A long Who is cut to its column (with an ellipsis) …
    let who = |h: &Harness<'_, RowtrailApp>| {
        h.query_all_by_label_contains("user=a.very")
            .find(|node| node.accesskit_node().role() == egui::accesskit::Role::Label)
            .map(|node| node.rect())
            .unwrap()
    };
    let header = |h: &Harness<'_, RowtrailApp>| {
        h.query_all_by_label("Changed")
            .map(|node| node.rect())
            .min_by(|a, b| a.top().total_cmp(&b.top()))
            .unwrap()
    };
    let cut = who(&harness);
    assert!(
        cut.right() <= header(&harness).left(),
        "the cell stays in its column: {cut:?}"
    );
    // … and shows more when its border (just left of the Changed header) is dragged.
    let start = egui::Pos2::new(header(&harness).left() - 4.0, header(&harness).center().y);
    harness.hover_at(start);
    harness.step();
    harness.hover_at(start);
    harness.step();
    harness.drag_at(start);
    harness.step();
    for step in 1..=20 {
        harness.hover_at(start + egui::vec2(step as f32 * 15.0, 0.0));
        harness.step();
    }
    harness.drop_at(start + egui::vec2(300.0, 0.0));
    harness.run_steps(3);
    let wide = who(&harness);
    assert!(
        wide.width() > cut.width() + 100.0,
        "the widened column shows more of the text: {cut:?} then {wide:?}"
    );
    assert!(
        header(&harness).left() > start.x + 200.0,
        "the column kept its new width"
    );
}

#[test]
fn item8_the_detail_follows_the_cursor_and_enter_moves_into_it() {
    let db = shop("app_cursor");
    let mut harness = app(&db.cache());
    wait_for(&mut harness, "the timeline", |h| rows(h).len() == 6);
    harness.key_press(egui::Key::ArrowDown);
    harness.key_press(egui::Key::ArrowDown);
    wait_for(
        &mut harness,
        "the detail of the row under the cursor",
        |h| has(h, "update of public.customers (id)=(1)"),
    );
    harness.key_press(egui::Key::ArrowDown);
    wait_for(&mut harness, "the detail of the next row", |h| {
        has(h, "update of public.orders (id)=(7)")
    });
    harness.key_press(egui::Key::Enter);
    wait_for(&mut harness, "the keyboard in the detail", |h| {
        h.get_by_label("Change").is_focused()
    });
    // Escape hands it back: the arrows move the cursor again.
    harness.key_press(egui::Key::Escape);
    harness.step();
    harness.key_press(egui::Key::ArrowUp);
    wait_for(&mut harness, "the cursor moving again", |h| {
        has(h, "update of public.customers (id)=(1)")
    });
}

#[test]
fn item9_the_restore_dialog_lists_what_the_guard_stops_at_and_can_include_it() {
    let db = fresh_db("app_later");
    db.sql("CREATE TABLE orders (id int PRIMARY KEY, status text, total numeric); INSERT INTO orders VALUES (7, 'new', 10);");
    db.capture_ok(&[]);
    db.sql(
        r#"BEGIN; SELECT pg_logical_emit_message(true, 'rowtrail', '{"user": "ann"}');
             UPDATE orders SET status = 'paid' WHERE id = 7; COMMIT;
           BEGIN; SELECT pg_logical_emit_message(true, 'rowtrail', '{"user": "bob"}');
             UPDATE orders SET total = 12 WHERE id = 7; COMMIT;
           BEGIN; SELECT pg_logical_emit_message(true, 'rowtrail', '{"user": "eve"}');
             UPDATE orders SET status = 'shipped' WHERE id = 7; COMMIT;"#,
    );
    db.capture_ok(&[]);
    let mut harness = app(&db.cache());
    open_row(&mut harness, "update  orders  id=7  user=ann");
    harness.get_by_label("Undo this change").click();
    wait_for(&mut harness, "the script", |h| {
        h.query_by_label("Restore script").is_some()
    });
    assert!(has(&harness, "The guard will stop this script"));
    assert!(
        has(&harness, "update of orders id=7 by user=eve: status"),
        "the change that touched what the script checks, readably"
    );
    assert!(
        !has(&harness, "by user=bob"),
        "bob changed only total, which the script does not check"
    );
    assert!(has(
        &harness,
        "A later change to the same rows changed nothing this script checks"
    ));
    click_settled(&mut harness, "Include later changes");
    wait_for(&mut harness, "the script with the later changes", |h| {
        h.query_by_label("Restore script")
            .and_then(|node| node.value())
            .is_some_and(|script| script.contains("--cascade: also undoes later changes"))
    });
    let script = harness.get_by_label("Restore script").value().unwrap();
    assert!(script.contains("\"status\" = 'new'::text"), "{script}");
    assert!(script.contains("\"total\" = '10'::numeric"), "{script}");
    db.sql(&script);
    assert_eq!(
        db.sql("SELECT status || ' ' || total FROM orders WHERE id = 7"),
        "new 10"
    );
}

#[test]
fn item11_search_finds_column_values_and_keys_as_shown() {
    let db = shop("app_search");
    let mut harness = app(&db.cache());
    wait_for(&mut harness, "the timeline", |h| rows(h).len() == 6);
    let search = |harness: &mut Harness<'_, RowtrailApp>, text: &str| {
        retype(harness, "Search keys and values", text);
        harness.key_press(egui::Key::Enter);
    };
    search(&mut harness, "customer_id:1");
    wait_for(&mut harness, "the orders of customer 1", |h| {
        rows(h).len() == 4 && rows(h).iter().all(|row| row.contains("orders"))
    });
    search(&mut harness, "id=8");
    wait_for(&mut harness, "order 8 by its key as shown", |h| {
        rows(h).len() == 1 && rows(h)[0].contains("insert  orders  id=8")
    });
    search(&mut harness, "customers.plan:pro");
    wait_for(&mut harness, "the change that set the plan", |h| {
        rows(h).len() == 1 && rows(h)[0].contains("update  customers  id=1")
    });
    search(&mut harness, "shipped");
    wait_for(&mut harness, "free text", |h| {
        rows(h).len() == 1 && rows(h)[0].contains("update  orders  id=7")
    });
    search(&mut harness, "status:");
    wait_for(&mut harness, "a clear error", |h| {
        has(h, "Search: search term 'status:' has no value after ':'")
    });
    search(&mut harness, "colour:red");
    wait_for(&mut harness, "a clear error", |h| {
        has(h, "no table in this cache has a column named colour")
    });
    // Said under the filters, not as a failure of the cache, and the timeline keeps showing
    // the last search that ran.
    wait_for(&mut harness, "the last results again", |h| {
        rows(h).len() == 1 && rows(h)[0].contains("update  orders  id=7")
    });
    assert!(harness.query_by_label("Dismiss").is_none(), "no banner");
    search(&mut harness, "id=8");
    wait_for(&mut harness, "a fixed search runs", |h| {
        rows(h).len() == 1
            && rows(h)[0].contains("insert  orders  id=8")
            && !has(h, "no table in this cache has a column named colour")
    });
}

#[test]
fn item12_facets_count_what_matches_and_add_it_to_the_filter() {
    let db = shop("app_facets");
    let mut harness = app(&db.cache());
    wait_for(&mut harness, "the facets", |h| has(h, "Who and where"));
    let facet = |h: &Harness<'_, RowtrailApp>, label: &str| {
        h.query_all_by_label(label)
            .find(|node| node.accesskit_node().role() != egui::accesskit::Role::Label)
            .map(|node| node.rect())
    };
    assert!(facet(&harness, "  ann").is_some());
    facet_click(&mut harness, "  ann");
    wait_for(&mut harness, "ann's changes", |h| rows(h).len() == 3);
    assert!(has(&harness, "user = ann  ×"), "the pick is shown");
    assert!(
        has(&harness, "orders  3") && has(&harness, "customers  0"),
        "the table counts follow the filter"
    );
    harness.get_by_label("user = ann  ×").click();
    wait_for(&mut harness, "everything again", |h| rows(h).len() == 6);
    wait_for(&mut harness, "the changed columns", |h| {
        facet(h, "status").is_some()
    });
    facet_click(&mut harness, "status");
    wait_for(&mut harness, "the updates of status", |h| {
        rows(h).len() == 2
    });
    assert!(rows(&harness).iter().all(|row| row.contains("status")));
    // Context values typed in the filter match by their start.
    harness.get_by_label("changed status  ×").click();
    wait_for(&mut harness, "everything again", |h| rows(h).len() == 6);
    harness.get_by_label("Context field").click();
    let entry = |h: &Harness<'_, RowtrailApp>| facet(h, "user");
    wait_for(&mut harness, "the context fields", |h| entry(h).is_some());
    facet_click(&mut harness, "user");
    retype(&mut harness, "Context value", "an");
    wait_for(&mut harness, "the values starting with an", |h| {
        rows(h).len() == 3
    });
}

/// Clicks the facet (or list entry) labelled `label`, not a plain label of the same text.
fn facet_click(harness: &mut Harness<'_, RowtrailApp>, label: &str) {
    harness
        .query_all_by_label(label)
        .find(|node| node.accesskit_node().role() != egui::accesskit::Role::Label)
        .unwrap()
        .click();
}

#[test]
fn item13_clicking_a_value_in_a_diff_filters_on_it() {
    let db = shop("app_value_click");
    let mut harness = app(&db.cache());
    open_row(&mut harness, "insert  orders  id=8");
    harness.get_by_label("new").click();
    wait_for(&mut harness, "the search for the value", |h| {
        h.get_by_label("Search keys and values").value().as_deref() == Some("status:new")
    });
    let expected = support::log_json(&db.cache(), &["--search", "status:new"]).len();
    assert!(expected >= 2, "the snapshot of order 7 and the insert of 8");
    wait_for(&mut harness, "the changes where status is new", |h| {
        rows(h).len() == expected && rows(h).iter().all(|row| row.contains("orders"))
    });
}

#[test]
fn item15_a_transaction_folds_to_one_row() {
    let db = shop("app_fold");
    let mut harness = app(&db.cache());
    wait_for(&mut harness, "the timeline", |h| rows(h).len() == 6);
    harness.get_by_label("Group by transaction").click();
    wait_for(&mut harness, "the fold buttons", |h| {
        h.query_all_by_label_contains("Fold transaction")
            .next()
            .is_some()
    });
    let fold = harness
        .get_all_by_label_contains("Fold transaction")
        .next()
        .unwrap()
        .accesskit_node()
        .label()
        .unwrap();
    click_settled(&mut harness, &fold);
    wait_for(&mut harness, "the transaction folded", |h| {
        rows(h).len() == 5
            && rows(h)
                .iter()
                .any(|row| row.contains("and 1 change more in this transaction"))
    });
    click_settled(&mut harness, &fold.replace("Fold", "Unfold"));
    wait_for(&mut harness, "the transaction unfolded", |h| {
        rows(h).len() == 6
    });
}

// One customer's whole story (issue 13).

#[test]
fn issue13_related_history_shows_an_order_items_change_with_its_path() {
    let db = fresh_db("app_related");
    db.sql(
        "CREATE TABLE customers (id int PRIMARY KEY, name text);
         CREATE TABLE orders (id int PRIMARY KEY, customer_id int REFERENCES customers, status text);
         CREATE TABLE order_items (order_id int REFERENCES orders, line int, sku text, PRIMARY KEY (order_id, line));
         INSERT INTO customers VALUES (42, 'Acme'), (43, 'Other');",
    );
    db.capture_ok(&[]);
    db.sql(
        "INSERT INTO orders VALUES (7, 42, 'new'), (8, 43, 'new');
         INSERT INTO order_items VALUES (7, 1, 'A'), (8, 1, 'B');
         UPDATE order_items SET sku = 'A2' WHERE order_id = 7;
         UPDATE customers SET name = 'Acme Ltd' WHERE id = 42;",
    );
    db.capture_ok(&[]);
    let mut harness = app(&db.cache());
    open_row(&mut harness, "update  customers  id=42");
    click_settled(&mut harness, "Related history");
    let item = "customers 42 › orders 7 › order_items (7,1)";
    wait_for(&mut harness, "the story", |h| has(h, item));
    assert!(has(
        &harness,
        "update · customers 42 › orders 7 › order_items (7,1)"
    ));
    assert!(
        !has(&harness, "orders 8"),
        "another customer's order is not in the story"
    );
    let entry = harness
        .get_all_by_label_contains("insert · customers 42 › orders 7 › order_items (7,1)")
        .next()
        .unwrap()
        .accesskit_node()
        .label()
        .unwrap();
    click_settled(&mut harness, &entry);
    wait_for(&mut harness, "the item's change", |h| {
        has(h, "insert of public.order_items (order_id, line)=(7, 1)")
    });
    wait_for(&mut harness, "its diff in the story", |h| {
        h.query_all_by_label("sku").next().is_some()
    });
    // The story exports as a Markdown report.
    harness.get_by_label("Export…").click();
    wait_for(&mut harness, "the export dialog", |h| {
        h.query_by_label("Save export").is_some()
    });
    assert!(has(&harness, "The related history of customers 42"));
    let file = db.dir.path().join("story.md");
    retype(&mut harness, "File", &file.display().to_string());
    click_settled(&mut harness, "Save export");
    wait_for(&mut harness, "the export", |h| has(h, "Wrote 5 changes to"));
    let report = std::fs::read_to_string(&file).unwrap();
    assert!(
        report.starts_with("# The story of customers 42"),
        "{report}"
    );
    assert!(
        report.contains("— customers 42 › orders 7 › order_items (7,1)"),
        "{report}"
    );
    assert!(!report.contains("orders 8"), "{report}");
    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600,
        "an export holds production data: its owner's only"
    );
}

#[test]
fn the_mouse_wheel_scrolls_the_timeline_over_its_rows() {
    let db = fresh_db("app_wheel");
    db.sql("CREATE TABLE notes (id int PRIMARY KEY); INSERT INTO notes SELECT generate_series(1, 300);");
    db.capture_ok(&[]);
    let mut harness = app(&db.cache());
    wait_for(&mut harness, "the timeline", |h| {
        rows(h).first().is_some_and(|row| row.contains("id=300"))
    });
    let row = harness
        .get_all_by_label_contains("id=290")
        .find(|node| node.accesskit_node().role() == egui::accesskit::Role::ListBoxOption)
        .unwrap()
        .rect();
    harness.hover_at(row.center());
    harness.step();
    for _ in 0..5 {
        harness.event(egui::Event::MouseWheel {
            unit: egui::MouseWheelUnit::Line,
            delta: egui::vec2(0.0, -3.0),
            phase: egui::TouchPhase::Move,
            source: egui::MouseWheelSource::Unknown,
            modifiers: egui::Modifiers::NONE,
        });
        harness.step();
    }
    wait_for(&mut harness, "the list to move down", |h| {
        rows(h).first().is_some_and(|row| !row.contains("id=300"))
    });
}

#[test]
fn zooming_the_histogram_keeps_the_timeline_below_it() {
    let db = shop("app_zoom");
    let mut harness = app(&db.cache());
    wait_for(&mut harness, "the timeline", |h| rows(h).len() == 6);
    let chart = harness.get_by_label("Changes over time").rect();
    let header = |h: &Harness<'_, RowtrailApp>| {
        h.query_all_by_label("Time")
            .map(|node| node.rect())
            .min_by(|a, b| a.top().total_cmp(&b.top()))
            .unwrap()
    };
    let before = header(&harness);
    let (from, to) = (
        egui::pos2(chart.left() + 5.0, chart.center().y),
        egui::pos2(chart.right() - 5.0, chart.center().y),
    );
    harness.hover_at(from);
    harness.step();
    harness.drag_at(from);
    harness.step();
    for step in 1..=10 {
        harness.hover_at(from + (to - from) * (step as f32 / 10.0));
        harness.step();
    }
    harness.drop_at(to);
    wait_for(&mut harness, "the zoom", |h| {
        h.query_by_label("Zoom out").is_some()
    });
    harness.run_steps(3);
    assert!(
        header(&harness).top() >= before.top() - 0.5,
        "the Zoom out button takes no room from the timeline: {before:?} then {:?}",
        header(&harness)
    );
    click_settled(&mut harness, "Zoom out");
    wait_for(&mut harness, "the zoom undone", |h| {
        h.query_by_label("Zoom out").is_none()
    });
}

#[test]
fn issue13_make_a_view_and_see_its_labelled_timeline_then_reopen_it_from_its_link() {
    let db = fresh_db("app_view");
    db.sql(
        "CREATE TABLE products (id int PRIMARY KEY, name text, price numeric(10,2));
         ALTER TABLE products REPLICA IDENTITY FULL;
         INSERT INTO products VALUES (1, 'pen', 5.00), (2, 'desk', 150.00);",
    );
    db.capture_ok(&[]);
    db.sql(
        "UPDATE products SET price = 120.00 WHERE id = 1;
         UPDATE products SET price = 90.00 WHERE id = 2;
         UPDATE products SET name = 'small desk' WHERE id = 2;",
    );
    db.capture_ok(&[]);
    let mut harness = app(&db.cache());
    wait_for(&mut harness, "the timeline", |h| rows(h).len() == 5);
    save_new_view(&mut harness, "dear products", "products", "price > 100");
    wait_for(&mut harness, "the view's timeline", |h| {
        has(h, "3 changes entered, left or updated inside the view")
    });
    assert!(has(&harness, "View dear products"));
    for label in ["enter", "leave"] {
        assert!(
            harness.query_all_by_label(label).next().is_some(),
            "a change labelled {label}"
        );
    }
    // The desk's rename after it left is not in the view.
    assert!(!has(&harness, "small desk"));
    assert_eq!(harness.query_all_by_label("enter").count(), 2);
    // A change of the view opens in the detail panel.
    harness.get_by_label("leave").click();
    wait_for(&mut harness, "the opened change", |h| {
        has(h, "update of public.products (id)=(2)")
    });
    // Closed, the timeline is back; the saved view reopens from the list.
    click_settled(&mut harness, "Close view");
    wait_for(&mut harness, "the timeline", |h| rows(h).len() == 5);
    click_settled(&mut harness, "dear products");
    wait_for(&mut harness, "the view again", |h| {
        has(h, "3 changes entered, left or updated inside the view")
    });
    click_settled(&mut harness, "Copy link");
    wait_for(&mut harness, "the copy", |h| {
        has(h, "Copied: rowtrail open CACHE 'LINK' reopens this view")
    });
    // Its link reopens it in a new app, as `rowtrail open CACHE LINK` does.
    let link = {
        let cache = rowtrail::store::Cache::open(&db.cache()).unwrap();
        let view = cache.views().unwrap().pop().unwrap();
        view.link(&cache.link_source().unwrap())
    };
    let cache = db.cache();
    let view = rowtrail::model::SavedView::parse_link(&link).unwrap();
    let mut linked = app_with(AppOptions {
        cache: Some(cache),
        view: Some(view),
        ..options()
    });
    wait_for(&mut linked, "the linked view", |h| {
        has(h, "3 changes entered, left or updated inside the view")
    });
    // Without a cache, and none of its database among the recent ones, the app says so.
    let view = rowtrail::model::SavedView::parse_link(&link).unwrap();
    let mut lost = app_with(AppOptions {
        view: Some(view),
        ..options()
    });
    wait_for(&mut lost, "the banner", |h| {
        has(h, "no recent cache holds its history")
    });
    // Deleting it closes it and empties the list.
    click_settled(&mut harness, "Delete view");
    wait_for(&mut harness, "the list without it", |h| {
        has(h, "No saved views yet.")
    });
    wait_for(&mut harness, "the timeline", |h| rows(h).len() == 5);
    // A bad predicate is said in the form, and nothing is saved.
    save_new_view(&mut harness, "broken", "products", "colour = 'red'");
    wait_for(&mut harness, "the form's problem", |h| {
        has(h, "never had a column colour")
    });
    click_settled(&mut harness, "Cancel");
    harness.run_steps(2);
    assert!(has(&harness, "No saved views yet."));
}

/// Picks the table of the *New view* form from its drop-down.
fn choose_view_table(harness: &mut Harness<'_, RowtrailApp>, table: &str) {
    harness
        .get_all_by_label("Table")
        .find(|node| node.accesskit_node().role() == egui::accesskit::Role::ComboBox)
        .expect("the form's table drop-down")
        .click();
    harness.run_steps(2);
    harness
        .get_all_by_label(table)
        .find(|node| node.accesskit_node().role() == egui::accesskit::Role::Button)
        .expect("the table in the drop-down")
        .click();
}

#[test]
fn issue13_state_at_shows_related_rows_and_the_story_puts_a_cascade_back() {
    let db = fresh_db("app_related_restore");
    db.sql(
        "CREATE TABLE customers (id int PRIMARY KEY, name text);
         CREATE TABLE orders (id int PRIMARY KEY, customer_id int REFERENCES customers ON DELETE CASCADE, status text);
         CREATE TABLE order_items (order_id int REFERENCES orders ON DELETE CASCADE, line int, sku text, PRIMARY KEY (order_id, line));
         ALTER TABLE customers REPLICA IDENTITY FULL;
         ALTER TABLE orders REPLICA IDENTITY FULL;
         ALTER TABLE order_items REPLICA IDENTITY FULL;
         INSERT INTO customers VALUES (42, 'Acme'), (43, 'Other');",
    );
    db.capture_ok(&[]);
    db.sql(
        "INSERT INTO orders VALUES (7, 42, 'new'), (8, 43, 'new');
         INSERT INTO order_items VALUES (7, 1, 'A'), (7, 2, 'B'), (8, 1, 'C');
         UPDATE customers SET name = 'Acme Ltd' WHERE id = 42;",
    );
    db.capture_ok(&[]);
    // A moment between the update and the delete, as the app shows times (two hours east).
    std::thread::sleep(Duration::from_millis(1100));
    let between = db.sql(
        "SELECT to_char(now() AT TIME ZONE 'UTC' + interval '2 hours', 'YYYY-MM-DD HH24:MI:SS')",
    );
    std::thread::sleep(Duration::from_millis(1100));
    db.sql("DELETE FROM customers WHERE id = 42");
    db.capture_ok(&[]);
    assert_eq!(db.sql("SELECT count(*) FROM order_items"), "1");
    let mut harness = app(&db.cache());
    // State at, with related rows: the customer's order and items as they were.
    open_row(&mut harness, "update  customers  id=42");
    click_settled(&mut harness, "Record history (3)");
    harness.run_steps(2);
    harness.get_by_label("With related rows").click();
    harness.run_steps(2);
    retype(&mut harness, "At time", &between);
    harness.key_press(egui::Key::Enter);
    wait_for(&mut harness, "the related rows", |h| {
        has(h, "3 related rows then:")
    });
    for path in [
        "customers 42 › orders 7",
        "customers 42 › orders 7 › order_items (7,1)",
        "customers 42 › orders 7 › order_items (7,2)",
    ] {
        assert!(harness.query_by_label(path).is_some(), "{path}");
    }
    assert!(!has(&harness, "orders 8"), "another customer's order");
    // The whole entity back to that moment: a script that undoes the delete and its cascade.
    click_settled(&mut harness, "Restore with related rows");
    wait_for(&mut harness, "the moment's script", |h| {
        h.query_by_label("Restore script")
            .and_then(|node| node.value())
            .is_some_and(|script| script.contains("with its related rows to"))
    });
    let script = harness.get_by_label("Restore script").value().unwrap();
    assert!(
        script.contains("INSERT INTO \"public\".\"order_items\""),
        "{script}"
    );
    click_settled(&mut harness, "Close");
    harness.run_steps(2);
    // From the story, the cascading delete is put back whole.
    click_settled(&mut harness, "Change");
    open_row(&mut harness, "delete  customers  id=42");
    click_settled(&mut harness, "Related history");
    let button = "Put customers 42 back as before this change";
    wait_for(&mut harness, "the story", |h| {
        h.query_by_label(button).is_some()
    });
    click_settled(&mut harness, button);
    wait_for(&mut harness, "the script", |h| {
        h.query_by_label("Restore script")
            .and_then(|node| node.value())
            .is_some_and(|script| script.contains("INSERT INTO"))
    });
    let script = harness.get_by_label("Restore script").value().unwrap();
    assert!(script.contains("with its related rows"), "{script}");
    retype(&mut harness, "Password", db.server.password().expose());
    click_settled(&mut harness, "Run on source…");
    wait_for(&mut harness, "the confirmation", |h| {
        h.query_by_label("Run it").is_some()
    });
    click_settled(&mut harness, "Run it");
    wait_for(&mut harness, "the run", |h| {
        has(h, "The script ran and committed.")
    });
    assert_eq!(
        db.sql("SELECT string_agg(id || ':' || name, ',' ORDER BY id) FROM customers"),
        "42:Acme Ltd,43:Other"
    );
    assert_eq!(
        db.sql("SELECT string_agg(order_id || '/' || line || ':' || sku, ',' ORDER BY order_id, line) FROM order_items"),
        "7/1:A,7/2:B,8/1:C"
    );
    assert_eq!(db.sql("SELECT status FROM orders WHERE id = 7"), "new");
}

/// Fills the *New view* form (name, table, predicate) and presses Save view.
fn save_new_view(harness: &mut Harness<'_, RowtrailApp>, name: &str, table: &str, predicate: &str) {
    click_settled(harness, "New view…");
    harness.run_steps(2);
    retype(harness, "Name", name);
    choose_view_table(harness, table);
    harness.run_steps(2);
    retype(harness, "Where", predicate);
    click_settled(harness, "Save view");
}

/// A cache imported from the wiki audit trigger opens like a captured one, says in the status bar
/// that it was imported, and on hover what its store does not record; its changes show their
/// diff and who made them.
#[test]
fn issue14_an_imported_cache_says_so_and_what_its_store_lacks() {
    let db = fresh_db("app_import");
    db.sql(include_str!("support/audit_trigger.sql"));
    db.sql(
        "CREATE TABLE customers (id int PRIMARY KEY, name text, plan text);
         CREATE TRIGGER audit_trigger_row AFTER INSERT OR UPDATE OR DELETE ON customers
             FOR EACH ROW EXECUTE PROCEDURE audit.if_modified_func('true');
         INSERT INTO customers VALUES (1, 'Acme', 'free');
         UPDATE customers SET plan = 'pro' WHERE id = 1;",
    );
    let cache = db.dir.path().join("imported.rowtrail");
    let output = support::rowtrail(&[
        "import".to_owned(),
        "--from".to_owned(),
        db.url(),
        "--format".to_owned(),
        "pg-audit-trigger".to_owned(),
        "--cache".to_owned(),
        cache.display().to_string(),
    ]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let mut harness = app(&cache);
    wait_for(&mut harness, "the timeline", |h| rows(h).len() == 2);
    assert!(has(&harness, "imported (pg-audit-trigger)"));
    harness.get_by_label("imported (pg-audit-trigger)").hover();
    wait_for(&mut harness, "the import's hover text", |h| {
        has(h, "What that store does not record")
    });
    assert!(has(&harness, "no commit times"));
    open_row(&mut harness, "update  customers  id=1");
    for text in [
        "plan",
        "free",
        "pro",
        "UPDATE customers SET plan",
        "import position",
    ] {
        assert!(has(&harness, text), "{text} is shown");
    }
}

/// *Open audit database…* on the welcome screen finds the audit stores a database keeps, says
/// what each holds, imports the one chosen and opens it; from the connect dialog it takes the
/// URL along, and a database without a store says so.
#[test]
fn issue14_open_audit_database_finds_the_stores_imports_one_and_opens_it() {
    let db = fresh_db("app_audit_open");
    db.sql(include_str!("support/supa_audit.sql"));
    db.sql(include_str!("support/bemi.sql"));
    db.sql(
        "CREATE TABLE customers (id int PRIMARY KEY, name text, plan text);
         SELECT audit.enable_tracking('customers');
         CREATE TRIGGER bemi AFTER INSERT OR UPDATE OR DELETE ON customers
             FOR EACH ROW EXECUTE FUNCTION bemi_capture();
         INSERT INTO customers VALUES (1, 'Acme', 'free');
         UPDATE customers SET plan = 'pro' WHERE id = 1;",
    );
    let cache = db.dir.path().join("from-app.rowtrail");
    let mut harness = empty_app();
    open_audit_dialog(&mut harness, &db.url());
    harness.step();
    harness.get_by_label("Look for audit stores").click();
    wait_for(&mut harness, "the stores found", |h| has(h, "Found"));
    assert!(has(&harness, "bemi — changes: 2 rows about 1 table"));
    assert!(has(
        &harness,
        "supa-audit — audit.record_version: 2 rows about 1 table"
    ));
    assert!(has(&harness, "public.customers (2)"));
    click_settled(
        &mut harness,
        "supa-audit — audit.record_version: 2 rows about 1 table",
    );
    harness.run_steps(2);
    let suggested = |h: &Harness<'_, RowtrailApp>| {
        h.get_by_label("Cache file for the import")
            .accesskit_node()
            .value()
            .unwrap_or_default()
    };
    assert!(suggested(&harness).ends_with("-supa-audit.rowtrail"));
    retype(
        &mut harness,
        "Cache file for the import",
        &cache.display().to_string(),
    );
    // A path typed stays when another store is chosen.
    click_settled(&mut harness, "bemi — changes: 2 rows about 1 table");
    click_settled(
        &mut harness,
        "supa-audit — audit.record_version: 2 rows about 1 table",
    );
    harness.run_steps(2);
    assert_eq!(suggested(&harness), cache.display().to_string());
    click_settled(&mut harness, "Import and open");
    wait_for(&mut harness, "the imported timeline", |h| {
        rows(h).len() == 2
    });
    assert!(has(&harness, "imported (supa-audit)"));
    assert!(has(&harness, "Imported 2 changes in 2 transactions"));
    assert!(has(&harness, "Dismiss"));
    open_row(&mut harness, "update  customers  id=1");
    for text in ["plan", "free", "pro"] {
        assert!(has(&harness, text), "{text} is shown");
    }
    // supa_audit keeps no transaction ids: its transaction is named by its time, not "the
    // baseline".
    harness.get_by_label("Undo transaction").click();
    wait_for(&mut harness, "the script", |h| {
        h.query_by_label("Restore script").is_some()
    });
    let script = harness.get_by_label("Restore script").value().unwrap();
    assert!(script.contains("undo the transaction of 20"), "{script}");
    assert!(!script.contains("baseline"), "{script}");
    click_settled(&mut harness, "Close");
    click_settled(&mut harness, "Dismiss");
    harness.run_steps(2);
    assert!(!has(&harness, "Imported 2 changes"), "the notice is gone");
    // New rows in the store: imported with the login typed for it, and the cache reopened.
    db.sql("UPDATE customers SET plan = 'team' WHERE id = 1");
    click_settled(&mut harness, "Import new rows");
    wait_for(&mut harness, "the new row imported", |h| rows(h).len() == 3);
    assert!(has(&harness, "Imported 1 change in 1 transaction"));
    // The connect dialog says when a database already keeps its history in a store.
    harness.get_by_label("Connect…").click();
    wait_for(&mut harness, "the connect dialog", |h| {
        h.query_by_label("Connection URL").is_some()
    });
    harness.get_by_label("Connection URL").focus();
    harness.step();
    harness.get_by_label("Connection URL").type_text(&db.url());
    harness.step();
    click_settled(&mut harness, "Check");
    // The checks and the look for stores answer in either order: wait for both.
    wait_for(&mut harness, "the checks and the stores", |h| {
        has(h, "This database already keeps history in")
            && h.query_all_by_role(egui::accesskit::Role::CheckBox)
                .next()
                .is_some()
    });
    assert!(has(&harness, "audit.record_version (supa-audit, 3 rows)"));
    // The stores' own tables are offered for capture, but not ticked.
    let ticked = |h: &Harness<'_, RowtrailApp>, table: &str| {
        let boxes: Vec<_> = h
            .query_all_by_role(egui::accesskit::Role::CheckBox)
            .map(|node| {
                (
                    node.accesskit_node().label(),
                    node.accesskit_node().toggled(),
                )
            })
            .collect();
        let found = boxes
            .iter()
            .find(|(label, _)| label.as_deref() == Some(table))
            .unwrap_or_else(|| panic!("no box {table} among {boxes:?}"));
        found.1 == Some(egui::accesskit::Toggled::True)
    };
    assert!(ticked(&harness, "public.customers"));
    assert!(!ticked(&harness, "audit.record_version"));
    assert!(!ticked(&harness, "public.changes"));
    click_settled(&mut harness, "Close");
    // From the connect dialog, for a database that keeps no audit store.
    let plain = fresh_db("app_audit_none");
    harness.get_by_label("Connect…").click();
    wait_for(&mut harness, "the connect dialog", |h| {
        h.query_by_label("Connection URL").is_some()
    });
    harness.get_by_label("Connection URL").focus();
    harness.step();
    harness
        .get_by_label("Connection URL")
        .type_text(&plain.url());
    harness.step();
    click_settled(&mut harness, "Open audit database…");
    wait_for(&mut harness, "the audit dialog", |h| {
        h.query_by_label("Audit database URL").is_some()
    });
    click_settled(&mut harness, "Look for audit stores");
    wait_for(&mut harness, "the look", |h| has(h, "No audit store found"));
    click_settled(&mut harness, "Close");
    harness.run_steps(2);
    assert!(harness.query_by_label("Audit database URL").is_none());
}

/// Issue 14: a shared store on PostgreSQL opens like a cache file (`rowtrail open postgres://…`),
/// and *Open audit database…* finds one in a database and opens it without importing; the recent
/// list keeps its URL without the password typed for it.
#[test]
fn issue14_a_shared_store_opens_like_a_cache_and_from_the_audit_dialog() {
    let db = shop("app_shared_src");
    let store = fresh_db("app_shared_store");
    let published = support::publish(&db.cache(), &store.url());
    assert!(
        published.status.success(),
        "{}",
        String::from_utf8_lossy(&published.stderr)
    );
    // Opened by its URL: the same timeline, diff and context as the file's.
    let mut harness = app(Path::new(&store.url()));
    wait_for(&mut harness, "the store's timeline", |h| rows(h).len() == 6);
    let from_store = rows(&harness);
    let mut file = app(&db.cache());
    wait_for(&mut file, "the file's timeline", |h| rows(h).len() == 6);
    assert_eq!(from_store, rows(&file));
    open_row(&mut harness, "update  customers  id=1");
    for text in ["update of public.customers (id)=(1)", "free", "pro", "bob"] {
        assert!(has(&harness, text), "{text} is shown");
    }
    // A script made from a store is saved in a folder, not under the store's URL.
    click_settled(&mut harness, "Undo transaction");
    wait_for(&mut harness, "the script", |h| {
        h.query_by_label("Save as").is_some()
    });
    let save = harness
        .get_by_label("Save as")
        .accesskit_node()
        .value()
        .unwrap_or_default();
    assert!(
        save.starts_with('/') && save.ends_with(".sql") && !save.contains("postgres"),
        "{save}"
    );

    // From the audit dialog, with the password typed apart from the URL.
    let (with_password, host) = store
        .url()
        .split_once('@')
        .map(|(a, b)| (a.to_owned(), b.to_owned()))
        .unwrap();
    let password = with_password.rsplit(':').next().unwrap().to_owned();
    let url = format!("postgres://postgres@{host}");
    let mut harness = empty_app();
    open_audit_dialog(&mut harness, &url);
    harness.get_by_label("Audit database password").focus();
    harness.step();
    harness
        .get_by_label("Audit database password")
        .type_text(&password);
    harness.step();
    harness.get_by_label("Look for audit stores").click();
    wait_for(&mut harness, "the store found", |h| {
        has(
            h,
            "rowtrail's shared store: history of database app_shared_src",
        )
    });
    assert!(has(&harness, "(6 changes of 2 tables)"), "counts");
    assert!(!has(&harness, "No audit store found"));
    click_settled(&mut harness, "Open the shared store");
    wait_for(&mut harness, "the store's timeline", |h| rows(h).len() == 6);
    assert_eq!(rows(&harness), from_store);
    let recent = harness.state().recent_caches();
    assert_eq!(
        recent.first().map(|path| path.display().to_string()),
        Some(url)
    );
    assert!(
        !recent
            .iter()
            .any(|path| path.display().to_string().contains(&password)),
        "no password in the recent list: {recent:?}"
    );
}

/// A cache that another process adds to while the app shows it — a capture in a terminal into
/// the file, a publisher into the shared store — shows the new changes without being reopened,
/// and the status bar says this window is only reading.
#[test]
fn issue14_changes_stored_by_another_process_appear_in_the_open_window() {
    let db = shop("app_watch_src");
    let store = fresh_db("app_watch_store");
    let publish = || {
        let published = support::publish(&db.cache(), &store.url());
        assert!(
            published.status.success(),
            "{}",
            String::from_utf8_lossy(&published.stderr)
        );
    };
    publish();
    let mut file = app(&db.cache());
    let mut shared = app(Path::new(&store.url()));
    wait_for(&mut file, "the file's timeline", |h| rows(h).len() == 6);
    wait_for(&mut shared, "the store's timeline", |h| rows(h).len() == 6);
    assert!(has(&file, "not capturing here"));
    assert!(has(&shared, "shared store"));

    db.sql("UPDATE customers SET plan = 'team' WHERE id = 1;");
    db.capture_ok(&[]);
    wait_for(&mut file, "the change captured elsewhere", |h| {
        rows(h).len() == 7
    });
    assert!(
        rows(&file)[0].contains("update  customers  id=1"),
        "{:?}",
        rows(&file)
    );
    assert_eq!(rows(&shared).len(), 6, "not published yet");
    publish();
    wait_for(&mut shared, "the change published", |h| rows(h).len() == 7);
    assert_eq!(rows(&shared), rows(&file));
}

#[test]
fn issue16_excluded_columns_say_so_and_a_restore_writes_the_rest_only_when_asked() {
    let db = fresh_db("app_rules");
    let key = db.dir.path().join("mask.key");
    db.sql(
        "CREATE TABLE customers (id int PRIMARY KEY, name text, password_hash text, email text);
         INSERT INTO customers VALUES (1, 'Acme', 'pw', 'a@x.io');",
    );
    let key_arg = key.to_str().unwrap();
    db.capture_ok(&[
        "--exclude",
        "customers.password_hash",
        "--mask",
        "customers.email=hash",
        "--mask-key",
        key_arg,
    ]);
    db.sql("UPDATE customers SET name = 'Acme Ltd', email = 'b@x.io' WHERE id = 1;");
    db.capture_ok(&["--mask-key", key_arg]);
    let mut harness = app(&db.cache());
    wait_for(&mut harness, "the timeline", |h| rows(h).len() == 2);
    open_row(&mut harness, "update  customers  id=1");
    assert!(has(&harness, "(excluded)"), "the excluded column says so");
    assert!(has(&harness, "masked:"), "the masked email shows its hash");
    harness.get_by_label("Undo this change").click();
    wait_for(&mut harness, "the refusal", |h| {
        has(h, "is protected by the cache's rule")
    });
    assert!(harness.query_by_label("Restore script").is_none());
    click_settled(&mut harness, "Write the other columns");
    wait_for(&mut harness, "the script", |h| {
        h.query_by_label("Restore script").is_some()
    });
    let script = harness.get_by_label("Restore script").value().unwrap();
    assert!(script.contains("\"name\" = 'Acme'::text"), "{script}");
    assert!(!script.contains("masked:"), "{script}");
    assert!(script.contains("left as it is"), "{script}");
}

#[test]
fn issue16_the_connect_dialog_suggests_rules_for_sensitive_columns_and_captures_with_the_ticked_ones()
 {
    let db = fresh_db("app_suggest");
    db.sql(
        "CREATE TABLE accounts (id int PRIMARY KEY, password_hash text, email text, name text);
         INSERT INTO accounts VALUES (1, 'SENTINEL-pw', 'ann@x.io', 'Ann');",
    );
    let cache = db.dir.path().join("suggested.rowtrail");
    let mut harness = empty_app();
    check_source(&mut harness, &db.url());
    assert!(has(&harness, "Sensitive columns"));
    assert!(has(&harness, "public.accounts.password_hash: leave out"));
    assert!(has(&harness, "public.accounts.email: keep a keyed hash"));
    assert!(!has(&harness, "public.accounts.name:"));
    // Untick the hash (it would make a key file in this machine's home).
    click_settled(&mut harness, "public.accounts.email: keep a keyed hash");
    start_capture(&mut harness, &cache);
    wait_for(&mut harness, "the baseline in the timeline", |h| {
        rows(h).len() == 1
    });
    harness.get_by_label("Stop capture").click();
    wait_for(&mut harness, "capture to stop", |h| {
        has(h, "capture stopped")
    });
    let rules = rusqlite::Connection::open(&cache)
        .unwrap()
        .query_row(
            "SELECT group_concat(pattern || '=' || protection) FROM column_rules",
            [],
            |row| row.get::<_, String>(0),
        )
        .unwrap();
    assert_eq!(rules, "public.accounts.password_hash=exclude");
    let shown = support::rowtrail(&[
        "at".into(),
        "--cache".into(),
        cache.to_string_lossy().into_owned(),
        "--table".into(),
        "accounts".into(),
        "--time".into(),
        "now".into(),
    ]);
    let shown = String::from_utf8_lossy(&shown.stdout);
    assert!(
        shown.contains("ann@x.io") && !shown.contains("SENTINEL"),
        "{shown}"
    );
    db.sql(&format!(
        "SELECT pg_drop_replication_slot('rowtrail_{}');",
        db.name
    ));
}

#[test]
fn issue16_a_pruned_and_erased_cache_says_where_its_history_begins_and_what_was_erased() {
    let db = fresh_db("app_prune");
    db.sql(
        "CREATE TABLE customers (id int PRIMARY KEY, name text);
         INSERT INTO customers VALUES (1, 'Ann'), (2, 'Bob');",
    );
    db.capture_ok(&[]);
    db.sql("UPDATE customers SET name = 'Ann B' WHERE id = 1;");
    db.sql("UPDATE customers SET name = 'Anne' WHERE id = 1;");
    db.capture_ok(&[]);
    let cut = support::log_json(&db.cache(), &[])[2]["committed_at"]
        .as_str()
        .unwrap()
        .to_owned();
    db.sql("UPDATE customers SET name = 'Bobby' WHERE id = 2;");
    db.capture_ok(&[]);
    let cache = db.cache().to_string_lossy().into_owned();
    for args in [
        vec!["prune", "--cache", &cache, "--before", &cut],
        vec![
            "forget",
            "--cache",
            &cache,
            "--table",
            "customers",
            "--key",
            r#"{"id": 2}"#,
        ],
    ] {
        let output =
            support::rowtrail(&args.iter().map(|arg| (*arg).to_owned()).collect::<Vec<_>>());
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let mut harness = app(&db.cache());
    wait_for(&mut harness, "the timeline", |h| rows(h).len() == 4);
    assert!(
        has(&harness, "History from"),
        "the status bar says where history begins"
    );
    assert!(
        rows(&harness)
            .iter()
            .filter(|row| row.contains("snapshot"))
            .count()
            == 2,
        "{:?}",
        rows(&harness)
    );
    open_row(&mut harness, "update  customers  id=2");
    assert!(
        has(&harness, "Values erased on"),
        "the erased change says so"
    );
    harness.get_by_label("Undo this change").click();
    wait_for(&mut harness, "the refusal", |h| has(h, "were erased on"));
    assert!(harness.query_by_label("Restore script").is_none());
}
