//! Moments in a history: a time, a WAL position, or a point just after (or before) one change.

use std::fmt;

use chrono::{DateTime, Utc};

use crate::model::{ChangeId, Lsn};

/// A point in the history the state of a record or table can be asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Moment {
    /// After every transaction committed at or before this time.
    Time(DateTime<Utc>),
    /// After every transaction whose commit is at or before this WAL position (`lsn:X/Y`).
    Lsn(Lsn),
    /// Right after this change (`change:ID`).
    AfterChange(ChangeId),
    /// Right before this change (`change:ID-1`).
    BeforeChange(ChangeId),
}

/// The text is not a moment.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "'{0}' is not a moment: use a time (RFC 3339, local 'YYYY-MM-DD HH:MM[:SS]', 15m/2h/3d ago, or now), lsn:X/Y, change:ID or change:ID-1"
)]
pub struct MomentError(pub String);

impl Moment {
    /// Parses `lsn:X/Y`, `change:ID`, `change:ID-1`, or a time through `parse_time`.
    pub fn parse<E>(
        text: &str,
        parse_time: impl FnOnce(&str) -> Result<DateTime<Utc>, E>,
    ) -> Result<Self, MomentError> {
        let text = text.trim();
        let error = || MomentError(text.to_owned());
        if let Some(lsn) = text.strip_prefix("lsn:") {
            return lsn.parse().map(Moment::Lsn).map_err(|_| error());
        }
        if let Some(change) = text.strip_prefix("change:") {
            let (id, before) = match change.strip_suffix("-1") {
                Some(id) => (id, true),
                None => (change, false),
            };
            let id = id
                .parse::<i64>()
                .ok()
                .filter(|id| *id > 0)
                .ok_or_else(error)?;
            return Ok(match before {
                true => Moment::BeforeChange(ChangeId(id)),
                false => Moment::AfterChange(ChangeId(id)),
            });
        }
        parse_time(text).map(Moment::Time).map_err(|_| error())
    }
}

impl fmt::Display for Moment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Moment::Time(time) => write!(f, "{}", time.format("%Y-%m-%d %H:%M:%S%.6f UTC")),
            Moment::Lsn(lsn) => write!(f, "lsn:{lsn}"),
            Moment::AfterChange(id) => write!(f, "change:{id}"),
            Moment::BeforeChange(id) => write!(f, "change:{id}-1"),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // In tests a failed unwrap is a failed test.
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Moment, MomentError> {
        Moment::parse(text, |text| {
            DateTime::parse_from_rfc3339(text).map(|time| time.with_timezone(&Utc))
        })
    }

    #[test]
    fn parses_every_form() {
        assert_eq!(
            parse("lsn:0/16B3748").unwrap(),
            Moment::Lsn(Lsn(0x16B_3748))
        );
        assert_eq!(
            parse("change:42").unwrap(),
            Moment::AfterChange(ChangeId(42))
        );
        assert_eq!(
            parse("change:42-1").unwrap(),
            Moment::BeforeChange(ChangeId(42))
        );
        assert_eq!(
            parse("2026-11-23T10:00:00Z").unwrap().to_string(),
            "2026-11-23 10:00:00.000000 UTC"
        );
    }

    #[test]
    fn rejects_malformed_moments() {
        for bad in [
            "lsn:",
            "lsn:xyz",
            "change:",
            "change:x",
            "change:0",
            "change:-1",
            "change:5-2",
            "soon",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
