//! Counters of what the worker did, shared by all stages; logged at exit, returned by
//! [`crate::worker::run`] so that callers and tests can check them, and served as Prometheus
//! metrics by [`crate::metrics`]. Also the live state the metrics and `/readyz` report:
//! in-flight gauges, bulk latency, the newest indexed event time and reachability.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};

use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};

/// Latency of bulk requests, in seconds (10 ms to about 40 s).
#[derive(Debug)]
pub struct LatencyHistogram(pub Histogram);

impl Default for LatencyHistogram {
    fn default() -> Self {
        LatencyHistogram(Histogram::new(exponential_buckets(0.01, 2.0, 13)))
    }
}

#[derive(Debug, Default)]
pub struct Stats {
    pub messages_received: AtomicU64,
    pub messages_deleted: AtomicU64,
    /// Messages left in the queue because something failed (redelivered later).
    pub messages_kept: AtomicU64,
    /// Messages that failed for good, made visible again at once for the redrive policy.
    pub messages_released: AtomicU64,
    /// Messages deleted unprocessed after `--max-receive-count` receives.
    pub messages_given_up: AtomicU64,
    /// Visibility extensions of in-flight messages.
    pub visibility_extensions: AtomicU64,
    /// Messages still in flight when the shutdown grace period ran out.
    pub messages_abandoned: AtomicU64,
    pub delete_failures: AtomicU64,
    pub objects_read: AtomicU64,
    pub objects_failed: AtomicU64,
    /// Announced keys acknowledged without fetching (digests, non-log keys, deletes).
    pub keys_skipped: AtomicU64,
    pub bytes_read: AtomicU64,
    pub documents_indexed: AtomicU64,
    /// Documents answered 409: already indexed by an earlier delivery.
    pub documents_existing: AtomicU64,
    /// Documents the cluster rejected for good (dead-lettered or not).
    pub documents_rejected: AtomicU64,
    /// Rejected documents written to the dead-letter index.
    pub documents_dead_lettered: AtomicU64,
    /// Dead-letter entries the cluster rejected too (their messages stay in the queue).
    pub dead_letter_failures: AtomicU64,
    pub bulk_requests: AtomicU64,
    pub bulk_retries: AtomicU64,
    /// Messages that failed, by kind (both are also counted in `messages_kept`).
    pub messages_failed_permanent: AtomicU64,
    pub messages_failed_transient: AtomicU64,

    pub bulk_latency: LatencyHistogram,
    pub messages_in_flight: AtomicI64,
    pub bulk_in_flight: AtomicI64,
    /// Unix seconds of the newest `eventTime` indexed so far; 0 before the first.
    pub newest_event_secs: AtomicI64,
    /// The worker passed its start-up checks and is running.
    pub started: AtomicBool,
    /// The last bulk request got an answer from the cluster.
    pub cluster_reachable: AtomicBool,
    /// The last ReceiveMessage succeeded.
    pub queue_reachable: AtomicBool,
}

impl Stats {
    pub fn add(&self, counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Counts one unit in `gauge` until the guard is dropped.
    pub fn enter<'a>(&'a self, gauge: &'a AtomicI64) -> GaugeGuard<'a> {
        gauge.fetch_add(1, Ordering::Relaxed);
        GaugeGuard(gauge)
    }

    pub fn set(&self, flag: &AtomicBool, value: bool) {
        flag.store(value, Ordering::Relaxed);
    }

    pub fn get(&self, flag: &AtomicBool) -> bool {
        flag.load(Ordering::Relaxed)
    }

    /// Ready: started, and both the cluster and the queue answered last time.
    pub fn ready(&self) -> bool {
        self.get(&self.started)
            && self.get(&self.cluster_reachable)
            && self.get(&self.queue_reachable)
    }

    pub fn snapshot(&self) -> Summary {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Summary {
            messages_received: get(&self.messages_received),
            messages_deleted: get(&self.messages_deleted),
            messages_kept: get(&self.messages_kept),
            messages_released: get(&self.messages_released),
            messages_given_up: get(&self.messages_given_up),
            messages_failed_permanent: get(&self.messages_failed_permanent),
            messages_failed_transient: get(&self.messages_failed_transient),
            visibility_extensions: get(&self.visibility_extensions),
            messages_abandoned: get(&self.messages_abandoned),
            delete_failures: get(&self.delete_failures),
            objects_read: get(&self.objects_read),
            objects_failed: get(&self.objects_failed),
            keys_skipped: get(&self.keys_skipped),
            bytes_read: get(&self.bytes_read),
            documents_indexed: get(&self.documents_indexed),
            documents_existing: get(&self.documents_existing),
            documents_rejected: get(&self.documents_rejected),
            documents_dead_lettered: get(&self.documents_dead_lettered),
            dead_letter_failures: get(&self.dead_letter_failures),
            bulk_requests: get(&self.bulk_requests),
            bulk_retries: get(&self.bulk_retries),
        }
    }
}

/// A point-in-time copy of [`Stats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    pub messages_received: u64,
    pub messages_deleted: u64,
    pub messages_kept: u64,
    pub messages_released: u64,
    pub messages_given_up: u64,
    pub messages_failed_permanent: u64,
    pub messages_failed_transient: u64,
    pub visibility_extensions: u64,
    pub messages_abandoned: u64,
    pub delete_failures: u64,
    pub objects_read: u64,
    pub objects_failed: u64,
    pub keys_skipped: u64,
    pub bytes_read: u64,
    pub documents_indexed: u64,
    pub documents_existing: u64,
    pub documents_rejected: u64,
    pub documents_dead_lettered: u64,
    pub dead_letter_failures: u64,
    pub bulk_requests: u64,
    pub bulk_retries: u64,
}

/// See [`Stats::enter`].
pub struct GaugeGuard<'a>(&'a AtomicI64);

impl Drop for GaugeGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}
