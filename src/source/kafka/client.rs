//! Client: the librdkafka consumer as the flags configure it, and its context, which handles
//! rebalances (commit what settled of revoked partitions, then let them go), commit results,
//! statistics (consumer lag per partition) and librdkafka's own logs.

use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use rdkafka::client::ClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::statistics::Statistics;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use tracing::{debug, error, info, warn};

use super::partitions::{Partitions, TopicPartition};
use crate::config::KafkaConfig;
use crate::telemetry::Stats;

crate::telemetry::counters! {
    /// What the Kafka source consumed and committed.
    pub struct KafkaCounters {
        records_consumed: "Kafka records received",
        records_retried: "Kafka records sent to the cluster again after a failure (their offsets wait)",
        offset_commits: "Kafka offset commits that succeeded",
        offset_commit_failures: "Kafka offset commits that failed (retried at the next commit)",
        rebalances: "Kafka partition revocations (rebalances, shutdown)",
    }
}

/// The consumer, with the callbacks of [`Context`].
pub type KafkaConsumer = StreamConsumer<Context>;

/// The consumer could not be created, reach its brokers or subscribe.
#[derive(Debug, thiserror::Error)]
#[error("kafka: {0}")]
pub struct ConsumerError(pub String);

/// Creates the consumer (not yet subscribed).
pub fn consumer(
    config: &KafkaConfig,
    stats: Arc<Stats>,
) -> Result<(KafkaConsumer, Shared), ConsumerError> {
    let shared = Shared {
        partitions: Arc::new(Mutex::new(Partitions::default())),
        settled: Arc::new(Condvar::new()),
    };
    let lag = Arc::new(ConsumerLag::default());
    stats.collect(lag.clone());
    let context = Context {
        shared: shared.clone(),
        counters: stats.counters(),
        stats,
        lag,
    };
    let consumer = properties(config)
        .create_with_context(context)
        .map_err(|e| ConsumerError(format!("creating the consumer failed: {e}")))?;
    Ok((consumer, shared))
}

/// The partition state the consume loop shares with the consumer's callbacks and with the
/// tasks that wait for records to settle; `settled` is notified whenever records settle, for
/// a revocation waiting on its partitions.
#[derive(Clone)]
pub struct Shared {
    pub(super) partitions: Arc<Mutex<Partitions>>,
    pub(super) settled: Arc<Condvar>,
}

impl Shared {
    pub(super) fn lock(&self) -> std::sync::MutexGuard<'_, Partitions> {
        self.partitions
            .lock()
            .expect("the partitions lock is never poisoned")
    }
}

/// Fails unless every topic exists with at least one partition.
pub async fn topics_exist(
    consumer: &Arc<KafkaConsumer>,
    topics: &[String],
    timeout: Duration,
) -> Result<(), ConsumerError> {
    let consumer = consumer.clone();
    let topics = topics.to_vec();
    tokio::task::spawn_blocking(move || {
        let metadata = consumer
            .fetch_metadata(None, timeout)
            .map_err(|e| ConsumerError(format!("the brokers did not answer with metadata: {e} (check --kafka-brokers, the security protocol and the credentials)")))?;
        for topic in &topics {
            let found = metadata
                .topics()
                .iter()
                .find(|t| t.name() == topic && t.error().is_none() && !t.partitions().is_empty());
            if found.is_none() {
                return Err(ConsumerError(format!(
                    "topic {topic} does not exist, or these credentials may not describe it"
                )));
            }
        }
        Ok(())
    })
    .await
    .expect("the metadata request does not panic")
}

/// Statistics (and so the lag in `/metrics`) are refreshed this often.
const STATISTICS_EVERY: Duration = Duration::from_secs(5);
/// Pre-fetched records kept by librdkafka for this consumer, in KiB (its default is 64 MiB):
/// some 4,000 audit-log records, eight batches for the sink.
const PREFETCH_KIB: u32 = 4 * 1024;
/// The most one fetch response may hold, in bytes (librdkafka's default is 50 MiB; it raises
/// it to `message.max.bytes` if that is larger, and a first batch larger than it still comes).
const FETCH_MAX_BYTES: u32 = 4 << 20;
/// The longest a revocation waits for records in flight of the revoked partitions.
const REVOKE_WAIT: Duration = Duration::from_secs(5);

/// The consumer's properties for these flags. `--kafka-option` comes last.
pub fn properties(config: &KafkaConfig) -> ClientConfig {
    let mut props = ClientConfig::new();
    let session_ms = config.kafka_session_timeout.as_millis();
    props
        .set("bootstrap.servers", config.brokers())
        .set("group.id", &config.kafka_group_id)
        .set(
            "client.id",
            concat!("cloudtrail-ingest/", env!("CARGO_PKG_VERSION")),
        )
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "false")
        .set("auto.offset.reset", config.kafka_start_from.as_str())
        .set("session.timeout.ms", session_ms.to_string())
        .set(
            "heartbeat.interval.ms",
            (session_ms / 3).min(3000).to_string(),
        )
        .set(
            "statistics.interval.ms",
            STATISTICS_EVERY.as_millis().to_string(),
        )
        .set("queued.max.messages.kbytes", PREFETCH_KIB.to_string())
        .set("fetch.max.bytes", FETCH_MAX_BYTES.to_string())
        .set("security.protocol", config.kafka_security_protocol.as_str());
    if config.kafka_security_protocol.uses_sasl() {
        props.set("sasl.mechanism", config.kafka_sasl_mechanism.as_str());
        if let Some(user) = &config.kafka_sasl_username {
            props.set("sasl.username", user);
        }
        if let Some(password) = &config.kafka_sasl_password {
            props.set("sasl.password", password.expose());
        }
    }
    if config.kafka_security_protocol.uses_tls() {
        // OpenSSL is built in, so its default paths are not the system's: without a CA
        // file, librdkafka probes the usual system locations.
        let ca = match &config.kafka_ca_file {
            Some(path) => path.display().to_string(),
            None => "probe".to_string(),
        };
        props.set("ssl.ca.location", ca);
    }
    for (key, value) in config.options() {
        props.set(key, value);
    }
    props.set_log_level(RDKafkaLogLevel::Info);
    props
}

/// What the consumer's callbacks share with the consume loop.
pub struct Context {
    /// The partition state, and the condition a revocation waits on for its records.
    pub shared: Shared,
    pub stats: Arc<Stats>,
    pub counters: Arc<KafkaCounters>,
    pub lag: Arc<ConsumerLag>,
}

/// `kafka_consumer_lag{topic,partition}` at `/metrics`: records of each assigned partition
/// not yet committed (high watermark minus committed offset), from librdkafka's statistics.
#[derive(Debug, Default)]
pub struct ConsumerLag(Mutex<Vec<(TopicPartition, i64)>>);

impl Collector for ConsumerLag {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let lags = self.0.lock().expect("never poisoned").clone();
        if lags.is_empty() {
            return Ok(());
        }
        let mut family = encoder.encode_descriptor(
            "kafka_consumer_lag",
            "records of the partition not yet committed (high watermark minus committed offset)",
            None,
            MetricType::Gauge,
        )?;
        for ((topic, partition), lag) in lags {
            let labels = [("topic", topic), ("partition", partition.to_string())];
            ConstGauge::new(lag).encode(family.encode_family(&labels)?)?;
        }
        Ok(())
    }
}

impl Context {
    fn lock(&self) -> std::sync::MutexGuard<'_, Partitions> {
        self.shared.lock()
    }

    /// Waits (a bounded time) until nothing of `revoked` is in flight.
    fn wait_for(&self, revoked: &[TopicPartition]) {
        let wait = || {
            let deadline = Instant::now() + REVOKE_WAIT;
            let mut guard = self.lock();
            while revoked.iter().any(|tp| guard.has_unsettled(tp)) {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                guard = self
                    .shared
                    .settled
                    .wait_timeout(guard, left)
                    .expect("the partitions lock is never poisoned")
                    .0;
            }
        };
        // The sink settles records on other worker threads; let them run meanwhile.
        match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
            Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(wait),
            _ => wait(),
        }
    }
}

fn topic_partitions(list: &TopicPartitionList) -> Vec<TopicPartition> {
    list.elements()
        .iter()
        .map(|e| (e.topic().to_string(), e.partition()))
        .collect()
}

/// `topic[partition]` pairs for a log line.
pub fn describe(list: &[TopicPartition]) -> String {
    list.iter()
        .map(|(topic, partition)| format!("{topic}[{partition}]"))
        .collect::<Vec<_>>()
        .join(",")
}

/// A list of offsets to commit.
pub fn offsets_list(offsets: &[(TopicPartition, u64)]) -> TopicPartitionList {
    let mut list = TopicPartitionList::new();
    for ((topic, partition), offset) in offsets {
        list.add_partition_offset(topic, *partition, Offset::Offset(*offset as i64))
            .expect("a non-negative offset is valid");
    }
    list
}

impl ClientContext for Context {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        match level {
            RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error => error!(facility, "librdkafka: {message}"),
            RDKafkaLogLevel::Warning => warn!(facility, "librdkafka: {message}"),
            RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
                info!(facility, "librdkafka: {message}")
            }
            RDKafkaLogLevel::Debug => debug!(facility, "librdkafka: {message}"),
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        let code = error.rdkafka_error_code();
        if matches!(
            code,
            Some(RDKafkaErrorCode::AllBrokersDown | RDKafkaErrorCode::Authentication)
                | Some(RDKafkaErrorCode::SaslAuthenticationFailed)
        ) {
            self.stats.set(&self.stats.source_reachable, false);
        }
        warn!(error = %error, reason, "kafka client error");
    }

    fn stats(&self, statistics: Statistics) {
        let mut lags = Vec::new();
        for (name, topic) in &statistics.topics {
            for (partition, p) in &topic.partitions {
                if *partition >= 0 && p.consumer_lag >= 0 {
                    lags.push(((name.clone(), *partition), p.consumer_lag));
                }
            }
        }
        lags.sort();
        *self.lag.0.lock().expect("never poisoned") = lags;
    }
}

impl ConsumerContext for Context {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Revoke(list) => {
                let revoked = topic_partitions(list);
                self.counters.rebalances.add(1);
                self.wait_for(&revoked);
                let offsets: Vec<_> = {
                    let mut partitions = self.lock();
                    revoked
                        .iter()
                        .filter_map(|tp| partitions.revoke(tp).map(|o| (tp.clone(), o)))
                        .collect()
                };
                if !offsets.is_empty() {
                    match consumer.commit(&offsets_list(&offsets), CommitMode::Sync) {
                        Ok(()) => self.counters.offset_commits.add(1),
                        Err(err) => {
                            self.counters.offset_commit_failures.add(1);
                            warn!(error = %err, "committing the revoked partitions failed; their next owner reads the uncommitted records again (indexed once: same _id)");
                        }
                    }
                }
                info!(
                    revoked = %describe(&revoked),
                    committed = %describe_offsets(&offsets),
                    "partitions revoked: what settled is committed, the rest is left to the next owner"
                );
            }
            Rebalance::Assign(_) => {}
            Rebalance::Error(err) => warn!(error = %err, "rebalance error"),
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(list) = rebalance {
            let assigned = topic_partitions(list);
            let mut partitions = self.lock();
            for tp in &assigned {
                partitions.assign(tp.clone());
            }
            drop(partitions);
            self.stats.set(&self.stats.source_reachable, true);
            info!(assigned = %describe(&assigned), "partitions assigned");
        }
    }

    fn commit_callback(&self, result: KafkaResult<()>, offsets: &TopicPartitionList) {
        match result {
            Ok(()) => {
                self.counters.offset_commits.add(1);
                debug!(offsets = ?offsets, "offsets committed");
            }
            Err(err) => {
                self.counters.offset_commit_failures.add(1);
                warn!(error = %err, "committing offsets failed; retrying at the next commit");
                let mut partitions = self.lock();
                for element in offsets.elements() {
                    if let Offset::Offset(offset) = element.offset() {
                        let tp = (element.topic().to_string(), element.partition());
                        partitions.commit_failed(&tp, offset.max(0) as u64);
                    }
                }
            }
        }
    }
}

/// `topic[partition]@offset` pairs for a log line.
pub fn describe_offsets(offsets: &[(TopicPartition, u64)]) -> String {
    offsets
        .iter()
        .map(|((topic, partition), offset)| format!("{topic}[{partition}]@{offset}"))
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Flags {
        #[command(flatten)]
        kafka: KafkaConfig,
    }

    fn props(args: &[&str]) -> ClientConfig {
        let mut argv = vec!["test", "--kafka-brokers", "b1:9092,b2:9092"];
        argv.extend_from_slice(args);
        properties(&Flags::parse_from(argv).kafka)
    }

    #[test]
    fn confluent_cloud_settings() {
        let p = props(&[
            "--kafka-sasl-username",
            "KEY",
            "--kafka-sasl-password",
            "SECRET",
        ]);
        assert_eq!(p.get("bootstrap.servers"), Some("b1:9092,b2:9092"));
        assert_eq!(p.get("security.protocol"), Some("sasl_ssl"));
        assert_eq!(p.get("sasl.mechanism"), Some("PLAIN"));
        assert_eq!(p.get("sasl.username"), Some("KEY"));
        assert_eq!(p.get("sasl.password"), Some("SECRET"));
        assert_eq!(p.get("ssl.ca.location"), Some("probe"));
        assert_eq!(p.get("enable.auto.commit"), Some("false"));
        assert_eq!(p.get("enable.auto.offset.store"), Some("false"));
        assert_eq!(p.get("auto.offset.reset"), Some("earliest"));
        assert_eq!(p.get("session.timeout.ms"), Some("45000"));
        assert_eq!(p.get("heartbeat.interval.ms"), Some("3000"));
        assert_eq!(p.get("group.id"), Some("cloudtrail-ingest"));
    }

    #[test]
    fn plaintext_scram_and_options() {
        let p = props(&[
            "--kafka-security-protocol",
            "plaintext",
            "--kafka-session-timeout",
            "6s",
            "--kafka-start-from",
            "latest",
            "--kafka-option",
            "fetch.min.bytes=1,client.rack=use1-az1,debug=cgrp,fetch",
        ]);
        assert_eq!(p.get("security.protocol"), Some("plaintext"));
        assert_eq!(p.get("sasl.mechanism"), None);
        assert_eq!(p.get("ssl.ca.location"), None);
        assert_eq!(p.get("heartbeat.interval.ms"), Some("2000"));
        assert_eq!(p.get("auto.offset.reset"), Some("latest"));
        assert_eq!(p.get("fetch.min.bytes"), Some("1"));
        assert_eq!(p.get("client.rack"), Some("use1-az1"));
        // A piece without `=` is the rest of the value before it.
        assert_eq!(p.get("debug"), Some("cgrp,fetch"));
        let p = props(&[
            "--kafka-security-protocol",
            "sasl_plaintext",
            "--kafka-sasl-mechanism",
            "scram-sha-512",
            "--kafka-sasl-username",
            "u",
            "--kafka-sasl-password",
            "p",
        ]);
        assert_eq!(p.get("sasl.mechanism"), Some("SCRAM-SHA-512"));
        assert_eq!(p.get("ssl.ca.location"), None);
    }
}
