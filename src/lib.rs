//! cloudtrail-ingest: ships AWS CloudTrail logs into Elasticsearch or OpenSearch.
//!
//! The pipeline, one module per stage:
//! 1. [`worker`] long-polls SQS and runs each message as a task, at most `--max-in-flight`;
//! 2. [`notification`] turns the message body into the S3 objects it announces;
//! 3. [`fetch`] streams each object, gunzips it and, with [`records`] and [`document`],
//!    turns every record into a bulk `create` for `<prefix>-YYYY.MM.DD` keyed by `eventID`;
//! 4. [`bulk`] batches documents across messages, indexes them and settles each one,
//!    writing what the cluster refuses for good to the dead-letter index ([`dead_letter`]);
//! 5. [`ack`] deletes a message only when everything it produced was accepted, and
//!    releases one that failed for good; [`heartbeat`] keeps in-flight messages invisible.
//!
//! [`config`] holds the one configuration struct, [`cluster`] builds the search client and
//! detects the product, [`template`] installs the index templates that fit that product,
//! [`stats`] counts what happened and [`metrics`] serves it over HTTP, and [`check`] is the preflight (`cloudtrail-ingest check`).

pub mod ack;
pub mod bulk;
pub mod check;
pub mod cluster;
pub mod config;
pub mod dead_letter;
pub mod document;
pub mod fetch;
pub mod heartbeat;
pub mod metrics;
pub mod notification;
pub mod records;
pub mod stats;
pub mod template;
pub mod worker;
