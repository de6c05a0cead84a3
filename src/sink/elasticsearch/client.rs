//! Client: the Elasticsearch/OpenSearch client, built from the configuration, and the
//! start-up check that the cluster answers and which product and version it is.
//!
//! The client sends plain `application/json` (and `application/x-ndjson` for bulk), which
//! Elasticsearch 7, 8 and 9 and OpenSearch 1-3 all accept, and it does no product check, so
//! the same worker talks to all of them. TLS uses the system roots plus an optional CA file.

use elasticsearch::auth::Credentials;
use elasticsearch::cert::{Certificate, CertificateValidation};
use elasticsearch::http::headers::HeaderMap;
use elasticsearch::http::transport::{SingleNodeConnectionPool, TransportBuilder};
use elasticsearch::http::Method;
use elasticsearch::Elasticsearch;
use serde::Deserialize;

use crate::config::{ClusterAuth, ClusterConfig};

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("cannot read CA file {path}: {source}")]
    CaFile {
        path: String,
        source: std::io::Error,
    },
    #[error("CA file {path} holds no usable PEM certificate: {source}")]
    CaCertificate {
        path: String,
        source: elasticsearch::Error,
    },
    #[error("cannot build the cluster client: {0}")]
    Build(String),
    #[error("cluster at {url} is unreachable: {source}")]
    Unreachable {
        url: String,
        source: elasticsearch::Error,
    },
    #[error("cluster at {url} answered GET / with HTTP {status}: {body}")]
    Refused {
        url: String,
        status: u16,
        body: String,
    },
}

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
}

impl std::fmt::Display for Distribution {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Distribution::Elasticsearch => "elasticsearch",
            Distribution::OpenSearch => "opensearch",
        })
    }
}

/// Builds the client; makes no request.
pub fn connect(config: &ClusterConfig) -> Result<Elasticsearch, ClusterError> {
    let url = config.url();
    let mut builder = TransportBuilder::new(SingleNodeConnectionPool::new(url))
        .timeout(config.elasticsearch_timeout)
        .enable_meta_header(false);
    builder = match config.auth() {
        ClusterAuth::None => builder,
        ClusterAuth::Basic { username, password } => {
            builder.auth(Credentials::Basic(username, password.expose().to_string()))
        }
        ClusterAuth::ApiKey(key) => {
            builder.auth(Credentials::EncodedApiKey(key.expose().to_string()))
        }
    };
    if let Some(path) = &config.elasticsearch_ca_file {
        let display = path.display().to_string();
        let pem = std::fs::read(path).map_err(|source| ClusterError::CaFile {
            path: display.clone(),
            source,
        })?;
        let certificate =
            Certificate::from_pem(&pem).map_err(|source| ClusterError::CaCertificate {
                path: display,
                source,
            })?;
        builder = builder.cert_validation(CertificateValidation::Full(certificate));
    }
    let transport = builder
        .build()
        .map_err(|e| ClusterError::Build(e.to_string()))?;
    Ok(Elasticsearch::new(transport))
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

/// `GET /`: checks that the cluster answers with these credentials and tells what it is.
pub async fn detect(client: &Elasticsearch, url: &str) -> Result<ClusterInfo, ClusterError> {
    let response = client
        .send(
            Method::Get,
            "/",
            HeaderMap::new(),
            None::<&()>,
            None::<()>,
            None,
        )
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
            source,
        })?;
    if status != 200 {
        return Err(ClusterError::Refused {
            url: url.to_string(),
            status,
            body: body.chars().take(300).collect(),
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

fn parse_root(body: &str) -> Option<ClusterInfo> {
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
