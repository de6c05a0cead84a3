//! The SigV4-verifying proxy (`tests/standins/sigv4_proxy.py`, botocore's signer) in front of
//! the search stand-in, and credential providers for the SigV4 tests.

use std::process::{Child, Command};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_credential_types::provider::{future, ProvideCredentials, SharedCredentialsProvider};
use aws_credential_types::Credentials;
use aws_sdk_sqs::config::{BehaviorVersion, Region};
use serde_json::Value;

use super::{standins, start, venv, MANIFEST_DIR};

/// The proxy; it exits when dropped (its stdin closes).
pub struct SigV4Proxy {
    pub url: String,
    _child: Child,
}

impl SigV4Proxy {
    /// A proxy for `region`/`service` that knows the keys of `keys`
    /// (`{"KEY": {"secret": ..., "token": ...}}`).
    pub fn start(region: &str, service: &str, keys: &Value) -> SigV4Proxy {
        Self::start_as(region, service, keys, None)
    }

    /// A proxy answering as an OpenSearch Serverless collection of `collection` type
    /// (`search` or `timeseries`) where it differs from a domain.
    pub fn start_as(
        region: &str,
        service: &str,
        keys: &Value,
        collection: Option<&str>,
    ) -> SigV4Proxy {
        let mut command = Command::new(venv().join("bin/python"));
        command
            .arg(std::path::Path::new(MANIFEST_DIR).join("tests/standins/sigv4_proxy.py"))
            .arg(&standins().search_url)
            .arg(region)
            .arg(service)
            .arg(keys.to_string());
        if let Some(collection) = collection {
            command.arg(collection);
        }
        let (child, url) = start(&mut command);
        SigV4Proxy { url, _child: child }
    }

    /// `{"verified", "refused", "keys": {key: n}, "gzip", "reasons": {reason: n}, "root"}`
    pub async fn stats(&self) -> Value {
        reqwest::get(format!("{}/_sigv4_proxy/stats", self.url))
            .await
            .expect("proxy stats")
            .json()
            .await
            .expect("proxy stats JSON")
    }
}

/// An AWS configuration for the moto stand-in whose credentials come from `provider`.
pub fn aws_with(provider: impl ProvideCredentials + 'static) -> aws_config::SdkConfig {
    aws_config::SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(&standins().aws_url)
        .credentials_provider(SharedCredentialsProvider::new(provider))
        .build()
}

/// Hands out `KEY0`, `KEY1`, `KEY2` in turn, each with a session token and an expiry one
/// minute ahead, so the worker fetches credentials again for every request.
#[derive(Debug, Default)]
pub struct Rotating {
    calls: AtomicUsize,
}

impl Rotating {
    /// The keys as the proxy must know them.
    pub fn keys() -> Value {
        (0..3)
            .map(|n| {
                (
                    format!("KEY{n}"),
                    serde_json::json!({"secret": format!("secret-{n}"), "token": format!("token-{n}")}),
                )
            })
            .collect::<serde_json::Map<_, _>>()
            .into()
    }
}

impl ProvideCredentials for Rotating {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        let n = self.calls.fetch_add(1, Ordering::SeqCst) % 3;
        future::ProvideCredentials::ready(Ok(Credentials::new(
            format!("KEY{n}"),
            format!("secret-{n}"),
            Some(format!("token-{n}")),
            Some(SystemTime::now() + Duration::from_secs(60)),
            "rotating",
        )))
    }
}

/// `KEY0` while `valid` is set, else a key the proxy does not know; fetched again for every
/// request (an expiry one minute ahead).
#[derive(Debug, Clone)]
pub struct Switch {
    pub valid: Arc<AtomicBool>,
}

impl ProvideCredentials for Switch {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        let (key, secret, token) = if self.valid.load(Ordering::SeqCst) {
            ("KEY0", "secret-0", "token-0")
        } else {
            ("AKIDREVOKED", "wrong", "revoked")
        };
        future::ProvideCredentials::ready(Ok(Credentials::new(
            key,
            secret,
            Some(token.to_string()),
            Some(SystemTime::now() + Duration::from_secs(60)),
            "switch",
        )))
    }
}
