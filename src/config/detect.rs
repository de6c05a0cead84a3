//! Detection flags, shared by every source (the Sigma rules and which of them are used),
//! and `cloudtrail-ingest rules check`.

use std::path::PathBuf;

use clap::Args;

use crate::detect::Level;

#[derive(Debug, Clone, Args)]
pub struct DetectConfig {
    /// Sigma rules to run on every event: a rule file or a folder (read recursively for
    /// .yml/.yaml). Repeat for more; the environment variable takes a comma-separated list.
    /// Matches become alerts in <index-prefix>-alerts-YYYY.MM.DD.
    #[arg(
        long = "rules",
        env = "CLOUDTRAIL_INGEST_RULES",
        value_delimiter = ',',
        value_name = "PATH"
    )]
    pub rules: Vec<PathBuf>,

    /// Refuse to start when a rule cannot be read or uses what is not supported (by default
    /// such a rule is reported and left out).
    #[arg(long, env = "CLOUDTRAIL_INGEST_RULES_STRICT")]
    pub rules_strict: bool,

    /// Only rules of this Sigma level or above are used: informational, low, medium, high,
    /// critical.
    #[arg(long, env = "CLOUDTRAIL_INGEST_ALERT_MIN_LEVEL", default_value = "informational", value_parser = parse_level, value_name = "LEVEL")]
    pub alert_min_level: Level,
}

impl DetectConfig {
    /// Whether anything here needs the alerts index.
    pub fn enabled(&self) -> bool {
        !self.rules.is_empty()
    }

    pub(super) fn validate(&self, problems: &mut Vec<String>) {
        for path in &self.rules {
            if !path.exists() {
                problems.push(format!(
                    "--rules {}: no such file or folder",
                    path.display()
                ));
            }
        }
    }

    /// For the start-up summary.
    pub fn summary(&self) -> String {
        if !self.enabled() {
            return "rules=off".to_string();
        }
        let paths: Vec<String> = self.rules.iter().map(|p| p.display().to_string()).collect();
        format!(
            "rules={} rules_strict={} alert_min_level={}",
            paths.join(","),
            self.rules_strict,
            self.alert_min_level,
        )
    }
}

fn parse_level(text: &str) -> Result<Level, String> {
    Level::parse(text).ok_or_else(|| {
        format!("`{text}` is not a Sigma level (informational, low, medium, high, critical)")
    })
}

/// `cloudtrail-ingest rules check PATH...`
#[derive(Debug, Clone, Args)]
pub struct RulesCommand {
    #[command(subcommand)]
    pub action: RulesAction,
}

#[derive(Debug, Clone, clap::Subcommand)]
pub enum RulesAction {
    /// Load rule files and folders as --rules does and list what loads (with the sources
    /// each rule applies to and the field it is indexed by) and what does not, with the
    /// reason. Exits 1 when a rule cannot be used.
    Check {
        /// Rule files or folders.
        #[arg(required = true, value_name = "PATH")]
        paths: Vec<PathBuf>,
        /// As --alert-min-level: rules below it are listed as not used.
        #[arg(long, default_value = "informational", value_parser = parse_level, value_name = "LEVEL")]
        alert_min_level: Level,
    },
}
