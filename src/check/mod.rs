//! Check: `cloudtrail-ingest check` (and `cloudtrail-ingest kafka check`) verifies, without
//! ingesting, that everything the worker needs is reachable and permitted, and prints one
//! PASS/FAIL/SKIP line per check. For every source:
//!
//! 1. `cluster`: `GET /` answers with these credentials (product and version);
//! 2. `templates`: the index templates can be written (they are installed, as at start);
//! 3. `bulk`: a bulk `create` is accepted: one small probe document
//!    (`_id` `cloudtrail-ingest-preflight`, no `@timestamp`, so dashboards ignore it) in
//!    `<prefix>-preflight`; 409 on later runs counts as a pass;
//!
//! For the SQS source:
//!
//! 4. `queue`: `GetQueueAttributes` (visibility timeout, redrive policy);
//! 5. `receive`: `ReceiveMessage` works; a message it gets is made visible again at once
//!    (its receive count still goes up by one);
//! 6. `s3`: the first object that message names can be read (`GetObject` of its first byte).
//!
//!
//! For the Kafka source: `brokers` (metadata with these credentials), `topics` (each exists,
//! with its partitions) and `group` (described, never joined; its committed offsets and lag),
//! see [`kafka`].
//!
//! The exit code is non-zero when any check fails.

mod cluster;
mod kafka;
mod report;
pub mod rules;
mod sqs;

pub use cluster::cluster_checks;
pub use kafka::run as run_kafka;
pub use report::{Report, Verdict};
pub use sqs::run;
