//! Tolerant RFC 3339 §5.6 date-time reading for `date-range` (DECISIONS D25).
//!
//! Accepted, besides strict RFC 3339: lowercase `t`/`z` (allowed by RFC 3339 §5.6 NOTE), a space
//! instead of `T` (RFC 3339's non-normative note), no zone at all (seen from Microsoft; read as
//! UTC), offsets other than `Z` (converted to UTC), offsets without a colon or minutes,
//! surrounding white space and a leap second (`:60`, read as `:59`).

use crate::diag::Severity;
use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset};

/// A note about how a date-time deviated from strict `YYYY-MM-DDTHH:MM:SS[.frac]Z`.
pub(crate) type Note = (&'static str, Severity, String);

/// Reads one date-time; `None` when it is not a date-time at all. Returns the value in UTC and
/// notes about every leniency used.
pub(crate) fn parse_datetime(input: &str) -> Option<(OffsetDateTime, Vec<Note>)> {
    let mut notes = Vec::new();
    let s = input.trim();
    if s.len() != input.len() {
        notes.push((
            "report.datetime-nonstandard",
            Severity::Warning,
            "white space around the date-time was ignored".to_owned(),
        ));
    }
    let b = s.as_bytes();
    let num = |from: usize, len: usize| -> Option<u32> {
        let digits = b.get(from..from + len)?;
        if !digits.iter().all(u8::is_ascii_digit) {
            return None;
        }
        Some(
            digits
                .iter()
                .fold(0u32, |acc, d| acc * 10 + u32::from(d - b'0')),
        )
    };
    let year = num(0, 4)?;
    if b.get(4) != Some(&b'-') || b.get(7) != Some(&b'-') {
        return None;
    }
    let month = num(5, 2)?;
    let day = num(8, 2)?;
    match b.get(10)? {
        b'T' => {}
        b't' => notes.push((
            "report.datetime-lowercase",
            Severity::Info,
            "lowercase `t` separator (allowed by RFC 3339, normalised to `T`)".to_owned(),
        )),
        b' ' => notes.push((
            "report.datetime-space",
            Severity::Info,
            "space instead of `T` between date and time (RFC 3339 non-normative note), \
             normalised to `T`"
                .to_owned(),
        )),
        _ => return None,
    }
    let hour = num(11, 2)?;
    if b.get(13) != Some(&b':') {
        return None;
    }
    let minute = num(14, 2)?;
    if b.get(16) != Some(&b':') {
        return None;
    }
    let mut second = num(17, 2)?;
    let mut pos = 19;
    let mut nanos = 0u32;
    if b.get(pos) == Some(&b'.') {
        pos += 1;
        let start = pos;
        while b.get(pos).is_some_and(u8::is_ascii_digit) {
            if pos - start < 9 {
                nanos = nanos * 10 + u32::from(b[pos] - b'0');
            }
            pos += 1;
        }
        if pos == start {
            return None;
        }
        for _ in (pos - start)..9 {
            nanos *= 10;
        }
    }
    if second == 60 {
        second = 59;
        notes.push((
            "report.datetime-leap-second",
            Severity::Info,
            "leap second `:60` read as `:59`".to_owned(),
        ));
    }
    let offset = match &b[pos..] {
        [] => {
            notes.push((
                "report.datetime-no-zone",
                Severity::Warning,
                format!("date-time {s:?} has no time zone (RFC 3339 requires one); read as UTC"),
            ));
            UtcOffset::UTC
        }
        [b'Z'] => UtcOffset::UTC,
        [b'z'] => {
            notes.push((
                "report.datetime-lowercase",
                Severity::Info,
                "lowercase `z` (allowed by RFC 3339, normalised to `Z`)".to_owned(),
            ));
            UtcOffset::UTC
        }
        [sign @ (b'+' | b'-'), rest @ ..] => {
            let (h, m, standard) = match rest {
                [h1, h2, b':', m1, m2] => (pair(*h1, *h2)?, pair(*m1, *m2)?, true),
                [h1, h2, m1, m2] => (pair(*h1, *h2)?, pair(*m1, *m2)?, false),
                [h1, h2] => (pair(*h1, *h2)?, 0, false),
                _ => return None,
            };
            if !standard {
                notes.push((
                    "report.datetime-nonstandard",
                    Severity::Warning,
                    format!("offset in {s:?} is not `±hh:mm` (RFC 3339)"),
                ));
            }
            if h > 23 || m > 59 {
                return None;
            }
            let (h, m) = (i8::try_from(h).ok()?, i8::try_from(m).ok()?);
            let off = if *sign == b'-' {
                UtcOffset::from_hms(-h, -m, 0).ok()?
            } else {
                UtcOffset::from_hms(h, m, 0).ok()?
            };
            if !off.is_utc() {
                notes.push((
                    "report.datetime-offset",
                    Severity::Info,
                    format!(
                        "offset {} converted to UTC",
                        String::from_utf8_lossy(&b[pos..])
                    ),
                ));
            }
            off
        }
        _ => return None,
    };
    let month = Month::try_from(u8::try_from(month).ok()?).ok()?;
    let date =
        Date::from_calendar_date(i32::try_from(year).ok()?, month, u8::try_from(day).ok()?).ok()?;
    let time = Time::from_hms_nano(
        u8::try_from(hour).ok()?,
        u8::try_from(minute).ok()?,
        u8::try_from(second).ok()?,
        nanos,
    )
    .ok()?;
    let dt = PrimitiveDateTime::new(date, time)
        .assume_offset(offset)
        .checked_to_offset(UtcOffset::UTC)?;
    Some((dt, notes))
}

fn pair(a: u8, b: u8) -> Option<u32> {
    (a.is_ascii_digit() && b.is_ascii_digit())
        .then(|| u32::from(a - b'0') * 10 + u32::from(b - b'0'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> (i64, Vec<&'static str>) {
        let (dt, notes) = parse_datetime(s).unwrap_or_else(|| panic!("{s} should parse"));
        (
            dt.unix_timestamp(),
            notes.into_iter().map(|n| n.0).collect(),
        )
    }

    #[test]
    fn strict_and_lenient_forms() {
        assert_eq!(ts("2016-04-01T00:00:00Z"), (1_459_468_800, vec![]));
        assert_eq!(
            ts("2016-04-01t00:00:00z").1,
            vec!["report.datetime-lowercase"; 2]
        );
        assert_eq!(
            ts("2016-04-01 00:00:00Z"),
            (1_459_468_800, vec!["report.datetime-space"])
        );
        assert_eq!(
            ts("2016-04-01T00:00:00"),
            (1_459_468_800, vec!["report.datetime-no-zone"])
        );
        assert_eq!(
            ts("2016-04-01T02:00:00+02:00"),
            (1_459_468_800, vec!["report.datetime-offset"])
        );
        assert_eq!(ts("2016-03-31T22:00:00-02:00").0, 1_459_468_800);
        assert_eq!(ts("2016-04-01T00:00:00+00:00"), (1_459_468_800, vec![]));
        assert_eq!(
            ts("2016-04-01T00:00:00+0000"),
            (1_459_468_800, vec!["report.datetime-nonstandard"])
        );
        assert_eq!(
            ts("2016-12-31T23:59:60Z").1,
            vec!["report.datetime-leap-second"]
        );
        let (dt, _) = parse_datetime("2016-04-01T00:00:00.5Z").unwrap_or_else(|| panic!());
        assert_eq!(dt.nanosecond(), 500_000_000);
        assert_eq!(
            ts(" 2016-04-01T00:00:00Z\n").1,
            vec!["report.datetime-nonstandard"]
        );
    }

    #[test]
    fn rejects_non_datetimes() {
        for s in [
            "",
            "2016-04-01",
            "2016-04-01T00:00Z",
            "2016-13-01T00:00:00Z",
            "2016-02-30T00:00:00Z",
            "2016-04-01T24:00:00Z",
            "2016-04-01X00:00:00Z",
            "2016-04-01T00:00:00.Z",
            "2016-04-01T00:00:00+25:00",
            "2016-04-01T00:00:00Zjunk",
            "1459468800",
            "２016-04-01T00:00:00Z",
        ] {
            assert!(parse_datetime(s).is_none(), "{s:?} should not parse");
        }
    }
}
