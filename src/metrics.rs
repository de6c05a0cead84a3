//! Metrics: the optional HTTP listener (`--metrics-listen ADDR`) serving
//! - `/metrics`: Prometheus (OpenMetrics text) rendered from [`Stats`] at each scrape with the
//!   `prometheus-client` crate: counters of messages, objects, bytes, documents, bulk
//!   requests, retries and visibility extensions; gauges of in-flight messages and bulk
//!   requests; the bulk latency histogram; and the lag (now minus the newest indexed
//!   `eventTime`);
//! - `/healthz`: 200 while the process runs (liveness);
//! - `/readyz`: 200 once the worker has started and both the cluster and the queue answered
//!   their last request, 503 otherwise (readiness).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::{Registry, Unit};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

use crate::stats::Stats;

type Field = fn(&Stats) -> &AtomicU64;

/// Every counter: name (without prefix and `_total`), help, field.
const COUNTERS: &[(&str, &str, Field)] = &[
    ("messages_received", "SQS messages received", |s| {
        &s.messages_received
    }),
    (
        "messages_deleted",
        "SQS messages deleted after everything they announced was indexed",
        |s| &s.messages_deleted,
    ),
    (
        "messages_failed_permanent",
        "messages that failed for good and were released for the redrive policy",
        |s| &s.messages_failed_permanent,
    ),
    (
        "messages_failed_transient",
        "messages that failed for now and come back after their visibility timeout",
        |s| &s.messages_failed_transient,
    ),
    (
        "messages_given_up",
        "messages deleted after --max-receive-count receives",
        |s| &s.messages_given_up,
    ),
    (
        "messages_abandoned",
        "messages still in flight when the shutdown grace period ran out",
        |s| &s.messages_abandoned,
    ),
    (
        "delete_failures",
        "messages whose deletion failed (they come back and are deduplicated)",
        |s| &s.delete_failures,
    ),
    (
        "visibility_extensions",
        "visibility timeout extensions of in-flight messages",
        |s| &s.visibility_extensions,
    ),
    ("objects_read", "S3 log objects read to the end", |s| {
        &s.objects_read
    }),
    (
        "objects_failed",
        "S3 log objects that could not be read",
        |s| &s.objects_failed,
    ),
    (
        "keys_skipped",
        "announced keys acknowledged without reading (digests, non-log keys)",
        |s| &s.keys_skipped,
    ),
    ("bytes_read", "bytes read from S3, as stored", |s| {
        &s.bytes_read
    }),
    ("documents_indexed", "documents indexed", |s| {
        &s.documents_indexed
    }),
    (
        "documents_existing",
        "documents already indexed by an earlier delivery (409)",
        |s| &s.documents_existing,
    ),
    (
        "documents_rejected",
        "documents the cluster refused for good",
        |s| &s.documents_rejected,
    ),
    (
        "documents_dead_lettered",
        "refused documents written to the dead-letter index",
        |s| &s.documents_dead_lettered,
    ),
    (
        "dead_letter_failures",
        "dead-letter entries the cluster refused too",
        |s| &s.dead_letter_failures,
    ),
    ("bulk_requests", "bulk requests sent", |s| &s.bulk_requests),
    (
        "bulk_retries",
        "bulk retries (whole requests and failed items)",
        |s| &s.bulk_retries,
    ),
];

#[derive(Debug)]
struct StatsCollector(Arc<Stats>);

impl Collector for StatsCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let stats = &self.0;
        for (name, help, field) in COUNTERS {
            let counter = ConstCounter::new(field(stats).load(Ordering::Relaxed));
            counter.encode(encoder.encode_descriptor(
                name,
                help,
                None,
                counter.metric_type(),
            )?)?;
        }
        let gauge = |encoder: &mut DescriptorEncoder, name, help, value: &AtomicI64| {
            let gauge = ConstGauge::new(value.load(Ordering::Relaxed));
            gauge.encode(encoder.encode_descriptor(name, help, None, gauge.metric_type())?)
        };
        gauge(
            &mut encoder,
            "messages_in_flight",
            "messages being processed",
            &stats.messages_in_flight,
        )?;
        gauge(
            &mut encoder,
            "bulk_in_flight",
            "bulk requests waiting for the cluster",
            &stats.bulk_in_flight,
        )?;
        let ready = ConstGauge::new(i64::from(stats.ready()));
        ready.encode(encoder.encode_descriptor(
            "ready",
            "1 when started and the cluster and queue answered their last request",
            None,
            ready.metric_type(),
        )?)?;
        let newest = stats.newest_event_secs.load(Ordering::Relaxed);
        if newest > 0 {
            let now = time::OffsetDateTime::now_utc().unix_timestamp();
            let lag = ConstGauge::new((now - newest) as f64);
            lag.encode(encoder.encode_descriptor(
                "lag",
                "now minus the newest eventTime indexed so far",
                Some(&Unit::Seconds),
                lag.metric_type(),
            )?)?;
        }
        let latency = &stats.bulk_latency.0;
        latency.encode(encoder.encode_descriptor(
            "bulk_latency",
            "time from sending a bulk request to its answer",
            Some(&Unit::Seconds),
            latency.metric_type(),
        )?)?;
        Ok(())
    }
}

/// The registry served at `/metrics`.
pub fn registry(stats: Arc<Stats>) -> Registry {
    let mut registry = Registry::with_prefix("cloudtrail_ingest");
    registry.register_collector(Box::new(StatsCollector(stats)));
    registry
}

/// Binds `addr` now (so a bad address fails at start) and serves until `stop` is cancelled.
pub async fn serve(
    addr: SocketAddr,
    stats: Arc<Stats>,
    stop: CancellationToken,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    let listener = TcpListener::bind(addr).await?;
    info!(addr = %listener.local_addr()?, "metrics listening: /metrics /healthz /readyz");
    let registry = Arc::new(registry(stats.clone()));
    Ok(tokio::spawn(async move {
        loop {
            let (stream, _) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(err) => {
                        debug!(error = %err, "metrics accept failed");
                        continue;
                    }
                },
                () = stop.cancelled() => return,
            };
            let registry = registry.clone();
            let stats = stats.clone();
            tokio::spawn(async move {
                let service = service_fn(move |request| {
                    let response = respond(&request, &registry, &stats);
                    async move { Ok::<_, Infallible>(response) }
                });
                if let Err(err) = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await
                {
                    debug!(error = %err, "metrics connection ended with an error");
                }
            });
        }
    }))
}

fn respond(
    request: &Request<Incoming>,
    registry: &Registry,
    stats: &Stats,
) -> Response<Full<Bytes>> {
    let (status, content_type, body) = match request.uri().path() {
        "/metrics" => {
            let mut text = String::new();
            match prometheus_client::encoding::text::encode(&mut text, registry) {
                Ok(()) => (
                    StatusCode::OK,
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    text,
                ),
                Err(_) => (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "text/plain",
                    "encoding failed\n".to_string(),
                ),
            }
        }
        "/healthz" => (StatusCode::OK, "text/plain", "ok\n".to_string()),
        "/readyz" if stats.ready() => (StatusCode::OK, "text/plain", "ready\n".to_string()),
        "/readyz" => (
            StatusCode::SERVICE_UNAVAILABLE,
            "text/plain",
            format!(
                "not ready: started={} cluster_reachable={} queue_reachable={}\n",
                stats.get(&stats.started),
                stats.get(&stats.cluster_reachable),
                stats.get(&stats.queue_reachable)
            ),
        ),
        _ => (
            StatusCode::NOT_FOUND,
            "text/plain",
            "not found\n".to_string(),
        ),
    };
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .body(Full::new(Bytes::from(body)))
        .expect("a static response builds")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_gauges_and_the_histogram() {
        let stats = Arc::new(Stats::default());
        stats.add(&stats.documents_indexed, 7);
        stats.bulk_latency.0.observe(0.05);
        stats.newest_event_secs.store(
            time::OffsetDateTime::now_utc().unix_timestamp() - 60,
            Ordering::Relaxed,
        );
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry(stats)).unwrap();
        assert!(
            text.contains("cloudtrail_ingest_documents_indexed_total 7"),
            "{text}"
        );
        assert!(
            text.contains("cloudtrail_ingest_messages_in_flight 0"),
            "{text}"
        );
        assert!(
            text.contains("cloudtrail_ingest_bulk_latency_seconds_count 1"),
            "{text}"
        );
        assert!(text.contains("cloudtrail_ingest_lag_seconds 6"), "{text}");
        assert!(text.contains("cloudtrail_ingest_ready 0"), "{text}");
    }
}
