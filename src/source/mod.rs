//! Sources: where payloads come from, and how each one is acknowledged once it settled.
//!
//! - [`sqs`]: notifications on an SQS queue (CloudTrail, S3 events, EventBridge), each naming
//!   S3 objects; a message is deleted, released or kept by [`sqs::ack::decide`];
//! - [`s3`]: streaming one S3 object through a format into the sink;
//! - [`kafka`]: records of a consumer group's partitions, one event each; a partition's
//!   offset is committed once every record below it settled ([`kafka::partitions`]);
//! - [`webhook`]: HTTP(S) POSTs of log batches, each answered once its entries settled;
//! - [`backfill`]: the objects a bucket already holds, listed in key order; a checkpoint
//!   moves past an object once it settled;
//! - [`files`]: local files, folders and standard input, each counted once it settled.
//!
//! Every source keeps the one contract, [`Source`]: it says what it reads (its command, its
//! destinations), how it acknowledges what settled and when it is idle or done (its
//! [`Source::run`]). Everything else is the runtime's: the shared configuration, telemetry,
//! the sink and its templates, detection, signals and the grace period, the exit code.

pub mod backfill;
pub mod files;
pub mod kafka;
pub mod s3;
pub mod sqs;
pub mod webhook;

use std::future::Future;
use std::sync::Arc;

use crate::config::Shared;
use crate::format::{Destination, FreeForm};
use crate::pipeline::{EventSender, Shutdown};
use crate::telemetry::Stats;

/// A source, as the runtime runs it.
pub trait Source: Sized + Send + 'static {
    /// The command that configures it: its own flags beside the [`Shared`] ones.
    type Command: Send + Sync;

    /// Whether it reads from AWS (SQS, S3): the runtime then loads the AWS configuration
    /// (the standard chain) and requires a region.
    const AWS: bool;

    /// The shared flags of `command`.
    fn shared(command: &Self::Command) -> &Shared;

    /// The source `command` asks for, with the AWS configuration when [`Source::AWS`] (or
    /// SigV4 for the cluster) asked for one. Nothing is read yet.
    fn new(
        command: &Self::Command,
        aws: Option<&aws_config::SdkConfig>,
    ) -> Result<Self, SourceError>;

    /// What it reads, for the logs and the silence alarm's alerts.
    fn describe(&self) -> String;

    /// Where its events go (one destination per dataset it writes; the alerts' is the
    /// runtime's), so that the runtime installs their templates before anything is read.
    fn destinations(&self) -> Vec<Destination>;

    /// Registers its counter groups, so that `/metrics` shows them from the start.
    fn register(stats: &Stats);

    /// Reads, hands events to `context.events` and acknowledges each payload once it
    /// settled, until it is done, idle, or `context.shutdown` asks it to stop (then what is
    /// in flight gets the grace period, and the rest is given up, unacknowledged).
    fn run(self, context: Context) -> impl Future<Output = Result<Ended, SourceError>> + Send;
}

/// What the runtime hands a source to run with.
pub struct Context {
    /// Where events go: through detection into the sink.
    pub events: EventSender,
    /// How the cluster stores free-form objects (known once the sink's templates are in).
    pub free_form: FreeForm,
    pub stats: Arc<Stats>,
    pub shutdown: Shutdown,
}

/// How a source ended.
#[derive(Debug, Default)]
pub struct Ended {
    /// What failed for good (a name the user knows it by, and the reason when known), at
    /// most as many as the source keeps.
    pub failed: Vec<(String, Option<String>)>,
    /// Everything that failed for good, including what `failed` does not list.
    pub failed_total: u64,
    /// A source that ends by itself (backfill, files) was stopped before its end.
    pub interrupted: bool,
    /// It gave up on work whose events the sink may still hold: the runtime stops the sink
    /// rather than wait for them (they come back, unacknowledged).
    pub abandoned: bool,
}

/// Why a source could not start or go on.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SourceError(Box<dyn std::error::Error + Send + Sync>);

impl SourceError {
    pub fn new(error: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        SourceError(error.into())
    }
}
