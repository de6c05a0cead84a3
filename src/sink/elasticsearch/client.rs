//! Client: the Elasticsearch/OpenSearch client, built from the configuration.
//!
//! The client sends plain `application/json` (and `application/x-ndjson` for bulk), which
//! Elasticsearch 7, 8 and 9 and OpenSearch 1-3 all accept, and it does no product check, so
//! the same worker talks to all of them. TLS uses the system roots plus an optional CA file.
//!
//! Every request goes through [`Cluster::send`], which signs it with SigV4 when
//! `--elasticsearch-aws-sigv4` is on ([`super::sigv4`]): the `elasticsearch` crate's generic
//! `send` takes the request's own headers and passes the body through untouched, so the
//! signature it carries covers exactly the bytes sent.

use std::sync::Arc;

use bytes::Bytes;
use elasticsearch::auth::Credentials;
use elasticsearch::cert::{Certificate, CertificateValidation};
use elasticsearch::http::headers::{HeaderMap, HeaderName, HeaderValue};
use elasticsearch::http::response::Response;
use elasticsearch::http::transport::{SingleNodeConnectionPool, TransportBuilder};
use elasticsearch::http::Method;
use elasticsearch::Elasticsearch;
use url::Url;

use super::sigv4::Signer;
use crate::config::{ClusterAuth, ClusterConfig};

/// A request that got no answer from the cluster.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error(transparent)]
    Transport(#[from] elasticsearch::Error),
    /// SigV4 is on and the request could not be signed (no credentials).
    #[error("{0}")]
    Signing(String),
}

/// The cluster as every stage talks to it.
#[derive(Clone)]
pub struct Cluster {
    client: Elasticsearch,
    url: Url,
    signer: Option<Arc<Signer>>,
}

/// The client's own `Debug` shows the credentials it holds: only the URL (without them) and
/// the signer are shown.
impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("url", &self.url.as_str())
            .field("signer", &self.signer)
            .finish_non_exhaustive()
    }
}

impl Cluster {
    /// The SigV4 signer, when requests are signed.
    pub fn signer(&self) -> Option<&Signer> {
        self.signer.as_deref()
    }

    /// Sends `method` `path` (with its query, e.g. `/_bulk?filter_path=errors`), signed when
    /// SigV4 is on.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        mut headers: HeaderMap,
        body: Option<Bytes>,
    ) -> Result<Response, RequestError> {
        if let Some(signer) = &self.signer {
            let url = self
                .url
                .join(path.trim_start_matches('/'))
                .map_err(|e| RequestError::Signing(format!("{path} is not a path: {e}")))?;
            let signed = signer
                .headers(
                    method_name(method),
                    url.as_str(),
                    body.as_deref().unwrap_or_default(),
                )
                .await
                .map_err(RequestError::Signing)?;
            for (name, value) in signed {
                let unusable = |e: &dyn std::fmt::Display| {
                    RequestError::Signing(format!("unusable {name} header: {e}"))
                };
                let mut value = HeaderValue::from_str(&value).map_err(|e| unusable(&e))?;
                value.set_sensitive(name == "authorization" || name == "x-amz-security-token");
                let name = HeaderName::from_bytes(name.as_bytes()).map_err(|e| unusable(&e))?;
                headers.insert(name, value);
            }
        }
        Ok(self
            .client
            .send(method, path, headers, None::<&()>, body, None)
            .await?)
    }
}

fn method_name(method: Method) -> &'static str {
    match method {
        Method::Get => "GET",
        Method::Put => "PUT",
        Method::Post => "POST",
        Method::Delete => "DELETE",
        Method::Head => "HEAD",
    }
}

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
    Unreachable { url: String, source: RequestError },
    #[error("OpenSearch Serverless collection at {url}: {reason}")]
    Serverless { url: String, reason: String },
    #[error("cluster at {url} answered GET / with HTTP {status}: {body}")]
    Refused {
        url: String,
        status: u16,
        body: String,
    },
}

/// Builds the client; makes no request. With `--elasticsearch-aws-sigv4`, every request is
/// signed with the credentials and region of `aws` (the standard chain), which must be given.
pub fn connect(
    config: &ClusterConfig,
    aws: Option<&aws_config::SdkConfig>,
) -> Result<Cluster, ClusterError> {
    let signer = match (config.elasticsearch_aws_sigv4, aws) {
        (false, _) => None,
        (true, None) => {
            return Err(ClusterError::Build(
                "--elasticsearch-aws-sigv4 needs the AWS configuration".into(),
            ))
        }
        (true, Some(aws)) => Some(signer(config, aws)?),
    };
    connect_signed(config, signer)
}

/// The SigV4 signer `config` asks for, with the credentials and region of `aws`.
fn signer(config: &ClusterConfig, aws: &aws_config::SdkConfig) -> Result<Signer, ClusterError> {
    let region = config
        .elasticsearch_aws_region
        .clone()
        .or_else(|| aws.region().map(|r| r.to_string()))
        .ok_or_else(|| {
            ClusterError::Build(
                "--elasticsearch-aws-sigv4 needs a region: set --elasticsearch-aws-region or AWS_REGION"
                    .into(),
            )
        })?;
    let provider = aws.credentials_provider().ok_or_else(|| {
        ClusterError::Build("--elasticsearch-aws-sigv4: no AWS credentials provider".into())
    })?;
    Ok(Signer::new(provider, region, config.aws_service()))
}

/// [`connect`], signing every request with `signer` when given.
fn connect_signed(config: &ClusterConfig, signer: Option<Signer>) -> Result<Cluster, ClusterError> {
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
    Ok(Cluster {
        client: Elasticsearch::new(transport),
        url: config.url(),
        signer: signer.map(Arc::new),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_credentials() {
        let config = <crate::config::Config as clap::Parser>::parse_from([
            "x",
            "--elasticsearch-url",
            "https://elastic:hunter2-password@search.example.com:9200",
            "--elasticsearch-api-key",
            "c2VjcmV0LWtleQ==",
        ])
        .shared
        .cluster;
        let shown = format!("{:?}", connect(&config, None).unwrap());
        assert!(shown.contains("search.example.com"), "{shown}");
        assert!(
            !shown.contains("hunter2") && !shown.contains("c2VjcmV0"),
            "{shown}"
        );
    }
}
