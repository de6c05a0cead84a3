//! The S3 objects of the SQS and backfill commands: how they are read and where their
//! events go.

use clap::Args;

use super::shared::{valid_index_prefix, validate_field_path};
use super::IndexConfig;

/// Index prefix of JSON lines that are not Confluent audit records.
pub const DEFAULT_NDJSON_INDEX_PREFIX: &str = "ndjson";
/// Index prefix of Confluent Cloud audit records read from S3 (the Kafka source's too).
pub const DEFAULT_CONFLUENT_INDEX_PREFIX: &str = super::kafka::DEFAULT_INDEX_PREFIX;

/// How S3 objects are read.
#[derive(Debug, Clone, Args)]
pub struct S3Config {
    /// How S3 objects are read: `cloudtrail` (CloudTrail logs, `{"Records":[...]}`),
    /// `ndjson` (JSON objects one per line, or glued together; Kafka Connect's S3 sink,
    /// Vector, Fluent Bit, Firehose), or `auto`: an object whose first bytes open
    /// `{"Records"` is a CloudTrail log, any other is JSON lines.
    #[arg(
        long,
        env = "CLOUDTRAIL_INGEST_OBJECT_FORMAT",
        value_enum,
        default_value_t = ObjectFormat::Auto,
        value_name = "FORMAT"
    )]
    pub object_format: ObjectFormat,

    /// JSON lines: the dotted field that holds a record's `_id` [default: a CloudEvents `id`,
    /// else a hash of bucket, key and the record's place in the object].
    #[arg(long, env = "CLOUDTRAIL_INGEST_NDJSON_ID_FIELD", value_name = "FIELD")]
    pub ndjson_id_field: Option<String>,

    /// JSON lines: the dotted field that holds a record's RFC 3339 time [default: the first
    /// of `time`, `eventTime`, `@timestamp`, `timestamp`; else the object's LastModified].
    #[arg(
        long,
        env = "CLOUDTRAIL_INGEST_NDJSON_TIME_FIELD",
        value_name = "FIELD"
    )]
    pub ndjson_time_field: Option<String>,

    /// JSON lines that are not Confluent audit records go to `<prefix>-YYYY.MM.DD`.
    #[arg(
        long,
        env = "CLOUDTRAIL_INGEST_NDJSON_INDEX_PREFIX",
        default_value = DEFAULT_NDJSON_INDEX_PREFIX,
        value_name = "PREFIX"
    )]
    pub ndjson_index_prefix: String,

    /// Confluent Cloud audit records in JSON lines (a Kafka Connect S3 sink's copy of the
    /// audit-log topic) go to `<prefix>-YYYY.MM.DD`, with the documents and template of the
    /// `kafka` source.
    #[arg(
        long,
        env = "CLOUDTRAIL_INGEST_CONFLUENT_INDEX_PREFIX",
        default_value = DEFAULT_CONFLUENT_INDEX_PREFIX,
        value_name = "PREFIX"
    )]
    pub confluent_index_prefix: String,

    /// Use path-style S3 addressing (for S3-compatible stores that need it).
    #[arg(long, env = "CLOUDTRAIL_INGEST_S3_FORCE_PATH_STYLE")]
    pub s3_force_path_style: bool,
}

/// See `--object-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ObjectFormat {
    Auto,
    Cloudtrail,
    Ndjson,
}

impl ObjectFormat {
    pub fn reads_cloudtrail(self) -> bool {
        self != ObjectFormat::Ndjson
    }

    pub fn reads_json_lines(self) -> bool {
        self != ObjectFormat::Cloudtrail
    }
}

impl S3Config {
    pub fn validate(&self, index: &IndexConfig, problems: &mut Vec<String>) {
        if !self.object_format.reads_json_lines() {
            return;
        }
        let dead_letter = index.dead_letter_prefix();
        for (flag, prefix) in [
            ("--ndjson-index-prefix", &self.ndjson_index_prefix),
            ("--confluent-index-prefix", &self.confluent_index_prefix),
        ] {
            if !valid_index_prefix(prefix) {
                problems.push(format!(
                    "{flag} {prefix:?} is not a valid index name prefix"
                ));
            } else if prefix == index.prefix() || Some(prefix) == dead_letter.as_ref() {
                problems.push(format!(
                    "{flag} {prefix:?} must differ from --index-prefix and the dead-letter prefix (each has its own template)"
                ));
            }
        }
        if self.ndjson_index_prefix == self.confluent_index_prefix {
            problems.push(
                "--ndjson-index-prefix and --confluent-index-prefix must differ (each has its own template)".into(),
            );
        }
        validate_field_path("--ndjson-id-field", self.ndjson_id_field.as_ref(), problems);
        validate_field_path(
            "--ndjson-time-field",
            self.ndjson_time_field.as_ref(),
            problems,
        );
    }

    /// The part of the start-up summary about objects.
    pub fn summary(&self) -> String {
        format!(
            "object_format={:?} ndjson_index_prefix={} confluent_index_prefix={} ndjson_id_field={} ndjson_time_field={} s3_force_path_style={}",
            self.object_format,
            self.ndjson_index_prefix,
            self.confluent_index_prefix,
            self.ndjson_id_field.as_deref().unwrap_or("-"),
            self.ndjson_time_field.as_deref().unwrap_or("-"),
            self.s3_force_path_style,
        )
    }
}
