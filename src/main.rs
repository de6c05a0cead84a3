//! `cloudtrail-ingest`: parse the command line, start logging, run the command until it
//! ends or SIGTERM/SIGINT, and exit with its code.

use std::io::IsTerminal;
use std::process::ExitCode;

use cloudtrail_ingest::cli::{self, Cli, Command, Parsed};
use cloudtrail_ingest::config::LogFormat;
use cloudtrail_ingest::runtime;
use tokio_util::sync::CancellationToken;
use tracing::{error, info};
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> ExitCode {
    let command = match Cli::parse_command() {
        Ok(Parsed::Run(command)) => command,
        Ok(Parsed::Print(config)) => {
            print!("{config}");
            return ExitCode::SUCCESS;
        }
        Err(err) if !err.use_stderr() => err.exit(), // --help, --version
        Err(err) => {
            let text = err.to_string();
            let first = text.lines().next().unwrap_or("invalid arguments");
            eprintln!("cloudtrail-ingest: {}", first.trim_start_matches("error: "));
            return ExitCode::from(2);
        }
    };
    if let Command::Rules(rules) = &command {
        return ExitCode::from(cli::rules_check(rules));
    }
    if let Err(err) = command.validate() {
        eprintln!("cloudtrail-ingest: {err}");
        return ExitCode::from(2);
    }
    let log_format = command
        .shared()
        .map_or(LogFormat::Text, |shared| shared.telemetry.log_format);
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match log_format {
        LogFormat::Text => logs.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => logs.json().with_current_span(true).init(),
    }
    info!(config = %command.redacted_summary(), "starting");

    let stop = CancellationToken::new();
    tokio::spawn(runtime::stop_on_signal(stop.clone()));
    match command.run(stop).await {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            error!("{err:#}");
            ExitCode::FAILURE
        }
    }
}
