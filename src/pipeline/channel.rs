//! Channel: the bounded hand-over from a format (on a blocking thread or a task) to the sink.
//!
//! Events travel in parcels: the events a sender had at hand (a Kafka batch, a webhook body,
//! the records an [`super::Outbox`] gathered from an object), so that a busy source pays for
//! one hand-over, one wake-up of the sink and one take from the budget per parcel rather than
//! per event.
//!
//! Bounded twice: by parcels, and by bytes. A parcel takes its events' weight (their bytes)
//! from a shared budget before it is sent, and holds it as a [`Budget`] that the sink keeps
//! until the events it covers are settled, so everything between the format and the settled
//! outcome (the channel, the batch being filled, requests in flight, items waiting for a
//! retry) stays within the budget. A parcel heavier than the whole budget goes in pieces; one
//! event heavier than the whole budget takes the whole budget and goes alone. A sender that
//! finds the budget spent waits, which pushes back on the source.

use std::sync::Arc;

use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};

use super::event::Pending;

/// The sink is gone; the events were not handed over (they settle as dropped).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the sink is closed")]
pub struct Closed;

/// The sending end, as [`super::EventSender`] uses it once the stages have seen the events.
#[derive(Debug, Clone)]
pub(super) struct Inlet {
    parcels: mpsc::Sender<Parcel>,
    budget: Arc<Semaphore>,
    budget_bytes: u32,
}

#[derive(Debug)]
pub struct EventReceiver {
    parcels: mpsc::Receiver<Parcel>,
}

/// Events handed over together, with the share of the byte budget they hold: the sum of
/// their [`Pending::weight`]s.
#[derive(Debug)]
pub struct Parcel {
    pub events: Vec<Pending>,
    pub budget: Budget,
}

/// A share of the byte budget, given back when it is dropped. The sink gathers the shares of
/// the parcels it takes into one and splits off what each request carries
/// ([`Budget::split`]), so that the bytes come back when that request's events are settled.
#[derive(Debug)]
pub struct Budget(Option<OwnedSemaphorePermit>);

impl Budget {
    /// A share of nothing, to gather shares into.
    pub fn empty() -> Self {
        Budget(None)
    }

    /// Adds `other`'s share to this one.
    pub fn merge(&mut self, other: Budget) {
        match (&mut self.0, other.0) {
            (Some(mine), Some(theirs)) => mine.merge(theirs),
            (mine @ None, theirs) => *mine = theirs,
            (Some(_), None) => {}
        }
    }

    /// Takes `weight` bytes of this share (all of it, if it holds less) into a share of their
    /// own.
    pub fn split(&mut self, weight: usize) -> Budget {
        let Some(mine) = &mut self.0 else {
            return Budget(None);
        };
        if weight >= mine.num_permits() {
            return Budget(self.0.take());
        }
        Budget(mine.split(weight))
    }

    /// The bytes this share holds.
    #[cfg(test)]
    fn bytes(&self) -> usize {
        self.0.as_ref().map_or(0, OwnedSemaphorePermit::num_permits)
    }
}

/// A channel of at most `parcels` parcels and `bytes` bytes of events not yet settled.
pub(super) fn inlet(parcels: usize, bytes: usize) -> (Inlet, EventReceiver) {
    let budget_bytes = u32::try_from(bytes.min(Semaphore::MAX_PERMITS)).unwrap_or(u32::MAX);
    let (tx, rx) = mpsc::channel(parcels);
    let inlet = Inlet {
        parcels: tx,
        budget: Arc::new(Semaphore::new(budget_bytes as usize)),
        budget_bytes,
    };
    (inlet, EventReceiver { parcels: rx })
}

impl Inlet {
    /// Waits for room (a parcel's place and its bytes), then hands the events over, in as
    /// many parcels as the budget needs.
    pub(super) async fn hand_over(&self, mut events: Vec<Pending>) -> Result<(), Closed> {
        let budget = self.budget_bytes as usize;
        while !events.is_empty() {
            let mut weight = 0;
            let mut count = 0;
            for pending in &mut events {
                let own = pending.weight().clamp(1, budget);
                if count > 0 && weight + own > budget {
                    break;
                }
                pending.budgeted = own as u32;
                weight += own;
                count += 1;
            }
            let rest = if count < events.len() {
                events.split_off(count)
            } else {
                Vec::new()
            };
            let permit = self
                .budget
                .clone()
                .acquire_many_owned(weight as u32)
                .await
                .expect("the budget semaphore is never closed");
            let parcel = Parcel {
                events,
                budget: Budget(Some(permit)),
            };
            self.parcels.send(parcel).await.map_err(|_| Closed)?;
            events = rest;
        }
        Ok(())
    }

    /// Bytes of the budget not taken right now.
    #[cfg(test)]
    fn available_bytes(&self) -> usize {
        self.budget.available_permits()
    }
}

impl EventReceiver {
    /// The next parcel; `None` once every sender is gone and every parcel taken.
    pub async fn recv(&mut self) -> Option<Parcel> {
        self.parcels.recv().await
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
                source: vec![b' '; bytes].into(),
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
        // Room for 64 parcels, but one 60 MB record already spends the 32 MiB budget: the
        // next must wait until the sink gives the first one's share back.
        let (tx, mut rx) = inlet(64, 32 << 20);
        let ticket = Ticket::new();
        tx.hand_over(vec![pending(&ticket, 60 << 20)])
            .await
            .unwrap();
        assert_eq!(tx.available_bytes(), 0);
        let second = tokio::time::timeout(
            Duration::from_millis(100),
            tx.hand_over(vec![pending(&ticket, 60 << 20)]),
        )
        .await;
        assert!(
            second.is_err(),
            "a second 60 MB record must not be buffered"
        );
        let Parcel { events, budget } = rx.recv().await.unwrap();
        assert_eq!(budget.bytes(), 32 << 20);
        assert_eq!(tx.available_bytes(), 0, "received is not yet settled");
        for pending in events {
            pending.settle(Ok(()));
        }
        assert_eq!(tx.available_bytes(), 0, "the sink still holds the share");
        drop(budget);
        assert_eq!(tx.available_bytes(), 32 << 20);
        tx.hand_over(vec![pending(&ticket, 1000)]).await.unwrap();
        assert_eq!(tx.available_bytes(), (32 << 20) - 1001);
    }

    #[tokio::test]
    async fn a_parcel_heavier_than_the_budget_goes_in_pieces_that_fit() {
        // Events of 300 bytes (299 of source, 1 of id) against a budget of 1000.
        let (tx, mut rx) = inlet(64, 1000);
        let ticket = Ticket::new();
        let events = (0..5).map(|_| pending(&ticket, 299)).collect();
        let sending = tokio::spawn(async move { tx.hand_over(events).await });
        let first = rx.recv().await.unwrap();
        assert_eq!((first.events.len(), first.budget.bytes()), (3, 900));
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!sending.is_finished(), "the rest waits for the first share");
        drop(first);
        let second = rx.recv().await.unwrap();
        assert_eq!((second.events.len(), second.budget.bytes()), (2, 600));
        sending.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn shares_merge_and_split_by_bytes() {
        let (tx, mut rx) = inlet(64, 10_000);
        let ticket = Ticket::new();
        tx.hand_over(vec![pending(&ticket, 999)]).await.unwrap();
        tx.hand_over(vec![pending(&ticket, 1999), pending(&ticket, 999)])
            .await
            .unwrap();
        let mut held = Budget::empty();
        for _ in 0..2 {
            held.merge(rx.recv().await.unwrap().budget);
        }
        assert_eq!((held.bytes(), tx.available_bytes()), (4000, 6000));
        let request = held.split(2500);
        assert_eq!((request.bytes(), held.bytes()), (2500, 1500));
        drop(request);
        assert_eq!(tx.available_bytes(), 8500);
        let rest = held.split(5000);
        assert_eq!((rest.bytes(), held.bytes()), (1500, 0));
        assert_eq!(
            held.split(10).bytes(),
            0,
            "an empty share splits into nothing"
        );
        drop(rest);
        assert_eq!(tx.available_bytes(), 10_000);
    }

    #[tokio::test]
    async fn a_closed_sink_refuses_and_the_events_settle_as_dropped() {
        let (tx, rx) = inlet(4, 1 << 20);
        drop(rx);
        let ticket = Ticket::new();
        let events = vec![pending(&ticket, 10), pending(&ticket, 10)];
        assert_eq!(tx.hand_over(events).await, Err(Closed));
        let verdict = ticket.settle().await;
        assert!(matches!(verdict, Err(Failure::Dropped)));
    }
}
