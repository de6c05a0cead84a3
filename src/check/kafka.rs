//! `cloudtrail-ingest kafka check`: the cluster, then the brokers, the credentials, the
//! topics and the group, verified without consuming (the group is described, never joined,
//! so no rebalance is caused for the workers that run).

use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::Consumer;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

use super::cluster::cluster_checks;
use super::report::{Report, Verdict};
use crate::config::{KafkaCommand, KafkaConfig};
use crate::sink::elasticsearch::Cluster;
use crate::source::kafka::{self, Kafka, KafkaConsumer};
use crate::source::Source;
use crate::telemetry::Stats;

const TIMEOUT: Duration = Duration::from_secs(15);

/// The checks of the Kafka source; returns whether none failed.
pub async fn run(command: &KafkaCommand, cluster: &Cluster) -> bool {
    let mut report = Report::default();
    let source = Kafka::new(command, None).expect("the Kafka source needs nothing more");
    cluster_checks(
        &mut report,
        cluster,
        &command.shared,
        &source.destinations(),
    )
    .await;
    consumer_checks(&command.kafka, &mut report).await;
    report.passed()
}

/// `brokers`, `topics` and `group`, reported into `report`.
async fn consumer_checks(config: &KafkaConfig, report: &mut Report) {
    let consumer = match kafka::consumer(config, Arc::new(Stats::default())) {
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
    out.push(("group", group_verdict(consumer, group, list)));
    out
}

/// `group`: its state and members, and how far behind its committed offsets are on
/// `partitions`.
fn group_verdict(consumer: &KafkaConsumer, group: &str, partitions: TopicPartitionList) -> Verdict {
    match consumer.fetch_group_list(Some(group), TIMEOUT) {
        Err(err) => Verdict::Fail(format!("describing group {group} failed: {err}")),
        Ok(groups) => {
            let state = groups
                .groups()
                .first()
                .map(|g| format!("state {}, {} member(s)", g.state(), g.members().len()))
                .unwrap_or_else(|| "not known to the brokers yet".into());
            let committed = if partitions.count() == 0 {
                String::new()
            } else {
                match consumer.committed_offsets(partitions, TIMEOUT) {
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
    }
}
