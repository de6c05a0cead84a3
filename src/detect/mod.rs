//! Detect: Sigma rules on every event as it passes, between the format and the sink.
//!
//! - [`load`]: `--rules` files and folders -> compiled [`rule::Rule`]s, and the documents left
//!   out with their reasons;
//! - [`rule`], [`search`], [`condition`], [`pattern`], [`field`]: the Sigma rule format (the
//!   detection, its modifiers and condition, string values with wildcards, dotted field
//!   names into nested JSON);
//! - [`index`]: which rules can match an event, read from its bytes without parsing it;
//! - [`alert`]: a match -> the alert document; [`deliver`]: new alerts to the
//!   `--alert-webhook`s; [`silence`]: the `--alert-if-silent` alarm.
//!
//! A [`Detector`] holds the rules of each dataset (picked by their `logsource`: CloudTrail is
//! `product: aws, service: cloudtrail`, Confluent Cloud `product: confluent, service: audit`,
//! Konnect `product: kong, service: konnect`; rules that name no product and no service apply
//! to every dataset) and answers, for one event, which rules match it. Rules see the event's
//! document as it is indexed (`@timestamp` included).

pub mod alert;
pub mod condition;
pub mod deliver;
pub mod field;
pub mod index;
pub mod load;
pub mod pattern;
pub mod rule;
pub mod search;
pub mod silence;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use serde_json::Value;

use crate::pipeline::{Dataset, Event};
use index::RuleIndex;
pub use load::{Loaded, Skipped};
pub use rule::{Level, Rule};

/// The datasets rules can apply to, with the `logsource` that names each.
pub const SOURCES: [(Dataset, Option<&str>, Option<&str>); 4] = [
    (Dataset::CloudTrail, Some("aws"), Some("cloudtrail")),
    (Dataset::Confluent, Some("confluent"), Some("audit")),
    (Dataset::Konnect, Some("kong"), Some("konnect")),
    (Dataset::Json, None, None),
];

/// Whether a rule with this `logsource` applies to `dataset`'s events.
pub fn applies(source: &rule::LogSource, dataset: Dataset) -> bool {
    let Some((_, product, service)) = SOURCES.iter().find(|(d, _, _)| *d == dataset) else {
        return false;
    };
    let fits = |wanted: &Option<String>, offered: &Option<&str>| match wanted {
        None => true,
        Some(wanted) => offered.is_some_and(|o| o == wanted),
    };
    fits(&source.product, product) && fits(&source.service, service)
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
            } else if !SOURCES.iter().any(|(d, _, _)| applies(&rule.logsource, *d)) {
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
        let indices = SOURCES
            .iter()
            .map(|(dataset, _, _)| {
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
        index.candidates(&event.source, &mut candidates);
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

/// `destinations` plus `<index-prefix>-alerts` when rules or the silence alarm are configured.
pub fn destinations(
    config: &crate::config::DetectConfig,
    index: &crate::config::IndexConfig,
    mut destinations: Vec<crate::sink::elasticsearch::Destination>,
) -> Vec<crate::sink::elasticsearch::Destination> {
    if config.enabled() {
        destinations.push(crate::sink::elasticsearch::Destination {
            dataset: Dataset::Alerts,
            prefix: format!("{}-alerts", index.prefix()),
            mappings: alert::mappings,
        });
    }
    destinations
}

/// `events`, with every event examined by `detector`'s rules (when there are rules), whose
/// alerts go to the sink's `destinations` written the `free_form` way and to the
/// `--alert-webhook`s; `stats` reports the matches per rule. With `--alert-if-silent`, a
/// watcher raises the silence alarm for `source` (named in its alerts).
pub fn attach(
    events: crate::pipeline::EventSender,
    detector: Option<Detector>,
    config: &crate::config::DetectConfig,
    source: &str,
    destinations: &[crate::sink::elasticsearch::Destination],
    free_form: crate::format::FreeForm,
    stats: &Arc<crate::telemetry::Stats>,
) -> (crate::pipeline::EventSender, Alerting) {
    let (notifier, delivery) = match deliver::start(&config.alert_webhooks, stats) {
        Some((notifier, delivery)) => (Some(notifier), Some(delivery)),
        None => (None, None),
    };
    let events = match detector {
        Some(detector) => {
            let indices = crate::sink::elasticsearch::indices(destinations);
            let mut alerter = alert::Alerter::new(detector, indices, free_form);
            alerter.notifier = notifier.clone();
            let alerter = Arc::new(alerter);
            stats.watch_rules(alerter.clone());
            events.with_alerter(alerter)
        }
        None => events,
    };
    let watcher = config.alert_if_silent.map(|after| {
        let stop = tokio_util::sync::CancellationToken::new();
        let watch = silence::Watch {
            after,
            source: source.to_string(),
            stats: stats.clone(),
            events: events.clone(),
            notifier,
        };
        (tokio::spawn(watch.run(stop.clone())), stop)
    });
    (events, Alerting { delivery, watcher })
}

/// The background work of alerting: the silence watcher and the webhooks' delivery.
#[derive(Debug)]
pub struct Alerting {
    delivery: Option<deliver::Delivery>,
    watcher: Option<(
        tokio::task::JoinHandle<()>,
        tokio_util::sync::CancellationToken,
    )>,
}

impl Alerting {
    /// Stops the silence watcher, which then lets go of its event sender: call it before
    /// waiting for the sink to finish.
    pub async fn quiet(&mut self) {
        if let Some((task, stop)) = self.watcher.take() {
            stop.cancel();
            task.await.expect("the silence watcher does not panic");
        }
    }

    /// After the sink finished: gives the alerts still queued for the webhooks their last
    /// attempt.
    pub async fn finish(mut self) {
        self.quiet().await;
        if let Some(delivery) = self.delivery.take() {
            delivery.finish().await;
        }
    }
}

/// Why the rules stop the start.
#[derive(Debug, thiserror::Error)]
pub enum RulesError {
    #[error(transparent)]
    Load(#[from] load::LoadError),
    #[error("--rules-strict: {} rule document(s) cannot be used: {}", .0.len(), .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Strict(Vec<Skipped>),
}

/// The detector `--rules` asks for (`None` without rules). Rules that cannot be used are
/// logged by file and reason and left out, or, with `--rules-strict`, stop the start; rules
/// for none of the sources, or below `--alert-min-level`, are logged and left out.
pub fn from_config(config: &crate::config::DetectConfig) -> Result<Option<Detector>, RulesError> {
    if config.rules.is_empty() {
        return Ok(None);
    }
    let (loaded, failed) = load::load(&config.rules)?;
    if config.rules_strict && !failed.is_empty() {
        return Err(RulesError::Strict(failed));
    }
    for skipped in &failed {
        tracing::warn!(file = %skipped.file.display(), document = skipped.document, reason = %skipped.reason, "rule cannot be used; left out");
    }
    let (detector, unused) = Detector::new(loaded, config.alert_min_level);
    for skipped in &unused {
        tracing::info!(file = %skipped.file.display(), reason = %skipped.reason, "rule not used");
    }
    for dataset in SOURCES.iter().map(|(d, _, _)| *d) {
        if let Some(index) = detector.index(dataset).filter(|i| !i.is_empty()) {
            tracing::info!(
                dataset = dataset_name(dataset),
                rules = index.rules(),
                indexed_by = %index.paths().iter().map(|p| p.name()).collect::<Vec<_>>().join(","),
                read_for_every_event = index.unpinned().len(),
                "rules loaded"
            );
        }
    }
    Ok(Some(detector))
}

/// `cloudtrail-ingest rules check`: lists what loads and what does not, with why; `false`
/// when a rule document cannot be used.
pub fn check(
    paths: &[PathBuf],
    min_level: Level,
    out: &mut dyn std::io::Write,
) -> std::io::Result<bool> {
    let (loaded, failed) = match load::load(paths) {
        Ok(found) => found,
        Err(err) => {
            writeln!(out, "FAILED  {err}")?;
            return Ok(false);
        }
    };
    let (detector, unused) = Detector::new(loaded, min_level);
    for (n, rule) in detector.rules().iter().enumerate() {
        let datasets: Vec<String> = SOURCES
            .iter()
            .filter_map(|(d, _, _)| {
                let index = detector.index(*d)?;
                let how = if index.unpinned().contains(&n) {
                    "read for every event".to_string()
                } else {
                    let path = index.path_of(n)?;
                    format!("indexed by {}", path.name())
                };
                applies(&rule.logsource, *d).then(|| format!("{} ({how})", dataset_name(*d)))
            })
            .collect();
        let level = if rule.level_assumed {
            format!("{} (no level given)", rule.level)
        } else {
            rule.level.to_string()
        };
        writeln!(out, "LOADED  {} [{level}] {}", rule.id, rule.title)?;
        writeln!(
            out,
            "        {}: {}",
            detector.file(n).display(),
            datasets.join(", ")
        )?;
    }
    for skipped in &unused {
        writeln!(out, "UNUSED  {skipped}")?;
    }
    for skipped in &failed {
        writeln!(out, "FAILED  {skipped}")?;
    }
    writeln!(
        out,
        "{} loaded, {} not used, {} cannot be used",
        detector.rules().len(),
        unused.len(),
        failed.len()
    )?;
    Ok(failed.is_empty())
}

/// The dataset's name in logs, metrics and alerts.
pub fn dataset_name(dataset: Dataset) -> &'static str {
    match dataset {
        Dataset::CloudTrail => "cloudtrail",
        Dataset::Confluent => "confluent",
        Dataset::Konnect => "konnect",
        Dataset::Json => "json",
        Dataset::Alerts => "alerts",
    }
}

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
            source: source.as_bytes().to_vec(),
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
        assert_eq!(ids(Dataset::CloudTrail), ["aws", "aws-any", "generic"]);
        assert_eq!(ids(Dataset::Confluent), ["confluent", "generic"]);
        assert_eq!(ids(Dataset::Konnect), ["generic"]);
        assert_eq!(ids(Dataset::Json), ["generic"]);
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
        assert!(detector.examine(&event(Dataset::Json, "x {")).is_empty());
        assert_eq!(detector.examine(&event(Dataset::Json, r#"{"a":"x"}"#)), [0]);
    }
}
