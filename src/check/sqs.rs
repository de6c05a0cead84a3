//! The SQS source's checks: `queue`, `receive` and `s3`, after the cluster's.

use std::time::Duration;

use super::cluster::cluster_checks;
use super::report::{Report, Verdict};
use crate::config::{Config, ObjectFormat};
use crate::sink::elasticsearch::Cluster;
use crate::source::sqs::{self, notification, Clients, Sqs};
use crate::source::Source;

/// The checks of the SQS source; returns whether none failed.
pub async fn run(config: &Config, clients: &Clients, cluster: &Cluster) -> bool {
    let mut report = Report::default();
    let destinations = Sqs::with_clients(config, clients.clone()).destinations();
    cluster_checks(&mut report, cluster, &config.shared, &destinations).await;
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
