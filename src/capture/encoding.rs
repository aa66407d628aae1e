//! The source's text encoding, and how values reach rowtrail whatever it is.
//!
//! rowtrail keeps text as UTF-8. A `UTF8` database sends it so. A database in another encoding
//! (`LATIN1`, `WIN1252`, `EUC_JP`, ...) has the server convert, with its own mapping, which is
//! exact, until a value holds a character the mapping lacks (`0x81` in `WIN1252`): the server then
//! stops the stream with an error, and would do so at every restart. A `SQL_ASCII` database holds
//! any bytes at all, and the server can only check them, not convert them.
//!
//! So capture asks for the server's own bytes (`client_encoding = SQL_ASCII`, which the server
//! passes through untouched) wherever conversion could fail: always for `SQL_ASCII`, where bytes
//! that are valid UTF-8 are taken as text and the rest kept as bytes; and for other encodings
//! during the baseline and for a transaction the server could not convert, where the bytes of
//! each value that is not plain ASCII are converted by the server itself, on a separate SQL
//! connection, one batch at a time ([`transcode`]), and only a value it cannot convert is kept
//! as bytes. Either way no value is lost or altered, and capture never stops on data.

use crate::decode::pgoutput::TupleValue;
use crate::model::Value;

use super::error::CaptureError;
use super::session::SqlSession;

/// The database's encoding, as far as capture cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerEncoding {
    Utf8,
    /// Bytes without any declared encoding.
    SqlAscii,
    /// Any other encoding, by its PostgreSQL name.
    Other(String),
}

impl ServerEncoding {
    pub fn from_name(name: &str) -> Self {
        match name {
            "UTF8" => Self::Utf8,
            "SQL_ASCII" => Self::SqlAscii,
            other => Self::Other(other.to_owned()),
        }
    }

    /// How a replication session receives values when nothing has gone wrong yet.
    pub fn usual_reception(&self) -> Reception {
        match self {
            Self::SqlAscii => Reception::Raw,
            Self::Utf8 | Self::Other(_) => Reception::Converted,
        }
    }
}

/// How a session asks the server to send text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reception {
    /// Converted to UTF-8 by the server (`client_encoding = UTF8`).
    Converted,
    /// As the server stores it (`client_encoding = SQL_ASCII`).
    Raw,
}

impl Reception {
    pub fn client_encoding(self) -> &'static str {
        match self {
            Self::Converted => "UTF8",
            Self::Raw => "SQL_ASCII",
        }
    }
}

/// True for the server's errors about a character it cannot convert to the client's encoding.
pub fn is_untranslatable(error: &CaptureError) -> bool {
    match error {
        CaptureError::Server { error, .. } => matches!(error.code.as_str(), "22P05" | "22021"),
        _ => false,
    }
}

/// How many values one conversion query carries at most.
const BATCH_VALUES: usize = 1000;
/// How many bytes one conversion query carries at most.
const BATCH_BYTES: usize = 4 * 1024 * 1024;

/// Converts values received raw from a database in `encoding` (not `UTF8`, not `SQL_ASCII`) to
/// text, by the server's own conversion; a value it cannot convert stays bytes. Plain ASCII is
/// the same in every server encoding and is taken as it is.
pub async fn transcode(
    sql: &SqlSession,
    encoding: &str,
    values: Vec<Vec<u8>>,
) -> Result<Vec<Value>, CaptureError> {
    let mut converted: Vec<Option<Value>> = Vec::with_capacity(values.len());
    let mut pending = Vec::new();
    for (index, bytes) in values.iter().enumerate() {
        match bytes.is_ascii() {
            true => converted.push(Some(Value::from_bytes(bytes.clone()))),
            false => {
                converted.push(None);
                pending.push(index);
            }
        }
    }
    let mut start = 0;
    while start < pending.len() {
        let mut end = start;
        let mut size = 0;
        while end < pending.len() && end - start < BATCH_VALUES && size < BATCH_BYTES {
            size += values[pending[end]].len();
            end += 1;
        }
        let batch: Vec<&[u8]> = pending[start..end]
            .iter()
            .map(|&index| values[index].as_slice())
            .collect();
        for (offset, value) in convert_batch(sql, encoding, &batch)
            .await?
            .into_iter()
            .enumerate()
        {
            converted[pending[start + offset]] = Some(value);
        }
        start = end;
    }
    Ok(converted
        .into_iter()
        .zip(values)
        .map(|(value, bytes)| value.unwrap_or(Value::Bytes(bytes)))
        .collect())
}

/// Converts one batch; when the server refuses, halves it until the values it cannot convert
/// stand alone, and keeps those as bytes.
async fn convert_batch(
    sql: &SqlSession,
    encoding: &str,
    batch: &[&[u8]],
) -> Result<Vec<Value>, CaptureError> {
    let mut results: Vec<Option<Value>> = vec![None; batch.len()];
    let mut ranges = vec![(0, batch.len())];
    while let Some((start, end)) = ranges.pop() {
        let part = &batch[start..end];
        let answer = sql
            .query(
                "converting text from the server's encoding",
                "SELECT convert(u.v, $2::name, 'UTF8')
                 FROM unnest($1::bytea[]) WITH ORDINALITY AS u(v, n) ORDER BY u.n",
                &[&part, &encoding],
            )
            .await;
        match answer {
            Ok(rows) => {
                for (offset, row) in rows.iter().enumerate() {
                    results[start + offset] = Some(Value::from_bytes(row.get(0)));
                }
            }
            Err(error) if is_untranslatable(&error) => match end - start {
                1 => results[start] = Some(Value::Bytes(part[0].to_vec())),
                length => {
                    let middle = start + length / 2;
                    ranges.push((start, middle));
                    ranges.push((middle, end));
                }
            },
            Err(error) => return Err(error),
        }
    }
    Ok(results
        .into_iter()
        .zip(batch)
        .map(|(value, bytes)| value.unwrap_or_else(|| Value::Bytes(bytes.to_vec())))
        .collect())
}

/// Converts the values of decoded tuples received raw from a database in `encoding`, in place.
pub async fn transcode_tuples(
    sql: &SqlSession,
    encoding: &str,
    tuples: &mut [&mut Vec<TupleValue>],
) -> Result<(), CaptureError> {
    let mut raw = Vec::new();
    for tuple in tuples.iter() {
        for value in tuple.iter() {
            match value {
                TupleValue::Text(text) if !text.is_ascii() => raw.push(text.as_bytes().to_vec()),
                TupleValue::Bytes(bytes) => raw.push(bytes.clone()),
                _ => {}
            }
        }
    }
    if raw.is_empty() {
        return Ok(());
    }
    let mut converted = transcode(sql, encoding, raw).await?.into_iter();
    for tuple in tuples.iter_mut() {
        for value in tuple.iter_mut() {
            let needs = match value {
                TupleValue::Text(text) => !text.is_ascii(),
                TupleValue::Bytes(_) => true,
                _ => false,
            };
            if needs && let Some(new) = converted.next() {
                *value = match new {
                    Value::Text(text) => TupleValue::Text(text),
                    Value::Bytes(bytes) => TupleValue::Bytes(bytes),
                    Value::Null => TupleValue::Null,
                    Value::Unavailable => TupleValue::UnchangedToast,
                };
            }
        }
    }
    Ok(())
}
