//! Detection flags, shared by every source: the Sigma rules, where alerts go, the silence
//! alarm; and `cloudtrail-ingest rules check`.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use url::Url;

use super::ENV_PREFIX;
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

    /// POST each new alert as JSON, with a `text` summary line (Slack and Teams incoming
    /// webhooks take it), to this URL. Repeat for more; the environment variable takes a
    /// comma-separated list. Delivery is retried with backoff and never holds up ingestion;
    /// the alerts index is the durable record. The URL's path and query are never logged.
    #[arg(long = "alert-webhook", env = "CLOUDTRAIL_INGEST_ALERT_WEBHOOK", value_delimiter = ',', value_parser = parse_alert_url, value_name = "URL")]
    pub alert_webhooks: Vec<AlertUrl>,

    /// Raise one alert when no event was ingested for this long (e.g. 2h), and one more when
    /// events flow again [default: off].
    #[arg(long, env = "CLOUDTRAIL_INGEST_ALERT_IF_SILENT", value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub alert_if_silent: Option<Duration>,
}

impl DetectConfig {
    /// Whether anything here needs the alerts index.
    pub fn enabled(&self) -> bool {
        !self.rules.is_empty() || self.alert_if_silent.is_some()
    }

    pub(super) fn validate(&self, problems: &mut Vec<String>) {
        if !self.alert_webhooks.is_empty() && !self.enabled() {
            problems.push(format!(
                "--alert-webhook needs --rules or --alert-if-silent ({ENV_PREFIX}RULES, {ENV_PREFIX}ALERT_IF_SILENT): there is nothing to deliver"
            ));
        }
        if self
            .alert_if_silent
            .is_some_and(|d| d < Duration::from_secs(1))
        {
            problems.push("--alert-if-silent must be at least 1s".to_string());
        }
        for path in &self.rules {
            if !path.exists() {
                problems.push(format!(
                    "--rules {}: no such file or folder",
                    path.display()
                ));
            }
        }
    }

    /// For the start-up summary: the paths, and webhooks by host only.
    pub fn summary(&self) -> String {
        if !self.enabled() {
            return "rules=off".to_string();
        }
        format!(
            "rules={} rules_strict={} alert_min_level={} alert_webhooks=[{}] alert_if_silent={}",
            if self.rules.is_empty() {
                "-".to_string()
            } else {
                self.rules
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(",")
            },
            self.rules_strict,
            self.alert_min_level,
            self.alert_webhooks
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(","),
            self.alert_if_silent.map_or_else(
                || "off".to_string(),
                |d| humantime::format_duration(d).to_string()
            ),
        )
    }
}

fn parse_level(text: &str) -> Result<Level, String> {
    Level::parse(text).ok_or_else(|| {
        format!("`{text}` is not a Sigma level (informational, low, medium, high, critical)")
    })
}

/// A webhook URL. Incoming-webhook URLs carry their secret in the path (Slack:
/// `/services/T…/B…/<token>`) or the query (Teams: `sig=`), so only the scheme, host and
/// port are ever printed.
#[derive(Clone, PartialEq, Eq)]
pub struct AlertUrl(Url);

impl AlertUrl {
    /// The whole URL, for the request that needs it and nothing else.
    pub fn expose(&self) -> &Url {
        &self.0
    }
}

impl std::fmt::Display for AlertUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}://{}",
            self.0.scheme(),
            self.0.host_str().unwrap_or("-")
        )?;
        if let Some(port) = self.0.port() {
            write!(f, ":{port}")?;
        }
        if self.0.path() != "/" || self.0.query().is_some() {
            f.write_str("/[redacted]")?;
        }
        Ok(())
    }
}

impl std::fmt::Debug for AlertUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AlertUrl({self})")
    }
}

fn parse_alert_url(text: &str) -> Result<AlertUrl, String> {
    // The error never repeats the URL: it holds the secret.
    let url = Url::parse(text.trim()).map_err(|err| format!("not a valid URL ({err})"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err("must be an http or https URL with a host".to_string());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not hold credentials (user:password@)".to_string());
    }
    Ok(AlertUrl(url))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webhook_urls_print_without_their_secret() {
        let url = parse_alert_url("https://hooks.slack.com/services/T000/B000/XXXXSECRET").unwrap();
        assert_eq!(url.to_string(), "https://hooks.slack.com/[redacted]");
        assert_eq!(
            format!("{url:?}"),
            "AlertUrl(https://hooks.slack.com/[redacted])"
        );
        let url = parse_alert_url("http://127.0.0.1:8080/?sig=SECRET").unwrap();
        assert!(!format!("{url}{url:?}").contains("SECRET"));
        assert_eq!(
            parse_alert_url("http://127.0.0.1:9/").unwrap().to_string(),
            "http://127.0.0.1:9"
        );
        let err = parse_alert_url("ftp://x/SECRET").unwrap_err();
        assert!(!err.contains("SECRET"));
        assert!(parse_alert_url("https://u:SECRET@x/")
            .unwrap_err()
            .contains("credentials"));
    }
}
