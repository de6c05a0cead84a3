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
pub mod ecs;
pub mod escape;
pub mod json;
pub mod json_lines;
pub mod konnect;
pub mod mapping;
pub mod object;
pub mod payload;
pub mod record;
pub mod scan;
pub mod schema;

pub use document::FreeForm;
pub use payload::{Format, FormatError, Item, PayloadContext, Summary};
pub use record::{RecordContext, RecordError, RecordFormat};

use crate::pipeline::{Dataset, Indices, Stream};

/// Every dataset a format here makes, for the rules that name them.
pub const DATASETS: [Dataset; 4] = [
    cloudtrail::DATASET,
    confluent::DATASET,
    konnect::DATASET,
    json::DATASET,
];

/// One family of daily indices events are written to: the dataset, its index prefix and the
/// mappings its format declares; or, where the cluster has data streams, the data stream
/// that takes its events instead ([`schema::destinations`]).
#[derive(Debug, Clone)]
pub struct Destination {
    pub dataset: Dataset,
    pub prefix: String,
    pub mappings: mapping::Mappings,
    /// The data stream its events go to where the cluster has them.
    pub stream: Option<Stream>,
}

impl Destination {
    pub fn new(dataset: Dataset, prefix: impl Into<String>, mappings: mapping::Mappings) -> Self {
        Destination {
            dataset,
            prefix: prefix.into(),
            mappings,
            stream: None,
        }
    }
}

/// Where each destination's events go: its data stream, or its dataset's daily indices (the
/// first destination's for a dataset without its own).
pub fn indices(destinations: &[Destination]) -> Indices {
    Indices::new(
        destinations
            .iter()
            .map(|d| (d.dataset, d.prefix.clone()))
            .collect(),
    )
    .with_streams(
        destinations
            .iter()
            .filter_map(|d| Some((d.dataset, d.stream.clone()?)))
            .collect(),
    )
}

crate::telemetry::counters! {
    /// What the formats made of the records of every source.
    pub struct RecordCounters {
        records_fallback_time: "records placed by a fallback time (a Kafka record's timestamp, an S3 object's LastModified) for lack of a usable time of their own",
        records_unreadable: "Kafka records and lines of S3 JSON-lines objects that are no JSON object, sent to the dead-letter index",
    }
}
