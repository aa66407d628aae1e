//! Writing SQL safely: identifiers, typed literals, guards, comments and dollar quotes that hold up
//! for any name or value, and for type names read from a cache that may not be trustworthy.

use crate::model::{Column, Value, quote_ident};

use super::HistoryError;

/// A string literal for a session with `standard_conforming_strings = on` (the scripts set it):
/// quotes are doubled, backslashes and everything else stay as they are.
pub fn quote_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// A type name as `format_type` prints it, checked so a damaged or hostile cache cannot smuggle SQL
/// in through it: words, digits, spaces, dots, commas, parentheses, brackets and double-quoted
/// identifiers only.
pub fn checked_type_name(column: &Column) -> Result<&str, HistoryError> {
    let name = column.type_name.as_str();
    let mut in_quotes = false;
    let mut chars = name.chars().peekable();
    let mut valid = !name.is_empty();
    while let Some(c) = chars.next() {
        match (in_quotes, c) {
            (false, '"') => in_quotes = true,
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
            }
            (true, '"') => in_quotes = false,
            (true, _) => {}
            (false, c) if c.is_alphanumeric() || " _.,()[]".contains(c) => {}
            (false, _) => valid = false,
        }
    }
    match valid && !in_quotes {
        true => Ok(name),
        false => Err(HistoryError::UnsafeTypeName {
            column: column.name.clone(),
            type_name: name.to_owned(),
        }),
    }
}

/// A value as a literal of the column's type (`'12.3400'::numeric(12,4)`), or `NULL`.
pub fn typed_literal(column: &Column, value: &Value) -> Result<String, HistoryError> {
    match value {
        Value::Null => Ok("NULL".to_owned()),
        Value::Text(_) | Value::Bytes(_) => Ok(format!(
            "{}::{}",
            untyped_literal(value)?,
            checked_type_name(column)?
        )),
        Value::Unavailable => Err(HistoryError::MissingValue {
            column: column.name.clone(),
        }),
    }
}

/// A value's text form as an SQL expression of type `text`. Bytes that are not UTF-8 are written
/// as a bytea literal taken as text of the server's own encoding, which PostgreSQL only verifies,
/// so they arrive byte for byte whatever the script's client encoding.
fn untyped_literal(value: &Value) -> Result<String, HistoryError> {
    match value {
        Value::Text(text) => Ok(quote_literal(text)),
        Value::Bytes(bytes) => {
            let hex: String = bytes.iter().map(|byte| format!("{byte:02x}")).collect();
            Ok(format!(
                "convert_from('\\x{hex}'::bytea, current_setting('server_encoding'))"
            ))
        }
        Value::Null => Ok("NULL".to_owned()),
        Value::Unavailable => Err(HistoryError::MissingValue {
            column: String::new(),
        }),
    }
}

/// Base types without an equality operator (`json`, `xml`, geometric types and their arrays): their
/// guards compare the text form instead, which does not depend on session settings for these types.
const NO_EQUALITY: [u32; 18] = [
    114, 199, 142, 143, 600, 1017, 601, 1018, 602, 1019, 603, 1020, 604, 1027, 628, 629, 718, 719,
];

/// `"column" IS NOT DISTINCT FROM value`: true when the column holds exactly this value.
pub fn holds(column: &Column, value: &Value) -> Result<String, HistoryError> {
    let name = quote_ident(&column.name);
    match (value, NO_EQUALITY.contains(&column.base_type_oid)) {
        (Value::Text(_) | Value::Bytes(_), true) => Ok(format!(
            "{name}::text IS NOT DISTINCT FROM {}",
            untyped_literal(value)?
        )),
        _ => Ok(format!(
            "{name} IS NOT DISTINCT FROM {}",
            typed_literal(column, value)?
        )),
    }
}

/// Text safe inside a `--` comment: line breaks and other control characters are shown escaped.
pub fn comment_text(text: &str) -> String {
    text.chars()
        .flat_map(|c| match c.is_control() {
            true => c.escape_default().collect::<Vec<_>>(),
            false => vec![c],
        })
        .collect()
}

/// Wraps `body` in dollar quotes whose tag does not occur in it.
pub fn dollar_quote(body: &str) -> String {
    let mut tag = "$rowtrail$".to_owned();
    let mut counter = 0u32;
    while body.contains(&tag) {
        counter += 1;
        tag = format!("$rowtrail{counter}$");
    }
    format!("{tag}\n{body}\n{tag}")
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // In tests a failed unwrap is a failed test.
mod tests {
    use super::*;

    fn column(name: &str, type_name: &str, base: u32) -> Column {
        Column {
            name: name.to_owned(),
            type_oid: base,
            base_type_oid: base,
            type_modifier: -1,
            type_name: type_name.to_owned(),
            in_replica_identity: false,
            identity: None,
            attnum: None,
        }
    }

    #[test]
    fn literals_survive_hostile_values() {
        let text = column("t", "text", 25);
        let hostile = "it's \\ $$ $rowtrail$ \n'); DROP TABLE x; -- ünï";
        assert_eq!(
            typed_literal(&text, &Value::text(hostile)).unwrap(),
            "'it''s \\ $$ $rowtrail$ \n''); DROP TABLE x; -- ünï'::text"
        );
        assert_eq!(typed_literal(&text, &Value::Null).unwrap(), "NULL");
        assert!(typed_literal(&text, &Value::Unavailable).is_err());
        assert_eq!(
            typed_literal(&column("n", "numeric(12,4)", 1700), &Value::text("12.3400")).unwrap(),
            "'12.3400'::numeric(12,4)"
        );
        assert_eq!(
            typed_literal(&text, &Value::Bytes(b"caf\xe9'".to_vec())).unwrap(),
            "convert_from('\\x636166e927'::bytea, current_setting('server_encoding'))::text"
        );
    }

    #[test]
    fn type_names_are_checked() {
        for good in [
            "integer",
            "timestamp with time zone",
            "numeric(12,4)",
            "text[]",
            "public.mood",
            "\"My Type\"",
            "\"we\"\"ird\".\"x;y\"",
            "character varying(20)[]",
        ] {
            assert!(checked_type_name(&column("c", good, 25)).is_ok(), "{good}");
        }
        for bad in [
            "",
            "text; DROP TABLE x",
            "text--",
            "int'",
            "\"open",
            "text/*",
        ] {
            assert!(checked_type_name(&column("c", bad, 25)).is_err(), "{bad}");
        }
    }

    #[test]
    fn guards_compare_text_for_types_without_equality() {
        assert_eq!(
            holds(&column("doc", "json", 114), &Value::text("{\"a\": 1}")).unwrap(),
            "\"doc\"::text IS NOT DISTINCT FROM '{\"a\": 1}'"
        );
        assert_eq!(
            holds(&column("d", "jsonb", 3802), &Value::text("{}")).unwrap(),
            "\"d\" IS NOT DISTINCT FROM '{}'::jsonb"
        );
        assert_eq!(
            holds(&column("n", "integer", 23), &Value::Null).unwrap(),
            "\"n\" IS NOT DISTINCT FROM NULL"
        );
    }

    #[test]
    fn comments_cannot_be_escaped() {
        assert_eq!(
            comment_text("a\nDROP TABLE x; --\r"),
            "a\\nDROP TABLE x; --\\r"
        );
    }

    #[test]
    fn dollar_quotes_avoid_their_body() {
        assert_eq!(dollar_quote("x"), "$rowtrail$\nx\n$rowtrail$");
        assert_eq!(
            dollar_quote("a $rowtrail$ b"),
            "$rowtrail1$\na $rowtrail$ b\n$rowtrail1$"
        );
    }
}
