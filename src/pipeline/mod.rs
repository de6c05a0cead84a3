//! Pipeline: what every source, stage and sink share; it names nothing above it.
//!
//! A source delivers payloads (an SQS message, a Kafka record, a webhook body, a backfill
//! object, a file), each with a [`Ticket`]. A format turns the payload's bytes into
//! [`Event`]s; each event goes to the sink as a [`Pending`] holding a [`Claim`] on the
//! payload's ticket, through the [`Stage`]s the runtime placed (detection), which may add
//! events of their own under the same ticket. The sink settles every claim exactly once
//! (indexed, already there, dead-lettered, or failed with a [`Failure`] that carries its
//! stage's error); a claim dropped unsettled (a sink that died, a panic) settles as
//! [`Failure::Dropped`], so no payload ever waits forever. When the ticket has settled, its
//! verdict goes back to the source, which acknowledges in its own way:
//! - SQS: delete, release or keep the message;
//! - Kafka: commit a partition's offset once every record below it settled, in order
//!   ([`Watermark`]);
//! - webhook: answer the request only once every event of its body settled (await the ticket);
//! - backfill and files: advance the checkpoint, or count the file, only past what settled
//!   ([`Watermark`] over the listing order).
//!
//! Between the stages and the sink, [`channel`] carries events in parcels and bounds their
//! memory by bytes; [`Indices`] names the daily index of each event; [`Shutdown`] says when
//! to stop and how long what is in flight may still take.

mod channel;
mod event;
mod failure;
mod indices;
mod shutdown;
mod stage;
mod ticket;
mod watermark;

pub use channel::{Budget, Closed, EventReceiver, Parcel};
pub use event::{format_time, Dataset, Event, OnWritten, Origin, Pending};
pub use failure::{Failure, StageError};
pub use indices::{index_name, Indices, Stream};
pub use shutdown::Shutdown;
pub use stage::{channel, EventSender, Outbox, Shape, Stage};
pub use ticket::{Claim, Ticket, Verdict};
pub use watermark::Watermark;
