//! Related history (issue 13): one customer's story across the tables that point at it, checked
//! against a ground truth that triggers in PostgreSQL write at the moment of each change.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly on unexpected values.

mod support;

use support::{TestDb, assert_clean_failure, fresh_db, rowtrail};

/// customers → orders → order_items (composite key, ON DELETE CASCADE), customers → tickets, and
/// an audit table the triggers fill: for every change, whether it belongs to customer 2's story
/// by the rule (its before or after row points at a member as that member was then, deleted
/// members keeping their last state).
fn shop(label: &str) -> TestDb {
    let db = fresh_db(label);
    db.sql(
        "CREATE TABLE customers (id int PRIMARY KEY, name text);
         CREATE TABLE orders (id int PRIMARY KEY, customer_id int REFERENCES customers ON DELETE CASCADE, status text);
         CREATE TABLE order_items (order_id int REFERENCES orders ON DELETE CASCADE, line int, sku text, PRIMARY KEY (order_id, line));
         CREATE TABLE tickets (id int PRIMARY KEY, customer_id int REFERENCES customers ON DELETE CASCADE, subject text);
         ALTER TABLE customers REPLICA IDENTITY FULL; ALTER TABLE orders REPLICA IDENTITY FULL;
         ALTER TABLE order_items REPLICA IDENTITY FULL; ALTER TABLE tickets REPLICA IDENTITY FULL;
         CREATE SCHEMA truth;
         CREATE TABLE truth.order_owner (id int PRIMARY KEY, customer_id int);
         CREATE TABLE truth.story (seq bigserial PRIMARY KEY, tbl text, key text, op text, belongs bool);
         CREATE FUNCTION truth.record() RETURNS trigger LANGUAGE plpgsql AS $$
         DECLARE
           old_owner int; new_owner int; k text; belongs bool;
         BEGIN
           IF TG_TABLE_NAME = 'customers' THEN
             belongs := coalesce((CASE WHEN TG_OP = 'DELETE' THEN OLD.id ELSE NEW.id END) = 2, false);
             k := CASE WHEN TG_OP = 'DELETE' THEN OLD.id::text ELSE NEW.id::text END;
           ELSIF TG_TABLE_NAME = 'orders' THEN
             belongs := (TG_OP <> 'INSERT' AND OLD.customer_id = 2) OR (TG_OP <> 'DELETE' AND NEW.customer_id = 2);
             k := CASE WHEN TG_OP = 'DELETE' THEN OLD.id::text ELSE NEW.id::text END;
             IF TG_OP <> 'DELETE' THEN
               INSERT INTO truth.order_owner VALUES (NEW.id, NEW.customer_id)
                 ON CONFLICT (id) DO UPDATE SET customer_id = EXCLUDED.customer_id;
             END IF;
           ELSIF TG_TABLE_NAME = 'order_items' THEN
             IF TG_OP <> 'INSERT' THEN
               SELECT customer_id INTO old_owner FROM truth.order_owner WHERE id = OLD.order_id;
             END IF;
             IF TG_OP <> 'DELETE' THEN
               SELECT customer_id INTO new_owner FROM truth.order_owner WHERE id = NEW.order_id;
             END IF;
             belongs := coalesce(old_owner = 2, false) OR coalesce(new_owner = 2, false);
             k := CASE WHEN TG_OP = 'DELETE' THEN OLD.order_id || ',' || OLD.line ELSE NEW.order_id || ',' || NEW.line END;
           ELSE
             belongs := (TG_OP <> 'INSERT' AND OLD.customer_id = 2) OR (TG_OP <> 'DELETE' AND NEW.customer_id = 2);
             k := CASE WHEN TG_OP = 'DELETE' THEN OLD.id::text ELSE NEW.id::text END;
           END IF;
           INSERT INTO truth.story (tbl, key, op, belongs) VALUES (TG_TABLE_NAME, k, lower(TG_OP), coalesce(belongs, false));
           RETURN NULL;
         END $$;
         CREATE TRIGGER t AFTER INSERT OR UPDATE OR DELETE ON customers FOR EACH ROW EXECUTE FUNCTION truth.record();
         CREATE TRIGGER t AFTER INSERT OR UPDATE OR DELETE ON orders FOR EACH ROW EXECUTE FUNCTION truth.record();
         CREATE TRIGGER t AFTER INSERT OR UPDATE OR DELETE ON order_items FOR EACH ROW EXECUTE FUNCTION truth.record();
         CREATE TRIGGER t AFTER INSERT OR UPDATE OR DELETE ON tickets FOR EACH ROW EXECUTE FUNCTION truth.record();",
    );
    db.capture_ok(&["--tables", "customers,orders,order_items,tickets"]);
    db
}

/// Customers 1–3 with orders, items and tickets; orders moved between customers (to 2 and away
/// from it); items changed after their order left; an order deleted with its items (cascade);
/// customer 3 deleted with everything of theirs.
fn workload(db: &TestDb) {
    db.sql(
        "INSERT INTO customers VALUES (1, 'Ann'), (2, 'Bo'), (3, 'Cy');
         INSERT INTO orders VALUES (10, 2, 'new'), (11, 2, 'new'), (12, 1, 'new'), (13, 3, 'new');
         INSERT INTO order_items VALUES (10, 1, 'A'), (10, 2, 'B'), (11, 1, 'C'), (12, 1, 'D'), (13, 1, 'E');
         INSERT INTO tickets VALUES (100, 2, 'late'), (101, 1, 'hello'), (102, 3, 'refund');
         UPDATE customers SET name = 'Bo Ltd' WHERE id = 2;
         UPDATE orders SET status = 'paid' WHERE id IN (10, 12);
         UPDATE orders SET customer_id = 1 WHERE id = 11;
         UPDATE order_items SET sku = 'C2' WHERE order_id = 11;
         UPDATE orders SET customer_id = 2 WHERE id = 12;
         UPDATE order_items SET sku = 'D2' WHERE order_id = 12;
         INSERT INTO order_items VALUES (12, 2, 'F');
         UPDATE tickets SET customer_id = 2 WHERE id = 102;
         DELETE FROM orders WHERE id = 10;
         BEGIN; UPDATE orders SET customer_id = 3 WHERE id = 12; UPDATE order_items SET sku = 'G' WHERE order_id = 12 AND line = 2; COMMIT;
         DELETE FROM customers WHERE id = 3;
         INSERT INTO orders VALUES (14, 2, 'new'); INSERT INTO order_items VALUES (14, 1, 'H');
         UPDATE customers SET name = 'Bo Group' WHERE id = 2;",
    );
    db.capture_ok(&["--tables", "customers,orders,order_items,tickets"]);
}

fn story(db: &TestDb, extra: &[&str]) -> Vec<serde_json::Value> {
    story_page(db, "0", extra)
}

/// The newest `limit` changes of customer 2's story (`0`: all of it), newest first.
fn story_page(db: &TestDb, limit: &str, extra: &[&str]) -> Vec<serde_json::Value> {
    let mut args = vec![
        "--table",
        "customers",
        "--key",
        r#"{"id": 2}"#,
        "--json",
        "--limit",
        limit,
    ];
    args.extend(extra);
    db.on_cache("related", &args)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

fn key_text(change: &serde_json::Value) -> String {
    let key = change["key"].as_object().unwrap();
    let names: &[&str] = match change["table"].as_str().unwrap() {
        "order_items" => &["order_id", "line"],
        _ => &["id"],
    };
    names
        .iter()
        .map(|name| key[*name].as_str().unwrap().to_owned())
        .collect::<Vec<_>>()
        .join(",")
}

/// A change of a story: table, key as text, operation.
type Entry = (String, String, String);

/// The story of customer 2 as rowtrail tells it and as the triggers wrote it, as sorted sets
/// (triggers of a cascade fire in another order than the WAL has the rows; each change is one
/// entry, none repeats).
fn told_and_truth(db: &TestDb) -> (Vec<Entry>, Vec<Entry>) {
    let mut truth: Vec<Entry> = db
        .sql("SELECT tbl || '|' || key || '|' || op FROM truth.story WHERE belongs ORDER BY seq")
        .lines()
        .map(|line| {
            let parts: Vec<&str> = line.split('|').collect();
            (
                parts[0].to_owned(),
                parts[1].to_owned(),
                parts[2].to_owned(),
            )
        })
        .collect();
    let mut told: Vec<Entry> = story(db, &[])
        .iter()
        .map(|change| {
            (
                change["table"].as_str().unwrap().to_owned(),
                key_text(change),
                change["op"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    told.sort();
    truth.sort();
    (told, truth)
}

/// How far the index of references reaches, per link, and the newest change of the cache.
fn index_reach(db: &TestDb) -> (Vec<i64>, i64) {
    let cache = rusqlite::Connection::open(db.cache()).unwrap();
    let reach = cache
        .prepare("SELECT indexed_to FROM ref_links ORDER BY id")
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<Vec<i64>, _>>()
        .unwrap();
    let newest = cache
        .query_row("SELECT max(id) FROM changes", [], |row| row.get(0))
        .unwrap();
    (reach, newest)
}

#[test]
fn a_customers_story_holds_exactly_what_the_rule_says() {
    let db = shop("related_rule");
    workload(&db);
    let (told, truth) = told_and_truth(&db);
    assert_eq!(told, truth);
    // Nothing of the others: customer 1's ticket and order 13 never appear.
    assert!(
        !told
            .iter()
            .any(|(table, key, _)| table == "tickets" && key == "101")
    );
    assert!(
        !told
            .iter()
            .any(|(table, key, _)| table == "orders" && key == "13")
    );
    assert!(
        truth.len() >= 20,
        "the workload exercised the rule: {truth:?}"
    );
    // The story was read through the index of references, which now covers every change.
    let (reach, newest) = index_reach(&db);
    assert!(!reach.is_empty(), "the index of references was built");
    assert!(reach.iter().all(|to| *to == newest), "{reach:?} {newest}");
    // More history: the index is extended, and the story still follows the rule.
    db.sql(
        "UPDATE orders SET customer_id = 2 WHERE id = 11;
         INSERT INTO order_items VALUES (11, 2, 'I');
         UPDATE order_items SET sku = 'C3' WHERE order_id = 11 AND line = 1;
         UPDATE orders SET customer_id = 1 WHERE id = 14;
         UPDATE order_items SET sku = 'H2' WHERE order_id = 14;
         INSERT INTO tickets VALUES (103, 2, 'thanks');
         DELETE FROM tickets WHERE id = 100;",
    );
    db.capture_ok(&["--tables", "customers,orders,order_items,tickets"]);
    let (told, truth) = told_and_truth(&db);
    assert_eq!(told, truth);
    let (reach, newest) = index_reach(&db);
    assert!(reach.iter().all(|to| *to == newest), "{reach:?} {newest}");
    // A page of the story is its newest changes, exactly.
    let whole = story(&db, &[]);
    for limit in [1, 3, 10] {
        let page = story_page(&db, &limit.to_string(), &[]);
        assert_eq!(page, whole[..limit], "--limit {limit}");
    }
}

#[test]
fn each_change_carries_its_path_from_the_customer() {
    let db = shop("related_path");
    workload(&db);
    let told = story(&db, &[]);
    let item = told
        .iter()
        .find(|change| {
            change["table"] == "order_items"
                && change["op"] == "insert"
                && key_text(change) == "14,1"
        })
        .expect("the item of order 14");
    assert_eq!(
        item["path"],
        serde_json::json!([
            {"table": "public.customers", "key": {"id": "2"}},
            {"table": "public.orders", "key": {"id": "14"}},
            {"table": "public.order_items", "key": {"order_id": "14", "line": "1"}},
        ])
    );
    let own = told
        .iter()
        .find(|change| change["table"] == "customers")
        .unwrap();
    assert_eq!(
        own["path"],
        serde_json::json!([{"table": "public.customers", "key": {"id": "2"}}])
    );
    // Depth 1: the rows that point at the customer, not their items.
    let shallow = story(&db, &["--depth", "1"]);
    assert!(
        shallow
            .iter()
            .all(|change| change["table"] != "order_items")
    );
    assert!(shallow.iter().any(|change| change["table"] == "orders"));
    // The text form names the path.
    let text = db.on_cache(
        "related",
        &["--table", "customers", "--key", r#"{"id": 2}"#],
    );
    assert!(
        text.contains("customers 2 › orders 14 › order_items (14,1)"),
        "{text}"
    );
    if std::env::var_os("ROWTRAIL_SHOW").is_some() {
        eprintln!("{text}");
    }
}

#[test]
fn a_link_the_schema_lacks_is_followed_like_a_foreign_key() {
    let db = fresh_db("related_link");
    db.sql(
        "CREATE TABLE accounts (id int PRIMARY KEY, name text);
         CREATE TABLE invoices (id int PRIMARY KEY, account_ref int, total int);",
    );
    db.capture_ok(&[]);
    db.sql("INSERT INTO accounts VALUES (1, 'a'), (2, 'b'); INSERT INTO invoices VALUES (5, 1, 10), (6, 2, 20); UPDATE invoices SET total = 11 WHERE id = 5;");
    db.capture_ok(&[]);
    let args = |extra: &[&str]| {
        let mut all = vec![
            "related".to_owned(),
            "--cache".to_owned(),
            db.cache().display().to_string(),
        ];
        all.extend(extra.iter().map(|arg| (*arg).to_owned()));
        all
    };
    let refused = rowtrail(&args(&["--table", "accounts", "--key", r#"{"id": 1}"#]));
    assert_clean_failure(&refused, 2, "no table points at public.accounts");
    let added = db.on_cache(
        "link",
        &["--from", "invoices.account_ref", "--to", "accounts.id"],
    );
    assert!(
        added.contains("added link invoices(account_ref) → accounts(id)"),
        "{added}"
    );
    let told: Vec<serde_json::Value> = db
        .on_cache(
            "related",
            &["--table", "accounts", "--key", r#"{"id": 1}"#, "--json"],
        )
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let invoices: Vec<&serde_json::Value> = told
        .iter()
        .filter(|change| change["table"] == "invoices")
        .collect();
    assert_eq!(invoices.len(), 2, "{told:?}");
    assert!(invoices.iter().all(|change| change["key"]["id"] == "5"));
    let listed = db.on_cache("link", &[]);
    assert!(
        listed.contains("invoices(account_ref) → accounts(id)  (added)"),
        "{listed}"
    );
    db.on_cache(
        "link",
        &[
            "--from",
            "invoices.account_ref",
            "--to",
            "accounts.id",
            "--remove",
        ],
    );
    let refused = rowtrail(&args(&["--table", "accounts", "--key", r#"{"id": 1}"#]));
    assert_clean_failure(&refused, 2, "no table points at public.accounts");
}

/// A page of a story (`--limit N`) folds the record's own versions from their outlines and
/// reads only the page's changes whole: it must be exactly the newest N of the whole story, key
/// changes of the record, partial before images and links to other columns included.
#[test]
fn a_page_of_a_story_is_the_newest_of_the_whole_story() {
    let db = fresh_db("related_page");
    db.sql(
        "CREATE TABLE accounts (id int PRIMARY KEY, code text UNIQUE, name text);
         CREATE TABLE invoices (id int PRIMARY KEY, account_id int REFERENCES accounts ON UPDATE CASCADE ON DELETE CASCADE, total int);",
    );
    db.capture_ok(&[]);
    db.sql(
        "INSERT INTO accounts VALUES (1, 'a', 'Ann'), (2, 'b', 'Bo');
         INSERT INTO invoices VALUES (5, 1, 10), (6, 2, 20);
         UPDATE accounts SET name = 'Ann B' WHERE id = 1;
         UPDATE invoices SET total = 11 WHERE id = 5;
         UPDATE accounts SET id = 10 WHERE id = 1;
         INSERT INTO invoices VALUES (7, 10, 30);
         UPDATE accounts SET name = 'Ann C' WHERE id = 10;
         UPDATE invoices SET account_id = 2 WHERE id = 7;
         UPDATE accounts SET name = 'Ann D' WHERE id = 10;
         UPDATE accounts SET name = 'Bo 2' WHERE id = 2;
         UPDATE accounts SET name = 'Bo 3' WHERE id = 2;",
    );
    db.capture_ok(&[]);
    let read = |key: &str, limit: &str, extra: &[&str]| -> Vec<serde_json::Value> {
        let mut args = vec![
            "--table", "accounts", "--key", key, "--json", "--limit", limit,
        ];
        args.extend(extra);
        db.on_cache("related", &args)
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect()
    };
    let whole = read(r#"{"id": 10}"#, "0", &[]);
    let ops: Vec<(&str, &str)> = whole
        .iter()
        .map(|change| {
            (
                change["table"].as_str().unwrap(),
                change["op"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        ops.iter().filter(|(table, _)| *table == "accounts").count(),
        5,
        "the account's insert, three updates and its key change: {ops:?}"
    );
    assert!(ops.contains(&("invoices", "update")), "{ops:?}");
    for limit in [1, 2, 3, 5, 8, 100] {
        let page = read(r#"{"id": 10}"#, &limit.to_string(), &[]);
        let newest: Vec<serde_json::Value> = whole.iter().take(limit).cloned().collect();
        assert_eq!(page, newest, "--limit {limit}");
    }
    // An account that never changed key: its page is read from its change ids, the invoice
    // that moved to it included; and with --since (read the full way) it is the same.
    let whole = read(r#"{"id": 2}"#, "0", &[]);
    assert_eq!(
        whole.len(),
        5,
        "insert, invoice 6, invoice 7 moved in, two updates: {whole:?}"
    );
    for limit in [1, 2, 3, 4, 9] {
        let page = read(r#"{"id": 2}"#, &limit.to_string(), &[]);
        let newest: Vec<serde_json::Value> = whole.iter().take(limit).cloned().collect();
        assert_eq!(page, newest, "--limit {limit}");
        let since = read(
            r#"{"id": 2}"#,
            &limit.to_string(),
            &["--since", "2000-01-01 00:00:00"],
        );
        assert_eq!(since, newest, "--limit {limit} --since");
    }
    // A table that points at the account by another column than its key: the page reads the
    // account whole, and is still the newest of the story.
    db.sql(
        "CREATE TABLE notes (id int PRIMARY KEY, account_code text REFERENCES accounts (code) ON UPDATE CASCADE, body text);
         INSERT INTO notes VALUES (1, 'a', 'hi');
         UPDATE accounts SET code = 'a2' WHERE id = 10;
         UPDATE notes SET body = 'hello' WHERE id = 1;",
    );
    db.capture_ok(&[]);
    let whole = read(r#"{"id": 10}"#, "0", &[]);
    assert!(
        whole.iter().any(|change| change["table"] == "notes"),
        "{whole:?}"
    );
    for limit in [1, 2, 4, 100] {
        let page = read(r#"{"id": 10}"#, &limit.to_string(), &[]);
        let newest: Vec<serde_json::Value> = whole.iter().take(limit).cloned().collect();
        assert_eq!(page, newest, "--limit {limit}");
    }
}

#[test]
fn bad_input_gets_one_clear_line() {
    let db = shop("related_bad");
    workload(&db);
    let run = |extra: &[&str]| {
        let mut all = vec![
            "related".to_owned(),
            "--cache".to_owned(),
            db.cache().display().to_string(),
        ];
        all.extend(extra.iter().map(|arg| (*arg).to_owned()));
        rowtrail(&all)
    };
    assert_clean_failure(
        &run(&["--table", "customers", "--key", r#"{"id": 99}"#]),
        2,
        "has no record with key",
    );
    assert_clean_failure(
        &run(&["--table", "nowhere", "--key", r#"{"id": 1}"#]),
        2,
        "not in this cache",
    );
    for depth in ["0", "100"] {
        let output = run(&[
            "--table",
            "customers",
            "--key",
            r#"{"id": 2}"#,
            "--depth",
            depth,
        ]);
        assert_eq!(output.status.code(), Some(2));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("--depth"), "{stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
    let link = |from: &str, to: &str| {
        rowtrail(&[
            "link".to_owned(),
            "--cache".to_owned(),
            db.cache().display().to_string(),
            "--from".to_owned(),
            from.to_owned(),
            "--to".to_owned(),
            to.to_owned(),
        ])
    };
    assert_clean_failure(
        &link("orders.colour", "customers.id"),
        2,
        "has no column colour",
    );
    assert_clean_failure(&link("orders", "customers.id"), 2, "is not TABLE.COLUMN");
}

/// The rows reachable from customer 2 now, as `table|column=value,…` lines, sorted.
fn reachable_now(db: &TestDb) -> Vec<String> {
    let flat = |alias: &str| {
        format!(
            "(SELECT string_agg(key || '=' || coalesce(value, 'NULL'), ',' ORDER BY key) FROM json_each_text(row_to_json({alias})))"
        )
    };
    let mut rows: Vec<String> = db
        .sql(&format!(
            "SELECT 'customers|' || {c} FROM customers c WHERE id = 2
             UNION ALL SELECT 'orders|' || {o} FROM orders o WHERE customer_id = 2
             UNION ALL SELECT 'order_items|' || {i} FROM order_items i JOIN orders o ON o.id = i.order_id WHERE o.customer_id = 2
             UNION ALL SELECT 'tickets|' || {t} FROM tickets t WHERE customer_id = 2",
            c = flat("c"),
            o = flat("o"),
            i = flat("i"),
            t = flat("t")
        ))
        .lines()
        .map(str::to_owned)
        .collect();
    rows.sort();
    rows
}

/// `rowtrail at --related --json` at `time`, in the same form as `reachable_now`.
fn reachable_then(db: &TestDb, time: &str) -> Vec<String> {
    let mut rows: Vec<String> = db
        .on_cache(
            "at",
            &[
                "--table",
                "customers",
                "--key",
                r#"{"id": 2}"#,
                "--time",
                time,
                "--related",
                "--json",
            ],
        )
        .lines()
        .map(|line| {
            let member: serde_json::Value = serde_json::from_str(line).unwrap();
            let table = member["table"]
                .as_str()
                .unwrap()
                .trim_start_matches("public.")
                .to_owned();
            let mut pairs: Vec<String> = member["row"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(column, value)| format!("{column}={}", value.as_str().unwrap_or("NULL")))
                .collect();
            pairs.sort();
            format!("{table}|{}", pairs.join(","))
        })
        .collect();
    rows.sort();
    rows
}

fn now_utc(db: &TestDb) -> String {
    db.sql(
        r#"SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')"#,
    )
}

#[test]
fn the_whole_customer_at_a_moment_is_what_the_database_held_then() {
    let db = shop("related_at");
    db.sql(
        "INSERT INTO customers VALUES (1, 'Ann'), (2, 'Bo');
         INSERT INTO orders VALUES (10, 2, 'new'), (11, 1, 'new');
         INSERT INTO order_items VALUES (10, 1, 'A'), (11, 1, 'B');
         INSERT INTO tickets VALUES (100, 2, 'late');",
    );
    std::thread::sleep(std::time::Duration::from_millis(20));
    let first = now_utc(&db);
    let then = reachable_now(&db);
    std::thread::sleep(std::time::Duration::from_millis(20));
    db.sql(
        "UPDATE orders SET customer_id = 2 WHERE id = 11; UPDATE order_items SET sku = 'B2' WHERE order_id = 11;
         DELETE FROM order_items WHERE order_id = 10; UPDATE orders SET customer_id = 1 WHERE id = 10;
         UPDATE tickets SET subject = 'solved'; INSERT INTO tickets VALUES (101, 2, 'new');",
    );
    std::thread::sleep(std::time::Duration::from_millis(20));
    let second = now_utc(&db);
    let later = reachable_now(&db);
    std::thread::sleep(std::time::Duration::from_millis(20));
    db.sql("DELETE FROM customers WHERE id = 2;");
    db.capture_ok(&["--tables", "customers,orders,order_items,tickets"]);
    assert_ne!(then, later);
    assert_eq!(reachable_then(&db, &first), then);
    assert_eq!(reachable_then(&db, &second), later);
    assert_eq!(reachable_then(&db, "now"), Vec::<String>::new());
}

#[test]
fn restore_related_puts_back_a_customer_deleted_with_everything_of_theirs() {
    let db = shop("related_restore");
    db.sql(
        "INSERT INTO customers VALUES (1, 'Ann'), (2, 'Bo');
         INSERT INTO orders VALUES (10, 2, 'paid'), (11, 2, 'new'), (12, 1, 'new');
         INSERT INTO order_items VALUES (10, 1, 'A'), (10, 2, 'B'), (11, 1, 'C'), (12, 1, 'D');
         INSERT INTO tickets VALUES (100, 2, 'late'), (101, 1, 'hi');",
    );
    std::thread::sleep(std::time::Duration::from_millis(20));
    let moment = now_utc(&db);
    let before = reachable_now(&db);
    std::thread::sleep(std::time::Duration::from_millis(20));
    db.sql(
        "UPDATE orders SET status = 'shipped' WHERE id = 10; DELETE FROM customers WHERE id = 2;",
    );
    assert_eq!(
        reachable_now(&db),
        Vec::<String>::new(),
        "the cascade took everything"
    );
    db.capture_ok(&["--tables", "customers,orders,order_items,tickets"]);
    let script = db.on_cache(
        "restore",
        &[
            "--table",
            "customers",
            "--key",
            r#"{"id": 2}"#,
            "--time",
            &moment,
            "--related",
        ],
    );
    assert!(script.contains("with its related rows"), "{script}");
    db.sql(&script);
    assert_eq!(reachable_now(&db), before, "every row back, ids and all");
    assert_eq!(
        db.sql("SELECT count(*) FROM orders WHERE customer_id = 1"),
        "1",
        "others untouched"
    );
}

#[test]
fn a_story_exports_as_markdown_html_and_csv() {
    let db = shop("related_export");
    workload(&db);
    let base = ["--table", "customers", "--key", r#"{"id": 2}"#];
    let with = |extra: &[&str]| {
        let mut args = base.to_vec();
        args.extend(extra);
        db.on_cache("related", &args)
    };
    let markdown = with(&["--format", "markdown", "--limit", "0"]);
    if std::env::var_os("ROWTRAIL_SHOW").is_some() {
        eprintln!("{markdown}");
    }
    assert!(
        markdown.starts_with("# The story of customers {\"id\": 2}"),
        "{markdown}"
    );
    assert!(
        markdown.contains("\n## "),
        "grouped by transaction: {markdown}"
    );
    assert!(
        markdown.contains("insert of public.order_items (order_id, line)=(14, 1) — customers 2 › orders 14 › order\\_items (14,1)")
            || markdown.contains("— customers 2 › orders 14 › order_items (14,1)"),
        "{markdown}"
    );
    assert!(
        markdown.contains("status: new → paid"),
        "what changed, in words: {markdown}"
    );
    // The story reads oldest first.
    let first = markdown.find("orders 10").unwrap();
    let last = markdown.find("orders 14").unwrap();
    assert!(first < last);
    let html = with(&["--format", "html"]);
    assert!(html.starts_with("<!DOCTYPE html>"), "{html}");
    assert!(html.contains("customers 2 › orders 14 › order_items (14,1)"));
    assert!(!html.contains("<script"), "nothing from the data is markup");
    let csv = with(&["--format", "csv", "--limit", "0"]);
    let mut lines = csv.lines();
    assert_eq!(
        lines.next().unwrap(),
        "id,committed_at,xid,op,table,key,path,view,changed,context,what_changed"
    );
    assert_eq!(lines.count(), story(&db, &[]).len());
    // A report can carry the script that undoes one of its changes.
    let id = story(&db, &[])[0]["id"].as_i64().unwrap().to_string();
    let report = with(&["--format", "markdown", "--undo-sql", &id]);
    assert!(
        report.contains(&format!("## Restore script: undo change {id}")),
        "{report}"
    );
    assert!(
        report.contains("```sql\n-- rowtrail restore script"),
        "{report}"
    );
    let refused = rowtrail(&[
        "related".to_owned(),
        "--cache".to_owned(),
        db.cache().display().to_string(),
        "--table".to_owned(),
        "customers".to_owned(),
        "--key".to_owned(),
        r#"{"id": 2}"#.to_owned(),
        "--undo-sql".to_owned(),
        id,
    ]);
    assert_clean_failure(&refused, 2, "--undo-sql attaches a script to a report");
    // log takes the same formats.
    let log = db.on_cache("log", &["--table", "orders", "--format", "markdown"]);
    assert!(log.starts_with("# Changes in orders"), "{log}");
}

#[test]
fn a_view_reports_rows_entering_leaving_and_changing_inside_it() {
    let db = fresh_db("related_view");
    db.sql(
        "CREATE TABLE products (id int PRIMARY KEY, name text, price numeric(10,2), updated timestamptz);
         ALTER TABLE products REPLICA IDENTITY FULL;
         INSERT INTO products VALUES (1, 'cheap', 5.00, '2026-01-01 00:00+00'), (2, 'dear', 150.00, '2026-01-01 00:00+00');",
    );
    db.capture_ok(&[]);
    std::thread::sleep(std::time::Duration::from_millis(20));
    let start = now_utc(&db);
    std::thread::sleep(std::time::Duration::from_millis(20));
    db.sql(
        "UPDATE products SET name = 'dear one' WHERE id = 2;
         UPDATE products SET price = 120.00 WHERE id = 1;
         UPDATE products SET price = 9.99 WHERE id = 2;
         UPDATE products SET name = 'cheap now' WHERE id = 2;
         UPDATE products SET price = 1000.00 WHERE id = 1;
         DELETE FROM products WHERE id = 1;",
    );
    db.capture_ok(&[]);
    // Prices under 100 sort before it as text ('9.99' > '100'): the comparison is numeric.
    let view: Vec<serde_json::Value> = db
        .on_cache(
            "view",
            &[
                "--table",
                "products",
                "--where",
                "price > 100 and name is not null",
                "--json",
                "--limit",
                "0",
            ],
        )
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let moves: Vec<(String, String, String)> = view
        .iter()
        .rev()
        .map(|change| {
            (
                change["view"].as_str().unwrap().to_owned(),
                change["op"].as_str().unwrap().to_owned(),
                change["key"]["id"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let expected = [
        ("enter", "snapshot", "2"),
        ("update", "update", "2"),
        ("enter", "update", "1"),
        ("leave", "update", "2"),
        ("update", "update", "1"),
        ("leave", "delete", "1"),
    ]
    .map(|(a, b, c)| (a.to_owned(), b.to_owned(), c.to_owned()));
    assert_eq!(
        moves, expected,
        "product 2's rename after it left is not in the view"
    );
    // The set at a moment.
    let then = db.on_cache(
        "view",
        &[
            "--table",
            "products",
            "--where",
            "price > 100",
            "--time",
            &start,
        ],
    );
    assert_eq!(then.lines().count(), 1, "{then}");
    assert!(then.contains("\"name\":\"dear\""), "{then}");
    // Times compare as times.
    let dated = db.on_cache(
        "view",
        &[
            "--table",
            "products",
            "--where",
            "updated >= '2026-01-01' and updated < '2026-01-02'",
            "--time",
            &start,
        ],
    );
    assert_eq!(dated.lines().count(), 2, "{dated}");
    let run = |predicate: &str| {
        rowtrail(&[
            "view".to_owned(),
            "--cache".to_owned(),
            db.cache().display().to_string(),
            "--table".to_owned(),
            "products".to_owned(),
            "--where".to_owned(),
            predicate.to_owned(),
        ])
    };
    assert_clean_failure(&run("price >"), 2, "does not parse at");
    assert_clean_failure(&run("colour = 'red'"), 2, "never had a column colour");
}

#[test]
fn a_saved_view_keeps_its_tables_filters_and_link() {
    let db = fresh_db("related_saved_view");
    db.sql(
        "CREATE TABLE products (id int PRIMARY KEY, name text, price numeric(10,2));
         CREATE TABLE services (id int PRIMARY KEY, title text, price numeric(10,2));
         ALTER TABLE products REPLICA IDENTITY FULL;
         ALTER TABLE services REPLICA IDENTITY FULL;
         INSERT INTO products VALUES (1, 'cheap', 5.00), (2, 'dear', 150.00);
         INSERT INTO services VALUES (1, 'audit', 500.00);",
    );
    db.capture_ok(&[]);
    db.sql(
        "BEGIN; SELECT pg_logical_emit_message(true, 'rowtrail', '{\"user\":\"ann\"}');
           UPDATE products SET price = 120.00 WHERE id = 1;
           UPDATE products SET name = 'dearer' WHERE id = 2;
         COMMIT;
         BEGIN; SELECT pg_logical_emit_message(true, 'rowtrail', '{\"user\":\"bob\"}');
           UPDATE services SET price = 50.00 WHERE id = 1;
           UPDATE products SET price = 130.00 WHERE id = 1;
         COMMIT;",
    );
    db.capture_ok(&[]);
    // Two tables, one predicate; the context filter keeps ann's changes; saved with a link.
    let saved = db.on_cache(
        "view",
        &[
            "--table",
            "products",
            "--table",
            "services",
            "--where",
            "price > 100",
            "--context",
            "user=ann",
            "--save",
            "dear things",
        ],
    );
    let link = saved
        .lines()
        .find(|line| line.starts_with("rowtrail://view?"))
        .unwrap_or_else(|| panic!("no link in: {saved}"))
        .to_owned();
    assert!(saved.starts_with("saved view dear things"), "{saved}");
    let listed = db.on_cache("view", &["--list"]);
    assert_eq!(listed.trim(), format!("dear things\t{link}"));
    let shown: Vec<serde_json::Value> = db
        .on_cache("view", &["--name", "dear things", "--json"])
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let moves: Vec<(String, String, String)> = shown
        .iter()
        .map(|change| {
            (
                change["view"].as_str().unwrap().to_owned(),
                change["table"].as_str().unwrap().to_owned(),
                change["key"]["id"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        moves,
        [("update", "products", "2"), ("enter", "products", "1"),].map(|(a, b, c)| (
            a.to_owned(),
            b.to_owned(),
            c.to_owned()
        )),
        "only ann's changes, newest first: {shown:?}"
    );
    // Without the context filter bob's changes show: the service leaving, product 1 updating.
    let all = db.on_cache(
        "view",
        &[
            "--table",
            "products",
            "--table",
            "services",
            "--where",
            "price > 100",
            "--json",
            "--changed",
            "price",
        ],
    );
    let labels: Vec<String> = all
        .lines()
        .map(|line| {
            let change: serde_json::Value = serde_json::from_str(line).unwrap();
            format!(
                "{} {} {}",
                change["view"].as_str().unwrap(),
                change["table"].as_str().unwrap(),
                change["key"]["id"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        labels,
        [
            "update products 1",
            "leave services 1",
            "enter products 1",
            "enter services 1",
            "enter products 2",
        ],
        "--changed price leaves out product 2's rename, but not entering or leaving (the baseline copies products, then services)"
    );
    // The report says what each change did to the view.
    let report = db.on_cache("view", &["--name", "dear things", "--format", "markdown"]);
    assert!(
        report.starts_with("# View dear things: products, services where price > 100"),
        "{report}"
    );
    assert!(
        report.contains("enter · update of public.products (id)=(1)"),
        "{report}"
    );
    let csv = db.on_cache("view", &["--name", "dear things", "--format", "csv"]);
    assert!(csv.lines().next().unwrap().contains(",view,"), "{csv}");
    // Saving again under the name replaces it; removing it leaves none.
    db.on_cache(
        "view",
        &[
            "--table",
            "products",
            "--where",
            "price < 10",
            "--save",
            "dear things",
        ],
    );
    assert!(db.on_cache("view", &["--list"]).contains("price+%3C+10"));
    assert_eq!(
        db.on_cache("view", &["--remove", "dear things"]).trim(),
        "removed view dear things"
    );
    assert!(
        db.on_cache("view", &["--list"])
            .starts_with("no saved views")
    );
    // Bad input: one line each, exit 2, nothing saved.
    let run = |args: &[&str]| {
        let mut all = vec![
            "view".to_owned(),
            "--cache".to_owned(),
            db.cache().display().to_string(),
        ];
        all.extend(args.iter().map(|arg| (*arg).to_owned()));
        rowtrail(&all)
    };
    assert_clean_failure(&run(&["--name", "nope"]), 2, "no view is saved as 'nope'");
    assert_clean_failure(&run(&["--remove", "nope"]), 2, "no view is saved as 'nope'");
    assert_clean_failure(
        &run(&[
            "--table", "products", "--where", "price >", "--save", "broken",
        ]),
        2,
        "does not parse at",
    );
    assert_clean_failure(
        &run(&[
            "--table",
            "products",
            "--where",
            "price > 1",
            "--changed",
            "colour",
            "--save",
            "x",
        ]),
        2,
        "never had a column colour",
    );
    assert!(
        db.on_cache("view", &["--list"])
            .starts_with("no saved views")
    );
    // rowtrail open refuses a link it cannot use before opening any window.
    let open =
        |args: &[&str]| rowtrail(&args.iter().map(|arg| (*arg).to_owned()).collect::<Vec<_>>());
    assert_clean_failure(
        &open(&["open", "rowtrail://view?name=a&table=t"]),
        2,
        "the view link has no",
    );
    let elsewhere = link.replace("source=", "source=1");
    assert_clean_failure(
        &open(&["open", &db.cache().display().to_string(), &elsewhere]),
        2,
        "holds the history of database",
    );
}

#[test]
fn a_search_for_a_foreign_key_value_reads_the_index_and_finds_what_the_images_hold() {
    let db = shop("related_search");
    workload(&db);
    // Every change whose before or after image holds customer_id 2, from the images themselves.
    let expected = |db: &TestDb| -> Vec<i64> {
        let mut ids: Vec<i64> = support::log_json(&db.cache(), &[])
            .iter()
            .filter(|change| {
                ["before", "after"]
                    .iter()
                    .any(|image| change[*image]["customer_id"] == "2")
            })
            .map(|change| change["id"].as_i64().unwrap())
            .collect();
        ids.sort();
        ids
    };
    let searched = |db: &TestDb| -> Vec<i64> {
        let mut ids: Vec<i64> = db
            .on_cache(
                "log",
                &["--search", "customer_id:2", "--json", "--limit", "0"],
            )
            .lines()
            .map(|line| {
                serde_json::from_str::<serde_json::Value>(line).unwrap()["id"]
                    .as_i64()
                    .unwrap()
            })
            .collect();
        ids.sort();
        ids
    };
    // Before any story is read there is no index: the images are read.
    let found = searched(&db);
    assert!(found.len() >= 8, "{found:?}");
    assert_eq!(found, expected(&db));
    assert!(
        index_reach(&db).0.is_empty(),
        "a search does not write the cache"
    );
    // A story builds the index (orders.customer_id, tickets.customer_id, order_items.order_id);
    // the search then reads it, with the same result.
    story(&db, &[]);
    let (reach, newest) = index_reach(&db);
    assert_eq!(reach.len(), 3, "{reach:?}");
    assert!(reach.iter().all(|to| *to == newest));
    assert_eq!(searched(&db), expected(&db));
    // Changes newer than the index are read from their images until a story extends it.
    db.sql("UPDATE orders SET customer_id = 2 WHERE id = 13; UPDATE tickets SET customer_id = 1 WHERE id = 102;");
    db.capture_ok(&["--tables", "customers,orders,order_items,tickets"]);
    let found = searched(&db);
    assert_eq!(found, expected(&db));
    // A column no link covers is searched in the images.
    let skus = db.on_cache("log", &["--search", "sku:C2", "--json"]);
    assert_eq!(skus.lines().count(), 1, "{skus}");
}
