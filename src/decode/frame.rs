//! The frames of the streaming replication protocol carried in CopyData messages: XLogData and
//! keepalives from the server, standby status updates from us.

use bytes::{BufMut, Bytes, BytesMut};
use chrono::{DateTime, Utc};

use crate::model::Lsn;

use super::{DecodeError, Reader, pgoutput::pg_timestamp, pgoutput::to_pg_timestamp};

/// One CopyData payload sent by a walsender during `START_REPLICATION`.
#[derive(Debug, Clone, PartialEq)]
pub enum ServerFrame {
    /// WAL data: for logical replication, one output-plugin message that starts at `wal_start`.
    XLogData {
        wal_start: Lsn,
        wal_end: Lsn,
        data: Bytes,
    },
    /// A heartbeat carrying the server's current sent position.
    Keepalive {
        wal_end: Lsn,
        sent_at: DateTime<Utc>,
        reply_requested: bool,
    },
}

impl ServerFrame {
    pub fn decode(frame: Bytes) -> Result<Self, DecodeError> {
        let mut reader = Reader::new(&frame);
        match reader.u8("frame tag")? {
            b'w' => {
                let wal_start = Lsn(reader.u64("wal start")?);
                let wal_end = Lsn(reader.u64("wal end")?);
                let _sent_at = reader.i64("send time")?;
                let header = frame.len() - reader.remaining();
                Ok(ServerFrame::XLogData {
                    wal_start,
                    wal_end,
                    data: frame.slice(header..),
                })
            }
            b'k' => {
                let wal_end = Lsn(reader.u64("wal end")?);
                let sent_at = pg_timestamp(reader.i64("send time")?)?;
                let reply_requested = reader.u8("reply flag")? != 0;
                reader.finish()?;
                Ok(ServerFrame::Keepalive {
                    wal_end,
                    sent_at,
                    reply_requested,
                })
            }
            tag => Err(DecodeError::UnexpectedTag { tag }),
        }
    }
}

/// A standby status update: how far we have received (`written`) and durably stored (`flushed`).
/// The server may recycle WAL up to `flushed`, so it must only ever name stored positions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusUpdate {
    pub written: Lsn,
    pub flushed: Lsn,
    pub reply_requested: bool,
}

impl StatusUpdate {
    pub fn encode(&self, now: DateTime<Utc>) -> Bytes {
        let mut buf = BytesMut::with_capacity(34);
        buf.put_u8(b'r');
        buf.put_u64(self.written.0);
        buf.put_u64(self.flushed.0);
        buf.put_u64(self.flushed.0);
        buf.put_i64(to_pg_timestamp(now));
        buf.put_u8(u8::from(self.reply_requested));
        buf.freeze()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // In tests a failed unwrap is a failed test.
mod tests {
    use super::*;

    #[test]
    fn decodes_xlogdata_and_keepalive() {
        let mut buf = BytesMut::new();
        buf.put_u8(b'w');
        buf.put_u64(5);
        buf.put_u64(9);
        buf.put_i64(0);
        buf.put_slice(b"Bpayload");
        assert_eq!(
            ServerFrame::decode(buf.freeze()).unwrap(),
            ServerFrame::XLogData {
                wal_start: Lsn(5),
                wal_end: Lsn(9),
                data: Bytes::from_static(b"Bpayload")
            }
        );

        let mut buf = BytesMut::new();
        buf.put_u8(b'k');
        buf.put_u64(77);
        buf.put_i64(0);
        buf.put_u8(1);
        assert!(matches!(
            ServerFrame::decode(buf.freeze()).unwrap(),
            ServerFrame::Keepalive {
                wal_end: Lsn(77),
                reply_requested: true,
                ..
            }
        ));
        assert!(ServerFrame::decode(Bytes::from_static(b"k\0\0")).is_err());
        assert!(ServerFrame::decode(Bytes::new()).is_err());
    }

    #[test]
    fn status_update_layout() {
        let now = DateTime::from_timestamp(946_684_800, 0).unwrap();
        let update = StatusUpdate {
            written: Lsn(0x10),
            flushed: Lsn(0x08),
            reply_requested: true,
        };
        let bytes = update.encode(now);
        assert_eq!(bytes.len(), 34);
        assert_eq!(bytes[0], b'r');
        assert_eq!(&bytes[1..9], &0x10u64.to_be_bytes());
        assert_eq!(&bytes[9..17], &0x08u64.to_be_bytes());
        assert_eq!(&bytes[17..25], &0x08u64.to_be_bytes());
        assert_eq!(&bytes[25..33], &0i64.to_be_bytes());
        assert_eq!(bytes[33], 1);
    }
}
