//! Configuration: each command's flags, parsed from the command line or `CLOUDTRAIL_INGEST_*`
//! environment variables, and validated all at once.
//!
//! Flags come in groups, one per stage. Every ingesting command flattens the [`Shared`]
//! groups (cluster, indices, bulk writer, telemetry, detection, shutdown grace; one
//! `validate()` and one redacted summary) beside its own source's group: [`Config`] (SQS,
//! the default command), [`KafkaCommand`], [`WebhookCommand`], [`BackfillCommand`]. Output:
//! a command whose fields are known to be usable, or a [`ConfigError`] listing every
//! problem in one line. Secrets are [`Secret`]s: `Debug`, the
//! start-up summary, errors and `--help` never show them.

mod backfill;
mod detect;
pub mod file;
mod kafka;
mod rules;
mod s3;
mod schema;
mod secret;
mod shared;
mod sqs;
mod webhook;

pub use backfill::{parse_day, BackfillCommand, BackfillConfig};
pub use detect::{DetectConfig, Level};
pub use kafka::{
    KafkaCommand, KafkaConfig, KafkaFormat, SaslMechanism, SecurityProtocol, StartFrom,
};
pub use rules::{RulesAction, RulesCommand, RulesTest};
pub use s3::{ObjectFormat, S3Config};
pub use schema::{Schema, SchemaConfig};
pub use secret::{AlertUrl, ClusterUrl, Secret, SplitUrl};
pub use shared::{
    AwsService, BulkCompression, BulkConfig, ClusterAuth, ClusterConfig, ConfigError,
    FreeFormFields, IndexConfig, LogFormat, Mode, Shared, TelemetryConfig, TemplateMode,
    DEFAULT_INDEX_PREFIX, ENV_PREFIX,
};
pub use sqs::{Config, SqsConfig};
pub use webhook::{RetryStatus, WebhookCommand, WebhookConfig, WebhookFormat};
