//! When to stop, shared by the runtime and the source: stopping is asked for (a signal, or
//! the sink stopped), then the source has the grace period to settle what is in flight,
//! then it gives up on the rest (which comes back: nothing unsettled was acknowledged).

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// One run's stop: cheap to clone, every clone sees the same state.
#[derive(Debug, Clone)]
pub struct Shutdown {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    grace: Duration,
    /// Cancelled when stopping is asked for.
    stop: CancellationToken,
    /// Cancelled when the grace period is over (or at once when the sink stopped).
    give_up: CancellationToken,
    /// When the grace period ends; set once, by the first request.
    deadline: OnceLock<Instant>,
}

impl Shutdown {
    pub fn new(grace: Duration) -> Self {
        Shutdown {
            inner: Arc::new(Inner {
                grace,
                stop: CancellationToken::new(),
                give_up: CancellationToken::new(),
                deadline: OnceLock::new(),
            }),
        }
    }

    /// Asks the source to stop; what it has in flight gets the grace period (from the first
    /// request; later ones change nothing).
    pub fn request(&self) {
        let deadline = Instant::now() + self.inner.grace;
        if self.inner.deadline.set(deadline).is_ok() {
            let give_up = self.inner.give_up.clone();
            tokio::spawn(async move {
                tokio::time::sleep_until(deadline).await;
                give_up.cancel();
            });
        }
        self.inner.stop.cancel();
    }

    /// Stops now, with no grace period: nothing in flight can settle any more.
    pub fn halt(&self) {
        let _ = self.inner.deadline.set(Instant::now());
        self.inner.stop.cancel();
        self.inner.give_up.cancel();
    }

    /// Whether stopping was asked for.
    pub fn is_requested(&self) -> bool {
        self.inner.stop.is_cancelled()
    }

    /// Resolves when stopping is asked for.
    pub async fn requested(&self) {
        self.inner.stop.cancelled().await;
    }

    /// A token cancelled when stopping is asked for (for a task to select on, or to derive
    /// a child token from).
    pub fn stop_token(&self) -> &CancellationToken {
        &self.inner.stop
    }

    /// A token cancelled when the grace period is over: stop waiting for what is in flight.
    pub fn give_up_token(&self) -> &CancellationToken {
        &self.inner.give_up
    }

    /// The grace period given on a request.
    pub fn grace(&self) -> Duration {
        self.inner.grace
    }

    /// When the grace period ends (`None` while nobody asked to stop).
    pub fn deadline(&self) -> Option<Instant> {
        self.inner.deadline.get().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_grace_period_runs_from_the_first_request() {
        let shutdown = Shutdown::new(Duration::from_millis(200));
        assert!(!shutdown.is_requested());
        assert_eq!(shutdown.deadline(), None);
        shutdown.request();
        let deadline = shutdown.deadline().expect("set by the request");
        tokio::time::sleep(Duration::from_millis(50)).await;
        shutdown.request();
        assert_eq!(
            shutdown.deadline(),
            Some(deadline),
            "a later request changes nothing"
        );
        assert!(shutdown.is_requested());
        assert!(!shutdown.give_up_token().is_cancelled());
        shutdown.give_up_token().cancelled().await;
        assert!(Instant::now() >= deadline);
    }

    #[tokio::test]
    async fn a_halt_gives_up_at_once() {
        let shutdown = Shutdown::new(Duration::from_secs(60));
        shutdown.halt();
        assert!(shutdown.is_requested());
        assert!(shutdown.give_up_token().is_cancelled());
    }
}
