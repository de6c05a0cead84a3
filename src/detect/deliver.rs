//! Deliver: each new alert POSTed as JSON to every `--alert-webhook`, in the background.
//!
//! The alerts index is the durable record; delivery is the notice on top of it:
//! - a rule's alert is delivered once the cluster has newly created it (an alert already
//!   there, from an earlier delivery of its event, is not sent again); the silence alarm's
//!   alerts are delivered when they are raised, since the cluster may be why events stopped;
//! - the body is the alert document itself, whose `text` is the line Slack and Teams
//!   incoming webhooks show;
//! - each webhook has its own queue of [`QUEUE`] alerts and its own task, so a slow or failing
//!   receiver delays no other, and ingestion never waits: when a queue is full the alert is
//!   counted as dropped and a warning says so;
//! - a POST that fails for a reason that may pass (no connection, timeout, 408, 429, 5xx)
//!   is retried with jittered backoff from 1 s to 60 s, [`ATTEMPTS`] attempts in all (about
//!   five minutes); another 4xx is final. Delivered, retried, failed and dropped are counted;
//! - at shutdown, the alerts still queued get one attempt each, within [`GRACE`];
//! - a webhook is named in logs by scheme, host and port only: its path and query (where
//!   Slack, Teams and most receivers keep the secret) never print.

use std::sync::Arc;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use bytes::Bytes;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::config::AlertUrl;
use crate::telemetry::Stats;

crate::telemetry::counters! {
    /// What became of the alerts sent to the webhooks.
    pub struct DeliveryCounters {
        alert_webhook_delivered: "alerts an --alert-webhook accepted (2xx)",
        alert_webhook_retried: "alert POSTs retried (no connection, timeout, 408, 429 or 5xx)",
        alert_webhook_failed: "alerts a webhook refused (4xx) or that were not delivered after every attempt",
        alert_webhook_dropped: "alerts not queued for a webhook because its queue was full",
    }
}

/// Alerts waiting for one webhook.
pub const QUEUE: usize = 1000;
/// Attempts per alert while the worker runs.
pub const ATTEMPTS: usize = 10;
/// How long the queued alerts get at shutdown.
pub const GRACE: Duration = Duration::from_secs(5);
/// One POST's time limit.
const TIMEOUT: Duration = Duration::from_secs(10);

/// Hands alerts to the webhooks' queues (cheap, never waits).
#[derive(Debug)]
pub struct Notifier {
    hooks: Vec<(String, mpsc::Sender<Bytes>)>,
    counters: Arc<DeliveryCounters>,
}

impl Notifier {
    /// Queues `alert` (a JSON document) for every webhook.
    pub fn notify(&self, alert: &[u8]) {
        let body = Bytes::copy_from_slice(alert);
        for (name, queue) in &self.hooks {
            if queue.try_send(body.clone()).is_err() {
                self.counters.alert_webhook_dropped.add(1);
                warn!(webhook = %name, queued = QUEUE, "alert webhook queue full; alert not delivered (it is in the alerts index)");
            }
        }
    }
}

/// The webhooks' tasks, finished with [`Delivery::finish`].
#[derive(Debug)]
pub struct Delivery {
    tasks: Vec<JoinHandle<()>>,
    closing: CancellationToken,
}

/// Starts one task per webhook (none without webhooks). `urls` were validated with the
/// configuration.
pub fn start(urls: &[AlertUrl], stats: &Arc<Stats>) -> Option<(Arc<Notifier>, Delivery)> {
    if urls.is_empty() {
        return None;
    }
    let client = reqwest::Client::builder()
        .timeout(TIMEOUT)
        .build()
        .expect("an HTTP client with a timeout builds");
    let closing = CancellationToken::new();
    let mut hooks = Vec::new();
    let mut tasks = Vec::new();
    for url in urls {
        let name = url.redacted();
        let target = url
            .parse()
            .expect("--alert-webhook URLs are validated at start");
        let (queue, alerts) = mpsc::channel(QUEUE);
        let hook = Hook {
            name: name.clone(),
            url: target,
            client: client.clone(),
            counters: stats.counters(),
        };
        tasks.push(tokio::spawn(hook.run(alerts, closing.clone())));
        hooks.push((name, queue));
    }
    info!(webhooks = ?hooks.iter().map(|(name, _)| name.as_str()).collect::<Vec<_>>(), "alert webhooks ready");
    let notifier = Notifier {
        hooks,
        counters: stats.counters(),
    };
    Some((Arc::new(notifier), Delivery { tasks, closing }))
}

impl Delivery {
    /// Gives the queued alerts one attempt each, within [`GRACE`].
    pub async fn finish(self) {
        self.closing.cancel();
        let deadline = tokio::time::Instant::now() + GRACE;
        for mut task in self.tasks {
            match tokio::time::timeout_at(deadline, &mut task).await {
                Ok(joined) => joined.expect("a webhook task does not panic"),
                Err(_) => {
                    task.abort();
                    warn!("alert delivery cut short at shutdown; undelivered alerts are in the alerts index");
                }
            }
        }
    }
}

struct Hook {
    name: String,
    url: url::Url,
    client: reqwest::Client,
    counters: Arc<DeliveryCounters>,
}

/// How one POST went.
enum Outcome {
    Delivered,
    /// May pass: worth another attempt.
    Transient(String),
    Final(String),
}

impl Hook {
    async fn run(self, mut alerts: mpsc::Receiver<Bytes>, closing: CancellationToken) {
        loop {
            let alert = tokio::select! {
                biased;
                alert = alerts.recv() => alert,
                _ = closing.cancelled() => alerts.try_recv().ok(),
            };
            let Some(alert) = alert else { return };
            self.deliver(alert, &closing).await;
        }
    }

    /// Posts `alert`, retrying while the worker runs (once more when it stops).
    async fn deliver(&self, alert: Bytes, closing: &CancellationToken) {
        let mut backoff = ExponentialBuilder::default()
            .with_min_delay(Duration::from_secs(1))
            .with_max_delay(Duration::from_secs(60))
            .with_jitter()
            .with_max_times(ATTEMPTS - 1)
            .build();
        loop {
            let reason = match self.post(alert.clone()).await {
                Outcome::Delivered => {
                    self.counters.alert_webhook_delivered.add(1);
                    debug!(webhook = %self.name, "alert delivered");
                    return;
                }
                Outcome::Final(reason) => {
                    self.counters.alert_webhook_failed.add(1);
                    warn!(webhook = %self.name, %reason, "alert webhook refused the alert; not retried");
                    return;
                }
                Outcome::Transient(reason) => reason,
            };
            let wait = match backoff.next() {
                Some(wait) if !closing.is_cancelled() => wait,
                _ => {
                    self.counters.alert_webhook_failed.add(1);
                    warn!(webhook = %self.name, %reason, attempts = ATTEMPTS, "alert not delivered; giving up (it is in the alerts index)");
                    return;
                }
            };
            self.counters.alert_webhook_retried.add(1);
            info!(webhook = %self.name, %reason, retry_in = ?wait, "alert delivery failed; retrying");
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                // Stopping: one more attempt now, then no more.
                _ = closing.cancelled() => {}
            }
        }
    }

    async fn post(&self, alert: Bytes) -> Outcome {
        let sent = self
            .client
            .post(self.url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(alert)
            .send()
            .await;
        match sent {
            Ok(response) => {
                let status = response.status();
                if status.is_success() {
                    Outcome::Delivered
                } else if status.is_server_error()
                    || status == reqwest::StatusCode::TOO_MANY_REQUESTS
                    || status == reqwest::StatusCode::REQUEST_TIMEOUT
                {
                    Outcome::Transient(format!("HTTP {status}"))
                } else {
                    Outcome::Final(format!("HTTP {status}"))
                }
            }
            // Without the URL: reqwest's error would print it, secret and all.
            Err(err) => Outcome::Transient(describe(&err.without_url())),
        }
    }
}

/// A request error and its causes, as one line.
fn describe(err: &reqwest::Error) -> String {
    let mut text = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
