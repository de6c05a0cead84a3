//! Record: the contract of a format that turns one record into one event (a Kafka record,
//! one line of a JSON-lines object).

use time::OffsetDateTime;

use super::mapping;
use crate::pipeline::{Dataset, Event};

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
