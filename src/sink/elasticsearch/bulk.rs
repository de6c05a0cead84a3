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

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use bytes::Bytes;
use elasticsearch::http::headers::{HeaderMap, HeaderValue, CONTENT_ENCODING, CONTENT_TYPE};
use elasticsearch::http::Method;
use serde::Deserialize;
use time::{OffsetDateTime, UtcOffset};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tracing::{debug, error, info, info_span, warn, Instrument};

use super::client::{Cluster, RequestError};
use super::dead_letter::{self, Rejection};
use super::sigv4;
use crate::pipeline::{Dataset, EventReceiver, Failure, Pending};
use crate::telemetry::Stats;

/// `POST /_bulk` asking only for what classification needs
/// (`filter_path=errors,items.*.status,items.*.error.type,items.*.error.reason`), encoded as
/// SigV4's canonical form encodes it (every byte but the unreserved ones), so that the query
/// signed and the one sent are the same bytes.
const BULK_PATH: &str =
    "/_bulk?filter_path=errors%2Citems.%2A.status%2Citems.%2A.error.type%2Citems.%2A.error.reason";
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

/// The final word on one item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ItemOutcome {
    Indexed,
    /// 409 on `create`: the same `_id` is already there.
    AlreadyIndexed,
    /// 429 or 5xx: worth another try.
    Retry {
        status: u16,
        reason: String,
    },
    /// Any other 4xx: the cluster will not take this document as it is.
    Rejected(Rejection),
}

/// A whole bulk request failed.
#[derive(Debug, thiserror::Error)]
pub enum BulkError {
    #[error("bulk request failed to reach the cluster: {0}")]
    Connection(#[source] RequestError),
    #[error("bulk request answered HTTP {status}: {body}")]
    Status { status: u16, body: String },
    #[error("bulk response unusable: {0}")]
    Response(String),
}

impl BulkError {
    /// The cluster is down or overloaded: retrying the same request will work later.
    pub fn is_transient(&self) -> bool {
        match self {
            BulkError::Connection(_) => true,
            BulkError::Status { status, .. } => *status == 429 || *status >= 500,
            BulkError::Response(_) => false,
        }
    }

    /// The cluster refuses these credentials or their privileges (or, with SigV4, there are
    /// no credentials to sign with).
    pub fn is_unauthorized(&self) -> bool {
        matches!(
            self,
            BulkError::Status {
                status: 401 | 403,
                ..
            } | BulkError::Connection(RequestError::Signing(_))
        )
    }
}

/// The sink stopped before its input closed.
#[derive(Debug, thiserror::Error)]
pub enum IndexerError {
    #[error("a bulk task panicked: {0}")]
    Panicked(String),
}

#[derive(Deserialize)]
struct BulkResponse {
    #[serde(default)]
    items: Vec<std::collections::HashMap<String, BulkItem>>,
}

#[derive(Deserialize)]
struct BulkItem {
    status: u16,
    #[serde(default)]
    error: Option<ItemError>,
}

#[derive(Deserialize)]
struct ItemError {
    #[serde(rename = "type", default)]
    kind: Option<String>,
    #[serde(default)]
    reason: Option<String>,
}

/// Classifies a bulk response body; one outcome per action, in request order.
pub fn classify_response(body: &[u8], expected: usize) -> Result<Vec<ItemOutcome>, BulkError> {
    let response: BulkResponse =
        serde_json::from_slice(body).map_err(|e| BulkError::Response(e.to_string()))?;
    if response.items.len() != expected {
        return Err(BulkError::Response(format!(
            "{} items answered for {expected} sent",
            response.items.len()
        )));
    }
    response
        .items
        .into_iter()
        .enumerate()
        .map(|(n, item)| match item.into_values().next() {
            Some(item) => Ok(classify_item(item)),
            None => Err(BulkError::Response(format!("item {n} names no action"))),
        })
        .collect()
}

fn classify_item(item: BulkItem) -> ItemOutcome {
    let error = item.error.unwrap_or(ItemError {
        kind: None,
        reason: None,
    });
    let error_type = error.kind.unwrap_or_else(|| "error".into());
    let reason = error.reason.unwrap_or_default();
    match item.status {
        200..=299 => ItemOutcome::Indexed,
        409 => ItemOutcome::AlreadyIndexed,
        429 | 500..=599 => ItemOutcome::Retry {
            status: item.status,
            reason: format!("{error_type}: {reason}"),
        },
        status => ItemOutcome::Rejected(Rejection {
            status,
            error_type,
            reason,
        }),
    }
}

/// Where each dataset's events go: its own prefix, or the first one's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Indices {
    prefixes: Vec<(Dataset, String)>,
}

impl Indices {
    /// `prefixes` must not be empty; the first is the one of every dataset not named.
    pub fn new(prefixes: Vec<(Dataset, String)>) -> Self {
        assert!(!prefixes.is_empty(), "at least one index prefix");
        Indices { prefixes }
    }

    pub fn prefix(&self, dataset: Dataset) -> &str {
        let (_, prefix) = self
            .prefixes
            .iter()
            .find(|(d, _)| *d == dataset)
            .unwrap_or(&self.prefixes[0]);
        prefix
    }
}

/// `<prefix>-YYYY.MM.DD` of the instant in UTC.
pub fn index_name(prefix: &str, time: OffsetDateTime) -> String {
    let date = time.to_offset(UtcOffset::UTC).date();
    format!(
        "{prefix}-{:04}.{:02}.{:02}",
        date.year(),
        u8::from(date.month()),
        date.day()
    )
}

/// Appends one `create` action and its source to a bulk body.
pub fn append_create(body: &mut Vec<u8>, index: &str, id: &str, source: &[u8]) {
    body.extend_from_slice(b"{\"create\":{\"_index\":");
    serde_json::to_writer(&mut *body, index).expect("writing to a Vec cannot fail");
    body.extend_from_slice(b",\"_id\":");
    serde_json::to_writer(&mut *body, id).expect("writing to a Vec cannot fail");
    body.extend_from_slice(b"}}\n");
    body.extend_from_slice(source);
    body.push(b'\n');
}

/// Gzips a bulk body (`--bulk-compression gzip`) at the fastest level: most of the saving
/// for little CPU.
pub fn gzip(body: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(
        Vec::with_capacity(body.len() / 6),
        flate2::Compression::fast(),
    );
    encoder
        .write_all(body)
        .expect("compressing into memory cannot fail");
    encoder
        .finish()
        .expect("compressing into memory cannot fail")
}

/// Sends one bulk body (gzipped when `gzipped`) and classifies its items.
pub(crate) async fn send(
    client: &Cluster,
    body: Bytes,
    gzipped: bool,
    items: usize,
) -> Result<Vec<ItemOutcome>, BulkError> {
    let mut headers = HeaderMap::new();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson"),
    );
    if gzipped {
        headers.insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    let response = client
        .send(Method::Post, BULK_PATH, headers, Some(body))
        .await
        .map_err(BulkError::Connection)?;
    let status = response.status_code().as_u16();
    let bytes = response
        .bytes()
        .await
        .map_err(|e| BulkError::Connection(e.into()))?;
    if status != 200 {
        return Err(BulkError::Status {
            status,
            body: String::from_utf8_lossy(&bytes[..bytes.len().min(300)]).into_owned(),
        });
    }
    classify_response(&bytes, items)
}

/// One event in a bulk request: the event itself, or the dead-letter entry of a refused one.
#[derive(Debug)]
struct Item {
    pending: Pending,
    index: String,
    dead_letter: bool,
}

/// Events waiting for the next bulk request.
#[derive(Default)]
struct Batch {
    items: Vec<Item>,
    bytes: usize,
    /// When the batch must go even if it is not full; set by its first event.
    deadline: Option<Instant>,
}

impl Batch {
    fn push(&mut self, item: Item, linger: Duration) {
        self.bytes += item.pending.event.source.len();
        self.items.push(item);
        self.deadline.get_or_insert_with(|| Instant::now() + linger);
    }

    fn take(&mut self) -> Batch {
        std::mem::take(self)
    }
}

/// What every bulk task shares.
struct Shared {
    client: Cluster,
    settings: BulkSettings,
    stats: Arc<Stats>,
    /// Paces the "credentials refused" line.
    auth_log: LogEvery,
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
        settings,
        stats,
        auth_log: LogEvery::new(AUTH_LOG_EVERY),
    });
    let settings = &shared.settings;
    let mut batch = Batch::default();
    let mut in_flight = JoinSet::new();
    loop {
        let deadline = batch.deadline;
        let linger = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            received = events.recv() => {
                let Some(mut pending) = received else { break };
                let index = index_name(settings.indices.prefix(pending.event.dataset), pending.event.time);
                let refusal = pending.refusal.take();
                let mut item = Item { pending, index, dead_letter: false };
                if let Some(rejection) = refusal {
                    // Refused by its source (not JSON): straight to the dead-letter index.
                    match reject(settings, &shared.stats, item, *rejection) {
                        Some(entry) => item = entry,
                        None => continue,
                    }
                }
                let len = item.pending.event.source.len();
                if !batch.items.is_empty() && batch.bytes + len > settings.max_bytes {
                    dispatch(&shared, &mut in_flight, batch.take()).await?;
                }
                batch.push(item, settings.linger);
                if batch.bytes >= settings.max_bytes {
                    dispatch(&shared, &mut in_flight, batch.take()).await?;
                }
            }
            () = linger => dispatch(&shared, &mut in_flight, batch.take()).await?,
        }
    }
    if !batch.items.is_empty() {
        dispatch(&shared, &mut in_flight, batch).await?;
    }
    while let Some(joined) = in_flight.join_next().await {
        joined_ok(joined)?;
    }
    Ok(())
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

/// Starts a bulk request for `batch`, first waiting for a free slot.
async fn dispatch(
    shared: &Arc<Shared>,
    in_flight: &mut JoinSet<()>,
    batch: Batch,
) -> Result<(), IndexerError> {
    while in_flight.len() >= shared.settings.concurrency {
        if let Some(joined) = in_flight.join_next().await {
            joined_ok(joined)?;
        }
    }
    let shared = shared.clone();
    let span = info_span!("bulk", docs = batch.items.len(), bytes = batch.bytes);
    in_flight.spawn(async move { index_batch(&shared, batch.items).await }.instrument(span));
    Ok(())
}

fn body_of(items: &[Item]) -> Vec<u8> {
    let size = items
        .iter()
        .map(|i| i.pending.event.source.len() + i.index.len() + i.pending.event.id.len() + 40)
        .sum();
    let mut body = Vec::with_capacity(size);
    for item in items {
        let event = &item.pending.event;
        append_create(&mut body, &item.index, &event.id, &event.source);
    }
    body
}

/// Sends `items`, retrying the whole request or only its failed items, and settles every
/// event exactly once.
async fn index_batch(shared: &Shared, mut items: Vec<Item>) {
    let Shared {
        client,
        settings,
        stats,
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
        let body = body_of(&items);
        stats.add(&stats.bulk_requests, 1);
        let started = Instant::now();
        let body = if settings.gzip {
            tokio::task::spawn_blocking(move || gzip(&body))
                .await
                .expect("compression does not panic")
        } else {
            body
        };
        let result = {
            let _in_flight = stats.enter(&stats.bulk_in_flight);
            send(client, Bytes::from(body), settings.gzip, items.len()).await
        };
        let elapsed = started.elapsed();
        stats.bulk_latency.0.observe(elapsed.as_secs_f64());
        stats.set(
            &stats.cluster_reachable,
            !matches!(&result, Err(err) if err.is_transient()),
        );
        debug!(?elapsed, "bulk request answered");
        let outcomes = match result {
            // The cluster is down, overloaded or refuses the credentials: hold the batch.
            Err(err) if err.is_transient() || err.is_unauthorized() => {
                let delay = outage.next().unwrap_or(settings.max_backoff);
                if err.is_unauthorized() {
                    refused_credentials(shared, &err, items.len(), delay);
                } else {
                    warn!(error = %err, docs = items.len(), retry_in = ?delay, "cluster unavailable; holding the batch and retrying");
                }
                stats.add(&stats.bulk_retries, 1);
                tokio::time::sleep(delay).await;
                continue;
            }
            Err(err) => {
                warn!(error = %err, docs = items.len(), "bulk request failed; their payloads come back later");
                stats.add(&stats.bulk_failures, 1);
                fail_all(items, Failure::Bulk(Arc::new(err)));
                return;
            }
            Ok(outcomes) => outcomes,
        };
        if !stats.get(&stats.cluster_authorized) {
            stats.set(&stats.cluster_authorized, true);
            info!("the cluster accepts the credentials again; ingesting");
        }
        outage = backoff_items.without_max_times().build();
        let mut retry = Vec::new();
        let mut dead_letters = Vec::new();
        let mut last = (0, String::new());
        for (item, outcome) in items.into_iter().zip(outcomes) {
            match outcome {
                ItemOutcome::Indexed | ItemOutcome::AlreadyIndexed if item.dead_letter => {
                    stats.add(&stats.documents_dead_lettered, 1);
                    item.pending.settle(Ok(()));
                }
                ItemOutcome::Indexed if item.pending.event.dataset == Dataset::Alerts => {
                    stats.add(&stats.alerts_indexed, 1);
                    if let Some(notifier) = &item.pending.notify {
                        notifier.notify(&item.pending.event.source);
                    }
                    item.pending.settle(Ok(()));
                }
                ItemOutcome::AlreadyIndexed if item.pending.event.dataset == Dataset::Alerts => {
                    stats.add(&stats.alerts_existing, 1);
                    item.pending.settle(Ok(()));
                }
                ItemOutcome::Indexed => {
                    stats.add(&stats.documents_indexed, 1);
                    stats
                        .newest_event_secs
                        .fetch_max(item.pending.event.time.unix_timestamp(), Ordering::Relaxed);
                    item.pending.settle(Ok(()));
                }
                ItemOutcome::AlreadyIndexed => {
                    stats.add(&stats.documents_existing, 1);
                    item.pending.settle(Ok(()));
                }
                ItemOutcome::Retry { status, reason } => {
                    last = (status, reason);
                    retry.push(item);
                }
                ItemOutcome::Rejected(rejection) => {
                    if let Some(entry) = reject(settings, stats, item, rejection) {
                        dead_letters.push(entry);
                    }
                }
            }
        }
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
                stats.add(&stats.bulk_retries, 1);
                tokio::time::sleep(delay).await;
            }
            None => {
                warn!(docs = items.len(), status = last.0, reason = %last.1, "bulk retries exhausted; their payloads come back later");
                let (status, reason) = last;
                fail_all(items, Failure::RetriesExhausted { status, reason });
                return;
            }
        }
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
    stats: &Stats,
    item: Item,
    rejection: Rejection,
) -> Option<Item> {
    let event = &item.pending.event;
    let origin = item.pending.origin.clone();
    if item.dead_letter {
        stats.add(&stats.dead_letter_failures, 1);
        error!(
            index = %item.index, id = %event.id, rejection = %rejection,
            "the dead-letter index rejected an entry; its payload comes back later"
        );
        let failure = Failure::DeadLetterRejected {
            id: event.id.clone(),
            origin,
            rejection,
        };
        item.pending.settle(Err(failure));
        return None;
    }
    stats.add(&stats.documents_rejected, 1);
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
            let index = index_name(prefix, event.time);
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
    let failure = Failure::Rejected {
        index: item.index.clone(),
        id: event.id.clone(),
        origin,
        rejection: Box::new(rejection),
        why_kept,
    };
    item.pending.settle(Err(failure));
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bulk_query_is_the_filter_path_encoded() {
        let url = url::Url::parse(&format!("http://h{BULK_PATH}")).unwrap();
        let pairs: Vec<(String, String)> = url.query_pairs().into_owned().collect();
        let filter = "errors,items.*.status,items.*.error.type,items.*.error.reason";
        assert_eq!(pairs, [("filter_path".to_string(), filter.to_string())]);
    }
    use time::macros::datetime;

    #[test]
    fn classifies_every_item() {
        let body = br#"{"errors":true,"items":[
            {"create":{"status":201}},
            {"create":{"status":409,"error":{"type":"version_conflict_engine_exception","reason":"exists"}}},
            {"create":{"status":429,"error":{"type":"es_rejected_execution_exception","reason":"queue full"}}},
            {"create":{"status":503,"error":{"type":"unavailable_shards_exception","reason":"primary"}}},
            {"create":{"status":400,"error":{"type":"mapper_parsing_exception","reason":"failed to parse field [requestParameters.filter]"}}},
            {"index":{"status":200}}
        ]}"#;
        let outcomes = classify_response(body, 6).unwrap();
        assert_eq!(outcomes[0], ItemOutcome::Indexed);
        assert_eq!(outcomes[1], ItemOutcome::AlreadyIndexed);
        assert!(matches!(
            outcomes[2],
            ItemOutcome::Retry { status: 429, .. }
        ));
        assert!(matches!(
            outcomes[3],
            ItemOutcome::Retry { status: 503, .. }
        ));
        assert_eq!(
            outcomes[4],
            ItemOutcome::Rejected(Rejection {
                status: 400,
                error_type: "mapper_parsing_exception".into(),
                reason: "failed to parse field [requestParameters.filter]".into()
            })
        );
        assert_eq!(outcomes[5], ItemOutcome::Indexed);
    }

    #[test]
    fn a_response_that_does_not_match_the_request_is_an_error() {
        assert!(classify_response(
            br#"{"errors":false,"items":[{"create":{"status":201}}]}"#,
            2
        )
        .is_err());
        assert!(classify_response(b"<html>", 1).is_err());
        assert!(!classify_response(b"{}", 1).unwrap_err().is_transient());
        // An item without its action must not take the indexer down.
        let err = classify_response(br#"{"errors":false,"items":[{}]}"#, 1).unwrap_err();
        assert!(matches!(err, BulkError::Response(_)), "{err}");
    }

    #[test]
    fn whole_request_failures_are_classified() {
        let status = |status| BulkError::Status {
            status,
            body: String::new(),
        };
        assert!(status(429).is_transient());
        assert!(status(502).is_transient());
        assert!(!status(400).is_transient());
        assert!(!status(401).is_transient() && status(401).is_unauthorized());
        assert!(status(403).is_unauthorized());
        assert!(!status(413).is_transient() && !status(413).is_unauthorized());
    }

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
    fn creates_go_to_the_utc_day_of_each_event() {
        let table = [
            (datetime!(2024-12-31 23:59:59 UTC), "ct-2024.12.31"),
            (datetime!(2025-01-01 00:00:00 UTC), "ct-2025.01.01"),
            (datetime!(2025-01-01 01:30:00 +02:00), "ct-2024.12.31"),
        ];
        for (time, index) in table {
            assert_eq!(index_name("ct", time), index);
        }
        let mut body = Vec::new();
        append_create(&mut body, "ct-2024.12.31", "a\"b\\c", br#"{"x":1}"#);
        let text = std::str::from_utf8(&body).unwrap();
        let mut lines = text.lines();
        let action: serde_json::Value = serde_json::from_str(lines.next().unwrap()).unwrap();
        assert_eq!(
            action,
            serde_json::json!({"create": {"_index": "ct-2024.12.31", "_id": "a\"b\\c"}})
        );
        assert_eq!(lines.next(), Some(r#"{"x":1}"#));
        assert!(text.ends_with('\n'));
    }
}
