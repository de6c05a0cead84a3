//! `cloudtrail-ingest`: parse the configuration, start logging, build the clients, run the
//! worker until SIGTERM/SIGINT (or until idle), and map the outcome to an exit code.

use std::io::IsTerminal;
use std::process::ExitCode;

use cloudtrail_ingest::check;
use cloudtrail_ingest::cli::{Cli, Command};
use cloudtrail_ingest::config::{
    BackfillCommand, Config, KafkaCommand, LogFormat, Mode, RulesAction, RulesCommand,
    WebhookCommand,
};
use cloudtrail_ingest::sink::elasticsearch::client;
use cloudtrail_ingest::source::sqs::{self, Clients};
use cloudtrail_ingest::source::webhook;
use cloudtrail_ingest::source::{backfill, kafka};
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> ExitCode {
    let command = match Cli::parse_command() {
        Ok(command) => command,
        Err(err) if !err.use_stderr() => err.exit(), // --help, --version
        Err(err) => {
            let text = err.to_string();
            let first = text.lines().next().unwrap_or("invalid arguments");
            eprintln!("cloudtrail-ingest: {}", first.trim_start_matches("error: "));
            return ExitCode::from(2);
        }
    };
    if let Command::Rules(rules) = &command {
        return run_rules(rules);
    }
    let (valid, log_format, summary) = match &command {
        Command::Sqs(config) => (
            config.validate(),
            config.shared.telemetry.log_format,
            config.redacted_summary(),
        ),
        Command::Kafka(kafka) => (
            kafka.validate(),
            kafka.shared.telemetry.log_format,
            kafka.redacted_summary(),
        ),
        Command::Webhook(webhook) => (
            webhook.validate(),
            webhook.shared.telemetry.log_format,
            webhook.redacted_summary(),
        ),
        Command::Backfill(backfill) => (
            backfill.validate(),
            backfill.shared.telemetry.log_format,
            backfill.redacted_summary(),
        ),
        Command::Rules(_) => unreachable!("handled above"),
    };
    if let Err(err) = valid {
        eprintln!("cloudtrail-ingest: {err}");
        return ExitCode::from(2);
    }
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match log_format {
        LogFormat::Text => logs.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => logs.json().with_current_span(true).init(),
    }
    info!(config = %summary, "starting");

    let outcome = match command {
        Command::Sqs(config) => run(*config).await.map(exit_code),
        Command::Kafka(kafka) => run_kafka(*kafka).await.map(exit_code),
        Command::Webhook(webhook) => run_webhook(*webhook).await.map(exit_code),
        Command::Backfill(backfill) => run_backfill(*backfill).await,
        Command::Rules(_) => unreachable!("handled above"),
    };
    match outcome {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            error!("{err:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the chosen mode; `Ok(false)` means a check failed.
async fn run(config: Config) -> anyhow::Result<bool> {
    let aws = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    if aws.region().is_none() {
        anyhow::bail!("no AWS region configured: set AWS_REGION (or a profile with a region)");
    }
    let clients = Clients::new(&aws, &config)?;
    match config.mode {
        Mode::Check => Ok(check::run(&config, &clients).await),
        Mode::Run => {
            let shutdown = CancellationToken::new();
            tokio::spawn(cancel_on_signal(shutdown.clone()));
            sqs::run(&config, clients, shutdown).await?;
            Ok(true)
        }
    }
}

/// Runs the Kafka source's chosen mode; `Ok(false)` means a check failed.
async fn run_kafka(command: KafkaCommand) -> anyhow::Result<bool> {
    let aws = aws_for_cluster(&command.shared.cluster).await;
    let cluster = client::connect(&command.shared.cluster, aws.as_ref())?;
    match command.mode {
        Mode::Check => Ok(check::run_kafka(&command, &cluster).await),
        Mode::Run => {
            let shutdown = CancellationToken::new();
            tokio::spawn(cancel_on_signal(shutdown.clone()));
            kafka::run(&command, cluster, shutdown).await?;
            Ok(true)
        }
    }
}

/// Runs the webhook source until SIGTERM/SIGINT.
async fn run_webhook(command: WebhookCommand) -> anyhow::Result<bool> {
    let aws = aws_for_cluster(&command.shared.cluster).await;
    let cluster = client::connect(&command.shared.cluster, aws.as_ref())?;
    let shutdown = CancellationToken::new();
    tokio::spawn(cancel_on_signal(shutdown.clone()));
    webhook::run(&command, cluster, shutdown).await?;
    Ok(true)
}

/// The AWS configuration (standard chain) when the cluster's requests are SigV4-signed.
async fn aws_for_cluster(
    cluster: &cloudtrail_ingest::config::ClusterConfig,
) -> Option<aws_config::SdkConfig> {
    if cluster.elasticsearch_aws_sigv4 {
        Some(aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await)
    } else {
        None
    }
}

/// 0 when the run (or check) succeeded, 1 when a check failed.
fn exit_code(passed: bool) -> u8 {
    if passed {
        0
    } else {
        1
    }
}

/// Runs a backfill to its end; its exit code says how it ended (0, 1 or 130).
async fn run_backfill(command: BackfillCommand) -> anyhow::Result<u8> {
    let aws = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    if aws.region().is_none() {
        anyhow::bail!("no AWS region configured: set AWS_REGION (or a profile with a region)");
    }
    let s3 = cloudtrail_ingest::source::s3::client(&aws, &command.s3);
    let cluster = client::connect(&command.shared.cluster, Some(&aws))?;
    let shutdown = CancellationToken::new();
    tokio::spawn(cancel_on_signal(shutdown.clone()));
    let outcome = backfill::run(&command, s3, cluster, shutdown).await?;
    for (key, reason) in &outcome.failed {
        let reason = reason
            .as_deref()
            .unwrap_or("in an earlier run of this checkpoint");
        println!("FAILED s3://{}/{key}: {reason}", command.bucket());
    }
    if outcome.failed_total > outcome.failed.len() as u64 {
        println!(
            "... and {} more failed keys (only the first {} are kept)",
            outcome.failed_total - outcome.failed.len() as u64,
            outcome.failed.len()
        );
    }
    match outcome.exit_code() {
        0 => info!("backfill complete"),
        1 => error!(
            failed = outcome.failed_total,
            "backfill finished; some objects failed for good (listed on standard output)"
        ),
        _ => warn!("backfill interrupted; run it again with the same --checkpoint to resume"),
    }
    Ok(outcome.exit_code())
}

/// `rules check`: the report on standard output; 1 when a rule cannot be used.
fn run_rules(command: &RulesCommand) -> ExitCode {
    let RulesAction::Check {
        paths,
        alert_min_level,
    } = &command.action;
    match cloudtrail_ingest::detect::check(paths, *alert_min_level, &mut std::io::stdout().lock()) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(err) => {
            eprintln!("cloudtrail-ingest: {err}");
            ExitCode::FAILURE
        }
    }
}

/// Cancels `token` on the first SIGTERM (ECS, systemd) or SIGINT (Ctrl-C).
async fn cancel_on_signal(token: CancellationToken) {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("installing a SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("installing a SIGINT handler");
    let name = tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    };
    info!(signal = name, "shutdown requested");
    token.cancel();
}
