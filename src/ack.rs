//! Acknowledgement: decides whether an SQS message may be deleted, and deletes in batches.
//!
//! Every message gets one [`Ticket`]. The fetch stage registers each document it hands to the
//! bulk stage; the bulk stage reports each document's final outcome; the message task releases
//! its own hold once every object was read to the end (or failed). The ticket settles when
//! nothing is outstanding, and its verdict is the only thing that decides deletion: delete
//! only if no object failed and every document was accepted (or was already indexed).
//! Anything else leaves the message to be redelivered by SQS and, after `maxReceiveCount`
//! tries, parked by the redrive policy in the dead-letter queue. A failure that will fail
//! again (a corrupt object, a rejected document) is permanent: its message is released at
//! once (visibility 0) so that redrive parks it quickly; a transient one waits out the
//! visibility timeout, which gives the cause time to pass.
//!
//! [`run_deleter`] carries out every [`Disposal`]: deletions in `DeleteMessageBatch`,
//! releases in `ChangeMessageVisibilityBatch`, up to ten per call.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use aws_sdk_sqs::types::DeleteMessageBatchRequestEntry;
use tokio::sync::{mpsc, Notify};
use tracing::{debug, error, warn};

use crate::heartbeat::set_visibility;
use crate::stats::Stats;

/// Outstanding work of one message.
#[derive(Debug)]
pub struct Ticket {
    /// Documents not yet settled, plus one for the message task's own hold.
    outstanding: AtomicUsize,
    /// Why the message must not be deleted (the first reason; permanent if any was).
    failure: Mutex<Option<Failure>>,
    settled: Notify,
}

/// Why a message may not be deleted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub reason: String,
    /// Redelivery will fail the same way.
    pub permanent: bool,
}

impl Failure {
    pub fn permanent(reason: impl Into<String>) -> Self {
        Failure {
            reason: reason.into(),
            permanent: true,
        }
    }

    pub fn transient(reason: impl Into<String>) -> Self {
        Failure {
            reason: reason.into(),
            permanent: false,
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.reason)
    }
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
    pub fn document_settled(&self, outcome: Result<(), Failure>) {
        if let Err(failure) = outcome {
            self.fail(failure);
        }
        self.release();
    }

    /// Marks the message as not deletable, keeping the first reason; the failure is
    /// permanent if any of them is.
    pub fn fail(&self, new: Failure) {
        let mut failure = self.failure.lock().expect("ticket lock is never poisoned");
        match failure.as_mut() {
            None => *failure = Some(new),
            Some(first) => first.permanent |= new.permanent,
        }
    }

    fn release(&self) {
        if self.outstanding.fetch_sub(1, Ordering::AcqRel) == 1 {
            // `notify_one` stores a permit, so the waiter cannot miss it.
            self.settled.notify_one();
        }
    }

    /// Releases the message task's hold and waits for every document to settle.
    /// `Ok` means the message may be deleted; `Err` carries why it must stay.
    pub async fn settle(&self) -> Result<(), Failure> {
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
            Some(failure) => Err(failure),
        }
    }
}

/// A message to act on, by its receipt handle.
#[derive(Debug, Clone)]
pub struct Deletion {
    pub message_id: String,
    pub receipt_handle: String,
}

/// What happens to a message once it is done with.
#[derive(Debug, Clone)]
pub enum Disposal {
    /// Everything it produced was accepted (or it is given up on): delete it.
    Delete(Deletion),
    /// It failed for good: make it visible again now, so that redrive parks it soon.
    Release(Deletion),
}

/// Carries out disposals, up to ten per batch call, until the channel closes. Every queued
/// disposal is attempted before this returns, so closing the channel and awaiting this task
/// is how shutdown keeps finished work.
pub async fn run_deleter(
    sqs: aws_sdk_sqs::Client,
    queue_url: String,
    mut disposals: mpsc::Receiver<Disposal>,
    stats: Arc<Stats>,
) {
    let mut batch = Vec::with_capacity(10);
    while disposals.recv_many(&mut batch, 10).await > 0 {
        let (deletions, releases): (Vec<_>, Vec<_>) = batch
            .drain(..)
            .partition(|d| matches!(d, Disposal::Delete(_)));
        let unwrap = |d: Disposal| match d {
            Disposal::Delete(d) | Disposal::Release(d) => d,
        };
        let deletions: Vec<_> = deletions.into_iter().map(unwrap).collect();
        let releases: Vec<_> = releases.into_iter().map(unwrap).collect();
        if !deletions.is_empty() {
            delete_batch(&sqs, &queue_url, &deletions, &stats).await;
        }
        if !releases.is_empty() {
            release_batch(&sqs, &queue_url, &releases, &stats).await;
        }
    }
}

/// Sets the visibility of `batch` to 0. A release that fails only delays redelivery.
async fn release_batch(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
    batch: &[Deletion],
    stats: &Stats,
) {
    let handles = batch.iter().map(|d| d.receipt_handle.as_str());
    match set_visibility(sqs, queue_url, handles, 0).await {
        Ok(out) => {
            for failed in out.failed() {
                warn!(
                    code = failed.code(),
                    reason = failed.message().unwrap_or(""),
                    "release failed; the message comes back after its visibility timeout"
                );
            }
            stats.add(&stats.messages_released, out.successful().len() as u64);
        }
        Err(err) => warn!(
            count = batch.len(),
            error = %aws_sdk_sqs::error::DisplayErrorContext(&err),
            "release batch failed; the messages come back after their visibility timeout"
        ),
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
        ticket.document_settled(Err(Failure::transient("bulk retries exhausted")));
        ticket.fail(Failure::permanent("object missing"));
        ticket.document_settled(Ok(()));
        assert_eq!(
            ticket.settle().await,
            Err(Failure::permanent("bulk retries exhausted")),
            "first reason, permanent because one failure was"
        );
    }
}
