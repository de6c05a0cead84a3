//! Heartbeat: keeps in-flight messages invisible while they are processed.
//!
//! Every received copy of a message is tracked, by its own receipt handle, from receipt until
//! its task is done (the [`Tracked`] guard): SQS may hand out the same message twice (at-least
//! -once delivery, or a redelivery while the first copy is still being worked on), and each
//! copy's receipt must be extended for as long as that copy is in flight. Every third of the queue's VisibilityTimeout, one `ChangeMessageVisibilityBatch`
//! per ten tracked messages resets their timeout to the full VisibilityTimeout, so a message
//! never reappears (and is never processed twice in parallel, here or by another worker)
//! while it is still being worked on, however large its objects or slow the cluster. A
//! message tracked for longer than `--max-processing-time` is no longer extended: it
//! becomes visible again when its timeout runs out, and the log says so.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_sqs::error::SdkError;
use aws_sdk_sqs::operation::change_message_visibility_batch::{
    ChangeMessageVisibilityBatchError, ChangeMessageVisibilityBatchOutput,
};
use aws_sdk_sqs::types::ChangeMessageVisibilityBatchRequestEntry;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, warn};

use crate::telemetry::Stats;

crate::telemetry::counters! {
    /// What the heartbeat did.
    pub struct HeartbeatCounters {
        visibility_extensions: "visibility timeout extensions of in-flight messages",
    }
}

/// SQS changes at most this many messages per batch call.
const BATCH: usize = 10;

#[derive(Debug)]
struct Entry {
    message_id: String,
    receipt_handle: String,
    since: Instant,
}

/// The received copies to keep invisible, each under its own key.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    entries: Arc<Mutex<HashMap<u64, Entry>>>,
    next: Arc<AtomicU64>,
}

/// Keeps one received copy tracked until dropped.
#[derive(Debug)]
pub struct Tracked {
    registry: Registry,
    key: u64,
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.registry.lock().remove(&self.key);
    }
}

impl Registry {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Entry>> {
        self.entries
            .lock()
            .expect("heartbeat lock is never poisoned")
    }

    /// Tracks one received copy from now until the guard is dropped.
    pub fn track(&self, message_id: &str, receipt_handle: &str) -> Tracked {
        let key = self.next.fetch_add(1, Ordering::Relaxed);
        self.lock().insert(
            key,
            Entry {
                message_id: message_id.to_string(),
                receipt_handle: receipt_handle.to_string(),
                since: Instant::now(),
            },
        );
        Tracked {
            registry: self.clone(),
            key,
        }
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The (message id, receipt handle) pairs to extend now; drops from the registry those
    /// past `max_processing`, returning their ids separately.
    fn due(&self, max_processing: Duration) -> (Vec<(String, String)>, Vec<String>) {
        let now = Instant::now();
        let mut entries = self.lock();
        let expired: Vec<u64> = entries
            .iter()
            .filter(|(_, e)| now.duration_since(e.since) >= max_processing)
            .map(|(key, _)| *key)
            .collect();
        let expired = expired
            .into_iter()
            .filter_map(|key| entries.remove(&key))
            .map(|e| e.message_id)
            .collect();
        let due = entries
            .values()
            .map(|e| (e.message_id.clone(), e.receipt_handle.clone()))
            .collect();
        (due, expired)
    }
}

/// How often to extend, for a queue VisibilityTimeout: a third of it, at least a second.
pub fn interval(visibility_timeout: Duration) -> Duration {
    (visibility_timeout / 3).max(Duration::from_secs(1))
}

/// Extends the visibility of every tracked message until `stop` is cancelled.
pub async fn run(
    sqs: aws_sdk_sqs::Client,
    queue_url: String,
    registry: Registry,
    visibility_timeout: Duration,
    max_processing: Duration,
    stats: Arc<Stats>,
    stop: CancellationToken,
) {
    let mut ticker = tokio::time::interval(interval(visibility_timeout));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await;
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            () = stop.cancelled() => return,
        }
        let (due, expired) = registry.due(max_processing);
        for message_id in expired {
            warn!(
                message_id,
                max_processing_time = ?max_processing,
                "message still in flight after --max-processing-time; no longer extending its visibility"
            );
        }
        for chunk in due.chunks(BATCH) {
            extend(&sqs, &queue_url, chunk, visibility_timeout, &stats).await;
        }
    }
}

async fn extend(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
    chunk: &[(String, String)],
    visibility_timeout: Duration,
    stats: &Stats,
) {
    let seconds = i32::try_from(visibility_timeout.as_secs()).unwrap_or(i32::MAX);
    let entries = chunk.iter().map(|(_, handle)| (handle.as_str(), seconds));
    match set_visibility(sqs, queue_url, entries).await {
        Ok(out) => {
            stats
                .counters::<HeartbeatCounters>()
                .visibility_extensions
                .add(out.successful().len() as u64);
            for failed in out.failed() {
                // Typically a message that was deleted a moment ago.
                let message_id = entry_of(chunk, failed.id())
                    .map(|(id, _)| id.as_str())
                    .unwrap_or("?");
                debug!(
                    message_id,
                    code = failed.code(),
                    reason = failed.message().unwrap_or(""),
                    "visibility not extended"
                );
            }
            debug!(
                extended = out.successful().len(),
                "visibility of in-flight messages extended"
            );
        }
        Err(err) => error!(
            count = chunk.len(),
            error = %aws_sdk_sqs::error::DisplayErrorContext(&err),
            "extending visibility failed; the messages may reappear before they are done"
        ),
    }
}

/// The entry of a batch call that an answer's id names: ids are positions in the batch.
pub(crate) fn entry_of<'a, T>(batch: &'a [T], id: &str) -> Option<&'a T> {
    id.parse::<usize>().ok().and_then(|i| batch.get(i))
}

/// One `ChangeMessageVisibilityBatch` call (at most ten entries) that sets the visibility
/// timeout of each receipt handle to its seconds; each entry's id is its position.
pub(crate) async fn set_visibility<'a>(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
    entries: impl Iterator<Item = (&'a str, i32)>,
) -> Result<ChangeMessageVisibilityBatchOutput, SdkError<ChangeMessageVisibilityBatchError>> {
    let entries: Vec<_> = entries
        .enumerate()
        .map(|(i, (handle, seconds))| {
            ChangeMessageVisibilityBatchRequestEntry::builder()
                .id(i.to_string())
                .receipt_handle(handle)
                .visibility_timeout(seconds)
                .build()
                .expect("id and receipt handle are set")
        })
        .collect();
    sqs.change_message_visibility_batch()
        .queue_url(queue_url)
        .set_entries(Some(entries))
        .send()
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extends_at_a_third_of_the_timeout() {
        assert_eq!(interval(Duration::from_secs(30)), Duration::from_secs(10));
        assert_eq!(interval(Duration::from_secs(2)), Duration::from_secs(1));
    }

    #[test]
    fn two_copies_of_one_message_are_both_extended() {
        let registry = Registry::default();
        let first = registry.track("m", "receipt-1");
        let second = registry.track("m", "receipt-2");
        let (mut due, _) = registry.due(Duration::from_secs(60));
        due.sort();
        assert_eq!(
            due,
            vec![
                ("m".to_string(), "receipt-1".to_string()),
                ("m".to_string(), "receipt-2".to_string())
            ]
        );
        drop(first);
        let (due, _) = registry.due(Duration::from_secs(60));
        assert_eq!(due, vec![("m".to_string(), "receipt-2".to_string())]);
        drop(second);
        assert!(registry.is_empty());
    }

    #[test]
    fn tracks_until_dropped_and_stops_after_the_maximum() {
        let registry = Registry::default();
        let a = registry.track("a", "ha");
        let _b = registry.track("b", "hb");
        assert_eq!(registry.due(Duration::from_secs(60)).0.len(), 2);
        drop(a);
        let (due, expired) = registry.due(Duration::from_secs(60));
        assert_eq!(due, vec![("b".to_string(), "hb".to_string())]);
        assert!(expired.is_empty());
        let (due, expired) = registry.due(Duration::ZERO);
        assert!(due.is_empty());
        assert_eq!(expired, vec!["b".to_string()]);
        assert!(registry.is_empty());
    }
}
