//! Stage: what events pass through between a format and the sink, and the sender that takes
//! them there.
//!
//! A [`Stage`] (detection) looks at each event on the sender's own thread, so it runs as
//! widely as the sources do, and may add events of the same payload (the alerts it raised),
//! which go to the sink right after it, each with a claim on the payload's ticket: the
//! payload settles only once they settled too. A stage may also drop an event (drop rules):
//! it settles at once, as if written, and is not indexed. After every stage, a [`Shape`] may
//! rewrite each document into the schema it is stored in (Elastic Common Schema), so that the
//! stages see records as their producers wrote them. The runtime places the stages and the
//! shape; a source only sends.

use std::sync::Arc;
use std::time::SystemTime;

use super::channel::{self, Closed, EventReceiver, Inlet};
use super::event::{Event, Pending};

/// A channel to the sink of at most `count` events and `bytes` bytes of events not yet
/// settled, whose sender runs no stage yet.
pub fn channel(count: usize, bytes: usize) -> (EventSender, EventReceiver) {
    let (inlet, receiver) = channel::inlet(count, bytes);
    (
        EventSender {
            inlet,
            stages: Vec::new(),
            shape: None,
        },
        receiver,
    )
}

/// A stage between the formats and the sink.
pub trait Stage: Send + Sync + std::fmt::Debug {
    /// The events to send alongside `pending` (made with [`Pending::alongside`]); none for
    /// most events. Records the source refused are not shown to stages.
    fn inspect(&self, pending: &Pending) -> Vec<Pending>;

    /// Whether `pending` is not to be indexed (every stage has inspected it by then): it
    /// settles as written, and what the stages added to it still goes to the sink.
    fn drops(&self, _pending: &Pending) -> bool {
        false
    }
}

/// The last step before the sink: rewrites a document into the schema it is stored in.
pub trait Shape: Send + Sync + std::fmt::Debug {
    /// Rewrites `event` (whatever rewrites its `source` clears its `outline`); `Err` with the
    /// reason when its record cannot be rewritten, and the sink dead-letters it as it came.
    /// Events of datasets it does not know pass unchanged. `now` is when the event's parcel
    /// is shaped: the events of a parcel share it, so the clock is read once per parcel.
    fn shape(&self, event: &mut Event, now: SystemTime) -> Result<(), String>;
}

/// Where a source sends its events: through the stages and the shape, into the sink's
/// bounded channel.
#[derive(Debug, Clone)]
pub struct EventSender {
    inlet: Inlet,
    stages: Vec<Arc<dyn Stage>>,
    shape: Option<Arc<dyn Shape>>,
}

impl EventSender {
    /// This sender, with every event it sends shown to `stage` first (after the stages
    /// already placed).
    pub fn through(mut self, stage: Arc<dyn Stage>) -> Self {
        self.stages.push(stage);
        self
    }

    /// This sender, with every event it sends rewritten by `shape` after the stages saw it.
    pub fn shaped(mut self, shape: Arc<dyn Shape>) -> Self {
        self.shape = Some(shape);
        self
    }

    /// Waits for room, then hands the event over, followed by what the stages added.
    pub async fn send(&self, pending: Pending) -> Result<(), Closed> {
        self.send_all(vec![pending]).await
    }

    /// Waits for room, then hands the events over in their order, each followed by what the
    /// stages added to it. If the sink is gone, what was not handed over settles as dropped.
    pub async fn send_all(&self, events: Vec<Pending>) -> Result<(), Closed> {
        self.inlet.hand_over(self.inspected(events)).await
    }

    /// [`EventSender::send_all`] from a blocking thread (a format's).
    pub fn blocking_send_all(&self, events: Vec<Pending>) -> Result<(), Closed> {
        tokio::runtime::Handle::current().block_on(self.send_all(events))
    }

    /// An [`Outbox`] that gathers events for this sender on a blocking thread.
    pub fn outbox(&self) -> Outbox {
        Outbox {
            sender: self.clone(),
            events: Vec::with_capacity(Outbox::PARCEL_EVENTS),
            bytes: 0,
        }
    }

    /// `events`, each followed by what the stages add to it, then shaped.
    fn inspected(&self, events: Vec<Pending>) -> Vec<Pending> {
        if self.stages.is_empty() && self.shape.is_none() {
            return events;
        }
        let mut all = Vec::with_capacity(events.len());
        for pending in events {
            if pending.refusal.is_some() {
                all.push(pending);
                continue;
            }
            let added: Vec<Pending> = self
                .stages
                .iter()
                .flat_map(|stage| stage.inspect(&pending))
                .collect();
            if self.stages.iter().any(|stage| stage.drops(&pending)) {
                pending.settle(Ok(()));
            } else {
                all.push(pending);
            }
            all.extend(added);
        }
        if let Some(shape) = &self.shape {
            let now = SystemTime::now();
            for pending in all.iter_mut().filter(|p| p.refusal.is_none()) {
                if let Err(reason) = shape.shape(&mut pending.event, now) {
                    pending.refusal = Some(reason.into());
                }
            }
        }
        all
    }
}

/// Events gathered on a blocking thread (a format reading an object), handed over in
/// parcels: whenever [`Outbox::PARCEL_EVENTS`] events or [`Outbox::PARCEL_BYTES`] bytes are
/// gathered, and at [`Outbox::flush`], which the producer calls when it is done, whether it
/// succeeded or not. Events still gathered when the outbox is dropped settle as dropped.
///
/// The stages see each event when its parcel goes, so an alert waits at most for the rest of
/// its parcel to be read.
#[derive(Debug)]
pub struct Outbox {
    sender: EventSender,
    events: Vec<Pending>,
    bytes: usize,
}

impl Outbox {
    /// At most this many events per parcel.
    pub const PARCEL_EVENTS: usize = 256;
    /// A parcel goes once its events weigh this much.
    pub const PARCEL_BYTES: usize = 256 << 10;

    /// Gathers `pending`; hands the parcel over, waiting for room, once it is full.
    pub fn push(&mut self, pending: Pending) -> Result<(), Closed> {
        self.bytes += pending.weight();
        self.events.push(pending);
        if self.events.len() >= Self::PARCEL_EVENTS || self.bytes >= Self::PARCEL_BYTES {
            self.flush()
        } else {
            Ok(())
        }
    }

    /// Hands over what is gathered, waiting for room.
    pub fn flush(&mut self) -> Result<(), Closed> {
        if self.events.is_empty() {
            return Ok(());
        }
        self.bytes = 0;
        let events = std::mem::replace(&mut self.events, Vec::with_capacity(Self::PARCEL_EVENTS));
        self.sender.blocking_send_all(events)
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
            source: bytes::Bytes::from_static(b"{}"),
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
        let mut parcels = Vec::new();
        for _ in 0..2 {
            let parcel = rx.recv().await.unwrap();
            let ids: Vec<String> = parcel.events.iter().map(|p| p.event.id.clone()).collect();
            parcels.push(ids);
            parcel.events.into_iter().for_each(|p| p.settle(Ok(())));
        }
        assert_eq!(
            parcels,
            [vec!["a", "a-echo"], vec!["b"]],
            "what a stage adds goes in its event's parcel; refused records are not inspected"
        );
        ticket.settle().await.expect("every claim settled");
    }

    #[derive(Debug)]
    struct DropB;

    impl Stage for DropB {
        fn inspect(&self, _: &Pending) -> Vec<Pending> {
            Vec::new()
        }
        fn drops(&self, pending: &Pending) -> bool {
            pending.event.id.starts_with('b')
        }
    }

    #[tokio::test]
    async fn a_dropped_event_settles_at_once_and_what_was_added_still_goes() {
        let (tx, mut rx) = channel(8, 1 << 20);
        let tx = tx.through(Arc::new(Echo)).through(Arc::new(DropB));
        let ticket = Ticket::new();
        let origin = Arc::new(Origin::new("o", serde_json::json!({})));
        let events = ["a", "b"]
            .map(|id| Pending::new(event(id), origin.clone(), ticket.claim()))
            .into();
        tx.send_all(events).await.unwrap();
        let parcel = rx.recv().await.unwrap();
        let ids: Vec<String> = parcel.events.iter().map(|p| p.event.id.clone()).collect();
        assert_eq!(ids, ["a", "a-echo", "b-echo"], "b dropped, its echo kept");
        parcel.events.into_iter().for_each(|p| p.settle(Ok(())));
        ticket
            .settle()
            .await
            .expect("every claim settled, the dropped one as written");
    }

    #[tokio::test]
    async fn an_outbox_sends_full_parcels_then_the_rest_when_flushed() {
        let (tx, mut rx) = channel(64, 64 << 20);
        let ticket = Ticket::new();
        let origin = Arc::new(Origin::new("o", serde_json::json!({})));
        let claims = ticket.clone();
        let producer = tokio::task::spawn_blocking(move || {
            let mut outbox = tx.outbox();
            for n in 0..Outbox::PARCEL_EVENTS + 10 {
                outbox.push(Pending::new(
                    event(&n.to_string()),
                    origin.clone(),
                    claims.claim(),
                ))?;
            }
            // One event of more than the parcel's bytes goes at once, with those before it.
            let mut heavy = event("heavy");
            heavy.source = vec![b' '; Outbox::PARCEL_BYTES].into();
            outbox.push(Pending::new(heavy, origin.clone(), claims.claim()))?;
            outbox.push(Pending::new(event("last"), origin, claims.claim()))?;
            outbox.flush()
        });
        let mut sizes = Vec::new();
        let mut ids = Vec::new();
        while let Some(parcel) = rx.recv().await {
            sizes.push(parcel.events.len());
            for pending in parcel.events {
                ids.push(pending.event.id.clone());
                pending.settle(Ok(()));
            }
        }
        producer.await.unwrap().expect("the sink took every parcel");
        assert_eq!(sizes, [Outbox::PARCEL_EVENTS, 11, 1]);
        assert_eq!(ids.len(), Outbox::PARCEL_EVENTS + 12);
        assert_eq!((&ids[0][..], &ids[ids.len() - 2][..]), ("0", "heavy"));
        ticket.settle().await.expect("every claim settled");
    }

    #[tokio::test]
    async fn what_an_outbox_does_not_flush_settles_as_dropped() {
        let (tx, _rx) = channel(64, 64 << 20);
        let ticket = Ticket::new();
        let claims = ticket.clone();
        tokio::task::spawn_blocking(move || {
            let origin = Arc::new(Origin::new("o", serde_json::json!({})));
            let mut outbox = tx.outbox();
            outbox.push(Pending::new(event("a"), origin, claims.claim()))
        })
        .await
        .unwrap()
        .unwrap();
        let verdict = ticket.settle().await;
        assert!(matches!(verdict, Err(crate::pipeline::Failure::Dropped)));
    }
}
