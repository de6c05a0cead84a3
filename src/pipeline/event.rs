//! Event: what a format makes of a payload's bytes, and what the sink indexes.
//!
//! An [`Event`] is one JSON document ready to be indexed as it is: its `source` bytes are the
//! record as the producer wrote it, with `@timestamp` spliced in (and whatever the format had
//! to rewrite so that the index template accepts it), never re-serialised. The sink names the
//! index from the event's `time` (`<prefix>-YYYY.MM.DD` in UTC) and writes it with `_id` =
//! `id`, so redelivering a payload never makes a duplicate.

use std::sync::Arc;

use time::OffsetDateTime;

use super::ticket::Claim;

/// One document for the search cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// `_id`: stable for the same event, however often it is delivered.
    pub id: String,
    /// The instant that places the event in a daily index (its own time, or a fallback).
    pub time: OffsetDateTime,
    /// `@timestamp` as written in `source`.
    pub timestamp: String,
    /// The document, on one line (no raw newlines), without a trailing newline. Shared bytes:
    /// a format may write many documents into one buffer, each a slice of it, and a copy of
    /// an event shares its bytes.
    pub source: bytes::Bytes,
    /// Where the top-level `:` and `,` of `source` are, when its format found them as it
    /// read the record (empty when not known); detection reads top-level fields from them
    /// without scanning `source` again. Whatever rewrites `source` clears it.
    pub outline: Vec<u32>,
    /// `time` is not the event's own but the payload's fallback (an object's LastModified).
    pub used_fallback_time: bool,
    /// The family of indices (prefix and template) the event belongs to.
    pub dataset: Dataset,
}

/// A family of daily indices with its own prefix and template: what a format's events are.
/// Each format declares its own (a constant beside it); a source that reads one format sends
/// every event to `--index-prefix`, and the S3 sources, which read CloudTrail logs and JSON
/// lines side by side, keep each dataset apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Dataset {
    /// Its name in logs, metrics and alerts (`cloudtrail`, `confluent`, ...).
    pub name: &'static str,
    /// The product and service whose logs these are, as rule sets name a log source
    /// (`aws`/`cloudtrail`); `None` for records of any origin.
    pub product: Option<&'static str>,
    pub service: Option<&'static str>,
}

impl Dataset {
    pub const fn new(
        name: &'static str,
        product: Option<&'static str>,
        service: Option<&'static str>,
    ) -> Self {
        Dataset {
            name,
            product,
            service,
        }
    }
}

impl std::fmt::Display for Dataset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name)
    }
}

/// `t` in UTC as RFC 3339, the way `@timestamp` is written when it is not the record's own.
pub fn format_time(t: OffsetDateTime) -> String {
    t.to_offset(time::UtcOffset::UTC)
        .format(&time::format_description::well_known::Rfc3339)
        .expect("a UTC time formats as RFC 3339")
}

impl Event {
    /// The stand-in of a record its source could not read: its bytes as they came, placed at
    /// `time` (which counts as a fallback), for [`Pending::refused`] to dead-letter. Its
    /// `dataset` names the indices it was meant for.
    pub fn unreadable(id: String, raw: Vec<u8>, time: OffsetDateTime, dataset: Dataset) -> Self {
        Event {
            id,
            time,
            timestamp: format_time(time),
            source: raw.into(),
            outline: Vec::new(),
            used_fallback_time: true,
            dataset,
        }
    }
}

/// Where an event came from: named in logs and in its dead-letter entry. Each source says
/// what its origins are (an S3 object's bucket and key, a Kafka record's topic, partition and
/// offset); nothing here knows the sources.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// For logs, e.g. `s3://bucket/key`.
    description: String,
    /// A JSON object merged into the dead-letter entry, e.g. `{"s3": {"bucket": ..., "key": ...}}`.
    fields: serde_json::Value,
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.description)
    }
}

impl Origin {
    /// `fields` must be a JSON object; anything else adds no fields to dead-letter entries.
    pub fn new(description: impl Into<String>, fields: serde_json::Value) -> Self {
        debug_assert!(fields.is_object(), "origin fields are a JSON object");
        Origin {
            description: description.into(),
            fields,
        }
    }

    /// The fields of a dead-letter entry that say where the event came from.
    pub fn fields(&self) -> Option<&serde_json::Map<String, serde_json::Value>> {
        self.fields.as_object()
    }
}

/// An event on its way to the sink, with the claim that settles it. Once handed over, the
/// parcel it travelled in holds its share of the byte budget (see [`super::Budget`]).
#[derive(Debug)]
pub struct Pending {
    pub event: Event,
    pub origin: Arc<Origin>,
    claim: Claim,
    /// The bytes its parcel took from the budget for it (set at the hand-over).
    pub(super) budgeted: u32,
    /// Set when the source itself refused the record (it is no JSON): the sink writes it to
    /// the dead-letter index with this reason instead of indexing it.
    pub refusal: Option<Box<str>>,
    /// Set on events a stage added (an alert): told how the sink wrote the document, the
    /// stage counts it and acts on it, and the sink does not count it among the sources'
    /// documents.
    pub on_written: Option<Arc<dyn OnWritten>>,
}

/// The hook a stage sets on the events it adds (see [`Pending::on_written`]).
pub trait OnWritten: Send + Sync + std::fmt::Debug {
    /// The cluster took `event`: `created` when it is new, not when it was already there.
    fn written(&self, event: &Event, created: bool);
}

impl Pending {
    pub fn new(event: Event, origin: Arc<Origin>, claim: Claim) -> Self {
        Pending {
            event,
            origin,
            claim,
            budgeted: 0,
            refusal: None,
            on_written: None,
        }
    }

    /// A record its source could not make an event of: `event` holds its bytes as they
    /// came (as `source`), and the sink dead-letters it with `reason`.
    pub fn refused(
        event: Event,
        origin: Arc<Origin>,
        claim: Claim,
        reason: impl Into<Box<str>>,
    ) -> Self {
        Pending {
            refusal: Some(reason.into()),
            ..Pending::new(event, origin, claim)
        }
    }

    /// Another event of the same payload (an alert this one raised), from the same origin,
    /// which the payload's ticket waits for too.
    pub fn alongside(&self, event: Event) -> Pending {
        Pending::new(event, self.origin.clone(), self.claim.sibling())
    }

    /// Settles the event with its final outcome.
    pub fn settle(self, outcome: Result<(), super::Failure>) {
        self.claim.settle(outcome);
    }

    /// Bytes this event counts against the budget.
    pub fn weight(&self) -> usize {
        self.event.source.len() + self.event.id.len()
    }

    /// The bytes of the budget its parcel took for it: its weight, at least 1 and at most
    /// the whole budget; 0 before it is handed over.
    pub fn budgeted(&self) -> usize {
        self.budgeted as usize
    }
}
