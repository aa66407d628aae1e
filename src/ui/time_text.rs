//! Times as the app shows them: local time or UTC, with a relative hint ("3 min ago"), and the
//! clock the app reads (the system's, or a fixed one, so tests see the same screen every run).

use chrono::{DateTime, FixedOffset, Local, Utc};

use crate::history::{TimeError, parse_time};

/// How the app shows times, and what time it is now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Zone {
    /// Show UTC (the status bar's switch) instead of local time.
    pub utc: bool,
    /// Local time at a fixed offset; `None` for the system's zone.
    pub local: Option<FixedOffset>,
    pub now: DateTime<Utc>,
}

impl Zone {
    /// Reads a time the user typed, in the zone times are shown in.
    pub fn parse(&self, text: &str) -> Result<DateTime<Utc>, TimeError> {
        match (self.utc, self.local) {
            (true, _) => parse_time(text, self.now, &Utc),
            (false, Some(offset)) => parse_time(text, self.now, &offset),
            (false, None) => parse_time(text, self.now, &Local),
        }
    }
}

/// The clock the app reads.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Clock {
    /// A fixed moment and local offset instead of the system's clock and zone.
    pub fixed: Option<(DateTime<Utc>, FixedOffset)>,
}

impl Clock {
    /// Always `now`, with local time at `offset`.
    pub fn fixed(now: DateTime<Utc>, offset: FixedOffset) -> Self {
        Self {
            fixed: Some((now, offset)),
        }
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.fixed.map_or_else(Utc::now, |(now, _)| now)
    }

    /// The zone to show times in, now.
    pub fn zone(&self, utc: bool) -> Zone {
        Zone {
            utc,
            local: self.fixed.map(|(_, offset)| offset),
            now: self.now(),
        }
    }
}

/// `2026-11-23 14:35:01` in the chosen zone (UTC gets a `Z`).
pub fn clock(time: DateTime<Utc>, zone: Zone) -> String {
    match (zone.utc, zone.local) {
        (true, _) => time.format("%Y-%m-%d %H:%M:%SZ").to_string(),
        (false, Some(offset)) => time
            .with_timezone(&offset)
            .format("%Y-%m-%d %H:%M:%S")
            .to_string(),
        (false, None) => time
            .with_timezone(&Local)
            .format("%Y-%m-%d %H:%M:%S")
            .to_string(),
    }
}

/// `2026-11-23 14:35:01.123456` in the chosen zone, for details.
pub fn precise(time: DateTime<Utc>, zone: Zone) -> String {
    match (zone.utc, zone.local) {
        (true, _) => time.format("%Y-%m-%d %H:%M:%S%.6f UTC").to_string(),
        (false, Some(offset)) => time
            .with_timezone(&offset)
            .format("%Y-%m-%d %H:%M:%S%.6f %:z")
            .to_string(),
        (false, None) => time
            .with_timezone(&Local)
            .format("%Y-%m-%d %H:%M:%S%.6f %:z")
            .to_string(),
    }
}

/// A moment as someone would type it in the zone times are shown in (`2026-11-23 14:35:01`):
/// what the app writes into time fields, read back the same way.
pub fn typed(time: DateTime<Utc>, zone: Zone) -> String {
    match (zone.utc, zone.local) {
        (true, _) => time.format("%Y-%m-%d %H:%M:%S").to_string(),
        (false, Some(offset)) => time
            .with_timezone(&offset)
            .format("%Y-%m-%d %H:%M:%S")
            .to_string(),
        (false, None) => time
            .with_timezone(&Local)
            .format("%Y-%m-%d %H:%M:%S")
            .to_string(),
    }
}

/// What a typed time was understood as: `= 2026-11-23 12:50:00 UTC`, or with the local offset.
pub fn understood(time: DateTime<Utc>, zone: Zone) -> String {
    match (zone.utc, zone.local) {
        (true, _) => format!("= {} UTC", time.format("%Y-%m-%d %H:%M:%S")),
        (false, Some(offset)) => format!(
            "= {}",
            time.with_timezone(&offset).format("%Y-%m-%d %H:%M:%S %:z")
        ),
        (false, None) => format!(
            "= {}",
            time.with_timezone(&Local).format("%Y-%m-%d %H:%M:%S %:z")
        ),
    }
}

/// How long ago, roughly: `just now`, `42 s ago`, `3 min ago`, `5 h ago`, `2 days ago`.
pub fn ago(time: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let seconds = (now - time).num_seconds();
    match seconds {
        ..0 => "in the future".to_owned(),
        0..5 => "just now".to_owned(),
        5..60 => format!("{seconds} s ago"),
        60..3_600 => format!("{} min ago", seconds / 60),
        3_600..86_400 => format!("{} h ago", seconds / 3_600),
        86_400..172_800 => "1 day ago".to_owned(),
        _ => format!("{} days ago", seconds / 86_400),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // In tests a failed unwrap is a failed test.
mod tests {
    use super::*;

    #[test]
    fn relative_hints() {
        let now = DateTime::parse_from_rfc3339("2026-11-23T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let before = |seconds: i64| now - chrono::Duration::seconds(seconds);
        assert_eq!(ago(before(2), now), "just now");
        assert_eq!(ago(before(42), now), "42 s ago");
        assert_eq!(ago(before(180), now), "3 min ago");
        assert_eq!(ago(before(5 * 3600 + 10), now), "5 h ago");
        assert_eq!(ago(before(90_000), now), "1 day ago");
        assert_eq!(ago(before(3 * 86_400), now), "3 days ago");
        let offset = FixedOffset::east_opt(2 * 3600).unwrap();
        let zone = Clock::fixed(now, offset).zone(true);
        assert_eq!(clock(now, zone), "2026-11-23 12:00:00Z");
        assert_eq!(precise(now, zone), "2026-11-23 12:00:00.000000 UTC");
        let local = Clock::fixed(now, offset).zone(false);
        assert_eq!(clock(now, local), "2026-11-23 14:00:00");
        assert_eq!(precise(now, local), "2026-11-23 14:00:00.000000 +02:00");
        assert_eq!(local.parse("2026-11-23 14:00").unwrap(), now);
        assert_eq!(zone.parse("2026-11-23 12:00").unwrap(), now);
        assert_eq!(local.parse("1h").unwrap(), now - chrono::Duration::hours(1));
        assert_eq!(
            local.parse("14:00").unwrap(),
            now,
            "a time of day, today, in local time"
        );
        assert_eq!(zone.parse("12:00").unwrap(), now, "and in UTC with UTC on");
        assert_eq!(understood(now, zone), "= 2026-11-23 12:00:00 UTC");
        assert_eq!(understood(now, local), "= 2026-11-23 14:00:00 +02:00");
        assert_eq!(local.parse(&typed(now, local)).unwrap(), now);
        assert_eq!(zone.parse(&typed(now, zone)).unwrap(), now);
    }
}
