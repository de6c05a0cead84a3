//! What every ingesting command shares ([`Shared`]): the cluster connection
//! ([`ClusterConfig`]), the indices and templates ([`IndexConfig`]), the bulk writer
//! ([`BulkConfig`]), telemetry ([`TelemetryConfig`]), detection ([`DetectConfig`]) and the
//! shutdown grace period; and the problems a configuration can have ([`ConfigError`]).

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use url::Url;

use super::detect::DetectConfig;
use super::schema::SchemaConfig;
use super::secret::{ClusterUrl, Secret, SplitUrl};

/// Adds a problem when `field` (given with `flag`) is not a dotted field path (`meta.id`).
pub(super) fn validate_field_path(flag: &str, field: Option<&String>, problems: &mut Vec<String>) {
    if let Some(field) = field {
        if field.split('.').any(str::is_empty) {
            problems.push(format!("{flag} {field:?} is not a dotted field path"));
        }
    }
}

/// Environment variables for every flag share this prefix.
pub const ENV_PREFIX: &str = "CLOUDTRAIL_INGEST_";

/// Index prefix of the SQS source when `--index-prefix` is not given.
pub const DEFAULT_INDEX_PREFIX: &str = "cloudtrail";

/// The connection to the Elasticsearch or OpenSearch cluster.
#[derive(Debug, Clone, Args)]
pub struct ClusterConfig {
    /// URL of the Elasticsearch or OpenSearch cluster, e.g. https://search.example.com:9200.
    /// `user:password@` in it is used for basic authentication and never printed.
    #[arg(
        long,
        env = "CLOUDTRAIL_INGEST_ELASTICSEARCH_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    pub elasticsearch_url: Option<ClusterUrl>,

    /// Cluster user for basic authentication (needs --elasticsearch-password).
    #[arg(
        long,
        env = "CLOUDTRAIL_INGEST_ELASTICSEARCH_USERNAME",
        value_name = "USER"
    )]
    pub elasticsearch_username: Option<String>,

    /// Cluster password for basic authentication.
    #[arg(
        long,
        env = "CLOUDTRAIL_INGEST_ELASTICSEARCH_PASSWORD",
        value_name = "PASSWORD",
        hide_env_values = true
    )]
    pub elasticsearch_password: Option<Secret>,

    /// Cluster API key, base64-encoded `id:key` as Elasticsearch and Kibana print it.
    #[arg(
        long,
        env = "CLOUDTRAIL_INGEST_ELASTICSEARCH_API_KEY",
        value_name = "KEY",
        hide_env_values = true
    )]
    pub elasticsearch_api_key: Option<Secret>,

    /// PEM file with CA certificates to trust for the cluster, in addition to the system roots.
    #[arg(
        long,
        env = "CLOUDTRAIL_INGEST_ELASTICSEARCH_CA_FILE",
        value_name = "PATH"
    )]
    pub elasticsearch_ca_file: Option<PathBuf>,

    /// Timeout of one request to the cluster.
    #[arg(long, env = "CLOUDTRAIL_INGEST_ELASTICSEARCH_TIMEOUT", default_value = "60s", value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub elasticsearch_timeout: Duration,

    /// Sign every cluster request with AWS Signature V4 (Amazon OpenSearch Service with IAM,
    /// OpenSearch Serverless), with the credentials of the standard AWS chain (task role,
    /// instance profile, profiles, SSO), fetched again before they expire.
    #[arg(long, env = "CLOUDTRAIL_INGEST_ELASTICSEARCH_AWS_SIGV4")]
    pub elasticsearch_aws_sigv4: bool,

    /// The service signed for: `es` (OpenSearch Service domains) or `aoss` (OpenSearch
    /// Serverless collections) [default: es].
    #[arg(
        long,
        env = "CLOUDTRAIL_INGEST_ELASTICSEARCH_AWS_SERVICE",
        value_enum,
        value_name = "SERVICE"
    )]
    pub elasticsearch_aws_service: Option<AwsService>,

    /// The region signed for [default: the AWS region].
    #[arg(
        long,
        env = "CLOUDTRAIL_INGEST_ELASTICSEARCH_AWS_REGION",
        value_name = "REGION"
    )]
    pub elasticsearch_aws_region: Option<String>,
}

/// The daily indices, their templates and the dead-letter indices.
#[derive(Debug, Clone, Args)]
pub struct IndexConfig {
    /// Documents go to `<prefix>-YYYY.MM.DD`, by the event's own time in UTC.
    #[arg(long, env = "CLOUDTRAIL_INGEST_INDEX_PREFIX", default_value = DEFAULT_INDEX_PREFIX, value_name = "PREFIX")]
    pub index_prefix: String,

    /// How the free-form objects (requestParameters, responseElements, additionalEventData,
    /// serviceEventDetails) are stored: `auto` keeps them as objects, mapped `flattened`
    /// (Elasticsearch >= 7.3) or `flat_object` (OpenSearch >= 2.7), and falls back to JSON
    /// strings on clusters without those types; `as-string` always stores JSON strings.
    #[arg(
        long,
        env = "CLOUDTRAIL_INGEST_FREE_FORM_FIELDS",
        value_enum,
        default_value_t = FreeFormFields::Auto,
        value_name = "MODE"
    )]
    pub free_form_fields: FreeFormFields,

    /// `install` puts this tool's index templates for `<prefix>-*` and the dead-letter
    /// indices at start (idempotent); `skip` leaves templates to you.
    #[arg(
        long,
        env = "CLOUDTRAIL_INGEST_INDEX_TEMPLATE",
        value_enum,
        default_value_t = TemplateMode::Install,
        value_name = "MODE"
    )]
    pub index_template: TemplateMode,

    /// Install this JSON file as the template for `<prefix>-*` instead of the generated one
    /// (an `_index_template` body, or a `_template` body on Elasticsearch before 7.8).
    #[arg(
        long,
        env = "CLOUDTRAIL_INGEST_INDEX_TEMPLATE_FILE",
        value_name = "PATH"
    )]
    pub index_template_file: Option<PathBuf>,

    /// Primary shards of each daily index.
    #[arg(
        long,
        env = "CLOUDTRAIL_INGEST_INDEX_SHARDS",
        default_value_t = 1,
        value_name = "N"
    )]
    pub index_shards: u32,

    /// Replicas of each daily index [default: the cluster's].
    #[arg(long, env = "CLOUDTRAIL_INGEST_INDEX_REPLICAS", value_name = "N")]
    pub index_replicas: Option<u32>,

    /// Refresh interval of each daily index, e.g. 30s [default: the cluster's].
    #[arg(
        long,
        env = "CLOUDTRAIL_INGEST_INDEX_REFRESH_INTERVAL",
        value_name = "INTERVAL"
    )]
    pub index_refresh_interval: Option<String>,

    /// ILM policy (Elasticsearch) or ISM policy (OpenSearch) for the daily indices; the
    /// policy itself must exist.
    #[arg(long, env = "CLOUDTRAIL_INGEST_LIFECYCLE_POLICY", value_name = "NAME")]
    pub lifecycle_policy: Option<String>,

    /// Documents the cluster rejects for good go to `<this>-YYYY.MM.DD`, with the reason
    /// [default: `<index prefix>-dead-letter`].
    #[arg(
        long,
        env = "CLOUDTRAIL_INGEST_DEAD_LETTER_INDEX_PREFIX",
        value_name = "PREFIX"
    )]
    pub dead_letter_index_prefix: Option<String>,

    /// Do not dead-letter rejected documents: keep their messages in the queue instead.
    #[arg(long, env = "CLOUDTRAIL_INGEST_NO_DEAD_LETTER")]
    pub no_dead_letter: bool,
}

/// How events are written: batching, compression, concurrency and retries.
#[derive(Debug, Clone, Args)]
pub struct BulkConfig {
    /// Maximum size of one bulk request body, in bytes.
    #[arg(
        long,
        env = "CLOUDTRAIL_INGEST_BULK_MAX_BYTES",
        default_value_t = 5 * 1024 * 1024,
        value_name = "BYTES"
    )]
    pub bulk_max_bytes: usize,

    /// How long a partly filled bulk request may wait for more documents.
    #[arg(long, env = "CLOUDTRAIL_INGEST_BULK_LINGER", default_value = "200ms", value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub bulk_linger: Duration,

    /// Compression of bulk request bodies: `none`, or `gzip` (`Content-Encoding: gzip`,
    /// about 6x fewer bytes on the wire for some CPU; worth it across availability zones
    /// or regions, where traffic is billed).
    #[arg(
        long,
        env = "CLOUDTRAIL_INGEST_BULK_COMPRESSION",
        value_enum,
        default_value_t = BulkCompression::None,
        value_name = "MODE"
    )]
    pub bulk_compression: BulkCompression,

    /// Bulk requests in flight at once.
    #[arg(
        long,
        env = "CLOUDTRAIL_INGEST_BULK_CONCURRENCY",
        default_value_t = 2,
        value_name = "N"
    )]
    pub bulk_concurrency: usize,

    /// Attempts for documents the cluster answers 429/5xx item by item, before they fail and
    /// their messages are left for SQS to redeliver. Whole requests that fail (cluster down,
    /// overloaded, credentials refused) are retried until the cluster answers, with
    /// in-flight messages kept invisible.
    #[arg(
        long,
        env = "CLOUDTRAIL_INGEST_BULK_MAX_ATTEMPTS",
        default_value_t = 6,
        value_name = "N"
    )]
    pub bulk_max_attempts: usize,
}

/// Logs and the metrics listener.
#[derive(Debug, Clone, Args)]
pub struct TelemetryConfig {
    /// Log format on standard error: `text` (human-readable; colours on a terminal) or
    /// `json` (one JSON object per line, for CloudWatch Logs and other collectors).
    #[arg(
        long,
        env = "CLOUDTRAIL_INGEST_LOG_FORMAT",
        value_enum,
        default_value_t = LogFormat::Text,
        value_name = "FORMAT"
    )]
    pub log_format: LogFormat,

    /// Serve Prometheus metrics at /metrics, liveness at /healthz and readiness at /readyz on
    /// this address, e.g. 0.0.0.0:9102 [default: no listener].
    #[arg(long, env = "CLOUDTRAIL_INGEST_METRICS_LISTEN", value_name = "ADDR")]
    pub metrics_listen: Option<std::net::SocketAddr>,
}

/// See `--elasticsearch-aws-service`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AwsService {
    /// Amazon OpenSearch Service domains.
    Es,
    /// OpenSearch Serverless collections.
    Aoss,
}

impl AwsService {
    pub fn name(self) -> &'static str {
        match self {
            AwsService::Es => "es",
            AwsService::Aoss => "aoss",
        }
    }
}

/// What the binary does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    Run,
    Check,
}

/// See `--bulk-compression`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BulkCompression {
    None,
    Gzip,
}

/// See `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// See `--free-form-fields`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FreeFormFields {
    Auto,
    AsString,
}

/// See `--index-template`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TemplateMode {
    Install,
    Skip,
}

/// Everything wrong with a configuration, reported together.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {}", .problems.join("; "))]
pub struct ConfigError {
    pub problems: Vec<String>,
}

impl ConfigError {
    /// `Ok` when there is no problem, else every one of them.
    pub fn check(problems: Vec<String>) -> Result<(), ConfigError> {
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError { problems })
        }
    }
}

/// Cluster credentials, at most one kind.
#[derive(Debug, Clone)]
pub enum ClusterAuth {
    None,
    Basic { username: String, password: Secret },
    ApiKey(Secret),
}
/// What every ingesting command shares: the cluster, its indices, the bulk writer,
/// telemetry, detection and the shutdown grace period. Each command flattens it beside its
/// own source's group and states its default `--index-prefix`.
#[derive(Debug, Clone, Args)]
pub struct Shared {
    #[command(flatten)]
    pub cluster: ClusterConfig,

    #[command(flatten)]
    pub index: IndexConfig,

    #[command(flatten)]
    pub bulk: BulkConfig,

    #[command(flatten)]
    pub telemetry: TelemetryConfig,

    #[command(flatten)]
    pub detect: DetectConfig,

    #[command(flatten)]
    pub schema: SchemaConfig,

    /// On SIGTERM/SIGINT, how long the work in flight (messages, records, requests,
    /// objects) may take to settle before exit. Keep it below the orchestrator's kill
    /// timeout (ECS: 30s by default).
    #[arg(long, env = "CLOUDTRAIL_INGEST_SHUTDOWN_GRACE", default_value = "25s", value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub shutdown_grace: Duration,

    /// Read flags from this TOML file, every key a flag's long name
    /// (`elasticsearch-url = "https://..."`, `rules = ["a.yml"]`); a flag beats its
    /// environment variable, which beats the file, which beats the default.
    #[arg(long, env = "CLOUDTRAIL_INGEST_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Print the effective configuration (as a --config file, secrets redacted) and exit.
    #[arg(long, env = "CLOUDTRAIL_INGEST_PRINT_CONFIG")]
    pub print_config: bool,
}

impl Shared {
    /// Adds the problems of every shared group.
    pub fn validate(&self, problems: &mut Vec<String>) {
        self.cluster.validate(problems);
        self.index.validate(problems);
        self.bulk.validate(problems);
        self.detect.validate(problems);
        self.schema.validate(problems);
    }

    /// The part of the start-up summary every command shares; never contains secrets.
    pub fn summary(&self) -> String {
        format!(
            "{} {} shutdown_grace={:?}",
            sink_summary(&self.cluster, &self.index, &self.bulk, &self.detect),
            self.schema.summary(),
            self.shutdown_grace
        )
    }
}

/// Cluster, indices, bulk writer and detection, for the start-up summary.
fn sink_summary(
    cluster: &ClusterConfig,
    index: &IndexConfig,
    bulk: &BulkConfig,
    detect: &DetectConfig,
) -> String {
    let auth = match cluster.auth() {
        _ if cluster.elasticsearch_aws_sigv4 => format!(
            "sigv4({}, region {})",
            cluster.aws_service().name(),
            cluster
                .elasticsearch_aws_region
                .as_deref()
                .unwrap_or("of the AWS configuration")
        ),
        ClusterAuth::None => "none".to_string(),
        ClusterAuth::Basic { username, .. } => format!("basic({username}, password redacted)"),
        ClusterAuth::ApiKey(_) => "api-key(redacted)".to_string(),
    };
    format!(
        "elasticsearch_url={} index_prefix={} dead_letter={} free_form_fields={:?} index_template={:?} auth={} ca_file={} bulk_max_bytes={} bulk_linger={:?} bulk_concurrency={} bulk_max_attempts={} bulk_compression={:?} {}",
        cluster.elasticsearch_url.as_ref().map(ClusterUrl::redacted).unwrap_or_else(|| "-".into()),
        index.prefix(),
        index.dead_letter_prefix().unwrap_or_else(|| "off".into()),
        index.free_form_fields,
        index.index_template,
        auth,
        cluster.elasticsearch_ca_file.as_ref().map(|p| p.display().to_string()).unwrap_or_else(|| "-".into()),
        bulk.bulk_max_bytes,
        bulk.bulk_linger,
        bulk.bulk_concurrency,
        bulk.bulk_max_attempts,
        bulk.bulk_compression,
        detect.summary(),
    )
}

impl BulkConfig {
    fn validate(&self, problems: &mut Vec<String>) {
        if self.bulk_max_bytes < 1024 {
            problems.push("--bulk-max-bytes must be at least 1024".into());
        }
        for (flag, value) in [
            ("--bulk-concurrency", self.bulk_concurrency),
            ("--bulk-max-attempts", self.bulk_max_attempts),
        ] {
            if value == 0 {
                problems.push(format!("{flag} must be at least 1"));
            }
        }
    }
}

impl ClusterConfig {
    fn validate(&self, problems: &mut Vec<String>) {
        let url_credentials = match &self.elasticsearch_url {
            None => {
                problems.push(format!(
                    "--elasticsearch-url ({ENV_PREFIX}ELASTICSEARCH_URL) is required"
                ));
                false
            }
            Some(url) => match url.split() {
                Ok(split) => split.credentials.is_some(),
                Err(err) => {
                    problems.push(format!(
                        "--elasticsearch-url {} is not a valid URL: {err}",
                        url.redacted()
                    ));
                    false
                }
            },
        };
        match (
            &self.elasticsearch_username,
            &self.elasticsearch_password,
            &self.elasticsearch_api_key,
        ) {
            (Some(_), None, _) | (None, Some(_), _) => problems.push(
                "--elasticsearch-username and --elasticsearch-password must be given together"
                    .into(),
            ),
            (Some(_), Some(_), Some(_)) => problems.push(
                "give either --elasticsearch-username/--elasticsearch-password or --elasticsearch-api-key, not both"
                    .into(),
            ),
            (Some(_), Some(_), None) | (None, None, Some(_)) if url_credentials => problems.push(
                "--elasticsearch-url carries credentials and other cluster credentials are given too: give one kind"
                    .into(),
            ),
            _ => {}
        }
        if self.elasticsearch_aws_sigv4 {
            if url_credentials
                || self.elasticsearch_username.is_some()
                || self.elasticsearch_api_key.is_some()
            {
                problems.push(
                    "--elasticsearch-aws-sigv4 signs with AWS credentials: give no other cluster credentials"
                        .into(),
                );
            }
        } else if self.elasticsearch_aws_service.is_some()
            || self.elasticsearch_aws_region.is_some()
        {
            problems.push(
                "--elasticsearch-aws-service and --elasticsearch-aws-region apply only with --elasticsearch-aws-sigv4"
                    .into(),
            );
        }
        if let Some(path) = &self.elasticsearch_ca_file {
            if !path.is_file() {
                problems.push(format!(
                    "--elasticsearch-ca-file {} is not a readable file",
                    path.display()
                ));
            }
        }
    }

    /// The service SigV4 signs for.
    pub fn aws_service(&self) -> AwsService {
        self.elasticsearch_aws_service.unwrap_or(AwsService::Es)
    }

    /// The cluster URL without credentials; only call after [`Config::validate`] succeeded.
    pub fn url(&self) -> Url {
        self.split_url().url
    }

    fn split_url(&self) -> SplitUrl {
        self.elasticsearch_url
            .as_ref()
            .expect("validated config has a cluster URL")
            .split()
            .expect("validated config has a parseable cluster URL")
    }

    /// The credentials to send: flags first, then `user:password@` in the URL.
    pub fn auth(&self) -> ClusterAuth {
        match (
            &self.elasticsearch_username,
            &self.elasticsearch_password,
            &self.elasticsearch_api_key,
        ) {
            (Some(username), Some(password), _) => ClusterAuth::Basic {
                username: username.clone(),
                password: password.clone(),
            },
            (_, _, Some(key)) => ClusterAuth::ApiKey(key.clone()),
            _ => match self
                .elasticsearch_url
                .as_ref()
                .and_then(|url| url.split().ok())
                .and_then(|split| split.credentials)
            {
                Some((username, password)) => ClusterAuth::Basic { username, password },
                None => ClusterAuth::None,
            },
        }
    }
}

impl IndexConfig {
    /// The prefix of the daily indices: `--index-prefix`, or the source's default.
    pub fn prefix(&self) -> &str {
        &self.index_prefix
    }

    fn validate(&self, problems: &mut Vec<String>) {
        if !valid_index_prefix(self.prefix()) {
            problems.push(format!(
                "--index-prefix {:?} is not a valid index name prefix (lowercase letters, digits, '-', '_', '.'; not starting with '-', '_' or '+')",
                self.prefix()
            ));
        }
        if let Some(prefix) = &self.dead_letter_index_prefix {
            if !valid_index_prefix(prefix) {
                problems.push(format!(
                    "--dead-letter-index-prefix {prefix:?} is not a valid index name prefix"
                ));
            }
        }
        if let Some(path) = &self.index_template_file {
            if !path.is_file() {
                problems.push(format!(
                    "--index-template-file {} is not a readable file",
                    path.display()
                ));
            }
        }
        if self.index_shards == 0 {
            problems.push("--index-shards must be at least 1".into());
        }
        if let Some(interval) = &self.index_refresh_interval {
            if !valid_interval(interval) {
                problems.push(format!(
                    "--index-refresh-interval {interval:?} is not a cluster time value such as 1s, 30s, 1m or -1"
                ));
            }
        }
    }

    /// The dead-letter index prefix, or `None` when dead-lettering is off.
    pub fn dead_letter_prefix(&self) -> Option<String> {
        if self.no_dead_letter {
            return None;
        }
        Some(
            self.dead_letter_index_prefix
                .clone()
                .unwrap_or_else(|| format!("{}-dead-letter", self.prefix())),
        )
    }
}

/// Index names are lowercase and may not start with `-`, `_` or `+`; we also keep the
/// prefix to characters that need no escaping in a URL path.
pub(super) fn valid_index_prefix(prefix: &str) -> bool {
    !prefix.is_empty()
        && prefix.len() <= 200
        && !prefix.starts_with(['-', '_', '+', '.'])
        && prefix
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.'))
}

/// A cluster time value: `-1`, or digits followed by a unit.
pub(super) fn valid_interval(value: &str) -> bool {
    if value == "-1" {
        return true;
    }
    let digits = value.chars().take_while(char::is_ascii_digit).count();
    digits > 0
        && matches!(
            &value[digits..],
            "nanos" | "micros" | "ms" | "s" | "m" | "h" | "d"
        )
}
