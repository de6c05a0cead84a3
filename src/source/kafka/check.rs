//! `cloudtrail-ingest kafka check`: the brokers, the credentials, the topics and the group,
//! verified without consuming (the group is described, never joined, so no rebalance is
//! caused for the workers that run).

use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::Consumer;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

use super::{KafkaConsumer, KafkaError};
use crate::check::{Report, Verdict};
use crate::config::KafkaConfig;
use crate::telemetry::Stats;

const TIMEOUT: Duration = Duration::from_secs(15);

/// Fails unless every topic exists with at least one partition.
pub async fn topics_exist(
    consumer: &Arc<KafkaConsumer>,
    topics: &[String],
    timeout: Duration,
) -> Result<(), KafkaError> {
    let consumer = consumer.clone();
    let topics = topics.to_vec();
    tokio::task::spawn_blocking(move || {
        let metadata = consumer
            .fetch_metadata(None, timeout)
            .map_err(|e| KafkaError(format!("the brokers did not answer with metadata: {e} (check --kafka-brokers, the security protocol and the credentials)")))?;
        for topic in &topics {
            let found = metadata
                .topics()
                .iter()
                .find(|t| t.name() == topic && t.error().is_none() && !t.partitions().is_empty());
            if found.is_none() {
                return Err(KafkaError(format!(
                    "topic {topic} does not exist, or these credentials may not describe it"
                )));
            }
        }
        Ok(())
    })
    .await
    .expect("the metadata request does not panic")
}

/// `brokers`, `topics` and `group`, reported into `report`.
pub async fn run(config: &KafkaConfig, report: &mut Report) {
    let consumer = match super::consumer(config, Arc::new(Stats::default())) {
        Ok((consumer, _)) => Arc::new(consumer),
        Err(err) => {
            report.add("brokers", Verdict::Fail(err.to_string()));
            report.add("topics", Verdict::Skip("no consumer".into()));
            report.add("group", Verdict::Skip("no consumer".into()));
            return;
        }
    };
    let topics = config.topics();
    let group = config.kafka_group_id.clone();
    let verdicts = tokio::task::spawn_blocking(move || checks(&consumer, &topics, &group))
        .await
        .expect("the checks do not panic");
    for (name, verdict) in verdicts {
        report.add(name, verdict);
    }
}

fn checks(
    consumer: &KafkaConsumer,
    topics: &[String],
    group: &str,
) -> Vec<(&'static str, Verdict)> {
    let metadata = match consumer.fetch_metadata(None, TIMEOUT) {
        Ok(metadata) => metadata,
        Err(err) => {
            return vec![
                ("brokers", Verdict::Fail(format!("no metadata from the brokers within {TIMEOUT:?}: {err} (check --kafka-brokers, --kafka-security-protocol and the credentials)"))),
                ("topics", Verdict::Skip("the brokers are unusable".into())),
                ("group", Verdict::Skip("the brokers are unusable".into())),
            ];
        }
    };
    let mut out = vec![(
        "brokers",
        Verdict::Pass(format!(
            "{} broker(s) answer with these credentials",
            metadata.brokers().len()
        )),
    )];
    let mut list = TopicPartitionList::new();
    let mut problems = Vec::new();
    let mut found = Vec::new();
    for topic in topics {
        match metadata.topics().iter().find(|t| t.name() == topic) {
            Some(t) if t.error().is_none() && !t.partitions().is_empty() => {
                found.push(format!("{topic} ({} partitions)", t.partitions().len()));
                for p in t.partitions() {
                    list.add_partition(topic, p.id());
                }
            }
            Some(t) => problems.push(format!("{topic}: {:?}", t.error())),
            None => problems.push(format!(
                "{topic} does not exist, or these credentials may not describe it"
            )),
        }
    }
    if problems.is_empty() {
        out.push(("topics", Verdict::Pass(found.join(", "))));
    } else {
        out.push(("topics", Verdict::Fail(problems.join("; "))));
    }
    let group_verdict = match consumer.fetch_group_list(Some(group), TIMEOUT) {
        Err(err) => Verdict::Fail(format!("describing group {group} failed: {err}")),
        Ok(groups) => {
            let state = groups
                .groups()
                .first()
                .map(|g| format!("state {}, {} member(s)", g.state(), g.members().len()))
                .unwrap_or_else(|| "not known to the brokers yet".into());
            let committed = if list.count() == 0 {
                String::new()
            } else {
                match consumer.committed_offsets(list, TIMEOUT) {
                    Ok(offsets) => {
                        let mut lag = 0i64;
                        let mut any = false;
                        for e in offsets.elements() {
                            if let Offset::Offset(committed) = e.offset() {
                                any = true;
                                if let Ok((_, high)) =
                                    consumer.fetch_watermarks(e.topic(), e.partition(), TIMEOUT)
                                {
                                    lag += (high - committed).max(0);
                                }
                            }
                        }
                        if any {
                            format!("; committed offsets found, {lag} record(s) behind")
                        } else {
                            "; no committed offsets yet (a first run starts from --kafka-start-from)".into()
                        }
                    }
                    Err(err) => format!("; its committed offsets could not be read: {err}"),
                }
            };
            Verdict::Pass(format!("{group}: {state}{committed}"))
        }
    };
    out.push(("group", group_verdict));
    out
}
