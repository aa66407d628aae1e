//! Pure decoding of what a PostgreSQL walsender sends: replication frames, pgoutput messages,
//! relation schemas, application context messages, and complete row images.
//!
//! Architecture invariant: nothing here does I/O or touches tokio, SQLite or egui. Every function
//! takes owned or borrowed data and returns a value or a [`DecodeError`]; garbage input is an error,
//! never a panic.

pub mod copy_text;
pub mod ddl;
pub mod frame;
pub mod image;
pub mod pgoutput;
mod relation;

pub use relation::{CatalogDetails, build_schema, details_from_schema};

use crate::model::{Context, Value};

/// The stream held something rowtrail cannot read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("message ended early while reading the {what}")]
    Truncated { what: &'static str },
    #[error("unexpected message tag {:?}", char::from(*tag))]
    UnexpectedTag { tag: u8 },
    #[error("{what}")]
    Invalid { what: &'static str },
    #[error("{extra} unread bytes at the end of a message")]
    TrailingBytes { extra: usize },
    #[error("a row of {table} has {found} columns but its relation message listed {expected}")]
    ColumnCount {
        table: String,
        expected: usize,
        found: usize,
    },
    #[error("a change refers to relation {oid}, which the stream has not described")]
    UnknownRelation { oid: u32 },
}

/// Turns a value as a type's output function prints it (what pgoutput and `COPY` send) into what
/// `value::text` prints, which is the form rowtrail stores. The two differ for three base types:
/// `boolean` (`t` / `true`), `character(n)` (padded / trimmed) and `inet` (`10.0.0.1` /
/// `10.0.0.1/32`). Both forms read back as the same value.
pub fn text_form(base_type_oid: crate::model::Oid, output: String) -> String {
    const BOOL: u32 = 16;
    const BPCHAR: u32 = 1042;
    const INET: u32 = 869;
    match base_type_oid {
        BOOL => match output.as_str() {
            "t" => "true".to_owned(),
            "f" => "false".to_owned(),
            _ => output,
        },
        BPCHAR => {
            let trimmed = output.trim_end_matches(' ').len();
            let mut output = output;
            output.truncate(trimmed);
            output
        }
        INET if !output.contains('/') => {
            let bits = if output.contains(':') { 128 } else { 32 };
            format!("{output}/{bits}")
        }
        _ => output,
    }
}

/// [`text_form`] for a value the source sent: text, or bytes that are not UTF-8 (which only
/// `character(n)` changes, by losing its padding).
pub fn value_form(base_type_oid: crate::model::Oid, value: Value) -> Value {
    const BPCHAR: u32 = 1042;
    match value {
        Value::Text(text) => Value::Text(text_form(base_type_oid, text)),
        Value::Bytes(mut bytes) if base_type_oid == BPCHAR => {
            let kept = bytes
                .iter()
                .rposition(|&byte| byte != b' ')
                .map_or(0, |last| last + 1);
            bytes.truncate(kept);
            Value::Bytes(bytes)
        }
        other => other,
    }
}

/// The message prefixes whose JSON content is taken as application context: rowtrail's own and
/// Bemi's (so applications instrumented for Bemi work unchanged).
pub const CONTEXT_PREFIXES: [&str; 2] = ["rowtrail", "_bemi"];

/// Reads the application context from a logical decoding message, if it is one.
///
/// Returns `None` for other prefixes. Returns `Some(Err(..))` for a context prefix whose content is
/// not a JSON object, so the caller can warn instead of silently dropping it.
pub fn parse_context(prefix: &str, content: &[u8]) -> Option<Result<Context, String>> {
    if !CONTEXT_PREFIXES.contains(&prefix) {
        return None;
    }
    Some(match serde_json::from_slice::<serde_json::Value>(content) {
        Ok(serde_json::Value::Object(map)) => Ok(map),
        Ok(_) => Err(format!("'{prefix}' message is JSON but not an object")),
        Err(error) => Err(format!("'{prefix}' message is not JSON: {error}")),
    })
}

/// A bounds-checked big-endian reader over one message.
pub(crate) struct Reader<'a> {
    data: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(data: &'a [u8]) -> Self {
        Self { data }
    }

    pub(crate) fn remaining(&self) -> usize {
        self.data.len()
    }

    /// A safe capacity for `count` items of at least `min_size` bytes each: never more than the
    /// remaining bytes could hold, so a corrupt count cannot trigger a huge allocation.
    pub(crate) fn capacity_for(&self, count: u32, min_size: usize) -> usize {
        (count as usize).min(self.data.len() / min_size.max(1))
    }

    pub(crate) fn bytes(
        &mut self,
        length: u32,
        what: &'static str,
    ) -> Result<&'a [u8], DecodeError> {
        let length = length as usize;
        if length > self.data.len() {
            return Err(DecodeError::Truncated { what });
        }
        let (head, tail) = self.data.split_at(length);
        self.data = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], DecodeError> {
        let bytes = self.bytes(N as u32, what)?;
        let mut array = [0u8; N];
        array.copy_from_slice(bytes);
        Ok(array)
    }

    pub(crate) fn u8(&mut self, what: &'static str) -> Result<u8, DecodeError> {
        Ok(self.array::<1>(what)?[0])
    }

    pub(crate) fn u16(&mut self, what: &'static str) -> Result<u16, DecodeError> {
        Ok(u16::from_be_bytes(self.array(what)?))
    }

    pub(crate) fn u32(&mut self, what: &'static str) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array(what)?))
    }

    pub(crate) fn i32(&mut self, what: &'static str) -> Result<i32, DecodeError> {
        Ok(i32::from_be_bytes(self.array(what)?))
    }

    pub(crate) fn u64(&mut self, what: &'static str) -> Result<u64, DecodeError> {
        Ok(u64::from_be_bytes(self.array(what)?))
    }

    pub(crate) fn i64(&mut self, what: &'static str) -> Result<i64, DecodeError> {
        Ok(i64::from_be_bytes(self.array(what)?))
    }

    /// A NUL-terminated string. A name that is not UTF-8 (possible in a `SQL_ASCII` database) is
    /// read with its invalid bytes replaced: capture goes on, and SQL naming it fails safely.
    pub(crate) fn cstr(&mut self, what: &'static str) -> Result<String, DecodeError> {
        let end = self
            .data
            .iter()
            .position(|&byte| byte == 0)
            .ok_or(DecodeError::Truncated { what })?;
        let text = String::from_utf8_lossy(&self.data[..end]).into_owned();
        self.data = &self.data[end + 1..];
        Ok(text)
    }

    pub(crate) fn finish(&self) -> Result<(), DecodeError> {
        match self.data.len() {
            0 => Ok(()),
            extra => Err(DecodeError::TrailingBytes { extra }),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // In tests a failed unwrap is a failed test.
mod tests {
    use super::*;

    #[test]
    fn text_form_matches_the_cast_to_text() {
        assert_eq!(text_form(16, "t".into()), "true");
        assert_eq!(text_form(16, "f".into()), "false");
        assert_eq!(text_form(1042, "ab   ".into()), "ab");
        assert_eq!(text_form(1042, "  ".into()), "");
        assert_eq!(text_form(869, "10.0.0.1".into()), "10.0.0.1/32");
        assert_eq!(text_form(869, "::1".into()), "::1/128");
        assert_eq!(text_form(869, "10.0.0.0/8".into()), "10.0.0.0/8");
        assert_eq!(text_form(1000, "{t,f}".into()), "{t,f}");
        assert_eq!(text_form(25, "t".into()), "t");
    }

    #[test]
    fn context_messages_are_json_objects_under_known_prefixes() {
        let context = parse_context("rowtrail", br#"{"user":"ann","endpoint":"PUT /orders/7"}"#)
            .unwrap()
            .unwrap();
        assert_eq!(context["user"], "ann");
        assert!(parse_context("_bemi", br#"{"user_id":5}"#).unwrap().is_ok());
        assert!(parse_context("other", b"{}").is_none());
        assert!(parse_context("rowtrail", b"[1]").unwrap().is_err());
        assert!(parse_context("rowtrail", b"not json").unwrap().is_err());
    }
}
