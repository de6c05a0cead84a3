//! Alert: a rule's match on an event -> the alert document indexed in
//! `<index-prefix>-alerts-YYYY.MM.DD`.
//!
//! An alert is an [`Event`] of the alerts [`DATASET`], added by the [`Alerter`] (the detection
//! [`Stage`]) right after the event that matched, so it goes through the sink like any event,
//! under that event's ticket: the source acknowledges the event only once its alerts are
//! indexed too (an alert is never lost), and:
//! - `_id` is `<rule id>:<event _id>` (its SHA-256 when longer than the cluster's 512
//!   bytes), so a redelivered event never makes a second alert;
//! - the daily index and `@timestamp` are the event's, so a redelivery, even days later,
//!   lands on the same document; `detected_at` says when the alert was first raised.
//!
//! The document: `kind` (`match`), `text` (one line for people and chat webhooks), `rule`
//! (`id`, `title`, `level`, `tags`, `description`, `file`), `event` (`index`, `id`, `dataset`,
//! and `fields`: the values of the rule's `fields` and of the fields its detection tests,
//! each as text of at most [`MAX_FIELD_CHARS`] characters, a list when the field has
//! several values). `event.fields` is mapped the way free-form objects are on the cluster
//! (flattened, flat_object, or one JSON string where neither exists).

use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use serde::Serialize;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use super::deliver::Notifier;
use super::detector::Detector;
use super::field::scalar_text;
use super::rule::Rule;
use crate::format::mapping::{
    dynamic, keyword, keywords, object, text_with_keyword, FreeFormMapping,
};
use crate::format::FreeForm;
use crate::pipeline::{format_time, Dataset, Event, Indices, OnWritten, Pending, Stage};

crate::telemetry::counters! {
    /// The alerts written.
    pub struct AlertCounters {
        alerts_indexed: "alerts indexed: new matches of a detection rule (not counted in documents_indexed)",
        alerts_existing: "alerts already indexed by an earlier delivery of their event (409)",
    }
}

/// What detection found: `<index-prefix>-alerts-YYYY.MM.DD`. Rules never examine it.
pub const DATASET: Dataset = Dataset::new("alerts", None, None);

/// The longest text kept of one field value in an alert.
pub const MAX_FIELD_CHARS: usize = 1024;
/// The cluster's limit on `_id`, in bytes.
const MAX_ID_BYTES: usize = 512;

/// The rules, and how alert documents are written on this cluster.
#[derive(Debug)]
pub struct Alerter {
    pub detector: Detector,
    indices: Indices,
    free_form: FreeForm,
    /// Counts the alerts written and delivers the new ones (`--alert-webhook`).
    written: Arc<Written>,
}

impl Alerter {
    /// `indices` are the sink's (the matched event's index is named in the alert); `written`
    /// is told how each alert was written.
    pub fn new(
        detector: Detector,
        indices: Indices,
        free_form: FreeForm,
        written: Arc<Written>,
    ) -> Self {
        Alerter {
            detector,
            indices,
            free_form,
            written,
        }
    }

    /// The alerts `event` raises (none for an alert).
    pub fn alerts(&self, event: &Event) -> Vec<Event> {
        if event.dataset == DATASET {
            return Vec::new();
        }
        let Some((rules, document)) = self.detector.matching(event) else {
            return Vec::new();
        };
        let now = OffsetDateTime::now_utc();
        rules
            .into_iter()
            .map(|n| {
                let rule = &self.detector.rules()[n];
                let file = self.detector.file(n).display().to_string();
                self.alert(rule, &file, event, &document, now)
            })
            .collect()
    }

    fn alert(
        &self,
        rule: &Rule,
        file: &str,
        event: &Event,
        document: &Value,
        now: OffsetDateTime,
    ) -> Event {
        let index = self.indices.index(event.dataset, event.time);
        let mut fields = Map::new();
        for path in rule.key_fields() {
            let values: Vec<Value> = path
                .values(document)
                .iter()
                .map(|v| Value::String(field_text(v)))
                .collect();
            match values.len() {
                0 => {}
                1 => {
                    fields.insert(
                        path.name().to_string(),
                        values.into_iter().next().expect("one value"),
                    );
                }
                _ => {
                    fields.insert(path.name().to_string(), Value::Array(values));
                }
            }
        }
        let text = summary(rule, event, &index, &fields);
        let fields = match self.free_form {
            FreeForm::Objects | FreeForm::AsWritten => Value::Object(fields),
            FreeForm::Strings => Value::String(Value::Object(fields).to_string()),
        };
        let body = Body {
            timestamp: &event.timestamp,
            detected_at: &format_time(now),
            event: EventPart {
                dataset: event.dataset.name,
                fields: &fields,
                id: &event.id,
                index: &index,
            },
            kind: "match",
            rule: RulePart {
                description: rule.description.as_deref(),
                file,
                id: &rule.id,
                level: rule.level.as_str(),
                tags: &rule.tags,
                title: &rule.title,
            },
            text: &text,
        };
        // Alerts are a kilobyte or two: one allocation, not a series of doublings.
        let mut source = Vec::with_capacity(2048);
        serde_json::to_writer(&mut source, &body).expect("an alert serialises");
        Event {
            id: alert_id(&rule.id, &event.id),
            time: event.time,
            timestamp: event.timestamp.clone(),
            source: source.into(),
            outline: Vec::new(),
            used_fallback_time: event.used_fallback_time,
            dataset: DATASET,
        }
    }
}

/// An alert document, written straight from its parts (no `Value` tree is built for it); its
/// fields are in the order `serde_json` writes an object's keys (sorted).
#[derive(Serialize)]
struct Body<'a> {
    #[serde(rename = "@timestamp")]
    timestamp: &'a str,
    detected_at: &'a str,
    event: EventPart<'a>,
    kind: &'static str,
    rule: RulePart<'a>,
    text: &'a str,
}

/// The `event` of an alert: where the matched event is, and its key fields.
#[derive(Serialize)]
struct EventPart<'a> {
    dataset: &'a str,
    fields: &'a Value,
    id: &'a str,
    index: &'a str,
}

/// The `rule` of an alert.
#[derive(Serialize)]
struct RulePart<'a> {
    description: Option<&'a str>,
    file: &'a str,
    id: &'a str,
    level: &'a str,
    tags: &'a [String],
    title: &'a str,
}

/// Detection as a stage: each event's alerts follow it to the sink, under its ticket.
impl Stage for Alerter {
    fn inspect(&self, pending: &Pending) -> Vec<Pending> {
        self.alerts(&pending.event)
            .into_iter()
            .map(|alert| {
                let mut alert = pending.alongside(alert);
                alert.on_written = Some(self.written.clone());
                alert
            })
            .collect()
    }
}

/// `rule_matches_total{rule_id,level}` at `/metrics`: the events each rule matched.
#[derive(Debug)]
pub struct RuleMatches(pub Arc<Alerter>);

impl Collector for RuleMatches {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        self.0.detector.encode_matches(
            &mut encoder,
            (
                "rule_matches",
                "events a detection rule matched (one alert each, redeliveries included)",
            ),
            |rule| {
                vec![
                    ("rule_id", rule.id.clone()),
                    ("level", rule.level.to_string()),
                ]
            },
        )
    }
}

/// Told how the sink wrote each alert: counts it, and delivers a new one to the webhooks.
#[derive(Debug)]
pub struct Written {
    pub counters: Arc<AlertCounters>,
    /// Where new alerts are delivered (`--alert-webhook`); `None` for alerts delivered when
    /// raised (the silence alarm's).
    pub notifier: Option<Arc<Notifier>>,
}

impl OnWritten for Written {
    fn written(&self, alert: &Event, created: bool) {
        if !created {
            self.counters.alerts_existing.add(1);
            return;
        }
        self.counters.alerts_indexed.add(1);
        if let Some(notifier) = &self.notifier {
            notifier.notify(&alert.source);
        }
    }
}

/// `<rule id>:<event id>`, or its SHA-256 when the cluster would refuse it as too long.
pub fn alert_id(rule: &str, event: &str) -> String {
    let id = format!("{rule}:{event}");
    if id.len() <= MAX_ID_BYTES {
        return id;
    }
    Sha256::digest(id.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A value as the text an alert shows, cut at [`MAX_FIELD_CHARS`].
fn field_text(value: &Value) -> String {
    let text = match scalar_text(value) {
        Some(text) => text.into_owned(),
        None => value.to_string(),
    };
    match text.char_indices().nth(MAX_FIELD_CHARS) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

/// `[high] Title: field=value, field=value (cloudtrail event <id> in <index>)`.
fn summary(rule: &Rule, event: &Event, index: &str, fields: &Map<String, Value>) -> String {
    let shown: Vec<String> = fields
        .iter()
        .take(4)
        .map(|(name, value)| {
            let value = match value {
                Value::String(s) => s.chars().take(120).collect::<String>(),
                other => other.to_string().chars().take(120).collect(),
            };
            format!("{name}={value}")
        })
        .collect();
    let mut text = format!("[{}] {}", rule.level, rule.title);
    if !shown.is_empty() {
        text.push_str(": ");
        text.push_str(&shown.join(", "));
    }
    text.push_str(&format!(
        " ({} event {} in {index})",
        event.dataset.name, event.id
    ));
    text
}

/// The mappings of the alerts indices.
pub fn mappings(free_form: FreeFormMapping) -> Value {
    let mut rule = keywords(&["id", "level", "tags", "file"]);
    rule.insert("title".into(), text_with_keyword());
    rule.insert("description".into(), json!({"type": "text"}));
    let mut event = keywords(&["index", "id", "dataset"]);
    event.insert("fields".into(), free_form.to_json());
    let mut properties = Map::new();
    properties.insert("@timestamp".into(), json!({"type": "date"}));
    properties.insert("detected_at".into(), json!({"type": "date"}));
    properties.insert("kind".into(), keyword());
    properties.insert("text".into(), json!({"type": "text"}));
    properties.insert("rule".into(), object(rule));
    properties.insert("event".into(), object(event));
    let mut silence = keywords(&["after", "source"]);
    silence.insert("since".into(), json!({"type": "date"}));
    properties.insert("silence".into(), object(silence));
    dynamic(properties)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::{load, Level, Loaded};
    use crate::format::cloudtrail::DATASET as CLOUDTRAIL;
    use std::path::PathBuf;

    fn alerter(free_form: FreeForm) -> Alerter {
        let text = "title: Trail stopped\nid: r-1\nlevel: high\ntags: [attack.t1562.008]\nfields: [userIdentity.arn]\nlogsource: {product: aws, service: cloudtrail}\ndetection:\n    s: {eventName: StopLogging}\n    condition: s\n";
        let rule = load::compile_all(text).remove(0).1.unwrap();
        let (detector, _) = Detector::new(
            vec![Loaded {
                rule,
                file: PathBuf::from("rules/stop.yml"),
            }],
            Level::Informational,
        );
        let indices = Indices::new(vec![
            (CLOUDTRAIL, "cloudtrail".into()),
            (DATASET, "cloudtrail-alerts".into()),
        ]);
        let written = Arc::new(Written {
            counters: Arc::default(),
            notifier: None,
        });
        Alerter::new(detector, indices, free_form, written)
    }

    fn event(name: &str) -> Event {
        let time = time::macros::datetime!(2026-12-01 23:59:59 UTC);
        Event {
            id: "ev-1".into(),
            time,
            timestamp: format_time(time),
            source: json!({"@timestamp": format_time(time), "eventName": name, "userIdentity": {"arn": "arn:aws:iam::111122223333:user/x"}})
                .to_string()
                .into_bytes()
                .into(),
            outline: Vec::new(),
            used_fallback_time: false,
            dataset: CLOUDTRAIL,
        }
    }

    #[test]
    fn matches_are_counted_per_rule_at_metrics() {
        let alerter = Arc::new(alerter(FreeForm::Objects));
        let stats = Arc::new(crate::telemetry::Stats::default());
        stats.collect(Arc::new(RuleMatches(alerter.clone())));
        for name in ["StopLogging", "StartLogging", "StopLogging"] {
            alerter.alerts(&event(name));
        }
        let mut text = String::new();
        let registry = crate::telemetry::metrics::registry(stats);
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(
            text.lines()
                .any(|l| l
                    == "cloudtrail_ingest_rule_matches_total{rule_id=\"r-1\",level=\"high\"} 2"),
            "{text}"
        );
    }

    #[test]
    fn a_match_becomes_one_alert_document_per_rule() {
        let alerter = alerter(FreeForm::Objects);
        assert!(alerter.alerts(&event("StartLogging")).is_empty());
        let alerts = alerter.alerts(&event("StopLogging"));
        assert_eq!(alerts.len(), 1);
        let alert = &alerts[0];
        assert_eq!(alert.id, "r-1:ev-1");
        assert_eq!(alert.dataset, DATASET);
        assert_eq!(
            alert.time,
            event("x").time,
            "the event's day, whenever it is detected"
        );
        let doc: Value = serde_json::from_slice(&alert.source).unwrap();
        assert_eq!(doc["rule"]["level"], "high");
        assert_eq!(doc["rule"]["tags"], json!(["attack.t1562.008"]));
        assert_eq!(doc["rule"]["file"], "rules/stop.yml");
        assert_eq!(doc["event"]["index"], "cloudtrail-2026.12.01");
        assert_eq!(
            doc["event"]["fields"]["userIdentity.arn"],
            "arn:aws:iam::111122223333:user/x"
        );
        assert_eq!(doc["event"]["fields"]["eventName"], "StopLogging");
        assert_eq!(
            doc["@timestamp"], "2026-12-01T23:59:59Z",
            "the event's @timestamp"
        );
        assert!(doc["text"].as_str().unwrap().starts_with("[high] Trail stopped: eventName=StopLogging, userIdentity.arn=arn:aws:iam::111122223333:user/x (cloudtrail event ev-1 in cloudtrail-2026.12.01)"), "{}", doc["text"]);
        assert!(alerter.alerts(alert).is_empty(), "alerts raise no alerts");
    }

    #[test]
    fn fields_are_one_string_where_the_cluster_has_no_flattened_type() {
        let alerts = alerter(FreeForm::Strings).alerts(&event("StopLogging"));
        let doc: Value = serde_json::from_slice(&alerts[0].source).unwrap();
        let fields: Value = serde_json::from_str(doc["event"]["fields"].as_str().unwrap()).unwrap();
        assert_eq!(fields["eventName"], "StopLogging");
    }

    #[test]
    fn long_ids_and_values_are_cut_to_what_the_cluster_takes() {
        assert_eq!(alert_id("r", "e"), "r:e");
        let long = alert_id("r", &"e".repeat(600));
        assert_eq!(long.len(), 64);
        let text = field_text(&json!("x".repeat(5000)));
        assert_eq!(text.chars().count(), MAX_FIELD_CHARS + 1);
        assert_eq!(field_text(&json!({"a": 1})), r#"{"a":1}"#);
        assert_eq!(field_text(&json!(5)), "5");
    }
}
