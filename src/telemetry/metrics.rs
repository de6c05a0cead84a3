//! Metrics: the optional HTTP listener (`--metrics-listen ADDR`) serving
//! - `/metrics`: Prometheus (OpenMetrics text) rendered from [`Stats`] at each scrape with the
//!   `prometheus-client` crate: every counter a stage registered (as
//!   `cloudtrail_ingest_<name>_total`); gauges of in-flight messages and bulk requests;
//!   `ready`, `cluster_authorized`; the bulk latency histogram; the lag (now minus the
//!   newest indexed event time); and what the stages' own collectors add (matches per rule,
//!   Kafka consumer lag per partition);
//! - `/healthz`: 200 while the process runs (liveness);
//! - `/readyz`: 200 once the worker has started, the cluster answered and accepted the
//!   credentials, and the source answered, each on its last request; 503 otherwise (readiness).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, Ordering};
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

use super::Stats;

#[derive(Debug)]
struct StatsCollector(Arc<Stats>);

impl Collector for StatsCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let stats = &self.0;
        for (name, help, value) in stats.counter_values() {
            let counter = ConstCounter::new(value);
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
            "1 when started, the cluster answered and accepted the credentials, and the source answered",
            None,
            ready.metric_type(),
        )?)?;
        let authorized = ConstGauge::new(i64::from(stats.get(&stats.cluster_authorized)));
        authorized.encode(encoder.encode_descriptor(
            "cluster_authorized",
            "0 while the cluster refuses the credentials or their privileges",
            None,
            authorized.metric_type(),
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

/// A stage's collector, as the registry takes it.
#[derive(Debug)]
struct StageCollector(Arc<dyn Collector>);

impl Collector for StageCollector {
    fn encode(&self, encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        self.0.encode(encoder)
    }
}

/// The registry served at `/metrics`, with the collectors registered so far.
pub fn registry(stats: Arc<Stats>) -> Registry {
    let mut registry = Registry::with_prefix("cloudtrail_ingest");
    for collector in stats.collectors() {
        registry.register_collector(Box::new(StageCollector(collector)));
    }
    registry.register_collector(Box::new(StatsCollector(stats)));
    registry
}

/// The metrics listener of a source, when `--metrics-listen` is given.
pub struct Listener(Option<(CancellationToken, tokio::task::JoinHandle<()>)>);

impl Listener {
    /// Stops serving, once the source has stopped (the last summary is still scraped until
    /// then).
    pub async fn stop(self) {
        if let Some((stop, server)) = self.0 {
            stop.cancel();
            server.await.expect("the metrics server does not panic");
        }
    }
}

/// [`serve`] when `--metrics-listen` is given: binds now (so a bad address fails at start);
/// the error names the address.
pub async fn serve_if(
    listen: Option<SocketAddr>,
    stats: Arc<Stats>,
) -> Result<Listener, (SocketAddr, std::io::Error)> {
    let Some(addr) = listen else {
        return Ok(Listener(None));
    };
    let stop = CancellationToken::new();
    let server = serve(addr, stats, stop.clone())
        .await
        .map_err(|e| (addr, e))?;
    Ok(Listener(Some((stop, server))))
}

pub async fn serve(
    addr: SocketAddr,
    stats: Arc<Stats>,
    stop: CancellationToken,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    let listener = TcpListener::bind(addr).await?;
    info!(addr = %listener.local_addr()?, "metrics listening: /metrics /healthz /readyz");
    let endpoints = Arc::new(Endpoints::new(stats));
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
            let endpoints = endpoints.clone();
            tokio::spawn(async move {
                let service = service_fn(move |request: Request<Incoming>| {
                    let response = endpoints
                        .respond(request.uri().path())
                        .unwrap_or_else(|| plain(StatusCode::NOT_FOUND, "not found\n"));
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

/// `/metrics`, `/healthz` and `/readyz`, for this listener or another source's (the webhook
/// serves them on its own listener when `--metrics-listen` is not given).
#[derive(Debug)]
pub struct Endpoints {
    stats: Arc<Stats>,
}

impl Endpoints {
    pub fn new(stats: Arc<Stats>) -> Self {
        Endpoints { stats }
    }

    /// The answer for `path`, or `None` when it is none of the three.
    pub fn respond(&self, path: &str) -> Option<Response<Full<Bytes>>> {
        let stats = &self.stats;
        let (status, content_type, body) = match path {
            "/metrics" => {
                let mut text = String::new();
                let registry = registry(stats.clone());
                match prometheus_client::encoding::text::encode(&mut text, &registry) {
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
                    "not ready: started={} cluster_reachable={} cluster_authorized={} source_reachable={}\n",
                    stats.get(&stats.started),
                    stats.get(&stats.cluster_reachable),
                    stats.get(&stats.cluster_authorized),
                    stats.get(&stats.source_reachable)
                ),
            ),
            _ => return None,
        };
        Some(
            Response::builder()
                .status(status)
                .header("content-type", content_type)
                .body(Full::new(Bytes::from(body)))
                .expect("a static response builds"),
        )
    }
}

/// A `text/plain` answer.
pub fn plain(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "text/plain")
        .body(Full::new(Bytes::from_static(body.as_bytes())))
        .expect("a static response builds")
}

#[cfg(test)]
mod tests {
    use super::*;

    crate::telemetry::counters! {
        struct Probe {
            documents_indexed: "documents indexed",
            messages_deleted: "messages deleted",
        }
    }

    #[test]
    fn renders_counters_gauges_and_the_histogram() {
        let stats = Arc::new(Stats::default());
        stats.counters::<Probe>().documents_indexed.add(7);
        stats.bulk_latency.0.observe(0.05);
        stats.newest_event_secs.store(
            time::OffsetDateTime::now_utc().unix_timestamp() - 60,
            Ordering::Relaxed,
        );
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry(stats)).unwrap();
        for line in [
            "cloudtrail_ingest_documents_indexed_total 7",
            "cloudtrail_ingest_messages_deleted_total 0",
            "cloudtrail_ingest_messages_in_flight 0",
            "cloudtrail_ingest_bulk_latency_seconds_count 1",
            "cloudtrail_ingest_lag_seconds 6",
            "cloudtrail_ingest_ready 0",
        ] {
            assert!(text.contains(line), "{line} missing from {text}");
        }
    }

    #[test]
    fn every_counter_reaches_metrics_and_the_summary() {
        let stats = Arc::new(Stats::default());
        let probe = stats.counters::<Probe>();
        probe.documents_indexed.set(1000);
        probe.messages_deleted.set(1001);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry(stats.clone())).unwrap();
        for (name, _, value) in stats.counter_values() {
            let line = format!("cloudtrail_ingest_{name}_total {value}");
            assert!(
                text.lines().any(|l| l == line),
                "{line} missing from\n{text}"
            );
        }
        assert_eq!(
            format!("{:?}", stats.snapshot()),
            "Summary { documents_indexed: 1000, messages_deleted: 1001 }"
        );
    }

    #[derive(Debug)]
    struct Labelled;

    impl Collector for Labelled {
        fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
            let mut family = encoder.encode_descriptor(
                "things",
                "things by kind",
                None,
                prometheus_client::metrics::MetricType::Gauge,
            )?;
            ConstGauge::new(3).encode(family.encode_family(&[("kind", "a")])?)
        }
    }

    #[test]
    fn a_stage_collector_registered_later_is_served() {
        let stats = Arc::new(Stats::default());
        let endpoints = Endpoints::new(stats.clone());
        stats.collect(Arc::new(Labelled));
        let response = endpoints.respond("/metrics").expect("served");
        let body = body_text(response);
        assert!(
            body.contains("cloudtrail_ingest_things{kind=\"a\"} 3"),
            "{body}"
        );
    }

    fn body_text(response: Response<Full<Bytes>>) -> String {
        use http_body_util::BodyExt;
        let bytes = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(response.into_body().collect())
            .unwrap()
            .to_bytes();
        String::from_utf8(bytes.to_vec()).unwrap()
    }
}
