//! The SQS command (the default one): the queue's flags ([`SqsConfig`]) beside the S3
//! objects' ([`S3Config`]) and the shared groups.

use std::time::Duration;

use clap::{Args, Parser};
use url::Url;

use super::{ConfigError, Mode, S3Config, Shared, ENV_PREFIX};

/// SQS rejects long polls longer than this.
const MAX_RECEIVE_WAIT: Duration = Duration::from_secs(20);

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
    pub shared: Shared,

    /// Exit 0 once the queue is drained (no message visible, in flight or delayed, at two
    /// checks half a second apart) and nothing is in flight here (backfills, batch jobs).
    #[arg(long, env = "CLOUDTRAIL_INGEST_EXIT_WHEN_IDLE")]
    pub exit_when_idle: bool,
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
        self.shared.validate(&mut problems);
        self.s3.validate(&self.shared.index, &mut problems);
        if self.sqs.max_in_flight == 0 {
            problems.push("--max-in-flight must be at least 1".into());
        }
        if self.sqs.max_receive_count == Some(0) {
            problems.push("--max-receive-count must be at least 1".into());
        }
        if self.sqs.receive_wait > MAX_RECEIVE_WAIT {
            problems.push("--receive-wait must be at most 20s (the SQS limit)".into());
        }
        ConfigError::check(problems)
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
            "queue_url={} {} max_in_flight={} receive_wait={:?} max_receive_count={} exit_when_idle={} {}",
            self.sqs.queue_url.as_deref().unwrap_or("-"),
            self.s3.summary(),
            self.sqs.max_in_flight,
            self.sqs.receive_wait,
            self.sqs.max_receive_count.map_or_else(|| "off".to_string(), |n| n.to_string()),
            self.exit_when_idle,
            self.shared.summary(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::shared::valid_interval;
    use crate::config::{AwsService, BackfillCommand, FreeFormFields, Level, TemplateMode};

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
        assert_eq!(config.shared.index.prefix(), "cloudtrail");
        assert_eq!(config.shared.bulk.bulk_max_bytes, 5 * 1024 * 1024);
        assert_eq!(config.shared.shutdown_grace, Duration::from_secs(25));
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
        assert_eq!(config.shared.shutdown_grace, Duration::from_secs(5));
        assert_eq!(config.shared.bulk.bulk_linger, Duration::from_millis(250));
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
            config.shared.cluster.url().as_str(),
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
        assert_eq!(signed.shared.cluster.aws_service(), AwsService::Aoss);
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
            config.shared.index.dead_letter_prefix().as_deref(),
            Some("cloudtrail-dead-letter")
        );
        assert_eq!(config.shared.index.free_form_fields, FreeFormFields::Auto);
        assert_eq!(config.shared.index.index_template, TemplateMode::Install);
        let mut args = GOOD.to_vec();
        args.extend([
            "--dead-letter-index-prefix",
            "ct-rejected",
            "--free-form-fields",
            "as-string",
        ]);
        let config = parse(&args);
        assert_eq!(
            config.shared.index.dead_letter_prefix().as_deref(),
            Some("ct-rejected")
        );
        assert_eq!(
            config.shared.index.free_form_fields,
            FreeFormFields::AsString
        );
        let mut args = GOOD.to_vec();
        args.push("--no-dead-letter");
        assert_eq!(parse(&args).shared.index.dead_letter_prefix(), None);
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
        assert_eq!(config.shared.detect.alert_webhooks.len(), 2);
        assert_eq!(
            config.shared.detect.alert_if_silent,
            Some(Duration::from_secs(7200))
        );
        assert_eq!(config.shared.detect.alert_min_level, Level::High);
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
        use clap::FromArgMatches;
        let matches = BackfillCommand::augment_args(clap::Command::new("backfill"))
            .try_get_matches_from([
                "backfill",
                "--bucket",
                "trail-bucket",
                "--elasticsearch-url",
                "http://127.0.0.1:9200",
                "--alert-if-silent",
                "2h",
            ])
            .expect("arguments parse");
        let command = BackfillCommand::from_arg_matches(&matches).expect("a backfill");
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
