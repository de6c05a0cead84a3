//! Payload: the contract of a format that reads a whole payload holding many records (a
//! CloudTrail log object, a JSON-lines object), as a stream, emitting one event per record.

use std::io::{self, BufRead};

use time::OffsetDateTime;

use crate::pipeline::{Closed, Event};

/// What reading one payload produced.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    /// Events handed on (unreadable records not included).
    pub events: u64,
    /// Events placed by the payload's fallback time for lack of their own.
    pub fallback_time_events: u64,
    /// Records handed on as [`Item::Unreadable`].
    pub unreadable: u64,
}

/// What a payload is, besides its bytes.
#[derive(Debug, Clone, Copy)]
pub struct PayloadContext<'a> {
    /// A stable name of the payload (`s3://bucket/key`), for the `_id`s of records that
    /// have none of their own.
    pub name: &'a str,
    /// The time of records without a usable one of their own (an object's LastModified).
    pub fallback_time: Option<OffsetDateTime>,
}

/// What a payload format hands on.
#[derive(Debug)]
pub enum Item {
    Event(Event),
    /// A record the format could not make an event of, for the dead-letter index: `event`
    /// holds its bytes as they came, with a stable `_id`, placed at the fallback time.
    Unreadable {
        event: Event,
        /// 1-based line of the payload where the record starts.
        line: u64,
        reason: String,
    },
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
    /// Reads `input` to its end and hands each event (or unreadable record) to `emit`.
    fn read(
        &self,
        input: &mut dyn BufRead,
        context: &PayloadContext<'_>,
        emit: &mut dyn FnMut(Item) -> Result<(), Closed>,
    ) -> Result<Summary, FormatError>;
}
