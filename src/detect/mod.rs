//! Detect: Sigma rules on every event as it passes, between the format and the sink.
//!
//! - [`load`]: `--rules` files and folders -> compiled [`rule::Rule`]s, and the documents left
//!   out with their reasons;
//! - [`rule`], [`search`], [`condition`], [`pattern`], [`field`]: the Sigma rule format (the
//!   detection, its modifiers and condition, string values with wildcards, dotted field
//!   names into nested JSON);
//! - [`index`]: which rules can match an event, read from its bytes without parsing it;
//! - [`alert`]: a match -> the alert document; [`deliver`]: new alerts to the
//!   `--alert-webhook`s; [`silence`]: the `--alert-if-silent` alarm;
//! - [`drop`]: `--drop-rules`, whose matching events are not indexed.
//!
//! A [`Detector`] holds the rules of each dataset (picked by their `logsource`, against the
//! product and service each format's [`Dataset`] declares: CloudTrail is `product: aws,
//! service: cloudtrail`, Confluent Cloud `product: confluent, service: audit`, Konnect
//! `product: kong, service: konnect`; rules that name no product and no service apply to every
//! dataset) and answers, for one event, which rules match it. Rules see the event's document
//! as it is indexed (`@timestamp` included). The runtime places the [`alert::Alerter`] as a
//! [`crate::pipeline::Stage`] between the formats and the sink ([`attach`]).

pub mod alert;
pub mod condition;
pub mod deliver;
pub mod detector;
pub mod drop;
pub mod field;
pub mod index;
pub mod load;
pub mod pattern;
pub mod rule;
pub mod search;
pub mod silence;

use std::path::PathBuf;
use std::sync::Arc;

use crate::config::DetectConfig;
use crate::format::{Destination, FreeForm, DATASETS};
use crate::pipeline::EventSender;
use crate::telemetry::Stats;
pub use detector::{applies, Detector};
pub use load::{Loaded, Skipped};
pub use rule::{Level, Rule};

/// `destinations` plus `<index-prefix>-alerts` when rules or the silence alarm are configured.
pub fn destinations(
    config: &DetectConfig,
    index_prefix: &str,
    mut destinations: Vec<Destination>,
) -> Vec<Destination> {
    if config.enabled() {
        destinations.push(Destination::new(
            alert::DATASET,
            format!("{index_prefix}-alerts"),
            alert::mappings,
        ));
    }
    destinations
}

/// The rules of a run: detection rules (`--rules`) and drop rules (`--drop-rules`), each
/// `None` when not given.
#[derive(Debug, Default)]
pub struct Detectors {
    pub rules: Option<Detector>,
    pub drops: Option<Detector>,
}

/// `events`, with every event examined by the detection rules (when there are any), whose
/// alerts go to the sink's `destinations` written the `free_form` way and to the
/// `--alert-webhook`s, then by the drop rules; `stats` reports the matches per rule. With
/// `--alert-if-silent`, a watcher raises the silence alarm for `source` (named in its
/// alerts).
pub fn attach(
    events: EventSender,
    detectors: Detectors,
    config: &DetectConfig,
    source: &str,
    destinations: &[Destination],
    free_form: FreeForm,
    stats: &Arc<Stats>,
) -> (EventSender, Alerting) {
    stats.counters::<alert::AlertCounters>();
    stats.counters::<deliver::DeliveryCounters>();
    let (notifier, delivery) = match deliver::start(&config.alert_webhooks, stats) {
        Some((notifier, delivery)) => (Some(notifier), Some(delivery)),
        None => (None, None),
    };
    let events = match detectors.rules {
        Some(detector) => {
            let indices = crate::format::indices(destinations);
            let written = Arc::new(alert::Written {
                counters: stats.counters(),
                notifier: notifier.clone(),
            });
            let alerter = Arc::new(alert::Alerter::new(detector, indices, free_form, written));
            stats.collect(Arc::new(alert::RuleMatches(alerter.clone())));
            events.through(alerter)
        }
        None => events,
    };
    stats.counters::<drop::DropCounters>();
    let events = match detectors.drops {
        Some(detector) => {
            let dropper = Arc::new(drop::Dropper {
                detector,
                counters: stats.counters(),
            });
            stats.collect(Arc::new(drop::RuleDrops(dropper.clone())));
            events.through(dropper)
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

/// The detection rules `--rules` asks for and the drop rules of `--drop-rules`. Rules that
/// cannot be used are logged by file and reason and left out, or, with `--rules-strict`,
/// stop the start; rules for none of the sources, or detection rules below
/// `--alert-min-level`, are logged and left out. A drop rule's level does not matter.
pub fn from_config(config: &DetectConfig) -> Result<Detectors, RulesError> {
    Ok(Detectors {
        rules: detector(&config.rules, config, config.alert_min_level, "rules")?,
        drops: detector(
            &config.drop_rules,
            config,
            Level::Informational,
            "drop rules",
        )?,
    })
}

/// The detector of the rules at `paths` (`None` without any), `what` naming them in logs.
fn detector(
    paths: &[PathBuf],
    config: &DetectConfig,
    min_level: Level,
    what: &str,
) -> Result<Option<Detector>, RulesError> {
    if paths.is_empty() {
        return Ok(None);
    }
    let (loaded, failed) = load::load(paths)?;
    if config.rules_strict && !failed.is_empty() {
        return Err(RulesError::Strict(failed));
    }
    for skipped in &failed {
        tracing::warn!(file = %skipped.file.display(), document = skipped.document, reason = %skipped.reason, what, "rule cannot be used; left out");
    }
    let (detector, unused) = Detector::new(loaded, min_level);
    for skipped in &unused {
        tracing::info!(file = %skipped.file.display(), reason = %skipped.reason, what, "rule not used");
    }
    for dataset in DATASETS {
        if let Some(index) = detector.index(dataset).filter(|i| !i.is_empty()) {
            tracing::info!(
                dataset = dataset.name,
                what,
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
        let datasets: Vec<String> = DATASETS
            .iter()
            .filter_map(|d| {
                let index = detector.index(*d)?;
                let how = if index.unpinned().contains(&n) {
                    "read for every event".to_string()
                } else {
                    let path = index.path_of(n)?;
                    format!("indexed by {}", path.name())
                };
                applies(&rule.logsource, *d).then(|| format!("{} ({how})", d.name))
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
