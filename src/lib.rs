//! cloudtrail-ingest: ships audit logs into Elasticsearch or OpenSearch daily indices.
//!
//! The flow, for every source:
//! 1. a [`source`] delivers payloads, each with a ticket ([`pipeline::Ticket`]);
//! 2. a [`format`](mod@format) turns the payload's bytes into events (`_id`, time, `@timestamp`, the raw
//!    record), as the bytes arrive;
//! 3. the [`sink`] batches, indexes and settles every event (indexed, already there,
//!    dead-lettered, or failed with a [`pipeline::Failure`]);
//! 4. once every event of a payload settled, the source acknowledges it in its own way
//!    (SQS: delete, release or keep; Kafka: commit the partition's offset once everything
//!    below it settled).
//!
//! Modules: [`config`] (flags, validation, secrets), [`pipeline`] (events, tickets, the one
//! failure type, the bounded hand-over, in-order acknowledgement), [`source::sqs`],
//! [`source::s3`] and [`source::kafka`], [`format::cloudtrail`], [`format::confluent`] and
//! [`format::json`] (each with the mappings of its indices), [`sink::elasticsearch`] (client,
//! templates, bulk, dead letter), [`telemetry`] (counters, `/metrics`, health) and [`check`]
//! (the preflight, `cloudtrail-ingest check` and `cloudtrail-ingest kafka check`).

pub mod check;
pub mod cli;
pub mod config;
pub mod detect;
pub mod format;
pub mod pipeline;
pub mod runtime;
pub mod sink;
pub mod source;
pub mod telemetry;
