//! Detector: the rules in use, by dataset, and which of them match one event.
//!
//! Rules are picked for a dataset by their `logsource`, against the product and service the
//! dataset declares; a rule that names no product and no service applies to every dataset.
//! For each dataset a [`RuleIndex`] finds the candidate rules from the event's bytes, and
//! only when there are some is the event parsed and the candidates evaluated.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::Value;

use super::index::RuleIndex;
use super::load::{Loaded, Skipped};
use super::rule::{self, Level, Rule};
use crate::format::DATASETS;
use crate::pipeline::{Dataset, Event};

/// Whether a rule with this `logsource` applies to `dataset`'s events.
pub fn applies(source: &rule::LogSource, dataset: Dataset) -> bool {
    let fits = |wanted: &Option<String>, offered: Option<&str>| match wanted {
        None => true,
        Some(wanted) => offered.is_some_and(|o| o == wanted),
    };
    fits(&source.product, dataset.product) && fits(&source.service, dataset.service)
}

/// The rules in use, by dataset, with a count of matches per rule.
#[derive(Debug)]
pub struct Detector {
    rules: Vec<Rule>,
    files: Vec<PathBuf>,
    matches: Vec<AtomicU64>,
    indices: Vec<(Dataset, RuleIndex)>,
}

impl Detector {
    /// Uses the `loaded` rules at `min_level` or above that apply to at least one dataset;
    /// returns the others (below the level, or for no dataset here) as skipped, with why.
    pub fn new(loaded: Vec<Loaded>, min_level: Level) -> (Detector, Vec<Skipped>) {
        let mut rules = Vec::new();
        let mut files = Vec::new();
        let mut skipped = Vec::new();
        for Loaded { rule, file } in loaded {
            let skip = |reason: String| Skipped {
                file: file.clone(),
                document: None,
                reason,
            };
            if rule.level < min_level {
                skipped.push(skip(format!(
                    "{}: level {} is below --alert-min-level {min_level}",
                    rule.id, rule.level
                )));
            } else if !DATASETS.iter().any(|d| applies(&rule.logsource, *d)) {
                skipped.push(skip(format!(
                    "{}: its logsource ({}) is none of this tool's sources",
                    rule.id,
                    describe(&rule.logsource)
                )));
            } else {
                rules.push(rule);
                files.push(file);
            }
        }
        let indices = DATASETS
            .iter()
            .map(|dataset| {
                let index = RuleIndex::new(
                    rules
                        .iter()
                        .enumerate()
                        .filter(|(_, r)| applies(&r.logsource, *dataset)),
                );
                (*dataset, index)
            })
            .collect();
        let matches = rules.iter().map(|_| AtomicU64::new(0)).collect();
        (
            Detector {
                rules,
                files,
                matches,
                indices,
            },
            skipped,
        )
    }

    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// The file rule `n` came from.
    pub fn file(&self, n: usize) -> &std::path::Path {
        &self.files[n]
    }

    /// Matches of rule `n` so far.
    pub fn matches_of(&self, n: usize) -> u64 {
        self.matches[n].load(Ordering::Relaxed)
    }

    /// Encodes the counter family `name` (`help`): each rule's matches, labelled by `labels`.
    pub fn encode_matches(
        &self,
        encoder: &mut prometheus_client::encoding::DescriptorEncoder,
        (name, help): (&str, &str),
        labels: impl Fn(&Rule) -> Vec<(&'static str, String)>,
    ) -> Result<(), std::fmt::Error> {
        use prometheus_client::encoding::EncodeMetric;
        use prometheus_client::metrics::{counter::ConstCounter, MetricType};
        let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
        for (n, rule) in self.rules().iter().enumerate() {
            ConstCounter::new(self.matches_of(n)).encode(family.encode_family(&labels(rule))?)?;
        }
        Ok(())
    }

    pub fn index(&self, dataset: Dataset) -> Option<&RuleIndex> {
        self.indices
            .iter()
            .find(|(d, _)| *d == dataset)
            .map(|(_, index)| index)
    }

    /// The rules (by position) that match `event`, counted.
    pub fn examine(&self, event: &Event) -> Vec<usize> {
        self.matching(event)
            .map(|(rules, _)| rules)
            .unwrap_or_default()
    }

    /// [`Detector::examine`], with the event parsed when some rule matched.
    pub fn matching(&self, event: &Event) -> Option<(Vec<usize>, Value)> {
        let index = self.index(event.dataset)?;
        let mut candidates = Vec::new();
        index.candidates(&event.source, &event.outline, &mut candidates);
        if candidates.is_empty() {
            return None;
        }
        candidates.sort_unstable();
        candidates.dedup();
        let document: Value = match serde_json::from_slice(&event.source) {
            Ok(document) => document,
            Err(err) => {
                tracing::debug!(id = %event.id, error = %err, "event is not JSON; no rule is evaluated");
                return None;
            }
        };
        candidates.retain(|n| self.rules[*n].matches(&document));
        if candidates.is_empty() {
            return None;
        }
        for n in &candidates {
            self.matches[*n].fetch_add(1, Ordering::Relaxed);
        }
        Some((candidates, document))
    }
}

/// A `logsource` in a few words, for the reason a rule is not used.
fn describe(source: &rule::LogSource) -> String {
    let parts: Vec<String> = [
        ("product", &source.product),
        ("service", &source.service),
        ("category", &source.category),
    ]
    .iter()
    .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}: {v}")))
    .collect();
    if parts.is_empty() {
        "none".to_string()
    } else {
        parts.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::load;
    use std::path::Path;

    fn loaded(text: &str) -> Loaded {
        let (_, rule) = load::compile_all(text).remove(0);
        Loaded {
            rule: rule.unwrap(),
            file: PathBuf::from("test.yml"),
        }
    }

    fn event(dataset: Dataset, source: &str) -> Event {
        Event {
            id: "e".into(),
            time: time::OffsetDateTime::UNIX_EPOCH,
            timestamp: String::new(),
            source: source.as_bytes().to_vec().into(),
            outline: Vec::new(),
            used_fallback_time: false,
            dataset,
        }
    }

    #[test]
    fn rules_apply_by_logsource_and_level() {
        let rule = |id: &str, logsource: &str, level: &str| {
            loaded(&format!(
                "title: {id}\nid: {id}\nlevel: {level}\nlogsource: {logsource}\ndetection:\n    s: {{eventName: X}}\n    condition: s\n"
            ))
        };
        let (detector, skipped) = Detector::new(
            vec![
                rule("aws", "{product: aws, service: cloudtrail}", "high"),
                rule("aws-any", "{product: aws}", "medium"),
                rule(
                    "confluent",
                    "{product: confluent, service: audit}",
                    "critical",
                ),
                rule("generic", "{category: anything}", "low"),
                rule("windows", "{product: windows}", "high"),
                rule("quiet", "{product: aws}", "informational"),
            ],
            Level::Low,
        );
        let ids = |dataset| -> Vec<&str> {
            detector
                .examine(&event(dataset, r#"{"eventName":"x"}"#))
                .into_iter()
                .map(|n| detector.rules()[n].id.as_str())
                .collect()
        };
        assert_eq!(
            ids(crate::format::cloudtrail::DATASET),
            ["aws", "aws-any", "generic"]
        );
        assert_eq!(
            ids(crate::format::confluent::DATASET),
            ["confluent", "generic"]
        );
        assert_eq!(ids(crate::format::konnect::DATASET), ["generic"]);
        assert_eq!(ids(crate::format::json::DATASET), ["generic"]);
        let reasons: Vec<&str> = skipped.iter().map(|s| s.reason.as_str()).collect();
        assert_eq!(reasons.len(), 2, "{reasons:?}");
        assert!(
            reasons[0].contains("windows") && reasons[0].contains("none of this tool's sources")
        );
        assert!(reasons[1].contains("below --alert-min-level low"));
        assert_eq!(detector.matches_of(0), 1);
        assert_eq!(detector.file(0), Path::new("test.yml"));
    }

    #[test]
    fn an_event_that_is_not_json_matches_nothing() {
        let (detector, _) = Detector::new(
            vec![loaded(
                "title: t\ndetection:\n    s: [x]\n    condition: s\n",
            )],
            Level::Informational,
        );
        assert!(detector
            .examine(&event(crate::format::json::DATASET, "x {"))
            .is_empty());
        assert_eq!(
            detector.examine(&event(crate::format::json::DATASET, r#"{"a":"x"}"#)),
            [0]
        );
    }
}
