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
/// in through it (see [`is_type_name`]).
pub fn checked_type_name(column: &Column) -> Result<&str, HistoryError> {
    let name = column.type_name.as_str();
    match is_type_name(name) {
        true => Ok(name),
        false => Err(HistoryError::UnsafeTypeName {
            column: column.name.clone(),
            type_name: name.to_owned(),
        }),
    }
}

/// True for what `format_type` prints, and nothing else: a possibly schema-qualified, possibly
/// quoted name with an optional list of modifiers (integers or plain words, as in
/// `numeric(12,4)` or PostGIS's `geometry(Point,4326)`), or one of SQL's multi-word type names
/// (`character varying(20)`, `timestamp(3) with time zone`, `interval day to second(6)`, ...),
/// either followed by `[]`. Nothing in such a name can end the cast it stands in.
pub fn is_type_name(text: &str) -> bool {
    let mut input = TypeNameInput { rest: text };
    let parsed = input.multi_word() || input.named();
    while parsed && input.eat("[]") {}
    parsed && input.rest.is_empty()
}

/// A cursor over a type name being checked.
struct TypeNameInput<'a> {
    rest: &'a str,
}

impl TypeNameInput<'_> {
    fn eat(&mut self, token: &str) -> bool {
        match self.rest.strip_prefix(token) {
            Some(rest) => {
                self.rest = rest;
                true
            }
            None => false,
        }
    }

    /// A whole word: `token` not followed by another identifier character.
    fn eat_word(&mut self, word: &str) -> bool {
        let saved = self.rest;
        if self.eat(word)
            && !self
                .rest
                .starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_' || c == '$')
        {
            return true;
        }
        self.rest = saved;
        false
    }

    /// `(digits)`, if there.
    fn precision(&mut self) -> bool {
        let saved = self.rest;
        if self.eat("(") {
            let digits = self.rest.len()
                - self
                    .rest
                    .trim_start_matches(|c: char| c.is_ascii_digit())
                    .len();
            self.rest = &self.rest[digits..];
            if digits > 0 && self.eat(")") {
                return true;
            }
        }
        self.rest = saved;
        false
    }

    /// SQL's type names of several words, as `format_type` spells them.
    fn multi_word(&mut self) -> bool {
        let saved = self.rest;
        for head in ["character varying", "bit varying", "character", "bit"] {
            if self.eat_word(head) {
                self.precision();
                return true;
            }
        }
        if self.eat_word("double precision") {
            return true;
        }
        for head in ["timestamp", "time"] {
            if self.eat_word(head) {
                self.precision();
                if self.eat(" with time zone") || self.eat(" without time zone") {
                    return true;
                }
                self.rest = saved;
                return false;
            }
        }
        if self.eat_word("interval") {
            const FIELDS: [&str; 13] = [
                " year to month",
                " day to hour",
                " day to minute",
                " day to second",
                " hour to minute",
                " hour to second",
                " minute to second",
                " year",
                " month",
                " day",
                " hour",
                " minute",
                " second",
            ];
            for field in FIELDS {
                if self.eat_word(field) {
                    break;
                }
            }
            self.precision();
            return true;
        }
        false
    }

    /// `name`, `schema.name`, either part quoted, with optional modifiers.
    fn named(&mut self) -> bool {
        if !self.identifier() {
            return false;
        }
        if self.eat(".") && !self.identifier() {
            return false;
        }
        if self.eat("(") {
            loop {
                let item = self.rest.len()
                    - self
                        .rest
                        .trim_start_matches(|c: char| c.is_ascii_alphanumeric() || c == '_')
                        .len();
                if item == 0 {
                    return false;
                }
                self.rest = &self.rest[item..];
                if self.eat(")") {
                    break;
                }
                if !self.eat(",") {
                    return false;
                }
            }
        }
        true
    }

    /// An identifier as `quote_ident` prints it: plain (lower case, digits, `_`, `$`, not
    /// starting with a digit or `$`) or double-quoted with quotes doubled.
    fn identifier(&mut self) -> bool {
        if let Some(quoted) = self.rest.strip_prefix('"') {
            let mut chars = quoted.char_indices();
            while let Some((index, c)) = chars.next() {
                if c != '"' {
                    continue;
                }
                if quoted[index + 1..].starts_with('"') {
                    chars.next();
                    continue;
                }
                if index == 0 {
                    return false;
                }
                self.rest = &quoted[index + 1..];
                return true;
            }
            return false;
        }
        let mut chars = self.rest.chars();
        match chars.next() {
            Some(c) if c.is_alphabetic() || c == '_' => {}
            _ => return false,
        }
        let length = self
            .rest
            .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == '$'))
            .unwrap_or(self.rest.len());
        self.rest = &self.rest[length..];
        true
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
            "text IS NULL OR pg_terminate_backend(1) IS NULL",
            "numeric(12,4) OR true",
            "numeric(pg_terminate_backend(1))",
            "numeric(1,)",
            "character varying(20) OR 1 = 1",
            "timestamp with time zone; SELECT 1",
            "interval day to second) OR (1",
            "text[] IS NULL",
            "text [ ]",
            "public.",
            ".text",
            "a.b.c",
            "\"\"",
            " text",
            "text ",
            "$1",
        ] {
            assert!(checked_type_name(&column("c", bad, 25)).is_err(), "{bad}");
        }
        for good in [
            "double precision",
            "bit varying(5)[]",
            "character(1)",
            "timestamp(3) with time zone",
            "time without time zone[]",
            "interval",
            "interval(3)",
            "interval day to second(6)",
            "interval year",
            "geometry(Point,4326)",
            "\"char\"",
            "\"My\"\"Type\".\"with space\"[]",
            "public.mood[]",
        ] {
            assert!(checked_type_name(&column("c", good, 25)).is_ok(), "{good}");
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
