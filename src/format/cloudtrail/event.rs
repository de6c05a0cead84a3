//! Event: one raw CloudTrail record -> the [`Event`] to index.
//!
//! Input: a [`Record`] as the splitter found it (its bytes as CloudTrail wrote them, and its
//! top-level members). Output: an [`Event`] whose `source` is the record itself with
//! `@timestamp` spliced in after its opening brace, never re-serialised. Only the values of
//! `eventTime`, `eventID` and `@timestamp` are decoded.
//!
//! - time: `eventTime` (or, for a record without a usable `eventTime`, the log object's
//!   LastModified, so the choice is stable on redelivery); the sink names the daily index
//!   from it;
//! - `_id`: `eventID`, or when absent the SHA-256 of the record's bytes, so redelivery never
//!   makes a duplicate.
//!
//! The free-form objects ([`FREE_FORM_FIELDS`]: `requestParameters`, `responseElements`,
//! `additionalEventData`, `serviceEventDetails`) hold whatever each AWS API puts there, so the
//! same key can be an object in one event and a string in the next. [`FreeForm`] says how they
//! are written so that the index template's mapping accepts every event:
//! - [`FreeForm::Objects`] (mapped `flattened`/`flat_object`): objects and `null` as written;
//!   any other value (a string such as `"true"`, a number, an array) becomes
//!   `{"value": <value>}`, because those field types only take objects;
//! - [`FreeForm::Strings`] (mapped `text`): strings and `null` as written; any other value
//!   becomes a JSON string of its text.
//!
//! Only those spans are rewritten; the rest of the record is copied byte for byte.
//!
//! Failure policy: a record that is not UTF-8, or whose top level is not an object of
//! `"key": value` members, is a permanent [`DocumentError`]. What is inside the values is
//! not validated here (that would cost more than everything else on this path): the cluster
//! parses every document anyway, and one it cannot parse is answered with an item-level 400,
//! so it goes to the dead-letter index with the cluster's reason while the rest of its object
//! is indexed.

use std::ops::Range;

use time::OffsetDateTime;

use super::split::Record;
pub use crate::format::document::FreeForm;
use crate::format::document::{self, content_id, raw_str, time_of, Edit, Parts};
use crate::pipeline::{Dataset, Event};

/// CloudTrail records (`logsource: product: aws, service: cloudtrail`).
pub const DATASET: Dataset = Dataset::new("cloudtrail", Some("aws"), Some("cloudtrail"));

/// The top-level fields whose content is free-form.
pub const FREE_FORM_FIELDS: [&str; 4] = [
    "requestParameters",
    "responseElements",
    "additionalEventData",
    "serviceEventDetails",
];

/// Everything that decides how a record becomes an event.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    pub free_form: FreeForm,
}

#[derive(Debug, thiserror::Error)]
pub enum DocumentError {
    #[error("record is not a JSON object: {0}")]
    Malformed(&'static str),
    #[error("record is not valid UTF-8 (at byte {0})")]
    InvalidUtf8(usize),
    #[error("record has no usable eventTime and no fallback time is known")]
    NoTime,
}

impl DocumentError {
    pub fn is_transient(&self) -> bool {
        false
    }
}

/// The only values read from a record: raw spans of the record, `null` counting as absent.
/// The first of a repeated key wins (the cluster rejects such a record anyway).
#[derive(Default)]
struct Keys {
    event_time: Option<Range<usize>>,
    event_id: Option<Range<usize>>,
    timestamp: Option<Range<usize>>,
    /// In the order of [`FREE_FORM_FIELDS`].
    free_form: [Option<Range<usize>>; 4],
}

impl Keys {
    fn find(record: &Record) -> Result<Keys, DocumentError> {
        let bytes = record.bytes;
        let mut keys = Keys::default();
        for member in record.members() {
            let member = member.map_err(DocumentError::Malformed)?;
            let raw = &bytes[member.key.start + 1..member.key.end - 1];
            let slot = match keys.slot(raw) {
                Some(slot) => slot,
                // A key spelled with escapes may still be one of ours; few records have any.
                None if record.has_backslash() && raw.contains(&b'\\') => {
                    let decoded = serde_json::from_slice::<String>(&bytes[member.key.clone()])
                        .map_err(|_| {
                            DocumentError::Malformed("a key that is not a valid string")
                        })?;
                    match keys.slot(decoded.as_bytes()) {
                        Some(slot) => slot,
                        None => continue,
                    }
                }
                None => continue,
            };
            if slot.is_none() && &bytes[member.value.clone()] != b"null" {
                *slot = Some(member.value);
            }
        }
        Ok(keys)
    }

    /// Where the value of the key `name` goes, if it is one of ours.
    fn slot(&mut self, name: &[u8]) -> Option<&mut Option<Range<usize>>> {
        match name {
            b"eventTime" => Some(&mut self.event_time),
            b"eventID" => Some(&mut self.event_id),
            b"@timestamp" => Some(&mut self.timestamp),
            _ => FREE_FORM_FIELDS
                .iter()
                .position(|f| f.as_bytes() == name)
                .map(|i| &mut self.free_form[i]),
        }
    }
}

/// Builds the event of one record. `fallback_time` places records without a usable
/// `eventTime` (the log object's LastModified).
pub fn build(
    record: Record<'_>,
    options: &Options,
    fallback_time: Option<OffsetDateTime>,
) -> Result<Event, DocumentError> {
    let keys = Keys::find(&record)?;
    let ascii = record.is_ascii();
    let separators = record.separators();
    let record = record.bytes;
    if !ascii {
        if let Err(e) = std::str::from_utf8(record) {
            return Err(DocumentError::InvalidUtf8(e.valid_up_to()));
        }
    }
    let own_time = keys
        .event_time
        .clone()
        .and_then(|span| time_of(&record[span]));
    let id = match keys
        .event_id
        .clone()
        .and_then(|span| raw_str(&record[span]))
    {
        Some(id) if !id.is_empty() => id,
        _ => content_id(record),
    };
    let edits = free_form_edits(record, &keys, options.free_form);
    let parts = Parts {
        id,
        own_time,
        has_timestamp: keys.timestamp.is_some(),
        edits: &edits,
        separators,
        dataset: DATASET,
    };
    document::event(record, parts, fallback_time).ok_or(DocumentError::NoTime)
}

/// The free-form values that must be rewritten, in record order.
fn free_form_edits(record: &[u8], keys: &Keys, free_form: FreeForm) -> Vec<Edit> {
    let mut edits: Vec<Edit> = keys
        .free_form
        .iter()
        .flatten()
        .filter_map(|span| Edit::of(record, span.clone(), free_form))
        .collect();
    edits.sort_by_key(|e| e.span.start);
    edits
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};
    use time::macros::datetime;

    /// `super::build` of a record given as bytes.
    fn build(
        record: &[u8],
        options: &Options,
        fallback_time: Option<OffsetDateTime>,
    ) -> Result<Event, DocumentError> {
        let record = crate::format::cloudtrail::split::OwnedRecord::parse(record)
            .expect("a balanced object");
        super::build(record.as_record(), options, fallback_time)
    }

    fn options() -> Options {
        Options {
            free_form: FreeForm::Objects,
        }
    }

    /// The daily index the sink names for an event, with prefix `ct`.
    fn index(event: &Event) -> String {
        crate::pipeline::index_name("ct", event.time)
    }

    fn source_of(doc: &Event) -> serde_json::Value {
        let scanned = crate::format::cloudtrail::split::OwnedRecord::parse(&doc.source).unwrap();
        let separators = scanned.as_record().separators();
        assert!(
            doc.outline.is_empty() || doc.outline == separators,
            "the outline is the document's own: {:?} against {separators:?}",
            doc.outline
        );
        let text = std::str::from_utf8(&doc.source).unwrap();
        assert!(!text.contains('\n'), "one line: {text}");
        serde_json::from_str(text).unwrap()
    }

    #[test]
    fn action_and_source() {
        let record = br#"{
  "eventVersion": "1.05",
  "eventTime": "2014-03-06T23:59:59Z",
  "eventID": "cdc73f9d-aea9-11e3-9d5a-835b769c0d9c",
  "requestParameters": {"policy": "line\nbreak"}
}"#;
        let doc = build(record, &options(), None).unwrap();
        assert_eq!(index(&doc), "ct-2014.03.06");
        assert_eq!(doc.id, "cdc73f9d-aea9-11e3-9d5a-835b769c0d9c");
        let source = source_of(&doc);
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
        for (time, expected) in table {
            let record = format!(r#"{{"eventTime":"{time}","eventID":"e"}}"#);
            assert_eq!(
                index(&build(record.as_bytes(), &options(), None).unwrap()),
                expected
            );
        }
    }

    #[test]
    fn id_falls_back_to_a_stable_content_hash() {
        let record = br#"{"eventVersion":"1.0","eventTime":"2014-03-06T21:22:54Z"}"#;
        let a = build(record, &options(), None).unwrap();
        let b = build(record, &options(), None).unwrap();
        assert_eq!(a.id, b.id);
        assert_eq!(a.id.len(), 64);
        let other = build(
            br#"{"eventVersion":"1.0","eventTime":"2014-03-06T21:22:55Z"}"#,
            &options(),
            None,
        )
        .unwrap();
        assert_ne!(a.id, other.id);
        let empty_id = build(
            br#"{"eventID":"","eventTime":"2014-03-06T21:22:55Z"}"#,
            &options(),
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
            let doc = build(record, &options(), Some(fallback)).unwrap();
            assert_eq!(index(&doc), "ct-2020.02.03");
            assert!(doc.used_fallback_time);
            assert_eq!(source_of(&doc)["@timestamp"], "2020-02-03T04:05:06Z");
            assert!(matches!(
                build(record, &options(), None),
                Err(DocumentError::NoTime)
            ));
        }
    }

    #[test]
    fn keeps_an_existing_timestamp_and_handles_empty_objects() {
        let doc = build(
            br#"{"@timestamp":"x","eventTime":"2020-01-01T00:00:00Z"}"#,
            &options(),
            None,
        )
        .unwrap();
        assert_eq!(source_of(&doc)["@timestamp"], "x");
        let doc = build(b"{ }", &options(), Some(datetime!(2020-01-01 0:00 UTC))).unwrap();
        assert_eq!(
            source_of(&doc),
            serde_json::json!({"@timestamp": "2020-01-01T00:00:00Z"})
        );
    }

    #[test]
    fn escapes_ids_and_rejects_a_broken_top_level() {
        let doc = build(
            br#"{"eventID":"a\"b\\c","eventTime":"2020-01-01T00:00:00Z"}"#,
            &options(),
            None,
        )
        .unwrap();
        assert_eq!(doc.id, "a\"b\\c");
        for bad in [&b"{\"a\":}"[..], b"{\"a\":1,}", b"{\"a\" 1}"] {
            assert!(matches!(
                build(bad, &options(), None),
                Err(DocumentError::Malformed(_))
            ));
        }
        assert!(matches!(
            build(
                b"{\"a\":\"\xff\"}",
                &options(),
                Some(OffsetDateTime::UNIX_EPOCH)
            ),
            Err(DocumentError::InvalidUtf8(6))
        ));
        // Inside a value, JSON is the cluster's to judge: such a document is sent, and an
        // item-level rejection sends it to the dead-letter index.
        let doc = build(
            b"{\"eventTime\":\"2020-01-01T00:00:00Z\",\"a\":\"\x01\",\"b\":01}",
            &options(),
            None,
        )
        .unwrap();
        assert_eq!(index(&doc), "ct-2020.01.01");
        // A key spelled with escapes is still found.
        let doc = build(
            br#"{"event\u0049D":"x","eventTime":"2020-01-01T00:00:00Z"}"#,
            &options(),
            None,
        )
        .unwrap();
        assert_eq!(doc.id, "x");
    }

    #[test]
    fn the_outline_holds_the_documents_own_separators() {
        for record in [
            &br#"{"eventTime":"2020-01-01T00:00:00Z","eventID":"a","x":{"y":[1,2]}}"#[..],
            br#"{ "@timestamp" : "t", "eventID" : "b" ,"responseElements":"s", "z":1 }"#,
            b"{\"eventTime\":\"2020-01-01T00:00:00Z\",\n\"requestParameters\":[1,\n2],\"k\":\"v\"}",
        ] {
            for free_form in [FreeForm::Objects, FreeForm::Strings] {
                let fallback = Some(datetime!(2021-01-01 00:00:00 UTC));
                let event = build(record, &Options { free_form }, fallback).unwrap();
                assert!(!event.outline.is_empty());
                source_of(&event);
            }
        }
    }

    #[test]
    fn free_form_values_fit_their_mapping() {
        let record = br#"{"eventTime":"2020-01-01T00:00:00Z","eventID":"f",
            "requestParameters": {"filter": {"a": [1, 2]}},
            "responseElements": "true",
            "additionalEventData": [ {"x": 1},
               "y" ],
            "serviceEventDetails": null,
            "other": "kept"}"#;
        let objects = build(record, &options(), None).unwrap();
        let source = source_of(&objects);
        assert_eq!(
            source["requestParameters"],
            json!({"filter": {"a": [1, 2]}})
        );
        assert_eq!(source["responseElements"], json!({"value": "true"}));
        assert_eq!(
            source["additionalEventData"],
            json!({"value": [{"x": 1}, "y"]})
        );
        assert_eq!(source["serviceEventDetails"], Value::Null);
        assert_eq!(source["other"], "kept");

        let strings = Options {
            free_form: FreeForm::Strings,
        };
        let doc = build(record, &strings, None).unwrap();
        let source = source_of(&doc);
        assert_eq!(source["requestParameters"], r#"{"filter": {"a": [1, 2]}}"#);
        assert_eq!(source["responseElements"], "true");
        assert_eq!(
            source["additionalEventData"],
            r#"[ {"x": 1},                "y" ]"#
        );
        assert_eq!(source["serviceEventDetails"], Value::Null);
        assert_eq!(source["@timestamp"], "2020-01-01T00:00:00Z");
        for field in FREE_FORM_FIELDS {
            let raw = &source[field];
            assert!(raw.is_string() || raw.is_null(), "{field}: {raw}");
        }
    }
}
