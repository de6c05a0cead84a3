//! The JSON record format (`--kafka-format json`, and JSON lines on S3 that are not
//! Confluent audit records): any JSON object per record -> one event.
//!
//! - `_id`: the string (or number) at the id field when given and present; without one, a
//!   CloudEvents record's `id` (a top-level `id` beside `specversion`); else the record's
//!   position (Kafka: `<topic>-<partition>-<offset>`; S3: a hash of bucket, key and the
//!   record's place in the object), so re-reading a record never makes a duplicate;
//! - time and `@timestamp`: the first of the time fields that holds an RFC 3339 string
//!   (Kafka: `--kafka-time-field`; S3: `--ndjson-time-field`, else `time`, `eventTime`,
//!   `@timestamp`, `timestamp`), else the fallback time (Kafka: the record timestamp; S3:
//!   the object's LastModified), counted as such;
//! - the record is otherwise kept byte for byte (a record that already has `@timestamp`
//!   keeps its own). Its indices map unknown strings as keywords, without date or numeric
//!   detection ([`crate::format::mapping`]), so no event is refused for a field's type
//!   changing between producers as long as it stays a scalar.

use serde_json::{json, Map, Value};

use super::document::{event, find, members, parse_time, raw_str, Parts};
use super::mapping::{dynamic, FreeFormMapping, Mappings};
use super::record::{not_json, RecordContext, RecordError, RecordFormat};
use crate::pipeline::{Dataset, Event};

/// JSON records of any other origin (rules without a product or service apply to them).
pub const DATASET: Dataset = Dataset::new("json", None, None);

/// The time fields of JSON lines on S3 when `--ndjson-time-field` is not given, in order.
pub const DEFAULT_TIME_FIELDS: [&str; 4] = ["time", "eventTime", "@timestamp", "timestamp"];

#[derive(Debug, Clone, Default)]
pub struct Json {
    /// Dotted path of the `_id` field.
    pub id_field: Option<Vec<String>>,
    /// Dotted paths of the time fields, the first usable one wins.
    pub time_fields: Vec<Vec<String>>,
}

impl Json {
    /// `id_field` and `time_fields` as dotted paths (`meta.id`).
    pub fn new<'a>(id_field: Option<&str>, time_fields: impl IntoIterator<Item = &'a str>) -> Self {
        let path = |p: &str| p.split('.').map(str::to_string).collect();
        Json {
            id_field: id_field.map(path),
            time_fields: time_fields.into_iter().map(path).collect(),
        }
    }
}

/// The string at `path` in `record`; a number counts as its text.
fn scalar_at(record: &[u8], path: &[String]) -> Option<String> {
    let raw = &record[find(record, path)?];
    match raw.first()? {
        b'"' => raw_str(raw),
        b'-' | b'0'..=b'9' => std::str::from_utf8(raw).ok().map(str::to_string),
        _ => None,
    }
}

impl RecordFormat for Json {
    fn event(&self, record: &[u8], context: &RecordContext<'_>) -> Result<Event, RecordError> {
        let top = members(record).ok_or_else(|| not_json(record))?;
        let top_value = |name: &str| {
            top.iter()
                .find(|(key, _)| key == name)
                .map(|(_, span)| &record[span.clone()])
        };
        let id = match &self.id_field {
            Some(path) => scalar_at(record, path),
            None => top_value("specversion")
                .and(top_value("id"))
                .and_then(raw_str),
        }
        .filter(|id| !id.is_empty() && id.len() <= 512)
        .unwrap_or_else(|| context.position.to_string());
        let own_time = self
            .time_fields
            .iter()
            .find_map(|path| scalar_at(record, path).and_then(|s| parse_time(&s).map(|t| (s, t))));
        let parts = Parts {
            id,
            own_time,
            has_timestamp: top.iter().any(|(key, _)| key == "@timestamp"),
            edits: &[],
            separators: &[],
            dataset: DATASET,
        };
        event(record, parts, context.fallback_time).ok_or(RecordError::NoTime)
    }

    fn mappings(&self) -> Mappings {
        mappings
    }

    fn dataset(&self) -> Dataset {
        DATASET
    }
}

/// The mappings of JSON-topic indices: `@timestamp` a date, everything else dynamic.
pub fn mappings(_free_form: FreeFormMapping) -> Value {
    let mut properties = Map::new();
    properties.insert("@timestamp".into(), json!({"type": "date"}));
    dynamic(properties)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn context(position: &str) -> RecordContext<'_> {
        RecordContext {
            position,
            fallback_time: Some(datetime!(2024-05-01 10:00:00 UTC)),
        }
    }

    fn source(event: &Event) -> Value {
        serde_json::from_slice(&event.source).unwrap()
    }

    #[test]
    fn id_and_time_from_the_configured_fields() {
        let format = Json::new(Some("event.id"), ["meta.at"]);
        let record = br#"{"event":{"id":"abc"},"meta":{"at":"2023-01-02T03:04:05.678Z"},"n":1}"#;
        let event = format.event(record, &context("t-0-7")).unwrap();
        assert_eq!(event.id, "abc");
        assert_eq!(event.time, datetime!(2023-01-02 03:04:05.678 UTC));
        assert!(!event.used_fallback_time);
        let doc = source(&event);
        assert_eq!(doc["@timestamp"], "2023-01-02T03:04:05.678Z");
        assert_eq!(doc["n"], 1);
        let numeric = format
            .event(br#"{"event":{"id":42}}"#, &context("t-0-8"))
            .unwrap();
        assert_eq!(numeric.id, "42");
    }

    #[test]
    fn falls_back_to_the_position_and_the_record_time() {
        let format = Json::new(Some("id"), ["time"]);
        let event = format
            .event(br#"{"time":"yesterday","x":"y"}"#, &context("audit-3-99"))
            .unwrap();
        assert_eq!(event.id, "audit-3-99");
        assert!(event.used_fallback_time);
        assert_eq!(source(&event)["@timestamp"], "2024-05-01T10:00:00Z");
        let none = RecordContext {
            position: "p",
            fallback_time: None,
        };
        assert_eq!(format.event(b"{}", &none), Err(RecordError::NoTime));
    }

    #[test]
    fn cloud_event_ids_and_the_first_usable_time_field_by_default() {
        let format = Json::new(None, DEFAULT_TIME_FIELDS);
        let event = format
            .event(
                br#"{"specversion":"1.0","id":"ce-1","time":"soon","eventTime":"2023-04-05T06:07:08Z"}"#,
                &context("p"),
            )
            .unwrap();
        assert_eq!(event.id, "ce-1");
        assert_eq!(event.time, datetime!(2023-04-05 06:07:08 UTC));
        let plain = format
            .event(
                br#"{"id":"not-unique","timestamp":"2023-04-05T06:07:09Z"}"#,
                &context("p-1"),
            )
            .unwrap();
        assert_eq!(plain.id, "p-1", "an id without specversion is not taken");
        assert_eq!(plain.time, datetime!(2023-04-05 06:07:09 UTC));
    }

    #[test]
    fn what_is_not_a_json_object_is_refused_with_a_reason() {
        let format = Json::default();
        for bad in [&b"plain text"[..], b"[1,2]", b"{\"a\":", b"\"s\""] {
            let err = format.event(bad, &context("p")).unwrap_err();
            assert!(matches!(err, RecordError::NotJson(_)), "{err:?}");
        }
    }

    #[test]
    fn an_own_timestamp_is_kept_and_newlines_go() {
        let format = Json::default();
        let event = format
            .event(
                b"{\"@timestamp\":\"2020-01-01T00:00:00Z\",\n\"a\":1}\n",
                &context("p"),
            )
            .unwrap();
        assert!(!event.source.contains(&b'\n'));
        assert_eq!(source(&event)["@timestamp"], "2020-01-01T00:00:00Z");
    }
}
