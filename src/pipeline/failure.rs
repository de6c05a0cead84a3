//! Failure: why a payload could not be settled, and whether trying again can help.
//!
//! Every stage reports its own error type, which says itself whether it may pass
//! ([`StageError::is_transient`]); the pipeline carries it as it is, so nothing downstream
//! re-derives the classification from text and a new stage or source needs no new variant
//! here. Transient: the cause may pass (throttling, 5xx, timeouts, a broken connection, a
//! dropped event, shutdown). Permanent: the same bytes will fail the same way (a body that is
//! no notification, a corrupt or malformed payload, a document the cluster refuses for good
//! while dead-lettering cannot take it). The source's acknowledgement branches on nothing
//! else.

use std::fmt;
use std::sync::Arc;

/// The error of one stage, as the pipeline carries it.
pub trait StageError: std::error::Error + Send + Sync + 'static {
    /// Whether the same work may succeed later (see the module documentation).
    fn is_transient(&self) -> bool;
}

/// Why a payload (or one of its events) did not settle.
#[derive(Debug, Clone)]
pub enum Failure {
    /// A stage's own error, with its context (message, object, index, ...).
    Stage(Arc<dyn StageError>),
    /// The event was dropped before the sink settled it (the sink stopped or panicked, or
    /// the pipeline shut down before it was handed over).
    Dropped,
}

impl Failure {
    pub fn new(error: impl StageError) -> Self {
        Failure::Stage(Arc::new(error))
    }

    pub fn is_transient(&self) -> bool {
        match self {
            Failure::Stage(error) => error.is_transient(),
            Failure::Dropped => true,
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Stage(error) => error.fmt(f),
            Failure::Dropped => f.write_str("the event was dropped before it was settled"),
        }
    }
}

impl std::error::Error for Failure {}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("stage said {0}")]
    struct Said(bool);

    impl StageError for Said {
        fn is_transient(&self) -> bool {
            self.0
        }
    }

    #[test]
    fn a_failure_is_as_transient_as_its_stage_says() {
        assert!(Failure::new(Said(true)).is_transient());
        assert!(!Failure::new(Said(false)).is_transient());
        assert!(Failure::Dropped.is_transient());
        assert_eq!(Failure::new(Said(false)).to_string(), "stage said false");
    }
}
