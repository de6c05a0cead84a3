//! Ticket: the outstanding work of one payload, and its verdict once all of it settled.
//!
//! The source creates one [`Ticket`] per payload and holds it while the format reads the
//! payload; every event handed to the sink takes a [`Claim`] first. Each claim settles exactly
//! once: by [`Claim::settle`], or, if it is dropped unsettled (the sink died, a task panicked,
//! shutdown aborted it), as [`Failure::Dropped`], which is transient. [`Ticket::settle`]
//! releases the source's own hold and waits for every claim; its [`Verdict`] is `Ok` only if
//! nothing failed.
//!
//! When several things fail, the verdict keeps the first failure, unless a later one is
//! permanent and the first was not: a payload that will fail again for good should be treated
//! as such (released for the redrive policy) even if something transient failed too.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

use super::Failure;

/// `Ok` when every event of the payload was indexed, already there, or dead-lettered.
pub type Verdict = Result<(), Failure>;

#[derive(Debug)]
pub struct Ticket {
    /// Unsettled claims, plus one for the source's own hold.
    outstanding: AtomicUsize,
    failure: Mutex<Option<Failure>>,
    settled: Notify,
}

impl Ticket {
    pub fn new() -> Arc<Self> {
        Arc::new(Ticket {
            outstanding: AtomicUsize::new(1),
            failure: Mutex::new(None),
            settled: Notify::new(),
        })
    }

    /// One more event to wait for; taken before the event is handed to the sink.
    pub fn claim(self: &Arc<Self>) -> Claim {
        self.outstanding.fetch_add(1, Ordering::AcqRel);
        Claim {
            ticket: Some(self.clone()),
        }
    }

    /// Records a failure of the payload itself (an object that could not be read).
    pub fn fail(&self, new: Failure) {
        let mut failure = self.failure.lock().expect("ticket lock is never poisoned");
        match failure.as_ref() {
            None => *failure = Some(new),
            Some(first) if first.is_transient() && !new.is_transient() => *failure = Some(new),
            Some(_) => {}
        }
    }

    fn release(&self) {
        if self.outstanding.fetch_sub(1, Ordering::AcqRel) == 1 {
            // `notify_one` stores a permit, so the waiter cannot miss it.
            self.settled.notify_one();
        }
    }

    /// Releases the source's hold and waits until every claim settled.
    pub async fn settle(&self) -> Verdict {
        if self.outstanding.fetch_sub(1, Ordering::AcqRel) != 1 {
            self.settled.notified().await;
        }
        match self
            .failure
            .lock()
            .expect("ticket lock is never poisoned")
            .take()
        {
            None => Ok(()),
            Some(failure) => Err(failure),
        }
    }
}

/// One event's share of a ticket; settles exactly once (see the module documentation).
#[derive(Debug)]
pub struct Claim {
    ticket: Option<Arc<Ticket>>,
}

impl Claim {
    /// Another claim on the same ticket (an alert the event raised, settled on its own).
    pub fn sibling(&self) -> Claim {
        self.ticket
            .as_ref()
            .expect("an unsettled claim holds its ticket")
            .claim()
    }

    pub fn settle(mut self, outcome: Verdict) {
        let ticket = self.ticket.take().expect("a claim settles once");
        if let Err(failure) = outcome {
            ticket.fail(failure);
        }
        ticket.release();
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        if let Some(ticket) = self.ticket.take() {
            ticket.fail(Failure::Dropped);
            ticket.release();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[derive(Debug, thiserror::Error)]
    #[error("{what}")]
    struct Stage {
        what: &'static str,
        transient: bool,
    }

    impl crate::pipeline::StageError for Stage {
        fn is_transient(&self) -> bool {
            self.transient
        }
    }

    fn failure(what: &'static str, transient: bool) -> Failure {
        Failure::new(Stage { what, transient })
    }

    #[tokio::test]
    async fn settles_after_every_claim() {
        let ticket = Ticket::new();
        let a = ticket.claim();
        let b = ticket.claim();
        let waiter = {
            let ticket = ticket.clone();
            tokio::spawn(async move { ticket.settle().await })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiter.is_finished());
        a.settle(Ok(()));
        assert!(!waiter.is_finished());
        b.settle(Ok(()));
        assert!(waiter.await.unwrap().is_ok());
    }

    #[tokio::test]
    async fn settles_immediately_without_claims() {
        assert!(Ticket::new().settle().await.is_ok());
    }

    #[tokio::test]
    async fn a_dropped_claim_settles_as_a_transient_failure() {
        let ticket = Ticket::new();
        let claim = ticket.claim();
        std::thread::spawn(move || {
            let _held = claim;
            panic!("a sink task dies holding the claim");
        })
        .join()
        .expect_err("the thread panicked");
        let verdict = ticket.settle().await;
        assert!(matches!(verdict, Err(Failure::Dropped)), "{verdict:?}");
        assert!(verdict.unwrap_err().is_transient());
    }

    #[tokio::test]
    async fn a_permanent_failure_outranks_an_earlier_transient_one() {
        let ticket = Ticket::new();
        let a = ticket.claim();
        let b = ticket.claim();
        a.settle(Err(failure("retries exhausted", true)));
        ticket.fail(failure("dead-letter entry rejected", false));
        b.settle(Err(Failure::Dropped));
        let verdict = ticket.settle().await.unwrap_err();
        assert!(!verdict.is_transient(), "{verdict}");
        assert_eq!(verdict.to_string(), "dead-letter entry rejected");
    }
}
