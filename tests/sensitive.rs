//! Sensitive data (issue 16): columns whose values never reach the cache as they are. Each test is
//! named after what it shows.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly on unexpected values.

mod support;

use std::path::Path;

use support::{TestDb, assert_clean_failure, fresh_db, rowtrail};

/// Every byte of the cache and the files SQLite keeps beside it (`-wal`, `-shm`, journals).
fn cache_bytes(db: &TestDb) -> Vec<u8> {
    let name = db
        .cache()
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let mut bytes = Vec::new();
    for entry in std::fs::read_dir(db.dir.path()).unwrap() {
        let entry = entry.unwrap();
        if entry.file_name().to_string_lossy().starts_with(&name) {
            bytes.extend(std::fs::read(entry.path()).unwrap());
        }
    }
    bytes
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle.as_bytes())
}

fn rules_args(key: &Path) -> Vec<String> {
    [
        "--exclude",
        "customers.password_hash",
        "--exclude",
        "*.ssn",
        "--mask",
        "customers.email=hash",
        "--mask",
        "*.card=last4",
        "--mask",
        "tokens.token=hash",
        "--mask-key",
    ]
    .iter()
    .map(|arg| (*arg).to_owned())
    .chain([key.to_string_lossy().into_owned()])
    .collect()
}

const SCHEMA: &str = "
    CREATE TABLE customers (
        id int PRIMARY KEY, email text, password_hash text, card text, ssn text, name text,
        notes text);
    ALTER TABLE customers ALTER COLUMN notes SET STORAGE EXTERNAL;
    -- A key column that is hashed: records stay apart, the key is not readable.
    CREATE TABLE tokens (token text PRIMARY KEY, owner int, ssn text);
";

#[test]
fn excluded_and_masked_values_are_nowhere_in_the_cache_file_and_the_rest_of_history_works() {
    let db = fresh_db("sensitive");
    let key = db.dir.path().join("keys").join("mask.key");
    db.sql(SCHEMA);
    // Rows present at the baseline, sentinels in every protected column.
    db.sql(
        "INSERT INTO customers VALUES
           (1, 'SENTINEL-email-1@x.io', 'SENTINEL-pw-1', '4111111111114242', 'SENTINEL-ssn-1',
            'Ann', repeat('long note ', 1000)),
           (2, 'same@x.io', 'SENTINEL-pw-2', '5500000000000004', NULL, 'Bob', 'short');
         INSERT INTO tokens VALUES ('SENTINEL-token-1', 1, 'SENTINEL-ssn-2');",
    );
    let args = rules_args(&key);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    db.capture_ok(&args);
    assert!(key.exists(), "the key file was made outside the cache");
    // Changes streamed from the WAL: inserts, updates (one leaving the TOASTed note unchanged,
    // so its value comes from the cache's last image), a key update, deletes.
    db.sql(
        "INSERT INTO customers VALUES
           (3, 'same@x.io', 'SENTINEL-pw-3', '6011000000000012', 'SENTINEL-ssn-3', 'Cy', NULL);
         UPDATE customers SET name = 'Annie', email = 'SENTINEL-email-2@x.io' WHERE id = 1;
         UPDATE customers SET password_hash = 'SENTINEL-pw-4', ssn = 'SENTINEL-ssn-4' WHERE id = 2;
         UPDATE tokens SET token = 'SENTINEL-token-2', ssn = 'SENTINEL-ssn-5' WHERE owner = 1;
         INSERT INTO tokens VALUES ('SENTINEL-token-3', 3, NULL);
         DELETE FROM customers WHERE id = 3;
         DELETE FROM tokens WHERE owner = 3;",
    );
    // A later capture keeps the cache's rules without naming them again.
    db.capture_ok(&["--mask-key", key.to_str().unwrap()]);

    let bytes = cache_bytes(&db);
    assert!(bytes.len() > 4096);
    assert!(
        !contains(&bytes, "SENTINEL"),
        "a protected value reached the cache's files"
    );
    assert!(contains(&bytes, "Annie"), "unprotected values are stored");

    // Equal values hash equally; the card keeps its last four; the history still has every change.
    let rows = db.on_cache("at", &["--table", "customers", "--time", "now"]);
    let rows: Vec<serde_json::Value> = rows
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(rows[0]["name"], "Annie");
    assert_eq!(rows[0]["card"], "****4242");
    assert_eq!(rows[0]["notes"], "long note ".repeat(1000).as_str());
    assert!(rows[0]["email"].as_str().unwrap().starts_with("masked:"));
    assert!(
        rows[0]
            .get("password_hash")
            .is_none_or(|value| !value.is_string())
    );
    let log = db.log(&[]);
    assert_eq!(log.len(), 3 + 7, "{log:?}");
    let changes = db.log(&["--table", "customers"]);
    let show = |id: &serde_json::Value| db.on_cache("show", &[&id.to_string()]);
    let insert_3 = changes
        .iter()
        .find(|change| change["op"] == "insert")
        .unwrap();
    assert!(show(&insert_3["id"]).contains("excluded by the column rules: password_hash, ssn"));
    let same: Vec<String> = [2, 3]
        .iter()
        .map(|id| {
            let text = db.on_cache(
                "at",
                &[
                    "--table",
                    "customers",
                    "--key",
                    &format!("{{\"id\": {id}}}"),
                    "--time",
                    &format!("change:{}", insert_3["id"]),
                    "--json",
                ],
            );
            let row: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
            row["email"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(same[0], same[1], "equal emails hash equally");
    // The token's key was hashed: the record is still one record across its key update.
    let tokens = db.log(&["--table", "tokens"]);
    assert_eq!(tokens.len(), 4);
    assert!(
        db.on_cache("log", &["--table", "tokens"])
            .contains("masked:")
    );
}

#[test]
fn restore_scripts_never_write_a_protected_value_and_leave_them_only_when_asked() {
    let db = fresh_db("sensitive_restore");
    let key = db.dir.path().join("mask.key");
    db.sql(SCHEMA);
    db.sql(
        "INSERT INTO customers VALUES
           (1, 'ann@x.io', 'pw-1', '4111111111114242', 'ssn-1', 'Ann', 'note'),
           (2, 'bob@x.io', 'pw-2', '5500000000000004', 'ssn-2', 'Bob', NULL);",
    );
    let args = rules_args(&key);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    db.capture_ok(&args);
    db.sql("UPDATE customers SET name = 'Annie', email = 'annie@x.io' WHERE id = 1;");
    db.sql("UPDATE customers SET name = 'Bobby' WHERE id = 2;");
    db.sql("DELETE FROM customers WHERE id = 2;");
    db.capture_ok(&["--mask-key", key.to_str().unwrap()]);
    let ids: Vec<i64> = db
        .log(&["--table", "customers"])
        .iter()
        .filter(|change| change["op"] != "snapshot")
        .map(|change| change["id"].as_i64().unwrap())
        .collect();
    let [email_update, name_update, delete] = ids[..] else {
        panic!("{ids:?}")
    };
    let undo = |id: i64, extra: &[&str]| {
        let mut args = vec![
            "undo".to_owned(),
            "--cache".to_owned(),
            db.cache().to_string_lossy().into_owned(),
            "--change".to_owned(),
            id.to_string(),
        ];
        args.extend(extra.iter().map(|arg| (*arg).to_owned()));
        rowtrail(&args)
    };
    // The email changed: undoing it would need the real old email.
    assert_clean_failure(
        &undo(email_update, &[]),
        2,
        "column email is protected by the cache's rule 'mask customers.email=hash'",
    );
    // A deleted row put back would need its excluded and masked values.
    let failed = undo(delete, &[]);
    assert_clean_failure(&failed, 2, "--leave-protected");
    // Asked to, the script writes the rest: the row comes back without the protected values.
    let script = undo(delete, &["--leave-protected"]);
    assert!(script.status.success());
    let sql = String::from_utf8(script.stdout).unwrap();
    assert!(!sql.contains("masked:") && !sql.contains("****"), "{sql}");
    assert!(sql.contains("left as it is"), "{sql}");
    let path = db.dir.path().join("undo.sql");
    std::fs::write(&path, &sql).unwrap();
    db.sql(&format!("\\i {}", path.display()));
    assert_eq!(
        db.sql("SELECT id, name, email IS NULL, password_hash IS NULL, card IS NULL FROM customers WHERE id = 2"),
        "2|Bobby|t|t|t"
    );
    // An update that changed only unprotected columns undoes as usual, guarded on them alone.
    let script = undo(name_update, &["--leave-protected"]);
    assert!(script.status.success());
    let sql = String::from_utf8(script.stdout).unwrap();
    assert!(!sql.contains("masked:"), "{sql}");
}

#[test]
fn bad_rules_are_one_line_errors_and_a_cache_keeps_its_rules_and_key() {
    let db = fresh_db("sensitive_bad");
    let key = db.dir.path().join("mask.key");
    db.sql(SCHEMA);
    db.sql("INSERT INTO customers (id, email) VALUES (1, 'a@x.io');");
    for (args, expected) in [
        (vec!["--exclude", "email"], "is not table.column"),
        (vec!["--mask", "customers.email=rot13"], "PATTERN=hash"),
    ] {
        let output = db.capture_once(&args);
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        assert!(
            String::from_utf8_lossy(&output.stderr).contains(expected),
            "{args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let rules = db.dir.path().join("rules.toml");
    std::fs::write(&rules, "exclude = 3\n").unwrap();
    assert_clean_failure(
        &db.capture_once(&["--rules", rules.to_str().unwrap()]),
        2,
        "rules file",
    );
    // A key column may only be hashed.
    assert_clean_failure(
        &db.capture_once(&["--exclude", "customers.id"]),
        2,
        "would exclude key column public.customers.id",
    );
    // The rules file form, then the same cache with other rules, or without its key.
    std::fs::write(
        &rules,
        "exclude = [\"customers.password_hash\"]\n[mask]\n\"customers.email\" = \"hash\"\n",
    )
    .unwrap();
    let key_arg = key.to_str().unwrap();
    db.capture_ok(&["--rules", rules.to_str().unwrap(), "--mask-key", key_arg]);
    assert_clean_failure(
        &db.capture_once(&["--exclude", "customers.name", "--mask-key", key_arg]),
        2,
        "already holds history under other column rules",
    );
    let other = db.dir.path().join("other.key");
    std::fs::write(&other, "ab".repeat(32)).unwrap();
    assert_clean_failure(
        &db.capture_once(&["--mask-key", other.to_str().unwrap()]),
        2,
        "the key given has the fingerprint",
    );
    let missing = db.dir.path().join("none").join("missing.key");
    assert_clean_failure(
        &db.capture_once(&["--mask-key", missing.to_str().unwrap()]),
        2,
        "no key was given",
    );
    db.capture_ok(&["--mask-key", key_arg]);
}

#[test]
fn a_shared_store_keeps_the_rules_its_readers_and_the_bemi_view_obey() {
    let db = fresh_db("sensitive_src");
    let store = fresh_db("sensitive_store");
    let key = db.dir.path().join("mask.key");
    db.sql("CREATE TABLE accounts (id int PRIMARY KEY, secret text, profile jsonb, n int);");
    db.sql("INSERT INTO accounts VALUES (1, 'SENTINEL-1', '{\"a\": 1}', 7);");
    db.capture_ok(&[
        "--exclude",
        "accounts.secret",
        "--mask",
        "accounts.profile=hash",
        "--mask",
        "accounts.n=last4",
        "--mask-key",
        key.to_str().unwrap(),
    ]);
    db.sql("UPDATE accounts SET secret = 'SENTINEL-2', profile = '{\"a\": 2}', n = 12345 WHERE id = 1;");
    db.capture_ok(&["--mask-key", key.to_str().unwrap()]);
    let published = support::publish(&db.cache(), &store.url());
    assert!(
        published.status.success(),
        "{}",
        String::from_utf8_lossy(&published.stderr)
    );
    assert_eq!(
        store.sql(
            "SELECT string_agg(protection, ',' ORDER BY protection) FROM rowtrail.column_rules"
        ),
        "exclude,hash,last4"
    );
    // The Bemi-layout view reads a masked jsonb and int as text, and leaves the excluded out.
    let after = store.sql(
        "SELECT after ->> 'profile', after ->> 'n', after ? 'secret' FROM rowtrail_bemi.changes WHERE operation = 'UPDATE'",
    );
    let parts: Vec<&str> = after.split('|').collect();
    assert!(parts[0].starts_with("masked:"), "{after}");
    assert_eq!(parts[1], "****2345");
    assert_eq!(parts[2], "f", "{after}");
    assert!(
        !store
            .sql("SELECT string_agg(c.before || c.after, '') FROM rowtrail.changes c")
            .contains("SENTINEL")
    );
    // Read from the store, the history says what was excluded and a restore will not write a mask.
    let update = store
        .sql("SELECT max(id) FROM rowtrail.changes")
        .to_string();
    let shown = rowtrail(&["show".into(), "--cache".into(), store.url(), update.clone()]);
    assert!(
        String::from_utf8_lossy(&shown.stdout).contains("excluded by the column rules: secret"),
        "{}{}",
        String::from_utf8_lossy(&shown.stdout),
        String::from_utf8_lossy(&shown.stderr)
    );
    let undo = rowtrail(&[
        "undo".into(),
        "--cache".into(),
        store.url(),
        "--change".into(),
        update,
    ]);
    assert_clean_failure(&undo, 2, "is protected by the cache's rule");
}

#[test]
fn renames_keep_a_column_protected_and_a_column_renamed_into_a_rule_is_masked_from_then_on() {
    let db = fresh_db("sensitive_rename");
    let key = db.dir.path().join("mask.key");
    let key_arg = key.to_str().unwrap();
    db.sql(
        "CREATE TABLE customers (id int PRIMARY KEY, email text, secret text, memo text, name text);
         ALTER TABLE customers ALTER COLUMN memo SET STORAGE EXTERNAL;
         INSERT INTO customers VALUES (1, 'a@x.io', 's', repeat('RAWMEMO ', 1000), 'Ann');
         CREATE TABLE staff (id int PRIMARY KEY, note text, name text);
         ALTER TABLE staff ALTER COLUMN note SET STORAGE EXTERNAL;
         INSERT INTO staff VALUES (1, repeat('RAWNOTE ', 1000), 'Cy');",
    );
    let rules = [
        "--mask",
        "customers.email=hash",
        "--exclude",
        "customers.secret",
        "--exclude",
        "*.ssn",
        "--exclude",
        "employees.note",
        "--mask-key",
        key_arg,
    ];
    db.capture_ok(&rules);
    // The table and a column renamed away from their rules' patterns, captured by a new run.
    db.sql(
        "ALTER TABLE customers RENAME TO clients;
         ALTER TABLE clients RENAME COLUMN email TO contact_email;
         INSERT INTO clients VALUES (2, 'SENTINEL-mail@x.io', 'SENTINEL-secret', 'm', 'Bob');
         UPDATE clients SET contact_email = 'SENTINEL-mail2@x.io', secret = 'SENTINEL-s2' WHERE id = 1;",
    );
    db.capture_ok(&["--mask-key", key_arg]);
    db.sql("UPDATE clients SET secret = 'SENTINEL-s3' WHERE id = 2;");
    db.capture_ok(&["--mask-key", key_arg]);
    assert!(
        !contains(&cache_bytes(&db), "SENTINEL"),
        "a rename let a protected value through"
    );
    // A column renamed into a rule: its older values were not protected, its new ones are, and
    // an unchanged TOASTed value completed from the cache is not copied in raw.
    db.sql(
        "ALTER TABLE clients RENAME COLUMN memo TO ssn;
         UPDATE clients SET name = 'Annie' WHERE id = 1;
         ALTER TABLE staff RENAME TO employees;
         UPDATE employees SET name = 'Cyd' WHERE id = 1;",
    );
    db.capture_ok(&["--mask-key", key_arg]);
    let log = db.log(&[]);
    let show = |table: &str| {
        let id = log
            .iter()
            .rev()
            .find(|change| change["table"].as_str().unwrap().ends_with(table))
            .unwrap()["id"]
            .to_string();
        db.on_cache("show", &[&id])
    };
    let shown = show("clients");
    assert!(shown.contains("name: Ann → Annie"), "{shown}");
    assert!(
        shown.contains("excluded by the column rules: secret, ssn"),
        "{shown}"
    );
    let shown = show("employees");
    assert!(shown.contains("name: Cy → Cyd"), "{shown}");
    assert!(
        shown.contains("excluded by the column rules: note"),
        "{shown}"
    );
    for table in ["clients", "employees"] {
        let at = db.on_cache("at", &["--table", table, "--time", "now"]);
        assert!(!at.contains("RAWMEMO") && !at.contains("RAWNOTE"), "{at}");
    }
    // A later capture with the rules as first given is still the same rules.
    db.capture_ok(&rules);
}
