//! Probe: one bulk `create` of a small document with an `_id`, the way the worker writes
//! events, to learn whether the cluster takes such writes. `check` runs it against
//! `<prefix>-preflight`; the product detection runs it against an OpenSearch Serverless
//! collection, which has no `GET /` (a time series or vector search collection refuses
//! `_id`s). The document has no `@timestamp`, so dashboards ignore it; on later runs it is
//! answered 409, which counts as taken.

use bytes::Bytes;

use super::client::Cluster;
use super::request;
use super::response::{BulkError, ItemOutcome};

/// The `_id` of the probe document.
pub const PROBE_ID: &str = "cloudtrail-ingest-preflight";

/// Creates the probe document in `index`; the cluster's word on it.
pub async fn create(client: &Cluster, index: &str) -> Result<ItemOutcome, BulkError> {
    let mut body = Vec::new();
    request::append_create(&mut body, index, PROBE_ID, None, br#"{"preflight":true}"#);
    let outcomes = request::send(client, Bytes::from(body), false, 1).await?;
    Ok(outcomes
        .into_iter()
        .next()
        .expect("a classified response has one outcome per item sent"))
}
