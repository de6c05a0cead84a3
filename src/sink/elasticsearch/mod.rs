//! The Cluster/OpenSearch sink.
//!
//! - [`client`]: the HTTP client (URL, credentials, TLS, [`sigv4`] signing);
//! - [`product`]: which product and version answers, checked at start;
//! - [`template`]: the index templates for that product, installed at start;
//! - [`request`]: events -> a bulk request body, sent; [`response`]: its answer -> one
//!   outcome per item;
//! - [`bulk`]: batching and the one retry layer, settling every event;
//! - [`dead_letter`]: what a refused event becomes in the dead-letter index;
//! - [`probe`]: one bulk `create`, for `check` and the Serverless detection.

pub mod bulk;
pub mod client;
pub mod dead_letter;
pub mod probe;
pub mod product;
pub mod request;
pub mod response;
pub mod sigv4;
pub mod template;

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;

pub use bulk::{BulkSettings, IndexerError, SinkCounters};
pub use client::{Cluster, ClusterError};
pub use product::{ClusterInfo, Distribution};
pub use template::TemplateError;

use crate::config::{BulkCompression, BulkConfig, ClusterConfig, IndexConfig};
use crate::format::{Destination, FreeForm};
use crate::pipeline::{self, EventSender};
use crate::telemetry::Stats;

/// Parcels of events buffered between the formats and the sink (see [`pipeline::Parcel`]);
/// the byte budget is what bounds their memory.
const CHANNEL_PARCELS: usize = 64;
/// The byte budget of events handed over and not yet settled, at least.
const MIN_BUDGET_BYTES: usize = 16 << 20;

/// The sink as its source sees it: where events go, and the task that indexes them.
pub type SinkHandle = (EventSender, JoinHandle<Result<(), IndexerError>>);

/// Start-up failures of the sink.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    #[error(transparent)]
    Template(#[from] TemplateError),
}

/// Checks that the cluster answers, installs the templates the configuration asks for (one
/// per destination, the first being `--index-prefix`'s; a destination's data stream is kept
/// only where the cluster has them), and returns what answered and the free-form layout the
/// events must use on it.
pub async fn prepare(
    client: &Cluster,
    cluster: &ClusterConfig,
    index: &IndexConfig,
    destinations: &mut [Destination],
) -> Result<(ClusterInfo, FreeForm), SinkError> {
    let info = product::detect(client, cluster.url().as_str()).await?;
    tracing::info!(distribution = %info.distribution, version = %info.version, "cluster detected");
    let free_form = template::prepare(client, index, &info, destinations).await?;
    Ok((info, free_form))
}

/// The bulk settings the configuration asks for; events of a dataset without a destination
/// go to the first one.
pub fn settings(
    bulk: &BulkConfig,
    index: &IndexConfig,
    destinations: &[Destination],
) -> BulkSettings {
    BulkSettings {
        indices: crate::format::indices(destinations),
        max_bytes: bulk.bulk_max_bytes,
        linger: bulk.bulk_linger,
        concurrency: bulk.bulk_concurrency,
        max_attempts: bulk.bulk_max_attempts,
        min_backoff: Duration::from_millis(200),
        max_backoff: Duration::from_secs(30),
        gzip: bulk.bulk_compression == BulkCompression::Gzip,
        dead_letter_prefix: index.dead_letter_prefix(),
    }
}

/// What the end of the indexer task means: `None` when it finished its work (or was stopped
/// on purpose), otherwise why it failed.
pub fn indexer_failure(
    joined: Result<Result<(), IndexerError>, tokio::task::JoinError>,
) -> Option<String> {
    match joined {
        Ok(Ok(())) => None,
        Ok(Err(err)) => Some(err.to_string()),
        Err(err) if err.is_cancelled() => None,
        Err(err) => Some(format!("it panicked: {err}")),
    }
}

/// Waits for an indexer whose input is closed to finish what it holds, until `deadline`; then
/// stops it, saying `why` in a warning (what it still holds belongs to payloads given up on,
/// which come back). Returns [`indexer_failure`]'s answer.
pub async fn finish_within(
    mut indexer: JoinHandle<Result<(), IndexerError>>,
    deadline: tokio::time::Instant,
    why: &str,
) -> Option<String> {
    match tokio::time::timeout_at(deadline, &mut indexer).await {
        Ok(joined) => indexer_failure(joined),
        Err(_) => {
            tracing::warn!("{why}; stopping the indexer");
            indexer.abort();
            None
        }
    }
}

/// Starts the indexer; it runs until every sender is dropped and everything it took is
/// settled. The byte budget leaves room for the batch being filled and every request in
/// flight (20 MiB by default), and never less than 16 MiB.
pub fn start(client: Cluster, settings: BulkSettings, stats: Arc<Stats>) -> SinkHandle {
    let budget = MIN_BUDGET_BYTES.max((settings.concurrency + 2) * settings.max_bytes);
    stats.counters::<SinkCounters>();
    let (sender, receiver) = pipeline::channel(CHANNEL_PARCELS, budget);
    let indexer = tokio::spawn(bulk::run_indexer(client, settings, receiver, stats));
    (sender, indexer)
}
