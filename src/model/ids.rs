//! Newtypes for the identifiers and positions that flow through rowtrail.

use std::fmt;
use std::str::FromStr;

/// A position in PostgreSQL's write-ahead log, printed the way PostgreSQL prints it (`16/B374D848`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Lsn(pub u64);

impl Lsn {
    pub const ZERO: Lsn = Lsn(0);
}

impl fmt::Display for Lsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:X}/{:X}", self.0 >> 32, self.0 & 0xFFFF_FFFF)
    }
}

/// The text was not an LSN of the form `X/Y` (two hexadecimal numbers of at most 8 digits).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' is not a WAL position: expected two hexadecimal numbers like 0/16B3748")]
pub struct ParseLsnError(pub String);

impl FromStr for Lsn {
    type Err = ParseLsnError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let error = || ParseLsnError(text.to_owned());
        let (high, low) = text.trim().split_once('/').ok_or_else(error)?;
        let part = |digits: &str| {
            if digits.is_empty() || digits.len() > 8 {
                return Err(error());
            }
            u32::from_str_radix(digits, 16).map_err(|_| error())
        };
        Ok(Lsn((u64::from(part(high)?) << 32) | u64::from(part(low)?)))
    }
}

/// A PostgreSQL transaction id as sent by logical decoding (32 bits, wraps around).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Xid(pub u32);

impl fmt::Display for Xid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The cache's id of one change: increasing in commit order, unique within one cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ChangeId(pub i64);

impl fmt::Display for ChangeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A PostgreSQL object id (of a table or a type).
pub type Oid = u32;

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // In tests a failed unwrap is a failed test.
mod tests {
    use super::*;

    #[test]
    fn lsn_round_trips_through_postgres_notation() {
        for (text, value) in [
            ("0/0", 0u64),
            ("0/16B3748", 0x16B_3748),
            ("16/B374D848", 0x16_B374_D848),
        ] {
            let lsn: Lsn = text.parse().unwrap();
            assert_eq!(lsn, Lsn(value));
            assert_eq!(lsn.to_string(), text);
        }
        assert_eq!("0/00016b3748".parse::<Lsn>().ok(), None);
        assert_eq!("00000000/016b3748".parse::<Lsn>().unwrap(), Lsn(0x16B_3748));
    }

    #[test]
    fn lsn_rejects_garbage() {
        for text in ["", "/", "1/", "/1", "x/1", "1/2/3", "123456789/0", "-1/0"] {
            assert!(text.parse::<Lsn>().is_err(), "{text} should not parse");
        }
    }
}
