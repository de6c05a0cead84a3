//! Stats: the counters of what the worker did, declared once in the `counters!` macro (name and
//! help text), from which come the [`Counters`] struct, the [`Summary`] snapshot returned at
//! exit, and every `/metrics` counter (`cloudtrail_ingest_<name>_total`). Also the live state
//! the metrics and `/readyz` report: in-flight gauges, bulk latency, the newest indexed event
//! time and whether the cluster and queue answered.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;

use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};

/// Declares every counter once: `name: "help"`.
macro_rules! counters {
    ($($name:ident: $help:literal,)*) => {
        /// Every counter of the worker; see the help texts.
        #[derive(Debug, Default)]
        pub struct Counters {
            $(#[doc = $help] pub $name: AtomicU64,)*
        }

        /// A point-in-time copy of the [`Counters`].
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
        pub struct Summary {
            $(#[doc = $help] pub $name: u64,)*
        }

        impl Counters {
            pub fn snapshot(&self) -> Summary {
                Summary { $($name: self.$name.load(Ordering::Relaxed),)* }
            }

            /// (name, help, counter) of every counter, in declaration order.
            pub fn all(&self) -> Vec<(&'static str, &'static str, &AtomicU64)> {
                vec![$((stringify!($name), $help, &self.$name),)*]
            }
        }
    };
}

counters! {
    messages_received: "SQS messages received",
    messages_deleted: "SQS messages deleted after everything they announced was indexed (or ignored, or given up on)",
    messages_ignored: "SQS messages that are notifications of other services (AWS Config, SNS subscription confirmations, other EventBridge sources), deleted unread",
    messages_kept: "SQS messages that failed and were left for a later receive",
    messages_released: "SQS messages made visible again after a permanent failure (at once with a redrive policy, later without)",
    messages_failed_permanent: "SQS messages that failed for good",
    messages_failed_transient: "SQS messages that failed for now and come back after their visibility timeout",
    messages_given_up: "SQS messages deleted after failing for good on their --max-receive-count receive",
    messages_abandoned: "SQS messages still in flight when the shutdown grace period ran out",
    delete_failures: "SQS messages whose deletion failed (they come back and are deduplicated)",
    release_failures: "SQS messages whose release failed (they come back after their visibility timeout)",
    visibility_extensions: "visibility timeout extensions of in-flight messages",
    objects_read: "S3 objects read to the end",
    objects_failed: "S3 objects that could not be read",
    keys_skipped: "announced keys acknowledged without reading (digests, non-log keys, deletes)",
    bytes_read: "bytes read from S3, as stored",
    documents_indexed: "documents indexed",
    documents_existing: "documents already indexed by an earlier delivery (409)",
    documents_rejected: "documents the cluster refused for good (dead-lettered or not)",
    documents_dead_lettered: "refused documents written to the dead-letter index",
    dead_letter_failures: "dead-letter entries the cluster refused too",
    bulk_requests: "bulk requests sent",
    bulk_retries: "bulk retries (whole requests and failed items)",
    bulk_failures: "bulk requests whose response could not be used; their events failed",
    records_consumed: "Kafka records received",
    records_fallback_time: "records placed by a fallback time (a Kafka record's timestamp, an S3 object's LastModified) for lack of a usable time of their own",
    records_unreadable: "Kafka records and lines of S3 JSON-lines objects that are no JSON object, sent to the dead-letter index",
    records_retried: "Kafka records sent to the cluster again after a failure (their offsets wait)",
    offset_commits: "Kafka offset commits that succeeded",
    offset_commit_failures: "Kafka offset commits that failed (retried at the next commit)",
    rebalances: "Kafka partition revocations (rebalances, shutdown)",
    requests_received: "webhook POSTs to the webhook path",
    requests_accepted: "webhook requests answered 200 (every entry indexed or dead-lettered)",
    requests_unauthorized: "webhook requests refused with 401 (wrong or missing Authorization)",
    requests_too_large: "webhook requests refused with 413 (over --webhook-max-body, compressed or not)",
    requests_busy: "webhook requests refused with 503 at capacity (--webhook-max-in-flight)",
    requests_unavailable: "webhook requests refused with 503 because the cluster is unavailable",
    requests_failed: "webhook requests answered 503/500 because their entries did not settle (in time)",
    entries_received: "webhook entries read",
    entries_unreadable: "webhook entries (or whole bodies) that are not JSON or CEF, sent to the dead-letter index",
    entries_fallback_time: "webhook entries placed by the time they were received for lack of their own",
    list_requests: "backfill: S3 ListObjectsV2 requests (folder discovery and object listing)",
    objects_listed: "backfill: objects listed",
    objects_resumed: "backfill: listed objects not fetched because the checkpoint says they settled",
    alerts_indexed: "alerts indexed: new matches of a detection rule (not counted in documents_indexed)",
    alerts_existing: "alerts already indexed by an earlier delivery of their event (409)",
    alert_webhook_delivered: "alerts an --alert-webhook accepted (2xx)",
    alert_webhook_retried: "alert POSTs retried (no connection, timeout, 408, 429 or 5xx)",
    alert_webhook_failed: "alerts a webhook refused (4xx) or that were not delivered after every attempt",
    alert_webhook_dropped: "alerts not queued for a webhook because its queue was full",
}

/// Latency of bulk requests, in seconds (10 ms to about 40 s).
#[derive(Debug)]
pub struct LatencyHistogram(pub Histogram);

impl Default for LatencyHistogram {
    fn default() -> Self {
        LatencyHistogram(Histogram::new(exponential_buckets(0.01, 2.0, 13)))
    }
}

#[derive(Debug)]
pub struct Stats {
    pub counters: Counters,
    pub bulk_latency: LatencyHistogram,
    pub messages_in_flight: AtomicI64,
    pub bulk_in_flight: AtomicI64,
    /// Unix seconds of the newest event time indexed so far; 0 before the first.
    pub newest_event_secs: AtomicI64,
    /// The worker passed its start-up checks and is running.
    pub started: AtomicBool,
    /// The last bulk request got an answer from the cluster.
    pub cluster_reachable: AtomicBool,
    /// The cluster did not refuse the credentials on the last bulk request.
    pub cluster_authorized: AtomicBool,
    /// The source answered on its last request (SQS: ReceiveMessage; Kafka: the brokers).
    pub source_reachable: AtomicBool,
    /// Kafka consumer lag per assigned partition (high watermark minus committed offset),
    /// from librdkafka's statistics.
    pub partition_lag: Mutex<Vec<((String, i32), i64)>>,
    /// The detection rules in use, for their match counts.
    pub rules: std::sync::OnceLock<std::sync::Arc<crate::detect::alert::Alerter>>,
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            counters: Counters::default(),
            bulk_latency: LatencyHistogram::default(),
            messages_in_flight: AtomicI64::new(0),
            bulk_in_flight: AtomicI64::new(0),
            newest_event_secs: AtomicI64::new(0),
            started: AtomicBool::new(false),
            cluster_reachable: AtomicBool::new(false),
            cluster_authorized: AtomicBool::new(true),
            source_reachable: AtomicBool::new(false),
            partition_lag: Mutex::new(Vec::new()),
            rules: std::sync::OnceLock::new(),
        }
    }
}

impl Stats {
    /// Reports the matches of `alerter`'s rules from now on (the first one set stays).
    pub fn watch_rules(&self, alerter: std::sync::Arc<crate::detect::alert::Alerter>) {
        let _ = self.rules.set(alerter);
    }
}

/// `stats.add(&stats.documents_indexed, 1)`: the counters read as fields of the stats.
impl std::ops::Deref for Stats {
    type Target = Counters;
    fn deref(&self) -> &Counters {
        &self.counters
    }
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

    /// Ready: started, the cluster answered and accepted the credentials, and the source
    /// answered, each on its last request.
    pub fn ready(&self) -> bool {
        self.get(&self.started)
            && self.get(&self.cluster_reachable)
            && self.get(&self.cluster_authorized)
            && self.get(&self.source_reachable)
    }
}

/// See [`Stats::enter`].
pub struct GaugeGuard<'a>(&'a AtomicI64);

impl Drop for GaugeGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}
