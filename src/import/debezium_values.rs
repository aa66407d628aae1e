//! Debezium's JSON encoding of PostgreSQL values, back to the text PostgreSQL prints for them
//! (what capture stores, with `DateStyle` ISO and `TimeZone` UTC). Bemi's `changes` table holds
//! the same encoding, so both formats read values here.
//!
//! Debezium's defaults: `numeric` as its unscaled value's two's complement bytes in base64
//! (`decimal.handling.mode=precise`; `string` and `double` are read too), `bytea` as base64,
//! `date` as days since 1970, `timestamp` as micro- or milliseconds since 1970, `timestamptz` as
//! an ISO 8601 string, `time` as microseconds since midnight, `interval` as microseconds, `json`
//! as its text, arrays as JSON arrays, and `__debezium_unavailable_value` for a TOASTed value the
//! change did not carry. Pure: JSON in, text out.

use base64::Engine as _;
use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use serde_json::Value as Json;

use crate::model::Column;

/// What Debezium writes for a value the change did not carry (an unchanged TOASTed column).
pub const UNAVAILABLE: &str = "__debezium_unavailable_value";

/// How a column's values are encoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// No type known: strings are taken as they are, anything else as its JSON text.
    Unknown,
    Bool,
    Integer,
    Float4,
    Float8,
    /// `numeric`, with the scale its declaration fixes (`None`: variable scale).
    Numeric(Option<u32>),
    Bytea,
    Date,
    /// `timestamp`: milliseconds (precision 0 to 3) or microseconds since 1970.
    Timestamp {
        millis: bool,
    },
    TimestampTz,
    /// `time`: milliseconds (precision 0 to 3) or microseconds since midnight.
    Time {
        millis: bool,
    },
    TimeTz,
    Interval,
    /// Text of any kind: text, varchar, uuid, json, inet, enums...
    Text,
    Array(Box<Kind>),
}

/// A value read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoded {
    Null,
    Text(String),
    /// The event did not carry the value.
    Unavailable,
}

impl Kind {
    /// How the catalog's column is encoded.
    pub fn of_column(column: &Column) -> Kind {
        let by_name = Self::of_type_name(&column.type_name);
        if by_name != Kind::Unknown {
            return by_name;
        }
        // A domain: its base type decides.
        match column.base_type_oid {
            16 => Kind::Bool,
            20 | 21 | 23 | 26 => Kind::Integer,
            700 => Kind::Float4,
            701 => Kind::Float8,
            1700 => Kind::Numeric(None),
            17 => Kind::Bytea,
            1082 => Kind::Date,
            1114 => Kind::Timestamp { millis: false },
            1184 => Kind::TimestampTz,
            1083 => Kind::Time { millis: false },
            1266 => Kind::TimeTz,
            1186 => Kind::Interval,
            _ => Kind::Text,
        }
    }

    /// How a type, as `format_type` names it, is encoded (`Unknown` for one it does not know).
    pub fn of_type_name(name: &str) -> Kind {
        if let Some(element) = name.strip_suffix("[]") {
            return Kind::Array(Box::new(match Self::of_type_name(element) {
                Kind::Unknown => Kind::Text,
                kind => kind,
            }));
        }
        let precision = |name: &str| -> Option<u32> {
            let open = name.find('(')?;
            let close = name[open..].find(')')? + open;
            name[open + 1..close].trim().parse().ok()
        };
        // The name without its modifier: `timestamp(3) with time zone` is a timestamptz.
        let base = match (name.find('('), name.find(')')) {
            (Some(open), Some(close)) if open < close => {
                format!("{}{}", name[..open].trim_end(), &name[close + 1..])
            }
            _ => name.to_owned(),
        };
        match base.trim() {
            "boolean" => Kind::Bool,
            "smallint" | "integer" | "bigint" | "oid" => Kind::Integer,
            "real" => Kind::Float4,
            "double precision" => Kind::Float8,
            "numeric" => Kind::Numeric(name.split_once(',').map_or(
                if name.contains('(') { Some(0) } else { None },
                |(_, scale)| scale.trim_end_matches(')').trim().parse().ok(),
            )),
            "money" => Kind::Numeric(Some(2)),
            "bytea" => Kind::Bytea,
            "date" => Kind::Date,
            "timestamp" | "timestamp without time zone" => Kind::Timestamp {
                millis: precision(name).is_some_and(|p| p <= 3),
            },
            "timestamp with time zone" | "timestamptz" => Kind::TimestampTz,
            "time" | "time without time zone" => Kind::Time {
                millis: precision(name).is_some_and(|p| p <= 3),
            },
            "time with time zone" | "timetz" => Kind::TimeTz,
            "interval" => Kind::Interval,
            "text" | "character varying" | "character" | "uuid" | "json" | "jsonb" | "inet"
            | "cidr" | "macaddr" | "xml" | "citext" => Kind::Text,
            _ => Kind::Unknown,
        }
    }

    /// How a field of an event's schema part is encoded (its `type`, logical `name` and
    /// `parameters`), and the PostgreSQL type to give the column.
    pub fn of_schema_field(field: &Json) -> (Kind, &'static str) {
        let name = field.get("name").and_then(Json::as_str).unwrap_or("");
        let kind = field.get("type").and_then(Json::as_str).unwrap_or("");
        let scale = field
            .get("parameters")
            .and_then(|parameters| parameters.get("scale"))
            .and_then(|scale| match scale {
                Json::String(text) => text.parse().ok(),
                Json::Number(number) => number.as_u64().and_then(|n| u32::try_from(n).ok()),
                _ => None,
            });
        match (name, kind) {
            ("io.debezium.time.Date", _) => (Kind::Date, "date"),
            ("io.debezium.time.Timestamp", _) => (Kind::Timestamp { millis: true }, "timestamp"),
            ("io.debezium.time.MicroTimestamp", _) => {
                (Kind::Timestamp { millis: false }, "timestamp")
            }
            ("io.debezium.time.ZonedTimestamp", _) => (Kind::TimestampTz, "timestamptz"),
            ("io.debezium.time.Time", _) => (Kind::Time { millis: true }, "time"),
            ("io.debezium.time.MicroTime", _) => (Kind::Time { millis: false }, "time"),
            ("io.debezium.time.ZonedTime", _) => (Kind::TimeTz, "timetz"),
            ("io.debezium.time.MicroDuration", _) => (Kind::Interval, "interval"),
            ("org.apache.kafka.connect.data.Decimal", _) => (Kind::Numeric(scale), "numeric"),
            ("io.debezium.data.VariableScaleDecimal", _) => (Kind::Numeric(None), "numeric"),
            ("io.debezium.data.Json", _) => (Kind::Text, "jsonb"),
            ("io.debezium.data.Uuid", _) => (Kind::Text, "uuid"),
            (_, "boolean") => (Kind::Bool, "boolean"),
            (_, "int8" | "int16") => (Kind::Integer, "smallint"),
            (_, "int32") => (Kind::Integer, "integer"),
            (_, "int64") => (Kind::Integer, "bigint"),
            (_, "float32") => (Kind::Float4, "real"),
            (_, "float64") => (Kind::Float8, "double precision"),
            (_, "bytes") => (Kind::Bytea, "bytea"),
            (_, "string") => (Kind::Text, "text"),
            (_, "array") => {
                let (element, _) = field
                    .get("items")
                    .map_or((Kind::Text, "text"), Self::of_schema_field);
                (Kind::Array(Box::new(element)), "text[]")
            }
            _ => (Kind::Unknown, "text"),
        }
    }
}

/// The text PostgreSQL prints for a value Debezium encoded as `value`, for a column of `kind`.
pub fn decode(value: &Json, kind: &Kind) -> Result<Decoded, String> {
    if value.is_null() {
        return Ok(Decoded::Null);
    }
    if value.as_str() == Some(UNAVAILABLE) {
        return Ok(Decoded::Unavailable);
    }
    let wrong = || format!("holds {value}, which is not how Debezium encodes {kind:?}");
    let text = match (kind, value) {
        (Kind::Unknown, Json::String(text)) => text.clone(),
        (Kind::Unknown, other) => other.to_string(),
        (Kind::Text, Json::String(text)) => text.clone(),
        // A json column Debezium was told to keep as JSON, or a struct of an unknown type.
        (Kind::Text, other) => other.to_string(),
        (Kind::Bool, Json::Bool(flag)) => flag.to_string(),
        (Kind::Integer, Json::Number(number)) if number.is_i64() || number.is_u64() => {
            number.to_string()
        }
        (Kind::Float8, Json::Number(number)) => float_text(number.as_f64().ok_or_else(wrong)?),
        (Kind::Float4, Json::Number(number)) => {
            float4_text(number.as_f64().ok_or_else(wrong)? as f32)
        }
        (Kind::Float4 | Kind::Float8, Json::String(special)) => match special.as_str() {
            "NaN" => "NaN".to_owned(),
            "Infinity" => "Infinity".to_owned(),
            "-Infinity" => "-Infinity".to_owned(),
            _ => return Err(wrong()),
        },
        (Kind::Numeric(scale), value) => numeric_text(value, *scale).ok_or_else(wrong)?,
        (Kind::Bytea, Json::String(text)) => {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(text)
                .map_err(|_| wrong())?;
            let mut hex = String::with_capacity(2 + bytes.len() * 2);
            hex.push_str("\\x");
            for byte in bytes {
                hex.push_str(&format!("{byte:02x}"));
            }
            hex
        }
        (Kind::Date, Json::Number(days)) => {
            let days = days.as_i64().ok_or_else(wrong)?;
            NaiveDate::from_ymd_opt(1970, 1, 1)
                .and_then(|epoch| epoch.checked_add_signed(chrono::TimeDelta::try_days(days)?))
                .ok_or_else(wrong)?
                .format("%Y-%m-%d")
                .to_string()
        }
        (Kind::Timestamp { millis }, Json::Number(number)) => {
            let count = number.as_i64().ok_or_else(wrong)?;
            let micros = if *millis {
                count.checked_mul(1000).ok_or_else(wrong)?
            } else {
                count
            };
            let at = DateTime::<Utc>::from_timestamp_micros(micros).ok_or_else(wrong)?;
            format!(
                "{}{}",
                at.format("%Y-%m-%d %H:%M:%S"),
                fraction(micros.rem_euclid(1_000_000))
            )
        }
        (Kind::TimestampTz, Json::String(text)) => {
            let at = DateTime::parse_from_rfc3339(text)
                .map_err(|_| wrong())?
                .with_timezone(&Utc);
            format!(
                "{}{}+00",
                at.format("%Y-%m-%d %H:%M:%S"),
                fraction(i64::from(at.timestamp_subsec_micros()))
            )
        }
        (Kind::Time { millis }, Json::Number(number)) => {
            let count = number.as_i64().ok_or_else(wrong)?;
            let micros = if *millis {
                count.checked_mul(1000).ok_or_else(wrong)?
            } else {
                count
            };
            if micros == 86_400_000_000 {
                "24:00:00".to_owned()
            } else {
                let seconds = u32::try_from(micros.div_euclid(1_000_000)).map_err(|_| wrong())?;
                let time =
                    NaiveTime::from_num_seconds_from_midnight_opt(seconds, 0).ok_or_else(wrong)?;
                format!(
                    "{}{}",
                    time.format("%H:%M:%S"),
                    fraction(micros.rem_euclid(1_000_000))
                )
            }
        }
        (Kind::TimeTz, Json::String(text)) => match text.strip_suffix('Z') {
            Some(time) => format!("{time}+00"),
            None => text.clone(),
        },
        (Kind::Interval, Json::Number(number)) => {
            let micros = number
                .as_i64()
                .or_else(|| number.as_f64().map(|f| f as i64))
                .ok_or_else(wrong)?;
            interval_text(micros)
        }
        (Kind::Interval, Json::String(text)) => text.clone(),
        (Kind::Array(element), Json::Array(items)) => array_text(items, element)?,
        _ => return Err(wrong()),
    };
    Ok(Decoded::Text(text))
}

/// `.ffffff` without trailing zeros, or nothing for whole seconds (as PostgreSQL prints them).
fn fraction(micros: i64) -> String {
    if micros == 0 {
        return String::new();
    }
    let digits = format!("{micros:06}");
    format!(".{}", digits.trim_end_matches('0'))
}

/// An interval of `micros` as PostgreSQL prints one of hours, minutes and seconds.
fn interval_text(micros: i64) -> String {
    let sign = if micros < 0 { "-" } else { "" };
    let micros = micros.unsigned_abs();
    let seconds = micros / 1_000_000;
    format!(
        "{sign}{:02}:{:02}:{:02}{}",
        seconds / 3600,
        seconds / 60 % 60,
        seconds % 60,
        fraction((micros % 1_000_000) as i64)
    )
}

/// A `real` or `double precision` as PostgreSQL prints it.
pub(super) fn float_text_of(kind: &Kind, value: f64) -> String {
    if *kind == Kind::Float4 {
        float4_text(value as f32)
    } else {
        float_text(value)
    }
}

/// A `double precision` as PostgreSQL prints it: the shortest text that reads back the same,
/// in exponent form below 1e-4 and from 1e15.
fn float_text(value: f64) -> String {
    shortest(format!("{value:e}"), 15)
}

/// A `real` as PostgreSQL prints it: exponent form below 1e-4 and from 1e6.
fn float4_text(value: f32) -> String {
    shortest(format!("{value:e}"), 6)
}

/// Rust's shortest `{:e}` text (`1.5e3`) in PostgreSQL's layout.
fn shortest(scientific: String, exponent_from: i32) -> String {
    match scientific.as_str() {
        "NaN" => return "NaN".to_owned(),
        "inf" => return "Infinity".to_owned(),
        "-inf" => return "-Infinity".to_owned(),
        _ => {}
    }
    let Some((mantissa, exponent)) = scientific.split_once('e') else {
        return scientific;
    };
    let Ok(exponent) = exponent.parse::<i32>() else {
        return scientific;
    };
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(rest) => ("-", rest),
        None => ("", mantissa),
    };
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    if digits.chars().all(|digit| digit == '0') {
        return format!("{sign}0");
    }
    if exponent < -4 || exponent >= exponent_from {
        let (first, rest) = digits.split_at(1);
        let rest = if rest.is_empty() {
            String::new()
        } else {
            format!(".{rest}")
        };
        let exponent_sign = if exponent < 0 { "-" } else { "+" };
        return format!("{sign}{first}{rest}e{exponent_sign}{:02}", exponent.abs());
    }
    let point = exponent + 1;
    if point <= 0 {
        let zeros = "0".repeat(point.unsigned_abs() as usize);
        format!("{sign}0.{zeros}{digits}")
    } else if point as usize >= digits.len() {
        let zeros = "0".repeat(point as usize - digits.len());
        format!("{sign}{digits}{zeros}")
    } else {
        let (whole, part) = digits.split_at(point as usize);
        format!("{sign}{whole}.{part}")
    }
}

/// A `numeric` in any of Debezium's modes: base64 unscaled bytes with the column's scale,
/// `{"scale", "value"}` for a variable scale, a string, or a JSON number.
fn numeric_text(value: &Json, scale: Option<u32>) -> Option<String> {
    match value {
        Json::Number(number) => Some(number.to_string()),
        Json::Object(fields) => {
            let scale = u32::try_from(fields.get("scale")?.as_u64()?).ok()?;
            unscaled_text(fields.get("value")?.as_str()?, scale)
        }
        Json::String(text) => {
            let plain = text
                .strip_prefix('-')
                .unwrap_or(text)
                .chars()
                .all(|c| c.is_ascii_digit() || c == '.')
                && text.chars().any(|c| c.is_ascii_digit());
            if plain || matches!(text.as_str(), "NaN" | "Infinity" | "-Infinity") {
                Some(text.clone())
            } else {
                unscaled_text(text, scale?)
            }
        }
        _ => None,
    }
}

/// A decimal from its unscaled value (big-endian two's complement, in base64) and scale.
fn unscaled_text(base64_bytes: &str, scale: u32) -> Option<String> {
    // PostgreSQL's numeric keeps at most 16,383 digits after the point.
    if scale > 16_383 {
        return None;
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(base64_bytes)
        .ok()?;
    let negative = bytes.first().is_some_and(|first| first & 0x80 != 0);
    // The magnitude, big-endian: the two's complement negated when negative.
    let mut magnitude: Vec<u8> = if negative {
        let mut inverted: Vec<u8> = bytes.iter().map(|byte| !byte).collect();
        for byte in inverted.iter_mut().rev() {
            let (sum, carry) = byte.overflowing_add(1);
            *byte = sum;
            if !carry {
                break;
            }
        }
        inverted
    } else {
        bytes
    };
    // Base 256 to base 10, by repeated division.
    let mut digits = Vec::new();
    while magnitude.iter().any(|&byte| byte != 0) {
        let mut remainder = 0u32;
        for byte in magnitude.iter_mut() {
            let current = (remainder << 8) | u32::from(*byte);
            *byte = (current / 10) as u8;
            remainder = current % 10;
        }
        digits.push(char::from(b'0' + remainder as u8));
    }
    let scale = scale as usize;
    while digits.len() <= scale {
        digits.push('0');
    }
    digits.reverse();
    let digits: String = digits.into_iter().collect();
    let (whole, part) = digits.split_at(digits.len() - scale);
    let sign = if negative { "-" } else { "" };
    Some(if scale == 0 {
        format!("{sign}{whole}")
    } else {
        format!("{sign}{whole}.{part}")
    })
}

/// A JSON array as PostgreSQL prints an array: `{a,"b c",NULL}`, nested for more dimensions.
fn array_text(items: &[Json], element: &Kind) -> Result<String, String> {
    let mut parts = Vec::with_capacity(items.len());
    for item in items {
        let part = match item {
            Json::Array(inner) => array_text(inner, element)?,
            item => match decode(item, element)? {
                Decoded::Null => "NULL".to_owned(),
                Decoded::Unavailable => return Err(format!("holds {UNAVAILABLE} in an array")),
                Decoded::Text(text) => quoted_element(&element_text(element, text)),
            },
        };
        parts.push(part);
    }
    Ok(format!("{{{}}}", parts.join(",")))
}

/// An element's text inside an array: a boolean is `t` or `f` there (PostgreSQL prints
/// `{t,f}`; only a lone boolean is turned into `true` by the text form capture stores).
pub(super) fn element_text(element: &Kind, text: String) -> String {
    match (element, text.as_str()) {
        (Kind::Bool, "true") => "t".to_owned(),
        (Kind::Bool, "false") => "f".to_owned(),
        _ => text,
    }
}

/// An array element as PostgreSQL prints it: quoted where it must be.
pub(super) fn quoted_element(text: &str) -> String {
    let plain = !text.is_empty()
        && !text.eq_ignore_ascii_case("NULL")
        && !text
            .chars()
            .any(|c| matches!(c, '{' | '}' | ',' | '"' | '\\') || c.is_ascii_whitespace());
    if plain {
        return text.to_owned();
    }
    let mut quoted = String::with_capacity(text.len() + 2);
    quoted.push('"');
    for c in text.chars() {
        if c == '"' || c == '\\' {
            quoted.push('\\');
        }
        quoted.push(c);
    }
    quoted.push('"');
    quoted
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // In tests a failed unwrap is a failed test.
mod tests {
    use super::*;
    use serde_json::json;

    fn text(value: Json, kind: Kind) -> String {
        match decode(&value, &kind).unwrap() {
            Decoded::Text(text) => text,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn numerics_in_every_mode() {
        // 10.50 as numeric(12,2): unscaled 1050 = 0x041a.
        assert_eq!(text(json!("BBo="), Kind::Numeric(Some(2))), "10.50");
        // -0.50: unscaled -50 = 0xce.
        assert_eq!(text(json!("zg=="), Kind::Numeric(Some(2))), "-0.50");
        assert_eq!(text(json!("AA=="), Kind::Numeric(Some(2))), "0.00");
        assert_eq!(
            text(json!({"scale": 3, "value": "MDk="}), Kind::Numeric(None)),
            "12.345"
        );
        assert_eq!(text(json!("10.50"), Kind::Numeric(Some(2))), "10.50");
        assert_eq!(text(json!(10.5), Kind::Numeric(Some(2))), "10.5");
        // Larger than any machine integer.
        assert_eq!(
            text(
                json!("AQAAAAAAAAAAAAAAAAAAAAAAAA=="),
                Kind::Numeric(Some(0))
            ),
            "22300745198530623141535718272648361505980416"
        );
        assert_eq!(Kind::of_type_name("numeric(12,2)"), Kind::Numeric(Some(2)));
        assert_eq!(Kind::of_type_name("numeric"), Kind::Numeric(None));
    }

    #[test]
    fn times_as_postgresql_prints_them() {
        assert_eq!(text(json!(19724), Kind::Date), "2024-01-02");
        assert_eq!(
            text(
                json!(1_704_164_645_123_450_i64),
                Kind::Timestamp { millis: false }
            ),
            "2024-01-02 03:04:05.12345"
        );
        assert_eq!(
            text(
                json!(1_704_164_645_000_i64),
                Kind::Timestamp { millis: true }
            ),
            "2024-01-02 03:04:05"
        );
        assert_eq!(
            text(json!("2024-01-02T05:04:05.5+02:00"), Kind::TimestampTz),
            "2024-01-02 03:04:05.5+00"
        );
        assert_eq!(
            text(json!(11_045_000_000_i64), Kind::Time { millis: false }),
            "03:04:05"
        );
        assert_eq!(text(json!("03:04:05Z"), Kind::TimeTz), "03:04:05+00");
        assert_eq!(text(json!(93_600_000_000_i64), Kind::Interval), "26:00:00");
        assert_eq!(
            Kind::of_type_name("timestamp(3) without time zone"),
            Kind::Timestamp { millis: true }
        );
    }

    #[test]
    fn floats_bytes_arrays_and_the_rest() {
        assert_eq!(text(json!(1.5), Kind::Float8), "1.5");
        assert_eq!(text(json!(1e20), Kind::Float8), "1e+20");
        assert_eq!(text(json!(0.00001), Kind::Float8), "1e-05");
        assert_eq!(text(json!(123456.0), Kind::Float8), "123456");
        assert_eq!(text(json!(1.100000023841858), Kind::Float4), "1.1");
        assert_eq!(text(json!(1234567.0), Kind::Float4), "1.234567e+06");
        assert_eq!(text(json!("3q2+7w=="), Kind::Bytea), "\\xdeadbeef");
        assert_eq!(
            text(
                json!(["x", "a b", "", null, "NULL", "q\""]),
                Kind::Array(Box::new(Kind::Text))
            ),
            r#"{x,"a b","",NULL,"NULL","q\""}"#
        );
        assert_eq!(
            text(json!([[1, 2], [3, 4]]), Kind::of_type_name("integer[]")),
            "{{1,2},{3,4}}"
        );
        assert_eq!(text(json!(true), Kind::Bool), "true");
        assert_eq!(
            text(json!([true, false, null]), Kind::of_type_name("boolean[]")),
            "{t,f,NULL}"
        );
        assert_eq!(
            Kind::of_type_name("timestamp(3) with time zone"),
            Kind::TimestampTz
        );
        assert_eq!(Kind::of_type_name("time(2) with time zone"), Kind::TimeTz);
        assert!(decode(&json!(200_000_000_000_000_i64), &Kind::Date).is_err());
        assert!(decode(&json!(i64::MAX), &Kind::Timestamp { millis: true }).is_err());
        assert!(
            decode(
                &json!({"scale": 4_000_000_000_u64, "value": "AQ=="}),
                &Kind::Numeric(None)
            )
            .is_err()
        );
        assert_eq!(text(json!({"a": 1}), Kind::Unknown), r#"{"a":1}"#);
        assert_eq!(decode(&json!(null), &Kind::Text).unwrap(), Decoded::Null);
        assert_eq!(
            decode(&json!(UNAVAILABLE), &Kind::Text).unwrap(),
            Decoded::Unavailable
        );
        assert!(decode(&json!("x"), &Kind::Integer).is_err());
        assert!(decode(&json!("not base64!"), &Kind::Bytea).is_err());
    }
}
