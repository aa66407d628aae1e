//! Reading the times people type: RFC 3339, local `YYYY-MM-DD HH:MM[:SS]`, `HH:MM[:SS]` today,
//! `15m`/`2h`/`3d` ago, or `now`. Pure apart from reading the clock and the local zone in [`parse_local_time`].

use chrono::{DateTime, Duration, Local, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc};

/// The text is not a time rowtrail understands.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "'{0}' is not a time: use RFC 3339 (2026-11-23T14:35:00Z), local time 'YYYY-MM-DD HH:MM[:SS]', 'HH:MM[:SS]' for today, a relative time like 30s, 15m, 2h, 3d, 1w (meaning ago), or now"
)]
pub struct TimeError(pub String);

/// Parses `text` as a moment; relative forms count back from `now`, local forms use `zone`.
pub fn parse_time<Z: TimeZone>(
    text: &str,
    now: DateTime<Utc>,
    zone: &Z,
) -> Result<DateTime<Utc>, TimeError> {
    let text = text.trim();
    let error = || TimeError(text.to_owned());
    if text.eq_ignore_ascii_case("now") {
        return Ok(now);
    }
    if let Some(ago) = parse_relative(text) {
        return now.checked_sub_signed(ago).ok_or_else(error);
    }
    if let Ok(time) = DateTime::parse_from_rfc3339(text) {
        return Ok(time.with_timezone(&Utc));
    }
    let naive = [
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
    ]
    .iter()
    .find_map(|format| NaiveDateTime::parse_from_str(text, format).ok())
    .or_else(|| {
        NaiveDate::parse_from_str(text, "%Y-%m-%d")
            .ok()
            .and_then(|date| date.and_hms_opt(0, 0, 0))
    })
    .or_else(|| {
        // A time of day: today, in the zone.
        ["%H:%M:%S%.f", "%H:%M"]
            .iter()
            .find_map(|format| NaiveTime::parse_from_str(text, format).ok())
            .map(|time| now.with_timezone(zone).date_naive().and_time(time))
    })
    .ok_or_else(error)?;
    zone.from_local_datetime(&naive)
        .earliest()
        .map(|time| time.with_timezone(&Utc))
        .ok_or_else(error)
}

/// Parses a time in the machine's local zone.
pub fn parse_local_time(text: &str) -> Result<DateTime<Utc>, TimeError> {
    parse_time(text, Utc::now(), &Local)
}

/// An age for `capture --retain`: a positive number of seconds, minutes, hours, days or weeks.
pub fn parse_age(text: &str) -> Result<Duration, AgeError> {
    parse_relative(text.trim())
        .filter(|age| *age > Duration::zero())
        .ok_or_else(|| AgeError(text.to_owned()))
}

/// Not an age.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("--retain '{0}' is not an age: use a number and a unit, like 90d, 12h, 2w, 30m or 45s")]
pub struct AgeError(String);

fn parse_relative(text: &str) -> Option<Duration> {
    let unit_at = text.find(|c: char| !c.is_ascii_digit())?;
    let (number, unit) = text.split_at(unit_at);
    let number: i64 = number.parse().ok()?;
    let seconds = match unit {
        "s" => 1,
        "m" | "min" => 60,
        "h" => 3_600,
        "d" => 86_400,
        "w" => 604_800,
        _ => return None,
    };
    Duration::try_seconds(number.checked_mul(seconds)?)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // In tests a failed unwrap is a failed test.
mod tests {
    use super::*;
    use chrono::FixedOffset;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-23T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    fn parse(text: &str) -> Result<String, TimeError> {
        let oslo = FixedOffset::east_opt(3600).unwrap();
        parse_time(text, now(), &oslo).map(|time| time.to_rfc3339())
    }

    #[test]
    fn ages_are_positive_durations() {
        assert_eq!(parse_age("90d").unwrap(), Duration::days(90));
        assert_eq!(parse_age("12h").unwrap(), Duration::hours(12));
        assert!(parse_age("0d").is_err());
        assert!(parse_age("soon").is_err());
        assert!(parse_age("5").is_err());
    }

    #[test]
    fn accepts_the_three_forms() {
        assert_eq!(parse("now").unwrap(), "2026-11-23T12:00:00+00:00");
        assert_eq!(parse("15m").unwrap(), "2026-11-23T11:45:00+00:00");
        assert_eq!(parse("2h").unwrap(), "2026-11-23T10:00:00+00:00");
        assert_eq!(parse("3d").unwrap(), "2026-11-20T12:00:00+00:00");
        assert_eq!(
            parse("2026-11-23T14:35:00.5+02:00").unwrap(),
            "2026-11-23T12:35:00.500+00:00"
        );
        assert_eq!(
            parse("2026-11-23 14:35").unwrap(),
            "2026-11-23T13:35:00+00:00"
        );
        assert_eq!(
            parse("2026-11-23 14:35:07").unwrap(),
            "2026-11-23T13:35:07+00:00"
        );
        assert_eq!(parse("2026-11-23").unwrap(), "2026-11-22T23:00:00+00:00");
        assert_eq!(
            parse("12:50").unwrap(),
            "2026-11-23T11:50:00+00:00",
            "today"
        );
        assert_eq!(parse("12:50:30").unwrap(), "2026-11-23T11:50:30+00:00");
    }

    #[test]
    fn rejects_everything_else() {
        for bad in [
            "",
            "yesterday",
            "15",
            "m15",
            "15x",
            "2026-13-01",
            "2026-11-23 25:00",
            "99999999999999999d",
        ] {
            assert!(parse(bad).is_err(), "{bad} should not parse");
        }
    }
}
