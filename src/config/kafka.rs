//! The `kafka` command: the Kafka source's flags ([`KafkaConfig`]) and the shared groups.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::shared::validate_field_path;
use super::{ConfigError, Mode, Secret, Shared, ENV_PREFIX};

/// Index prefix of the Kafka source when `--index-prefix` is not given.
pub const DEFAULT_INDEX_PREFIX: &str = "confluent-audit";

/// `cloudtrail-ingest kafka [run|check]`: the whole configuration of the Kafka source.
#[derive(Debug, Clone, Args)]
#[command(mut_arg("index_prefix", |arg| arg.default_value(DEFAULT_INDEX_PREFIX)))]
pub struct KafkaCommand {
    /// `run` consumes until stopped; `check` verifies the brokers, the credentials, the
    /// topics, the group and the cluster without consuming, prints PASS/FAIL per check and
    /// exits non-zero on any FAIL.
    #[arg(value_enum, default_value_t = Mode::Run)]
    pub mode: Mode,

    #[command(flatten)]
    pub kafka: KafkaConfig,

    #[command(flatten)]
    pub shared: Shared,

    /// Exit 0 once every assigned partition is consumed to its end and every offset is
    /// committed (backfills, batch jobs).
    #[arg(long, env = "CLOUDTRAIL_INGEST_EXIT_WHEN_IDLE")]
    pub exit_when_idle: bool,
}

/// The Kafka consumer: brokers, credentials, topics, group and the record format.
#[derive(Debug, Clone, Args)]
pub struct KafkaConfig {
    /// Bootstrap brokers, HOST:PORT[,...] (Confluent Cloud: the audit-log cluster's
    /// bootstrap, e.g. pkc-xxxxx.us-west-2.aws.confluent.cloud:9092).
    #[arg(
        long,
        env = "CLOUDTRAIL_INGEST_KAFKA_BROKERS",
        value_name = "HOST:PORT[,...]"
    )]
    pub kafka_brokers: Option<String>,

    /// Topics to consume (repeatable or comma-separated).
    #[arg(
        long,
        env = "CLOUDTRAIL_INGEST_KAFKA_TOPIC",
        value_delimiter = ',',
        default_value = "confluent-audit-log-events",
        value_name = "TOPIC"
    )]
    pub kafka_topic: Vec<String>,

    /// Consumer group: every worker of one deployment uses the same group, and the
    /// partitions are split among them.
    #[arg(
        long,
        env = "CLOUDTRAIL_INGEST_KAFKA_GROUP_ID",
        default_value = "cloudtrail-ingest",
        value_name = "GROUP"
    )]
    pub kafka_group_id: String,

    /// Security protocol to the brokers (Confluent Cloud: sasl_ssl).
    #[arg(
        long,
        env = "CLOUDTRAIL_INGEST_KAFKA_SECURITY_PROTOCOL",
        value_enum,
        default_value_t = SecurityProtocol::SaslSsl,
        value_name = "PROTOCOL"
    )]
    pub kafka_security_protocol: SecurityProtocol,

    /// SASL mechanism (Confluent Cloud: plain).
    #[arg(
        long,
        env = "CLOUDTRAIL_INGEST_KAFKA_SASL_MECHANISM",
        value_enum,
        default_value_t = SaslMechanism::Plain,
        value_name = "MECHANISM"
    )]
    pub kafka_sasl_mechanism: SaslMechanism,

    /// SASL username (Confluent Cloud: the API key of a service account that may read the
    /// audit-log topic).
    #[arg(
        long,
        env = "CLOUDTRAIL_INGEST_KAFKA_SASL_USERNAME",
        value_name = "USER"
    )]
    pub kafka_sasl_username: Option<String>,

    /// SASL password (Confluent Cloud: the API key's secret). Never printed.
    #[arg(
        long,
        env = "CLOUDTRAIL_INGEST_KAFKA_SASL_PASSWORD",
        value_name = "PASSWORD",
        hide_env_values = true
    )]
    pub kafka_sasl_password: Option<Secret>,

    /// PEM file of CA certificates to trust for the brokers [default: the system's].
    #[arg(long, env = "CLOUDTRAIL_INGEST_KAFKA_CA_FILE", value_name = "PATH")]
    pub kafka_ca_file: Option<PathBuf>,

    /// Where a group without committed offsets starts: `earliest` (everything the topic
    /// still holds) or `latest` (only what arrives from now on).
    #[arg(
        long,
        env = "CLOUDTRAIL_INGEST_KAFKA_START_FROM",
        value_enum,
        default_value_t = StartFrom::Earliest,
        value_name = "WHERE"
    )]
    pub kafka_start_from: StartFrom,

    /// Group session timeout: how long the group waits for a worker that stopped
    /// heartbeating before its partitions go to the others.
    #[arg(long, env = "CLOUDTRAIL_INGEST_KAFKA_SESSION_TIMEOUT", default_value = "45s", value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub kafka_session_timeout: Duration,

    /// How records are read: `confluent` (Confluent Cloud audit-log CloudEvents) or `json`
    /// (any JSON object per record; see --kafka-id-field and --kafka-time-field).
    #[arg(
        long,
        env = "CLOUDTRAIL_INGEST_KAFKA_FORMAT",
        value_enum,
        default_value_t = KafkaFormat::Confluent,
        value_name = "FORMAT"
    )]
    pub kafka_format: KafkaFormat,

    /// With `--kafka-format json`: the field (dotted path, e.g. `event.id`) whose value (a
    /// string or a number) is the document `_id` [default: a CloudEvents record's `id`, else
    /// `<topic>-<partition>-<offset>`].
    #[arg(long, env = "CLOUDTRAIL_INGEST_KAFKA_ID_FIELD", value_name = "PATH")]
    pub kafka_id_field: Option<String>,

    /// With `--kafka-format json`: the field (dotted path) holding the event's RFC 3339 time,
    /// which sets `@timestamp` and the daily index [default: the record's Kafka timestamp].
    #[arg(long, env = "CLOUDTRAIL_INGEST_KAFKA_TIME_FIELD", value_name = "PATH")]
    pub kafka_time_field: Option<String>,

    /// Extra librdkafka consumer properties, KEY=VALUE (repeatable, or comma-separated; a
    /// piece without `=` continues the value before it, so `debug=cgrp,fetch` is one), e.g.
    /// `heartbeat.interval.ms=1000`; applied last. Refused: what the flags above set
    /// (bootstrap.servers, group.id, enable.auto.commit, enable.auto.offset.store,
    /// auto.offset.reset, security.protocol, sasl.mechanism(s), sasl.username, sasl.password,
    /// ssl.ca.location, session.timeout.ms). Values may be secrets (`ssl.key.password`): only
    /// the keys are ever printed.
    #[arg(
        long,
        env = "CLOUDTRAIL_INGEST_KAFKA_OPTION",
        value_delimiter = ',',
        value_name = "KEY=VALUE",
        hide_env_values = true
    )]
    pub kafka_option: Vec<Secret>,
}

/// See `--kafka-security-protocol`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SecurityProtocol {
    Plaintext,
    Ssl,
    #[value(name = "sasl_plaintext")]
    SaslPlaintext,
    #[value(name = "sasl_ssl")]
    SaslSsl,
}

impl SecurityProtocol {
    /// librdkafka's `security.protocol` value.
    pub fn as_str(self) -> &'static str {
        match self {
            SecurityProtocol::Plaintext => "plaintext",
            SecurityProtocol::Ssl => "ssl",
            SecurityProtocol::SaslPlaintext => "sasl_plaintext",
            SecurityProtocol::SaslSsl => "sasl_ssl",
        }
    }

    pub fn uses_sasl(self) -> bool {
        matches!(
            self,
            SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl
        )
    }

    pub fn uses_tls(self) -> bool {
        matches!(self, SecurityProtocol::Ssl | SecurityProtocol::SaslSsl)
    }
}

/// See `--kafka-sasl-mechanism`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SaslMechanism {
    Plain,
    #[value(name = "scram-sha-256")]
    ScramSha256,
    #[value(name = "scram-sha-512")]
    ScramSha512,
}

impl SaslMechanism {
    /// librdkafka's `sasl.mechanism` value.
    pub fn as_str(self) -> &'static str {
        match self {
            SaslMechanism::Plain => "PLAIN",
            SaslMechanism::ScramSha256 => "SCRAM-SHA-256",
            SaslMechanism::ScramSha512 => "SCRAM-SHA-512",
        }
    }
}

/// See `--kafka-start-from`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StartFrom {
    Earliest,
    Latest,
}

impl StartFrom {
    /// librdkafka's `auto.offset.reset` value.
    pub fn as_str(self) -> &'static str {
        match self {
            StartFrom::Earliest => "earliest",
            StartFrom::Latest => "latest",
        }
    }
}

/// See `--kafka-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum KafkaFormat {
    Confluent,
    Json,
}

/// librdkafka properties that the flags own: `--kafka-option` may not set them, because
/// getting them wrong silently loses or duplicates events (auto-commit) or leaks secrets.
const OWNED_PROPERTIES: [&str; 12] = [
    "bootstrap.servers",
    "group.id",
    "enable.auto.commit",
    "enable.auto.offset.store",
    "auto.offset.reset",
    "security.protocol",
    "sasl.mechanism",
    "sasl.mechanisms",
    "sasl.username",
    "sasl.password",
    "ssl.ca.location",
    "session.timeout.ms",
];

impl KafkaCommand {
    /// Checks every field and reports all problems at once.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut problems = Vec::new();
        self.kafka.validate(&mut problems);
        self.shared.validate(&mut problems);
        ConfigError::check(problems)
    }

    /// A one-line summary for the start-up log; never contains secrets.
    pub fn redacted_summary(&self) -> String {
        let kafka = &self.kafka;
        format!(
            "kafka_brokers={} kafka_topic={} kafka_group_id={} kafka_security_protocol={} kafka_sasl_mechanism={} kafka_sasl_username={} kafka_sasl_password={} kafka_ca_file={} kafka_start_from={} kafka_session_timeout={:?} kafka_format={:?} kafka_id_field={} kafka_time_field={} kafka_option={} {} exit_when_idle={}",
            kafka.kafka_brokers.as_deref().unwrap_or("-"),
            kafka.kafka_topic.join(","),
            kafka.kafka_group_id,
            kafka.kafka_security_protocol.as_str(),
            kafka.kafka_sasl_mechanism.as_str(),
            kafka.kafka_sasl_username.as_deref().unwrap_or("-"),
            if kafka.kafka_sasl_password.is_some() { "redacted" } else { "-" },
            kafka.kafka_ca_file.as_ref().map(|p| p.display().to_string()).unwrap_or_else(|| "-".into()),
            kafka.kafka_start_from.as_str(),
            kafka.kafka_session_timeout,
            kafka.kafka_format,
            kafka.kafka_id_field.as_deref().unwrap_or("-"),
            kafka.kafka_time_field.as_deref().unwrap_or("-"),
            kafka.option_keys().join(","),
            self.shared.summary(),
            self.exit_when_idle,
        )
    }
}

impl KafkaConfig {
    fn validate(&self, problems: &mut Vec<String>) {
        match self.kafka_brokers.as_deref() {
            None => problems.push(format!(
                "--kafka-brokers ({ENV_PREFIX}KAFKA_BROKERS) is required"
            )),
            Some(brokers) => {
                for broker in brokers.split(',') {
                    let valid = broker.rsplit_once(':').is_some_and(|(host, port)| {
                        !host.is_empty() && port.parse::<u16>().is_ok()
                    });
                    if !valid {
                        problems.push(format!("--kafka-brokers: {broker:?} is not HOST:PORT"));
                    }
                }
            }
        }
        if self.kafka_topic.iter().all(|t| t.trim().is_empty()) {
            problems.push("--kafka-topic needs at least one topic".into());
        }
        if self.kafka_group_id.trim().is_empty() {
            problems.push("--kafka-group-id must not be empty".into());
        }
        let sasl = self.kafka_security_protocol.uses_sasl();
        match (sasl, &self.kafka_sasl_username, &self.kafka_sasl_password) {
            (true, Some(_), Some(_)) | (false, None, None) => {}
            (true, _, _) => problems.push(format!(
                "--kafka-security-protocol {} needs --kafka-sasl-username and --kafka-sasl-password (Confluent Cloud: an API key and its secret)",
                self.kafka_security_protocol.as_str()
            )),
            (false, _, _) => problems.push(format!(
                "--kafka-sasl-username/--kafka-sasl-password are only used with sasl_plaintext or sasl_ssl, not {}",
                self.kafka_security_protocol.as_str()
            )),
        }
        if let Some(path) = &self.kafka_ca_file {
            if !self.kafka_security_protocol.uses_tls() {
                problems.push("--kafka-ca-file is only used with ssl or sasl_ssl".into());
            } else if !path.is_file() {
                problems.push(format!(
                    "--kafka-ca-file {} is not a readable file",
                    path.display()
                ));
            }
        }
        let timeout = self.kafka_session_timeout.as_millis();
        if !(1000..=3_600_000).contains(&timeout) {
            problems.push("--kafka-session-timeout must be between 1s and 1h".into());
        }
        if self.kafka_format == KafkaFormat::Confluent
            && (self.kafka_id_field.is_some() || self.kafka_time_field.is_some())
        {
            problems.push(
                "--kafka-id-field and --kafka-time-field apply to --kafka-format json only (the confluent format uses the CloudEvents id and time)"
                    .into(),
            );
        }
        validate_field_path("--kafka-id-field", self.kafka_id_field.as_ref(), problems);
        validate_field_path(
            "--kafka-time-field",
            self.kafka_time_field.as_ref(),
            problems,
        );
        for (n, option) in self.joined_options().iter().enumerate() {
            match option.split_once('=') {
                Some((key, _)) if OWNED_PROPERTIES.contains(&key.trim()) => problems.push(format!(
                    "--kafka-option {}: set by its own flag, not by --kafka-option",
                    key.trim()
                )),
                Some((key, _)) if !key.trim().is_empty() => {}
                _ => problems.push(format!("--kafka-option number {} is not KEY=VALUE", n + 1)),
            }
        }
    }

    /// The brokers; only call after validation succeeded.
    pub fn brokers(&self) -> &str {
        self.kafka_brokers
            .as_deref()
            .expect("validated config has brokers")
    }

    /// The topics, trimmed, without empty entries.
    pub fn topics(&self) -> Vec<String> {
        self.kafka_topic
            .iter()
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty())
            .collect()
    }

    /// `--kafka-option` as given: the flag and its variable split on commas, and a piece
    /// without `=` is the rest of the value before it (`debug=cgrp,fetch` is one property).
    fn joined_options(&self) -> Vec<String> {
        let mut joined: Vec<String> = Vec::new();
        for piece in &self.kafka_option {
            let piece = piece.expose();
            match joined.last_mut() {
                Some(last) if !piece.contains('=') => {
                    last.push(',');
                    last.push_str(piece);
                }
                _ => joined.push(piece.to_string()),
            }
        }
        joined
    }

    /// `--kafka-option` as (key, value) pairs; only call after validation succeeded.
    pub fn options(&self) -> Vec<(String, String)> {
        self.joined_options()
            .iter()
            .filter_map(|o| o.split_once('='))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect()
    }

    /// The keys of `--kafka-option`, which may be printed (the values may be secrets).
    pub fn option_keys(&self) -> Vec<String> {
        self.options().into_iter().map(|(key, _)| key).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::FromArgMatches;

    #[test]
    fn the_command_states_its_own_default_index_prefix() {
        let matches = KafkaCommand::augment_args(clap::Command::new("kafka"))
            .try_get_matches_from(["kafka", "--kafka-brokers", "127.0.0.1:9092"])
            .expect("arguments parse");
        let command = KafkaCommand::from_arg_matches(&matches).expect("a kafka command");
        assert_eq!(command.shared.index.prefix(), DEFAULT_INDEX_PREFIX);
    }
}
