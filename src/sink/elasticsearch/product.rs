//! Product: which search product and version answers, checked at start.
//!
//! `GET /` tells Elasticsearch from OpenSearch (and an OpenSearch that reports 7.10.2 from a
//! real Elasticsearch 7.10.2) and gives the version the templates are written for. An
//! OpenSearch Serverless collection has no `GET /`: there, the [`probe`] checks instead that
//! the collection answers and keeps `_id`s.

use elasticsearch::http::headers::HeaderMap;
use elasticsearch::http::Method;
use serde::Deserialize;

use super::client::{Cluster, ClusterError};
use super::probe;
use super::response::{BulkError, ItemOutcome};
use super::sigv4::{AwsService, Signer};

/// Which search product answered, and its version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterInfo {
    pub distribution: Distribution,
    pub version: String,
    /// `default` or `oss` on Elasticsearch 7.x; absent elsewhere.
    pub build_flavor: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Distribution {
    Elasticsearch,
    OpenSearch,
    /// An Amazon OpenSearch Serverless search collection (`--elasticsearch-aws-service aoss`).
    Serverless,
}

impl std::fmt::Display for Distribution {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Distribution::Elasticsearch => "elasticsearch",
            Distribution::OpenSearch => "opensearch",
            Distribution::Serverless => "opensearch-serverless",
        })
    }
}

async fn detect_serverless(client: &Cluster, url: &str) -> Result<ClusterInfo, ClusterError> {
    let serverless = |reason: String| ClusterError::Serverless {
        url: url.to_string(),
        reason,
    };
    match probe::create(client, SERVERLESS_PROBE_INDEX).await {
        Ok(outcome) => match outcome {
            ItemOutcome::Indexed | ItemOutcome::AlreadyIndexed => Ok(ClusterInfo {
                distribution: Distribution::Serverless,
                version: "search collection".into(),
                build_flavor: None,
            }),
            ItemOutcome::Rejected(rejection) if rejection.reason.contains("Document ID is not supported") => Err(serverless(
                "it is a time series or vector search collection, which makes up its own document ids: every redelivered event would be indexed again. Send audit logs to a search collection (type SEARCH), which keeps the events' ids".into(),
            )),
            ItemOutcome::Rejected(rejection) => Err(serverless(format!("a bulk create with an _id was refused: {rejection}"))),
            ItemOutcome::Retry { status, reason } => Err(serverless(format!("a bulk create answered HTTP {status}: {reason}"))),
        },
        Err(BulkError::Status { status, body }) => {
            let hint = client.signer().map(|signer| {
                super::sigv4::diagnose(status, &body, signer.service(), signer.region()).hint
            });
            Err(serverless(format!(
                "a bulk create answered HTTP {status}: {}{}",
                body.chars().take(300).collect::<String>(),
                hint.map(|h| format!("; {h}")).unwrap_or_default()
            )))
        }
        Err(BulkError::Connection(source)) => Err(ClusterError::Unreachable {
            url: url.to_string(),
            source,
        }),
        Err(other) => Err(serverless(other.to_string())),
    }
}

#[derive(Deserialize)]
struct RootResponse {
    version: RootVersion,
}

#[derive(Deserialize)]
struct RootVersion {
    number: String,
    #[serde(default)]
    distribution: Option<String>,
    #[serde(default)]
    build_flavor: Option<String>,
}

/// The index of the probe document that proves an OpenSearch Serverless collection takes
/// writes with `_id`s.
pub const SERVERLESS_PROBE_INDEX: &str = "cloudtrail-ingest-preflight";

/// `GET /`: checks that the cluster answers with these credentials and tells what it is. An
/// OpenSearch Serverless collection has no `GET /` (it answers 404): there, one bulk `create`
/// with an `_id` checks instead that the collection answers and keeps `_id`s (search
/// collections do; time series and vector search collections refuse them, which would break
/// one document per event, so the worker refuses to start).
pub async fn detect(client: &Cluster, url: &str) -> Result<ClusterInfo, ClusterError> {
    if client.signer().map(Signer::service) == Some(AwsService::Aoss) {
        return detect_serverless(client, url).await;
    }
    let response = client
        .send(Method::Get, "/", HeaderMap::new(), None)
        .await
        .map_err(|source| ClusterError::Unreachable {
            url: url.to_string(),
            source,
        })?;
    let status = response.status_code().as_u16();
    let body = response
        .text()
        .await
        .map_err(|source| ClusterError::Unreachable {
            url: url.to_string(),
            source: source.into(),
        })?;
    if status != 200 {
        let mut body: String = body.chars().take(300).collect();
        if let (401 | 403, Some(signer)) = (status, client.signer()) {
            let diagnosis =
                super::sigv4::diagnose(status, &body, signer.service(), signer.region());
            body = format!("{body}; {}", diagnosis.hint);
        }
        return Err(ClusterError::Refused {
            url: url.to_string(),
            status,
            body,
        });
    }
    parse_root(&body).ok_or_else(|| ClusterError::Refused {
        url: url.to_string(),
        status,
        body: format!(
            "not an Elasticsearch/OpenSearch root response: {}",
            body.chars().take(300).collect::<String>()
        ),
    })
}

pub(crate) fn parse_root(body: &str) -> Option<ClusterInfo> {
    let root: RootResponse = serde_json::from_str(body).ok()?;
    let distribution = match root.version.distribution.as_deref() {
        Some("opensearch") => Distribution::OpenSearch,
        _ => Distribution::Elasticsearch,
    };
    Some(ClusterInfo {
        distribution,
        version: root.version.number,
        build_flavor: root.version.build_flavor,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tells_products_apart() {
        let es = r#"{"name":"n","cluster_name":"c","version":{"number":"8.15.0","build_flavor":"default"},"tagline":"You Know, for Search"}"#;
        let os = r#"{"name":"n","version":{"distribution":"opensearch","number":"2.11.0"},"tagline":"The OpenSearch Project: https://opensearch.org/"}"#;
        assert_eq!(
            parse_root(es),
            Some(ClusterInfo {
                distribution: Distribution::Elasticsearch,
                version: "8.15.0".into(),
                build_flavor: Some("default".into()),
            })
        );
        assert_eq!(
            parse_root(os).unwrap().distribution,
            Distribution::OpenSearch
        );
        assert_eq!(parse_root("<html>"), None);
    }
}
