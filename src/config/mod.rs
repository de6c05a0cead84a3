//! Configuration: the one [`Config`] struct, parsed from flags or `CLOUDTRAIL_INGEST_*`
//! environment variables, and validated all at once.
//!
//! Flags come in groups, one per stage: the SQS source ([`SqsConfig`]), the cluster
//! connection ([`ClusterConfig`]), the indices and templates ([`IndexConfig`]), the bulk
//! writer ([`BulkConfig`]) and telemetry ([`TelemetryConfig`]). Input: the command line and
//! the environment. Output: a [`Config`] whose fields are known to be usable, or a
//! [`ConfigError`] listing every problem in one line. Secrets are [`Secret`]s: `Debug`, the
//! start-up summary, errors and `--help` never show them.

mod backfill;
mod detect;
mod kafka;
mod s3;
mod secret;
mod webhook;

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser};
use url::Url;

pub use backfill::{parse_day, BackfillCommand, BackfillConfig};
pub use detect::{DetectConfig, Level, RulesAction, RulesCommand};
pub use kafka::{
    KafkaCommand, KafkaConfig, KafkaFormat, SaslMechanism, SecurityProtocol, StartFrom,
};
pub use s3::{ObjectFormat, S3Config};
pub use secret::{AlertUrl, ClusterUrl, Secret, SplitUrl};
pub use webhook::{RetryStatus, WebhookCommand, WebhookConfig, WebhookFormat};

/// Adds a problem when `field` (given with `flag`) is not a dotted field path (`meta.id`).
fn validate_field_path(flag: &str, field: Option<&String>, problems: &mut Vec<String>) {
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

/// SQS rejects long polls longer than this.
const MAX_RECEIVE_WAIT: Duration = Duration::from_secs(20);

/// Ships audit logs into daily Elasticsearch/OpenSearch indices: CloudTrail logs (and JSON
/// lines) announced on an SQS queue (the default command), Confluent Cloud audit logs and
/// other JSON topics from Kafka (`cloudtrail-ingest kafka`), Kong Konnect audit logs pushed
/// to a webhook (`cloudtrail-ingest webhook`), or what a bucket already holds
/// (`cloudtrail-ingest backfill`).
///
/// AWS settings (region, credentials, profiles, endpoints) come from the standard AWS chain:
/// AWS_REGION, AWS_PROFILE, the ECS task role or EC2 instance profile, AWS_ENDPOINT_URL,
/// AWS_ENDPOINT_URL_SQS and AWS_ENDPOINT_URL_S3.
#[derive(Debug, Clone, Parser)]
#[command(name = "cloudtrail-ingest", version, about, long_about = None, args_conflicts_with_subcommands = true)]
pub struct Cli {
    #[command(subcommand)]
    pub source: Option<SourceCommand>,

    /// The SQS source, when no other source is named.
    #[command(flatten)]
    pub sqs: Config,
}

/// Sources other than the default SQS one.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum SourceCommand {
    /// Consume Confluent Cloud audit logs (or any JSON topic) from Kafka; offsets are
    /// committed only once every record below them is indexed or dead-lettered.
    Kafka(Box<KafkaCommand>),
    /// Receive audit logs pushed over HTTP(S) (Kong Konnect's audit-log webhook, or any
    /// sender of JSON or CEF lines); a request is answered only once every entry of it is
    /// indexed or dead-lettered.
    Webhook(Box<WebhookCommand>),
    /// Ingest what a bucket already holds (CloudTrail logs, JSON lines), without SQS, and
    /// exit: 0 when everything settled, 1 when some object failed for good (listed).
    Backfill(Box<BackfillCommand>),
    /// Work with Sigma rule files: `rules check PATH...` lists what loads and why the rest
    /// does not.
    Rules(RulesCommand),
}

/// What to run, with its whole configuration.
#[derive(Debug, Clone)]
pub enum Command {
    Sqs(Box<Config>),
    Kafka(Box<KafkaCommand>),
    Webhook(Box<WebhookCommand>),
    Backfill(Box<BackfillCommand>),
    Rules(RulesCommand),
}

impl Cli {
    /// Parses the command line and the environment, and fills in each source's defaults.
    pub fn parse_command() -> Result<Command, clap::Error> {
        Ok(Self::try_parse()?.into_command())
    }

    pub fn into_command(self) -> Command {
        match self.source {
            None => Command::Sqs(Box::new(self.sqs)),
            Some(SourceCommand::Kafka(mut kafka)) => {
                kafka
                    .index
                    .index_prefix
                    .get_or_insert_with(|| kafka::DEFAULT_INDEX_PREFIX.to_string());
                Command::Kafka(kafka)
            }
            Some(SourceCommand::Webhook(mut webhook)) => {
                webhook
                    .index
                    .index_prefix
                    .get_or_insert_with(|| webhook::DEFAULT_INDEX_PREFIX.to_string());
                Command::Webhook(webhook)
            }
            Some(SourceCommand::Backfill(backfill)) => Command::Backfill(backfill),
            Some(SourceCommand::Rules(rules)) => Command::Rules(rules),
        }
    }
}

/// The SQS source's configuration (the default command).
#[derive(Debug, Clone, Parser)]
#[command(name = "cloudtrail-ingest")]
pub struct Config {
    /// `run` ingests until stopped; `check` verifies the queue, a referenced bucket and the
    /// cluster without ingesting, prints PASS/FAIL per check and exits non-zero on any FAIL.
    #[arg(value_enum, default_value_t = Mode::Run)]
    pub mode: Mode,

    #[command(flatten)]
    pub sqs: SqsConfig,

    #[command(flatten)]
    pub s3: S3Config,

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

    /// Exit 0 once the queue is drained (no message visible, in flight or delayed) and
    /// nothing is in flight here (backfills, batch jobs).
    #[arg(long, env = "CLOUDTRAIL_INGEST_EXIT_WHEN_IDLE")]
    pub exit_when_idle: bool,

    /// On SIGTERM/SIGINT, how long in-flight messages may take to finish before exit.
    /// Keep it below the orchestrator's kill timeout (ECS: 30s by default).
    #[arg(long, env = "CLOUDTRAIL_INGEST_SHUTDOWN_GRACE", default_value = "25s", value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub shutdown_grace: Duration,
}

/// The SQS source and the S3 objects its messages announce.
#[derive(Debug, Clone, Args)]
pub struct SqsConfig {
    /// URL of the SQS queue that receives the trail's notifications.
    #[arg(long, env = "CLOUDTRAIL_INGEST_QUEUE_URL", value_name = "URL")]
    pub queue_url: Option<String>,

    /// SQS messages processed at once.
    #[arg(
        long,
        env = "CLOUDTRAIL_INGEST_MAX_IN_FLIGHT",
        default_value_t = 10,
        value_name = "N"
    )]
    pub max_in_flight: usize,

    /// Long-poll wait of one ReceiveMessage call (at most 20s).
    #[arg(long, env = "CLOUDTRAIL_INGEST_RECEIVE_WAIT", default_value = "20s", value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub receive_wait: Duration,

    /// Longest a message is kept invisible while it is processed: its visibility timeout is
    /// extended (at a third of the queue's VisibilityTimeout) until it is done or this much
    /// time has passed.
    #[arg(long, env = "CLOUDTRAIL_INGEST_MAX_PROCESSING_TIME", default_value = "1h", value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub max_processing_time: Duration,

    /// Delete a message that failed for good (a permanent failure) on its Nth receive, with
    /// an error log. Messages that failed only transiently are never deleted. Off by default:
    /// use the queue's redrive policy (a DLQ) instead whenever you can.
    #[arg(long, env = "CLOUDTRAIL_INGEST_MAX_RECEIVE_COUNT", value_name = "N")]
    pub max_receive_count: Option<u32>,
}

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
    /// Documents go to `<prefix>-YYYY.MM.DD`, by the event's own time in UTC
    /// [default: cloudtrail; for `kafka`: confluent-audit; for `webhook`: konnect-audit].
    #[arg(long, env = "CLOUDTRAIL_INGEST_INDEX_PREFIX", value_name = "PREFIX")]
    pub index_prefix: Option<String>,

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

/// Cluster credentials, at most one kind.
#[derive(Debug, Clone)]
pub enum ClusterAuth {
    None,
    Basic { username: String, password: Secret },
    ApiKey(Secret),
}

impl Config {
    /// Checks every field and reports all problems at once.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut problems = Vec::new();
        match &self.sqs.queue_url {
            None => problems.push(format!("--queue-url ({ENV_PREFIX}QUEUE_URL) is required")),
            Some(raw) => match Url::parse(raw) {
                Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => {}
                Ok(_) => problems.push(format!("--queue-url {raw:?} must be an http or https URL")),
                Err(err) => problems.push(format!("--queue-url {raw:?} is not a valid URL: {err}")),
            },
        }
        self.cluster.validate(&mut problems);
        self.index.validate(&mut problems);
        self.s3.validate(&self.index, &mut problems);
        self.bulk.validate(&mut problems);
        self.detect.validate(&mut problems);
        if self.sqs.max_in_flight == 0 {
            problems.push("--max-in-flight must be at least 1".into());
        }
        if self.sqs.max_receive_count == Some(0) {
            problems.push("--max-receive-count must be at least 1".into());
        }
        if self.sqs.receive_wait > MAX_RECEIVE_WAIT {
            problems.push("--receive-wait must be at most 20s (the SQS limit)".into());
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError { problems })
        }
    }

    /// The queue URL; only call after [`Config::validate`] succeeded.
    pub fn queue_url(&self) -> &str {
        self.sqs
            .queue_url
            .as_deref()
            .expect("validated config has a queue URL")
    }

    /// A one-line summary for the start-up log; never contains secrets.
    pub fn redacted_summary(&self) -> String {
        format!(
            "queue_url={} {} {} max_in_flight={} receive_wait={:?} max_receive_count={} shutdown_grace={:?} exit_when_idle={}",
            self.sqs.queue_url.as_deref().unwrap_or("-"),
            self.s3.summary(),
            sink_summary(&self.cluster, &self.index, &self.bulk, &self.detect),
            self.sqs.max_in_flight,
            self.sqs.receive_wait,
            self.sqs.max_receive_count.map_or_else(|| "off".to_string(), |n| n.to_string()),
            self.shutdown_grace,
            self.exit_when_idle,
        )
    }
}

/// The part of the start-up summary every source shares: cluster, indices, bulk writer.
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
        self.index_prefix.as_deref().unwrap_or(DEFAULT_INDEX_PREFIX)
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
fn valid_index_prefix(prefix: &str) -> bool {
    !prefix.is_empty()
        && prefix.len() <= 200
        && !prefix.starts_with(['-', '_', '+', '.'])
        && prefix
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.'))
}

/// A cluster time value: `-1`, or digits followed by a unit.
fn valid_interval(value: &str) -> bool {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Config {
        let mut argv = vec!["cloudtrail-ingest"];
        argv.extend_from_slice(args);
        Config::try_parse_from(argv).expect("arguments parse")
    }

    const GOOD: [&str; 4] = [
        "--queue-url",
        "https://sqs.us-east-1.amazonaws.com/123456789012/trail",
        "--elasticsearch-url",
        "http://127.0.0.1:9200",
    ];

    #[test]
    fn defaults_are_valid() {
        let config = parse(&GOOD);
        config.validate().expect("valid");
        assert_eq!(config.index.prefix(), "cloudtrail");
        assert_eq!(config.bulk.bulk_max_bytes, 5 * 1024 * 1024);
        assert_eq!(config.shutdown_grace, Duration::from_secs(25));
        assert!(!config.exit_when_idle);
    }

    #[test]
    fn reports_every_problem_at_once() {
        let config = parse(&[
            "--elasticsearch-url",
            "not a url",
            "--index-prefix",
            "Bad",
            "--elasticsearch-username",
            "elastic",
            "--max-in-flight",
            "0",
        ]);
        let err = config.validate().expect_err("invalid").to_string();
        for needle in [
            "--queue-url (CLOUDTRAIL_INGEST_QUEUE_URL) is required",
            "--elasticsearch-url \"not a url\" is not a valid URL",
            "--index-prefix \"Bad\"",
            "must be given together",
            "--max-in-flight must be at least 1",
        ] {
            assert!(err.contains(needle), "{needle:?} missing from {err}");
        }
        assert!(!err.contains('\n'), "one line: {err}");
    }

    #[test]
    fn durations_are_human() {
        let mut args = GOOD.to_vec();
        args.extend(["--shutdown-grace", "5s", "--bulk-linger", "250ms"]);
        let config = parse(&args);
        assert_eq!(config.shutdown_grace, Duration::from_secs(5));
        assert_eq!(config.bulk.bulk_linger, Duration::from_millis(250));
    }

    #[test]
    fn summary_redacts_secrets() {
        let mut args = GOOD.to_vec();
        args.extend([
            "--elasticsearch-username",
            "elastic",
            "--elasticsearch-password",
            "hunter2",
        ]);
        let summary = parse(&args).redacted_summary();
        assert!(summary.contains("basic(elastic"));
        assert!(!summary.contains("hunter2"));
        let mut args = GOOD.to_vec();
        args[3] = "https://user:secret@search.example.com:9200";
        let config = parse(&args);
        config.validate().expect("credentials in the URL are valid");
        let summary = config.redacted_summary();
        assert!(!summary.contains("secret"), "{summary}");
        assert!(
            summary.contains("basic(user, password redacted)"),
            "{summary}"
        );
        assert!(!format!("{config:?}").contains("secret"));
        assert_eq!(
            config.cluster.url().as_str(),
            "https://search.example.com:9200/"
        );
    }

    #[test]
    fn sigv4_takes_no_other_credentials_and_its_options_need_it() {
        let with = |extra: &[&str]| {
            let mut args = GOOD.to_vec();
            args.extend_from_slice(extra);
            parse(&args).validate().map_err(|e| e.to_string())
        };
        let signed = parse(
            &[
                &GOOD[..],
                &[
                    "--elasticsearch-aws-sigv4",
                    "--elasticsearch-aws-service",
                    "aoss",
                ],
            ]
            .concat(),
        );
        signed.validate().expect("valid");
        assert_eq!(signed.cluster.aws_service(), AwsService::Aoss);
        assert!(signed.redacted_summary().contains("auth=sigv4(aoss"));
        let err = with(&["--elasticsearch-aws-sigv4", "--elasticsearch-api-key", "k"]).unwrap_err();
        assert!(err.contains("give no other cluster credentials"), "{err}");
        let err = with(&["--elasticsearch-aws-region", "eu-west-1"]).unwrap_err();
        assert!(
            err.contains("apply only with --elasticsearch-aws-sigv4"),
            "{err}"
        );
    }

    #[test]
    fn dead_letter_and_template_options() {
        let config = parse(&GOOD);
        assert_eq!(
            config.index.dead_letter_prefix().as_deref(),
            Some("cloudtrail-dead-letter")
        );
        assert_eq!(config.index.free_form_fields, FreeFormFields::Auto);
        assert_eq!(config.index.index_template, TemplateMode::Install);
        let mut args = GOOD.to_vec();
        args.extend([
            "--dead-letter-index-prefix",
            "ct-rejected",
            "--free-form-fields",
            "as-string",
        ]);
        let config = parse(&args);
        assert_eq!(
            config.index.dead_letter_prefix().as_deref(),
            Some("ct-rejected")
        );
        assert_eq!(config.index.free_form_fields, FreeFormFields::AsString);
        let mut args = GOOD.to_vec();
        args.push("--no-dead-letter");
        assert_eq!(parse(&args).index.dead_letter_prefix(), None);
        let mut args = GOOD.to_vec();
        args.extend([
            "--index-refresh-interval",
            "soon",
            "--index-shards",
            "0",
            "--dead-letter-index-prefix",
            "Bad",
        ]);
        let err = parse(&args).validate().unwrap_err().to_string();
        for needle in [
            "--index-refresh-interval",
            "--index-shards",
            "--dead-letter-index-prefix",
        ] {
            assert!(err.contains(needle), "{needle} missing from {err}");
        }
        for ok in ["30s", "1m", "-1", "500ms"] {
            assert!(valid_interval(ok), "{ok}");
        }
    }

    #[test]
    fn alert_flags() {
        let rules = concat!(env!("CARGO_MANIFEST_DIR"), "/rules");
        let mut args = GOOD.to_vec();
        args.extend([
            "--rules",
            rules,
            "--alert-webhook",
            "https://hooks.slack.com/services/T0/B0/SLACKSECRET",
            "--alert-webhook",
            "http://127.0.0.1:8080/hook?sig=QUERYSECRET",
            "--alert-if-silent",
            "2h",
            "--alert-min-level",
            "high",
        ]);
        let config = parse(&args);
        config.validate().expect("valid");
        assert_eq!(config.detect.alert_webhooks.len(), 2);
        assert_eq!(
            config.detect.alert_if_silent,
            Some(Duration::from_secs(7200))
        );
        assert_eq!(config.detect.alert_min_level, Level::High);
        let shown = format!("{} {config:?}", config.redacted_summary());
        assert!(!shown.contains("SECRET"), "{shown}");
        assert!(
            shown.contains("https://hooks.slack.com/[redacted]"),
            "{shown}"
        );
        assert!(shown.contains("alert_if_silent=2h"), "{shown}");

        // A bad URL is refused without being repeated; webhooks need something to deliver.
        let mut args = GOOD.to_vec();
        args.extend(["--alert-webhook", "hooks.slack.com/services/NOSCHEMESECRET"]);
        let err = parse(&args).validate().expect_err("invalid").to_string();
        assert!(
            err.contains("--alert-webhook") && !err.contains("NOSCHEMESECRET"),
            "{err}"
        );
        assert!(err.contains("give --rules or --alert-if-silent"), "{err}");
        let mut argv = vec!["cloudtrail-ingest"];
        argv.extend_from_slice(&GOOD);
        argv.extend(["--alert-if-silent", "500ms"]);
        assert!(Config::try_parse_from(argv).is_err(), "under a second");
    }

    #[test]
    fn backfill_refuses_the_silence_alarm() {
        let cli = Cli::try_parse_from([
            "cloudtrail-ingest",
            "backfill",
            "--bucket",
            "trail-bucket",
            "--elasticsearch-url",
            "http://127.0.0.1:9200",
            "--alert-if-silent",
            "2h",
        ])
        .expect("arguments parse");
        let Command::Backfill(command) = cli.into_command() else {
            panic!("a backfill")
        };
        let err = command.validate().expect_err("refused").to_string();
        assert!(
            err.contains("--alert-if-silent is for workers that keep running"),
            "{err}"
        );
    }

    #[test]
    fn receive_wait_is_capped_by_sqs() {
        let mut args = GOOD.to_vec();
        args.extend(["--receive-wait", "30s"]);
        assert!(parse(&args).validate().is_err());
    }
}
