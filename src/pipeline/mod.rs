//! Pipeline: what every source, format and sink share.
//!
//! A source delivers payloads (an SQS message, later a Kafka record, a webhook body, a
//! backfill object), each with a [`Ticket`]. A format turns the payload's bytes into
//! [`Event`]s; each event goes to the sink as a [`Pending`] holding a [`Claim`] on the
//! payload's ticket. The sink settles every claim exactly once (indexed, already there,
//! dead-lettered, or failed with a [`Failure`]); a claim dropped unsettled (a sink that died,
//! a panic) settles as [`Failure::Dropped`], so no payload ever waits forever. When the
//! ticket has settled, its verdict goes back to the source, which acknowledges in its own way:
//! - SQS: delete, release or keep the message ([`crate::source::sqs::ack::decide`]);
//! - Kafka: commit a partition's offset once every record below it settled, in order
//!   ([`Watermark`]);
//! - webhook: answer the request only once every event of its body settled (await the ticket);
//! - backfill: advance the checkpoint only past objects that settled ([`Watermark`] over the
//!   listing order).
//!
//! Between the format and the sink, [`channel`] bounds memory by bytes as well as by count.

mod channel;
mod event;
mod failure;
mod ticket;
mod watermark;

pub use channel::{channel, Closed, EventReceiver, EventSender};
pub use event::{Dataset, Event, Origin, Pending};
pub use failure::Failure;
pub use ticket::{Claim, Ticket, Verdict};
pub use watermark::Watermark;
