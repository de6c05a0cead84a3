//! Sources: where payloads come from, and how each one is acknowledged once it settled.
//!
//! - [`sqs`]: notifications on an SQS queue (CloudTrail, S3 events, EventBridge), each naming
//!   S3 objects; a message is deleted, released or kept by [`sqs::ack::decide`];
//! - [`s3`]: streaming one S3 object through a format into the sink;
//! - [`kafka`]: records of a consumer group's partitions, one event each; a partition's
//!   offset is committed once every record below it settled ([`kafka::partitions`]);
//! - [`webhook`]: HTTP(S) POSTs of log batches, each answered once its entries settled;
//! - [`backfill`]: the objects a bucket already holds, listed in key order; a checkpoint
//!   moves past an object once it settled.

pub mod backfill;
pub mod kafka;
pub mod s3;
pub mod sqs;
pub mod webhook;
