//! The command line: which command runs, with its whole configuration.

use clap::Parser;

use crate::config::{BackfillCommand, Config, KafkaCommand, RulesCommand, WebhookCommand};

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
            Some(SourceCommand::Kafka(kafka)) => Command::Kafka(kafka),
            Some(SourceCommand::Webhook(webhook)) => Command::Webhook(webhook),
            Some(SourceCommand::Backfill(backfill)) => Command::Backfill(backfill),
            Some(SourceCommand::Rules(rules)) => Command::Rules(rules),
        }
    }
}
