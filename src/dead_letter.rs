//! Dead letter: a document the cluster refused for good -> an entry in the dead-letter index.
//!
//! Input: the rejected [`Document`], where it came from and the cluster's error. Output: a
//! document for `<dead-letter prefix>-YYYY.MM.DD` (the same day as the index it was meant
//! for) with the same `_id`, so a redelivered message finds it already there (409) instead
//! of writing it twice. It holds:
//! - `record`: the rejected source as a string, exactly as it was sent;
//! - `error.type`, `error.reason`, `error.status`: what the cluster said;
//! - `target.index`, `target.id`: where the event should have gone;
//! - `s3.bucket`, `s3.key`, `sqs.message_id`: where it came from;
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

use crate::document::Document;
use crate::fetch::Origin;

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
    /// Whether this rejection is about the document, so that dead-lettering it is right.
    pub fn is_about_the_document(&self) -> bool {
        (400..500).contains(&self.status) && !matches!(self.status, 401 | 403 | 404 | 409 | 429)
    }
}

/// The dead-letter entry for `rejected`.
pub fn build(
    rejected: &Document,
    origin: &Origin,
    rejection: &Rejection,
    prefix: &str,
    now: OffsetDateTime,
) -> Document {
    let day = rejected
        .index
        .rsplit_once('-')
        .map(|(_, day)| day)
        .unwrap_or("unknown");
    let index = format!("{prefix}-{day}");
    let record = String::from_utf8_lossy(rejected.source());
    let action = json!({"create": {"_index": index, "_id": rejected.id}});
    let source = json!({
        "@timestamp": rejected.timestamp,
        "dead_lettered_at": now.format(&Rfc3339).expect("a UTC time formats as RFC 3339"),
        "record": record,
        "error": {
            "type": rejection.error_type,
            "reason": rejection.reason,
            "status": rejection.status,
        },
        "target": {"index": rejected.index, "id": rejected.id},
        "s3": {"bucket": origin.bucket, "key": origin.key},
        "sqs": {"message_id": origin.message_id},
    });
    let mut bytes = serde_json::to_vec(&action).expect("JSON values serialise");
    bytes.push(b'\n');
    let source_start = bytes.len();
    serde_json::to_writer(&mut bytes, &source).expect("writing to a Vec cannot fail");
    bytes.push(b'\n');
    Document {
        index,
        id: rejected.id.clone(),
        bytes,
        source_start,
        timestamp: rejected.timestamp.clone(),
        event_secs: rejected.event_secs,
        used_fallback_time: rejected.used_fallback_time,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::document::{self, FreeForm, Options};
    use serde_json::Value;
    use time::macros::datetime;

    #[test]
    fn entry_holds_the_record_the_reason_and_the_origin() {
        let record =
            br#"{"eventID":"e1","eventTime":"2024-05-01T10:00:00Z","requestParameters":{"a":1}}"#;
        let options = Options {
            index_prefix: "ct".into(),
            free_form: FreeForm::Objects,
        };
        let parsed = crate::records::OwnedRecord::parse(record).unwrap();
        let rejected = document::build(parsed.as_record(), &options, None).unwrap();
        let origin = Origin {
            message_id: "m-1".into(),
            bucket: "trail".into(),
            key: "AWSLogs/x.json.gz".into(),
        };
        let rejection = Rejection {
            status: 400,
            error_type: "mapper_parsing_exception".into(),
            reason: "failed to parse field [requestParameters]".into(),
        };
        let entry = build(
            &rejected,
            &origin,
            &rejection,
            "ct-dead-letter",
            datetime!(2024-05-02 08:00 UTC),
        );
        assert_eq!(entry.index, "ct-dead-letter-2024.05.01");
        assert_eq!(entry.id, "e1");
        let text = std::str::from_utf8(&entry.bytes).unwrap();
        let mut lines = text.trim_end().split('\n');
        let action: Value = serde_json::from_str(lines.next().unwrap()).unwrap();
        assert_eq!(action["create"]["_index"], "ct-dead-letter-2024.05.01");
        let source: Value = serde_json::from_slice(entry.source()).unwrap();
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
