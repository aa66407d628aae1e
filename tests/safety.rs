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
