//! Notification: an SQS message body -> the S3 objects it announces.
//!
//! Accepted shapes, each either bare (SNS RawMessageDelivery, S3 or EventBridge straight to
//! SQS) or inside an SNS envelope (`"Type": "Notification"`, JSON in `Message`):
//! - CloudTrail's own `{"s3Bucket": "...", "s3ObjectKey": ["...", ...]}` (keys as stored);
//! - S3 event notifications, `Records[].s3.{bucket.name,object.key}`, every record, keys
//!   form-URL-encoded (`+` is a space) and decoded here;
//! - EventBridge `aws.s3` events with `detail.{bucket.name,object.key}`, key taken as given;
//! - EventBridge events of CloudTrail itself (`detail-type` "... via CloudTrail", `source`
//!   `aws.*`): no object, the event is in the message; its `detail` is the CloudTrail record,
//!   kept as the bytes the message carried ([`Inline`]);
//! - `s3:TestEvent`, which names nothing.
//!
//! S3/EventBridge events that are not "object created" (deletes, restores) and keys that are
//! not objects to read ([`skip_reason`]: digests, keys the object format does not read) are
//! skipped, not fetched.
//!
//! A tolerant reader: an SNS envelope is recognised by its `Message` (a JSON string, or an
//! object as some tools forward it) even when the other envelope fields are missing, and
//! unknown properties anywhere are ignored. Notifications of other services that share the
//! trail's topic are [`Kind::Ignored`], acknowledged without reading: AWS Config
//! (`messageType`; its delivery notifications carry `s3Bucket` and a single `s3ObjectKey`
//! string, which must not be mistaken for CloudTrail's), SNS subscription and unsubscription
//! confirmations, and EventBridge events from other sources. Anything else is a
//! [`NotificationError`]: the message cannot be read, and the queue's redrive policy should
//! park it for a human to look at.

use std::borrow::Cow;

use serde_json::value::RawValue;
use serde_json::Value;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::config::ObjectFormat;
pub use crate::source::s3::{skip_reason, ObjectRef, SkipReason};

/// Which shape the body had; for logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    CloudTrail,
    S3Event,
    EventBridge,
    /// A CloudTrail event EventBridge delivered in the message itself.
    CloudTrailEvent,
    TestEvent,
    /// Another service's notification; what it is, for the debug line.
    Ignored(String),
}

/// What a message asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    pub kind: Kind,
    pub objects: Vec<ObjectRef>,
    /// Announcements acknowledged without fetching, with the reason.
    pub skipped: Vec<SkipReason>,
    /// The CloudTrail event the message carries itself ([`Kind::CloudTrailEvent`]).
    pub inline: Option<Inline>,
}

/// A CloudTrail event that EventBridge put in the message ("AWS API Call via CloudTrail",
/// "AWS Console Sign In via CloudTrail", ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inline {
    /// EventBridge's own id of the event (not the record's `eventID`).
    pub id: String,
    pub detail_type: String,
    /// The envelope's `time`: where a record without a usable `eventTime` is placed, the same
    /// on every redelivery.
    pub time: Option<OffsetDateTime>,
    /// The `detail` object, the CloudTrail record, as the bytes the message carried.
    pub record: Vec<u8>,
}

/// The suffix of the `detail-type` of every event CloudTrail sends to EventBridge.
const VIA_CLOUDTRAIL: &str = " via CloudTrail";

/// A body that is none of the accepted shapes. Always permanent: redelivering the same
/// bytes cannot help, so the queue's redrive policy should park it.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum NotificationError {
    #[error("body is not JSON: {0}")]
    NotJson(String),
    #[error("SNS Message is not JSON: {0}")]
    SnsMessageNotJson(String),
    #[error("{0}")]
    Malformed(&'static str),
    #[error("the CloudTrail record in the EventBridge event is unusable: {0}")]
    Record(String),
    #[error("not a CloudTrail, S3 event, EventBridge or s3:TestEvent notification")]
    Unrecognized,
}

impl NotificationError {
    pub fn is_transient(&self) -> bool {
        false
    }
}

/// A message whose body is no notification we can read, with the start of the body.
#[derive(Debug, thiserror::Error)]
#[error("notification not understood: {error}; body starts {body_start:?}")]
pub struct UnreadableNotification {
    pub error: NotificationError,
    pub body_start: String,
}

impl crate::pipeline::StageError for UnreadableNotification {
    fn is_transient(&self) -> bool {
        self.error.is_transient()
    }
}

/// Parses one SQS message body; keys that are not objects to read in `format` are skipped.
pub fn parse(body: &str, format: ObjectFormat) -> Result<Notification, NotificationError> {
    let value: Value =
        serde_json::from_str(body).map_err(|e| NotificationError::NotJson(e.to_string()))?;
    // The payload, and its text where it came as text: an inline event's record is taken
    // from the text as it is.
    let (inner, text): (Cow<'_, Value>, Option<&str>) = match unwrap_sns(&value)? {
        Envelope::Message(Value::String(message)) => (
            Cow::Owned(
                serde_json::from_str(message)
                    .map_err(|e| NotificationError::SnsMessageNotJson(e.to_string()))?,
            ),
            Some(message.as_str()),
        ),
        Envelope::Message(message) => (Cow::Borrowed(message), None),
        Envelope::Other(kind) => return Ok(ignored(format!("SNS {kind}"))),
        Envelope::None => (Cow::Borrowed(&value), Some(body)),
    };
    let mut notification = classify(&inner, text)?;
    notification
        .objects
        .retain(|object| match skip_reason(&object.key, format) {
            Some(reason) => {
                notification.skipped.push(reason);
                false
            }
            None => true,
        });
    Ok(notification)
}

enum Envelope<'a> {
    /// A notification: its `Message`.
    Message(&'a Value),
    /// An SNS message of another type (`SubscriptionConfirmation`, ...).
    Other(String),
    /// Not an SNS envelope.
    None,
}

/// Finds the SNS envelope, by its `Message` or its `Type`.
fn unwrap_sns(value: &Value) -> Result<Envelope<'_>, NotificationError> {
    let kind = value.get("Type").and_then(Value::as_str);
    match (kind, value.get("Message")) {
        (Some(kind), _) if kind != "Notification" && value.get("TopicArn").is_some() => {
            Ok(Envelope::Other(kind.to_string()))
        }
        (_, Some(message)) if message.is_string() || message.is_object() => {
            Ok(Envelope::Message(message))
        }
        (Some("Notification"), _) => Err(NotificationError::Malformed(
            "SNS envelope has no string Message",
        )),
        _ => Ok(Envelope::None),
    }
}

fn ignored(what: String) -> Notification {
    Builder::new(Kind::Ignored(what)).finish()
}

fn classify(value: &Value, text: Option<&str>) -> Result<Notification, NotificationError> {
    if let Some(message_type) = value.get("messageType").and_then(Value::as_str) {
        return Ok(ignored(format!("AWS Config {message_type}")));
    }
    if value.get("s3Bucket").is_some() {
        return cloudtrail(value);
    }
    if value.get("Event").and_then(Value::as_str) == Some("s3:TestEvent") {
        return Ok(Builder::new(Kind::TestEvent).finish());
    }
    if let Some(records) = value.get("Records").and_then(Value::as_array) {
        if !records.is_empty() && records.iter().all(|r| r.get("s3").is_some()) {
            return s3_event(records);
        }
    }
    let detail_type = value.get("detail-type").and_then(Value::as_str);
    match value.get("source").and_then(Value::as_str) {
        Some(source)
            if source.starts_with("aws.")
                && detail_type.is_some_and(|t| t.ends_with(VIA_CLOUDTRAIL)) =>
        {
            return inline(value, text);
        }
        Some("aws.s3") => return eventbridge(value),
        Some(source) if value.get("detail-type").is_some() => {
            let detail_type = value["detail-type"].as_str().unwrap_or("?");
            return Ok(ignored(format!("EventBridge {source} {detail_type}")));
        }
        _ => {}
    }
    Err(NotificationError::Unrecognized)
}

fn cloudtrail(value: &Value) -> Result<Notification, NotificationError> {
    let bucket = value
        .get("s3Bucket")
        .and_then(Value::as_str)
        .filter(|b| !b.is_empty())
        .ok_or(NotificationError::Malformed(
            "CloudTrail notification s3Bucket is not a non-empty string",
        ))?;
    let keys =
        value
            .get("s3ObjectKey")
            .and_then(Value::as_array)
            .ok_or(NotificationError::Malformed(
                "CloudTrail notification s3ObjectKey is not an array",
            ))?;
    let mut builder = Builder::new(Kind::CloudTrail);
    for key in keys {
        let key = key.as_str().ok_or(NotificationError::Malformed(
            "CloudTrail notification s3ObjectKey holds a non-string",
        ))?;
        builder.announce(bucket, key.to_string());
    }
    Ok(builder.finish())
}

fn s3_event(records: &[Value]) -> Result<Notification, NotificationError> {
    let mut builder = Builder::new(Kind::S3Event);
    for record in records {
        let created = record
            .get("eventName")
            .and_then(Value::as_str)
            .is_some_and(|name| name.starts_with("ObjectCreated:"));
        if !created {
            builder.skipped.push(SkipReason::NotObjectCreated);
            continue;
        }
        let bucket = record.pointer("/s3/bucket/name").and_then(Value::as_str);
        let key = record.pointer("/s3/object/key").and_then(Value::as_str);
        let (Some(bucket), Some(key)) = (bucket, key) else {
            return Err(NotificationError::Malformed(
                "S3 event record lacks s3.bucket.name or s3.object.key",
            ));
        };
        builder.announce(bucket, decode_s3_event_key(key));
    }
    Ok(builder.finish())
}

fn eventbridge(value: &Value) -> Result<Notification, NotificationError> {
    let mut builder = Builder::new(Kind::EventBridge);
    if value.get("detail-type").and_then(Value::as_str) != Some("Object Created") {
        builder.skipped.push(SkipReason::NotObjectCreated);
        return Ok(builder.finish());
    }
    let bucket = value.pointer("/detail/bucket/name").and_then(Value::as_str);
    let key = value.pointer("/detail/object/key").and_then(Value::as_str);
    let (Some(bucket), Some(key)) = (bucket, key) else {
        return Err(NotificationError::Malformed(
            "EventBridge Object Created event lacks detail.bucket.name or detail.object.key",
        ));
    };
    builder.announce(bucket, key.to_string());
    Ok(builder.finish())
}

/// An EventBridge event of CloudTrail: its `detail`, taken from the payload's text (or,
/// for a payload forwarded as an object, written from it), is the record. Only `aws.*`
/// sources count: EventBridge refuses them from anyone but AWS.
fn inline(value: &Value, text: Option<&str>) -> Result<Notification, NotificationError> {
    #[derive(serde::Deserialize)]
    struct Detail<'a> {
        #[serde(borrow)]
        detail: Option<&'a RawValue>,
    }
    let record = match text {
        Some(text) => serde_json::from_str::<Detail<'_>>(text)
            .ok()
            .and_then(|d| d.detail)
            .map(|detail| detail.get().to_string()),
        None => value.get("detail").map(Value::to_string),
    }
    .filter(|detail| detail.starts_with('{'))
    .ok_or(NotificationError::Malformed(
        "EventBridge CloudTrail event has no detail object",
    ))?;
    let text_of = |field: &str| value.get(field).and_then(Value::as_str).unwrap_or("");
    let mut builder = Builder::new(Kind::CloudTrailEvent);
    builder.inline = Some(Inline {
        id: text_of("id").to_string(),
        detail_type: text_of("detail-type").to_string(),
        time: OffsetDateTime::parse(text_of("time"), &Rfc3339).ok(),
        record: record.into_bytes(),
    });
    Ok(builder.finish())
}

struct Builder {
    kind: Kind,
    objects: Vec<ObjectRef>,
    skipped: Vec<SkipReason>,
    inline: Option<Inline>,
}

impl Builder {
    fn new(kind: Kind) -> Self {
        Builder {
            kind,
            objects: Vec::new(),
            skipped: Vec::new(),
            inline: None,
        }
    }

    fn announce(&mut self, bucket: &str, key: String) {
        self.objects.push(ObjectRef {
            bucket: bucket.to_string(),
            key,
        });
    }

    fn finish(self) -> Notification {
        Notification {
            kind: self.kind,
            objects: self.objects,
            skipped: self.skipped,
            inline: self.inline,
        }
    }
}

/// S3 event keys are form-URL-encoded: `+` is a space and `%XX` an escaped byte.
fn decode_s3_event_key(key: &str) -> String {
    form_urlencoded::parse(format!("k={key}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "AWSLogs/123456789012/CloudTrail/us-east-1/2024/10/30/123456789012_CloudTrail_us-east-1_20241030T2030Z_ySRwAYukLwiNORzN.json.gz";

    fn objects(body: &str) -> Vec<String> {
        parse(body, ObjectFormat::Auto)
            .expect("parses")
            .objects
            .into_iter()
            .map(|o| o.to_string())
            .collect()
    }

    #[test]
    fn cloudtrail_raw_and_sns_wrapped() {
        let raw =
            format!(r#"{{"s3Bucket":"trail-bucket","s3ObjectKey":["{KEY}","a+b c.json.gz"]}}"#);
        let expected = vec![
            format!("s3://trail-bucket/{KEY}"),
            "s3://trail-bucket/a+b c.json.gz".to_string(),
        ];
        assert_eq!(objects(&raw), expected);
        let sns = serde_json::json!({
            "Type": "Notification", "MessageId": "x", "TopicArn": "arn:aws:sns:us-east-1:1:t",
            "Message": raw,
        })
        .to_string();
        assert_eq!(objects(&sns), expected);
        assert_eq!(
            parse(&sns, ObjectFormat::Auto).unwrap().kind,
            Kind::CloudTrail
        );
    }

    #[test]
    fn s3_event_decodes_every_record() {
        let body = r#"{"Records":[
            {"eventName":"ObjectCreated:Put","s3":{"bucket":{"name":"b"},"object":{"key":"ct+logs%2Barchive%3D1/AWSLogs%2Fx.json.gz"}}},
            {"eventName":"ObjectCreated:CompleteMultipartUpload","s3":{"bucket":{"name":"b"},"object":{"key":"y.json"}}},
            {"eventName":"ObjectRemoved:Delete","s3":{"bucket":{"name":"b"},"object":{"key":"z.json.gz"}}}
        ]}"#;
        let n = parse(body, ObjectFormat::Auto).unwrap();
        assert_eq!(n.kind, Kind::S3Event);
        assert_eq!(
            objects(body),
            vec![
                "s3://b/ct logs+archive=1/AWSLogs/x.json.gz",
                "s3://b/y.json"
            ]
        );
        assert_eq!(n.skipped, vec![SkipReason::NotObjectCreated]);
    }

    #[test]
    fn eventbridge_cloudtrail_events_carry_their_record_as_sent() {
        let record = r#"{"eventVersion":"1.09", "eventTime":"2024-05-01T12:00:00Z","eventSource":"s3.amazonaws.com","eventName":"PutBucketPolicy","requestParameters":{"bucketName":"b"},"eventID":"e-1"}"#;
        let raw = format!(
            r#"{{"version":"0","id":"eb-1","detail-type":"AWS API Call via CloudTrail","source":"aws.s3","account":"123456789012","time":"2024-05-01T12:00:03Z","region":"us-east-1","resources":[],"detail":{record}}}"#
        );
        let sns = serde_json::json!({"Type": "Notification", "TopicArn": "arn:aws:sns:us-east-1:1:t", "Message": raw}).to_string();
        for body in [&raw, &sns] {
            let n = parse(body, ObjectFormat::Auto).expect("parses");
            assert_eq!(n.kind, Kind::CloudTrailEvent);
            assert!(n.objects.is_empty() && n.skipped.is_empty());
            let inline = n.inline.expect("an inline event");
            assert_eq!(inline.record, record.as_bytes(), "the bytes as sent");
            assert_eq!(inline.id, "eb-1");
            assert_eq!(inline.detail_type, "AWS API Call via CloudTrail");
            assert_eq!(
                inline.time,
                Some(time::macros::datetime!(2024-05-01 12:00:03 UTC))
            );
        }
        // The other detail types of CloudTrail, from any AWS service.
        for detail_type in [
            "AWS Console Sign In via CloudTrail",
            "AWS Service Event via CloudTrail",
            "AWS Console Action via CloudTrail",
            "AWS Insight via CloudTrail",
        ] {
            let body = format!(
                r#"{{"detail-type":"{detail_type}","source":"aws.signin","detail":{record}}}"#
            );
            let n = parse(&body, ObjectFormat::Cloudtrail).expect("parses");
            assert_eq!(n.kind, Kind::CloudTrailEvent, "{detail_type}");
        }
        // Only AWS sources: anyone else's event is not CloudTrail's.
        let forged = format!(
            r#"{{"detail-type":"AWS API Call via CloudTrail","source":"my.app","detail":{record}}}"#
        );
        let n = parse(&forged, ObjectFormat::Auto).expect("parses");
        assert!(matches!(n.kind, Kind::Ignored(_)), "{:?}", n.kind);
        assert!(n.inline.is_none());
        for detail in ["", r#","detail":"text""#, r#","detail":null"#] {
            let body = format!(
                r#"{{"detail-type":"AWS API Call via CloudTrail","source":"aws.iam"{detail}}}"#
            );
            assert_eq!(
                parse(&body, ObjectFormat::Auto),
                Err(NotificationError::Malformed(
                    "EventBridge CloudTrail event has no detail object"
                )),
                "{body}"
            );
        }
    }

    #[test]
    fn eventbridge_object_created_and_others() {
        let created = r#"{"version":"0","detail-type":"Object Created","source":"aws.s3",
            "detail":{"bucket":{"name":"b"},"object":{"key":"k+1.json.gz"}}}"#;
        assert_eq!(objects(created), vec!["s3://b/k+1.json.gz"]);
        let deleted = r#"{"detail-type":"Object Deleted","source":"aws.s3","detail":{}}"#;
        let n = parse(deleted, ObjectFormat::Auto).unwrap();
        assert!(n.objects.is_empty());
        assert_eq!(n.skipped, vec![SkipReason::NotObjectCreated]);
    }

    #[test]
    fn other_services_are_ignored_not_refused() {
        let config = serde_json::json!({
            "configSnapshotId": "16da64e4-cb65-4846-b061-e6c3ba43cb96",
            "s3ObjectKey": "AWSLogs/123456789012/Config/us-east-2/2016/9/27/ConfigSnapshot/x.json.gz",
            "s3Bucket": "config-bucket-123456789012-ohio",
            "notificationCreationTime": "2016-09-27T18:39:39.853Z",
            "messageType": "ConfigurationSnapshotDeliveryCompleted",
            "recordVersion": "1.1"
        });
        let as_string = serde_json::json!({
            "Type": "Notification", "TopicArn": "arn:aws:sns:us-east-2:123456789012:config-topic",
            "Message": config.to_string(),
        });
        let as_object = serde_json::json!({"Type": "Notification", "Message": config});
        for body in [
            config.to_string(),
            as_string.to_string(),
            as_object.to_string(),
        ] {
            let n = parse(&body, ObjectFormat::Auto).unwrap_or_else(|e| panic!("{body}: {e}"));
            assert_eq!(
                n.kind,
                Kind::Ignored("AWS Config ConfigurationSnapshotDeliveryCompleted".into())
            );
            assert!(n.objects.is_empty() && n.skipped.is_empty());
        }
        for (body, what) in [
            (
                r#"{"Type":"SubscriptionConfirmation","TopicArn":"t","Token":"x","Message":"You have chosen to subscribe"}"#,
                "SNS SubscriptionConfirmation",
            ),
            (
                r#"{"version":"0","source":"aws.config","detail-type":"Config Rules Compliance Change","detail":{}}"#,
                "EventBridge aws.config Config Rules Compliance Change",
            ),
        ] {
            assert_eq!(
                parse(body, ObjectFormat::Auto).unwrap().kind,
                Kind::Ignored(what.into()),
                "{body}"
            );
        }
    }

    #[test]
    fn reads_tolerantly() {
        // An envelope with nothing but its Message, and unknown fields beside CloudTrail's.
        let inner = format!(
            r#"{{"s3Bucket":"b","s3ObjectKey":["{KEY}"],"notificationVersion":2,"extra":{{"a":1}}}}"#
        );
        let bare = serde_json::json!({ "Message": inner }).to_string();
        assert_eq!(objects(&bare), vec![format!("s3://b/{KEY}")]);
        assert_eq!(objects(&inner), vec![format!("s3://b/{KEY}")]);
    }

    #[test]
    fn test_event_names_nothing() {
        let n = parse(
            r#"{"Service":"Amazon S3","Event":"s3:TestEvent","Bucket":"b"}"#,
            ObjectFormat::Auto,
        )
        .unwrap();
        assert_eq!(n.kind, Kind::TestEvent);
        assert!(n.objects.is_empty() && n.skipped.is_empty());
    }

    #[test]
    fn rejects_what_it_does_not_know() {
        type Check = fn(&NotificationError) -> bool;
        let table: [(&str, Check); 6] = [
            ("This is a test message.", |e| {
                matches!(e, NotificationError::NotJson(_))
            }),
            (r#"{"message":"foo1"}"#, |e| {
                *e == NotificationError::Unrecognized
            }),
            (
                r#"{"Type":"Notification","TopicArn":"t","Message":"hello"}"#,
                |e| matches!(e, NotificationError::SnsMessageNotJson(_)),
            ),
            (r#"{"Type":"Notification","TopicArn":"t"}"#, |e| {
                matches!(e, NotificationError::Malformed(_))
            }),
            (r#"{"s3Bucket":"b","s3ObjectKey":"not-an-array"}"#, |e| {
                matches!(e, NotificationError::Malformed(_))
            }),
            (
                r#"{"Records":[{"eventName":"ObjectCreated:Put","s3":{}}]}"#,
                |e| matches!(e, NotificationError::Malformed(_)),
            ),
        ];
        for (body, check) in table {
            let err = parse(body, ObjectFormat::Auto).expect_err(body);
            assert!(check(&err), "{body}: {err:?}");
            assert!(!err.is_transient());
        }
    }
}
