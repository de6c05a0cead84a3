//! Channel: the bounded hand-over from a format (on a blocking thread or a task) to the sink.
//!
//! Bounded twice: by count, and by bytes. An event takes its weight (its bytes) from a shared
//! budget before it is sent and gives it back only when it is dropped, that is once the sink
//! settled it, so everything between the format and the settled outcome (the channel, the
//! batch being filled, requests in flight, items waiting for a retry) stays within the budget.
//! One event heavier than the whole budget takes the whole budget: it goes alone. A sender
//! that finds the budget spent waits, which pushes back on the source.

use std::sync::Arc;

use tokio::sync::{mpsc, Semaphore};

use super::Pending;
use crate::detect::alert::Alerter;

/// The sink is gone; the event was not handed over (it settles as dropped).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the sink is closed")]
pub struct Closed;

#[derive(Debug, Clone)]
pub struct EventSender {
    events: mpsc::Sender<Pending>,
    budget: Arc<Semaphore>,
    budget_bytes: u32,
    /// The detection rules every event passes on its way (see [`EventSender::send`]).
    alerter: Option<Arc<Alerter>>,
}

#[derive(Debug)]
pub struct EventReceiver {
    events: mpsc::Receiver<Pending>,
}

/// A channel of at most `count` events and `bytes` bytes of events not yet settled.
pub fn channel(count: usize, bytes: usize) -> (EventSender, EventReceiver) {
    let budget_bytes = u32::try_from(bytes.min(Semaphore::MAX_PERMITS)).unwrap_or(u32::MAX);
    let (tx, rx) = mpsc::channel(count);
    (
        EventSender {
            events: tx,
            budget: Arc::new(Semaphore::new(budget_bytes as usize)),
            budget_bytes,
            alerter: None,
        },
        EventReceiver { events: rx },
    )
}

impl EventSender {
    /// This sender, with every event it sends examined by `alerter`'s rules.
    pub fn with_alerter(mut self, alerter: Arc<Alerter>) -> Self {
        self.alerter = Some(alerter);
        self
    }

    /// Waits for room (count and bytes), then hands the event over, followed by the alerts
    /// it raised (each under the event's ticket: the payload settles once they are indexed
    /// too). Records the source refused raise none.
    pub async fn send(&self, pending: Pending) -> Result<(), Closed> {
        let alerts: Vec<Pending> = match &self.alerter {
            Some(alerter) if pending.refusal.is_none() => alerter
                .alerts(&pending.event)
                .into_iter()
                .map(|alert| {
                    let mut alert = pending.alongside(alert);
                    alert.notify = alerter.notifier.clone();
                    alert
                })
                .collect(),
            _ => Vec::new(),
        };
        self.hand_over(pending).await?;
        for alert in alerts {
            self.hand_over(alert).await?;
        }
        Ok(())
    }

    async fn hand_over(&self, mut pending: Pending) -> Result<(), Closed> {
        let weight = u32::try_from(pending.weight())
            .unwrap_or(u32::MAX)
            .clamp(1, self.budget_bytes);
        let permit = self
            .budget
            .clone()
            .acquire_many_owned(weight)
            .await
            .expect("the budget semaphore is never closed");
        pending.budget = Some(permit);
        self.events.send(pending).await.map_err(|_| Closed)
    }

    /// [`EventSender::send`] from a blocking thread (the format's).
    pub fn blocking_send(&self, pending: Pending) -> Result<(), Closed> {
        tokio::runtime::Handle::current().block_on(self.send(pending))
    }

    /// Bytes of the budget not taken right now.
    #[cfg(test)]
    fn available_bytes(&self) -> usize {
        self.budget.available_permits()
    }
}

impl EventReceiver {
    pub async fn recv(&mut self) -> Option<Pending> {
        self.events.recv().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::{Event, Origin, Ticket};
    use std::time::Duration;

    fn pending(ticket: &Arc<Ticket>, bytes: usize) -> Pending {
        Pending::new(
            Event {
                id: "e".into(),
                time: time::OffsetDateTime::UNIX_EPOCH,
                timestamp: "1970-01-01T00:00:00Z".into(),
                source: vec![b' '; bytes],
                used_fallback_time: false,
                dataset: crate::pipeline::Dataset::CloudTrail,
            },
            Arc::new(Origin::new("s3://b/k", serde_json::json!({}))),
            ticket.claim(),
        )
    }

    #[tokio::test]
    async fn big_events_wait_for_the_byte_budget_not_the_count() {
        // Room for 2048 events by count, but one 60 MB record already spends the 32 MiB
        // budget: the next must wait until the first is settled.
        let (tx, mut rx) = channel(2048, 32 << 20);
        let ticket = Ticket::new();
        tx.send(pending(&ticket, 60 << 20)).await.unwrap();
        assert_eq!(tx.available_bytes(), 0);
        let second = tokio::time::timeout(
            Duration::from_millis(100),
            tx.send(pending(&ticket, 60 << 20)),
        )
        .await;
        assert!(
            second.is_err(),
            "a second 60 MB record must not be buffered"
        );
        let first = rx.recv().await.unwrap();
        assert_eq!(tx.available_bytes(), 0, "received is not yet settled");
        first.settle(Ok(()));
        assert_eq!(tx.available_bytes(), 32 << 20);
        tx.send(pending(&ticket, 1000)).await.unwrap();
        assert_eq!(tx.available_bytes(), (32 << 20) - 1001);
    }

    #[tokio::test]
    async fn a_closed_sink_refuses_and_the_event_settles_as_dropped() {
        let (tx, rx) = channel(4, 1 << 20);
        drop(rx);
        let ticket = Ticket::new();
        assert_eq!(tx.send(pending(&ticket, 10)).await, Err(Closed));
        let verdict = ticket.settle().await;
        assert!(matches!(verdict, Err(crate::pipeline::Failure::Dropped)));
    }
}
