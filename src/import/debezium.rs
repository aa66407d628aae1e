//! Debezium change events from PostgreSQL, one JSON object per line, from a file or standard
//! input (so `kcat -C -t topic -e`, or any consumer, can pipe a Kafka topic in).
//!
//! - The envelope comes with its schema part (`{"schema": ..., "payload": ...}`, from
//!   `value.converter.schemas.enable=true`) or without (the payload alone). The schema part
//!   gives the columns' types: values are decoded by them ([`debezium_values`]) and restore
//!   scripts cast to them. Without it, values are taken as they are.
//! - `op` is `r` (a snapshot read, imported as an insert), `c`, `u`, `d`, `t` (truncate) or `m`
//!   (a logical message: Bemi's `_bemi` messages give the context of the changes after them in
//!   the same transaction; other messages have no rows).
//! - `source.txId` groups events into transactions, in the order they come (Debezium sends
//!   them in commit order); `source.ts_us` or `ts_ms` is the commit time. Transaction metadata
//!   events (`status` `BEGIN` / `END`), where the connector sends them, close a transaction at
//!   once; otherwise a transaction ends where the next one starts or at the end of the input
//!   (when the input is quiet for a second, what was read whole is saved; the transaction
//!   still open waits for its rest).
//! - Kafka tombstones (`null`) and heartbeats are skipped.
//!
//! Parsing (`event_of`, `change_of`) is pure; `import` reads the lines and writes through the
//! sink, resuming after the last transaction imported (by commit time and xid).

use std::io::BufRead;
use std::time::Duration;

use base64::Engine as _;
use serde_json::{Map, Value as Json};
use tokio::sync::{mpsc, watch};

use crate::capture::session::SqlSession;
use crate::capture::{CaptureError, catalog, tls};
use crate::model::{Context, RelationSchema, TableName};
use crate::store::SourceIdentity;

use super::debezium_values::{self, Decoded, Kind};
use super::sink::{ImportedTransaction, Sink};
use super::{
    AuditFormat, BATCH_TRANSACTIONS, Fields, ImportError, ImportOptions, ImportSummary,
    ImportedChange, ImportedOp, Origin, RowError,
};

/// Bemi's prefix for the messages that carry an application's context.
const CONTEXT_PREFIX: &str = "_bemi";
/// How long the input may be quiet before the transaction read so far is taken as whole.
const QUIET: Duration = Duration::from_secs(1);

/// One line of input.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Change(Box<ChangeEvent>),
    /// A logical message (`op` `m`).
    Message {
        txid: Option<i64>,
        prefix: String,
        content: Vec<u8>,
    },
    /// Transaction metadata: `BEGIN` (`end` false) or `END`.
    Boundary {
        end: bool,
        txid: Option<i64>,
    },
    /// A tombstone, a heartbeat, an empty line.
    Nothing,
}

/// A row change event.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangeEvent {
    pub table: TableName,
    pub op: ImportedOp,
    pub before: Option<Map<String, Json>>,
    pub after: Option<Map<String, Json>>,
    pub txid: Option<i64>,
    /// The commit time, microseconds since 1970.
    pub committed_us: i64,
    /// Each column's encoding and PostgreSQL type, in the table's order, from the schema part
    /// (empty without it).
    pub columns: Vec<(String, Kind, &'static str)>,
    /// Where this line is, for errors.
    pub line: u64,
}

/// Reads one line of input.
pub fn event_of(line_number: u64, line: &str) -> Result<Event, RowError> {
    let error = |field: &str, reason: String| RowError {
        row: format!("line {line_number}"),
        field: field.to_owned(),
        reason,
    };
    let line = line.trim();
    if line.is_empty() || line == "null" {
        return Ok(Event::Nothing);
    }
    let mut value: Json = serde_json::from_str(line)
        .map_err(|why| error("the line", format!("is not JSON ({why})")))?;
    // The envelope with its schema part, or the payload alone.
    let mut schema = None;
    if value.get("payload").is_some() && value.get("schema").is_some() {
        schema = value.get_mut("schema").map(Json::take);
        value = value.get_mut("payload").map_or(Json::Null, Json::take);
    }
    let Json::Object(mut payload) = value else {
        return Ok(Event::Nothing);
    };
    if let Some(status) = payload.get("status").and_then(Json::as_str) {
        let txid = payload
            .get("id")
            .and_then(Json::as_str)
            .and_then(|id| id.split(':').next())
            .and_then(|txid| txid.parse().ok());
        return match status {
            "BEGIN" => Ok(Event::Boundary { end: false, txid }),
            "END" => Ok(Event::Boundary { end: true, txid }),
            other => Err(error("status", format!("is {other:?}, not BEGIN or END"))),
        };
    }
    let Some(op) = payload.get("op").and_then(Json::as_str).map(str::to_owned) else {
        // Heartbeats and other records without an operation have no rows.
        return Ok(Event::Nothing);
    };
    let source = payload
        .get("source")
        .and_then(Json::as_object)
        .ok_or_else(|| error("source", "is missing".to_owned()))?;
    let txid = source.get("txId").and_then(Json::as_i64);
    if op == "m" {
        let message = payload.get("message").and_then(Json::as_object);
        let prefix = message
            .and_then(|message| message.get("prefix"))
            .and_then(Json::as_str)
            .unwrap_or_default()
            .to_owned();
        let content = message
            .and_then(|message| message.get("content"))
            .and_then(Json::as_str)
            .map(|content| base64::engine::general_purpose::STANDARD.decode(content))
            .transpose()
            .map_err(|why| error("message.content", format!("is not base64 ({why})")))?
            .unwrap_or_default();
        return Ok(Event::Message {
            txid,
            prefix,
            content,
        });
    }
    let op = match op.as_str() {
        "r" | "c" => ImportedOp::Insert,
        "u" => ImportedOp::Update,
        "d" => ImportedOp::Delete,
        "t" => ImportedOp::Truncate,
        other => {
            return Err(error("op", format!("is {other:?}, not r, c, u, d, t or m")));
        }
    };
    let text = |name: &str| -> Result<String, RowError> {
        source
            .get(name)
            .and_then(Json::as_str)
            .map(str::to_owned)
            .ok_or_else(|| error(&format!("source.{name}"), "is missing".to_owned()))
    };
    let table = TableName::new(text("schema")?, text("table")?);
    let committed_us = source
        .get("ts_us")
        .and_then(Json::as_i64)
        .or_else(|| {
            source
                .get("ts_ms")
                .and_then(Json::as_i64)
                .and_then(|ms| ms.checked_mul(1000))
        })
        .ok_or_else(|| error("source.ts_ms", "is missing".to_owned()))?;
    let mut image = |name: &str| -> Result<Option<Map<String, Json>>, RowError> {
        match payload.remove(name) {
            None | Some(Json::Null) => Ok(None),
            Some(Json::Object(row)) => Ok(Some(row)),
            Some(other) => Err(error(name, format!("is {other}, not an object of columns"))),
        }
    };
    let before = image("before")?;
    let after = image("after")?;
    let mut columns: Vec<(String, Kind, &'static str)> = Vec::new();
    if let Some(schema) = &schema {
        let images = schema.get("fields").and_then(Json::as_array);
        for image in images.into_iter().flatten() {
            if !matches!(
                image.get("field").and_then(Json::as_str),
                Some("before" | "after")
            ) {
                continue;
            }
            for column in image
                .get("fields")
                .and_then(Json::as_array)
                .into_iter()
                .flatten()
            {
                if let Some(name) = column.get("field").and_then(Json::as_str)
                    && !columns.iter().any(|(known, _, _)| known == name)
                {
                    let (kind, type_name) = Kind::of_schema_field(column);
                    columns.push((name.to_owned(), kind, type_name));
                }
            }
        }
    }
    Ok(Event::Change(Box::new(ChangeEvent {
        table,
        op,
        before,
        after,
        txid,
        committed_us,
        columns,
        line: line_number,
    })))
}

/// The change an event records, its values decoded by the schema part's types, else by the
/// catalog's (`catalog`: the table as `--catalog` has it).
pub fn change_of(
    event: &ChangeEvent,
    catalog: Option<&RelationSchema>,
) -> Result<ImportedChange, RowError> {
    let error = |field: &str, reason: String| RowError {
        row: format!("line {}", event.line),
        field: field.to_owned(),
        reason,
    };
    let image =
        |field: &str, row: &Option<Map<String, Json>>| -> Result<Option<Fields>, RowError> {
            let Some(row) = row else {
                return Ok(None);
            };
            let mut fields = Vec::with_capacity(row.len());
            // In the table's order where the schema part gives it, else as the event has them.
            let place = |name: &String| {
                event
                    .columns
                    .iter()
                    .position(|(column, _, _)| column == name)
                    .unwrap_or(usize::MAX)
            };
            let mut names: Vec<&String> = row.keys().collect();
            names.sort_by_key(|name| place(name));
            for name in names {
                let value = &row[name.as_str()];
                let by_catalog = || {
                    catalog
                        .and_then(|schema| schema.column_index(name).map(|i| &schema.columns[i]))
                        .map_or(Kind::Unknown, Kind::of_column)
                };
                let kind = event
                    .columns
                    .iter()
                    .find(|(column, _, _)| column == name)
                    .map_or_else(by_catalog, |(_, kind, _)| kind.clone());
                match debezium_values::decode(value, &kind)
                    .map_err(|why| error(field, format!("column {name} {why}")))?
                {
                    Decoded::Null => fields.push((name.clone(), None)),
                    Decoded::Text(text) => fields.push((name.clone(), Some(text))),
                    Decoded::Unavailable => {}
                }
            }
            Ok(Some(fields))
        };
    let before = image("before", &event.before)?;
    let after = image("after", &event.after)?;
    match event.op {
        ImportedOp::Insert | ImportedOp::Update if after.is_none() => {
            return Err(error("after", "is null for a row written".to_owned()));
        }
        ImportedOp::Delete if before.is_none() => {
            return Err(error("before", "is null for a delete".to_owned()));
        }
        _ => {}
    }
    // The key: the catalog's, else the id column if the rows have one.
    let key: Vec<String> = match catalog {
        Some(schema) if !schema.key.is_empty() => schema
            .key
            .iter()
            .map(|&index| schema.columns[index].name.clone())
            .collect(),
        _ if [&before, &after].iter().any(|image| {
            image
                .as_ref()
                .is_some_and(|fields| fields.iter().any(|(name, _)| name == "id"))
        }) =>
        {
            vec!["id".to_owned()]
        }
        _ => Vec::new(),
    };
    // Without REPLICA IDENTITY FULL an old row is its key, the other columns null fillers: an
    // old row whose columns besides the key are all null is taken as the key alone (its values
    // then come from the record's history). A row truly all null there is completed the same.
    let mut before = before;
    if !key.is_empty()
        && let Some(fields) = before.as_mut()
        && fields
            .iter()
            .all(|(name, value)| key.contains(name) || value.is_none())
    {
        fields.retain(|(name, _)| key.contains(name));
    }
    let types: Vec<(String, String)> = event
        .columns
        .iter()
        .map(|(name, _, type_name)| (name.clone(), (*type_name).to_owned()))
        .collect();
    Ok(ImportedChange {
        table: event.table.clone(),
        op: event.op,
        before: if event.op == ImportedOp::Insert {
            None
        } else {
            before
        },
        after: if event.op == ImportedOp::Delete {
            None
        } else {
            after
        },
        key,
        types,
    })
}

/// Where an import of events resumes: every transaction committed before `at` (microseconds
/// since 1970) is imported, and of those committed at `at`, the ones in `done`. Debezium sends
/// transactions in commit order, so input read again (a topic from its start) is skipped up to
/// there, and input that starts later goes on from there.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct EventCursor {
    at: Option<i64>,
    #[serde(default)]
    done: Vec<i64>,
}

impl EventCursor {
    /// Whether a transaction was imported: the one the cursor names, or, while the input is
    /// still being replayed up to where the last run stopped, any committed before it.
    fn imported(&self, at: i64, txid: Option<i64>, replaying: bool) -> bool {
        match self.at {
            None => false,
            Some(last) => {
                (replaying && at < last)
                    || (at == last && txid.is_some_and(|t| self.done.contains(&t)))
            }
        }
    }

    fn add(&mut self, at: i64, txid: Option<i64>) {
        if self.at != Some(at) {
            self.at = Some(at);
            self.done.clear();
        }
        self.done.extend(txid);
    }
}

/// A transaction being read.
#[derive(Default)]
struct Open {
    txid: Option<i64>,
    committed_us: i64,
    changes: Vec<(ChangeEvent, Option<Context>)>,
    context: Option<Context>,
}

/// Reads events from the file or standard input `--from` names, into the cache.
pub(super) async fn import(
    options: &ImportOptions,
    mut stop: watch::Receiver<bool>,
    progress: &(dyn Fn(&ImportSummary) + Sync),
) -> Result<ImportSummary, ImportError> {
    let origin = options.from.clone();
    if matches!(origin, Origin::Database(_)) {
        return Err(ImportError::WrongOrigin {
            format: AuditFormat::Debezium.name(),
            wants: "a file of events, one JSON object per line",
            hint: "give --from a file, or - to read standard input (e.g. kcat -C -t TOPIC -e | rowtrail import --from - …)",
        });
    }
    if let Origin::File(path) = &origin {
        std::fs::metadata(path).map_err(|why| ImportError::Input {
            what: path.display().to_string(),
            why: why.to_string(),
        })?;
    }
    let source = SourceIdentity {
        system_identifier: "debezium".to_owned(),
        database: String::new(),
        display: options.from_display(),
        server_version: String::new(),
    };
    let catalog = match &options.catalog {
        Some(spec) => {
            let tls = tls::client_config(&spec.tls).map_err(CaptureError::from)?;
            let session = SqlSession::connect(spec, tls).await?;
            let facts = catalog::server_facts(&session).await?;
            Some(Catalog {
                session,
                server_version_num: facts.version_num,
            })
        }
        None => None,
    };
    let catalog = catalog.as_ref();
    let mut sink = Sink::open(options, &source)?;
    let mut cursor: EventCursor = sink.cursor()?;
    let (sender, mut lines) = mpsc::channel::<Result<String, String>>(4096);
    let (follow, stopped) = (options.follow, stop.clone());
    std::thread::spawn(move || read_lines(origin, follow, stopped, sender));
    let mut open = Open::default();
    let mut written = 0usize;
    // Commit times are not in commit order everywhere (a snapshot's reads carry the time they
    // were read): transactions before the cursor's time are skipped only until the first one
    // it does not cover.
    let mut replaying = cursor.at.is_some();
    let mut line_number = 0u64;
    loop {
        let next = tokio::select! {
            line = lines.recv() => Some(line),
            _ = tokio::time::sleep(QUIET) => None,
            // A stop that can no longer come (its sender gone) leaves this branch out.
            Ok(()) = stop.changed() => break,
        };
        match next {
            // The input is quiet: the transactions read whole are saved. The open one waits
            // for its end, the next transaction, or the end of the input: the rest of it may
            // still come.
            None => {
                sink.save(&cursor)?;
                progress(&sink.summary);
                written = 0;
                continue;
            }
            // The end of the input.
            Some(None) => break,
            Some(Some(Err(why))) => {
                return Err(ImportError::Input {
                    what: options.from_display(),
                    why,
                });
            }
            Some(Some(Ok(line))) => {
                line_number += 1;
                let event = match event_of(line_number, &line) {
                    Ok(event) => event,
                    Err(error) => {
                        if let Err(error) = sink.bad_row(error) {
                            sink.save(&cursor)?;
                            return Err(error);
                        }
                        continue;
                    }
                };
                let outcome = take(
                    &mut sink,
                    &mut cursor,
                    &mut open,
                    &mut written,
                    &mut replaying,
                    catalog,
                    event,
                )
                .await;
                if let Err(error) = outcome {
                    sink.save(&cursor)?;
                    return Err(error);
                }
            }
        }
        if written >= BATCH_TRANSACTIONS {
            sink.save(&cursor)?;
            progress(&sink.summary);
            written = 0;
        }
    }
    if !*stop.borrow() {
        finish(
            &mut sink,
            &mut cursor,
            &mut open,
            &mut written,
            &mut replaying,
            catalog,
        )
        .await?;
    }
    sink.save(&cursor)?;
    Ok(sink.summary)
}

/// The database `--catalog` names, whose catalog has the events' tables.
struct Catalog {
    session: SqlSession,
    server_version_num: i32,
}

/// Takes one event into the open transaction, closing it first when the event starts another.
async fn take(
    sink: &mut Sink,
    cursor: &mut EventCursor,
    open: &mut Open,
    written: &mut usize,
    replaying: &mut bool,
    catalog: Option<&Catalog>,
    event: Event,
) -> Result<(), ImportError> {
    match event {
        Event::Nothing => {}
        Event::Boundary { end: false, .. } => {
            finish(sink, cursor, open, written, replaying, catalog).await?
        }
        Event::Boundary { end: true, txid } => {
            if open.txid == txid || txid.is_none() {
                finish(sink, cursor, open, written, replaying, catalog).await?;
            }
        }
        Event::Message {
            txid,
            prefix,
            content,
        } => {
            if prefix == CONTEXT_PREFIX {
                if open.txid != txid {
                    finish(sink, cursor, open, written, replaying, catalog).await?;
                    open.txid = txid;
                }
                open.context = match serde_json::from_slice::<Json>(&content) {
                    Ok(Json::Object(context)) if !context.is_empty() => Some(context),
                    _ => None,
                };
            } else {
                sink.summary.statement_only += 1;
            }
        }
        Event::Change(change) => {
            let continues = open.txid == change.txid
                && (open.changes.is_empty() || open.committed_us == change.committed_us);
            if !continues {
                finish(sink, cursor, open, written, replaying, catalog).await?;
            }
            open.txid = change.txid;
            open.committed_us = change.committed_us;
            let context = open.context.clone();
            open.changes.push((*change, context));
        }
    }
    Ok(())
}

/// Writes the open transaction, unless an earlier run imported it.
async fn finish(
    sink: &mut Sink,
    cursor: &mut EventCursor,
    open: &mut Open,
    written: &mut usize,
    replaying: &mut bool,
    catalog: Option<&Catalog>,
) -> Result<(), ImportError> {
    let open = std::mem::take(open);
    if open.changes.is_empty() || cursor.imported(open.committed_us, open.txid, *replaying) {
        return Ok(());
    }
    *replaying = false;
    let mut changes = Vec::with_capacity(open.changes.len());
    for (event, context) in &open.changes {
        let schema = match catalog {
            Some(catalog) => sink
                .catalog_schema(&catalog.session, catalog.server_version_num, &event.table)
                .await?
                .cloned(),
            None => None,
        };
        match change_of(event, schema.as_ref()) {
            Ok(change) => changes.push((change, context.clone())),
            Err(error) => sink.bad_row(error)?,
        }
    }
    sink.write(ImportedTransaction::new(
        open.txid,
        open.committed_us,
        changes,
    ))?;
    cursor.add(open.committed_us, open.txid);
    *written += 1;
    Ok(())
}

/// Sends the input's lines until its end (a file followed: until stopped), then closes.
fn read_lines(
    origin: Origin,
    follow: bool,
    stop: watch::Receiver<bool>,
    sender: mpsc::Sender<Result<String, String>>,
) {
    let mut reader: Box<dyn BufRead> = match &origin {
        Origin::File(path) => match std::fs::File::open(path) {
            Ok(file) => Box::new(std::io::BufReader::new(file)),
            Err(why) => {
                let _ = sender.blocking_send(Err(why.to_string()));
                return;
            }
        },
        _ => Box::new(std::io::BufReader::new(std::io::stdin())),
    };
    let follow_file = follow && matches!(origin, Origin::File(_));
    let mut bytes = Vec::new();
    loop {
        match reader.read_until(b'\n', &mut bytes) {
            Ok(0) if follow_file && !*stop.borrow() => {
                std::thread::sleep(Duration::from_millis(200));
                continue;
            }
            Ok(0) => return,
            // A line still being written: wait for its end.
            Ok(_) if follow_file && !bytes.ends_with(b"\n") => {
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
            Ok(_) => {
                let line = String::from_utf8(std::mem::take(&mut bytes))
                    .map_err(|_| "a line is not UTF-8, as JSON must be".to_owned());
                if sender.blocking_send(line).is_err() {
                    return;
                }
            }
            Err(why) => {
                let _ = sender.blocking_send(Err(why.to_string()));
                return;
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // In tests a failed unwrap is a failed test.
mod tests {
    use super::*;

    const WITH_SCHEMA: &str = r#"{"schema":{"type":"struct","fields":[{"type":"struct","fields":[{"type":"int32","optional":false,"field":"id"},{"type":"bytes","optional":true,"name":"org.apache.kafka.connect.data.Decimal","parameters":{"scale":"2","connect.decimal.precision":"12"},"field":"total"},{"type":"int32","optional":true,"name":"io.debezium.time.Date","field":"day"}],"optional":true,"name":"shop.public.orders.Value","field":"before"},{"type":"struct","fields":[{"type":"int32","optional":false,"field":"id"},{"type":"bytes","optional":true,"name":"org.apache.kafka.connect.data.Decimal","parameters":{"scale":"2","connect.decimal.precision":"12"},"field":"total"},{"type":"int32","optional":true,"name":"io.debezium.time.Date","field":"day"}],"optional":true,"name":"shop.public.orders.Value","field":"after"}],"optional":false,"name":"shop.public.orders.Envelope"},"payload":{"before":null,"after":{"id":7,"total":"BBo=","day":19724},"source":{"version":"2.5.0.Final","connector":"postgresql","name":"shop","ts_ms":1704164645123,"snapshot":"false","db":"shop","sequence":"[null,\"24023128\"]","schema":"public","table":"orders","txId":767,"lsn":24023128,"xmin":null},"op":"c","ts_ms":1704164645200,"transaction":null}}"#;

    fn change_event(line: &str) -> ChangeEvent {
        match event_of(1, line).unwrap() {
            Event::Change(change) => *change,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_event_with_its_schema_part_is_decoded_and_typed() {
        let event = change_event(WITH_SCHEMA);
        assert_eq!(event.txid, Some(767));
        assert_eq!(event.committed_us, 1_704_164_645_123_000);
        let change = change_of(&event, None).unwrap();
        assert_eq!(change.op, ImportedOp::Insert);
        let after = change.after.unwrap();
        assert!(after.contains(&("total".to_owned(), Some("10.50".to_owned()))));
        assert!(after.contains(&("day".to_owned(), Some("2024-01-02".to_owned()))));
        assert_eq!(change.key, ["id"]);
        assert!(
            change
                .types
                .contains(&("day".to_owned(), "date".to_owned()))
        );
    }

    #[test]
    fn an_event_without_its_schema_part_keeps_its_values() {
        let line = r#"{"before":{"id":7,"note":"a"},"after":{"id":7,"note":"b"},"source":{"ts_us":1704164645123456,"schema":"public","table":"orders","txId":9},"op":"u","ts_ms":1}"#;
        let change = change_of(&change_event(line), None).unwrap();
        assert_eq!(change.op, ImportedOp::Update);
        assert_eq!(
            change.before.unwrap()[1],
            ("note".to_owned(), Some("a".to_owned()))
        );
        assert!(change.types.is_empty());
    }

    #[test]
    fn boundaries_messages_tombstones_and_bad_lines() {
        assert_eq!(
            event_of(1, r#"{"status":"END","id":"571:53195829","event_count":2}"#).unwrap(),
            Event::Boundary {
                end: true,
                txid: Some(571)
            }
        );
        assert_eq!(event_of(2, "null").unwrap(), Event::Nothing);
        assert_eq!(event_of(3, "").unwrap(), Event::Nothing);
        let message = event_of(
            4,
            r#"{"op":"m","source":{"txId":5,"schema":"","table":""},"message":{"prefix":"_bemi","content":"eyJ1c2VyIjoiYW5uIn0="}}"#,
        )
        .unwrap();
        assert_eq!(
            message,
            Event::Message {
                txid: Some(5),
                prefix: "_bemi".into(),
                content: br#"{"user":"ann"}"#.to_vec()
            }
        );
        let garbled = event_of(5, "{not json").unwrap_err();
        assert!(
            garbled
                .to_string()
                .starts_with("line 5: the line is not JSON"),
            "{garbled}"
        );
        let unknown = event_of(
            6,
            r#"{"op":"x","source":{"schema":"public","table":"t","ts_ms":1}}"#,
        )
        .unwrap_err();
        assert_eq!(unknown.field, "op");
        let no_table = event_of(7, r#"{"op":"c","source":{"ts_ms":1}}"#).unwrap_err();
        assert_eq!(no_table.field, "source.schema");
    }
}
