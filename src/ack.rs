//! Acknowledgement: decides whether an SQS message may be deleted, and deletes in batches.
//!
//! Every message gets one [`Ticket`]. The fetch stage registers each document it hands to the
//! bulk stage; the bulk stage reports each document's final outcome; the message task releases
//! its own hold once every object was read to the end (or failed). The ticket settles when
//! nothing is outstanding, and its verdict is the only thing that decides deletion: delete
//! only if no object failed and every document was accepted (or was already indexed).
//! Anything else leaves the message to be redelivered by SQS and, after `maxReceiveCount`
//! tries, parked by the redrive policy in the dead-letter queue.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use aws_sdk_sqs::types::DeleteMessageBatchRequestEntry;
use tokio::sync::{mpsc, Notify};
use tracing::{debug, error, warn};

use crate::stats::Stats;

/// Outstanding work of one message.
#[derive(Debug)]
pub struct Ticket {
    /// Documents not yet settled, plus one for the message task's own hold.
    outstanding: AtomicUsize,
    /// First reason the message must not be deleted.
    failure: Mutex<Option<String>>,
    settled: Notify,
}

impl Ticket {
    pub fn new() -> Arc<Self> {
        Arc::new(Ticket {
            outstanding: AtomicUsize::new(1),
            failure: Mutex::new(None),
            settled: Notify::new(),
        })
    }

    /// Called before a document is handed to the bulk stage.
    pub fn register_document(&self) {
        self.outstanding.fetch_add(1, Ordering::AcqRel);
    }

    /// Called exactly once per registered document with its final outcome.
    pub fn document_settled(&self, outcome: Result<(), String>) {
        if let Err(reason) = outcome {
            self.fail(reason);
        }
        self.release();
    }

    /// Marks the message as not deletable, keeping the first reason.
    pub fn fail(&self, reason: String) {
        let mut failure = self.failure.lock().expect("ticket lock is never poisoned");
        failure.get_or_insert(reason);
    }

    fn release(&self) {
        if self.outstanding.fetch_sub(1, Ordering::AcqRel) == 1 {
            // `notify_one` stores a permit, so the waiter cannot miss it.
            self.settled.notify_one();
        }
    }

    /// Releases the message task's hold and waits for every document to settle.
    /// `Ok` means the message may be deleted; `Err` carries why it must stay.
    pub async fn settle(&self) -> Result<(), String> {
        if self.outstanding.fetch_sub(1, Ordering::AcqRel) != 1 {
            self.settled.notified().await;
        }
        match self
            .failure
            .lock()
            .expect("ticket lock is never poisoned")
            .take()
        {
            None => Ok(()),
            Some(reason) => Err(reason),
        }
    }
}

/// A message whose ticket settled cleanly.
#[derive(Debug, Clone)]
pub struct Deletion {
    pub message_id: String,
    pub receipt_handle: String,
}

/// Deletes settled messages, up to ten per `DeleteMessageBatch`, until the channel closes.
/// Every queued deletion is attempted before this returns, so closing the channel and
/// awaiting this task is how shutdown keeps finished work.
pub async fn run_deleter(
    sqs: aws_sdk_sqs::Client,
    queue_url: String,
    mut deletions: mpsc::Receiver<Deletion>,
    stats: Arc<Stats>,
) {
    let mut batch = Vec::with_capacity(10);
    while deletions.recv_many(&mut batch, 10).await > 0 {
        delete_batch(&sqs, &queue_url, &batch, &stats).await;
        batch.clear();
    }
}

async fn delete_batch(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
    batch: &[Deletion],
    stats: &Stats,
) {
    let entries: Vec<_> = batch
        .iter()
        .enumerate()
        .map(|(i, d)| {
            DeleteMessageBatchRequestEntry::builder()
                .id(i.to_string())
                .receipt_handle(&d.receipt_handle)
                .build()
                .expect("id and receipt handle are set")
        })
        .collect();
    // The SDK retries transient failures of the call itself; a message whose delete still
    // fails is redelivered and its documents are answered 409, so nothing is duplicated.
    match sqs
        .delete_message_batch()
        .queue_url(queue_url)
        .set_entries(Some(entries))
        .send()
        .await
    {
        Ok(out) => {
            for failed in out.failed() {
                let message_id = failed
                    .id()
                    .parse::<usize>()
                    .ok()
                    .and_then(|i| batch.get(i))
                    .map(|d| d.message_id.as_str())
                    .unwrap_or("?");
                warn!(
                    message_id,
                    code = failed.code(),
                    reason = failed.message().unwrap_or(""),
                    "delete failed; the message will be redelivered and deduplicated"
                );
                stats.add(&stats.delete_failures, 1);
            }
            let deleted = out.successful().len();
            stats.add(&stats.messages_deleted, deleted as u64);
            debug!(deleted, "messages deleted");
        }
        Err(err) => {
            error!(
                count = batch.len(),
                error = %aws_sdk_sqs::error::DisplayErrorContext(&err),
                "delete batch failed; the messages will be redelivered and deduplicated"
            );
            stats.add(&stats.delete_failures, batch.len() as u64);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn settles_after_every_document() {
        let ticket = Ticket::new();
        ticket.register_document();
        ticket.register_document();
        let waiter = {
            let ticket = ticket.clone();
            tokio::spawn(async move { ticket.settle().await })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiter.is_finished());
        ticket.document_settled(Ok(()));
        assert!(!waiter.is_finished());
        ticket.document_settled(Ok(()));
        assert_eq!(waiter.await.unwrap(), Ok(()));
    }

    #[tokio::test]
    async fn settles_immediately_without_documents() {
        assert_eq!(Ticket::new().settle().await, Ok(()));
    }

    #[tokio::test]
    async fn any_failure_keeps_the_message_with_the_first_reason() {
        let ticket = Ticket::new();
        ticket.register_document();
        ticket.register_document();
        ticket.document_settled(Err("rejected: mapper_parsing_exception".into()));
        ticket.fail("object missing".into());
        ticket.document_settled(Ok(()));
        assert_eq!(
            ticket.settle().await,
            Err("rejected: mapper_parsing_exception".to_string())
        );
    }
}
