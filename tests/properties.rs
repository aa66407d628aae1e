//! Property tests of everything that parses (issue 11, item 11): replication frames, pgoutput
//! messages, COPY rows, the cache's image codec and the type-name grammar. Valid input, written by
//! an encoder here that follows PostgreSQL's documented formats, round-trips; garbage and damaged
//! input is an error, never a panic.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly on unexpected values.

use bytes::{BufMut, Bytes, BytesMut};
use proptest::prelude::*;
use rowtrail::decode::copy_text;
use rowtrail::decode::frame::ServerFrame;
use rowtrail::decode::pgoutput::{
    LogicalMessage, OldRow, RelationColumn, RelationMessage, Streamed, TupleData, TupleValue,
    pg_timestamp, split_streamed, to_pg_timestamp,
};
use rowtrail::model::{Change, Lsn, Op, ReplicaIdentity, Value, Xid};
use rowtrail::store::codec;

// ---- strategies -------------------------------------------------------------------------------

/// Microseconds since 2000-01-01 within chrono's range.
fn pg_micros() -> impl Strategy<Value = i64> {
    -2_000_000_000_000_000i64..2_000_000_000_000_000i64
}

/// A C string: any text without NUL.
fn name() -> impl Strategy<Value = String> {
    "[^\u{0}]{0,12}"
}

fn tuple_value() -> impl Strategy<Value = TupleValue> {
    prop_oneof![
        Just(TupleValue::Null),
        Just(TupleValue::UnchangedToast),
        ".{0,20}".prop_map(TupleValue::Text),
        proptest::collection::vec(any::<u8>(), 0..20).prop_map(|bytes| {
            match String::from_utf8(bytes) {
                Ok(text) => TupleValue::Text(text),
                Err(error) => TupleValue::Bytes(error.into_bytes()),
            }
        }),
    ]
}

fn tuple() -> impl Strategy<Value = TupleData> {
    proptest::collection::vec(tuple_value(), 0..8).prop_map(TupleData)
}

fn identity() -> impl Strategy<Value = ReplicaIdentity> {
    prop_oneof![
        Just(ReplicaIdentity::Default),
        Just(ReplicaIdentity::Nothing),
        Just(ReplicaIdentity::Full),
        Just(ReplicaIdentity::Index),
    ]
}

fn message() -> impl Strategy<Value = LogicalMessage> {
    let time = || pg_micros().prop_map(|micros| pg_timestamp(micros).unwrap());
    prop_oneof![
        (any::<u64>(), time(), any::<u32>()).prop_map(|(lsn, committed_at, xid)| {
            LogicalMessage::Begin {
                final_lsn: Lsn(lsn),
                committed_at,
                xid: Xid(xid),
            }
        }),
        (any::<u64>(), any::<u64>(), time()).prop_map(|(commit, end, committed_at)| {
            LogicalMessage::Commit {
                commit_lsn: Lsn(commit),
                end_lsn: Lsn(end),
                committed_at,
            }
        }),
        name().prop_map(|name| LogicalMessage::Origin { name }),
        (
            any::<u32>(),
            name(),
            name(),
            identity(),
            proptest::collection::vec((any::<bool>(), name(), any::<u32>(), any::<i32>()), 0..6)
        )
            .prop_map(|(oid, namespace, name, replica_identity, columns)| {
                LogicalMessage::Relation(RelationMessage {
                    oid,
                    namespace,
                    name,
                    replica_identity,
                    columns: columns
                        .into_iter()
                        .map(|(is_key, name, type_oid, type_modifier)| RelationColumn {
                            is_key,
                            name,
                            type_oid,
                            type_modifier,
                        })
                        .collect(),
                })
            }),
        (any::<u32>(), name(), name()).prop_map(|(oid, namespace, name)| LogicalMessage::Type {
            oid,
            namespace,
            name
        }),
        (any::<u32>(), tuple())
            .prop_map(|(relation, new)| LogicalMessage::Insert { relation, new }),
        (
            any::<u32>(),
            proptest::option::of((any::<bool>(), tuple())),
            tuple()
        )
            .prop_map(|(relation, old, new)| LogicalMessage::Update {
                relation,
                old: old.map(|(full, tuple)| match full {
                    true => OldRow::Full(tuple),
                    false => OldRow::Key(tuple),
                }),
                new,
            }),
        (any::<u32>(), any::<bool>(), tuple()).prop_map(|(relation, full, tuple)| {
            LogicalMessage::Delete {
                relation,
                old: match full {
                    true => OldRow::Full(tuple),
                    false => OldRow::Key(tuple),
                },
            }
        }),
        (
            proptest::collection::vec(any::<u32>(), 0..5),
            any::<bool>(),
            any::<bool>()
        )
            .prop_map(
                |(relations, cascade, restart_identity)| LogicalMessage::Truncate {
                    relations,
                    cascade,
                    restart_identity,
                }
            ),
        (
            any::<bool>(),
            any::<u64>(),
            name(),
            proptest::collection::vec(any::<u8>(), 0..30)
        )
            .prop_map(
                |(transactional, lsn, prefix, content)| LogicalMessage::Message {
                    transactional,
                    lsn: Lsn(lsn),
                    prefix,
                    content: Bytes::from(content),
                }
            ),
        (any::<u32>(), any::<bool>()).prop_map(|(xid, first_segment)| {
            LogicalMessage::StreamStart {
                xid: Xid(xid),
                first_segment,
            }
        }),
        Just(LogicalMessage::StreamStop),
        (any::<u32>(), any::<u64>(), any::<u64>(), time()).prop_map(
            |(xid, commit_lsn, end_lsn, committed_at)| LogicalMessage::StreamCommit {
                xid: Xid(xid),
                commit_lsn: Lsn(commit_lsn),
                end_lsn: Lsn(end_lsn),
                committed_at,
            }
        ),
        (any::<u32>(), any::<u32>()).prop_map(|(xid, subxid)| LogicalMessage::StreamAbort {
            xid: Xid(xid),
            subxid: Xid(subxid),
        }),
    ]
}

// ---- encoders, after "Logical Replication Message Formats" in the PostgreSQL manual -----------

fn put_cstr(buf: &mut BytesMut, text: &str) {
    buf.put_slice(text.as_bytes());
    buf.put_u8(0);
}

fn put_tuple(buf: &mut BytesMut, tuple: &TupleData) {
    buf.put_u16(tuple.0.len() as u16);
    for value in &tuple.0 {
        match value {
            TupleValue::Null => buf.put_u8(b'n'),
            TupleValue::UnchangedToast => buf.put_u8(b'u'),
            TupleValue::Text(text) => {
                buf.put_u8(b't');
                buf.put_u32(text.len() as u32);
                buf.put_slice(text.as_bytes());
            }
            TupleValue::Bytes(bytes) => {
                buf.put_u8(b't');
                buf.put_u32(bytes.len() as u32);
                buf.put_slice(bytes);
            }
        }
    }
}

fn put_old(buf: &mut BytesMut, old: &OldRow) {
    match old {
        OldRow::Key(tuple) => {
            buf.put_u8(b'K');
            put_tuple(buf, tuple);
        }
        OldRow::Full(tuple) => {
            buf.put_u8(b'O');
            put_tuple(buf, tuple);
        }
    }
}

fn identity_code(identity: ReplicaIdentity) -> u8 {
    match identity {
        ReplicaIdentity::Default => b'd',
        ReplicaIdentity::Nothing => b'n',
        ReplicaIdentity::Full => b'f',
        ReplicaIdentity::Index => b'i',
    }
}

fn encode(message: &LogicalMessage) -> Bytes {
    let mut buf = BytesMut::new();
    match message {
        LogicalMessage::Begin {
            final_lsn,
            committed_at,
            xid,
        } => {
            buf.put_u8(b'B');
            buf.put_u64(final_lsn.0);
            buf.put_i64(to_pg_timestamp(*committed_at));
            buf.put_u32(xid.0);
        }
        LogicalMessage::Commit {
            commit_lsn,
            end_lsn,
            committed_at,
        } => {
            buf.put_u8(b'C');
            buf.put_u8(0);
            buf.put_u64(commit_lsn.0);
            buf.put_u64(end_lsn.0);
            buf.put_i64(to_pg_timestamp(*committed_at));
        }
        LogicalMessage::Origin { name } => {
            buf.put_u8(b'O');
            buf.put_u64(0);
            put_cstr(&mut buf, name);
        }
        LogicalMessage::Relation(relation) => {
            buf.put_u8(b'R');
            buf.put_u32(relation.oid);
            put_cstr(&mut buf, &relation.namespace);
            put_cstr(&mut buf, &relation.name);
            buf.put_u8(identity_code(relation.replica_identity));
            buf.put_u16(relation.columns.len() as u16);
            for column in &relation.columns {
                buf.put_u8(u8::from(column.is_key));
                put_cstr(&mut buf, &column.name);
                buf.put_u32(column.type_oid);
                buf.put_i32(column.type_modifier);
            }
        }
        LogicalMessage::Type {
            oid,
            namespace,
            name,
        } => {
            buf.put_u8(b'Y');
            buf.put_u32(*oid);
            put_cstr(&mut buf, namespace);
            put_cstr(&mut buf, name);
        }
        LogicalMessage::Insert { relation, new } => {
            buf.put_u8(b'I');
            buf.put_u32(*relation);
            buf.put_u8(b'N');
            put_tuple(&mut buf, new);
        }
        LogicalMessage::Update { relation, old, new } => {
            buf.put_u8(b'U');
            buf.put_u32(*relation);
            if let Some(old) = old {
                put_old(&mut buf, old);
            }
            buf.put_u8(b'N');
            put_tuple(&mut buf, new);
        }
        LogicalMessage::Delete { relation, old } => {
            buf.put_u8(b'D');
            buf.put_u32(*relation);
            put_old(&mut buf, old);
        }
        LogicalMessage::Truncate {
            relations,
            cascade,
            restart_identity,
        } => {
            buf.put_u8(b'T');
            buf.put_u32(relations.len() as u32);
            buf.put_u8(u8::from(*cascade) | (u8::from(*restart_identity) << 1));
            for relation in relations {
                buf.put_u32(*relation);
            }
        }
        LogicalMessage::Message {
            transactional,
            lsn,
            prefix,
            content,
        } => {
            buf.put_u8(b'M');
            buf.put_u8(u8::from(*transactional));
            buf.put_u64(lsn.0);
            put_cstr(&mut buf, prefix);
            buf.put_u32(content.len() as u32);
            buf.put_slice(content);
        }
        LogicalMessage::StreamStart { xid, first_segment } => {
            buf.put_u8(b'S');
            buf.put_u32(xid.0);
            buf.put_u8(u8::from(*first_segment));
        }
        LogicalMessage::StreamStop => buf.put_u8(b'E'),
        LogicalMessage::StreamCommit {
            xid,
            commit_lsn,
            end_lsn,
            committed_at,
        } => {
            buf.put_u8(b'c');
            buf.put_u32(xid.0);
            buf.put_u8(0);
            buf.put_u64(commit_lsn.0);
            buf.put_u64(end_lsn.0);
            buf.put_i64(to_pg_timestamp(*committed_at));
        }
        LogicalMessage::StreamAbort { xid, subxid } => {
            buf.put_u8(b'A');
            buf.put_u32(xid.0);
            buf.put_u32(subxid.0);
        }
    }
    buf.freeze()
}

/// The message as protocol 2 sends it inside a stream block: the (sub)transaction id after the tag
/// of the messages that carry one.
fn encode_streamed(message: &LogicalMessage, xid: Xid) -> Vec<u8> {
    let plain = encode(message).to_vec();
    match plain.first() {
        Some(b'I' | b'U' | b'D' | b'T' | b'R' | b'Y' | b'M') => {
            let mut streamed = vec![plain[0]];
            streamed.extend_from_slice(&xid.0.to_be_bytes());
            streamed.extend_from_slice(&plain[1..]);
            streamed
        }
        _ => plain,
    }
}

/// A COPY text field for a value (`\N` for NULL), escaped as PostgreSQL's COPY TO writes it.
fn copy_field(value: &Option<Vec<u8>>) -> Vec<u8> {
    let Some(bytes) = value else {
        return b"\\N".to_vec();
    };
    let mut field = Vec::new();
    for &byte in bytes {
        match byte {
            b'\\' => field.extend_from_slice(b"\\\\"),
            b'\t' => field.extend_from_slice(b"\\t"),
            b'\n' => field.extend_from_slice(b"\\n"),
            b'\r' => field.extend_from_slice(b"\\r"),
            other => field.push(other),
        }
    }
    field
}

fn value() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        Just(Value::Unavailable),
        ".{0,12}".prop_map(Value::Text),
        proptest::collection::vec(any::<u8>(), 0..12).prop_map(Value::Bytes),
    ]
}

fn change() -> impl Strategy<Value = Change> {
    (0usize..6).prop_flat_map(|width| {
        let row = || proptest::collection::vec(value(), width);
        (
            prop_oneof![
                Just(Op::Insert),
                Just(Op::Update),
                Just(Op::Delete),
                Just(Op::Truncate),
                Just(Op::Snapshot),
            ],
            row(),
            row(),
        )
            .prop_map(|(op, before, after)| {
                let (before, after) = match op {
                    Op::Insert | Op::Snapshot => (None, Some(after)),
                    Op::Update => (Some(before), Some(after)),
                    Op::Delete => (Some(before), None),
                    _ => (None, None),
                };
                Change { op, before, after }
            })
    })
}

// ---- properties -------------------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn item11_frames_round_trip(start in any::<u64>(), end in any::<u64>(), micros in pg_micros(),
                                payload in proptest::collection::vec(any::<u8>(), 0..64),
                                reply in any::<bool>()) {
        let mut data = BytesMut::new();
        data.put_u8(b'w');
        data.put_u64(start);
        data.put_u64(end);
        data.put_i64(micros);
        data.put_slice(&payload);
        match ServerFrame::decode(data.freeze()).unwrap() {
            ServerFrame::XLogData { wal_start, wal_end, data } => {
                prop_assert_eq!(wal_start, Lsn(start));
                prop_assert_eq!(wal_end, Lsn(end));
                prop_assert_eq!(&data[..], &payload[..]);
            }
            other => prop_assert!(false, "{other:?}"),
        }
        let mut keepalive = BytesMut::new();
        keepalive.put_u8(b'k');
        keepalive.put_u64(end);
        keepalive.put_i64(micros);
        keepalive.put_u8(u8::from(reply));
        prop_assert_eq!(
            ServerFrame::decode(keepalive.freeze()).unwrap(),
            ServerFrame::Keepalive {
                wal_end: Lsn(end),
                sent_at: pg_timestamp(micros).unwrap(),
                reply_requested: reply,
            }
        );
    }

    #[test]
    fn item11_frames_from_garbage_are_errors_not_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        let _ = ServerFrame::decode(Bytes::from(bytes));
    }

    #[test]
    fn item11_pgoutput_messages_round_trip(message in message()) {
        let decoded = LogicalMessage::decode(&encode(&message)).unwrap();
        prop_assert_eq!(decoded, message);
    }

    #[test]
    fn issue15_a_message_of_a_stream_block_is_its_protocol_1_form_once_split(
        message in message(),
        xid in any::<u32>(),
    ) {
        let streamed = encode_streamed(&message, Xid(xid));
        match split_streamed(&streamed).unwrap() {
            Streamed::Message { xid: sent_by, body } => {
                prop_assert_eq!(LogicalMessage::decode(&body).unwrap(), message.clone());
                let carries_xid = !matches!(message, LogicalMessage::Origin { .. });
                prop_assert_eq!(sent_by, carries_xid.then_some(Xid(xid)));
            }
            Streamed::Control(bytes) => {
                prop_assert_eq!(bytes, &streamed[..]);
                let control = message.is_stream_control()
                    || matches!(message, LogicalMessage::Begin { .. } | LogicalMessage::Commit { .. });
                prop_assert!(control, "{:?} is not a control message", message);
            }
        }
    }

    #[test]
    fn item11_damaged_pgoutput_messages_are_errors_not_panics(
        message in message(),
        cut in any::<prop::sample::Index>(),
        flip in any::<prop::sample::Index>(),
        byte in any::<u8>(),
    ) {
        let encoded = encode(&message).to_vec();
        let _ = LogicalMessage::decode(&encoded[..cut.index(encoded.len() + 1)]);
        let mut flipped = encoded.clone();
        if !flipped.is_empty() {
            let at = flip.index(flipped.len());
            flipped[at] = byte;
        }
        let _ = LogicalMessage::decode(&flipped);
    }

    #[test]
    fn item11_pgoutput_garbage_is_an_error_not_a_panic(bytes in proptest::collection::vec(any::<u8>(), 0..128)) {
        let _ = LogicalMessage::decode(&bytes);
    }

    #[test]
    fn item11_copy_rows_round_trip(row in proptest::collection::vec(
        proptest::option::of(proptest::collection::vec(any::<u8>(), 0..16)), 1..8)
    ) {
        let fields: Vec<Vec<u8>> = row.iter().map(copy_field).collect();
        let mut buffer = fields.join(&b'\t');
        buffer.push(b'\n');
        let lines = copy_text::take_lines(&mut buffer);
        prop_assert_eq!(lines.len(), 1);
        prop_assert_eq!(copy_text::parse_row(&lines[0]).unwrap(), row);
    }

    #[test]
    fn item11_copy_garbage_is_an_error_not_a_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        let mut buffer = bytes.clone();
        for line in copy_text::take_lines(&mut buffer) {
            let _ = copy_text::parse_row(&line);
        }
        let _ = copy_text::parse_row(&bytes);
    }

    #[test]
    fn item11_the_image_codec_round_trips(change in change()) {
        let encoded = codec::encode(&change);
        prop_assert_eq!(codec::decode(change.op, &encoded).unwrap(), change);
    }

    #[test]
    fn item11_damaged_images_are_errors_not_panics(
        op in prop_oneof![Just(Op::Insert), Just(Op::Update), Just(Op::Delete), Just(Op::Snapshot)],
        before in proptest::option::of(".{0,40}"),
        after in proptest::option::of(".{0,40}"),
        unavailable in proptest::option::of(".{0,40}"),
    ) {
        let _ = codec::decode(op, &codec::EncodedImages { before, after, unavailable });
    }

    #[test]
    fn item11_type_names_either_parse_or_are_refused(text in ".{0,40}") {
        let accepted = rowtrail::history::sql::is_type_name(&text);
        // Nothing that could end a cast or start another statement is ever accepted.
        if accepted {
            let unquoted: String = text.split('"').step_by(2).collect();
            prop_assert!(!unquoted.contains(';') && !unquoted.contains('\'') && !unquoted.contains("--"));
        }
    }

    #[test]
    fn item11_format_type_like_names_are_accepted(
        schema in proptest::option::of("[a-z_][a-z0-9_]{0,8}"),
        name in "[a-z_][a-z0-9_$]{0,8}",
        quoted in "[^\"\u{0}]{1,8}",
        modifiers in proptest::collection::vec(0u32..100_000, 0..3),
        arrays in 0usize..3,
    ) {
        let mut text = match schema {
            Some(schema) => format!("{schema}.{name}"),
            None => name,
        };
        if !modifiers.is_empty() {
            let list: Vec<String> = modifiers.iter().map(ToString::to_string).collect();
            text.push_str(&format!("({})", list.join(",")));
        }
        text.push_str(&"[]".repeat(arrays));
        prop_assert!(rowtrail::history::sql::is_type_name(&text), "{}", text);
        let quoted = format!("\"{}\"{}", quoted, "[]".repeat(arrays));
        prop_assert!(rowtrail::history::sql::is_type_name(&quoted), "{}", quoted);
    }
}
