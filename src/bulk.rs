//! Bulk: documents -> bulk requests -> a final outcome per document.
//!
//! Documents from every message and object are batched together, bounded by bytes
//! (`--bulk-max-bytes`) and by a linger time (`--bulk-linger`); up to `--bulk-concurrency`
//! requests are in flight, and while they are, no more documents are taken, so the bounded
//! channel in front pushes back on the fetch stage.
//!
//! Every item of every response is read: `errors: true` is not success. Per item:
//! 2xx is indexed, 409 is "already indexed" (an earlier delivery of the same event: done),
//! 429/5xx is retried, anything else is a rejection. A rejection that is about the document
//! (see [`crate::dead_letter`]) is written to the dead-letter index, and once that write is
//! accepted the document counts as settled; every other rejection, a failed dead-letter
//! write, or any rejection while dead-lettering is off, keeps the item's message in the
//! queue. This module is the one retry layer for cluster writes, with jittered exponential
//! backoff:
//! - a whole request that fails with a connection error, 429 or 5xx means the cluster is
//!   down or overloaded: it is retried until the cluster answers (backoff capped at
//!   30 s). Meanwhile nothing new is taken, the bounded channel in front fills, fetching
//!   pauses, no message slot frees up and so no new message is received: the worker slows
//!   down to the cluster's pace with bounded memory, while the heartbeat keeps its in-flight
//!   messages invisible. Cycling them through the queue instead would count receives
//!   towards the redrive limit and park healthy messages in the DLQ during an outage.
//! - items answered 429/5xx are retried alone, at most `--bulk-max-attempts` times per
//!   batch; then their documents fail and their messages are redelivered later by SQS.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use bytes::Bytes;
use elasticsearch::http::headers::{HeaderMap, HeaderValue, CONTENT_ENCODING, CONTENT_TYPE};
use elasticsearch::http::Method;
use elasticsearch::Elasticsearch;
use serde::Deserialize;
use time::OffsetDateTime;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tracing::{debug, error, info_span, warn, Instrument};

use crate::ack::Failure;
use crate::dead_letter::{self, Rejection};
use crate::fetch::PendingDocument;
use crate::stats::Stats;

/// Only what classification needs comes back from the cluster.
const FILTER_PATH: &str = "errors,items.*.status,items.*.error.type,items.*.error.reason";

/// How batches are cut and retried.
#[derive(Debug, Clone)]
pub struct BulkSettings {
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

/// The final word on one document.
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
    Connection(#[source] elasticsearch::Error),
    #[error("bulk request answered HTTP {status}: {body}")]
    Status { status: u16, body: String },
    #[error("bulk response unusable: {0}")]
    Response(String),
}

impl BulkError {
    pub fn is_transient(&self) -> bool {
        match self {
            BulkError::Connection(_) => true,
            BulkError::Status { status, .. } => *status == 429 || *status >= 500,
            BulkError::Response(_) => false,
        }
    }
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
    Ok(response
        .items
        .into_iter()
        .map(|item| {
            let item = item
                .into_values()
                .next()
                .expect("a bulk item holds its action");
            classify_item(item)
        })
        .collect())
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
    client: &Elasticsearch,
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
        .send(
            Method::Post,
            "/_bulk",
            headers,
            Some(&[("filter_path", FILTER_PATH)]),
            Some(body),
            None,
        )
        .await
        .map_err(BulkError::Connection)?;
    let status = response.status_code().as_u16();
    let bytes = response.bytes().await.map_err(BulkError::Connection)?;
    if status != 200 {
        return Err(BulkError::Status {
            status,
            body: String::from_utf8_lossy(&bytes[..bytes.len().min(300)]).into_owned(),
        });
    }
    classify_response(&bytes, items)
}

/// Documents waiting for the next bulk request.
#[derive(Default)]
struct Batch {
    documents: Vec<PendingDocument>,
    bytes: usize,
    /// When the batch must go even if it is not full; set by its first document.
    deadline: Option<Instant>,
}

impl Batch {
    fn push(&mut self, pending: PendingDocument, linger: Duration) {
        self.bytes += pending.document.bytes.len();
        self.documents.push(pending);
        self.deadline.get_or_insert_with(|| Instant::now() + linger);
    }

    fn take(&mut self) -> Batch {
        std::mem::take(self)
    }
}

/// Takes documents until the channel closes, indexes them, and settles each on its ticket.
pub async fn run_indexer(
    client: Elasticsearch,
    settings: BulkSettings,
    mut documents: mpsc::Receiver<PendingDocument>,
    stats: Arc<Stats>,
) {
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
            received = documents.recv() => {
                let Some(pending) = received else { break };
                let len = pending.document.bytes.len();
                if !batch.documents.is_empty() && batch.bytes + len > settings.max_bytes {
                    dispatch(&client, &settings, &stats, &mut in_flight, batch.take()).await;
                }
                batch.push(pending, settings.linger);
                if batch.bytes >= settings.max_bytes {
                    dispatch(&client, &settings, &stats, &mut in_flight, batch.take()).await;
                }
            }
            () = linger => dispatch(&client, &settings, &stats, &mut in_flight, batch.take()).await,
        }
    }
    if !batch.documents.is_empty() {
        dispatch(&client, &settings, &stats, &mut in_flight, batch).await;
    }
    while let Some(joined) = in_flight.join_next().await {
        joined.expect("bulk task does not panic");
    }
}

/// Starts a bulk request for `batch`, first waiting for a free slot.
async fn dispatch(
    client: &Elasticsearch,
    settings: &BulkSettings,
    stats: &Arc<Stats>,
    in_flight: &mut JoinSet<()>,
    batch: Batch,
) {
    while in_flight.len() >= settings.concurrency {
        if let Some(joined) = in_flight.join_next().await {
            joined.expect("bulk task does not panic");
        }
    }
    let client = client.clone();
    let settings = settings.clone();
    let stats = stats.clone();
    let span = info_span!("bulk", docs = batch.documents.len(), bytes = batch.bytes);
    in_flight.spawn(
        async move { index_batch(&client, &settings, &stats, batch.documents).await }
            .instrument(span),
    );
}

/// Sends `batch`, retrying the whole request or only its failed items, and settles every
/// document exactly once.
async fn index_batch(
    client: &Elasticsearch,
    settings: &BulkSettings,
    stats: &Stats,
    mut pending: Vec<PendingDocument>,
) {
    let items = ExponentialBuilder::default()
        .with_jitter()
        .with_min_delay(settings.min_backoff)
        .with_max_delay(settings.max_backoff);
    let mut backoff = items
        .with_max_times(settings.max_attempts.saturating_sub(1))
        .build();
    let mut outage = items.without_max_times().build();
    loop {
        let mut body = Vec::with_capacity(pending.iter().map(|p| p.document.bytes.len()).sum());
        for p in &pending {
            body.extend_from_slice(&p.document.bytes);
        }
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
            send(client, Bytes::from(body), settings.gzip, pending.len()).await
        };
        let elapsed = started.elapsed();
        stats.bulk_latency.0.observe(elapsed.as_secs_f64());
        stats.set(
            &stats.cluster_reachable,
            !matches!(&result, Err(err) if err.is_transient()),
        );
        debug!(?elapsed, "bulk request answered");
        let retry_reason = match result {
            Err(err) if err.is_transient() => {
                let delay = outage.next().unwrap_or(settings.max_backoff);
                warn!(error = %err, docs = pending.len(), retry_in = ?delay, "cluster unavailable; holding the batch and retrying");
                stats.add(&stats.bulk_retries, 1);
                tokio::time::sleep(delay).await;
                continue;
            }
            Err(err) => {
                warn!(error = %err, docs = pending.len(), "bulk request failed; their messages stay in the queue");
                settle_all(pending, Failure::transient(err.to_string()));
                return;
            }
            Ok(outcomes) => {
                outage = items.without_max_times().build();
                let mut retry = Vec::new();
                let mut dead_letters = Vec::new();
                let mut last_reason = String::new();
                for (p, outcome) in pending.into_iter().zip(outcomes) {
                    match outcome {
                        ItemOutcome::Indexed | ItemOutcome::AlreadyIndexed if p.dead_letter => {
                            stats.add(&stats.documents_dead_lettered, 1);
                            p.ticket.document_settled(Ok(()));
                        }
                        ItemOutcome::Indexed => {
                            stats.add(&stats.documents_indexed, 1);
                            stats
                                .newest_event_secs
                                .fetch_max(p.document.event_secs, Ordering::Relaxed);
                            p.ticket.document_settled(Ok(()));
                        }
                        ItemOutcome::AlreadyIndexed => {
                            stats.add(&stats.documents_existing, 1);
                            p.ticket.document_settled(Ok(()));
                        }
                        ItemOutcome::Retry { status, reason } => {
                            last_reason = format!("HTTP {status} {reason}");
                            retry.push(p);
                        }
                        ItemOutcome::Rejected(rejection) => {
                            if let Some(entry) = reject(settings, stats, p, rejection) {
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
                    pending = dead_letters;
                    continue;
                }
                retry.append(&mut dead_letters);
                pending = retry;
                match backoff.next() {
                    Some(delay) => {
                        warn!(items = pending.len(), reason = %last_reason, retry_in = ?delay, "bulk items failed; retrying them");
                        stats.add(&stats.bulk_retries, 1);
                        tokio::time::sleep(delay).await;
                        continue;
                    }
                    None => last_reason,
                }
            }
        };
        warn!(docs = pending.len(), reason = %retry_reason, "bulk retries exhausted; their messages stay in the queue");
        settle_all(
            pending,
            Failure::transient(format!("bulk retries exhausted: {retry_reason}")),
        );
        return;
    }
}

/// Handles a rejected document: returns its dead-letter entry when it should be written,
/// otherwise settles it as failed, which keeps its message in the queue.
fn reject(
    settings: &BulkSettings,
    stats: &Stats,
    p: PendingDocument,
    rejection: Rejection,
) -> Option<PendingDocument> {
    let doc = &p.document;
    if p.dead_letter {
        stats.add(&stats.dead_letter_failures, 1);
        error!(
            index = %doc.index, id = %doc.id, rejection = %rejection,
            "the dead-letter index rejected an entry; its message stays in the queue"
        );
        p.ticket.document_settled(Err(Failure::permanent(format!(
            "dead-letter entry {} for {} rejected: {rejection}",
            doc.id, p.origin
        ))));
        return None;
    }
    stats.add(&stats.documents_rejected, 1);
    let why_kept = match &settings.dead_letter_prefix {
        Some(prefix) if rejection.is_about_the_document() => {
            warn!(
                index = %doc.index, id = %doc.id, bucket = %p.origin.bucket, key = %p.origin.key,
                rejection = %rejection,
                "document rejected; writing it to the dead-letter index"
            );
            let entry = dead_letter::build(
                doc,
                &p.origin,
                &rejection,
                prefix,
                OffsetDateTime::now_utc(),
            );
            return Some(PendingDocument {
                document: entry,
                ticket: p.ticket,
                origin: p.origin,
                dead_letter: true,
            });
        }
        Some(_) => "the error is about the cluster's set-up, not the document",
        None => "dead-lettering is off",
    };
    warn!(
        index = %doc.index, id = %doc.id, bucket = %p.origin.bucket, key = %p.origin.key,
        rejection = %rejection,
        "document rejected; its message stays in the queue because {why_kept}"
    );
    let failure = format!(
        "document {} of {} rejected by {}: {rejection}",
        doc.id, p.origin, doc.index
    );
    p.ticket.document_settled(Err(Failure {
        reason: failure,
        permanent: rejection.is_about_the_document(),
    }));
    None
}

fn settle_all(pending: Vec<PendingDocument>, failure: Failure) {
    for p in pending {
        p.ticket.document_settled(Err(failure.clone()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert!(!status(401).is_transient());
        assert!(!status(413).is_transient());
    }
}
