//! Stage: what events pass through between a format and the sink, and the sender that takes
//! them there.
//!
//! A [`Stage`] (detection) looks at each event on the sender's own thread, so it runs as
//! widely as the sources do, and may add events of the same payload (the alerts it raised),
//! which go to the sink right after it, each with a claim on the payload's ticket: the
//! payload settles only once they settled too. The runtime places the stages; a source only
//! sends.

use std::sync::Arc;

use super::channel::{self, Closed, EventReceiver, Inlet};
use super::event::Pending;

/// A channel to the sink of at most `count` events and `bytes` bytes of events not yet
/// settled, whose sender runs no stage yet.
pub fn channel(count: usize, bytes: usize) -> (EventSender, EventReceiver) {
    let (inlet, receiver) = channel::inlet(count, bytes);
    (
        EventSender {
            inlet,
            stages: Vec::new(),
        },
        receiver,
    )
}

/// A stage between the formats and the sink.
pub trait Stage: Send + Sync + std::fmt::Debug {
    /// The events to send alongside `pending` (made with [`Pending::alongside`]); none for
    /// most events. Records the source refused are not shown to stages.
    fn inspect(&self, pending: &Pending) -> Vec<Pending>;
}

/// Where a source sends its events: through the stages, into the sink's bounded channel.
#[derive(Debug, Clone)]
pub struct EventSender {
    inlet: Inlet,
    stages: Vec<Arc<dyn Stage>>,
}

impl EventSender {
    /// This sender, with every event it sends shown to `stage` first (after the stages
    /// already placed).
    pub fn through(mut self, stage: Arc<dyn Stage>) -> Self {
        self.stages.push(stage);
        self
    }

    /// Waits for room (count and bytes), then hands the event over, followed by what the
    /// stages added.
    pub async fn send(&self, pending: Pending) -> Result<(), Closed> {
        let added: Vec<Pending> = if pending.refusal.is_none() {
            self.stages
                .iter()
                .flat_map(|stage| stage.inspect(&pending))
                .collect()
        } else {
            Vec::new()
        };
        self.inlet.hand_over(pending).await?;
        for event in added {
            self.inlet.hand_over(event).await?;
        }
        Ok(())
    }

    /// [`EventSender::send`] from a blocking thread (the format's).
    pub fn blocking_send(&self, pending: Pending) -> Result<(), Closed> {
        tokio::runtime::Handle::current().block_on(self.send(pending))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::event::{Dataset, Event, Origin};
    use crate::pipeline::ticket::Ticket;

    #[derive(Debug)]
    struct Echo;

    impl Stage for Echo {
        fn inspect(&self, pending: &Pending) -> Vec<Pending> {
            let mut event = pending.event.clone();
            event.id.push_str("-echo");
            vec![pending.alongside(event)]
        }
    }

    fn event(id: &str) -> Event {
        Event {
            id: id.into(),
            time: time::OffsetDateTime::UNIX_EPOCH,
            timestamp: "1970-01-01T00:00:00Z".into(),
            source: b"{}".to_vec(),
            outline: Vec::new(),
            used_fallback_time: false,
            dataset: Dataset::new("test", None, None),
        }
    }

    #[tokio::test]
    async fn what_a_stage_adds_follows_its_event_under_the_same_ticket() {
        let (tx, mut rx) = channel(8, 1 << 20);
        let tx = tx.through(Arc::new(Echo));
        let ticket = Ticket::new();
        let origin = Arc::new(Origin::new("o", serde_json::json!({})));
        tx.send(Pending::new(event("a"), origin.clone(), ticket.claim()))
            .await
            .unwrap();
        tx.send(Pending::refused(
            event("b"),
            origin,
            ticket.claim(),
            "no JSON",
        ))
        .await
        .unwrap();
        let mut ids = Vec::new();
        for _ in 0..3 {
            let pending = rx.recv().await.unwrap();
            ids.push(pending.event.id.clone());
            pending.settle(Ok(()));
        }
        assert_eq!(
            ids,
            ["a", "a-echo", "b"],
            "refused records are not inspected"
        );
        ticket.settle().await.expect("every claim settled");
    }
}
