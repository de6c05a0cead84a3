//! The `webhook` command: the HTTP receiver's flags ([`WebhookConfig`]) and the shared groups.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::{ConfigError, Secret, Shared};

/// Index prefix of the webhook source when `--index-prefix` is not given.
pub const DEFAULT_INDEX_PREFIX: &str = "konnect-audit";

/// `cloudtrail-ingest webhook`: the whole configuration of the webhook source.
#[derive(Debug, Clone, Args)]
#[command(mut_arg("index_prefix", |arg| arg.default_value(DEFAULT_INDEX_PREFIX)))]
pub struct WebhookCommand {
    #[command(flatten)]
    pub webhook: WebhookConfig,

    #[command(flatten)]
    pub shared: Shared,
}

/// The HTTP(S) listener, its authorization and its limits.
#[derive(Debug, Clone, Args)]
pub struct WebhookConfig {
    /// Address to listen on, e.g. 0.0.0.0:8443.
    #[arg(long, env = "CLOUDTRAIL_INGEST_LISTEN", value_name = "ADDR")]
    pub listen: Option<SocketAddr>,

    /// Path that receives the log batches (POST); other paths answer 404, other methods 405.
    #[arg(
        long,
        env = "CLOUDTRAIL_INGEST_WEBHOOK_PATH",
        default_value = "/",
        value_name = "PATH"
    )]
    pub webhook_path: String,

    /// The exact `Authorization` header value the sender is configured with (Konnect: the
    /// webhook's `authorization`, e.g. `Bearer <token>`). Never printed.
    #[arg(
        long,
        env = "CLOUDTRAIL_INGEST_WEBHOOK_AUTHORIZATION",
        value_name = "VALUE",
        hide_env_values = true
    )]
    pub webhook_authorization: Option<Secret>,

    /// Accept requests without an `Authorization` header (only behind something that
    /// authenticates them).
    #[arg(long, env = "CLOUDTRAIL_INGEST_WEBHOOK_NO_AUTH")]
    pub webhook_no_auth: bool,

    /// PEM certificate chain for HTTPS (with --tls-key) [default: plain HTTP, for use behind a
    /// load balancer that terminates TLS].
    #[arg(long, env = "CLOUDTRAIL_INGEST_TLS_CERT", value_name = "PATH")]
    pub tls_cert: Option<PathBuf>,

    /// PEM private key of --tls-cert.
    #[arg(long, env = "CLOUDTRAIL_INGEST_TLS_KEY", value_name = "PATH")]
    pub tls_key: Option<PathBuf>,

    /// Largest body accepted, compressed and decompressed both (bytes, or with KiB/MiB/GiB).
    #[arg(
        long,
        env = "CLOUDTRAIL_INGEST_WEBHOOK_MAX_BODY",
        default_value = "10MiB",
        value_parser = parse_bytes,
        value_name = "BYTES"
    )]
    pub webhook_max_body: usize,

    /// How bodies are read: `auto` (by their first byte), `json` (NDJSON, an array or one
    /// object) or `cef` (one CEF line per entry).
    #[arg(
        long,
        env = "CLOUDTRAIL_INGEST_WEBHOOK_FORMAT",
        value_enum,
        default_value_t = WebhookFormat::Auto,
        value_name = "FORMAT"
    )]
    pub webhook_format: WebhookFormat,

    /// Requests handled at once; more are answered 503 with Retry-After.
    #[arg(
        long,
        env = "CLOUDTRAIL_INGEST_WEBHOOK_MAX_IN_FLIGHT",
        default_value_t = 32,
        value_name = "N"
    )]
    pub webhook_max_in_flight: usize,

    /// The status asking the sender to retry (cluster unavailable, at capacity, not indexed in
    /// time), sent with `Retry-After`. Konnect documents retries on 500 and 429 only: use 429
    /// (or 500) for Konnect.
    #[arg(
        long,
        env = "CLOUDTRAIL_INGEST_WEBHOOK_RETRY_STATUS",
        value_enum,
        default_value_t = RetryStatus::ServiceUnavailable,
        value_name = "STATUS"
    )]
    pub webhook_retry_status: RetryStatus,

    /// Longest a request may wait for its entries to be indexed; past it the answer asks the
    /// sender to retry (what was indexed meanwhile is not duplicated).
    #[arg(long, env = "CLOUDTRAIL_INGEST_WEBHOOK_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub webhook_timeout: Duration,
}

/// See `--webhook-retry-status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RetryStatus {
    #[value(name = "503")]
    ServiceUnavailable,
    #[value(name = "429")]
    TooManyRequests,
    #[value(name = "500")]
    InternalServerError,
}

impl RetryStatus {
    pub fn code(self) -> u16 {
        match self {
            RetryStatus::ServiceUnavailable => 503,
            RetryStatus::TooManyRequests => 429,
            RetryStatus::InternalServerError => 500,
        }
    }
}

/// See `--webhook-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum WebhookFormat {
    Auto,
    Json,
    Cef,
}

/// `10485760`, `512KiB`, `10MiB`, `1GiB` (also `K`, `M`, `G`, `KB`, `MB`, `GB` as binary units).
pub fn parse_bytes(text: &str) -> Result<usize, String> {
    let text = text.trim();
    let digits = text.chars().take_while(char::is_ascii_digit).count();
    let number: usize = text[..digits]
        .parse()
        .map_err(|_| format!("{text:?} is not a size such as 10MiB"))?;
    let unit = match text[digits..].trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => return Err(format!("{text:?} is not a size such as 10MiB")),
    };
    number
        .checked_mul(unit)
        .ok_or_else(|| format!("{text:?} is too large"))
}

impl WebhookCommand {
    /// Checks every field and reports all problems at once.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut problems = Vec::new();
        let hook = &self.webhook;
        if hook.listen.is_none() {
            problems
                .push("--listen (CLOUDTRAIL_INGEST_LISTEN) is required, e.g. 0.0.0.0:8443".into());
        }
        if !hook.webhook_path.starts_with('/') {
            problems.push(format!(
                "--webhook-path {:?} must start with '/'",
                hook.webhook_path
            ));
        }
        if ["/healthz", "/readyz", "/metrics"].contains(&hook.webhook_path.as_str()) {
            problems.push(format!(
                "--webhook-path {} is taken by the health and metrics endpoints",
                hook.webhook_path
            ));
        }
        match (&hook.webhook_authorization, hook.webhook_no_auth) {
            (None, false) => problems.push(
                "--webhook-authorization (CLOUDTRAIL_INGEST_WEBHOOK_AUTHORIZATION) is required; give --webhook-no-auth to accept unauthenticated requests"
                    .into(),
            ),
            (Some(_), true) => problems.push("give --webhook-authorization or --webhook-no-auth, not both".into()),
            (Some(value), false) if value.expose().trim().is_empty() => {
                problems.push("--webhook-authorization must not be empty".into())
            }
            _ => {}
        }
        match (&hook.tls_cert, &hook.tls_key) {
            (Some(cert), Some(key)) => {
                for (flag, path) in [("--tls-cert", cert), ("--tls-key", key)] {
                    if !path.is_file() {
                        problems.push(format!("{flag} {} is not a readable file", path.display()));
                    }
                }
            }
            (None, None) => {}
            _ => problems.push("--tls-cert and --tls-key must be given together".into()),
        }
        if hook.webhook_max_body < 1024 {
            problems.push("--webhook-max-body must be at least 1KiB".into());
        }
        if hook.webhook_max_in_flight == 0 {
            problems.push("--webhook-max-in-flight must be at least 1".into());
        }
        self.shared.validate(&mut problems);
        ConfigError::check(problems)
    }

    /// A one-line summary for the start-up log; never contains secrets.
    pub fn redacted_summary(&self) -> String {
        let hook = &self.webhook;
        format!(
            "listen={} webhook_path={} webhook_authorization={} tls={} webhook_max_body={} webhook_format={:?} webhook_max_in_flight={} webhook_retry_status={} webhook_timeout={:?} {}",
            hook.listen.map(|a| a.to_string()).unwrap_or_else(|| "-".into()),
            hook.webhook_path,
            if hook.webhook_authorization.is_some() { "redacted" } else { "off" },
            hook.tls_cert.as_ref().map(|p| p.display().to_string()).unwrap_or_else(|| "off".into()),
            hook.webhook_max_body,
            hook.webhook_format,
            hook.webhook_max_in_flight,
            hook.webhook_retry_status.code(),
            hook.webhook_timeout,
            self.shared.summary(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_bytes("10MiB"), Ok(10 << 20));
        assert_eq!(parse_bytes("512 KiB"), Ok(512 << 10));
        assert_eq!(parse_bytes("2048"), Ok(2048));
        assert_eq!(parse_bytes("1g"), Ok(1 << 30));
        assert!(parse_bytes("ten").is_err());
        assert!(parse_bytes("5TB").is_err());
    }
}
