//! The `backfill` command: what to list ([`BackfillConfig`]), how objects are read
//! ([`S3Config`]) and the shared sink groups.

use std::path::PathBuf;

use clap::Args;
use time::macros::format_description;
use time::Date;

use super::{ConfigError, S3Config, Shared};

/// `cloudtrail-ingest backfill`: the whole configuration of a backfill.
#[derive(Debug, Clone, Args)]
#[command(mut_arg("alert_if_silent", |arg| arg.hide(true)))]
pub struct BackfillCommand {
    #[command(flatten)]
    pub backfill: BackfillConfig,

    #[command(flatten)]
    pub s3: S3Config,

    #[command(flatten)]
    pub shared: Shared,
}

/// Which objects of which bucket, how many at once, and where progress is kept.
#[derive(Debug, Clone, Args)]
pub struct BackfillConfig {
    /// The bucket to read.
    #[arg(long, env = "CLOUDTRAIL_INGEST_BUCKET", value_name = "BUCKET")]
    pub bucket: Option<String>,

    /// Read only keys under this prefix (repeatable, or comma-separated) [default: the whole
    /// bucket].
    #[arg(
        long,
        env = "CLOUDTRAIL_INGEST_PREFIX",
        value_delimiter = ',',
        value_name = "PREFIX"
    )]
    pub prefix: Vec<String>,

    /// First UTC day to read, YYYY-MM-DD. CloudTrail logs (`AWSLogs/.../CloudTrail/<region>/`)
    /// are picked by the day in their key, and only those days' prefixes are listed; other
    /// objects by the day of their LastModified.
    #[arg(long, env = "CLOUDTRAIL_INGEST_SINCE", value_parser = parse_day, value_name = "DATE")]
    pub since: Option<Date>,

    /// Last UTC day to read (included), YYYY-MM-DD [default: today, with --since].
    #[arg(long, env = "CLOUDTRAIL_INGEST_UNTIL", value_parser = parse_day, value_name = "DATE")]
    pub until: Option<Date>,

    /// Keep progress in this file (written atomically every second and at exit): run again
    /// with the same file to resume, after a crash or SIGTERM, without fetching again what
    /// settled.
    #[arg(long, env = "CLOUDTRAIL_INGEST_CHECKPOINT", value_name = "PATH")]
    pub checkpoint: Option<PathBuf>,

    /// Objects read at once.
    #[arg(
        long,
        env = "CLOUDTRAIL_INGEST_CONCURRENCY",
        default_value_t = 8,
        value_name = "N"
    )]
    pub concurrency: usize,

    /// Instead of reading the objects, send them to this SQS queue as CloudTrail
    /// notifications (`{"s3Bucket": ..., "s3ObjectKey": [...]}`), for every SQS worker on it to
    /// share; the listing and `--checkpoint` are the same. Needs `sqs:SendMessage` on the
    /// queue, and no cluster.
    #[arg(long, env = "CLOUDTRAIL_INGEST_ENQUEUE", value_name = "QUEUE_URL")]
    pub enqueue: Option<String>,
}

/// `YYYY-MM-DD`.
pub fn parse_day(text: &str) -> Result<Date, String> {
    Date::parse(text, format_description!("[year]-[month]-[day]"))
        .map_err(|e| format!("{text:?} is not a day as YYYY-MM-DD: {e}"))
}

impl BackfillCommand {
    /// Checks every field and reports all problems at once.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut problems = Vec::new();
        let backfill = &self.backfill;
        match &backfill.bucket {
            None => problems.push("--bucket (CLOUDTRAIL_INGEST_BUCKET) is required".into()),
            Some(bucket) if !valid_bucket(bucket) => {
                problems.push(format!("--bucket {bucket:?} is not a bucket name"))
            }
            Some(_) => {}
        }
        if let (Some(since), Some(until)) = (backfill.since, backfill.until) {
            if since > until {
                problems.push(format!("--since {since} is after --until {until}"));
            }
        }
        if backfill.concurrency == 0 {
            problems.push("--concurrency must be at least 1".into());
        }
        if let Some(path) = &backfill.checkpoint {
            if path.is_dir() {
                problems.push(format!("--checkpoint {} is a directory", path.display()));
            }
        }
        match &backfill.enqueue {
            // The workers on the queue write to the cluster; this run never does.
            Some(url) if !(url.starts_with("https://") || url.starts_with("http://")) => {
                problems.push(format!("--enqueue {url:?} is not a queue URL"))
            }
            Some(_) => {}
            None => self.shared.validate(&mut problems),
        }
        self.s3.validate(&self.shared.index, &mut problems);
        self.shared
            .detect
            .refuse_silence_alarm("a backfill ends when its listing is done", &mut problems);
        ConfigError::check(problems)
    }

    /// The bucket; only call after [`BackfillCommand::validate`] succeeded.
    pub fn bucket(&self) -> &str {
        self.backfill
            .bucket
            .as_deref()
            .expect("validated config has a bucket")
    }

    /// A one-line summary for the start-up log; never contains secrets.
    pub fn redacted_summary(&self) -> String {
        let backfill = &self.backfill;
        let day = |d: Option<Date>| d.map_or_else(|| "-".to_string(), |d| d.to_string());
        format!(
            "bucket={} prefix={:?} since={} until={} checkpoint={} concurrency={} enqueue={} {} {}",
            backfill.bucket.as_deref().unwrap_or("-"),
            backfill.prefix,
            day(backfill.since),
            day(backfill.until),
            backfill
                .checkpoint
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| "-".into()),
            backfill.concurrency,
            backfill.enqueue.as_deref().unwrap_or("-"),
            self.s3.summary(),
            self.shared.summary(),
        )
    }
}

/// A bucket name S3 could have (legacy us-east-1 names included): 1 to 255 characters,
/// no `/` or whitespace.
fn valid_bucket(name: &str) -> bool {
    (1..=255).contains(&name.len()) && !name.contains(|c: char| c == '/' || c.is_whitespace())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::FromArgMatches;

    #[test]
    fn enqueue_needs_a_queue_url_and_no_cluster() {
        let parse = |args: &[&str]| {
            let matches = BackfillCommand::augment_args(clap::Command::new("backfill"))
                .try_get_matches_from(args)
                .expect("arguments parse");
            BackfillCommand::from_arg_matches(&matches).expect("a backfill command")
        };
        let enqueue = ["backfill", "--bucket", "trail", "--enqueue"];
        let queue = "https://sqs.us-east-1.amazonaws.com/123456789012/workers";
        assert!(parse(&[&enqueue[..], &[queue]].concat()).validate().is_ok());
        let error = parse(&[&enqueue[..], &["workers"]].concat())
            .validate()
            .unwrap_err();
        assert!(error.to_string().contains("not a queue URL"), "{error}");
        // Without --enqueue, the objects are read here and indexed: the cluster is needed.
        let error = parse(&["backfill", "--bucket", "trail"])
            .validate()
            .unwrap_err();
        assert!(error.to_string().contains("--elasticsearch-url"), "{error}");
    }

    #[test]
    fn prefixes_repeat_and_split_on_commas() {
        let matches = BackfillCommand::augment_args(clap::Command::new("backfill"))
            .try_get_matches_from([
                "backfill",
                "--bucket",
                "trail",
                "--prefix",
                "AWSLogs/,topics/",
                "--prefix",
                "other/",
            ])
            .expect("arguments parse");
        let command = BackfillCommand::from_arg_matches(&matches).expect("a backfill command");
        assert_eq!(command.backfill.prefix, ["AWSLogs/", "topics/", "other/"]);
    }
}
