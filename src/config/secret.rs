//! Secrets: values that must never reach a log line, an error message, `--help` or `Debug`.
//!
//! [`Secret`] holds a password, an API key or a token; it prints as `[redacted]` whichever way
//! it is formatted, and only [`Secret::expose`] hands out the value, at the one place that
//! sends it. [`ClusterUrl`] holds the cluster URL as given, which may carry
//! `user:password@`: it only ever prints without them, and [`ClusterUrl::split`] separates
//! them into basic-auth credentials so that the client never sees a URL with a password in it.

use url::Url;

#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The value itself, for the request that needs it and nothing else.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Secret::new(s))
    }
}

/// The cluster URL as given (parsing never fails here, so that clap never echoes it);
/// [`ClusterUrl::split`] validates it.
#[derive(Clone, PartialEq, Eq)]
pub struct ClusterUrl(Secret);

/// A usable cluster URL: without credentials, plus the credentials it carried.
#[derive(Clone, PartialEq, Eq)]
pub struct SplitUrl {
    pub url: Url,
    pub credentials: Option<(String, Secret)>,
}

impl ClusterUrl {
    /// The URL without user information, and the user and password it carried.
    pub fn split(&self) -> Result<SplitUrl, String> {
        let mut url = Url::parse(self.0.expose()).map_err(|e| e.to_string())?;
        if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
            return Err("must be an http or https URL".into());
        }
        let credentials = if url.username().is_empty() && url.password().is_none() {
            None
        } else {
            let user = percent_decode(url.username());
            let password = Secret::new(percent_decode(url.password().unwrap_or("")));
            url.set_username("").expect("an http URL has a username");
            url.set_password(None).expect("an http URL has a password");
            Some((user, password))
        };
        Ok(SplitUrl { url, credentials })
    }

    /// For messages: the URL without credentials, or a placeholder when it cannot be parsed
    /// (an unparseable value may still hold a password).
    pub fn redacted(&self) -> String {
        match self.split() {
            Ok(split) => split.url.to_string(),
            Err(_) if self.0.expose().contains('@') => {
                "[unparseable URL with credentials, redacted]".into()
            }
            Err(_) => format!("{:?}", self.0.expose()),
        }
    }
}

/// An `--alert-webhook` URL as given. Chat webhooks keep their secret in the path (Slack's
/// `/services/T…/B…/…`) or the query (`sig=`), so it only ever prints as
/// `scheme://host[:port]/[redacted]`; [`AlertUrl::parse`] validates it without repeating it.
#[derive(Clone, PartialEq, Eq)]
pub struct AlertUrl(Secret);

impl AlertUrl {
    /// The URL to POST to: http or https, with a host and no user information.
    pub fn parse(&self) -> Result<Url, String> {
        let url = Url::parse(self.0.expose()).map_err(|e| format!("not a URL ({e})"))?;
        if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
            return Err("must be an http or https URL".into());
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err("user information in the URL is not supported".into());
        }
        Ok(url)
    }

    /// For logs: scheme, host and port only.
    pub fn redacted(&self) -> String {
        match self.parse() {
            Ok(url) => {
                let port = url.port().map(|p| format!(":{p}")).unwrap_or_default();
                let host = url.host_str().unwrap_or_default();
                format!("{}://{host}{port}/[redacted]", url.scheme())
            }
            Err(_) => "[invalid URL, redacted]".into(),
        }
    }
}

impl std::fmt::Debug for AlertUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl std::str::FromStr for AlertUrl {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(AlertUrl(Secret::new(s)))
    }
}

/// User information in a URL is percent-encoded (`+` is a plus, not a space).
fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

impl std::fmt::Debug for ClusterUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl std::str::FromStr for ClusterUrl {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(ClusterUrl(Secret::new(s)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print() {
        let secret = Secret::new("hunter2");
        assert_eq!(
            format!("{secret} {secret:?} {secret:#?}"),
            "[redacted] [redacted] [redacted]"
        );
        assert_eq!(secret.expose(), "hunter2");
    }

    #[test]
    fn urls_lose_their_credentials() {
        let url: ClusterUrl = "https://ops:p%40ss+word@search.example.com:9200/"
            .parse()
            .unwrap();
        let split = url.split().unwrap();
        assert_eq!(split.url.as_str(), "https://search.example.com:9200/");
        let (user, password) = split.credentials.unwrap();
        assert_eq!((user.as_str(), password.expose()), ("ops", "p@ss+word"));
        assert_eq!(format!("{url:?}"), "https://search.example.com:9200/");
        let bad: ClusterUrl = "https//ops:pw@host".parse().unwrap();
        assert!(bad.split().is_err());
        assert!(!bad.redacted().contains("pw"));
        let plain: ClusterUrl = "http://127.0.0.1:9200".parse().unwrap();
        assert!(plain.split().unwrap().credentials.is_none());
    }

    #[test]
    fn alert_urls_show_only_their_host() {
        let slack: AlertUrl = "https://hooks.slack.com/services/T000/B000/XXXXSECRET"
            .parse()
            .unwrap();
        assert_eq!(format!("{slack:?}"), "https://hooks.slack.com/[redacted]");
        assert!(slack.parse().unwrap().as_str().ends_with("XXXXSECRET"));
        let local: AlertUrl = "http://127.0.0.1:8080/hook?sig=SECRET".parse().unwrap();
        assert_eq!(format!("{local:?}"), "http://127.0.0.1:8080/[redacted]");
        for bad in [
            "hooks.slack.com/services/SECRET",
            "ftp://h/SECRET",
            "https://u:SECRET@h/x",
        ] {
            let url: AlertUrl = bad.parse().unwrap();
            let reason = url.parse().unwrap_err();
            assert!(
                !reason.contains("SECRET") && !format!("{url:?}").contains("SECRET"),
                "{reason}"
            );
        }
    }
}
