//! The command line: which command runs, with its whole configuration, and how it runs:
//! every source through the [`runtime`], the checks through [`check`], `rules check`
//! through detection.

use std::ffi::OsString;

use clap::{CommandFactory, FromArgMatches, Parser};
use tokio_util::sync::CancellationToken;

use crate::check;
use crate::config::{
    file, BackfillCommand, Config, ConfigError, KafkaCommand, Mode, RulesAction, RulesCommand,
    Shared, WebhookCommand,
};
use crate::runtime::{self, Outcome, RunError};
use crate::source::backfill::Backfill;
use crate::source::kafka::Kafka;
use crate::source::sqs::{Clients, Sqs};
use crate::source::webhook::Webhook;
use crate::source::Source;

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

/// Every source but the default SQS one, one line each: its variant, its command and its
/// [`Source`]. A new source is one more line here.
macro_rules! sources {
    ($($(#[$doc:meta])* $variant:ident($command:ty => $source:ty),)*) => {
        /// Sources other than the default SQS one, and `rules`.
        #[derive(Debug, Clone, clap::Subcommand)]
        pub enum SourceCommand {
            $($(#[$doc])* $variant(Box<$command>),)*
            /// Work with Sigma rule files: `rules check PATH...` lists what loads and why the
            /// rest does not; `rules test` runs rules over local log files.
            Rules(RulesCommand),
        }

        /// What to run, with its whole configuration.
        #[derive(Debug, Clone)]
        pub enum Command {
            Sqs(Box<Config>),
            $($variant(Box<$command>),)*
            Rules(RulesCommand),
        }

        impl Cli {
            pub fn into_command(self) -> Command {
                match self.source {
                    None => Command::Sqs(Box::new(self.sqs)),
                    $(Some(SourceCommand::$variant(command)) => Command::$variant(command),)*
                    Some(SourceCommand::Rules(rules)) => Command::Rules(rules),
                }
            }
        }

        impl Command {
            /// Checks every field and reports all problems at once.
            pub fn validate(&self) -> Result<(), ConfigError> {
                match self {
                    Command::Sqs(config) => config.validate(),
                    $(Command::$variant(command) => command.validate(),)*
                    Command::Rules(_) => Ok(()),
                }
            }

            /// The shared flags (none for `rules`).
            pub fn shared(&self) -> Option<&Shared> {
                match self {
                    Command::Sqs(config) => Some(&config.shared),
                    $(Command::$variant(command) => Some(<$source as Source>::shared(command)),)*
                    Command::Rules(_) => None,
                }
            }

            /// A one-line summary for the start-up log; never contains secrets.
            pub fn redacted_summary(&self) -> String {
                match self {
                    Command::Sqs(config) => config.redacted_summary(),
                    $(Command::$variant(command) => command.redacted_summary(),)*
                    Command::Rules(_) => String::new(),
                }
            }

            /// Runs a source through the runtime.
            async fn launch(self, stop: CancellationToken) -> Result<Outcome, RunError> {
                match self {
                    Command::Sqs(config) => runtime::launch::<Sqs>(&config, stop).await,
                    $(Command::$variant(command) => runtime::launch::<$source>(&command, stop).await,)*
                    Command::Rules(_) => unreachable!("rules are checked, not run"),
                }
            }
        }
    };
}

sources! {
    /// Consume Confluent Cloud audit logs (or any JSON topic) from Kafka; offsets are
    /// committed only once every record below them is indexed or dead-lettered.
    Kafka(KafkaCommand => Kafka),
    /// Receive audit logs pushed over HTTP(S) (Kong Konnect's audit-log webhook, or any
    /// sender of JSON or CEF lines); a request is answered only once every entry of it is
    /// indexed or dead-lettered.
    Webhook(WebhookCommand => Webhook),
    /// Ingest what a bucket already holds (CloudTrail logs, JSON lines), without SQS, and
    /// exit: 0 when everything settled, 1 when some object failed for good (listed).
    Backfill(BackfillCommand => Backfill),
    /// Ingest local files, folders (recursively, in name order) or standard input (`-`), as
    /// S3 objects are read, and exit: 0 when everything settled, 1 when some file failed.
    Files(crate::source::files::FilesCommand => crate::source::files::Files),
}

/// What the command line asks for.
#[derive(Debug)]
pub enum Parsed {
    /// Run this command.
    Run(Command),
    /// `--print-config`: print this (the effective configuration, secrets redacted).
    Print(String),
}

impl Cli {
    /// Parses the command line, the environment and the `--config` file.
    pub fn parse_command() -> Result<Parsed, clap::Error> {
        Self::parse_args(std::env::args_os().collect())
    }

    /// [`Cli::parse_command`] for these arguments (the program name first).
    pub fn parse_args(args: Vec<OsString>) -> Result<Parsed, clap::Error> {
        let mut root = Cli::command();
        let name = args
            .get(1)
            .and_then(|a| a.to_str())
            .filter(|a| root.find_subcommand(a).is_some())
            .map(str::to_string);
        // `rules check` takes no flags from a configuration file.
        let configured = name.as_deref() != Some("rules");
        if let Some(path) = file::path_in(&args).filter(|_| configured) {
            let invalid = |err: file::FileError| {
                clap::Error::raw(clap::error::ErrorKind::InvalidValue, format!("{err}\n"))
            };
            root = match &name {
                Some(name) => {
                    let sub = root.find_subcommand(name).expect("found above").clone();
                    let sub = file::apply(sub, &path).map_err(invalid)?;
                    root.mut_subcommand(name, |_| sub)
                }
                None => file::apply(root, &path).map_err(invalid)?,
            };
        }
        let matches = root.try_get_matches_from_mut(args)?;
        let (command, ran) = match &name {
            Some(name) => (
                root.find_subcommand(name).expect("found above"),
                matches
                    .subcommand_matches(name)
                    .expect("the subcommand ran"),
            ),
            None => (&root, &matches),
        };
        if ran.try_get_one::<bool>("print_config").ok().flatten() == Some(&true) {
            return Ok(Parsed::Print(file::effective(command, ran)));
        }
        Ok(Parsed::Run(Cli::from_arg_matches(&matches)?.into_command()))
    }
}

impl Command {
    /// Runs the command until it ends (or `stop` is cancelled) and returns its exit code:
    /// a check's (0 or 1), `rules check`'s (0 or 1), or the run's ([`Outcome::exit_code`],
    /// after a `FAILED <name>: <reason>` line on standard output for each failure).
    pub async fn run(self, stop: CancellationToken) -> Result<u8, RunError> {
        match self {
            Command::Rules(rules) => Ok(rules_check(&rules)),
            Command::Sqs(config) if config.mode == Mode::Check => {
                let (aws, cluster) = runtime::connect::<Sqs>(&config).await?;
                let aws = aws.expect("the SQS source loads the AWS configuration");
                let clients = Clients::new(&aws, &config);
                Ok(exit_code(check::run(&config, &clients, &cluster).await))
            }
            Command::Kafka(kafka) if kafka.mode == Mode::Check => {
                let (_, cluster) = runtime::connect::<Kafka>(&kafka).await?;
                Ok(exit_code(check::run_kafka(&kafka, &cluster).await))
            }
            Command::Backfill(backfill) if backfill.backfill.enqueue.is_some() => {
                Ok(report(&runtime::enqueue(&backfill, stop).await?))
            }
            command => Ok(report(&command.launch(stop).await?)),
        }
    }
}

/// `rules check`: the report on standard output; 1 when a rule cannot be used. `rules test`:
/// alerts and counts on standard output; 1 when a rule cannot be used or a file read.
pub fn rules_check(command: &RulesCommand) -> u8 {
    let (paths, alert_min_level) = match &command.action {
        RulesAction::Check {
            paths,
            alert_min_level,
        } => (paths, alert_min_level),
        RulesAction::Test(test) => {
            let out = &mut std::io::stdout().lock();
            return check::rules::test(test, out, &mut std::io::stderr()).unwrap_or_else(|err| {
                eprintln!("cloudtrail-ingest: {err}");
                1
            });
        }
    };
    match crate::detect::check(paths, *alert_min_level, &mut std::io::stdout().lock()) {
        Ok(true) => 0,
        Ok(false) => 1,
        Err(err) => {
            eprintln!("cloudtrail-ingest: {err}");
            1
        }
    }
}

/// Prints what failed for good, one `FAILED` line each, and returns the exit code.
fn report(outcome: &Outcome) -> u8 {
    for (name, reason) in &outcome.failed {
        let reason = reason
            .as_deref()
            .unwrap_or("in an earlier run of this checkpoint");
        println!("FAILED {name}: {reason}");
    }
    let listed = outcome.failed.len() as u64;
    if outcome.failed_total > listed {
        println!(
            "... and {} more failed (only the first {listed} are kept)",
            outcome.failed_total - listed,
        );
    }
    outcome.exit_code()
}

/// 0 when every check passed, 1 otherwise.
fn exit_code(passed: bool) -> u8 {
    if passed {
        0
    } else {
        1
    }
}
