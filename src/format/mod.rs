//! Formats: a payload's bytes -> [`Event`]s.
//!
//! Two shapes: a [`Format`] reads a whole payload that holds many records (a CloudTrail log
//! object, a JSON-lines object; [`object`] tells them apart); a [`RecordFormat`] turns one
//! record into one event (a Kafka record, one line of a JSON-lines object). Each format also declares the mappings of its indices
//! ([`mapping`]), and shares the byte-level document helpers of [`document`].
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

pub mod cef;
pub mod cloudtrail;
pub mod confluent;
pub mod document;
pub mod json;
pub mod json_lines;
pub mod konnect;
pub mod mapping;
pub mod object;

use std::io::{self, BufRead};

use time::OffsetDateTime;

pub use document::FreeForm;

use crate::pipeline::{Closed, Dataset, Event};

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

/// What a record-at-a-time source knows of a record besides its bytes.
#[derive(Debug, Clone, Copy)]
pub struct RecordContext<'a> {
    /// A stable name of the record's position, for formats whose `_id` falls back to it
    /// (Kafka: `<topic>-<partition>-<offset>`).
    pub position: &'a str,
    /// The time of a record without a usable one of its own (Kafka: the record timestamp).
    pub fallback_time: Option<OffsetDateTime>,
}

/// Why one record cannot become an event; always permanent (the same bytes fail the same
/// way), so the source dead-letters the record with this reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error("the record is not a JSON object: {0}")]
    NotJson(String),
    #[error("the record has no usable time of its own and no fallback time is known")]
    NoTime,
}

/// A way of turning one record into one event.
pub trait RecordFormat: Send + Sync + std::fmt::Debug {
    fn event(&self, record: &[u8], context: &RecordContext<'_>) -> Result<Event, RecordError>;

    /// The mappings of the indices this format's events go to.
    fn mappings(&self) -> mapping::Mappings;

    /// The dataset of this format's events.
    fn dataset(&self) -> Dataset;
}

/// Why `record` is not one JSON object, in a few words.
pub(crate) fn not_json(record: &[u8]) -> RecordError {
    let reason = match serde_json::from_slice::<serde::de::IgnoredAny>(record) {
        Err(err) => err.to_string(),
        Ok(_) => "a JSON value that is not an object".to_string(),
    };
    RecordError::NotJson(reason)
}
