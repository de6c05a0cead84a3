//! The CloudTrail log format: `{"Records":[{...},{...}]}` -> one event per record.
//!
//! [`split`] finds each record's bytes without building a JSON tree; [`event`] turns a record
//! into its [`Event`] (`_id` = `eventID`, time = `eventTime`, `@timestamp` spliced in).
//! [`record_event`] does the same for one record that came alone (the `detail` of an
//! EventBridge "... via CloudTrail" event), so that it becomes the very event its copy in a
//! log does.

pub mod ecs;
pub mod event;
pub mod mapping;
pub mod split;

use std::io::BufRead;

use time::OffsetDateTime;
use tracing::trace;

pub use event::{FreeForm, Options, DATASET, FREE_FORM_FIELDS};

use super::payload::{Format, FormatError, Item, PayloadContext, Summary};
use crate::pipeline::{Closed, Event};
use split::{SplitError, Splitter};

#[derive(Debug, Clone, Copy)]
pub struct CloudTrail {
    pub options: Options,
}

impl Format for CloudTrail {
    fn read(
        &self,
        input: &mut dyn BufRead,
        context: &PayloadContext<'_>,
        emit: &mut dyn FnMut(Item) -> Result<(), Closed>,
    ) -> Result<Summary, FormatError> {
        let fallback_time = context.fallback_time;
        let mut summary = Summary::default();
        let mut splitter = Splitter::new(input);
        loop {
            let record = match splitter.next_record() {
                Ok(Some(record)) => record,
                Ok(None) => return Ok(summary),
                Err(SplitError::Read(err)) => return Err(FormatError::Read(err)),
                Err(malformed) => return Err(FormatError::Malformed(malformed.to_string())),
            };
            let event = event::build(record, &self.options, fallback_time).map_err(|err| {
                FormatError::Record {
                    record: summary.events,
                    reason: err.to_string(),
                }
            })?;
            trace!(id = %event.id, "event");
            summary.fallback_time_events += u64::from(event.used_fallback_time);
            emit(Item::Event(event))?;
            summary.events += 1;
        }
    }
}

/// The event of one record given alone: `bytes` must be one JSON object (a CloudTrail
/// record); `fallback_time` places it when it has no usable `eventTime`. The same
/// [`event::build`] as for a record of a log, so both copies of a record make one document.
pub fn record_event(
    bytes: &[u8],
    options: &Options,
    fallback_time: Option<OffsetDateTime>,
) -> Result<Event, FormatError> {
    let record = split::OwnedRecord::parse(bytes)
        .map_err(|malformed| FormatError::Malformed(malformed.to_string()))?;
    event::build(record.as_record(), options, fallback_time).map_err(|err| FormatError::Record {
        record: 0,
        reason: err.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::payload::PayloadContext;

    /// A record alone and the same record in a log make the same event.
    #[test]
    fn a_record_alone_is_the_event_it_is_in_a_log() {
        let record = br#"{"eventVersion":"1.08","eventTime":"2024-05-01T12:00:00Z","eventName":"CreateUser","requestParameters":"x","eventID":"e-1"}"#;
        let options = Options {
            free_form: FreeForm::Objects,
        };
        let alone = record_event(record, &options, None).expect("an event");
        let log = [&b"{\"Records\":["[..], record, b"]}"].concat();
        let mut in_log = Vec::new();
        CloudTrail { options }
            .read(
                &mut &log[..],
                &PayloadContext {
                    name: "s3://b/k",
                    fallback_time: None,
                },
                &mut |item| {
                    in_log.push(item);
                    Ok(())
                },
            )
            .expect("a log");
        let [Item::Event(logged)] = &in_log[..] else {
            panic!("one event: {in_log:?}");
        };
        assert_eq!(alone.id, "e-1");
        assert_eq!(alone.id, logged.id);
        assert_eq!(alone.time, logged.time);
        assert_eq!(alone.source, logged.source);
        assert!(record_event(b"[1]", &options, None).is_err());
        assert!(
            record_event(br#"{"eventName":"x"}"#, &options, None).is_err(),
            "no time"
        );
    }
}
