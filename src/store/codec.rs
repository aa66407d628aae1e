//! How row images are laid out in the cache's `changes` table.
//!
//! - `after` and the `before` of deletes are JSON arrays of text or null, one per column of the
//!   relation schema version (`["7","Ann",null]`).
//! - The `before` of an update holds only what differs from `after`: a JSON object from column
//!   index to old value (`{"1":"Anne"}`). Unchanged columns cost nothing.
//! - A value that is not valid UTF-8 is an object holding its bytes in hex: `{"x":"636166e9"}`.
//! - `unavailable` lists the columns whose value is unknown, per image (`{"b":[2],"a":[2]}`), or is
//!   NULL when every value is known. An unavailable position holds JSON null in the array but is
//!   decoded as [`Value::Unavailable`], never as SQL NULL.

use serde_json::{Map, Value as Json};

use crate::model::{Change, Op, Row, Value};

/// The encoded images of one change, ready for the `before`, `after` and `unavailable` columns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedImages {
    pub before: Option<String>,
    pub after: Option<String>,
    pub unavailable: Option<String>,
}

/// A stored image could not be read back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("stored row image is damaged: {0}")]
pub struct CodecError(pub String);

fn value_json(value: &Value) -> Json {
    match value {
        Value::Text(text) => Json::String(text.clone()),
        Value::Bytes(bytes) => {
            let hex: String = bytes.iter().map(|byte| format!("{byte:02x}")).collect();
            let mut object = Map::new();
            object.insert("x".to_owned(), Json::String(hex));
            Json::Object(object)
        }
        Value::Null | Value::Unavailable => Json::Null,
    }
}

fn bytes_from_hex(hex: &str) -> Option<Vec<u8>> {
    if !hex.len().is_multiple_of(2) {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|index| {
            hex.get(index..index + 2)
                .and_then(|pair| u8::from_str_radix(pair, 16).ok())
        })
        .collect()
}

fn unavailable_indexes(row: &Row) -> Vec<usize> {
    row.iter()
        .enumerate()
        .filter(|(_, value)| !value.is_available())
        .map(|(index, _)| index)
        .collect()
}

fn array(row: &Row) -> String {
    Json::Array(row.iter().map(value_json).collect()).to_string()
}

pub fn encode(change: &Change) -> EncodedImages {
    let after = change.after.as_ref().map(array);
    let before = match (change.op, &change.before, &change.after) {
        (Op::Update, Some(before), Some(after)) if before.len() == after.len() => {
            let delta: Map<String, Json> = before
                .iter()
                .zip(after)
                .enumerate()
                .filter(|(_, (old, new))| old != new)
                .map(|(index, (old, _))| (index.to_string(), value_json(old)))
                .collect();
            Some(Json::Object(delta).to_string())
        }
        (_, Some(before), _) => Some(array(before)),
        (_, None, _) => None,
    };
    let mut unavailable = Map::new();
    for (name, row) in [("b", &change.before), ("a", &change.after)] {
        let indexes = row.as_ref().map(unavailable_indexes).unwrap_or_default();
        if !indexes.is_empty() {
            unavailable.insert(name.to_owned(), Json::from(indexes));
        }
    }
    EncodedImages {
        before,
        after,
        unavailable: (!unavailable.is_empty()).then(|| Json::Object(unavailable).to_string()),
    }
}

/// One stored value read straight from the JSON text, without an intermediate `serde_json::Value`
/// (reading a 100,000-row table at a moment spent a fifth of its time building and dropping them).
struct StoredValue(Value);

impl<'de> serde::Deserialize<'de> for StoredValue {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(StoredValueVisitor)
    }
}

struct StoredValueVisitor;

impl<'de> serde::de::Visitor<'de> for StoredValueVisitor {
    type Value = StoredValue;

    fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("a string, null, or {\"x\": hex}")
    }

    fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<StoredValue, E> {
        Ok(StoredValue(Value::Text(text.to_owned())))
    }

    fn visit_string<E: serde::de::Error>(self, text: String) -> Result<StoredValue, E> {
        Ok(StoredValue(Value::Text(text)))
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<StoredValue, E> {
        Ok(StoredValue(Value::Null))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<StoredValue, A::Error> {
        use serde::de::Error;
        let bytes =
            match map.next_entry::<std::borrow::Cow<'de, str>, std::borrow::Cow<'de, str>>()? {
                Some((name, hex)) if name == "x" => bytes_from_hex(&hex)
                    .ok_or_else(|| A::Error::custom(format!("bad hex {hex}")))?,
                _ => return Err(A::Error::custom("a value object holds only \"x\"")),
            };
        if map.next_key::<serde::de::IgnoredAny>()?.is_some() {
            return Err(A::Error::custom("a value object holds only \"x\""));
        }
        Ok(StoredValue(Value::Bytes(bytes)))
    }
}

/// A stored array image (`after`, or the `before` of a delete), its unavailable positions marked.
fn read_row(text: &str, marked: &[usize]) -> Result<Row, CodecError> {
    let values: Vec<StoredValue> =
        serde_json::from_str(text).map_err(|error| CodecError(error.to_string()))?;
    let mut row: Row = values.into_iter().map(|value| value.0).collect();
    mark(&mut row, marked);
    Ok(row)
}

/// The unavailable positions of one image (`"a"` or `"b"`) from the `unavailable` column.
fn unavailable_marks(unavailable: Option<&str>) -> Result<UnavailableMarks, CodecError> {
    match unavailable {
        Some(text) => serde_json::from_str(text).map_err(|error| CodecError(error.to_string())),
        None => Ok(UnavailableMarks::default()),
    }
}

#[derive(Debug, Default, serde::Deserialize)]
struct UnavailableMarks {
    #[serde(default)]
    b: Vec<usize>,
    #[serde(default)]
    a: Vec<usize>,
}

/// Only the after-image of a stored change: what a row is after it (a table at a moment reads
/// nothing else of the newest change of each record).
pub fn decode_after(images: &EncodedImages) -> Result<Option<Row>, CodecError> {
    let marks = unavailable_marks(images.unavailable.as_deref())?;
    images
        .after
        .as_deref()
        .map(|text| read_row(text, &marks.a))
        .transpose()
}

/// One stored value: text, null, or bytes in hex.
fn read_value(json: &Json) -> Result<Value, CodecError> {
    match json {
        Json::String(text) => Ok(Value::Text(text.clone())),
        Json::Null => Ok(Value::Null),
        Json::Object(object) if object.len() == 1 => object
            .get("x")
            .and_then(Json::as_str)
            .and_then(bytes_from_hex)
            .map(Value::Bytes)
            .ok_or_else(|| {
                CodecError(format!("unexpected value {}", Json::Object(object.clone())))
            }),
        other => Err(CodecError(format!("unexpected value {other}"))),
    }
}

pub fn decode(op: Op, images: &EncodedImages) -> Result<Change, CodecError> {
    if matches!(op, Op::Ddl | Op::Gap) {
        // No row images; `after` holds what happened (see store::reader).
        return Ok(Change {
            op,
            before: None,
            after: None,
        });
    }
    let parse = |text: &str| {
        serde_json::from_str::<Json>(text).map_err(|error| CodecError(error.to_string()))
    };
    let marks = unavailable_marks(images.unavailable.as_deref())?;
    let after = images
        .after
        .as_deref()
        .map(|text| read_row(text, &marks.a))
        .transpose()?;
    let before = match (op, images.before.as_deref(), &after) {
        (Op::Update, Some(text), Some(after)) => {
            let Json::Object(delta) = parse(text)? else {
                return Err(CodecError("update before-image is not an object".into()));
            };
            let mut row = after.clone();
            for (index, value) in &delta {
                let slot = index
                    .parse::<usize>()
                    .ok()
                    .and_then(|index| row.get_mut(index))
                    .ok_or_else(|| CodecError(format!("column index {index} out of range")))?;
                *slot = read_value(value)?;
            }
            // Positions outside the delta equal the after value, availability included; inside
            // it, the before marks say which old values are unknown.
            let in_delta: Vec<usize> = marks
                .b
                .iter()
                .copied()
                .filter(|index| delta.contains_key(&index.to_string()))
                .collect();
            mark(&mut row, &in_delta);
            Some(row)
        }
        (_, Some(text), _) => Some(read_row(text, &marks.b)?),
        (_, None, _) => None,
    };
    Ok(Change { op, before, after })
}

fn mark(row: &mut Row, indexes: &[usize]) {
    for &index in indexes {
        if let Some(value) = row.get_mut(index) {
            *value = Value::Unavailable;
        }
    }
}

/// The canonical text of a key (a JSON array of the key values), used to index and find records.
pub fn encode_key(key: &[Value]) -> String {
    Json::Array(key.iter().map(value_json).collect()).to_string()
}

/// The key values back from their canonical text (`encode_key`).
pub fn decode_key(text: &str) -> Result<Vec<Value>, CodecError> {
    match serde_json::from_str::<Json>(text) {
        Ok(Json::Array(items)) => items.iter().map(read_value).collect(),
        _ => Err(CodecError(format!("key {text} is not an array"))),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // In tests a failed unwrap is a failed test.
mod tests {
    use super::*;

    fn row(values: &[&str]) -> Row {
        values
            .iter()
            .map(|value| match *value {
                "?" => Value::Unavailable,
                "NULL" => Value::Null,
                other => Value::text(other),
            })
            .collect()
    }

    fn round_trip(change: Change) -> EncodedImages {
        let encoded = encode(&change);
        assert_eq!(decode(change.op, &encoded).unwrap(), change);
        encoded
    }

    #[test]
    fn insert_is_a_plain_array() {
        let encoded = round_trip(Change {
            op: Op::Insert,
            before: None,
            after: Some(row(&["7", "Ann \"the\" \\ best", "NULL"])),
        });
        assert_eq!(
            encoded.after.as_deref(),
            Some(r#"["7","Ann \"the\" \\ best",null]"#)
        );
        assert_eq!(encoded.before, None);
        assert_eq!(encoded.unavailable, None);
    }

    #[test]
    fn update_stores_only_the_changed_before_values() {
        let encoded = round_trip(Change {
            op: Op::Update,
            before: Some(row(&["7", "Ann", "x", "NULL"])),
            after: Some(row(&["7", "Anne", "x", "set"])),
        });
        assert_eq!(encoded.before.as_deref(), Some(r#"{"1":"Ann","3":null}"#));
    }

    #[test]
    fn unavailable_values_survive_and_are_not_null() {
        let encoded = round_trip(Change {
            op: Op::Update,
            before: Some(row(&["7", "?", "?", "a"])),
            after: Some(row(&["7", "NULL", "?", "b"])),
        });
        assert_eq!(
            encoded.unavailable.as_deref(),
            Some(r#"{"b":[1,2],"a":[2]}"#)
        );
        round_trip(Change {
            op: Op::Delete,
            before: Some(row(&["7", "?", "NULL"])),
            after: None,
        });
        round_trip(Change {
            op: Op::Truncate,
            before: None,
            after: None,
        });
    }

    #[test]
    fn bytes_that_are_not_utf8_round_trip_apart_from_text() {
        let encoded = round_trip(Change {
            op: Op::Insert,
            before: None,
            after: Some(vec![
                Value::Bytes(b"caf\xe9".to_vec()),
                Value::text("636166e9"),
                Value::Bytes(Vec::new()),
            ]),
        });
        assert_eq!(
            encoded.after.as_deref(),
            Some(r#"[{"x":"636166e9"},"636166e9",{"x":""}]"#)
        );
        for bad in [r#"[{"x":"6"}]"#, r#"[{"x":"zz"}]"#, r#"[{"y":"00"}]"#] {
            let damaged = EncodedImages {
                before: None,
                after: Some(bad.into()),
                unavailable: None,
            };
            assert!(decode(Op::Insert, &damaged).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_after_image_alone_reads_as_the_whole_change_does() {
        for change in [
            Change {
                op: Op::Update,
                before: Some(row(&["7", "?", "x"])),
                after: Some(row(&["7", "NULL", "?"])),
            },
            Change {
                op: Op::Insert,
                before: None,
                after: Some(vec![
                    Value::Bytes(b"\xff\x00".to_vec()),
                    Value::text("a\"b"),
                ]),
            },
            Change {
                op: Op::Delete,
                before: Some(row(&["7"])),
                after: None,
            },
        ] {
            let encoded = encode(&change);
            assert_eq!(decode_after(&encoded).unwrap(), change.after);
        }
        let damaged = EncodedImages {
            before: None,
            after: Some(r#"[{"x":"00","y":"00"}]"#.into()),
            unavailable: None,
        };
        assert!(decode_after(&damaged).is_err());
    }

    #[test]
    fn damaged_images_are_errors() {
        let damaged = EncodedImages {
            before: Some(r#"{"9":"x"}"#.into()),
            after: Some(r#"["1"]"#.into()),
            unavailable: None,
        };
        assert!(decode(Op::Update, &damaged).is_err());
        let damaged = EncodedImages {
            before: None,
            after: Some("{".into()),
            unavailable: None,
        };
        assert!(decode(Op::Insert, &damaged).is_err());
    }

    #[test]
    fn keys_are_json_arrays() {
        assert_eq!(
            encode_key(&[Value::text("7"), Value::Null]),
            r#"["7",null]"#
        );
        let key = vec![Value::text("7"), Value::Null, Value::Bytes(vec![0xe9])];
        assert_eq!(decode_key(&encode_key(&key)).unwrap(), key);
        assert!(decode_key(r#"{"7":1}"#).is_err());
    }
}
