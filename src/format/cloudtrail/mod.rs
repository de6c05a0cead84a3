//! The CloudTrail log format: `{"Records":[{...},{...}]}` -> one event per record.
//!
//! [`split`] finds each record's bytes without building a JSON tree; [`event`] turns a record
//! into its [`Event`] (`_id` = `eventID`, time = `eventTime`, `@timestamp` spliced in).

pub mod event;
pub mod mapping;
pub mod split;

use std::io::BufRead;

use tracing::trace;

pub use event::{FreeForm, Options, DATASET, FREE_FORM_FIELDS};

use super::payload::{Format, FormatError, Item, PayloadContext, Summary};
use crate::pipeline::Closed;
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
