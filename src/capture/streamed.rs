//! Transactions the server streams before they commit (pgoutput protocol 2, `streaming 'on'`).
//!
//! Without streaming, the server keeps a transaction's decoded changes in memory until it commits
//! and spills them to its own disk (`pg_replslot`) beyond `logical_decoding_work_mem`; one huge
//! transaction then costs the source gigabytes of disk and arrives all at once. With streaming,
//! the server sends the transaction in blocks as it goes. Each block's messages are appended to
//! a spill file of that transaction beside the cache, as the protocol 1 messages they are (the
//! (sub)transaction id removed), so that at *Stream Commit* they go through exactly the path of an
//! ordinary transaction: decoded, completed and stored in one cache transaction, visible only
//! then. Nothing of a streamed transaction is in the cache before its commit, so a crash keeps
//! exactly-once: the slot never confirms past a commit that was not stored, and the server
//! streams the whole transaction again.
//!
//! *Stream Abort* of the whole transaction deletes its file. A subtransaction's abort (`ROLLBACK
//! TO SAVEPOINT`) cuts the file where that subtransaction's first message began: subtransactions
//! nest, so everything written after it belongs to it or to its children, which rolled back too.
//!
//! Why hand-written: this is PostgreSQL's own subscriber's scheme (its apply worker keeps streamed
//! changes in per-transaction files); no crate does it, and it is a few dozen lines over `std::fs`.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::model::{Lsn, Xid};

use super::error::CaptureError;

/// The spill files of the transactions being streamed, by top-level transaction id.
pub(crate) struct StreamedTransactions {
    directory: PathBuf,
    /// File names start with this: the cache's file name and `.streamed-`.
    prefix: String,
    open: HashMap<Xid, Spill>,
}

struct Spill {
    path: PathBuf,
    file: BufWriter<File>,
    length: u64,
    messages: u64,
    /// Each subtransaction that sent a message, in the order they began: where its first
    /// message starts, and how many messages came before it.
    subtransactions: Vec<Subtransaction>,
}

struct Subtransaction {
    xid: Xid,
    offset: u64,
    messages_before: u64,
}

/// One spilled message: where it was in the stream and its protocol 1 bytes.
pub(crate) struct SpilledMessage {
    pub lsn: Lsn,
    pub body: Vec<u8>,
}

impl StreamedTransactions {
    /// Spill files go beside `cache`; files a capture that died left there are removed.
    pub fn beside(cache: &Path) -> Self {
        let (directory, prefix) = place(cache);
        let streamed = Self {
            directory,
            prefix,
            open: HashMap::new(),
        };
        streamed.remove_leftovers();
        streamed
    }

    /// How many transactions are open, and how many messages they hold together.
    pub fn pending(&self) -> (usize, u64) {
        let messages = self.open.values().map(|spill| spill.messages).sum();
        (self.open.len(), messages)
    }

    /// A block of `xid` begins. On its first block, anything left of an earlier stream of the
    /// same transaction (a session that broke off) is dropped; a later block of a transaction
    /// whose first this session did not see is a protocol error (the session starts over, and
    /// the server streams the transaction again from its start).
    pub fn start(&mut self, xid: Xid, first_segment: bool) -> Result<(), CaptureError> {
        if first_segment {
            self.discard(xid);
        } else if !self.open.contains_key(&xid) {
            return Err(CaptureError::Protocol {
                what: format!(
                    "a later part of streamed transaction {xid} without its first; {STREAMING_HINT}"
                ),
            });
        }
        if !self.open.contains_key(&xid) {
            let path = self.directory.join(format!("{}{}", self.prefix, xid.0));
            let mut options = OpenOptions::new();
            options.create(true).truncate(true).read(true).write(true);
            // It holds changes as the server sent them, values the cache's column rules would
            // mask included: readable by its owner only, like the cache.
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let file = options
                .open(&path)
                .map_err(|cause| spill_error(&path, cause))?;
            self.open.insert(
                xid,
                Spill {
                    path,
                    file: BufWriter::with_capacity(256 * 1024, file),
                    length: 0,
                    messages: 0,
                    subtransactions: Vec::new(),
                },
            );
        }
        Ok(())
    }

    /// The block of `xid` ended: what it sent is written out to the file.
    pub fn end_block(&mut self, xid: Xid) -> Result<(), CaptureError> {
        match self.open.get_mut(&xid) {
            Some(spill) => spill
                .file
                .flush()
                .map_err(|cause| spill_error(&spill.path, cause)),
            None => Ok(()),
        }
    }

    /// Appends a message of the block of `xid`, sent by its (sub)transaction `sender`.
    pub fn append(
        &mut self,
        xid: Xid,
        sender: Xid,
        lsn: Lsn,
        body: &[u8],
    ) -> Result<(), CaptureError> {
        let Some(spill) = self.open.get_mut(&xid) else {
            return Err(CaptureError::Protocol {
                what: format!(
                    "a message of streamed transaction {xid} outside its stream; {STREAMING_HINT}"
                ),
            });
        };
        // Subtransactions send their messages in runs: the last one seen is the usual sender.
        let known = sender == xid
            || spill
                .subtransactions
                .last()
                .is_some_and(|last| last.xid == sender)
            || spill
                .subtransactions
                .iter()
                .any(|known| known.xid == sender);
        if !known {
            spill.subtransactions.push(Subtransaction {
                xid: sender,
                offset: spill.length,
                messages_before: spill.messages,
            });
        }
        let length = u32::try_from(body.len()).map_err(|_| CaptureError::Protocol {
            what: format!("a streamed message of {} bytes", body.len()),
        })?;
        let mut header = [0u8; 12];
        header[..4].copy_from_slice(&length.to_be_bytes());
        header[4..].copy_from_slice(&lsn.0.to_be_bytes());
        spill
            .file
            .write_all(&header)
            .and_then(|()| spill.file.write_all(body))
            .map_err(|cause| spill_error(&spill.path, cause))?;
        spill.length += 12 + u64::from(length);
        spill.messages += 1;
        Ok(())
    }

    /// `xid` (when `subxid == xid`) or its subtransaction `subxid` rolled back.
    pub fn abort(&mut self, xid: Xid, subxid: Xid) -> Result<(), CaptureError> {
        if subxid == xid {
            self.discard(xid);
            return Ok(());
        }
        let Some(spill) = self.open.get_mut(&xid) else {
            return Ok(());
        };
        let Some(index) = spill
            .subtransactions
            .iter()
            .position(|known| known.xid == subxid)
        else {
            // Nothing of it was streamed: the server dropped its changes itself.
            return Ok(());
        };
        let (cut, messages) = (
            spill.subtransactions[index].offset,
            spill.subtransactions[index].messages_before,
        );
        spill.subtransactions.truncate(index);
        let cut_file = |file: &mut BufWriter<File>| -> io::Result<()> {
            file.flush()?;
            let inner = file.get_mut();
            inner.set_len(cut)?;
            inner.seek(SeekFrom::Start(cut))?;
            Ok(())
        };
        cut_file(&mut spill.file).map_err(|cause| spill_error(&spill.path, cause))?;
        spill.length = cut;
        spill.messages = messages;
        Ok(())
    }

    /// `xid` committed: its messages in stream order, read back from its file (which is deleted
    /// once the reader is dropped). A commit of a transaction this session saw nothing of is a
    /// protocol error: storing it empty would lose it.
    pub fn commit(&mut self, xid: Xid) -> Result<SpillReader, CaptureError> {
        let Some(spill) = self.open.remove(&xid) else {
            return Err(CaptureError::Protocol {
                what: format!(
                    "the commit of streamed transaction {xid}, which was not streamed; {STREAMING_HINT}"
                ),
            });
        };
        let Spill {
            path,
            file,
            messages,
            ..
        } = spill;
        let mut file = file
            .into_inner()
            .map_err(|error| spill_error(&path, error.into_error()))?;
        file.seek(SeekFrom::Start(0))
            .map_err(|cause| spill_error(&path, cause))?;
        Ok(SpillReader {
            reader: Some(BufReader::with_capacity(256 * 1024, file)),
            path,
            left: messages,
        })
    }

    /// Forgets every open transaction: a new session streams them again from their start.
    pub fn clear(&mut self) {
        let open: Vec<Xid> = self.open.keys().copied().collect();
        for xid in open {
            self.discard(xid);
        }
    }

    fn discard(&mut self, xid: Xid) {
        if let Some(spill) = self.open.remove(&xid) {
            drop(spill.file);
            remove_quietly(&spill.path);
        }
    }

    fn remove_leftovers(&self) {
        remove_leftovers_in(&self.directory, &self.prefix);
    }
}

/// Removes the spill files a capture into `cache` that died left behind (capture calls it at
/// every start, also when it does not stream).
pub(crate) fn remove_leftovers(cache: &Path) {
    let (directory, prefix) = place(cache);
    remove_leftovers_in(&directory, &prefix);
}

/// The directory of a cache's spill files, and the start of their names.
fn place(cache: &Path) -> (PathBuf, String) {
    let directory = match cache.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = cache
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_else(|| "rowtrail".into());
    (directory, format!(".{name}.streamed-"))
}

fn remove_leftovers_in(directory: &Path, prefix: &str) {
    let Ok(entries) = fs::read_dir(directory) else {
        return;
    };
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().starts_with(prefix) {
            remove_quietly(&entry.path());
        }
    }
}

/// What to do about a stream that makes no sense, said with each such error.
const STREAMING_HINT: &str = "capture starts over from the last stored position when run again; if it happens again, run it with --no-streaming and report it with the output of rowtrail capture -v";

impl Drop for StreamedTransactions {
    fn drop(&mut self) {
        self.clear();
    }
}

/// Reads a committed transaction's spilled messages back, in the order they were streamed.
pub(crate) struct SpillReader {
    /// `None` once dropped (closed before the file is removed).
    reader: Option<BufReader<File>>,
    path: PathBuf,
    /// Messages written and not read yet: the file must hold exactly these.
    left: u64,
}

impl SpillReader {
    /// The next message, `None` after the last one written.
    pub fn next_message(&mut self) -> Result<Option<SpilledMessage>, CaptureError> {
        let Some(reader) = self.reader.as_mut() else {
            return Ok(None);
        };
        if self.left == 0 {
            return Ok(None);
        }
        let mut header = [0u8; 12];
        reader
            .read_exact(&mut header)
            .and_then(|()| {
                let (length, lsn) = split_header(&header);
                let mut body = vec![0u8; length as usize];
                reader.read_exact(&mut body)?;
                Ok(SpilledMessage { lsn, body })
            })
            .map(|message| {
                self.left -= 1;
                Some(message)
            })
            .map_err(|cause| spill_error(&self.path, cause))
    }
}

impl Drop for SpillReader {
    fn drop(&mut self) {
        drop(self.reader.take());
        remove_quietly(&self.path);
    }
}

fn split_header(header: &[u8; 12]) -> (u32, Lsn) {
    let mut length = [0u8; 4];
    length.copy_from_slice(&header[..4]);
    let mut lsn = [0u8; 8];
    lsn.copy_from_slice(&header[4..]);
    (u32::from_be_bytes(length), Lsn(u64::from_be_bytes(lsn)))
}

fn remove_quietly(path: &Path) {
    if let Err(error) = fs::remove_file(path)
        && error.kind() != io::ErrorKind::NotFound
    {
        tracing::warn!("could not remove {}: {error}", path.display());
    }
}

fn spill_error(path: &Path, cause: io::Error) -> CaptureError {
    CaptureError::Spill {
        path: path.to_path_buf(),
        cause,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // In tests a failed unwrap is a failed test.
mod tests {
    use super::*;

    fn read_all(reader: &mut SpillReader) -> Vec<(u64, Vec<u8>)> {
        let mut out = Vec::new();
        while let Some(message) = reader.next_message().unwrap() {
            out.push((message.lsn.0, message.body));
        }
        out
    }

    #[test]
    fn a_committed_transaction_reads_back_without_its_aborted_subtransactions() {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("shop.rowtrail");
        let mut streamed = StreamedTransactions::beside(&cache);
        let (top, sub1, sub2, sub3) = (Xid(100), Xid(101), Xid(102), Xid(103));
        streamed.start(top, true).unwrap();
        streamed.append(top, top, Lsn(1), b"top-1").unwrap();
        streamed.append(top, sub1, Lsn(2), b"sub1-1").unwrap();
        streamed.append(top, sub2, Lsn(3), b"sub2-1").unwrap();
        streamed.append(top, sub2, Lsn(4), b"sub2-2").unwrap();
        // Another transaction's block comes between.
        streamed.start(Xid(200), true).unwrap();
        streamed
            .append(Xid(200), Xid(200), Lsn(5), b"other")
            .unwrap();
        streamed.start(top, false).unwrap();
        streamed.append(top, sub3, Lsn(6), b"sub3-1").unwrap();
        assert_eq!(streamed.pending(), (2, 6));
        // ROLLBACK TO the savepoint of sub2: sub2 and sub3 (begun inside it) are gone.
        streamed.abort(top, sub2).unwrap();
        assert_eq!(streamed.pending(), (2, 3));
        streamed.append(top, top, Lsn(7), b"top-2").unwrap();
        // A subtransaction that never streamed anything aborts: nothing changes.
        streamed.abort(top, Xid(999)).unwrap();
        streamed.abort(Xid(200), Xid(200)).unwrap();
        let mut reader = streamed.commit(top).unwrap();
        assert_eq!(
            read_all(&mut reader),
            vec![
                (1, b"top-1".to_vec()),
                (2, b"sub1-1".to_vec()),
                (7, b"top-2".to_vec())
            ]
        );
        drop(reader);
        assert_eq!(streamed.pending(), (0, 0));
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            0,
            "spill files are removed once read or aborted"
        );
    }

    #[test]
    fn a_new_first_segment_starts_over_and_leftovers_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("c.rowtrail");
        fs::write(
            dir.path().join(".c.rowtrail.streamed-7"),
            b"left by a crash",
        )
        .unwrap();
        fs::write(dir.path().join("keep.txt"), b"not ours").unwrap();
        let mut streamed = StreamedTransactions::beside(&cache);
        assert!(!dir.path().join(".c.rowtrail.streamed-7").exists());
        assert!(dir.path().join("keep.txt").exists());
        streamed.start(Xid(7), true).unwrap();
        streamed
            .append(Xid(7), Xid(7), Lsn(1), b"first try")
            .unwrap();
        streamed.start(Xid(7), true).unwrap();
        streamed.append(Xid(7), Xid(7), Lsn(1), b"again").unwrap();
        let mut reader = streamed.commit(Xid(7)).unwrap();
        assert_eq!(read_all(&mut reader), vec![(1, b"again".to_vec())]);
        assert!(
            streamed.commit(Xid(8)).is_err(),
            "a commit of a transaction never streamed"
        );
        assert!(
            streamed.start(Xid(9), false).is_err(),
            "a later block without the first"
        );
        assert!(
            streamed.append(Xid(8), Xid(8), Lsn(2), b"x").is_err(),
            "a message outside its stream is a protocol error"
        );
    }

    #[test]
    fn a_spill_file_cut_short_is_an_error_not_a_quiet_end() {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("c.rowtrail");
        let mut streamed = StreamedTransactions::beside(&cache);
        streamed.start(Xid(5), true).unwrap();
        streamed.append(Xid(5), Xid(5), Lsn(1), b"one").unwrap();
        streamed.append(Xid(5), Xid(5), Lsn(2), b"two").unwrap();
        let mut reader = streamed.commit(Xid(5)).unwrap();
        let path = dir.path().join(".c.rowtrail.streamed-5");
        let length = fs::metadata(&path).unwrap().len();
        OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(length - 2)
            .unwrap();
        assert!(reader.next_message().unwrap().is_some());
        assert!(reader.next_message().is_err(), "the second message is cut");
    }

    #[test]
    fn leftovers_are_removed_at_any_start() {
        let dir = tempfile::tempdir().unwrap();
        let leftover = dir.path().join(".c.rowtrail.streamed-12");
        fs::write(&leftover, b"x").unwrap();
        remove_leftovers(&dir.path().join("c.rowtrail"));
        assert!(!leftover.exists());
    }
}
