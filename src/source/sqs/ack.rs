//! Acknowledgement: what happens to an SQS message once its ticket settled, decided in one
//! place ([`decide`]), and carried out in batches ([`run_disposer`]).
//!
//! - Everything it announced was indexed (or ignored, or dead-lettered): delete it.
//! - It failed transiently (throttling, an outage, a dropped event): keep it. Its visibility
//!   timeout brings it back when the cause may have passed. `--max-receive-count` never
//!   deletes such a message: a long cluster outage must not turn into data loss.
//! - It failed for good (a body that is no notification, a corrupt object, a refused
//!   document that could not be dead-lettered):
//!   - on its `--max-receive-count`th receive: delete it, with an error line;
//!   - with a redrive policy: release it at once (visibility 0), so that SQS parks it in the
//!     DLQ soon;
//!   - without one: release it after a delay that doubles with every receive (2 s, 4 s, ...
//!     up to 15 min), so that a poison message does not spin in a tight receive -> fail ->
//!     release loop.

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_sqs::types::DeleteMessageBatchRequestEntry;
use tokio::sync::mpsc;
use tracing::{debug, error, warn};

use super::heartbeat::{entry_of, set_visibility};
use crate::pipeline::Verdict;
use crate::telemetry::{Counter, Stats};

crate::telemetry::counters! {
    /// What became of the messages' deletions and releases.
    pub struct AckCounters {
        messages_deleted: "SQS messages deleted after everything they announced was indexed (or ignored, or given up on)",
        messages_released: "SQS messages made visible again after a permanent failure (at once with a redrive policy, later without)",
        delete_failures: "SQS messages whose deletion failed (they come back and are deduplicated)",
        release_failures: "SQS messages whose release failed (they come back after their visibility timeout)",
        messages_returned: "SQS messages a stopping worker's last receive brought, made visible again at once for another worker",
    }
}

/// The first delay of a poison message's release on a queue without a redrive policy.
const RELEASE_DELAY_FIRST: Duration = Duration::from_secs(2);
/// The longest such delay.
const RELEASE_DELAY_MAX: Duration = Duration::from_secs(15 * 60);

/// One received copy of a message, by its receipt handle.
#[derive(Debug, Clone)]
pub struct Receipt {
    pub message_id: String,
    pub receipt_handle: String,
}

/// What happens to a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Everything it asked for settled: delete it.
    Delete,
    /// It failed for good on its last allowed receive: delete it anyway.
    GiveUp,
    /// It failed for good: make it visible again after this long.
    Release(Duration),
    /// It failed for now: leave it to its visibility timeout.
    Keep,
}

/// The queue's side of the decision.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    pub has_redrive_policy: bool,
    pub max_receive_count: Option<u32>,
}

/// The one decision about a message, from its verdict and its receive count.
pub fn decide(verdict: &Verdict, receive_count: u32, policy: Policy) -> Decision {
    let Err(failure) = verdict else {
        return Decision::Delete;
    };
    if failure.is_transient() {
        return Decision::Keep;
    }
    if policy
        .max_receive_count
        .is_some_and(|max| receive_count >= max)
    {
        return Decision::GiveUp;
    }
    if policy.has_redrive_policy {
        Decision::Release(Duration::ZERO)
    } else {
        Decision::Release(release_delay(receive_count))
    }
}

/// 2 s on the first receive, doubling with each one, at most 15 min.
pub fn release_delay(receive_count: u32) -> Duration {
    let doublings = receive_count.saturating_sub(1).min(20);
    (RELEASE_DELAY_FIRST * 2u32.pow(doublings)).min(RELEASE_DELAY_MAX)
}

/// A decision to carry out.
#[derive(Debug, Clone)]
pub enum Disposal {
    Delete(Receipt),
    Release(Receipt, Duration),
    /// Received while stopping, not started: visible again at once, for another worker.
    Return(Receipt),
}

/// Carries out disposals, up to ten per batch call, until the channel closes. Every queued
/// disposal is attempted before this returns, so closing the channel and awaiting this task
/// is how shutdown keeps finished work.
pub async fn run_disposer(
    sqs: aws_sdk_sqs::Client,
    queue_url: String,
    mut disposals: mpsc::Receiver<Disposal>,
    stats: Arc<Stats>,
) {
    let mut batch = Vec::with_capacity(10);
    while disposals.recv_many(&mut batch, 10).await > 0 {
        let mut deletions = Vec::new();
        let mut releases = Vec::new();
        let mut returns = Vec::new();
        for disposal in batch.drain(..) {
            match disposal {
                Disposal::Delete(receipt) => deletions.push(receipt),
                Disposal::Release(receipt, after) => releases.push((receipt, after)),
                Disposal::Return(receipt) => returns.push((receipt, Duration::ZERO)),
            }
        }
        if !deletions.is_empty() {
            delete_batch(&sqs, &queue_url, &deletions, &stats).await;
        }
        let counters = stats.counters::<AckCounters>();
        if !releases.is_empty() {
            let done = &counters.messages_released;
            release_batch(&sqs, &queue_url, &releases, done, &stats).await;
        }
        if !returns.is_empty() {
            let done = &counters.messages_returned;
            release_batch(&sqs, &queue_url, &returns, done, &stats).await;
        }
    }
}

/// Sets each message's visibility to its delay, counting those set in `done`. A release
/// that fails only delays redelivery until the visibility timeout.
async fn release_batch(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
    batch: &[(Receipt, Duration)],
    done: &Counter,
    stats: &Stats,
) {
    let entries = batch.iter().map(|(r, after)| {
        let seconds = i32::try_from(after.as_secs()).unwrap_or(i32::MAX);
        (r.receipt_handle.as_str(), seconds)
    });
    match set_visibility(sqs, queue_url, entries).await {
        Ok(out) => {
            for failed in out.failed() {
                let message_id = entry_of(batch, failed.id())
                    .map(|(r, _)| r.message_id.as_str())
                    .unwrap_or("?");
                warn!(
                    message_id,
                    code = failed.code(),
                    reason = failed.message().unwrap_or(""),
                    "release failed; the message comes back after its visibility timeout"
                );
                stats.counters::<AckCounters>().release_failures.add(1);
            }
            done.add(out.successful().len() as u64);
        }
        Err(err) => {
            warn!(
                count = batch.len(),
                error = %aws_sdk_sqs::error::DisplayErrorContext(&err),
                "release batch failed; the messages come back after their visibility timeout"
            );
            stats
                .counters::<AckCounters>()
                .release_failures
                .add(batch.len() as u64);
        }
    }
}

async fn delete_batch(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
    batch: &[Receipt],
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
                let message_id = entry_of(batch, failed.id())
                    .map(|d| d.message_id.as_str())
                    .unwrap_or("?");
                warn!(
                    message_id,
                    code = failed.code(),
                    reason = failed.message().unwrap_or(""),
                    "delete failed; the message will be redelivered and deduplicated"
                );
                stats.counters::<AckCounters>().delete_failures.add(1);
            }
            let deleted = out.successful().len();
            stats
                .counters::<AckCounters>()
                .messages_deleted
                .add(deleted as u64);
            debug!(deleted, "messages deleted");
        }
        Err(err) => {
            error!(
                count = batch.len(),
                error = %aws_sdk_sqs::error::DisplayErrorContext(&err),
                "delete batch failed; the messages will be redelivered and deduplicated"
            );
            stats
                .counters::<AckCounters>()
                .delete_failures
                .add(batch.len() as u64);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::Failure;
    use crate::source::sqs::notification::{NotificationError, UnreadableNotification};

    fn permanent() -> Verdict {
        Err(Failure::new(UnreadableNotification {
            error: NotificationError::Unrecognized,
            body_start: "{}".into(),
        }))
    }

    fn transient() -> Verdict {
        Err(Failure::Dropped)
    }

    #[test]
    fn one_decision_per_verdict_receive_count_and_policy() {
        let redrive = Policy {
            has_redrive_policy: true,
            max_receive_count: None,
        };
        let bare = Policy {
            has_redrive_policy: false,
            max_receive_count: None,
        };
        let give_up_at_3 = Policy {
            has_redrive_policy: false,
            max_receive_count: Some(3),
        };
        let table = [
            (Ok(()), 1, redrive, Decision::Delete),
            (Ok(()), 9, give_up_at_3, Decision::Delete),
            (permanent(), 1, redrive, Decision::Release(Duration::ZERO)),
            (
                permanent(),
                1,
                bare,
                Decision::Release(Duration::from_secs(2)),
            ),
            (
                permanent(),
                4,
                bare,
                Decision::Release(Duration::from_secs(16)),
            ),
            (
                permanent(),
                2,
                give_up_at_3,
                Decision::Release(Duration::from_secs(4)),
            ),
            (permanent(), 3, give_up_at_3, Decision::GiveUp),
            (transient(), 1, redrive, Decision::Keep),
            (transient(), 1, bare, Decision::Keep),
            // A transient failure is never given up on, however often it was received.
            (transient(), 3, give_up_at_3, Decision::Keep),
            (transient(), 50, give_up_at_3, Decision::Keep),
            (Err(Failure::Dropped), 5, give_up_at_3, Decision::Keep),
        ];
        for (verdict, receives, policy, expected) in table {
            assert_eq!(
                decide(&verdict, receives, policy),
                expected,
                "{verdict:?} on receive {receives} with {policy:?}"
            );
        }
    }

    #[test]
    fn release_delays_grow_and_are_capped() {
        let delays: Vec<u64> = (1..=12).map(|n| release_delay(n).as_secs()).collect();
        assert_eq!(delays, [2, 4, 8, 16, 32, 64, 128, 256, 512, 900, 900, 900]);
        assert_eq!(release_delay(u32::MAX), RELEASE_DELAY_MAX);
        assert_eq!(release_delay(0), RELEASE_DELAY_FIRST);
    }
}
