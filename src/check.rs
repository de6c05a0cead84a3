//! Check: `cloudtrail-ingest check` (and `cloudtrail-ingest kafka check`) verifies, without
//! ingesting, that everything the worker needs is reachable and permitted, and prints one
//! PASS/FAIL/SKIP line per check. For every source:
//!
//! 1. `cluster`: `GET /` answers with these credentials (product and version);
//! 2. `templates`: the index templates can be written (they are installed, as at start);
//! 3. `bulk`: a bulk `create` is accepted: one small probe document
//!    (`_id` `cloudtrail-ingest-preflight`, no `@timestamp`, so dashboards ignore it) in
//!    `<prefix>-preflight`; 409 on later runs counts as a pass;
//!
//! For the SQS source:
//!
//! 4. `queue`: `GetQueueAttributes` (visibility timeout, redrive policy);
//! 5. `receive`: `ReceiveMessage` works; a message it gets is made visible again at once
//!    (its receive count still goes up by one);
//! 6. `s3`: the first object that message names can be read (`GetObject` of its first byte).
//!
//!
//! For the Kafka source: `brokers` (metadata with these credentials), `topics` (each exists,
//! with its partitions) and `group` (described, never joined; its committed offsets and lag),
//! see [`crate::source::kafka::check`].
//!
//! The exit code is non-zero when any check fails.

use std::time::Duration;

use crate::sink::elasticsearch::Cluster;

use crate::config::{ClusterConfig, Config, IndexConfig, KafkaCommand, ObjectFormat, TemplateMode};
use crate::format::Destination;
use crate::sink::elasticsearch::response::ItemOutcome;
use crate::sink::elasticsearch::{probe, product, template, ClusterInfo};
use crate::source::sqs::{self, notification, Clients};
use crate::source::{kafka, s3};

/// The result of one check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Pass(String),
    Fail(String),
    Skip(String),
}

/// Prints each verdict as it comes and remembers whether any failed.
#[derive(Debug, Default)]
pub struct Report {
    failed: bool,
}

impl Report {
    pub fn add(&mut self, name: &str, verdict: Verdict) {
        let (word, detail) = match &verdict {
            Verdict::Pass(d) => ("PASS", d),
            Verdict::Fail(d) => ("FAIL", d),
            Verdict::Skip(d) => ("SKIP", d),
        };
        self.failed |= matches!(verdict, Verdict::Fail(_));
        println!("{word} {name}: {detail}");
    }

    /// No check failed.
    pub fn passed(&self) -> bool {
        !self.failed
    }
}

/// The checks of the SQS source; returns whether none failed.
pub async fn run(config: &Config, clients: &Clients, cluster: &Cluster) -> bool {
    let mut report = Report::default();
    cluster_checks(
        &mut report,
        cluster,
        &config.shared.cluster,
        &config.shared.index,
        &s3::destinations(&config.s3, &config.shared.index),
    )
    .await;
    let queue_url = config.queue_url();
    match sqs::check_queue(&clients.sqs, queue_url).await {
        Ok(queue) => {
            let redrive = if queue.has_redrive_policy {
                "has a redrive policy"
            } else {
                "has NO redrive policy (poison messages would be received again and again; add a DLQ or set --max-receive-count)"
            };
            report.add(
                "queue",
                Verdict::Pass(format!(
                    "visibility timeout {}s, {redrive}",
                    queue.visibility_timeout.as_secs()
                )),
            );
            let (receive, object) = peek(clients, queue_url, config.s3.object_format).await;
            report.add("receive", receive);
            let s3 = match object {
                Some((bucket, key)) => read_first_byte(clients, &bucket, &key).await,
                None => Verdict::Skip(
                    "no message naming an object was available to take a bucket and key from"
                        .into(),
                ),
            };
            report.add("s3", s3);
        }
        Err(err) => {
            report.add("queue", Verdict::Fail(err.to_string()));
            report.add("receive", Verdict::Skip("the queue is unusable".into()));
            report.add("s3", Verdict::Skip("the queue is unusable".into()));
        }
    }
    report.passed()
}

/// The checks of the Kafka source; returns whether none failed.
pub async fn run_kafka(command: &KafkaCommand, cluster: &Cluster) -> bool {
    let mut report = Report::default();
    let format = kafka::record_format(&command.kafka, crate::format::FreeForm::Objects);
    let destinations = vec![Destination::new(
        format.dataset(),
        command.shared.index.prefix(),
        format.mappings(),
    )];
    cluster_checks(
        &mut report,
        cluster,
        &command.shared.cluster,
        &command.shared.index,
        &destinations,
    )
    .await;
    kafka::check::run(&command.kafka, &mut report).await;
    report.passed()
}

/// `cluster`, `templates` and `bulk`, the checks every source shares.
pub async fn cluster_checks(
    report: &mut Report,
    client: &Cluster,
    cluster: &ClusterConfig,
    index: &IndexConfig,
    destinations: &[Destination],
) {
    match product::detect(client, cluster.url().as_str()).await {
        Ok(info) => {
            report.add(
                "cluster",
                Verdict::Pass(format!(
                    "{} {} answers with these credentials",
                    info.distribution, info.version
                )),
            );
            report.add(
                "templates",
                templates(client, index, &info, destinations).await,
            );
            report.add("bulk", bulk_probe(client, index).await);
        }
        Err(err) => {
            report.add("cluster", Verdict::Fail(err.to_string()));
            report.add("templates", Verdict::Skip("the cluster is unusable".into()));
            report.add("bulk", Verdict::Skip("the cluster is unusable".into()));
        }
    }
}

async fn templates(
    client: &Cluster,
    index: &IndexConfig,
    info: &ClusterInfo,
    destinations: &[Destination],
) -> Verdict {
    if index.index_template == TemplateMode::Skip {
        return Verdict::Skip("--index-template skip".into());
    }
    match template::prepare(client, index, info, destinations).await {
        Ok(free_form) => Verdict::Pass(format!(
            "index templates installed (free-form fields as {free_form:?})"
        )),
        Err(err) => Verdict::Fail(err.to_string()),
    }
}

async fn bulk_probe(client: &Cluster, index: &IndexConfig) -> Verdict {
    let index = format!("{}-preflight", index.prefix());
    match probe::create(client, &index).await {
        Ok(ItemOutcome::Indexed | ItemOutcome::AlreadyIndexed) => {
            Verdict::Pass(format!("bulk create accepted by {index}"))
        }
        Ok(ItemOutcome::Retry { status, reason }) => {
            Verdict::Fail(format!("bulk create answered HTTP {status}: {reason}"))
        }
        Ok(ItemOutcome::Rejected(rejection)) => {
            Verdict::Fail(format!("bulk create refused: {rejection}"))
        }
        Err(err) => Verdict::Fail(err.to_string()),
    }
}

/// Receives at most one message and makes it visible again at once; returns the verdict
/// and the first object it names.
async fn peek(
    clients: &Clients,
    queue_url: &str,
    format: ObjectFormat,
) -> (Verdict, Option<(String, String)>) {
    let received = clients
        .sqs
        .receive_message()
        .queue_url(queue_url)
        .max_number_of_messages(1)
        .wait_time_seconds(1)
        .visibility_timeout(0)
        .send()
        .await;
    let messages = match received {
        Ok(out) => out.messages.unwrap_or_default(),
        Err(err) => {
            return (
                Verdict::Fail(format!(
                    "ReceiveMessage failed: {}",
                    aws_sdk_sqs::error::DisplayErrorContext(&err)
                )),
                None,
            )
        }
    };
    let Some(message) = messages.into_iter().next() else {
        return (
            Verdict::Pass("ReceiveMessage works (the queue is empty)".into()),
            None,
        );
    };
    let object = notification::parse(message.body().unwrap_or(""), format)
        .ok()
        .and_then(|n| n.objects.into_iter().next())
        .map(|o| (o.bucket, o.key));
    (
        Verdict::Pass("ReceiveMessage works (one message looked at and left visible)".into()),
        object,
    )
}

async fn read_first_byte(clients: &Clients, bucket: &str, key: &str) -> Verdict {
    let got = tokio::time::timeout(
        Duration::from_secs(30),
        clients
            .s3
            .get_object()
            .bucket(bucket)
            .key(key)
            .range("bytes=0-0")
            .send(),
    )
    .await;
    match got {
        Ok(Ok(_)) => Verdict::Pass(format!("s3://{bucket}/{key} is readable")),
        Ok(Err(err)) => Verdict::Fail(format!(
            "s3://{bucket}/{key}: {}",
            aws_sdk_s3::error::DisplayErrorContext(&err)
        )),
        Err(_) => Verdict::Fail(format!("s3://{bucket}/{key}: no answer within 30s")),
    }
}
