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

use super::event::Pending;

/// The sink is gone; the event was not handed over (it settles as dropped).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the sink is closed")]
pub struct Closed;

/// The sending end, as [`super::EventSender`] uses it once the stages have seen the event.
#[derive(Debug, Clone)]
pub(super) struct Inlet {
    events: mpsc::Sender<Pending>,
    budget: Arc<Semaphore>,
    budget_bytes: u32,
}

#[derive(Debug)]
pub struct EventReceiver {
    events: mpsc::Receiver<Pending>,
}

/// A channel of at most `count` events and `bytes` bytes of events not yet settled.
pub(super) fn inlet(count: usize, bytes: usize) -> (Inlet, EventReceiver) {
    let budget_bytes = u32::try_from(bytes.min(Semaphore::MAX_PERMITS)).unwrap_or(u32::MAX);
    let (tx, rx) = mpsc::channel(count);
    let inlet = Inlet {
        events: tx,
        budget: Arc::new(Semaphore::new(budget_bytes as usize)),
        budget_bytes,
    };
    (inlet, EventReceiver { events: rx })
}

impl Inlet {
    /// Waits for room (count and bytes), then hands the event over.
    pub(super) async fn hand_over(&self, mut pending: Pending) -> Result<(), Closed> {
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
    use crate::pipeline::event::{Dataset, Event, Origin};
    use crate::pipeline::failure::Failure;
    use crate::pipeline::ticket::Ticket;
    use std::time::Duration;

    fn pending(ticket: &Arc<Ticket>, bytes: usize) -> Pending {
        Pending::new(
            Event {
                id: "e".into(),
                time: time::OffsetDateTime::UNIX_EPOCH,
                timestamp: "1970-01-01T00:00:00Z".into(),
                source: vec![b' '; bytes],
                outline: Vec::new(),
                used_fallback_time: false,
                dataset: Dataset::new("test", None, None),
            },
            Arc::new(Origin::new("s3://b/k", serde_json::json!({}))),
            ticket.claim(),
        )
    }

    #[tokio::test]
    async fn big_events_wait_for_the_byte_budget_not_the_count() {
        // Room for 2048 events by count, but one 60 MB record already spends the 32 MiB
        // budget: the next must wait until the first is settled.
        let (tx, mut rx) = inlet(2048, 32 << 20);
        let ticket = Ticket::new();
        tx.hand_over(pending(&ticket, 60 << 20)).await.unwrap();
        assert_eq!(tx.available_bytes(), 0);
        let second = tokio::time::timeout(
            Duration::from_millis(100),
            tx.hand_over(pending(&ticket, 60 << 20)),
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
        tx.hand_over(pending(&ticket, 1000)).await.unwrap();
        assert_eq!(tx.available_bytes(), (32 << 20) - 1001);
    }

    #[tokio::test]
    async fn a_closed_sink_refuses_and_the_event_settles_as_dropped() {
        let (tx, rx) = inlet(4, 1 << 20);
        drop(rx);
        let ticket = Ticket::new();
        assert_eq!(tx.hand_over(pending(&ticket, 10)).await, Err(Closed));
        let verdict = ticket.settle().await;
        assert!(matches!(verdict, Err(Failure::Dropped)));
    }
}
