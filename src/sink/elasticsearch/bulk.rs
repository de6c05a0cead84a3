//! Bulk: events -> bulk requests -> a final outcome per event.
//!
//! Events from every payload are batched together, bounded by bytes (`--bulk-max-bytes`) and
//! by a linger time (`--bulk-linger`); up to `--bulk-concurrency` requests are in flight, and
//! while they are, no more events are taken, so the bounded channel in front pushes back on
//! the source. Each event is written as a `create` into `<prefix>-YYYY.MM.DD` (its time's UTC
//! day) with `_id` = the event's id.
//!
//! Every item of every response is read: `errors: true` is not success. Per item:
//! 2xx is indexed, 409 is "already indexed" (an earlier delivery of the same event: done),
//! 429/5xx is retried, anything else is a rejection. A rejection that is about the document
//! (see [`super::dead_letter`]) is written to the dead-letter index, and once that write is
//! accepted the event counts as settled; every other rejection, a failed dead-letter write,
//! or any rejection while dead-lettering is off, fails the event's payload. This module is
//! the one retry layer for cluster writes, with jittered exponential backoff:
//! - a whole request that fails with a connection error, 429 or 5xx means the cluster is
//!   down or overloaded: it is retried until the cluster answers (backoff capped at 30 s).
//!   Meanwhile nothing new is taken, the bounded channel in front fills and the source stops
//!   taking payloads: the worker slows down to the cluster's pace with bounded memory, while
//!   the source keeps its in-flight payloads (the SQS heartbeat keeps them invisible).
//!   Cycling them through the queue instead would count receives towards the redrive limit
//!   and park healthy messages in the DLQ during an outage.
//! - a whole request answered 401 or 403 means the credentials (or their privileges) are
//!   wrong: it is held the same way, readiness goes false, and one error line per minute says
//!   so, until the cluster accepts the credentials again; nothing is failed or dead-lettered
//!   for it.
//! - items answered 429/5xx are retried alone, at most `--bulk-max-attempts` times per
//!   batch; then their events fail (transient) and their payloads come back later.
//! - a response that does not match the request fails its events (transient): the payload
//!   comes back and the items already written are answered 409.
//!
//! If a bulk task panics, its events settle as dropped (their claims do that) and the
//! indexer stops with an error, so the worker exits non-zero instead of stalling.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use bytes::Bytes;
use time::OffsetDateTime;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tracing::{debug, error, info, info_span, warn, Instrument};

use super::client::Cluster;
use super::dead_letter::{self, Rejection};
use super::request::{self, append_create, gzip, Bodies};
use super::response::{BulkError, ItemOutcome};
use super::sigv4;
use crate::pipeline::{
    index_name, Budget, Dataset, Event, EventReceiver, Failure, Indices, Origin, Pending,
    StageError,
};
use crate::telemetry::Stats;

crate::telemetry::counters! {
    /// What the sink did with the documents of the sources and their requests.
    pub struct SinkCounters {
        documents_indexed: "documents indexed",
        documents_existing: "documents already indexed by an earlier delivery (409)",
        documents_rejected: "documents the cluster refused for good (dead-lettered or not)",
        documents_dead_lettered: "refused documents written to the dead-letter index",
        dead_letter_failures: "dead-letter entries the cluster refused too",
        bulk_requests: "bulk requests sent",
        bulk_retries: "bulk retries (whole requests and failed items)",
        bulk_failures: "bulk requests whose response could not be used; their events failed",
    }
}

/// Why the sink could not settle an event.
#[derive(Debug, thiserror::Error)]
pub enum IndexFailure {
    /// The cluster refused the document and it was not dead-lettered.
    #[error("document {id} of {origin} rejected by {index}: {rejection} ({why_kept})")]
    Rejected {
        index: String,
        id: String,
        origin: Arc<Origin>,
        rejection: Rejection,
        why_kept: &'static str,
    },
    /// The dead-letter index refused the entry of a refused document.
    #[error("dead-letter entry {id} of {origin} rejected: {rejection}")]
    DeadLetterRejected {
        id: String,
        origin: Arc<Origin>,
        rejection: Rejection,
    },
    /// Items answered 429/5xx until `--bulk-max-attempts` ran out.
    #[error("bulk retries exhausted: HTTP {status} {reason}")]
    RetriesExhausted { status: u16, reason: String },
    /// A whole bulk request failed in a way that retrying the request cannot fix (a response
    /// that does not match the request, an unexpected status).
    #[error("{0}")]
    Bulk(BulkError),
}

impl StageError for IndexFailure {
    fn is_transient(&self) -> bool {
        match self {
            IndexFailure::Rejected { rejection, .. } => !rejection.is_about_the_document(),
            IndexFailure::DeadLetterRejected { .. } => false,
            IndexFailure::RetriesExhausted { .. } | IndexFailure::Bulk(_) => true,
        }
    }
}

/// While the cluster refuses the credentials, say so at most this often.
const AUTH_LOG_EVERY: Duration = Duration::from_secs(60);

/// How batches are cut and retried, and where events go.
#[derive(Debug, Clone)]
pub struct BulkSettings {
    /// The index prefix of each dataset.
    pub indices: Indices,
    pub max_bytes: usize,
    pub linger: Duration,
    pub concurrency: usize,
    pub max_attempts: usize,
    pub min_backoff: Duration,
    pub max_backoff: Duration,
    /// Send bodies gzipped (`Content-Encoding: gzip`).
    pub gzip: bool,
    /// Prefix of the dead-letter indices; `None` turns dead-lettering off.
    pub dead_letter_prefix: Option<String>,
}

/// The sink stopped before its input closed.
#[derive(Debug, thiserror::Error)]
pub enum IndexerError {
    #[error("a bulk task panicked: {0}")]
    Panicked(String),
}

/// One event in a bulk request: the event itself, or the dead-letter entry of a refused one.
#[derive(Debug)]
struct Item {
    pending: Pending,
    index: Arc<str>,
    dead_letter: bool,
}

/// Events waiting for the next bulk request.
#[derive(Default)]
struct Batch {
    items: Vec<Item>,
    bytes: usize,
    /// The bytes of the budget its events hold (see [`Pending::budgeted`]).
    weight: usize,
    /// When the batch must go even if it is not full; set by its first event.
    deadline: Option<Instant>,
}

impl Batch {
    fn push(&mut self, item: Item, linger: Duration) {
        self.bytes += item.pending.event.source.len();
        self.weight += item.pending.budgeted();
        self.items.push(item);
        self.deadline.get_or_insert_with(|| Instant::now() + linger);
    }

    /// The batch, leaving an empty one with room for as many items.
    fn take(&mut self) -> Batch {
        let next = Batch {
            items: Vec::with_capacity(self.items.len()),
            ..Batch::default()
        };
        std::mem::replace(self, next)
    }
}

/// What every bulk task shares.
struct Shared {
    client: Cluster,
    settings: BulkSettings,
    stats: Arc<Stats>,
    counters: Arc<SinkCounters>,
    /// Paces the "credentials refused" line.
    auth_log: LogEvery,
    /// Bodies of requests done, for the next ones.
    bodies: Arc<Bodies>,
}

/// Lets a line through at most once per period, across all bulk tasks.
struct LogEvery {
    period: Duration,
    last: Mutex<Option<std::time::Instant>>,
}

impl LogEvery {
    fn new(period: Duration) -> Self {
        LogEvery {
            period,
            last: Mutex::new(None),
        }
    }

    /// Whether to write the line at `now`; the first time always.
    fn due(&self, now: std::time::Instant) -> bool {
        let mut last = self.last.lock().expect("the log clock is never poisoned");
        if last.is_none_or(|at| now.duration_since(at) >= self.period) {
            *last = Some(now);
            true
        } else {
            false
        }
    }
}

/// Takes events until the channel closes, indexes them, and settles each one. Returns an
/// error if a bulk task panicked (its events settled as dropped).
pub async fn run_indexer(
    client: Cluster,
    settings: BulkSettings,
    mut events: EventReceiver,
    stats: Arc<Stats>,
) -> Result<(), IndexerError> {
    let shared = Arc::new(Shared {
        client,
        counters: stats.counters(),
        stats,
        auth_log: LogEvery::new(AUTH_LOG_EVERY),
        bodies: Bodies::new(settings.concurrency, 2 * settings.max_bytes),
        settings,
    });
    let mut taken = Taken {
        batch: Batch::default(),
        held: Budget::empty(),
        names: IndexNames::default(),
        in_flight: JoinSet::new(),
    };
    loop {
        let deadline = taken.batch.deadline;
        let linger = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            received = events.recv() => {
                let Some(parcel) = received else { break };
                taken.held.merge(parcel.budget);
                for pending in parcel.events {
                    taken.take(&shared, pending).await?;
                }
            }
            () = linger => taken.dispatch(&shared).await?,
        }
    }
    if !taken.batch.items.is_empty() {
        taken.dispatch(&shared).await?;
    }
    while let Some(joined) = taken.in_flight.join_next().await {
        joined_ok(joined)?;
    }
    Ok(())
}

/// What the indexer holds: the batch being filled, the budget of the events it took and
/// has not yet sent, and the requests in flight.
struct Taken {
    batch: Batch,
    /// The shares of the budget of the parcels taken, less what each request took along.
    held: Budget,
    names: IndexNames,
    in_flight: JoinSet<()>,
}

impl Taken {
    /// Adds `pending` to the batch, sending the batch first if it would not fit, and after
    /// if it is full.
    async fn take(
        &mut self,
        shared: &Arc<Shared>,
        mut pending: Pending,
    ) -> Result<(), IndexerError> {
        let settings = &shared.settings;
        let index = self.names.of(&settings.indices, &pending.event);
        let refusal = pending.refusal.take();
        let mut item = Item {
            pending,
            index,
            dead_letter: false,
        };
        if let Some(reason) = refusal {
            // Refused by its source (not JSON): straight to the dead-letter index.
            let weight = item.pending.budgeted();
            match reject(
                settings,
                &shared.counters,
                item,
                Rejection::unreadable(reason),
            ) {
                Some(entry) => item = entry,
                None => {
                    drop(self.held.split(weight));
                    return Ok(());
                }
            }
        }
        let len = item.pending.event.source.len();
        if !self.batch.items.is_empty() && self.batch.bytes + len > settings.max_bytes {
            self.dispatch(shared).await?;
        }
        self.batch.push(item, settings.linger);
        if self.batch.bytes >= settings.max_bytes {
            self.dispatch(shared).await?;
        }
        Ok(())
    }

    /// Sends the batch, with its share of the budget, once a request slot is free.
    async fn dispatch(&mut self, shared: &Arc<Shared>) -> Result<(), IndexerError> {
        let batch = self.batch.take();
        let budget = self.held.split(batch.weight);
        dispatch(shared, &mut self.in_flight, batch, budget).await
    }
}

/// The daily index of each event, named once per dataset and day rather than per event.
#[derive(Default)]
struct IndexNames {
    last: Option<(Dataset, i64, Arc<str>)>,
}

impl IndexNames {
    fn of(&mut self, indices: &Indices, event: &Event) -> Arc<str> {
        let day = event.time.unix_timestamp().div_euclid(86_400);
        match &self.last {
            Some((dataset, last, name)) if *dataset == event.dataset && *last == day => {
                name.clone()
            }
            _ => {
                let name: Arc<str> = indices.index(event.dataset, event.time).into();
                self.last = Some((event.dataset, day, name.clone()));
                name
            }
        }
    }
}

fn joined_ok(joined: Result<(), tokio::task::JoinError>) -> Result<(), IndexerError> {
    match joined {
        Ok(()) => Ok(()),
        Err(err) if err.is_cancelled() => Ok(()),
        Err(err) => {
            let panic = err.into_panic();
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            error!(panic = %message, "a bulk task panicked; its events are failed and the indexer stops");
            Err(IndexerError::Panicked(message))
        }
    }
}

/// Starts a bulk request for `batch`, first waiting for a free slot; `budget`, the batch's
/// share of the byte budget, is given back once every event of the batch is settled.
async fn dispatch(
    shared: &Arc<Shared>,
    in_flight: &mut JoinSet<()>,
    batch: Batch,
    budget: Budget,
) -> Result<(), IndexerError> {
    while in_flight.len() >= shared.settings.concurrency {
        if let Some(joined) = in_flight.join_next().await {
            joined_ok(joined)?;
        }
    }
    let shared = shared.clone();
    let span = info_span!("bulk", docs = batch.items.len(), bytes = batch.bytes);
    in_flight.spawn(
        async move {
            index_batch(&shared, batch.items).await;
            drop(budget);
        }
        .instrument(span),
    );
    Ok(())
}

fn body_of(bodies: &Bodies, indices: &Indices, items: &[Item]) -> Vec<u8> {
    let size = items
        .iter()
        .map(|i| i.pending.event.source.len() + i.index.len() + i.pending.event.id.len() + 40)
        .sum();
    let mut body = bodies.take(size);
    for item in items {
        let event = &item.pending.event;
        // A data stream's writes name their ingest pipeline (`_none`: the documents are
        // finished, and Elastic's integration's default pipeline must not run on them).
        let pipeline = (!item.dead_letter)
            .then(|| indices.pipeline(event.dataset))
            .flatten();
        append_create(&mut body, &item.index, &event.id, pipeline, &event.source);
    }
    body
}

/// Sends `items`, retrying the whole request or only its failed items, and settles every
/// event exactly once.
async fn index_batch(shared: &Shared, mut items: Vec<Item>) {
    let Shared {
        settings,
        stats,
        counters,
        ..
    } = shared;
    let backoff_items = ExponentialBuilder::default()
        .with_jitter()
        .with_min_delay(settings.min_backoff)
        .with_max_delay(settings.max_backoff);
    let mut backoff = backoff_items
        .with_max_times(settings.max_attempts.saturating_sub(1))
        .build();
    let mut outage = backoff_items.without_max_times().build();
    loop {
        let outcomes = match send_batch(shared, &items).await {
            // The cluster is down, overloaded or refuses the credentials: hold the batch.
            Err(err) if err.is_transient() || err.is_unauthorized() => {
                let delay = outage.next().unwrap_or(settings.max_backoff);
                if err.is_unauthorized() {
                    refused_credentials(shared, &err, items.len(), delay);
                } else {
                    warn!(error = %err, docs = items.len(), retry_in = ?delay, "cluster unavailable; holding the batch and retrying");
                }
                counters.bulk_retries.add(1);
                tokio::time::sleep(delay).await;
                continue;
            }
            Err(err) => {
                warn!(error = %err, docs = items.len(), "bulk request failed; their payloads come back later");
                counters.bulk_failures.add(1);
                fail_all(items, Failure::new(IndexFailure::Bulk(err)));
                return;
            }
            Ok(outcomes) => outcomes,
        };
        if !stats.get(&stats.cluster_authorized) {
            stats.set(&stats.cluster_authorized, true);
            info!("the cluster accepts the credentials again; ingesting");
        }
        outage = backoff_items.without_max_times().build();
        let Sorted {
            mut retry,
            mut dead_letters,
            last,
        } = sort(shared, items, outcomes);
        if retry.is_empty() {
            if dead_letters.is_empty() {
                return;
            }
            // Dead-letter entries go out at once; they need no backoff.
            items = dead_letters;
            continue;
        }
        retry.append(&mut dead_letters);
        items = retry;
        match backoff.next() {
            Some(delay) => {
                warn!(items = items.len(), status = last.0, reason = %last.1, retry_in = ?delay, "bulk items failed; retrying them");
                counters.bulk_retries.add(1);
                tokio::time::sleep(delay).await;
            }
            None => {
                warn!(docs = items.len(), status = last.0, reason = %last.1, "bulk retries exhausted; their payloads come back later");
                let (status, reason) = last;
                fail_all(
                    items,
                    Failure::new(IndexFailure::RetriesExhausted { status, reason }),
                );
                return;
            }
        }
    }
}

/// Encodes `items` (gzipped when asked), sends them as one bulk request and returns the
/// outcome of each; records the latency and whether the cluster answered.
async fn send_batch(shared: &Shared, items: &[Item]) -> Result<Vec<ItemOutcome>, BulkError> {
    let Shared {
        client,
        settings,
        stats,
        counters,
        ..
    } = shared;
    let body = shared
        .bodies
        .share(body_of(&shared.bodies, &shared.settings.indices, items));
    counters.bulk_requests.add(1);
    let started = Instant::now();
    let body = if settings.gzip {
        tokio::task::spawn_blocking(move || Bytes::from(gzip(&body)))
            .await
            .expect("compression does not panic")
    } else {
        body
    };
    let result = {
        let _in_flight = stats.enter(&stats.bulk_in_flight);
        request::send(client, body, settings.gzip, items.len()).await
    };
    let elapsed = started.elapsed();
    stats.bulk_latency.0.observe(elapsed.as_secs_f64());
    stats.set(
        &stats.cluster_reachable,
        !matches!(&result, Err(err) if err.is_transient()),
    );
    debug!(?elapsed, "bulk request answered");
    result
}

/// What is left of a batch once its response is read.
struct Sorted {
    /// Items to send again, after a backoff.
    retry: Vec<Item>,
    /// Dead-letter entries of refused items, to send at once.
    dead_letters: Vec<Item>,
    /// The status and reason of the last item to retry.
    last: (u16, String),
}

/// Settles the items the cluster took, turns refused ones into dead-letter entries and
/// keeps the rest for a retry.
fn sort(shared: &Shared, items: Vec<Item>, outcomes: Vec<ItemOutcome>) -> Sorted {
    let mut sorted = Sorted {
        retry: Vec::new(),
        dead_letters: Vec::new(),
        last: (0, String::new()),
    };
    let mut written = Written::default();
    for (item, outcome) in items.into_iter().zip(outcomes) {
        match outcome {
            ItemOutcome::Indexed | ItemOutcome::AlreadyIndexed => {
                written.settle(item, outcome == ItemOutcome::Indexed, &shared.counters);
            }
            ItemOutcome::Retry { status, reason } => {
                sorted.last = (status, reason);
                sorted.retry.push(item);
            }
            ItemOutcome::Rejected(rejection) => {
                if let Some(entry) = reject(&shared.settings, &shared.counters, item, rejection) {
                    sorted.dead_letters.push(entry);
                }
            }
        }
    }
    shared.stats.wrote(written.count, written.newest);
    sorted
}

/// The items of one response the cluster took, counted as they settle.
#[derive(Default)]
struct Written {
    /// Documents of the sources (not dead-letter entries, not what a stage added).
    count: u64,
    newest: Option<i64>,
}

impl Written {
    /// Settles `item`, which the cluster took (`created`, or already there), counting it
    /// where it belongs: a dead-letter entry as dead-lettered, what a stage added (an alert)
    /// by that stage's hook, anything else as a document of the sources.
    fn settle(&mut self, item: Item, created: bool, counters: &SinkCounters) {
        let pending = &item.pending;
        if item.dead_letter {
            counters.documents_dead_lettered.add(1);
        } else if let Some(hook) = &pending.on_written {
            hook.written(&pending.event, created);
        } else if created {
            counters.documents_indexed.add(1);
            self.count += 1;
            let secs = pending.event.time.unix_timestamp();
            self.newest = Some(self.newest.map_or(secs, |n| n.max(secs)));
        } else {
            counters.documents_existing.add(1);
            self.count += 1;
        }
        item.pending.settle(Ok(()));
    }
}

fn fail_all(items: Vec<Item>, failure: Failure) {
    for item in items {
        item.pending.settle(Err(failure.clone()));
    }
}

/// Readiness goes false, and one error line per [`AUTH_LOG_EVERY`] says why.
fn refused_credentials(shared: &Shared, err: &BulkError, docs: usize, retry_in: Duration) {
    let stats = &shared.stats;
    stats.set(&stats.cluster_authorized, false);
    let signed = shared.client.signer().map(|signer| match err {
        BulkError::Status { status, body } => {
            let diagnosis = sigv4::diagnose(*status, body, signer.service(), signer.region());
            if diagnosis.refetch {
                signer.forget();
            }
            diagnosis.hint
        }
        other => other.to_string(),
    });
    if shared.auth_log.due(std::time::Instant::now()) {
        match signed {
            Some(hint) => error!(
                error = %err,
                docs,
                retry_in = ?retry_in,
                "the cluster refuses the signed requests: {hint}; holding every batch until it accepts them"
            ),
            None => error!(
                error = %err,
                docs,
                retry_in = ?retry_in,
                "the cluster refuses the credentials or their privileges (fix the user, API key or role: it needs create_doc/index on the event and dead-letter indices); holding every batch until it accepts them"
            ),
        }
    }
}

/// Handles a refused item: returns its dead-letter entry when it should be written,
/// otherwise settles it as failed.
fn reject(
    settings: &BulkSettings,
    counters: &SinkCounters,
    item: Item,
    rejection: Rejection,
) -> Option<Item> {
    let event = &item.pending.event;
    let origin = item.pending.origin.clone();
    if item.dead_letter {
        counters.dead_letter_failures.add(1);
        error!(
            index = %item.index, id = %event.id, rejection = %rejection,
            "the dead-letter index rejected an entry; its payload comes back later"
        );
        let failure = Failure::new(IndexFailure::DeadLetterRejected {
            id: event.id.clone(),
            origin,
            rejection,
        });
        item.pending.settle(Err(failure));
        return None;
    }
    counters.documents_rejected.add(1);
    let why_kept = match &settings.dead_letter_prefix {
        Some(prefix) if rejection.is_about_the_document() => {
            warn!(
                index = %item.index, id = %event.id, origin = %origin, rejection = %rejection,
                "document rejected; writing it to the dead-letter index"
            );
            let entry = dead_letter::build(
                event,
                &item.index,
                &item.pending.origin,
                &rejection,
                OffsetDateTime::now_utc(),
            );
            let index = index_name(prefix, event.time).into();
            let mut pending = item.pending;
            pending.event = entry;
            return Some(Item {
                pending,
                index,
                dead_letter: true,
            });
        }
        Some(_) => "the error is about the cluster's set-up, not the document",
        None => "dead-lettering is off",
    };
    warn!(
        index = %item.index, id = %event.id, origin = %origin, rejection = %rejection,
        "document rejected; its payload comes back later because {why_kept}"
    );
    let failure = Failure::new(IndexFailure::Rejected {
        index: item.index.to_string(),
        id: event.id.clone(),
        origin,
        rejection,
        why_kept,
    });
    item.pending.settle(Err(failure));
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_credentials_are_logged_once_per_minute() {
        let clock = LogEvery::new(AUTH_LOG_EVERY);
        let start = std::time::Instant::now();
        let at = |secs| start + Duration::from_secs(secs);
        let logged: Vec<u64> = [0, 1, 30, 59, 60, 61, 119, 120, 300]
            .into_iter()
            .filter(|&s| clock.due(at(s)))
            .collect();
        assert_eq!(logged, [0, 60, 120, 300]);
    }

    #[test]
    fn only_rejections_about_the_cluster_may_pass() {
        let origin = Arc::new(Origin::new("o", serde_json::json!({})));
        let rejected = |status| IndexFailure::Rejected {
            index: "i".into(),
            id: "e".into(),
            origin: origin.clone(),
            rejection: Rejection {
                status,
                error_type: "t".into(),
                reason: "r".into(),
            },
            why_kept: "w",
        };
        assert!(
            !rejected(400).is_transient(),
            "the same document fails again"
        );
        assert!(rejected(403).is_transient(), "privileges can be fixed");
        let exhausted = IndexFailure::RetriesExhausted {
            status: 503,
            reason: "r".into(),
        };
        assert!(exhausted.is_transient());
    }
}
