//! Failure: the one type that says why a payload could not be settled, and whether trying
//! again can help.
//!
//! Each variant carries the typed error of the stage where it was born, and that stage's
//! classification decides [`Failure::is_transient`]: nothing downstream re-derives it from
//! text. Transient: the cause may pass (throttling, 5xx, timeouts, a broken connection, a
//! dropped event, shutdown). Permanent: the same bytes will fail the same way (a body that is
//! no notification, a corrupt or malformed object, a document the cluster refuses for good
//! while dead-lettering cannot take it). The source's acknowledgement branches on nothing
//! else.

use std::sync::Arc;

use super::Origin;
use crate::sink::elasticsearch::bulk::BulkError;
use crate::sink::elasticsearch::dead_letter::Rejection;
use crate::source::s3::FetchError;
use crate::source::sqs::notification::NotificationError;

#[derive(Debug, Clone, thiserror::Error)]
pub enum Failure {
    /// The SQS body is no notification we can read.
    #[error("notification not understood: {error}; body starts {body_start:?}")]
    Notification {
        error: NotificationError,
        body_start: String,
    },
    /// An announced object could not be read to the end.
    #[error("s3://{bucket}/{key}: {error}")]
    Object {
        bucket: String,
        key: String,
        error: Arc<FetchError>,
    },
    /// The cluster refused a document and it was not dead-lettered.
    #[error("document {id} of {origin} rejected by {index}: {rejection} ({why_kept})")]
    Rejected {
        index: String,
        id: String,
        origin: Arc<Origin>,
        rejection: Box<Rejection>,
        why_kept: &'static str,
    },
    /// The dead-letter index refused the entry of a refused document.
    #[error("dead-letter entry {id} of {origin} rejected: {rejection}")]
    DeadLetterRejected {
        id: String,
        origin: Arc<Origin>,
        rejection: Rejection,
    },
    /// Items answered 429/5xx until `--bulk-max-attempts` ran out.
    #[error("bulk retries exhausted: HTTP {status} {reason}")]
    RetriesExhausted { status: u16, reason: String },
    /// A whole bulk request failed in a way that retrying the request cannot fix (a response
    /// that does not match the request, an unexpected status).
    #[error("{0}")]
    Bulk(Arc<BulkError>),
    /// The event was dropped before the sink settled it (the sink stopped or panicked, or
    /// the pipeline shut down before it was handed over).
    #[error("the event was dropped before it was settled")]
    Dropped,
}

impl Failure {
    pub fn is_transient(&self) -> bool {
        match self {
            Failure::Notification { .. } => false,
            Failure::Object { error, .. } => error.is_transient(),
            Failure::Rejected { rejection, .. } => !rejection.is_about_the_document(),
            Failure::DeadLetterRejected { .. } => false,
            Failure::RetriesExhausted { .. } | Failure::Bulk(_) | Failure::Dropped => true,
        }
    }
}
