//! The runtime: runs any [`Source`] with everything sources share, written once.
//!
//! In order: the source's counters and the `/metrics` listener; the rules; the cluster's
//! product, version and templates for every destination (the source's and the alerts');
//! the sink, with detection placed in front of it; then the source runs until it is done,
//! idle or asked to stop ([`stop_on_signal`], the caller's token). Stopping gives what is in
//! flight the grace period ([`Shutdown`]); a sink that dies stops the source at once. At the
//! end the sink finishes what it holds (or is stopped when the source gave work up), the
//! alerts still queued for webhooks get their last attempt, the summary is logged, and the
//! [`Outcome`] says the exit code. Every failure of a run is one [`RunError`].

use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::config::{BackfillCommand, Shared};
use crate::detect::{self, RulesError};
use crate::enrich::geoip::{GeoIp, GeoIpError};
use crate::format::{schema, Destination};
use crate::pipeline::Shutdown;
use crate::sink::elasticsearch::{self as sink, Cluster, ClusterError, SinkError, SinkHandle};
use crate::source::{backfill, Context, Ended, Source, SourceError};
use crate::telemetry::{metrics, Stats, Summary};

/// Every way a run can fail.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("no AWS region configured: set AWS_REGION (or a profile with a region)")]
    NoRegion,
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    #[error(transparent)]
    Rules(#[from] RulesError),
    #[error(transparent)]
    GeoIp(#[from] GeoIpError),
    #[error(transparent)]
    Sink(#[from] SinkError),
    #[error("cannot listen for metrics on {addr}: {source}")]
    Metrics {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error("the indexer stopped: {0}; what was in flight is not acknowledged and comes back")]
    Indexer(String),
}

/// How a run ended.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub summary: Summary,
    /// What failed for good, with the reason when known (see [`Ended::failed`]).
    pub failed: Vec<(String, Option<String>)>,
    /// Everything that failed for good, including what `failed` does not list.
    pub failed_total: u64,
    /// A source that ends by itself was stopped before its end.
    pub interrupted: bool,
}

impl Outcome {
    /// How a source's run ended, with the run's counters.
    fn of(summary: Summary, ended: Ended) -> Self {
        Outcome {
            summary,
            failed: ended.failed,
            failed_total: ended.failed_total,
            interrupted: ended.interrupted,
        }
    }

    /// 0 done, 1 something failed for good, 130 interrupted before the end.
    pub fn exit_code(&self) -> u8 {
        if self.interrupted {
            130
        } else if self.failed_total > 0 {
            1
        } else {
            0
        }
    }
}

/// The AWS configuration (the standard chain) when `S` reads from AWS or the cluster's
/// requests are SigV4-signed, and the cluster's client.
pub async fn connect<S: Source>(
    command: &S::Command,
) -> Result<(Option<aws_config::SdkConfig>, Cluster), RunError> {
    let cluster = &S::shared(command).cluster;
    let aws = if S::AWS || cluster.elasticsearch_aws_sigv4 {
        Some(aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await)
    } else {
        None
    };
    if S::AWS && aws.as_ref().is_some_and(|aws| aws.region().is_none()) {
        return Err(RunError::NoRegion);
    }
    let client = sink::client::connect(cluster, aws.as_ref())?;
    Ok((aws, client))
}

/// `backfill --enqueue`: lists the bucket and sends the objects to the queue, until the
/// listing is done or `stop` is cancelled. No cluster, sink or metrics listener: the SQS
/// workers on the queue do the rest.
pub async fn enqueue(
    command: &BackfillCommand,
    stop: CancellationToken,
) -> Result<Outcome, RunError> {
    let aws = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    if aws.region().is_none() {
        return Err(RunError::NoRegion);
    }
    enqueue_with(command, &aws, stop).await
}

/// [`enqueue`] with this AWS configuration.
pub async fn enqueue_with(
    command: &BackfillCommand,
    aws: &aws_config::SdkConfig,
    stop: CancellationToken,
) -> Result<Outcome, RunError> {
    let shared = &command.shared;
    if shared.cluster.elasticsearch_url.is_some() || !shared.detect.rules.is_empty() {
        warn!("with --enqueue the cluster and detection flags are not used: the SQS workers on the queue index and detect with their own");
    }
    let stats = Arc::new(Stats::default());
    let ended = backfill::enqueue::run(command, aws, &stats, stop).await;
    let summary = stats.snapshot();
    info!(?summary, "backfill stopped");
    Ok(Outcome::of(summary, ended?))
}

/// Builds the source `command` asks for and runs it until it ends or `stop` is cancelled.
pub async fn launch<S: Source>(
    command: &S::Command,
    stop: CancellationToken,
) -> Result<Outcome, RunError> {
    let (aws, cluster) = connect::<S>(command).await?;
    let source = S::new(command, aws.as_ref())?;
    run(S::shared(command), source, cluster, stop).await
}

/// Runs `source` into `cluster` until it ends or `stop` is cancelled.
pub async fn run<S: Source>(
    shared: &Shared,
    source: S,
    cluster: Cluster,
    stop: CancellationToken,
) -> Result<Outcome, RunError> {
    let client = cluster.clone();
    let start_sink = move |stats, destinations: &[Destination]| {
        let settings = sink::settings(&shared.bulk, &shared.index, destinations);
        sink::start(client, settings, stats)
    };
    run_with_sink(shared, source, cluster, stop, start_sink).await
}

/// [`run`], with the sink started by `start_sink` (given the run's stats and the
/// destinations whose templates are installed).
pub async fn run_with_sink<S: Source>(
    shared: &Shared,
    source: S,
    cluster: Cluster,
    stop: CancellationToken,
    start_sink: impl FnOnce(Arc<Stats>, &[Destination]) -> SinkHandle,
) -> Result<Outcome, RunError> {
    let stats = Arc::new(Stats::default());
    S::register(&stats);
    let listener = metrics::serve_if(shared.telemetry.metrics_listen, stats.clone())
        .await
        .map_err(|(addr, source)| RunError::Metrics { addr, source })?;
    let shutdown = Shutdown::new(shared.shutdown_grace);
    let forward = tokio::spawn({
        let shutdown = shutdown.clone();
        async move {
            stop.cancelled().await;
            shutdown.request();
        }
    });
    let outcome = serve(shared, source, &cluster, start_sink, stats, shutdown).await;
    forward.abort();
    listener.stop().await;
    outcome
}

/// Everything between the metrics listener's start and stop.
async fn serve<S: Source>(
    shared: &Shared,
    source: S,
    cluster: &Cluster,
    start_sink: impl FnOnce(Arc<Stats>, &[Destination]) -> SinkHandle,
    stats: Arc<Stats>,
    shutdown: Shutdown,
) -> Result<Outcome, RunError> {
    let detectors = detect::from_config(&shared.detect)?;
    let geoip = match &shared.schema.geoip_databases[..] {
        [] => None,
        paths => Some(GeoIp::open(paths)?),
    };
    let mut destinations = schema::destinations(
        &shared.schema,
        detect::destinations(&shared.detect, shared.index.prefix(), source.destinations()),
    );
    let (_, free_form) =
        sink::prepare(cluster, &shared.cluster, &shared.index, &mut destinations).await?;
    stats.set(&stats.cluster_reachable, true);
    let (events, indexer) = start_sink(stats.clone(), &destinations);
    let (events, mut alerting) = detect::attach(
        events,
        detectors,
        &shared.detect,
        &source.describe(),
        &destinations,
        free_form,
        &stats,
    );
    let (events, free_form) = schema::attach(events, &shared.schema, free_form, geoip);
    let context = Context {
        events,
        free_form,
        stats: stats.clone(),
        shutdown: shutdown.clone(),
    };
    let running = source.run(context);
    tokio::pin!(running);
    let mut indexer = Some(indexer);
    let mut sink_failure = None;
    let ended = tokio::select! {
        ended = &mut running => ended,
        joined = indexer.as_mut().expect("the indexer is running") => {
            indexer = None;
            // Either it failed, or it finished because the source let go of every sender
            // on its way out.
            sink_failure = sink::indexer_failure(joined);
            if let Some(reason) = &sink_failure {
                error!(reason, "the indexer stopped; stopping the source");
                shutdown.halt();
            }
            running.await
        }
    };
    // The source is gone with its event senders; the silence watcher lets go of its own.
    alerting.quiet().await;
    if let Some(indexer) = indexer {
        sink_failure = finish_sink(indexer, &ended, &shutdown).await;
    }
    alerting.finish().await;
    let summary = stats.snapshot();
    info!(?summary, "worker stopped");
    if let Some(reason) = sink_failure {
        return Err(RunError::Indexer(reason));
    }
    Ok(Outcome::of(summary, ended?))
}

/// Lets the sink finish what it holds: all of it after a run that ended by itself, what it
/// can within the grace period after a stop, nothing when the source gave work up (those
/// events come back). Returns why it failed, if it did.
async fn finish_sink(
    mut indexer: tokio::task::JoinHandle<Result<(), sink::IndexerError>>,
    ended: &Result<Ended, SourceError>,
    shutdown: &Shutdown,
) -> Option<String> {
    if matches!(ended, Ok(ended) if ended.abandoned) {
        indexer.abort();
        return sink::indexer_failure((&mut indexer).await);
    }
    match shutdown.deadline() {
        None => sink::indexer_failure(indexer.await),
        Some(deadline) => {
            sink::finish_within(
                indexer,
                deadline,
                "grace period over with events still unsettled",
            )
            .await
        }
    }
}

/// Cancels `token` on the first SIGTERM (ECS, systemd) or SIGINT (Ctrl-C).
pub async fn stop_on_signal(token: CancellationToken) {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("installing a SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("installing a SIGINT handler");
    let name = tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    };
    info!(signal = name, "shutdown requested");
    token.cancel();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes() {
        let mut outcome = Outcome {
            summary: Summary::default(),
            failed: Vec::new(),
            failed_total: 0,
            interrupted: false,
        };
        assert_eq!(outcome.exit_code(), 0);
        outcome.failed_total = 1;
        assert_eq!(outcome.exit_code(), 1);
        outcome.interrupted = true;
        assert_eq!(outcome.exit_code(), 130);
    }
}
