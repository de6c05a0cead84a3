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
//! Modules, bottom first: [`pipeline`] (events, tickets, the one failure type, the bounded
//! hand-over, in-order acknowledgement, [`pipeline::Shutdown`]) and [`telemetry`] (counters,
//! `/metrics`, health); [`config`] (each command's flags, the [`config::Shared`] groups,
//! secrets); [`format`] (CloudTrail, Confluent, Konnect, JSON lines, each with the mappings of
//! its indices); [`source`] (the [`source::Source`] contract and the SQS, Kafka, webhook,
//! backfill and files sources), [`detect`] (Sigma rules, alerts) and [`sink`] (client,
//! templates, bulk, dead letter), none naming another; [`runtime`] (runs any source with the
//! sink and detection) and [`check`] (the preflight); [`cli`] (the commands) on top.

pub mod check;
pub mod cli;
pub mod config;
pub mod detect;
pub mod enrich;
pub mod format;
pub mod pipeline;
pub mod runtime;
pub mod sink;
pub mod source;
pub mod telemetry;
