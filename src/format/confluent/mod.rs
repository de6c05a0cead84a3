//! The Confluent Cloud audit-log format: one CloudEvents JSON record -> one event.
//!
//! Confluent Cloud writes one record per auditable event to `confluent-audit-log-events`:
//! `id`, `source`, `specversion`, `type` (`io.confluent.kafka.server/authentication`, ...),
//! `subject`, `time` and `data` (`methodName`, `resourceName`, `authenticationInfo`,
//! `authorizationInfo`, `request`, `requestMetadata`, `result`, `cloudResources`). The same
//! records arrive through Kafka and, copied by a Kafka Connect S3 sink, as JSON lines.
//!
//! - `_id`: `id` (unique per event across all sources, per Confluent), else the SHA-256 of
//!   the record's bytes, so re-reading never duplicates;
//! - time and `@timestamp`: `time` (RFC 3339, nanoseconds allowed), else the fallback (the
//!   Kafka record timestamp);
//! - the free-form parts ([`FREE_FORM_PATHS`]) are written the [`FreeForm`] way so that their
//!   mapping accepts every event: what they hold varies by method, and
//!   `data.authenticationInfo.principal` is a string (`"User:123456"`) in Kafka events but an
//!   object in organization events;
//! - everything else is copied byte for byte; [`mapping`] types the well-known fields.

pub mod ecs;
pub mod mapping;

pub use mapping::FREE_FORM_PATHS;

use super::document::{content_id, event, find_below, members, raw_str, time_of, Edit, Parts};
use super::mapping::Mappings;
use super::record::{not_json, RecordContext, RecordError, RecordFormat};
use super::FreeForm;
use crate::pipeline::{Dataset, Event};

/// Confluent Cloud audit records (`logsource: product: confluent, service: audit`).
pub const DATASET: Dataset = Dataset::new("confluent", Some("confluent"), Some("audit"));

#[derive(Debug, Clone, Copy)]
pub struct Confluent {
    pub free_form: FreeForm,
}

impl RecordFormat for Confluent {
    fn event(&self, record: &[u8], context: &RecordContext<'_>) -> Result<Event, RecordError> {
        let top = members(record).ok_or_else(|| not_json(record))?;
        let value = |name: &str| {
            top.iter()
                .find(|(key, _)| key == name)
                .map(|(_, span)| span.clone())
        };
        let id = value("id")
            .and_then(|span| raw_str(&record[span]))
            .filter(|id| !id.is_empty() && id.len() <= 512)
            .unwrap_or_else(|| content_id(record));
        let own_time = value("time").and_then(|span| time_of(&record[span]));
        // `data` is read once; only the objects on a free-form path are read below it.
        let data = value("data").filter(|span| record[span.start] == b'{');
        let data_members = data
            .as_ref()
            .and_then(|span| Some((span.start, members(&record[span.clone()])?)));
        let mut edits: Vec<Edit> = match &data_members {
            Some((base, members)) => FREE_FORM_PATHS
                .iter()
                .filter_map(|path| {
                    let (first, rest) = path.split_first()?;
                    let (_, span) = members.iter().find(|(key, _)| key == first)?;
                    find_below(record, base + span.start..base + span.end, rest)
                })
                .filter_map(|span| Edit::of(record, span, self.free_form))
                .collect(),
            None => Vec::new(),
        };
        edits.sort_by_key(|e| e.span.start);
        let parts = Parts {
            id,
            own_time,
            has_timestamp: value("@timestamp").is_some(),
            edits: &edits,
            separators: &[],
            dataset: DATASET,
        };
        event(record, parts, context.fallback_time).ok_or(RecordError::NoTime)
    }

    fn mappings(&self) -> Mappings {
        mapping::mappings
    }

    fn dataset(&self) -> Dataset {
        DATASET
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};
    use time::macros::datetime;

    const CONTEXT: RecordContext<'static> = RecordContext {
        position: "confluent-audit-log-events-0-1",
        fallback_time: Some(datetime!(2024-05-01 10:00:00 UTC)),
    };

    fn event(record: &Value, free_form: FreeForm) -> (Event, Value) {
        let bytes = serde_json::to_vec_pretty(record).unwrap();
        let event = Confluent { free_form }.event(&bytes, &CONTEXT).unwrap();
        let source = serde_json::from_slice(&event.source).unwrap();
        (event, source)
    }

    fn kafka_authentication() -> Value {
        json!({
            "id": "9d5c4a35-2a5b-4f0f-8f3e-0d3c6b1f2a11",
            "source": "crn://confluent.cloud/kafka=lkc-x1y2z",
            "specversion": "1.0",
            "type": "io.confluent.kafka.server/authentication",
            "time": "2024-03-05T07:08:09.123456789Z",
            "data": {
                "methodName": "kafka.Authentication",
                "authenticationInfo": {"principal": "User:123456"},
                "result": {"status": "SUCCESS", "message": ""},
                "request": {"correlation_id": "-1"}
            }
        })
    }

    #[test]
    fn id_time_and_timestamp_come_from_the_cloud_event() {
        let (event, doc) = event(&kafka_authentication(), FreeForm::Objects);
        assert_eq!(event.id, "9d5c4a35-2a5b-4f0f-8f3e-0d3c6b1f2a11");
        assert_eq!(event.time, datetime!(2024-03-05 07:08:09.123456789 UTC));
        assert_eq!(doc["@timestamp"], "2024-03-05T07:08:09.123456789Z");
        assert!(!event.used_fallback_time);
        assert!(!event.source.contains(&b'\n'), "one line");
    }

    #[test]
    fn principal_strings_and_objects_both_fit_one_mapping() {
        let (_, doc) = event(&kafka_authentication(), FreeForm::Objects);
        assert_eq!(
            doc["data"]["authenticationInfo"]["principal"],
            json!({"value": "User:123456"})
        );
        assert_eq!(doc["data"]["request"], json!({"correlation_id": "-1"}));
        let mut org = kafka_authentication();
        org["data"]["authenticationInfo"]["principal"] =
            json!({"confluentUser": {"resourceId": "u-abc123"}});
        org["data"]["result"]["data"] = json!("text");
        let (_, doc) = event(&org, FreeForm::Objects);
        assert_eq!(
            doc["data"]["authenticationInfo"]["principal"]["confluentUser"]["resourceId"],
            "u-abc123"
        );
        assert_eq!(doc["data"]["result"]["data"], json!({"value": "text"}));
        assert_eq!(doc["data"]["result"]["status"], "SUCCESS", "untouched");

        let (_, doc) = event(&org, FreeForm::Strings);
        let principal = doc["data"]["authenticationInfo"]["principal"]
            .as_str()
            .unwrap();
        assert_eq!(
            serde_json::from_str::<Value>(principal).unwrap(),
            json!({"confluentUser": {"resourceId": "u-abc123"}})
        );
        assert_eq!(doc["data"]["result"]["data"], "text");
        assert!(doc["data"]["request"].is_string());
    }

    #[test]
    fn without_id_or_time_the_record_hash_and_the_fallback_time() {
        let mut record = kafka_authentication();
        record.as_object_mut().unwrap().remove("id");
        record["time"] = json!("not a time");
        let (first, doc) = event(&record, FreeForm::Objects);
        let (second, _) = event(&record, FreeForm::Objects);
        assert_eq!(first.id.len(), 64);
        assert_eq!(first.id, second.id, "stable");
        assert!(first.used_fallback_time);
        assert_eq!(doc["@timestamp"], "2024-05-01T10:00:00Z");
    }

    #[test]
    fn not_json_is_refused() {
        let format = Confluent {
            free_form: FreeForm::Objects,
        };
        let err = format.event(b"\x00\x01binary", &CONTEXT).unwrap_err();
        assert!(matches!(err, RecordError::NotJson(_)), "{err}");
    }
}
