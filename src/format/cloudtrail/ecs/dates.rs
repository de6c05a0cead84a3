//! Dates as Elastic's AWS integration writes them: UTC, to the millisecond.

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::format::document::parse_time;
use crate::format::ecs::text;

/// A raw JSON string holding an ISO 8601 time -> UTC with milliseconds, as the
/// integration writes dates (also the basic form `20131102T010628Z`).
pub fn date(raw: &[u8]) -> Option<String> {
    let text = text(raw)?;
    let time = parse_time(&text).or_else(|| basic_time(&text))?;
    Some(millis(time))
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

/// `time` in UTC, `yyyy-MM-ddTHH:mm:ss.SSSZ`.
pub fn millis(time: OffsetDateTime) -> String {
    let t = time.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

/// `time` as `event.created` is written: RFC 3339 in UTC, to the nanosecond.
pub fn created(time: OffsetDateTime) -> String {
    time.to_offset(time::UtcOffset::UTC)
        .format(&Rfc3339)
        .unwrap_or_else(|_| millis(time))
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn dates_are_utc_milliseconds() {
        assert_eq!(
            date(br#""2019-10-02T21:50:54Z""#).as_deref(),
            Some("2019-10-02T21:50:54.000Z")
        );
        assert_eq!(
            date(br#""2019-10-02T23:50:54.123456+02:00""#).as_deref(),
            Some("2019-10-02T21:50:54.123Z")
        );
        assert_eq!(
            date(br#""20131102T010628Z""#).as_deref(),
            Some("2013-11-02T01:06:28.000Z")
        );
        for bad in [
            &br#""yesterday""#[..],
            b"7",
            b"null",
            br#""20131102T0106Z""#,
        ] {
            assert_eq!(date(bad), None);
        }
        assert_eq!(
            created(datetime!(2021-11-11 01:02:03.123456789 UTC)),
            "2021-11-11T01:02:03.123456789Z"
        );
    }
}
