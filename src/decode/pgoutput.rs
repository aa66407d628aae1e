//! Decodes the messages of PostgreSQL's `pgoutput` plugin (protocol versions 1 and 2, text
//! values) into owned types. See "Logical Replication Message Formats" in the PostgreSQL manual.
//!
//! Version 2 adds streaming of transactions still in progress: the server sends a large
//! transaction in blocks between *Stream Start* and *Stream Stop*, each message in a block
//! carrying the id of the (sub)transaction it belongs to, and ends it with *Stream Commit* or
//! *Stream Abort*. [`split_streamed`] turns a message of a block back into its version 1 form.

use bytes::Bytes;
use chrono::{DateTime, Utc};

use crate::model::{Lsn, Oid, ReplicaIdentity, Xid};

use super::{DecodeError, Reader};

/// One message of the logical replication stream.
#[derive(Debug, Clone, PartialEq)]
pub enum LogicalMessage {
    Begin {
        final_lsn: Lsn,
        committed_at: DateTime<Utc>,
        xid: Xid,
    },
    Commit {
        commit_lsn: Lsn,
        end_lsn: Lsn,
        committed_at: DateTime<Utc>,
    },
    /// The transaction was replayed from another node under this replication origin.
    Origin {
        name: String,
    },
    Relation(RelationMessage),
    /// Names a non-built-in type used by a following relation.
    Type {
        oid: Oid,
        namespace: String,
        name: String,
    },
    Insert {
        relation: Oid,
        new: TupleData,
    },
    Update {
        relation: Oid,
        old: Option<OldRow>,
        new: TupleData,
    },
    Delete {
        relation: Oid,
        old: OldRow,
    },
    Truncate {
        relations: Vec<Oid>,
        cascade: bool,
        restart_identity: bool,
    },
    /// `pg_logical_emit_message(transactional, prefix, content)`.
    Message {
        transactional: bool,
        lsn: Lsn,
        prefix: String,
        content: Bytes,
    },
    /// A block of a streamed transaction begins; `first_segment` on its first block.
    StreamStart {
        xid: Xid,
        first_segment: bool,
    },
    /// The block ends.
    StreamStop,
    /// A streamed transaction committed: everything streamed for it (and not aborted) is final.
    StreamCommit {
        xid: Xid,
        commit_lsn: Lsn,
        end_lsn: Lsn,
        committed_at: DateTime<Utc>,
    },
    /// A streamed transaction (`subxid == xid`) or one of its subtransactions rolled back.
    StreamAbort {
        xid: Xid,
        subxid: Xid,
    },
}

/// The shape of a table as the source describes it before the first change that uses it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelationMessage {
    pub oid: Oid,
    pub namespace: String,
    pub name: String,
    pub replica_identity: ReplicaIdentity,
    pub columns: Vec<RelationColumn>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelationColumn {
    /// Part of the replica identity.
    pub is_key: bool,
    pub name: String,
    pub type_oid: Oid,
    pub type_modifier: i32,
}

/// The old row of an update or delete: the replica identity columns only, or the whole row
/// (`REPLICA IDENTITY FULL`). The two are kept apart so that a column missing from a key-only
/// image is never mistaken for NULL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OldRow {
    /// Key columns carry values; every other column is sent as NULL and means "not sent".
    Key(TupleData),
    Full(TupleData),
}

/// The column values of one row, in the column order of the current relation message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TupleData(pub Vec<TupleValue>);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TupleValue {
    Null,
    /// A TOASTed value the update did not change, so the source did not send it again.
    UnchangedToast,
    Text(String),
    /// A value whose bytes are not valid UTF-8: from a `SQL_ASCII` database, or a session that
    /// receives the server's own encoding because a value has no UTF-8 equivalent.
    Bytes(Vec<u8>),
}

const PG_EPOCH_OFFSET_MICROS: i64 = 946_684_800_000_000;

/// Converts PostgreSQL's timestamp (microseconds since 2000-01-01 UTC) to a UTC time.
pub fn pg_timestamp(micros_since_2000: i64) -> Result<DateTime<Utc>, DecodeError> {
    micros_since_2000
        .checked_add(PG_EPOCH_OFFSET_MICROS)
        .and_then(DateTime::from_timestamp_micros)
        .ok_or(DecodeError::Invalid {
            what: "timestamp out of range",
        })
}

/// Converts a UTC time to PostgreSQL's timestamp (microseconds since 2000-01-01 UTC).
pub fn to_pg_timestamp(time: DateTime<Utc>) -> i64 {
    time.timestamp_micros() - PG_EPOCH_OFFSET_MICROS
}

impl LogicalMessage {
    /// True for the messages that control streaming of in-progress transactions (protocol 2).
    pub fn is_stream_control(&self) -> bool {
        matches!(
            self,
            Self::StreamStart { .. }
                | Self::StreamStop
                | Self::StreamCommit { .. }
                | Self::StreamAbort { .. }
        )
    }

    /// Decodes one pgoutput message (the payload of an XLogData frame).
    pub fn decode(data: &[u8]) -> Result<Self, DecodeError> {
        let mut reader = Reader::new(data);
        let tag = reader.u8("message tag")?;
        let message = match tag {
            b'B' => LogicalMessage::Begin {
                final_lsn: Lsn(reader.u64("final lsn")?),
                committed_at: pg_timestamp(reader.i64("commit time")?)?,
                xid: Xid(reader.u32("xid")?),
            },
            b'C' => {
                let _flags = reader.u8("commit flags")?;
                LogicalMessage::Commit {
                    commit_lsn: Lsn(reader.u64("commit lsn")?),
                    end_lsn: Lsn(reader.u64("end lsn")?),
                    committed_at: pg_timestamp(reader.i64("commit time")?)?,
                }
            }
            b'O' => {
                let _origin_lsn = reader.u64("origin lsn")?;
                LogicalMessage::Origin {
                    name: reader.cstr("origin name")?,
                }
            }
            b'R' => LogicalMessage::Relation(decode_relation(&mut reader)?),
            b'Y' => LogicalMessage::Type {
                oid: reader.u32("type oid")?,
                namespace: reader.cstr("type namespace")?,
                name: reader.cstr("type name")?,
            },
            b'I' => {
                let relation = reader.u32("relation oid")?;
                match reader.u8("tuple kind")? {
                    b'N' => LogicalMessage::Insert {
                        relation,
                        new: decode_tuple(&mut reader)?,
                    },
                    other => return Err(DecodeError::UnexpectedTag { tag: other }),
                }
            }
            b'U' => {
                let relation = reader.u32("relation oid")?;
                let (old, new) = match reader.u8("tuple kind")? {
                    b'N' => (None, decode_tuple(&mut reader)?),
                    kind @ (b'K' | b'O') => {
                        let old = decode_old(kind, &mut reader)?;
                        match reader.u8("tuple kind")? {
                            b'N' => (Some(old), decode_tuple(&mut reader)?),
                            other => return Err(DecodeError::UnexpectedTag { tag: other }),
                        }
                    }
                    other => return Err(DecodeError::UnexpectedTag { tag: other }),
                };
                LogicalMessage::Update { relation, old, new }
            }
            b'D' => {
                let relation = reader.u32("relation oid")?;
                let kind = reader.u8("tuple kind")?;
                LogicalMessage::Delete {
                    relation,
                    old: decode_old(kind, &mut reader)?,
                }
            }
            b'T' => {
                let count = reader.u32("relation count")?;
                let options = reader.u8("truncate options")?;
                let mut relations = Vec::with_capacity(reader.capacity_for(count, 4));
                for _ in 0..count {
                    relations.push(reader.u32("relation oid")?);
                }
                LogicalMessage::Truncate {
                    relations,
                    cascade: options & 1 != 0,
                    restart_identity: options & 2 != 0,
                }
            }
            b'M' => {
                let flags = reader.u8("message flags")?;
                let lsn = Lsn(reader.u64("message lsn")?);
                let prefix = reader.cstr("message prefix")?;
                let length = reader.u32("message length")?;
                let content = Bytes::copy_from_slice(reader.bytes(length, "message content")?);
                LogicalMessage::Message {
                    transactional: flags & 1 != 0,
                    lsn,
                    prefix,
                    content,
                }
            }
            b'S' => LogicalMessage::StreamStart {
                xid: Xid(reader.u32("xid")?),
                first_segment: reader.u8("first segment")? == 1,
            },
            b'E' => LogicalMessage::StreamStop,
            b'c' => {
                let xid = Xid(reader.u32("xid")?);
                let _flags = reader.u8("commit flags")?;
                LogicalMessage::StreamCommit {
                    xid,
                    commit_lsn: Lsn(reader.u64("commit lsn")?),
                    end_lsn: Lsn(reader.u64("end lsn")?),
                    committed_at: pg_timestamp(reader.i64("commit time")?)?,
                }
            }
            b'A' => LogicalMessage::StreamAbort {
                xid: Xid(reader.u32("xid")?),
                subxid: Xid(reader.u32("subtransaction xid")?),
            },
            other => return Err(DecodeError::UnexpectedTag { tag: other }),
        };
        reader.finish()?;
        Ok(message)
    }
}

/// A message read inside a stream block, split into the (sub)transaction it belongs to and its
/// protocol 1 form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Streamed<'a> {
    /// A message of the (sub)transaction `xid` (`None`: of the block's transaction, such as its
    /// origin), as protocol 1 would have sent it.
    Message { xid: Option<Xid>, body: Vec<u8> },
    /// *Stream Stop* (or any other control message), to decode as it is.
    Control(&'a [u8]),
}

/// Splits a message of a stream block. Row, relation, type, truncate and logical messages carry
/// the id of their (sub)transaction right after the tag; removing it gives the protocol 1 form.
pub fn split_streamed(data: &[u8]) -> Result<Streamed<'_>, DecodeError> {
    let mut reader = Reader::new(data);
    let tag = reader.u8("message tag")?;
    match tag {
        b'I' | b'U' | b'D' | b'T' | b'R' | b'Y' | b'M' => {
            let xid = Xid(reader.u32("xid")?);
            let mut body = Vec::with_capacity(data.len() - 4);
            body.push(tag);
            body.extend_from_slice(&data[5..]);
            Ok(Streamed::Message {
                xid: Some(xid),
                body,
            })
        }
        b'O' => Ok(Streamed::Message {
            xid: None,
            body: data.to_vec(),
        }),
        _ => Ok(Streamed::Control(data)),
    }
}

fn decode_relation(reader: &mut Reader<'_>) -> Result<RelationMessage, DecodeError> {
    let oid = reader.u32("relation oid")?;
    let namespace = reader.cstr("relation namespace")?;
    let name = reader.cstr("relation name")?;
    let replica_identity =
        ReplicaIdentity::from_code(reader.u8("replica identity")?).ok_or(DecodeError::Invalid {
            what: "unknown replica identity",
        })?;
    let count = reader.u16("column count")?;
    let mut columns = Vec::with_capacity(reader.capacity_for(u32::from(count), 10));
    for _ in 0..count {
        columns.push(RelationColumn {
            is_key: reader.u8("column flags")? & 1 != 0,
            name: reader.cstr("column name")?,
            type_oid: reader.u32("column type")?,
            type_modifier: reader.i32("column type modifier")?,
        });
    }
    Ok(RelationMessage {
        oid,
        namespace,
        name,
        replica_identity,
        columns,
    })
}

fn decode_old(kind: u8, reader: &mut Reader<'_>) -> Result<OldRow, DecodeError> {
    match kind {
        b'K' => Ok(OldRow::Key(decode_tuple(reader)?)),
        b'O' => Ok(OldRow::Full(decode_tuple(reader)?)),
        other => Err(DecodeError::UnexpectedTag { tag: other }),
    }
}

fn decode_tuple(reader: &mut Reader<'_>) -> Result<TupleData, DecodeError> {
    let count = reader.u16("tuple column count")?;
    let mut values = Vec::with_capacity(reader.capacity_for(u32::from(count), 1));
    for _ in 0..count {
        let value = match reader.u8("value kind")? {
            b'n' => TupleValue::Null,
            b'u' => TupleValue::UnchangedToast,
            b't' => {
                let length = reader.u32("value length")?;
                let bytes = reader.bytes(length, "value")?;
                match std::str::from_utf8(bytes) {
                    Ok(text) => TupleValue::Text(text.to_owned()),
                    Err(_) => TupleValue::Bytes(bytes.to_vec()),
                }
            }
            b'b' => {
                return Err(DecodeError::Invalid {
                    what: "binary value, but the stream was started in text mode",
                });
            }
            other => return Err(DecodeError::UnexpectedTag { tag: other }),
        };
        values.push(value);
    }
    Ok(TupleData(values))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // In tests a failed unwrap is a failed test.
mod tests {
    use super::*;
    use bytes::BufMut;

    fn cstr(buf: &mut Vec<u8>, text: &str) {
        buf.put_slice(text.as_bytes());
        buf.put_u8(0);
    }

    fn text_value(buf: &mut Vec<u8>, text: &str) {
        buf.put_u8(b't');
        buf.put_u32(text.len() as u32);
        buf.put_slice(text.as_bytes());
    }

    #[test]
    fn decodes_begin_and_commit() {
        let mut buf = vec![b'B'];
        buf.put_u64(0x16_B374_D848);
        buf.put_i64(0);
        buf.put_u32(742);
        assert_eq!(
            LogicalMessage::decode(&buf).unwrap(),
            LogicalMessage::Begin {
                final_lsn: Lsn(0x16_B374_D848),
                committed_at: DateTime::from_timestamp(946_684_800, 0).unwrap(),
                xid: Xid(742),
            }
        );

        let mut buf = vec![b'C', 0];
        buf.put_u64(10);
        buf.put_u64(20);
        buf.put_i64(1_000_000);
        assert_eq!(
            LogicalMessage::decode(&buf).unwrap(),
            LogicalMessage::Commit {
                commit_lsn: Lsn(10),
                end_lsn: Lsn(20),
                committed_at: DateTime::from_timestamp(946_684_801, 0).unwrap(),
            }
        );
    }

    #[test]
    fn decodes_relation_with_key_flags() {
        let mut buf = vec![b'R'];
        buf.put_u32(16384);
        cstr(&mut buf, "public");
        cstr(&mut buf, "orders");
        buf.put_u8(b'f');
        buf.put_u16(2);
        buf.put_u8(1);
        cstr(&mut buf, "id");
        buf.put_u32(23);
        buf.put_i32(-1);
        buf.put_u8(0);
        cstr(&mut buf, "total");
        buf.put_u32(1700);
        buf.put_i32(786_438);
        let LogicalMessage::Relation(relation) = LogicalMessage::decode(&buf).unwrap() else {
            panic!("not a relation");
        };
        assert_eq!(relation.oid, 16384);
        assert_eq!(relation.replica_identity, ReplicaIdentity::Full);
        assert_eq!(
            relation.columns,
            vec![
                RelationColumn {
                    is_key: true,
                    name: "id".into(),
                    type_oid: 23,
                    type_modifier: -1
                },
                RelationColumn {
                    is_key: false,
                    name: "total".into(),
                    type_oid: 1700,
                    type_modifier: 786_438
                },
            ]
        );
    }

    #[test]
    fn decodes_update_with_key_image_and_unchanged_toast() {
        let mut buf = vec![b'U'];
        buf.put_u32(16384);
        buf.put_u8(b'K');
        buf.put_u16(2);
        text_value(&mut buf, "7");
        buf.put_u8(b'n');
        buf.put_u8(b'N');
        buf.put_u16(3);
        text_value(&mut buf, "8");
        buf.put_u8(b'u');
        text_value(&mut buf, "Ålesund ✓");
        assert_eq!(
            LogicalMessage::decode(&buf).unwrap(),
            LogicalMessage::Update {
                relation: 16384,
                old: Some(OldRow::Key(TupleData(vec![
                    TupleValue::Text("7".into()),
                    TupleValue::Null
                ]))),
                new: TupleData(vec![
                    TupleValue::Text("8".into()),
                    TupleValue::UnchangedToast,
                    TupleValue::Text("Ålesund ✓".into()),
                ]),
            }
        );
    }

    #[test]
    fn decodes_truncate_and_message() {
        let mut buf = vec![b'T'];
        buf.put_u32(2);
        buf.put_u8(3);
        buf.put_u32(1);
        buf.put_u32(2);
        assert_eq!(
            LogicalMessage::decode(&buf).unwrap(),
            LogicalMessage::Truncate {
                relations: vec![1, 2],
                cascade: true,
                restart_identity: true
            }
        );

        let mut buf = vec![b'M', 1];
        buf.put_u64(99);
        cstr(&mut buf, "rowtrail");
        buf.put_u32(12);
        buf.put_slice(br#"{"user":"a"}"#);
        assert_eq!(
            LogicalMessage::decode(&buf).unwrap(),
            LogicalMessage::Message {
                transactional: true,
                lsn: Lsn(99),
                prefix: "rowtrail".into(),
                content: Bytes::from_static(br#"{"user":"a"}"#),
            }
        );
    }

    #[test]
    fn rejects_truncated_trailing_and_unknown_input() {
        assert!(LogicalMessage::decode(&[]).is_err());
        assert!(LogicalMessage::decode(&[b'B', 0, 0]).is_err());
        assert!(LogicalMessage::decode(b"?").is_err());
        let mut buf = vec![b'I'];
        buf.put_u32(1);
        buf.put_u8(b'N');
        buf.put_u16(1);
        buf.put_u8(b't');
        buf.put_u32(u32::MAX);
        assert!(LogicalMessage::decode(&buf).is_err());
        let mut buf = vec![b'O'];
        buf.put_u64(1);
        cstr(&mut buf, "origin");
        buf.put_u8(0);
        assert!(LogicalMessage::decode(&buf).is_err(), "trailing bytes");
    }

    #[test]
    fn never_panics_on_garbage() {
        // A deterministic sweep over mutated and truncated valid messages plus pseudo-random bytes.
        let mut seeds: Vec<Vec<u8>> = Vec::new();
        let mut buf = vec![b'U'];
        buf.put_u32(16384);
        buf.put_u8(b'O');
        buf.put_u16(2);
        text_value(&mut buf, "7");
        buf.put_u8(b'n');
        buf.put_u8(b'N');
        buf.put_u16(2);
        text_value(&mut buf, "8");
        buf.put_u8(b'u');
        seeds.push(buf);
        let mut state = 0x2545_F491_4F6C_DD1Du64;
        for length in 0..64 {
            let bytes = (0..length)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    (state & 0xFF) as u8
                })
                .collect();
            seeds.push(bytes);
        }
        for seed in &seeds {
            for cut in 0..=seed.len() {
                let _ = LogicalMessage::decode(&seed[..cut]);
                let _ = split_streamed(&seed[..cut]);
            }
            for index in 0..seed.len() {
                for flip in [0x01u8, 0x80, 0xFF] {
                    let mut mutated = seed.clone();
                    mutated[index] ^= flip;
                    let _ = LogicalMessage::decode(&mutated);
                }
            }
        }
    }

    #[test]
    fn decodes_stream_control_messages() {
        let mut start = vec![b'S'];
        start.put_u32(731);
        start.put_u8(1);
        assert_eq!(
            LogicalMessage::decode(&start).unwrap(),
            LogicalMessage::StreamStart {
                xid: Xid(731),
                first_segment: true
            }
        );
        assert_eq!(
            LogicalMessage::decode(b"E").unwrap(),
            LogicalMessage::StreamStop
        );
        let mut commit = vec![b'c'];
        commit.put_u32(731);
        commit.put_u8(0);
        commit.put_u64(0x30);
        commit.put_u64(0x48);
        commit.put_i64(1_000_000);
        assert_eq!(
            LogicalMessage::decode(&commit).unwrap(),
            LogicalMessage::StreamCommit {
                xid: Xid(731),
                commit_lsn: Lsn(0x30),
                end_lsn: Lsn(0x48),
                committed_at: pg_timestamp(1_000_000).unwrap(),
            }
        );
        let mut abort = vec![b'A'];
        abort.put_u32(731);
        abort.put_u32(733);
        assert_eq!(
            LogicalMessage::decode(&abort).unwrap(),
            LogicalMessage::StreamAbort {
                xid: Xid(731),
                subxid: Xid(733)
            }
        );
    }

    #[test]
    fn a_streamed_message_without_its_xid_is_the_protocol_1_message() {
        let mut v1 = vec![b'I'];
        v1.put_u32(16384);
        v1.put_u8(b'N');
        v1.put_u16(1);
        text_value(&mut v1, "7");
        let mut v2 = vec![b'I'];
        v2.put_u32(733);
        v2.extend_from_slice(&v1[1..]);
        assert_eq!(
            split_streamed(&v2).unwrap(),
            Streamed::Message {
                xid: Some(Xid(733)),
                body: v1.clone()
            }
        );
        assert!(matches!(
            LogicalMessage::decode(&v1).unwrap(),
            LogicalMessage::Insert {
                relation: 16384,
                ..
            }
        ));
        let mut origin = vec![b'O'];
        origin.put_u64(5);
        cstr(&mut origin, "node_a");
        assert_eq!(
            split_streamed(&origin).unwrap(),
            Streamed::Message {
                xid: None,
                body: origin.clone()
            }
        );
        // A logical message and a relation carry the xid too, right after the tag.
        for (tag, rest) in [
            (
                b'M',
                &[1u8, 0, 0, 0, 0, 0, 0, 0, 9, b'p', 0, 0, 0, 0, 0][..],
            ),
            (b'R', &[0, 0, 0x40, 0, b'p', 0, b't', 0, b'd', 0, 0][..]),
        ] {
            let mut v2 = vec![tag];
            v2.put_u32(735);
            v2.extend_from_slice(rest);
            let mut v1 = vec![tag];
            v1.extend_from_slice(rest);
            assert_eq!(
                split_streamed(&v2).unwrap(),
                Streamed::Message {
                    xid: Some(Xid(735)),
                    body: v1.clone()
                }
            );
            assert!(LogicalMessage::decode(&v1).is_ok(), "{}", tag as char);
        }
        assert_eq!(split_streamed(b"E").unwrap(), Streamed::Control(b"E"));
        assert!(split_streamed(b"I\0\0").is_err(), "too short for an xid");
    }
}
