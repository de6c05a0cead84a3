//! Formats: a payload's bytes -> [`Event`]s.
//!
//! A format reads a decompressed byte stream to the end and emits one event per record, as
//! the bytes arrive (memory holds one record, not the payload). It decides each event's
//! `_id`, time and `@timestamp` and keeps the record's bytes as they were written. It knows
//! nothing of where the bytes came from or where the events go.
//!
//! Failure policy: bytes that are not the format (broken structure, invalid UTF-8) are a
//! permanent [`FormatError`]; events emitted before the error stay emitted (they are indexed,
//! and answered 409 when the payload comes back). Read errors are passed through for the
//! source to classify.

pub mod cloudtrail;

use std::io::{self, BufRead};

use time::OffsetDateTime;

use crate::pipeline::{Closed, Event};

/// What reading one payload produced.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    pub events: u64,
    /// Events placed by the payload's fallback time for lack of their own.
    pub fallback_time_events: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    /// The input could not be read; the source knows whether that is the network or its
    /// own decoding.
    #[error("reading failed: {0}")]
    Read(io::Error),
    #[error("{0}")]
    Malformed(String),
    #[error("record {record} is unusable: {reason}")]
    Record { record: u64, reason: String },
    #[error(transparent)]
    Closed(#[from] Closed),
}

/// A way of reading events out of bytes.
pub trait Format: Send + Sync + std::fmt::Debug {
    /// Reads `input` to its end and hands each event to `emit`. `fallback_time` places
    /// events that carry no usable time of their own.
    fn read(
        &self,
        input: &mut dyn BufRead,
        fallback_time: Option<OffsetDateTime>,
        emit: &mut dyn FnMut(Event) -> Result<(), Closed>,
    ) -> Result<Summary, FormatError>;
}
