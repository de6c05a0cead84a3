//! Dates as Elastic's AWS integration writes them: UTC, to the millisecond.

use time::OffsetDateTime;

use crate::format::document::parse_time;
use crate::format::ecs::text;

/// A raw JSON string holding an ISO 8601 time -> UTC with milliseconds, as the
/// integration writes dates (also the basic form `20131102T010628Z`).
pub fn date(raw: &str) -> Option<Stamp> {
    let text = text(raw)?;
    if let Some(written) = plain_utc(&text) {
        return Some(written);
    }
    let time = parse_time(&text).or_else(|| basic_time(&text))?;
    Some(stamp(time))
}

/// A date as [`date`] and [`millis`] write it, `yyyy-MM-ddTHH:mm:ss.SSSZ`: on the stack for
/// the years 0 to 9999 (every date CloudTrail writes), so a document's dates cost no
/// allocation. Its text needs no JSON escape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stamp(Written);

/// How a [`Stamp`] is kept (private: a short one holds only what this module writes).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Written {
    Short([u8; 24]),
    /// Any other year (written with `format!`).
    Long(String),
}

impl std::ops::Deref for Stamp {
    type Target = str;

    fn deref(&self) -> &str {
        match &self.0 {
            // SAFETY: a short stamp is ASCII, digits and `-T:.Z`, as `stamp` and `plain_utc`
            // write it (nothing else makes one), so UTF-8; this runs for every date of every
            // document.
            Written::Short(bytes) => unsafe { std::str::from_utf8_unchecked(bytes) },
            Written::Long(text) => text,
        }
    }
}

/// `yyyy-MM-ddTHH:mm:ssZ`, the form CloudTrail writes its own dates in, checked as the full
/// parse checks it and written with `.000`: the parse costs ten times more. `None` for any
/// other form (the full parse then reads it).
fn plain_utc(text: &str) -> Option<Stamp> {
    let b = text.as_bytes();
    let shape = b.len() == 20
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
        && b[16] == b':'
        && b[19] == b'Z';
    if !shape {
        return None;
    }
    let number = |from: usize, to: usize| {
        b[from..to].iter().try_fold(0u32, |n, &d| {
            d.is_ascii_digit().then(|| n * 10 + u32::from(d - b'0'))
        })
    };
    let (year, month, day) = (number(0, 4)?, number(5, 7)?, number(8, 10)?);
    let (hour, minute, second) = (number(11, 13)?, number(14, 16)?, number(17, 19)?);
    let month = time::Month::try_from(u8::try_from(month).ok()?).ok()?;
    let days = time::util::days_in_month(month, i32::try_from(year).ok()?);
    let valid = (1..=u32::from(days)).contains(&day) && hour < 24 && minute < 60 && second < 60;
    valid.then(|| {
        let mut written = *b"0000-00-00T00:00:00.000Z";
        written[..19].copy_from_slice(&b[..19]);
        Stamp(Written::Short(written))
    })
}

/// `yyyyMMdd'T'HHmmss'Z'`.
fn basic_time(text: &str) -> Option<OffsetDateTime> {
    let digits = text.strip_suffix('Z')?;
    if digits.len() != 15 || digits.as_bytes()[8] != b'T' {
        return None;
    }
    let iso = format!(
        "{}-{}-{}T{}:{}:{}Z",
        &digits[0..4],
        &digits[4..6],
        &digits[6..8],
        &digits[9..11],
        &digits[11..13],
        &digits[13..15]
    );
    parse_time(&iso)
}

/// `time` in UTC, `yyyy-MM-ddTHH:mm:ss.SSSZ`. Written digit by digit: this runs for every
/// event, and `format!` with padding costs several times more.
pub fn millis(time: OffsetDateTime) -> String {
    String::from(&*stamp(time))
}

/// [`millis`], as a [`Stamp`].
pub fn stamp(time: OffsetDateTime) -> Stamp {
    let t = time.to_offset(time::UtcOffset::UTC);
    let (year, month, day) = t.to_calendar_date();
    let (hour, minute, second, milli) = t.to_hms_milli();
    if !(0..=9999).contains(&year) {
        return Stamp(Written::Long(format!(
            "{year:04}-{:02}-{day:02}T{hour:02}:{minute:02}:{second:02}.{milli:03}Z",
            u8::from(month),
        )));
    }
    let mut out = *b"0000-00-00T00:00:00.000Z";
    let mut put = |at: usize, width: usize, mut n: u32| {
        for place in out[at..at + width].iter_mut().rev() {
            *place = b'0' + (n % 10) as u8;
            n /= 10;
        }
    };
    put(0, 4, year as u32);
    put(5, 2, u32::from(u8::from(month)));
    put(8, 2, u32::from(day));
    put(11, 2, u32::from(hour));
    put(14, 2, u32::from(minute));
    put(17, 2, u32::from(second));
    put(20, 3, u32::from(milli));
    Stamp(Written::Short(out))
}

/// `now` as `event.created` is written: to the millisecond, formatted once per millisecond
/// and thread (the events of one parcel share their `now`, and so the text).
pub fn created_at(now: std::time::SystemTime) -> std::rc::Rc<str> {
    use std::cell::RefCell;
    use std::rc::Rc;
    use std::time::UNIX_EPOCH;
    thread_local! {
        static NOW: RefCell<(u128, Rc<str>)> = RefCell::new((u128::MAX, Rc::from("")));
    }
    let since = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let ms = since.as_millis();
    NOW.with_borrow_mut(|(last, text)| {
        if *last != ms {
            *last = ms;
            let now = OffsetDateTime::UNIX_EPOCH + since;
            *text = Rc::from(&*stamp(now));
        }
        text.clone()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn dates_are_utc_milliseconds() {
        assert_eq!(
            date(r#""2019-10-02T21:50:54Z""#).as_deref(),
            Some("2019-10-02T21:50:54.000Z")
        );
        assert_eq!(
            date(r#""2019-10-02T23:50:54.123456+02:00""#).as_deref(),
            Some("2019-10-02T21:50:54.123Z")
        );
        assert_eq!(
            date(r#""20131102T010628Z""#).as_deref(),
            Some("2013-11-02T01:06:28.000Z")
        );
        for bad in [r#""yesterday""#, "7", "null", r#""20131102T0106Z""#] {
            assert_eq!(date(bad), None);
        }
        // CloudTrail's own form, read without the full parse, as the full parse reads it.
        for text in [
            "2019-10-02T21:50:54Z",
            "2024-02-29T00:00:00Z",
            "2023-02-29T00:00:00Z",
            "2023-04-31T12:00:00Z",
            "2023-04-30T24:00:00Z",
            "2023-04-30T23:60:00Z",
            "2023-04-30T23:59:60Z",
            "2023-13-01T00:00:00Z",
            "2023-00-01T00:00:00Z",
            "2023-01-00T00:00:00Z",
            "0000-01-01T00:00:00Z",
            "2023-01-0aT00:00:00Z",
            "2023-01-01 00:00:00Z",
        ] {
            let full = parse_time(text).map(millis);
            let plain = plain_utc(text);
            assert_eq!(
                plain.as_deref().or(full.as_deref()),
                full.as_deref(),
                "{text}"
            );
            let written = date(&format!("\"{text}\""));
            assert_eq!(written.as_deref(), full.as_deref(), "{text}");
        }
        for (time, text) in [
            (
                datetime!(2024-02-29 23:59:59.999 UTC),
                "2024-02-29T23:59:59.999Z",
            ),
            (
                datetime!(0987-06-05 04:03:02.001 +01:00),
                "0987-06-05T03:03:02.001Z",
            ),
            (
                datetime!(-0001-12-31 00:00:00 UTC),
                "-001-12-31T00:00:00.000Z",
            ),
        ] {
            assert_eq!(millis(time), text);
        }
    }

    #[test]
    fn created_is_the_given_moment_to_the_millisecond() {
        use std::time::{Duration, UNIX_EPOCH};
        let at = |ms: u64, us: u64| {
            UNIX_EPOCH + Duration::from_millis(1_714_564_800_000 + ms) + Duration::from_micros(us)
        };
        assert_eq!(&*created_at(at(5, 0)), "2024-05-01T12:00:00.005Z");
        // Within the same millisecond, the same text; the next one is written anew.
        assert_eq!(&*created_at(at(5, 999)), "2024-05-01T12:00:00.005Z");
        assert_eq!(&*created_at(at(6, 0)), "2024-05-01T12:00:00.006Z");
        assert_eq!(&*created_at(at(5, 1)), "2024-05-01T12:00:00.005Z");
    }
}
