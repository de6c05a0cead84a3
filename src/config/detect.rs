//! Detection flags, shared by every source (the Sigma rules and which of them are used),
//! and `cloudtrail-ingest rules check`.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::secret::AlertUrl;

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

    /// Sigma rules whose matching events are not indexed (a file or a folder, as --rules):
    /// detection rules still see every event, and a dropped event is acknowledged like an
    /// indexed one. Repeat for more; the environment variable takes a comma-separated list.
    /// `rule_drops_total{rule_id}` at /metrics counts each rule's drops.
    #[arg(
        long = "drop-rules",
        env = "CLOUDTRAIL_INGEST_DROP_RULES",
        value_delimiter = ',',
        value_name = "PATH"
    )]
    pub drop_rules: Vec<PathBuf>,

    /// Refuse to start when a rule cannot be read or uses what is not supported (by default
    /// such a rule is reported and left out).
    #[arg(long, env = "CLOUDTRAIL_INGEST_RULES_STRICT")]
    pub rules_strict: bool,

    /// Only rules of this Sigma level or above are used: informational, low, medium, high,
    /// critical.
    #[arg(long, env = "CLOUDTRAIL_INGEST_ALERT_MIN_LEVEL", default_value = "informational", value_parser = parse_level, value_name = "LEVEL")]
    pub alert_min_level: Level,

    /// POST each new alert as JSON (with a `text` summary line, which Slack and Teams
    /// incoming webhooks show) to this URL. Repeat for more; the environment variable takes
    /// a comma-separated list. The URL's path and query are treated as a secret.
    #[arg(
        long = "alert-webhook",
        env = "CLOUDTRAIL_INGEST_ALERT_WEBHOOK",
        value_delimiter = ',',
        value_name = "URL",
        hide_env_values = true
    )]
    pub alert_webhooks: Vec<AlertUrl>,

    /// Raise one alert (indexed and delivered) when no event has been indexed for this long
    /// (e.g. 2h), and one "resumed" alert when events flow again.
    #[arg(long, env = "CLOUDTRAIL_INGEST_ALERT_IF_SILENT", value_parser = parse_silence, value_name = "DURATION")]
    pub alert_if_silent: Option<Duration>,
}

impl DetectConfig {
    /// Whether anything here needs the alerts index.
    pub fn enabled(&self) -> bool {
        !self.rules.is_empty() || self.alert_if_silent.is_some()
    }

    /// For a command that ends by itself (`ends`: how it ends): the silence alarm, which
    /// watches a worker that keeps running, is refused.
    pub fn refuse_silence_alarm(&self, ends: &str, problems: &mut Vec<String>) {
        if self.alert_if_silent.is_some() {
            problems.push(format!(
                "--alert-if-silent is for workers that keep running; {ends}"
            ));
        }
    }

    pub(super) fn validate(&self, problems: &mut Vec<String>) {
        for (flag, paths) in [("--rules", &self.rules), ("--drop-rules", &self.drop_rules)] {
            for path in paths {
                if !path.exists() {
                    problems.push(format!("{flag} {}: no such file or folder", path.display()));
                }
            }
        }
        for url in &self.alert_webhooks {
            if let Err(reason) = url.parse() {
                problems.push(format!("--alert-webhook {url:?}: {reason}"));
            }
        }
        if !self.alert_webhooks.is_empty() && !self.enabled() {
            problems.push(
                "--alert-webhook: nothing raises alerts; give --rules or --alert-if-silent".into(),
            );
        }
    }

    /// For the start-up summary.
    pub fn summary(&self) -> String {
        let drops: Vec<String> = self
            .drop_rules
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        let drops = format!(
            "drop_rules={}",
            if drops.is_empty() {
                "none".to_string()
            } else {
                drops.join(",")
            }
        );
        if !self.enabled() {
            return format!("rules=off {drops}");
        }
        let paths: Vec<String> = self.rules.iter().map(|p| p.display().to_string()).collect();
        let webhooks: Vec<String> = self
            .alert_webhooks
            .iter()
            .map(|u| format!("{u:?}"))
            .collect();
        format!(
            "rules={} rules_strict={} alert_min_level={} alert_webhooks=[{}] alert_if_silent={} {drops}",
            if paths.is_empty() {
                "none".to_string()
            } else {
                paths.join(",")
            },
            self.rules_strict,
            self.alert_min_level,
            webhooks.join(","),
            self.alert_if_silent
                .map_or("off".to_string(), |d| humantime::format_duration(d)
                    .to_string()),
        )
    }
}

/// Sigma's levels, least to most severe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    Informational,
    Low,
    Medium,
    High,
    Critical,
}

impl Level {
    pub const ALL: [Level; 5] = [
        Level::Informational,
        Level::Low,
        Level::Medium,
        Level::High,
        Level::Critical,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Level::Informational => "informational",
            Level::Low => "low",
            Level::Medium => "medium",
            Level::High => "high",
            Level::Critical => "critical",
        }
    }

    pub fn parse(text: &str) -> Option<Level> {
        Level::ALL
            .into_iter()
            .find(|l| l.as_str().eq_ignore_ascii_case(text.trim()))
    }
}

impl std::fmt::Display for Level {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// At least a second: the alarm is checked about every tenth of its duration.
fn parse_silence(text: &str) -> Result<Duration, String> {
    let duration = humantime::parse_duration(text).map_err(|e| e.to_string())?;
    if duration < Duration::from_secs(1) {
        return Err("must be at least 1s".into());
    }
    Ok(duration)
}

pub(super) fn parse_level(text: &str) -> Result<Level, String> {
    Level::parse(text).ok_or_else(|| {
        format!("`{text}` is not a Sigma level (informational, low, medium, high, critical)")
    })
}
