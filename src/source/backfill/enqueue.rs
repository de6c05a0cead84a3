//! `backfill --enqueue QUEUE_URL`: the backfill's listing and checkpoint, with the objects
//! handed to the SQS workers of a queue instead of read here, so that a whole fleet shares a
//! bucket's history as it shares live traffic. No cluster is involved.
//!
//! - the same [`super::prepare`] (checkpoint, units to list) and [`listing`] as a backfill
//!   that reads;
//! - keys, in listing order, become CloudTrail notifications (`{"s3Bucket": ..., "s3ObjectKey":
//!   [...]}`, the shape the workers read from CloudTrail itself) of at most
//!   [`KEYS_PER_MESSAGE`] keys, sent [`MESSAGES_PER_REQUEST`] to a `SendMessageBatch` request
//!   of at most [`MAX_REQUEST_BYTES`];
//! - one request is in flight at a time; once SQS accepted every message of it, the
//!   checkpoint moves to its last key and is written at once, so a resumed run sends again at
//!   most the request that was in flight (harmless: the workers' `_id`s are deterministic);
//! - messages SQS refuses for a reason that may pass (not the sender's fault) are sent again,
//!   up to [`MAX_ATTEMPTS`] times, waiting longer each time; the request itself is retried by
//!   the AWS SDK. What still fails stops the run (exit 1), with the checkpoint kept.
//!
//! Shutdown (SIGTERM/SIGINT): stop listing, finish the request in flight, write the
//! checkpoint, exit 130.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_sqs::types::{QueueAttributeName, SendMessageBatchRequestEntry};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::checkpoint::{Checkpoint, CheckpointError};
use super::listing::{self, ListError, Listing};
use super::{prepare, progress::Progress, store, LISTING_AHEAD};
use crate::config::BackfillCommand;
use crate::source::{s3, Ended, SourceError};
use crate::telemetry::Stats;

/// Keys in one notification.
pub const KEYS_PER_MESSAGE: usize = 100;
/// Messages in one `SendMessageBatch` request (SQS's limit).
pub const MESSAGES_PER_REQUEST: usize = 10;
/// Bytes of the messages of one request; SQS takes 256 KiB in all.
pub const MAX_REQUEST_BYTES: usize = 200 * 1024;
/// Sends of a message SQS refused for a reason that may pass.
pub const MAX_ATTEMPTS: u32 = 5;

crate::telemetry::counters! {
    /// What `backfill --enqueue` sent.
    pub struct EnqueueCounters {
        objects_enqueued: "backfill --enqueue: objects announced to the queue",
        messages_enqueued: "backfill --enqueue: notifications SQS accepted",
        send_retries: "backfill --enqueue: notifications sent again after SQS refused them for a reason that may pass",
    }
}

/// Why keys could not be handed to the queue.
#[derive(Debug, thiserror::Error)]
pub enum EnqueueError {
    #[error("the queue {queue} cannot be used: {message}")]
    Queue { queue: String, message: String },
    #[error("sending to {queue} failed: {message}")]
    Send { queue: String, message: String },
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    #[error(transparent)]
    List(#[from] ListError),
}

/// Lists what `command` asks for and sends it to its `--enqueue` queue, until the listing is
/// done or `stop` is cancelled.
pub async fn run(
    command: &BackfillCommand,
    aws: &aws_config::SdkConfig,
    stats: &Arc<Stats>,
    stop: CancellationToken,
) -> Result<Ended, SourceError> {
    let queue = command
        .backfill
        .enqueue
        .clone()
        .expect("only run with --enqueue");
    let sqs = aws_sdk_sqs::Client::new(aws);
    check_queue(&sqs, &queue).await.map_err(SourceError::new)?;
    let s3 = s3::client(aws, &command.s3);
    stats.counters::<listing::ListingCounters>();
    let Some(prepared) = prepare(command, &s3, stats).await? else {
        return Ok(Ended::default());
    };
    let (listed_tx, listed_rx) = mpsc::channel(LISTING_AHEAD);
    let lister = tokio::spawn(listing::list(
        s3,
        command.bucket().to_string(),
        prepared.units,
        command.s3.object_format,
        listed_tx,
        stats.clone(),
    ));
    let mut sender = Sender {
        sqs,
        queue,
        bucket: command.bucket().to_string(),
        room: MAX_REQUEST_BYTES - MESSAGES_PER_REQUEST * notification(command.bucket(), &[]).len(),
        checkpoint: prepared.checkpoint,
        path: command.backfill.checkpoint.clone(),
        progress: Progress::enqueuing(prepared.total_units, prepared.skipped_units),
        keys: Vec::new(),
        bytes: 0,
        counters: stats.counters(),
    };
    let stopped = sender
        .send_all(listed_rx, lister, stats, &stop)
        .await
        .map_err(SourceError::new)?;
    Ok(Ended {
        interrupted: stopped,
        ..Ended::default()
    })
}

/// The queue answers and these credentials may read it (sending is only proven by sending).
async fn check_queue(sqs: &aws_sdk_sqs::Client, queue: &str) -> Result<(), EnqueueError> {
    sqs.get_queue_attributes()
        .queue_url(queue)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map(|_| ())
        .map_err(|err| EnqueueError::Queue {
            queue: queue.to_string(),
            message: aws_sdk_sqs::error::DisplayErrorContext(&err).to_string(),
        })
}

/// The keys listed and not yet accepted by SQS, and the checkpoint they move.
struct Sender {
    sqs: aws_sdk_sqs::Client,
    queue: String,
    bucket: String,
    /// Bytes of one request left for its keys, once its notifications' own are counted.
    room: usize,
    checkpoint: Checkpoint,
    path: Option<PathBuf>,
    progress: Progress,
    /// The next request's keys, in listing order, and their bytes as JSON.
    keys: Vec<String>,
    bytes: usize,
    counters: Arc<EnqueueCounters>,
}

impl Sender {
    /// Sends what the lister finds, a request at a time; returns whether it was stopped
    /// before the end of the listing.
    async fn send_all(
        &mut self,
        mut listed: mpsc::Receiver<Listing>,
        lister: JoinHandle<Result<(), ListError>>,
        stats: &Stats,
        stop: &CancellationToken,
    ) -> Result<bool, EnqueueError> {
        let mut report = tokio::time::interval(self.progress.every());
        report.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let stopped = loop {
            tokio::select! {
                next = listed.recv() => match next {
                    Some(Listing::Object(object)) => self.push(object.key).await?,
                    Some(Listing::UnitDone) => self.progress.unit_done(),
                    None => break false,
                },
                _ = report.tick() => self.progress.report(&self.checkpoint, stats),
                () = stop.cancelled() => {
                    info!("shutting down: no more listing; finishing what was listed");
                    break true;
                }
            }
        };
        let listing = if stopped {
            lister.abort();
            Ok(())
        } else {
            lister.await.expect("the lister does not panic")
        };
        self.flush().await?;
        self.checkpoint.complete = !stopped && listing.is_ok();
        store(&self.checkpoint, self.path.as_deref())?;
        self.progress.report(&self.checkpoint, stats);
        self.progress.finish();
        listing?;
        match stopped {
            true => {
                warn!("backfill interrupted; run it again with the same --checkpoint to resume")
            }
            false => {
                info!(objects = self.checkpoint.objects_done, queue = %self.queue, "backfill enqueued")
            }
        }
        Ok(stopped)
    }

    /// Adds a key to the next request, sending the request first when the key would not fit.
    async fn push(&mut self, key: String) -> Result<(), EnqueueError> {
        let bytes = serde_json::to_string(&key).map_or(key.len(), |json| json.len()) + 1;
        let full = self.keys.len() == KEYS_PER_MESSAGE * MESSAGES_PER_REQUEST;
        if full || self.bytes + bytes > self.room {
            self.flush().await?;
        }
        self.keys.push(key);
        self.bytes += bytes;
        Ok(())
    }

    /// Sends the keys held as one request and, once SQS accepted all of it, moves the
    /// checkpoint past them.
    async fn flush(&mut self) -> Result<(), EnqueueError> {
        let Some(last) = self.keys.last().cloned() else {
            return Ok(());
        };
        let mut entries: Vec<SendMessageBatchRequestEntry> = self
            .keys
            .chunks(KEYS_PER_MESSAGE)
            .enumerate()
            .map(|(n, keys)| {
                SendMessageBatchRequestEntry::builder()
                    .id(n.to_string())
                    .message_body(notification(&self.bucket, keys))
                    .build()
                    .expect("an id and a body")
            })
            .collect();
        let messages = entries.len() as u64;
        let mut attempt = 1;
        loop {
            entries = self.send(entries).await?;
            if entries.is_empty() {
                break;
            }
            if attempt == MAX_ATTEMPTS {
                return Err(self.send_error(format!(
                    "{} notification(s) still refused after {MAX_ATTEMPTS} attempts",
                    entries.len()
                )));
            }
            self.counters.send_retries.add(entries.len() as u64);
            tokio::time::sleep(Duration::from_millis(500 << attempt)).await;
            attempt += 1;
        }
        let objects = self.keys.len() as u64;
        self.counters.objects_enqueued.add(objects);
        self.counters.messages_enqueued.add(messages);
        self.progress.enqueued(objects);
        self.checkpoint.objects_done += objects;
        self.checkpoint.done_through = Some(last);
        store(&self.checkpoint, self.path.as_deref())?;
        self.keys.clear();
        self.bytes = 0;
        Ok(())
    }

    /// One `SendMessageBatch`; returns the entries SQS refused for a reason that may pass.
    async fn send(
        &self,
        entries: Vec<SendMessageBatchRequestEntry>,
    ) -> Result<Vec<SendMessageBatchRequestEntry>, EnqueueError> {
        let output = self
            .sqs
            .send_message_batch()
            .queue_url(&self.queue)
            .set_entries(Some(entries.clone()))
            .send()
            .await
            .map_err(|err| {
                self.send_error(aws_sdk_sqs::error::DisplayErrorContext(&err).to_string())
            })?;
        if let Some(refused) = output.failed().iter().find(|f| f.sender_fault()) {
            return Err(self.send_error(format!(
                "{}: {}",
                refused.code(),
                refused.message().unwrap_or("refused")
            )));
        }
        let again: Vec<&str> = output.failed().iter().map(|f| f.id()).collect();
        Ok(entries
            .into_iter()
            .filter(|entry| again.contains(&entry.id()))
            .collect())
    }

    fn send_error(&self, message: String) -> EnqueueError {
        EnqueueError::Send {
            queue: self.queue.clone(),
            message,
        }
    }
}

/// CloudTrail's own notification of `keys` in `bucket`.
pub fn notification(bucket: &str, keys: &[String]) -> String {
    serde_json::json!({"s3Bucket": bucket, "s3ObjectKey": keys}).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_request_fits_sqs() {
        // The longest keys S3 allows, as many as fit: one request stays below SQS's 256 KiB.
        let bucket = "b".repeat(63);
        let overhead = notification(&bucket, &[]).len();
        let key = "k".repeat(1024);
        let per_key = serde_json::to_string(&key).unwrap().len() + 1;
        let keys = (MAX_REQUEST_BYTES - MESSAGES_PER_REQUEST * overhead) / per_key;
        let keys: Vec<String> = vec![key; keys];
        let total: usize = keys
            .chunks(KEYS_PER_MESSAGE)
            .map(|chunk| notification(&bucket, chunk).len())
            .sum();
        assert!(total <= 256 * 1024, "{total}");
        assert!(keys.chunks(KEYS_PER_MESSAGE).count() <= MESSAGES_PER_REQUEST);
        // A notification is what the SQS worker reads from CloudTrail.
        let body = notification("trail", &["AWSLogs/1/CloudTrail/a b+c.json.gz".into()]);
        let value: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(value["s3Bucket"], "trail");
        assert_eq!(
            value["s3ObjectKey"][0],
            "AWSLogs/1/CloudTrail/a b+c.json.gz"
        );
    }
}
