//! Check: `cloudtrail-ingest check` verifies, without ingesting, that everything the worker
//! needs is reachable and permitted, and prints one PASS/FAIL/SKIP line per check:
//!
//! 1. `cluster`: `GET /` answers with these credentials (product and version);
//! 2. `templates`: the index templates can be written (they are installed, as at start);
//! 3. `bulk`: a bulk `create` is accepted: one small probe document
//!    (`_id` `cloudtrail-ingest-preflight`, no `@timestamp`, so dashboards ignore it) in
//!    `<prefix>-preflight`; 409 on later runs counts as a pass;
//! 4. `queue`: `GetQueueAttributes` (visibility timeout, redrive policy);
//! 5. `receive`: `ReceiveMessage` works; a message it gets is made visible again at once
//!    (its receive count still goes up by one);
//! 6. `s3`: the first object that message names can be read (`GetObject` of its first byte).
//!
//! The exit code is non-zero when any check fails.

use std::time::Duration;

use bytes::Bytes;

use crate::config::{Config, TemplateMode};
use crate::sink::elasticsearch::bulk::{self, ItemOutcome};
use crate::sink::elasticsearch::{client, template, ClusterInfo};
use crate::source::sqs::{self, notification, Clients};

/// The result of one check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Pass(String),
    Fail(String),
    Skip(String),
}

/// Runs every check, printing each line as it completes; returns whether none failed.
pub async fn run(config: &Config, clients: &Clients) -> bool {
    let mut failed = false;
    let mut report = |name: &str, verdict: Verdict| {
        let (word, detail) = match &verdict {
            Verdict::Pass(d) => ("PASS", d),
            Verdict::Fail(d) => ("FAIL", d),
            Verdict::Skip(d) => ("SKIP", d),
        };
        failed |= matches!(verdict, Verdict::Fail(_));
        println!("{word} {name}: {detail}");
    };

    let url = config.cluster.url();
    match client::detect(&clients.cluster, url.as_str()).await {
        Ok(info) => {
            report(
                "cluster",
                Verdict::Pass(format!(
                    "{} {} answers with these credentials",
                    info.distribution, info.version
                )),
            );
            report("templates", templates(config, clients, &info).await);
            report("bulk", bulk_probe(config, clients).await);
        }
        Err(err) => {
            report("cluster", Verdict::Fail(err.to_string()));
            report("templates", Verdict::Skip("the cluster is unusable".into()));
            report("bulk", Verdict::Skip("the cluster is unusable".into()));
        }
    }

    let queue_url = config.queue_url();
    match sqs::check_queue(&clients.sqs, queue_url).await {
        Ok(queue) => {
            let redrive = if queue.has_redrive_policy {
                "has a redrive policy"
            } else {
                "has NO redrive policy (poison messages would be received again and again; add a DLQ or set --max-receive-count)"
            };
            report(
                "queue",
                Verdict::Pass(format!(
                    "visibility timeout {}s, {redrive}",
                    queue.visibility_timeout.as_secs()
                )),
            );
            let (receive, object) = peek(clients, queue_url).await;
            report("receive", receive);
            let s3 = match object {
                Some((bucket, key)) => read_first_byte(clients, &bucket, &key).await,
                None => Verdict::Skip(
                    "no message naming an object was available to take a bucket and key from"
                        .into(),
                ),
            };
            report("s3", s3);
        }
        Err(err) => {
            report("queue", Verdict::Fail(err.to_string()));
            report("receive", Verdict::Skip("the queue is unusable".into()));
            report("s3", Verdict::Skip("the queue is unusable".into()));
        }
    }
    !failed
}

async fn templates(config: &Config, clients: &Clients, info: &ClusterInfo) -> Verdict {
    if config.index.index_template == TemplateMode::Skip {
        return Verdict::Skip("--index-template skip".into());
    }
    match template::prepare(&clients.cluster, &config.index, info).await {
        Ok(free_form) => Verdict::Pass(format!(
            "index templates installed (free-form fields as {free_form:?})"
        )),
        Err(err) => Verdict::Fail(err.to_string()),
    }
}

async fn bulk_probe(config: &Config, clients: &Clients) -> Verdict {
    let index = format!("{}-preflight", config.index.index_prefix);
    let body = format!(
        "{{\"create\":{{\"_index\":\"{index}\",\"_id\":\"cloudtrail-ingest-preflight\"}}}}\n{{\"preflight\":true}}\n"
    );
    match bulk::send(&clients.cluster, Bytes::from(body), false, 1).await {
        Ok(outcomes) => match outcomes.into_iter().next() {
            Some(ItemOutcome::Indexed | ItemOutcome::AlreadyIndexed) => {
                Verdict::Pass(format!("bulk create accepted by {index}"))
            }
            Some(ItemOutcome::Retry { status, reason }) => {
                Verdict::Fail(format!("bulk create answered HTTP {status}: {reason}"))
            }
            Some(ItemOutcome::Rejected(rejection)) => {
                Verdict::Fail(format!("bulk create refused: {rejection}"))
            }
            None => Verdict::Fail("bulk answered no item".into()),
        },
        Err(err) => Verdict::Fail(err.to_string()),
    }
}

/// Receives at most one message and makes it visible again at once; returns the verdict
/// and the first object it names.
async fn peek(clients: &Clients, queue_url: &str) -> (Verdict, Option<(String, String)>) {
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
    let object = notification::parse(message.body().unwrap_or(""))
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
