//! The backfill source: a bucket listing -> S3 objects -> events -> sink, with a checkpoint
//! that only moves past objects that settled, then exit.
//!
//! - [`plan`] decides which prefixes are listed (CloudTrail day folders with
//!   `--since`/`--until`) and where a checkpoint resumes;
//! - [`listing`] finds the folders and lists the objects, in key order, ahead of the readers
//!   (bounded);
//! - each object is read by [`crate::source::s3`] through the object format into the sink,
//!   under its own ticket, `--concurrency` at a time (an object that was read waits for its
//!   events to settle without holding up the next read); a transient failure is tried again
//!   (up to [`MAX_ATTEMPTS`] times, waiting longer each time), a permanent one is final;
//! - [`checkpoint`] keeps what settled: the listing position up to which everything settled
//!   ([`Watermark`] over the listing order) and the few keys beyond it, written every second
//!   and at exit; objects further ahead than [`window`] of the oldest unsettled one wait, so
//!   the file stays small;
//! - [`progress`] says how far it is.
//!
//! Shutdown (SIGTERM/SIGINT): stop starting objects, give those in flight the grace period,
//! write the checkpoint (what did not settle is read again on resume; its events already
//! indexed are answered 409), exit 130. Because `_id`s are deterministic, a backfill over
//! what the SQS worker also ingested makes no duplicates either.

pub mod checkpoint;
pub mod enqueue;
pub mod listing;
pub mod plan;
pub mod progress;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;
use tokio::sync::{mpsc, Semaphore};
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;
use tracing::{error, info, info_span, warn, Instrument};

use crate::config::{BackfillCommand, Shared};
use crate::format::{Destination, Format};
use crate::pipeline::{EventSender, Failure, Shutdown, Ticket, Watermark};
use crate::source::s3::{self, ObjectRef, ObjectSink, ObjectSummary};
use crate::source::{Context, Ended, Source, SourceError};
use crate::telemetry::Stats;
use checkpoint::{Checkpoint, CheckpointError, Job};
use listing::{ListError, Listed, Listing};
use plan::Days;

/// Tries of an object that fails transiently, before it counts as failed.
pub const MAX_ATTEMPTS: u32 = 5;
/// How often the checkpoint is written while something changed.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);
/// Listed objects waiting to be read.
const LISTING_AHEAD: usize = 1024;

crate::telemetry::counters! {
    /// What the backfill skipped.
    pub struct BackfillCounters {
        objects_resumed: "backfill: listed objects not fetched because the checkpoint says they settled",
    }
}

/// How far ahead of the oldest unsettled object reading may go.
pub fn window(concurrency: usize) -> u64 {
    (4 * concurrency).max(64) as u64
}

/// Why a backfill cannot go on.
#[derive(Debug, thiserror::Error)]
pub enum BackfillError {
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    #[error(transparent)]
    List(#[from] ListError),
}

/// The job `command` asks for, as a checkpoint names it.
pub fn job(command: &BackfillCommand, today: time::Date) -> Job {
    let backfill = &command.backfill;
    let until = backfill
        .until
        .or(backfill.since.map(|_| today))
        .map(|d| d.to_string());
    Job {
        bucket: command.bucket().to_string(),
        prefixes: plan::normalize(&backfill.prefix),
        since: backfill.since.map(|d| d.to_string()),
        until,
        object_format: format!("{:?}", command.s3.object_format).to_lowercase(),
        enqueue: backfill.enqueue.clone(),
    }
}

/// The backfill source: a bucket's listing.
pub struct Backfill {
    command: BackfillCommand,
    s3: aws_sdk_s3::Client,
}

impl Backfill {
    /// The backfill `command` asks for, reading with `s3`.
    pub fn with_client(command: &BackfillCommand, s3: aws_sdk_s3::Client) -> Self {
        Backfill {
            command: command.clone(),
            s3,
        }
    }
}

impl Source for Backfill {
    type Command = BackfillCommand;
    const AWS: bool = true;

    fn shared(command: &BackfillCommand) -> &Shared {
        &command.shared
    }

    fn new(
        command: &BackfillCommand,
        aws: Option<&aws_config::SdkConfig>,
    ) -> Result<Self, SourceError> {
        let aws = aws.ok_or_else(|| SourceError::new("backfill needs an AWS configuration"))?;
        Ok(Backfill::with_client(command, s3::client(aws, &command.s3)))
    }

    fn describe(&self) -> String {
        "backfill".to_string()
    }

    fn destinations(&self) -> Vec<Destination> {
        s3::destinations(&self.command.s3, &self.command.shared.index)
    }

    fn register(stats: &Stats) {
        stats.counters::<listing::ListingCounters>();
        stats.counters::<BackfillCounters>();
        stats.counters::<s3::ObjectCounters>();
        stats.counters::<crate::format::RecordCounters>();
    }

    /// Reads every listed object that has not settled in an earlier run, until the end of
    /// the listing or until stopped; the checkpoint keeps what settled.
    async fn run(self, context: Context) -> Result<Ended, SourceError> {
        let Some(mut run) = Run::start(&self, &context).await? else {
            return Ok(Ended::default());
        };
        let config = &self.command.backfill;
        let (listed_tx, listed_rx) = mpsc::channel(LISTING_AHEAD);
        let lister = tokio::spawn(listing::list(
            self.s3.clone(),
            self.command.bucket().to_string(),
            std::mem::take(&mut run.units),
            self.command.s3.object_format,
            listed_tx,
            context.stats.clone(),
        ));
        let Context {
            events,
            free_form,
            stats,
            shutdown,
        } = context;
        let objects = Arc::new(Objects {
            s3: self.s3,
            bucket: self.command.bucket().to_string(),
            format: Arc::new(s3::object_format(&self.command.s3, free_form)),
            events,
            stats,
            readers: Arc::new(Semaphore::new(config.concurrency)),
            stop: shutdown.give_up_token().clone(),
        });
        run.read_all(&objects, listed_rx, lister, &shutdown)
            .await
            .map_err(SourceError::new)?;
        run.finish(&objects.stats, &shutdown)
            .map_err(SourceError::new)
    }
}

/// One backfill run: the checkpoint, how far the listing order settled, the objects in
/// flight and what failed.
struct Run {
    checkpoint: Checkpoint,
    path: Option<PathBuf>,
    /// The units still to list (handed to the lister at start).
    units: Vec<plan::Unit>,
    /// Keys the checkpoint says settled beyond its position.
    resumed: HashSet<String>,
    order: Order,
    progress: progress::Progress,
    window: u64,
    tasks: JoinSet<Finished>,
    failures: BTreeMap<String, String>,
    list_failure: Option<ListError>,
}

impl Run {
    /// Loads the checkpoint and finds the units to list; `None` when the checkpoint says
    /// the job is complete.
    async fn start(source: &Backfill, context: &Context) -> Result<Option<Self>, SourceError> {
        let command = &source.command;
        let Some(prepared) = prepare(command, &source.s3, &context.stats).await? else {
            return Ok(None);
        };
        let config = &command.backfill;
        Ok(Some(Run {
            resumed: prepared.checkpoint.done_after.iter().cloned().collect(),
            checkpoint: prepared.checkpoint,
            path: config.checkpoint.clone(),
            units: prepared.units,
            order: Order::default(),
            progress: progress::Progress::new(prepared.total_units, prepared.skipped_units),
            window: window(config.concurrency),
            tasks: JoinSet::new(),
            failures: BTreeMap::new(),
            list_failure: None,
        }))
    }

    /// Reads what the lister finds, `--concurrency` at a time and at most [`window`] ahead
    /// of the oldest unsettled object, until the listing is done and everything read
    /// settled, or until stopped (then what is in flight gets the grace period).
    async fn read_all(
        &mut self,
        objects: &Arc<Objects>,
        mut listed: mpsc::Receiver<Listing>,
        lister: JoinHandle<Result<(), ListError>>,
        shutdown: &Shutdown,
    ) -> Result<(), CheckpointError> {
        let mut lister = Some(lister);
        let mut listing_done = false;
        let mut dirty = false;
        let mut save = tokio::time::interval(CHECKPOINT_EVERY);
        save.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut report = tokio::time::interval(self.progress.every());
        report.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        while !(listing_done && self.tasks.is_empty()) {
            let room = self.order.ahead() < self.window;
            tokio::select! {
                next = listed.recv(), if room && !listing_done => match next {
                    Some(next) => self.deliver(next, objects),
                    None => {
                        listing_done = true;
                        self.list_failure = match lister.take() {
                            Some(joined) => joined.await.expect("the lister does not panic").err(),
                            None => None,
                        };
                        if let Some(err) = &self.list_failure {
                            error!(error = %err, "listing failed; stopping once what is in flight settled");
                        }
                    }
                },
                Some(joined) = self.tasks.join_next(), if !self.tasks.is_empty() => {
                    let finished = joined.unwrap_or_else(|err| std::panic::resume_unwind(err.into_panic()));
                    dirty = true;
                    self.settle(finished);
                }
                _ = save.tick(), if dirty && self.path.is_some() => {
                    dirty = false;
                    self.order.write_into(&mut self.checkpoint);
                    store(&self.checkpoint, self.path.as_deref())?;
                }
                _ = report.tick() => self.progress.report(&self.checkpoint, &objects.stats),
                () = shutdown.requested(), if !listing_done => {
                    info!(in_flight = self.tasks.len(), grace = ?shutdown.grace(), "shutting down: no new objects, finishing those in flight");
                    listing_done = true;
                }
            }
        }
        if let Some(lister) = lister {
            lister.abort();
        }
        Ok(())
    }

    /// Starts reading a listed object (or counts it when an earlier run settled it).
    fn deliver(&mut self, listed: Listing, objects: &Arc<Objects>) {
        match listed {
            Listing::Object(listed) => {
                let seq = self.order.deliver(&listed.key);
                if self.resumed.contains(&listed.key) {
                    objects
                        .stats
                        .counters::<BackfillCounters>()
                        .objects_resumed
                        .add(1);
                    self.order.settle(seq);
                } else {
                    let objects = objects.clone();
                    self.tasks
                        .spawn(async move { read(&objects, seq, listed).await });
                }
            }
            Listing::UnitDone => self.progress.unit_done(),
        }
    }

    /// Accounts an object that finished; the listing order moves past it unless it was
    /// abandoned (read again on resume).
    fn settle(&mut self, finished: Finished) {
        match finished.outcome {
            ObjectOutcome::Done(summary) => {
                self.checkpoint.objects_done += 1;
                self.checkpoint.events_done += summary.events;
                self.progress.object_done(summary.events);
            }
            ObjectOutcome::Failed(reason) => {
                self.checkpoint.add_failed(&finished.key);
                self.failures.insert(finished.key, reason);
            }
            ObjectOutcome::Abandoned => return,
        }
        self.order.settle(finished.seq);
    }

    /// Writes the checkpoint a last time and says how the backfill ended.
    fn finish(mut self, stats: &Stats, shutdown: &Shutdown) -> Result<Ended, BackfillError> {
        let interrupted = shutdown.is_requested() || self.list_failure.is_some();
        self.checkpoint.complete = !interrupted && !self.order.has_unsettled();
        self.order.write_into(&mut self.checkpoint);
        store(&self.checkpoint, self.path.as_deref())?;
        self.progress.report(&self.checkpoint, stats);
        self.progress.finish();
        if let Some(err) = self.list_failure {
            return Err(err.into());
        }
        let bucket = &self.checkpoint.job.bucket;
        let ended = Ended {
            failed: self
                .checkpoint
                .failed
                .iter()
                .map(|key| {
                    (
                        format!("s3://{bucket}/{key}"),
                        self.failures.get(key).cloned(),
                    )
                })
                .collect(),
            failed_total: self.checkpoint.failed_total,
            interrupted: shutdown.is_requested(),
            abandoned: false,
        };
        match (ended.interrupted, ended.failed_total) {
            (true, _) => {
                warn!("backfill interrupted; run it again with the same --checkpoint to resume")
            }
            (false, 0) => info!("backfill complete"),
            (false, failed) => error!(
                failed,
                "backfill finished; some objects failed for good (listed on standard output)"
            ),
        }
        Ok(ended)
    }
}

/// A backfill ready to list: its checkpoint and the units still to list.
pub struct Prepared {
    pub checkpoint: Checkpoint,
    pub units: Vec<plan::Unit>,
    pub total_units: usize,
    pub skipped_units: usize,
}

/// Loads the checkpoint of `command`'s job and finds the units to list (after the
/// checkpoint's position); `None` when the checkpoint says the job is complete.
pub async fn prepare(
    command: &BackfillCommand,
    s3: &aws_sdk_s3::Client,
    stats: &Stats,
) -> Result<Option<Prepared>, SourceError> {
    let config = &command.backfill;
    let mut job = job(command, OffsetDateTime::now_utc().date());
    let checkpoint = match &config.checkpoint {
        Some(path) => Checkpoint::load(path, job.clone()).map_err(SourceError::new)?,
        None => Checkpoint::new(job.clone()),
    };
    job.until.clone_from(&checkpoint.job.until);
    if checkpoint.complete {
        info!("the checkpoint says this backfill is complete; nothing to do");
        return Ok(None);
    }
    let days = days(config, job.until.as_deref()).map_err(SourceError::new)?;
    let units = listing::units(s3, command.bucket(), &job.prefixes, days, stats)
        .await
        .map_err(SourceError::new)?;
    stats.set(&stats.source_reachable, true);
    let total_units = units.len();
    let units = plan::resume(units, checkpoint.done_through.as_deref());
    let skipped_units = total_units - units.len();
    info!(
        bucket = command.bucket(),
        prefixes = ?job.prefixes,
        units = total_units,
        units_already_done = skipped_units,
        resume_after = checkpoint.done_through.as_deref().unwrap_or("-"),
        "backfill started"
    );
    stats.set(&stats.started, true);
    Ok(Some(Prepared {
        checkpoint,
        units,
        total_units,
        skipped_units,
    }))
}

/// The days to list, from `--since` to `until` (the checkpoint's, so a resumed job lists
/// the same days).
fn days(
    config: &crate::config::BackfillConfig,
    until: Option<&str>,
) -> Result<Option<Days>, CheckpointError> {
    let Some(until) = until else {
        return Ok(None);
    };
    let until = crate::config::parse_day(until).map_err(|reason| CheckpointError::Read {
        path: config
            .checkpoint
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default(),
        reason,
    })?;
    Ok(Some(Days {
        since: config.since,
        until,
    }))
}

pub fn store(
    checkpoint: &Checkpoint,
    path: Option<&std::path::Path>,
) -> Result<(), CheckpointError> {
    match path {
        Some(path) => checkpoint.store(path),
        None => Ok(()),
    }
}

/// What every object task shares.
struct Objects {
    s3: aws_sdk_s3::Client,
    bucket: String,
    format: Arc<dyn Format>,
    events: EventSender,
    stats: Arc<Stats>,
    /// `--concurrency` permits: an object holds one while it is read, not while its events
    /// wait for the cluster, so reading goes on while bulk requests are in flight.
    readers: Arc<Semaphore>,
    /// Cancelled when the grace period is over (or the indexer stopped): give up waiting.
    stop: CancellationToken,
}

/// How one object ended.
struct Finished {
    seq: u64,
    key: String,
    outcome: ObjectOutcome,
}

enum ObjectOutcome {
    Done(ObjectSummary),
    Failed(String),
    /// Stopped before it settled: read again on resume.
    Abandoned,
}

/// Reads one object until it settles, trying a transient failure again.
async fn read(context: &Objects, seq: u64, listed: Listed) -> Finished {
    let object = ObjectRef {
        bucket: context.bucket.clone(),
        key: listed.key,
    };
    let span = info_span!("object", key = %object.key, size = listed.size);
    let outcome = async {
        let origin = Arc::new(object.origin(serde_json::json!({})));
        let mut delay = Duration::from_secs(1);
        for attempt in 1..=MAX_ATTEMPTS {
            let ticket = Ticket::new();
            let sink = ObjectSink {
                origin: origin.clone(),
                place: s3::S3_PLACE,
                format: context.format.clone(),
                ticket: ticket.clone(),
                events: context.events.clone(),
            };
            let fetched = tokio::select! {
                fetched = async {
                    let _reading = context.readers.acquire().await.expect("the semaphore is never closed");
                    s3::fetch(&context.s3, &object, sink).await
                } => fetched,
                () = context.stop.cancelled() => return ObjectOutcome::Abandoned,
            };
            let summary = match fetched {
                Ok(summary) => Some(summary),
                Err(err) => {
                    ticket.fail(Failure::new(s3::ObjectFailure {
                        bucket: object.bucket.clone(),
                        key: object.key.clone(),
                        error: err,
                    }));
                    None
                }
            };
            let verdict = tokio::select! {
                verdict = ticket.settle() => verdict,
                () = context.stop.cancelled() => return ObjectOutcome::Abandoned,
            };
            let failure = match (verdict, summary) {
                (Ok(()), Some(summary)) => return ObjectOutcome::Done(summary),
                (Ok(()), None) => unreachable!("a failed fetch fails its ticket"),
                (Err(failure), _) => failure,
            };
            if !failure.is_transient() || attempt == MAX_ATTEMPTS {
                return ObjectOutcome::Failed(failure.to_string());
            }
            warn!(attempt, retry_in = ?delay, reason = %failure, "object failed for now; trying again");
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = context.stop.cancelled() => return ObjectOutcome::Abandoned,
            }
            delay = (delay * 2).min(Duration::from_secs(30));
        }
        unreachable!("the last attempt returns")
    }
    .instrument(span)
    .await;
    if let ObjectOutcome::Done(summary) = &outcome {
        s3::count(&context.stats, &object, summary);
    }
    if let ObjectOutcome::Failed(reason) = &outcome {
        context
            .stats
            .counters::<s3::ObjectCounters>()
            .objects_failed
            .add(1);
        error!(key = %object.key, reason, "object failed for good");
    }
    Finished {
        seq,
        key: object.key,
        outcome,
    }
}

/// The listing order of the objects handed out, and how far everything settled.
#[derive(Debug, Default)]
struct Order {
    watermark: Watermark,
    /// Keys of delivered objects at or after the watermark.
    keys: BTreeMap<u64, String>,
    /// Of those, the ones that settled.
    settled_ahead: BTreeSet<u64>,
    done_through: Option<String>,
}

impl Order {
    fn deliver(&mut self, key: &str) -> u64 {
        let seq = self.watermark.end();
        self.watermark.deliver(seq);
        self.keys.insert(seq, key.to_string());
        seq
    }

    fn settle(&mut self, seq: u64) {
        match self.watermark.settle(seq) {
            Some(now) => {
                self.done_through = self.keys.get(&(now - 1)).cloned();
                self.keys = self.keys.split_off(&now);
                self.settled_ahead = self.settled_ahead.split_off(&now);
            }
            None => {
                self.settled_ahead.insert(seq);
            }
        }
    }

    /// Objects delivered from the oldest unsettled one on.
    fn ahead(&self) -> u64 {
        self.watermark.end() - self.watermark.current()
    }

    fn has_unsettled(&self) -> bool {
        self.watermark.has_unsettled()
    }

    fn write_into(&self, checkpoint: &mut Checkpoint) {
        if self.done_through.is_some() {
            checkpoint.done_through.clone_from(&self.done_through);
        }
        let mut after: Vec<String> = self
            .settled_ahead
            .iter()
            .filter_map(|seq| self.keys.get(seq).cloned())
            .collect();
        // Keys a resumed run has not reached yet stay until it passes them.
        after.extend(
            checkpoint
                .done_after
                .iter()
                .filter(|k| Some(k.as_str()) > checkpoint.done_through.as_deref())
                .cloned(),
        );
        after.sort();
        after.dedup();
        checkpoint.done_after = after;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_checkpoint_moves_only_past_what_settled() {
        let mut order = Order::default();
        let a = order.deliver("k/a");
        let b = order.deliver("k/b");
        let c = order.deliver("k/c");
        order.settle(b);
        assert_eq!(order.done_through, None);
        assert_eq!(order.ahead(), 3);
        let mut checkpoint = Checkpoint::new(Job {
            bucket: "b".into(),
            prefixes: vec![String::new()],
            since: None,
            until: None,
            object_format: "auto".into(),
            enqueue: None,
        });
        order.write_into(&mut checkpoint);
        assert_eq!(checkpoint.done_after, ["k/b"]);
        order.settle(a);
        assert_eq!(order.done_through.as_deref(), Some("k/b"));
        assert_eq!(order.ahead(), 1);
        order.write_into(&mut checkpoint);
        assert_eq!(checkpoint.done_through.as_deref(), Some("k/b"));
        assert!(checkpoint.done_after.is_empty());
        order.settle(c);
        assert!(!order.has_unsettled());
        order.write_into(&mut checkpoint);
        assert_eq!(checkpoint.done_through.as_deref(), Some("k/c"));
    }
}
