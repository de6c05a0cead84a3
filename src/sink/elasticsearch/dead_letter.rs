//! Dead letter: an event the cluster refused for good -> an entry in the dead-letter index.
//!
//! Input: the refused [`Event`], the index it was meant for, where it came from and the
//! cluster's error. Output: the entry, an event with the same `_id` and time, which the bulk
//! stage writes to `<dead-letter prefix>-YYYY.MM.DD` (the same day as the index it was meant
//! for), so a redelivered payload finds it already there (409) instead of writing it twice.
//! It holds:
//! - `record`: the rejected source as a string, exactly as it was sent;
//! - `error.type`, `error.reason`, `error.status`: what the cluster said;
//! - `target.index`, `target.id`: where the event should have gone;
//! - where it came from ([`Origin::fields`]; for S3 objects announced on SQS `s3.bucket`,
//!   `s3.key`, `sqs.message_id`);
//! - `@timestamp` (the event's) and `dead_lettered_at` (now).
//!
//! Which rejections are dead-lettered is decided here too: a 4xx that is about the document
//! (mapping conflicts, parse errors). 401/403 (credentials, privileges) and 404 (index
//! missing while auto-creation is off) are about the cluster's set-up and would send every
//! event to the dead-letter index, so their messages stay in the queue instead; 409 and 429
//! never reach this point.

use serde_json::json;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::pipeline::{Event, Origin};

/// The cluster's verdict on a rejected document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub status: u16,
    pub error_type: String,
    pub reason: String,
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "HTTP {} {}: {}",
            self.status, self.error_type, self.reason
        )
    }
}

impl Rejection {
    /// A record its source could not make an event of (it is no JSON): dead-lettered as a
    /// 400 of type `unreadable_record`, without being sent to the events' index.
    pub fn unreadable(reason: impl Into<String>) -> Self {
        Rejection {
            status: 400,
            error_type: "unreadable_record".into(),
            reason: reason.into(),
        }
    }

    /// Whether this rejection is about the document, so that dead-lettering it is right.
    pub fn is_about_the_document(&self) -> bool {
        (400..500).contains(&self.status) && !matches!(self.status, 401 | 403 | 404 | 409 | 429)
    }
}

/// The dead-letter entry for `rejected`, which was meant for `target_index`.
pub fn build(
    rejected: &Event,
    target_index: &str,
    origin: &Origin,
    rejection: &Rejection,
    now: OffsetDateTime,
) -> Event {
    let record = String::from_utf8_lossy(&rejected.source);
    let mut source = json!({
        "@timestamp": rejected.timestamp,
        "dead_lettered_at": now.format(&Rfc3339).expect("a UTC time formats as RFC 3339"),
        "record": record,
        "error": {
            "type": rejection.error_type,
            "reason": rejection.reason,
            "status": rejection.status,
        },
        "target": {"index": target_index, "id": rejected.id},
    });
    if let (Some(entry), Some(fields)) = (source.as_object_mut(), origin.fields()) {
        entry.extend(fields.clone());
    }
    Event {
        id: rejected.id.clone(),
        time: rejected.time,
        timestamp: rejected.timestamp.clone(),
        source: serde_json::to_vec(&source)
            .expect("JSON values serialise")
            .into(),
        outline: Vec::new(),
        used_fallback_time: rejected.used_fallback_time,
        dataset: rejected.dataset,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::cloudtrail::{record_event, FreeForm, Options};
    use serde_json::Value;
    use time::macros::datetime;

    #[test]
    fn entry_holds_the_record_the_reason_and_the_origin() {
        let record =
            br#"{"eventID":"e1","eventTime":"2024-05-01T10:00:00Z","requestParameters":{"a":1}}"#;
        let options = Options {
            free_form: FreeForm::Objects,
        };
        let rejected = record_event(record, &options, None).unwrap();
        let origin = Origin::new(
            "s3://trail/AWSLogs/x.json.gz",
            serde_json::json!({"s3": {"bucket": "trail", "key": "AWSLogs/x.json.gz"}, "sqs": {"message_id": "m-1"}}),
        );
        let rejection = Rejection {
            status: 400,
            error_type: "mapper_parsing_exception".into(),
            reason: "failed to parse field [requestParameters]".into(),
        };
        let entry = build(
            &rejected,
            "ct-2024.05.01",
            &origin,
            &rejection,
            datetime!(2024-05-02 08:00 UTC),
        );
        assert_eq!(entry.id, "e1");
        assert_eq!(entry.time, rejected.time);
        let source: Value = serde_json::from_slice(&entry.source).unwrap();
        assert_eq!(source["@timestamp"], "2024-05-01T10:00:00Z");
        assert_eq!(source["dead_lettered_at"], "2024-05-02T08:00:00Z");
        assert_eq!(source["error"]["type"], "mapper_parsing_exception");
        assert_eq!(source["error"]["status"], 400);
        assert_eq!(source["target"]["index"], "ct-2024.05.01");
        assert_eq!(source["s3"]["key"], "AWSLogs/x.json.gz");
        assert_eq!(source["sqs"]["message_id"], "m-1");
        let kept: Value = serde_json::from_str(source["record"].as_str().unwrap()).unwrap();
        let mut expected: Value = serde_json::from_slice(record).unwrap();
        expected["@timestamp"] = "2024-05-01T10:00:00Z".into();
        assert_eq!(kept, expected);
    }

    #[test]
    fn only_document_errors_are_dead_lettered() {
        let r = |status| Rejection {
            status,
            error_type: String::new(),
            reason: String::new(),
        };
        for status in [400, 413, 422] {
            assert!(r(status).is_about_the_document(), "{status}");
        }
        for status in [401, 403, 404, 409, 429, 500, 503] {
            assert!(!r(status).is_about_the_document(), "{status}");
        }
    }
}
