//! The webhook source: HTTP(S) POSTs of log batches (Kong Konnect's audit-log webhook) ->
//! the Konnect format -> the sink -> the answer, sent only once every entry settled.
//!
//! - [`body`] reads a body within its limits (compressed and decompressed) and its time;
//! - [`tls`] loads `--tls-cert`/`--tls-key` for HTTPS (rustls);
//! - each request is one payload with one ticket: 200 once every entry is indexed or
//!   dead-lettered; 503 (or `--webhook-retry-status`) with `Retry-After` when the cluster is unavailable, when
//!   `--webhook-max-in-flight` requests are already being handled, or when the entries are not
//!   settled within `--webhook-timeout` (the sender retries; `_id`s are the entries' hashes, so
//!   nothing is duplicated); 401 for a wrong or missing `Authorization` (compared in constant
//!   time); 413 for a body over `--webhook-max-body`; 404/405 for other paths and methods.
//!   A body that is neither JSON nor CEF (or not valid gzip) is dead-lettered whole and
//!   answered 200, so it is neither lost nor retried forever.
//! - Safety: at most [`MAX_CONNECTIONS`] connections; request heads must arrive within
//!   [`HEAD_TIMEOUT`], bodies within [`BODY_TIMEOUT`], TLS handshakes within
//!   [`HANDSHAKE_TIMEOUT`]; one log line per refused request, never with the body or the
//!   secret.
//! - Shutdown (SIGTERM/SIGINT): stop accepting, let requests in flight finish within the grace
//!   period (their connections close after the answer), then stop the sink.

pub mod body;
pub mod tls;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::config::{Shared, WebhookCommand, WebhookFormat};
use crate::format::document::{content_id, format_time};
use crate::format::konnect::{self, BodyFormat, Entry, Konnect};
use crate::format::Destination;
use crate::pipeline::{Event, EventSender, Failure, Origin, Pending, Shutdown, Ticket};
use crate::source::{Context, Ended, Source, SourceError};
use crate::telemetry::metrics::{plain, Endpoints};
use crate::telemetry::Stats;
pub use body::BODY_TIMEOUT;

/// Connections open at once; more wait to be accepted.
pub const MAX_CONNECTIONS: usize = 1024;
/// A request head must arrive within this.
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// A TLS handshake must finish within this.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// `Retry-After` of a 503, in seconds.
const RETRY_AFTER: &str = "10";

crate::telemetry::counters! {
    /// What the webhook source received and answered.
    pub struct WebhookCounters {
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
    }
}

/// The receiver cannot start.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
}

/// What every request shares.
struct Requests {
    path: String,
    /// SHA-256 of the expected `Authorization` value; `None` with `--webhook-no-auth`.
    authorization: Option<[u8; 32]>,
    max_body: usize,
    timeout: Duration,
    /// The answer that asks the sender to retry (`--webhook-retry-status`).
    retry: StatusCode,
    format: Konnect,
    events: EventSender,
    stats: Arc<Stats>,
    counters: Arc<WebhookCounters>,
    in_flight: Arc<Semaphore>,
    /// `/metrics`, `/healthz`, `/readyz` on this listener (without `--metrics-listen`).
    endpoints: Option<Endpoints>,
}

/// The webhook source: an HTTP(S) listener.
pub struct Webhook {
    command: WebhookCommand,
}

impl Source for Webhook {
    type Command = WebhookCommand;
    const AWS: bool = false;

    fn shared(command: &WebhookCommand) -> &Shared {
        &command.shared
    }

    fn new(
        command: &WebhookCommand,
        _: Option<&aws_config::SdkConfig>,
    ) -> Result<Self, SourceError> {
        Ok(Webhook {
            command: command.clone(),
        })
    }

    fn describe(&self) -> String {
        format!("webhook {}", self.command.webhook.webhook_path)
    }

    fn destinations(&self) -> Vec<Destination> {
        let prefix = self.command.shared.index.prefix();
        vec![Destination::new(
            konnect::DATASET,
            prefix,
            konnect::mapping::mappings,
        )]
    }

    fn register(stats: &Stats) {
        stats.counters::<WebhookCounters>();
    }

    /// Answers requests until stopped; requests in flight get the grace period.
    async fn run(self, context: Context) -> Result<Ended, SourceError> {
        let hook = &self.command.webhook;
        let addr = hook.listen.expect("validated config has --listen");
        let acceptor = match (&hook.tls_cert, &hook.tls_key) {
            (Some(cert), Some(key)) => Some(tls::acceptor(cert, key).map_err(SourceError::new)?),
            _ => None,
        };
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| SourceError::new(WebhookError::Listen { addr, source }))?;
        let local = listener
            .local_addr()
            .map_err(|source| SourceError::new(WebhookError::Listen { addr, source }))?;
        let shutdown = context.shutdown.clone();
        let stats = context.stats.clone();
        let requests = Arc::new(requests(&self.command, context));
        stats.set(&stats.source_reachable, true);
        stats.set(&stats.started, true);
        info!(
            listen = %local,
            path = %hook.webhook_path,
            tls = acceptor.is_some(),
            "webhook listening"
        );
        let stop_connections = CancellationToken::new();
        let mut tasks = accept(listener, acceptor, requests, &shutdown, &stop_connections).await;
        info!(grace = ?shutdown.grace(), "shutting down: no new connections, finishing requests in flight");
        stop_connections.cancel();
        let give_up = shutdown.give_up_token();
        while !tasks.is_empty() {
            tokio::select! {
                Some(_) = tasks.join_next() => {}
                () = give_up.cancelled() => {
                    warn!(connections = tasks.len(), "grace period over; closing the remaining connections (their senders retry)");
                    tasks.abort_all();
                    while tasks.join_next().await.is_some() {}
                }
            }
        }
        // Every answered request's entries settled. What the sink may still hold belongs to
        // requests answered with a retry (the sender sends them again): the runtime gives it
        // what is left of the grace period.
        Ok(Ended::default())
    }
}

/// What every request shares, from the flags and the runtime's context.
fn requests(command: &WebhookCommand, context: Context) -> Requests {
    let hook = &command.webhook;
    let stats = context.stats;
    Requests {
        path: hook.webhook_path.clone(),
        authorization: hook
            .webhook_authorization
            .as_ref()
            .map(|secret| Sha256::digest(secret.expose().as_bytes()).into()),
        max_body: hook.webhook_max_body,
        timeout: hook.webhook_timeout,
        retry: StatusCode::from_u16(hook.webhook_retry_status.code()).expect("a valid status"),
        format: Konnect {
            body: match hook.webhook_format {
                WebhookFormat::Auto => BodyFormat::Auto,
                WebhookFormat::Json => BodyFormat::Json,
                WebhookFormat::Cef => BodyFormat::Cef,
            },
        },
        events: context.events,
        counters: stats.counters(),
        in_flight: Arc::new(Semaphore::new(hook.webhook_max_in_flight)),
        endpoints: command
            .shared
            .telemetry
            .metrics_listen
            .is_none()
            .then(|| Endpoints::new(stats.clone())),
        stats,
    }
}

/// Accepts connections (at most [`MAX_CONNECTIONS`] at once) until stopping is asked for;
/// returns the connections still open.
async fn accept(
    listener: TcpListener,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
    requests: Arc<Requests>,
    shutdown: &Shutdown,
    stop_connections: &CancellationToken,
) -> JoinSet<()> {
    let connections = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut tasks = JoinSet::new();
    loop {
        let permit = tokio::select! {
            () = shutdown.requested() => break,
            permit = connections.clone().acquire_owned() => permit.expect("never closed"),
        };
        let accepted = tokio::select! {
            () = shutdown.requested() => break,
            accepted = listener.accept() => accepted,
            Some(_) = tasks.join_next(), if !tasks.is_empty() => continue,
        };
        let (stream, remote) = match accepted {
            Ok(accepted) => accepted,
            Err(err) => {
                debug!(error = %err, "accept failed");
                continue;
            }
        };
        let requests = requests.clone();
        let acceptor = acceptor.clone();
        let stop = stop_connections.clone();
        tasks.spawn(async move {
            let _permit = permit;
            match acceptor {
                None => serve(TokioIo::new(stream), remote, requests, stop).await,
                Some(acceptor) => {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => serve(TokioIo::new(tls), remote, requests, stop).await,
                        Ok(Err(err)) => debug!(%remote, error = %err, "TLS handshake failed"),
                        Err(_) => debug!(%remote, "TLS handshake timed out"),
                    }
                }
            }
        });
    }
    tasks
}

/// One connection: HTTP/1.1 with keep-alive, until it closes or shutdown (after the request
/// in flight is answered).
async fn serve<I>(io: I, remote: SocketAddr, context: Arc<Requests>, stop: CancellationToken)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let service = service_fn(move |request| {
        let context = context.clone();
        async move { Ok::<_, Infallible>(handle(request, remote, &context).await) }
    });
    let connection = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEAD_TIMEOUT)
        .serve_connection(io, service);
    tokio::pin!(connection);
    tokio::select! {
        result = connection.as_mut() => {
            if let Err(err) = result {
                debug!(%remote, error = %err, "connection ended with an error");
            }
        }
        () = stop.cancelled() => {
            connection.as_mut().graceful_shutdown();
            if let Err(err) = connection.await {
                debug!(%remote, error = %err, "connection ended with an error");
            }
        }
    }
}

fn answer(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::builder()
        .status(status)
        .header("content-type", "application/json");
    if matches!(status.as_u16(), 429 | 500 | 503) {
        response = response.header("retry-after", RETRY_AFTER);
    }
    if status == StatusCode::METHOD_NOT_ALLOWED {
        response = response.header("allow", "POST");
    }
    response
        .body(Full::new(Bytes::from(body)))
        .expect("a response of a known status builds")
}

fn refusal(status: StatusCode, reason: &str) -> Response<Full<Bytes>> {
    answer(status, serde_json::json!({ "error": reason }).to_string())
}

/// Equal in constant time (both sides are hashed to the same length first).
fn authorized(expected: &[u8; 32], given: Option<&[u8]>) -> bool {
    let given: [u8; 32] = Sha256::digest(given.unwrap_or_default()).into();
    expected
        .iter()
        .zip(given.iter())
        .fold(0u8, |acc, (a, b)| acc | (a ^ b))
        == 0
}

async fn handle(
    request: Request<Incoming>,
    remote: SocketAddr,
    context: &Requests,
) -> Response<Full<Bytes>> {
    let (stats, counters) = (&context.stats, &context.counters);
    let path = request.uri().path().to_string();
    if let Some(response) = context.endpoints.as_ref().and_then(|e| e.respond(&path)) {
        return response;
    }
    if path != context.path {
        return plain(StatusCode::NOT_FOUND, "not found\n");
    }
    if request.method() != Method::POST {
        return refusal(StatusCode::METHOD_NOT_ALLOWED, "only POST is accepted");
    }
    counters.requests_received.add(1);
    if let Some(expected) = &context.authorization {
        let given = request
            .headers()
            .get(hyper::header::AUTHORIZATION)
            .map(|v| v.as_bytes());
        if !authorized(expected, given) {
            counters.requests_unauthorized.add(1);
            warn!(%remote, present = given.is_some(), "request refused: wrong or missing Authorization");
            return refusal(StatusCode::UNAUTHORIZED, "unauthorized");
        }
    }
    if !stats.get(&stats.cluster_reachable) || !stats.get(&stats.cluster_authorized) {
        counters.requests_unavailable.add(1);
        warn!(%remote, status = context.retry.as_u16(), "request refused: the cluster is unavailable");
        return refusal(context.retry, "the cluster is unavailable; retry later");
    }
    let Ok(_slot) = context.in_flight.clone().try_acquire_owned() else {
        counters.requests_busy.add(1);
        warn!(%remote, status = context.retry.as_u16(), "request refused: at capacity (--webhook-max-in-flight)");
        return refusal(context.retry, "at capacity; retry later");
    };
    let received = OffsetDateTime::now_utc();
    let decoded = match body::read(request, context.max_body).await {
        Ok(decoded) => decoded,
        Err(err) => {
            let status = err.status();
            if status == StatusCode::PAYLOAD_TOO_LARGE {
                counters.requests_too_large.add(1);
            }
            warn!(%remote, error = %err, status = status.as_u16(), "request refused");
            return refusal(status, &err.to_string());
        }
    };
    let entries = match decoded {
        body::Decoded::Plain(bytes) => context.format.read(&bytes, received),
        body::Decoded::NotGzip { raw, reason } => vec![Entry::Unreadable {
            raw,
            position: 0,
            reason,
        }],
    };
    ingest(entries, remote, received, context).await
}

/// Hands every entry to the sink under one ticket and answers once it settled.
async fn ingest(
    entries: Vec<Entry>,
    remote: SocketAddr,
    received: OffsetDateTime,
    context: &Requests,
) -> Response<Full<Bytes>> {
    let counters = &context.counters;
    let ticket = Ticket::new();
    let (mut events, mut unreadable) = (0u64, 0u64);
    let mut pendings = Vec::with_capacity(entries.len());
    for (n, entry) in entries.into_iter().enumerate() {
        match entry {
            Entry::Event(event) => {
                events += 1;
                if event.used_fallback_time {
                    counters.entries_fallback_time.add(1);
                }
                let origin = origin(remote, received, n);
                pendings.push(Pending::new(event, origin, ticket.claim()));
            }
            Entry::Unreadable {
                raw,
                position,
                reason,
            } => {
                unreadable += 1;
                warn!(%remote, position, reason, "entry is not usable; sending it to the dead-letter index");
                let event = Event::unreadable(content_id(&raw), raw, received, konnect::DATASET);
                let origin = origin(remote, received, position);
                pendings.push(Pending::refused(event, origin, ticket.claim(), reason));
            }
        }
    }
    counters.entries_received.add(events);
    counters.entries_unreadable.add(unreadable);
    let sender = context.events.clone();
    let settled = tokio::time::timeout(context.timeout, async {
        // If the sink is gone, the claims not handed over settle as dropped.
        let _ = sender.send_all(pendings).await;
        ticket.settle().await
    })
    .await;
    match settled {
        Ok(Ok(())) => {
            counters.requests_accepted.add(1);
            answer(
                StatusCode::OK,
                serde_json::json!({"indexed": events, "dead_lettered": unreadable}).to_string(),
            )
        }
        Ok(Err(failure)) => {
            counters.requests_failed.add(1);
            warn!(%remote, error = %failure, "request answered with an error: not every entry settled; the sender retries");
            refusal(
                status_of(&failure, context.retry),
                "not every entry could be indexed; retry later",
            )
        }
        Err(_) => {
            counters.requests_failed.add(1);
            warn!(%remote, timeout = ?context.timeout, status = context.retry.as_u16(), "request answered with a retry: its entries were not indexed in time");
            refusal(
                context.retry,
                "indexing did not finish in time; retry later",
            )
        }
    }
}

fn origin(remote: SocketAddr, received: OffsetDateTime, entry: usize) -> Arc<Origin> {
    Arc::new(Origin::new(
        format!("webhook from {remote}, entry {entry}"),
        serde_json::json!({"webhook": {
            "remote": remote.ip().to_string(),
            "received_at": format_time(received),
            "entry": entry,
        }}),
    ))
}

/// `retry` when `failure` can pass (the sender retries soon), 500 when it cannot.
fn status_of(failure: &Failure, retry: StatusCode) -> StatusCode {
    if failure.is_transient() {
        retry
    } else {
        StatusCode::INTERNAL_SERVER_ERROR
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorization_compares_exact_values() {
        let expected: [u8; 32] = Sha256::digest(b"Bearer s3cret").into();
        assert!(authorized(&expected, Some(b"Bearer s3cret")));
        assert!(!authorized(&expected, Some(b"Bearer s3cre")));
        assert!(!authorized(&expected, Some(b"bearer s3cret")));
        assert!(!authorized(&expected, None));
    }

    #[test]
    fn transient_failures_are_503_and_permanent_ones_500() {
        assert_eq!(
            status_of(&Failure::Dropped, StatusCode::SERVICE_UNAVAILABLE),
            StatusCode::SERVICE_UNAVAILABLE
        );
        #[derive(Debug, thiserror::Error)]
        #[error("refused for good")]
        struct Permanent;
        impl crate::pipeline::StageError for Permanent {
            fn is_transient(&self) -> bool {
                false
            }
        }
        let permanent = Failure::new(Permanent);
        assert_eq!(
            status_of(&permanent, StatusCode::TOO_MANY_REQUESTS),
            StatusCode::INTERNAL_SERVER_ERROR
        );
        assert_eq!(
            status_of(&Failure::Dropped, StatusCode::TOO_MANY_REQUESTS),
            StatusCode::TOO_MANY_REQUESTS
        );
    }
}
