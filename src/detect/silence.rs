//! Silence: `--alert-if-silent` raises one alert when no event has been indexed for that
//! long, and one `resumed` alert when events flow again.
//!
//! The watcher reads the documents the sink wrote (events newly indexed or already there;
//! alerts and dead-lettered records do not count) about every tenth of the duration, at most every
//! 10 s. The worker's start counts as the last event, so a worker that never gets one also
//! raises the alarm. Each worker watches what it indexes itself: with several copies on one
//! queue, each raises its own alarm.
//!
//! A silence alert is delivered to the webhooks at once (the cluster may be why events
//! stopped, and then it cannot index the alert either) and indexed in
//! `<index-prefix>-alerts-YYYY.MM.DD` under its own ticket. Its `_id` names the watched
//! source and the time of the last event, so each silence is one document.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use time::OffsetDateTime;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::alert::{self, alert_id, Written};
use super::deliver::Notifier;
use crate::pipeline::{format_time, Event, EventSender, Origin, Pending, Ticket};
use crate::telemetry::Stats;

/// The rule id silence alerts carry.
pub const RULE_ID: &str = "cloudtrail-ingest-silence";

/// What the watcher needs.
pub struct Watch {
    /// No event for this long raises the alarm.
    pub after: Duration,
    /// Names the watched source in the alert (e.g. the queue's URL or the topic).
    pub source: String,
    pub stats: Arc<Stats>,
    pub events: EventSender,
    pub notifier: Option<Arc<Notifier>>,
}

impl Watch {
    /// Runs until `stop` is cancelled; then drops its event sender, so the sink can finish.
    pub async fn run(self, stop: CancellationToken) {
        let every = (self.after / 10).clamp(Duration::from_millis(100), Duration::from_secs(10));
        let mut seen = self.ingested();
        let mut last_event = (Instant::now(), OffsetDateTime::now_utc());
        let mut silent = false;
        loop {
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = stop.cancelled() => return,
            }
            let now = self.ingested();
            if now != seen {
                seen = now;
                if silent {
                    silent = false;
                    self.raise(Kind::Resumed, last_event.1, &stop).await;
                }
                last_event = (Instant::now(), OffsetDateTime::now_utc());
            } else if !silent && last_event.0.elapsed() >= self.after {
                silent = true;
                self.raise(Kind::Silence, last_event.1, &stop).await;
            }
        }
    }

    fn ingested(&self) -> u64 {
        self.stats.written()
    }

    async fn raise(&self, kind: Kind, since: OffsetDateTime, stop: &CancellationToken) {
        let event = self.alert(kind, since, OffsetDateTime::now_utc());
        match kind {
            Kind::Silence => {
                warn!(after = ?self.after, since = %format_time(since), source = %self.source, "no events indexed; silence alert raised")
            }
            Kind::Resumed => {
                info!(since = %format_time(since), source = %self.source, "events are indexed again; resumed alert raised")
            }
        }
        if let Some(notifier) = &self.notifier {
            notifier.notify(&event.source);
        }
        let ticket = Ticket::new();
        let origin = Arc::new(Origin::new(
            format!("silence alarm of {}", self.source),
            json!({"alert": {"kind": kind.name()}}),
        ));
        // During an outage the sink may have no room; stopping must not wait for it.
        let sent = tokio::select! {
            sent = self.events.send(self.pending(event, origin, &ticket)) => sent,
            _ = stop.cancelled() => return,
        };
        if sent.is_err() {
            return; // the sink is gone: the worker is stopping
        }
        tokio::select! {
            verdict = ticket.settle() => {
                if let Err(failure) = verdict {
                    warn!(error = %failure, "silence alert not indexed");
                }
            }
            _ = stop.cancelled() => {}
        }
    }

    /// The alert under its own ticket, counted as an alert once written (it was delivered
    /// when raised).
    fn pending(&self, event: Event, origin: Arc<Origin>, ticket: &Arc<Ticket>) -> Pending {
        let mut pending = Pending::new(event, origin, ticket.claim());
        pending.on_written = Some(Arc::new(Written {
            counters: self.stats.counters(),
            notifier: None,
        }));
        pending
    }

    /// The alert document: like a rule's alert, with `kind` `silence` or `resumed` and
    /// `silence` (`since`: the last event's time, `after`: the duration).
    fn alert(&self, kind: Kind, since: OffsetDateTime, now: OffsetDateTime) -> Event {
        let after = humantime::format_duration(self.after).to_string();
        let (level, title, text) = match kind {
            Kind::Silence => (
                "high",
                "No events indexed",
                format!(
                    "[high] No events indexed for {after} from {} (last at {})",
                    self.source,
                    format_time(since)
                ),
            ),
            Kind::Resumed => (
                "informational",
                "Events indexed again",
                format!(
                    "[informational] Events indexed again from {} (silent since {})",
                    self.source,
                    format_time(since)
                ),
            ),
        };
        let body = json!({
            "@timestamp": format_time(now),
            "detected_at": format_time(now),
            "kind": kind.name(),
            "text": text,
            "rule": {
                "id": RULE_ID,
                "title": title,
                "level": level,
                "description": format!("--alert-if-silent {after}"),
            },
            "silence": {"since": format_time(since), "after": after, "source": self.source},
        });
        Event {
            id: alert_id(
                kind.name(),
                &format!("{}:{}", self.source, format_time(since)),
            ),
            time: now,
            timestamp: format_time(now),
            source: serde_json::to_vec(&body)
                .expect("a JSON value serialises")
                .into(),
            outline: Vec::new(),
            used_fallback_time: false,
            dataset: alert::DATASET,
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Silence,
    Resumed,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Silence => "silence",
            Kind::Resumed => "resumed",
        }
    }
}
