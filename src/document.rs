//! Document: one raw CloudTrail record -> its bulk `create` action and source, ready to send.
//!
//! Input: a record's bytes as CloudTrail wrote them. Output: a [`Document`] whose `bytes` are
//! the two NDJSON lines of a bulk `create` (action, then source). Only `eventTime`,
//! `eventID` and `@timestamp` are read from the record; the source is the record itself with
//! `@timestamp` spliced in after its opening brace, never re-serialised.
//!
//! - index: `<prefix>-YYYY.MM.DD` from `eventTime` in UTC (or, for a record without a usable
//!   `eventTime`, from the log object's LastModified, so the choice is stable on redelivery);
//! - `_id`: `eventID`, or when absent the SHA-256 of the record's bytes, so redelivery never
//!   makes a duplicate.
//!
//! Failure policy: a record that is not valid JSON is a permanent [`DocumentError`].

use serde::Deserialize;
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};
use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, UtcOffset};

/// A record ready for the bulk API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Document {
    pub index: String,
    pub id: String,
    /// `{"create":{...}}\n{...record with @timestamp...}\n`
    pub bytes: Vec<u8>,
    /// The record had no usable `eventTime`; the fallback time placed it.
    pub used_fallback_time: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum DocumentError {
    #[error("record is not valid JSON: {0}")]
    InvalidJson(#[from] serde_json::Error),
    #[error("record has no usable eventTime and no fallback time is known")]
    NoTime,
}

impl DocumentError {
    pub fn is_transient(&self) -> bool {
        false
    }
}

/// The only fields read from a record. Deserialising into this still validates the whole
/// record as JSON while skipping everything else without allocation.
#[derive(Deserialize)]
struct Keys<'a> {
    #[serde(rename = "eventTime", borrow, default)]
    event_time: Option<&'a RawValue>,
    #[serde(rename = "eventID", borrow, default)]
    event_id: Option<&'a RawValue>,
    #[serde(rename = "@timestamp", borrow, default)]
    timestamp: Option<&'a RawValue>,
}

/// Builds the bulk lines for one record. `fallback_time` places records without a usable
/// `eventTime` (the log object's LastModified).
pub fn build(
    record: &[u8],
    index_prefix: &str,
    fallback_time: Option<OffsetDateTime>,
) -> Result<Document, DocumentError> {
    let keys: Keys = serde_json::from_slice(record)?;
    let event_time = keys
        .event_time
        .and_then(raw_str)
        .and_then(|s| parse_time(&s).map(|t| (s, t)));
    let used_fallback_time = event_time.is_none();
    let (timestamp, time) = match event_time {
        Some(found) => found,
        None => {
            let t = fallback_time.ok_or(DocumentError::NoTime)?;
            let s = t
                .to_offset(UtcOffset::UTC)
                .format(&Rfc3339)
                .expect("a UTC time formats as RFC 3339");
            (s, t)
        }
    };
    let id = match keys.event_id.and_then(raw_str) {
        Some(id) if !id.is_empty() => id,
        _ => content_id(record),
    };
    let index = index_name(index_prefix, time);

    let mut bytes = Vec::with_capacity(record.len() + index.len() + id.len() + 80);
    bytes.extend_from_slice(b"{\"create\":{\"_index\":");
    serde_json::to_writer(&mut bytes, &index).expect("writing to a Vec cannot fail");
    bytes.extend_from_slice(b",\"_id\":");
    serde_json::to_writer(&mut bytes, &id).expect("writing to a Vec cannot fail");
    bytes.extend_from_slice(b"}}\n");
    append_source(
        &mut bytes,
        record,
        keys.timestamp.is_none().then_some(&timestamp),
    );
    bytes.push(b'\n');
    Ok(Document {
        index,
        id,
        bytes,
        used_fallback_time,
    })
}

/// `<prefix>-YYYY.MM.DD` of the instant in UTC.
pub fn index_name(prefix: &str, time: OffsetDateTime) -> String {
    let date = time.to_offset(UtcOffset::UTC).date();
    format!(
        "{prefix}-{:04}.{:02}.{:02}",
        date.year(),
        u8::from(date.month()),
        date.day()
    )
}

/// The record on one line, with `"@timestamp":"<t>",` inserted after the opening brace.
/// A record that already carries `@timestamp` keeps its own (a duplicate key is rejected
/// by the cluster). Newlines inside the record are only whitespace between tokens (JSON
/// strings cannot hold raw newlines), so replacing them with spaces keeps it identical.
fn append_source(out: &mut Vec<u8>, record: &[u8], timestamp: Option<&String>) {
    let open = record
        .iter()
        .position(|&b| b == b'{')
        .expect("a validated record is a JSON object");
    let rest = &record[open + 1..];
    out.push(b'{');
    if let Some(ts) = timestamp {
        out.extend_from_slice(b"\"@timestamp\":");
        serde_json::to_writer(&mut *out, ts).expect("writing to a Vec cannot fail");
        let empty = rest.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'}');
        if !empty {
            out.push(b',');
        }
    }
    let start = out.len();
    out.extend_from_slice(rest);
    for b in &mut out[start..] {
        if *b == b'\n' || *b == b'\r' {
            *b = b' ';
        }
    }
}

fn raw_str(raw: &RawValue) -> Option<String> {
    serde_json::from_str::<String>(raw.get()).ok()
}

fn parse_time(s: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(s, &Rfc3339).ok()
}

/// Stable id for records without `eventID`: the same bytes always give the same id.
fn content_id(record: &[u8]) -> String {
    use std::fmt::Write;
    let mut id = String::with_capacity(64);
    for b in Sha256::digest(record) {
        write!(id, "{b:02x}").expect("writing to a String cannot fail");
    }
    id
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn lines(doc: &Document) -> (serde_json::Value, serde_json::Value) {
        let text = std::str::from_utf8(&doc.bytes).unwrap();
        assert!(text.ends_with('\n'));
        let mut it = text.trim_end_matches('\n').split('\n');
        let action = serde_json::from_str(it.next().unwrap()).unwrap();
        let source = serde_json::from_str(it.next().unwrap()).unwrap();
        assert!(it.next().is_none(), "exactly two lines: {text}");
        (action, source)
    }

    #[test]
    fn action_and_source() {
        let record = br#"{
  "eventVersion": "1.05",
  "eventTime": "2014-03-06T23:59:59Z",
  "eventID": "cdc73f9d-aea9-11e3-9d5a-835b769c0d9c",
  "requestParameters": {"policy": "line\nbreak"}
}"#;
        let doc = build(record, "cloudtrail", None).unwrap();
        assert_eq!(doc.index, "cloudtrail-2014.03.06");
        assert_eq!(doc.id, "cdc73f9d-aea9-11e3-9d5a-835b769c0d9c");
        let (action, source) = lines(&doc);
        assert_eq!(
            action,
            serde_json::json!({"create": {"_index": "cloudtrail-2014.03.06", "_id": "cdc73f9d-aea9-11e3-9d5a-835b769c0d9c"}})
        );
        let mut expected: serde_json::Value = serde_json::from_slice(record).unwrap();
        expected["@timestamp"] = "2014-03-06T23:59:59Z".into();
        assert_eq!(source, expected);
        assert!(!doc.used_fallback_time);
    }

    #[test]
    fn index_follows_utc_day_of_each_event() {
        let table = [
            ("2024-12-31T23:59:59Z", "ct-2024.12.31"),
            ("2025-01-01T00:00:00Z", "ct-2025.01.01"),
            ("2025-01-01T01:30:00+02:00", "ct-2024.12.31"),
        ];
        for (time, index) in table {
            let record = format!(r#"{{"eventTime":"{time}","eventID":"e"}}"#);
            assert_eq!(build(record.as_bytes(), "ct", None).unwrap().index, index);
        }
    }

    #[test]
    fn id_falls_back_to_a_stable_content_hash() {
        let record = br#"{"eventVersion":"1.0","eventTime":"2014-03-06T21:22:54Z"}"#;
        let a = build(record, "ct", None).unwrap();
        let b = build(record, "ct", None).unwrap();
        assert_eq!(a.id, b.id);
        assert_eq!(a.id.len(), 64);
        let other = build(
            br#"{"eventVersion":"1.0","eventTime":"2014-03-06T21:22:55Z"}"#,
            "ct",
            None,
        )
        .unwrap();
        assert_ne!(a.id, other.id);
        let empty_id = build(
            br#"{"eventID":"","eventTime":"2014-03-06T21:22:55Z"}"#,
            "ct",
            None,
        )
        .unwrap();
        assert_eq!(empty_id.id.len(), 64);
    }

    #[test]
    fn time_falls_back_when_event_time_is_missing_or_bad() {
        let fallback = datetime!(2020-02-03 04:05:06 UTC);
        for record in [
            &br#"{"eventID":"a"}"#[..],
            br#"{"eventID":"a","eventTime":"yesterday"}"#,
            br#"{"eventID":"a","eventTime":7}"#,
        ] {
            let doc = build(record, "ct", Some(fallback)).unwrap();
            assert_eq!(doc.index, "ct-2020.02.03");
            assert!(doc.used_fallback_time);
            assert_eq!(lines(&doc).1["@timestamp"], "2020-02-03T04:05:06Z");
            assert!(matches!(
                build(record, "ct", None),
                Err(DocumentError::NoTime)
            ));
        }
    }

    #[test]
    fn keeps_an_existing_timestamp_and_handles_empty_objects() {
        let doc = build(
            br#"{"@timestamp":"x","eventTime":"2020-01-01T00:00:00Z"}"#,
            "ct",
            None,
        )
        .unwrap();
        assert_eq!(lines(&doc).1["@timestamp"], "x");
        let doc = build(b"{ }", "ct", Some(datetime!(2020-01-01 0:00 UTC))).unwrap();
        assert_eq!(
            lines(&doc).1,
            serde_json::json!({"@timestamp": "2020-01-01T00:00:00Z"})
        );
    }

    #[test]
    fn escapes_ids_and_rejects_invalid_json() {
        let doc = build(
            br#"{"eventID":"a\"b\\c","eventTime":"2020-01-01T00:00:00Z"}"#,
            "ct",
            None,
        )
        .unwrap();
        assert_eq!(doc.id, "a\"b\\c");
        assert_eq!(lines(&doc).0["create"]["_id"], "a\"b\\c");
        for bad in [&b"{\"a\":}"[..], b"{\"a\":1,}", b"{\"a\":\"\x01\"}"] {
            assert!(matches!(
                build(bad, "ct", None),
                Err(DocumentError::InvalidJson(_))
            ));
        }
    }
}
