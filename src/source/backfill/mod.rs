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
pub mod listing;
pub mod plan;
pub mod progress;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;
use std::time::Duration;

use crate::detect;
use crate::sink::elasticsearch::Cluster;
use time::OffsetDateTime;
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, info_span, warn, Instrument};

use crate::config::BackfillCommand;
use crate::format::Format;
use crate::pipeline::{EventSender, Failure, Ticket, Watermark};
use crate::sink::elasticsearch::{self as sink, SinkError};
use crate::source::s3::{self, ObjectRef, ObjectSink, ObjectSummary};
use crate::telemetry::{metrics, Stats, Summary};
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

#[derive(Debug, thiserror::Error)]
pub enum BackfillError {
    #[error(transparent)]
    Rules(#[from] crate::detect::RulesError),
    #[error(transparent)]
    Sink(#[from] SinkError),
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    #[error(transparent)]
    List(#[from] ListError),
    #[error("cannot listen for metrics on {addr}: {source}")]
    Metrics {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("the indexer stopped: {0}; objects in flight are read again on resume")]
    Indexer(String),
}

/// How a backfill ended.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub summary: Summary,
    /// Keys that failed for good (over every run of a checkpointed job), with the reason when
    /// it was this run.
    pub failed: Vec<(String, Option<String>)>,
    /// Failed keys in all, including those not kept in the checkpoint.
    pub failed_total: u64,
    /// Stopped by a signal before the end.
    pub interrupted: bool,
}

impl Outcome {
    /// 0 done, 1 some object failed for good, 130 interrupted.
    pub fn exit_code(&self) -> u8 {
        if self.interrupted {
            130
        } else if self.failed_total > 0 {
            1
        } else {
            0
        }
    }
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
    }
}

/// Runs the backfill to its end (or until `shutdown` is cancelled).
pub async fn run(
    command: &BackfillCommand,
    s3: aws_sdk_s3::Client,
    cluster: Cluster,
    shutdown: CancellationToken,
) -> Result<Outcome, BackfillError> {
    let stats = Arc::new(Stats::default());
    stats.counters::<listing::ListingCounters>();
    stats.counters::<BackfillCounters>();
    stats.counters::<s3::ObjectCounters>();
    stats.counters::<crate::format::RecordCounters>();
    let metrics_server = metrics::serve_if(command.shared.telemetry.metrics_listen, stats.clone())
        .await
        .map_err(|(addr, source)| BackfillError::Metrics { addr, source })?;
    let outcome = run_with_stats(command, s3, cluster, shutdown, stats).await;
    metrics_server.stop().await;
    outcome
}

async fn run_with_stats(
    command: &BackfillCommand,
    s3_client: aws_sdk_s3::Client,
    cluster: Cluster,
    shutdown: CancellationToken,
    stats: Arc<Stats>,
) -> Result<Outcome, BackfillError> {
    let config = &command.backfill;
    let bucket = command.bucket().to_string();
    let mut job = job(command, OffsetDateTime::now_utc().date());
    let mut checkpoint = match &config.checkpoint {
        Some(path) => Checkpoint::load(path, job.clone())?,
        None => Checkpoint::new(job.clone()),
    };
    job.until.clone_from(&checkpoint.job.until);
    if checkpoint.complete {
        info!("the checkpoint says this backfill is complete; nothing to do");
        return Ok(outcome(&checkpoint, &stats, &BTreeMap::new(), false));
    }

    let detector = detect::from_config(&command.shared.detect)?;
    let destinations = detect::destinations(
        &command.shared.detect,
        command.shared.index.prefix(),
        s3::destinations(&command.s3, &command.shared.index),
    );
    let (_, free_form) = sink::prepare(
        &cluster,
        &command.shared.cluster,
        &command.shared.index,
        &destinations,
    )
    .await?;
    stats.set(&stats.cluster_reachable, true);
    let format: Arc<dyn Format> = Arc::new(s3::object_format(&command.s3, free_form));

    let days = match job.until.as_deref() {
        None => None,
        Some(until) => Some(Days {
            since: config.since,
            until: crate::config::parse_day(until).map_err(|reason| CheckpointError::Read {
                path: config
                    .checkpoint
                    .as_ref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default(),
                reason,
            })?,
        }),
    };
    let units = listing::units(&s3_client, &bucket, &job.prefixes, days, &stats).await?;
    stats.set(&stats.source_reachable, true);
    let total_units = units.len();
    let units = plan::resume(units, checkpoint.done_through.as_deref());
    let skipped_units = total_units - units.len();
    let resumed: HashSet<String> = checkpoint.done_after.iter().cloned().collect();
    info!(
        bucket,
        prefixes = ?job.prefixes,
        units = total_units,
        units_already_done = skipped_units,
        resume_after = checkpoint.done_through.as_deref().unwrap_or("-"),
        "backfill started"
    );
    stats.set(&stats.started, true);

    let (listed_tx, mut listed_rx) = mpsc::channel(LISTING_AHEAD);
    let lister = tokio::spawn(listing::list(
        s3_client.clone(),
        bucket.clone(),
        units,
        command.s3.object_format,
        listed_tx,
        stats.clone(),
    ));
    let settings = sink::settings(&command.shared.bulk, &command.shared.index, &destinations);
    let (events, mut indexer) = sink::start(cluster, settings, stats.clone());
    // No silence alarm here (refused with the configuration): a backfill ends.
    let (events, alerting) = detect::attach(
        events,
        detector,
        &command.shared.detect,
        "backfill",
        &destinations,
        free_form,
        &stats,
    );
    let context = Arc::new(Context {
        s3: s3_client,
        bucket,
        format,
        events,
        stats: stats.clone(),
        readers: Arc::new(Semaphore::new(config.concurrency)),
        stop: shutdown.child_token(),
    });

    let mut order = Order::default();
    let mut progress = progress::Progress::new(total_units, skipped_units);
    let window = window(config.concurrency);
    let mut tasks: JoinSet<Finished> = JoinSet::new();
    let mut listing_done = false;
    // Set on SIGTERM/SIGINT: the end of the grace period.
    let mut stopping: Option<Instant> = None;
    let mut failures: BTreeMap<String, String> = BTreeMap::new();
    let mut dirty = false;
    let mut sink_failure = None;
    let mut list_failure = None;
    let mut lister = Some(lister);
    let mut save = tokio::time::interval(CHECKPOINT_EVERY);
    save.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut report = tokio::time::interval(progress.every());
    report.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let room = order.ahead() < window;
        if listing_done && tasks.is_empty() {
            break;
        }
        tokio::select! {
            listed = listed_rx.recv(), if room && !listing_done && !shutdown.is_cancelled() && sink_failure.is_none() => match listed {
                Some(Listing::Object(listed)) => {
                    let seq = order.deliver(&listed.key);
                    if resumed.contains(&listed.key) {
                        stats.counters::<BackfillCounters>().objects_resumed.add(1);
                        order.settle(seq);
                    } else {
                        let context = context.clone();
                        tasks.spawn(async move { read(&context, seq, listed).await });
                    }
                }
                Some(Listing::UnitDone) => progress.unit_done(),
                None => {
                    listing_done = true;
                    if let Some(joined) = lister.take() {
                        match joined.await.expect("the lister does not panic") {
                            Ok(()) => {}
                            Err(err) => {
                                error!(error = %err, "listing failed; stopping once what is in flight settled");
                                list_failure = Some(err);
                            }
                        }
                    }
                }
            },
            Some(joined) = tasks.join_next(), if !tasks.is_empty() => {
                let finished = match joined {
                    Ok(finished) => finished,
                    Err(err) => std::panic::resume_unwind(err.into_panic()),
                };
                dirty = true;
                settle(finished, &mut order, &mut checkpoint, &mut failures, &mut progress);
            }
            _ = save.tick(), if dirty && config.checkpoint.is_some() => {
                dirty = false;
                order.write_into(&mut checkpoint);
                store(&checkpoint, config.checkpoint.as_deref())?;
            }
            _ = report.tick() => progress.report(&checkpoint, &stats),
            joined = &mut indexer, if sink_failure.is_none() => {
                let reason = sink::stopped_early(joined);
                error!(reason, "the indexer stopped; stopping the backfill");
                sink_failure = Some(reason);
                context.stop.cancel();
                listing_done = true;
            }
            () = shutdown.cancelled(), if stopping.is_none() => {
                info!(in_flight = tasks.len(), grace = ?command.shared.shutdown_grace, "shutting down: no new objects, finishing those in flight");
                listing_done = true;
                let deadline = Instant::now() + command.shared.shutdown_grace;
                stopping = Some(deadline);
                let context_stop = context.stop.clone();
                tokio::spawn(async move {
                    tokio::time::sleep_until(deadline).await;
                    context_stop.cancel();
                });
            }
        }
    }
    drop(listed_rx);
    if let Some(lister) = lister.take() {
        lister.abort();
    }
    let interrupted = shutdown.is_cancelled() || sink_failure.is_some() || list_failure.is_some();
    checkpoint.complete = !interrupted && !order.has_unsettled();
    order.write_into(&mut checkpoint);
    store(&checkpoint, config.checkpoint.as_deref())?;
    progress.report(&checkpoint, &stats);
    progress.finish();

    // The last event sender goes with the context; the indexer finishes what it holds (on
    // shutdown, within what is left of the grace period: it may be retrying events of objects
    // given up on, which are read again on resume).
    drop(context);
    if sink_failure.is_none() {
        sink_failure = match stopping {
            None => sink::indexer_failure(indexer.await),
            Some(deadline) => {
                sink::finish_within(
                    indexer,
                    deadline,
                    "grace period over with events still unsettled",
                )
                .await
            }
        };
    }
    alerting.finish().await;
    if let Some(reason) = sink_failure {
        return Err(BackfillError::Indexer(reason));
    }
    if let Some(err) = list_failure {
        return Err(err.into());
    }
    let outcome = outcome(&checkpoint, &stats, &failures, shutdown.is_cancelled());
    info!(summary = ?outcome.summary, "backfill stopped");
    Ok(outcome)
}

fn store(checkpoint: &Checkpoint, path: Option<&std::path::Path>) -> Result<(), CheckpointError> {
    match path {
        Some(path) => checkpoint.store(path),
        None => Ok(()),
    }
}

fn outcome(
    checkpoint: &Checkpoint,
    stats: &Stats,
    reasons: &BTreeMap<String, String>,
    interrupted: bool,
) -> Outcome {
    Outcome {
        summary: stats.snapshot(),
        failed: checkpoint
            .failed
            .iter()
            .map(|key| (key.clone(), reasons.get(key).cloned()))
            .collect(),
        failed_total: checkpoint.failed_total,
        interrupted,
    }
}

/// What every object task shares.
struct Context {
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
async fn read(context: &Context, seq: u64, listed: Listed) -> Finished {
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

fn settle(
    finished: Finished,
    order: &mut Order,
    checkpoint: &mut Checkpoint,
    failures: &mut BTreeMap<String, String>,
    progress: &mut progress::Progress,
) {
    match finished.outcome {
        ObjectOutcome::Done(summary) => {
            checkpoint.objects_done += 1;
            checkpoint.events_done += summary.events;
            progress.object_done(summary.events);
        }
        ObjectOutcome::Failed(reason) => {
            checkpoint.add_failed(&finished.key);
            failures.insert(finished.key, reason);
        }
        ObjectOutcome::Abandoned => return,
    }
    order.settle(finished.seq);
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

    #[test]
    fn exit_codes() {
        let mut outcome = Outcome {
            summary: Summary::default(),
            failed: Vec::new(),
            failed_total: 0,
            interrupted: false,
        };
        assert_eq!(outcome.exit_code(), 0);
        outcome.failed_total = 1;
        assert_eq!(outcome.exit_code(), 1);
        outcome.interrupted = true;
        assert_eq!(outcome.exit_code(), 130);
    }
}
