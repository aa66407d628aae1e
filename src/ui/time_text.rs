//! Times as the app shows them: local time or UTC, with a relative hint ("3 min ago").

use chrono::{DateTime, Local, Utc};

/// How the app shows times: the user's zone or UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Zone {
    Local,
    Utc,
}

/// `2026-11-23 14:35:01` in the chosen zone (UTC gets a `Z`).
pub fn clock(time: DateTime<Utc>, zone: Zone) -> String {
    match zone {
        Zone::Local => time
            .with_timezone(&Local)
            .format("%Y-%m-%d %H:%M:%S")
            .to_string(),
        Zone::Utc => time.format("%Y-%m-%d %H:%M:%SZ").to_string(),
    }
}

/// `2026-11-23 14:35:01.123456` in the chosen zone, for details.
pub fn precise(time: DateTime<Utc>, zone: Zone) -> String {
    match zone {
        Zone::Local => time
            .with_timezone(&Local)
            .format("%Y-%m-%d %H:%M:%S%.6f %:z")
            .to_string(),
        Zone::Utc => time.format("%Y-%m-%d %H:%M:%S%.6f UTC").to_string(),
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
        assert_eq!(clock(now, Zone::Utc), "2026-11-23 12:00:00Z");
        assert_eq!(precise(now, Zone::Utc), "2026-11-23 12:00:00.000000 UTC");
    }
}
