//! Drop: Sigma rules whose matching events are not indexed (`--drop-rules`), to cut the cost
//! of the noisiest calls without hiding them from detection.
//!
//! A [`Dropper`] is a [`Stage`] placed after the detection one, so detection rules have seen
//! every event, dropped or not, when it decides. A dropped event settles as written (its
//! message is deleted, its offset committed, its webhook body answered, its checkpoint moved)
//! and the alerts it raised are indexed all the same. Drop rules use the same engine, the same
//! rule index and the same loading as detection rules (`rules check` reads them alike); their
//! Sigma level does not matter. `events_dropped` counts the events dropped, and
//! `rule_drops_total{rule_id}` at `/metrics` the events each drop rule matched.

use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;

use super::detector::Detector;
use crate::pipeline::{Pending, Stage};

crate::telemetry::counters! {
    /// What the drop rules kept out of the cluster.
    pub struct DropCounters {
        events_dropped: "events a drop rule matched, settled without being indexed (detection rules saw them)",
    }
}

/// The drop rules, as a stage.
#[derive(Debug)]
pub struct Dropper {
    pub detector: Detector,
    pub counters: Arc<DropCounters>,
}

impl Stage for Dropper {
    fn inspect(&self, _pending: &Pending) -> Vec<Pending> {
        Vec::new()
    }

    fn drops(&self, pending: &Pending) -> bool {
        let dropped = !self.detector.examine(&pending.event).is_empty();
        if dropped {
            self.counters.events_dropped.add(1);
        }
        dropped
    }
}

/// `rule_drops_total{rule_id}` at `/metrics`: the events each drop rule matched.
#[derive(Debug)]
pub struct RuleDrops(pub Arc<Dropper>);

impl Collector for RuleDrops {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        self.0.detector.encode_matches(
            &mut encoder,
            (
                "rule_drops",
                "events a drop rule matched, not indexed (redeliveries included)",
            ),
            |rule| vec![("rule_id", rule.id.clone())],
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::{load, Level, Loaded};
    use crate::format::cloudtrail::DATASET;
    use crate::pipeline::{Event, Origin, Ticket};

    fn dropper() -> Dropper {
        let text = "title: service KMS\nid: d-1\nlogsource: {product: aws, service: cloudtrail}\ndetection:\n    s: {eventName: Decrypt, userIdentity.type: AWSService}\n    condition: s\n";
        let rule = load::compile_all(text).remove(0).1.unwrap();
        let (detector, _) = Detector::new(
            vec![Loaded {
                rule,
                file: "drop.yml".into(),
            }],
            Level::Informational,
        );
        Dropper {
            detector,
            counters: Arc::default(),
        }
    }

    fn pending(name: &str, kind: &str) -> Pending {
        let time = time::macros::datetime!(2026-12-01 00:00:00 UTC);
        let source = serde_json::json!({"eventName": name, "userIdentity": {"type": kind}});
        let event = Event {
            id: name.into(),
            time,
            timestamp: crate::pipeline::format_time(time),
            source: source.to_string().into_bytes().into(),
            outline: Vec::new(),
            used_fallback_time: false,
            dataset: DATASET,
        };
        let origin = Arc::new(Origin::new("o", serde_json::json!({})));
        Pending::new(event, origin, Ticket::new().claim())
    }

    #[test]
    fn matching_events_are_dropped_and_counted_per_rule() {
        let dropper = Arc::new(dropper());
        let stats = Arc::new(crate::telemetry::Stats::default());
        stats.collect(Arc::new(RuleDrops(dropper.clone())));
        for (name, kind, dropped) in [
            ("Decrypt", "AWSService", true),
            ("Decrypt", "IAMUser", false),
            ("Decrypt", "AWSService", true),
        ] {
            let pending = pending(name, kind);
            assert_eq!(dropper.drops(&pending), dropped, "{name} by {kind}");
            assert!(dropper.inspect(&pending).is_empty());
            pending.settle(Ok(()));
        }
        assert_eq!(dropper.counters.events_dropped.get(), 2);
        let mut text = String::new();
        let registry = crate::telemetry::metrics::registry(stats);
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(
            text.lines()
                .any(|l| l == "cloudtrail_ingest_rule_drops_total{rule_id=\"d-1\"} 2"),
            "{text}"
        );
    }
}
