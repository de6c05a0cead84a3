//! The Kafka source: a consumer group member -> records -> a record format -> the sink ->
//! offsets committed in order, until shutdown.
//!
//! - [`client`] builds the consumer from the flags and handles rebalances, commit results
//!   and statistics; [`partitions`] keeps, per assigned partition, which records are still
//!   unsettled and the offset that may be committed; [`check`] is `kafka check`.
//! - Every record becomes one event ([`RecordFormat`]); what is already fetched goes to the
//!   sink in batches of up to [`BATCH_RECORDS`] under one ticket. A record that is no JSON is
//!   sent to the dead-letter index instead, with its topic, partition, offset and the reason.
//!   Once a batch's ticket settles, its records' offsets settle. Offsets are committed (every
//!   second, on revocation and at exit) only up to the first record not yet settled, and never
//!   automatically; a batch with a failed event is sent again, with a growing delay, until it
//!   settles (what was indexed meanwhile answers 409), so nothing is skipped.
//! - Backpressure: records wait for room in the sink's byte budget. When a record has waited
//!   [`PAUSE_AFTER`], every assigned partition is paused, so that memory stays bounded while
//!   the consumer keeps polling (and so keeps its group membership); they resume once the
//!   sink takes records again.
//! - Rebalance: revoked partitions wait (up to 5 s) for their records in flight, commit what
//!   settled and go; what was still unsettled is read again by the next owner, and indexed
//!   once because its `_id` is the same.
//! - Shutdown (SIGTERM/SIGINT, or `--exit-when-idle` once every assigned partition is read to
//!   its end and committed): stop reading, let records in flight settle within the grace
//!   period, commit what settled, leave the group.

pub mod check;
pub mod client;
pub mod partitions;

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use crate::detect;
use crate::sink::elasticsearch::Cluster;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use time::OffsetDateTime;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::config::{KafkaCommand, KafkaConfig, KafkaFormat};
use crate::format::confluent::Confluent;
use crate::format::json::Json;
use crate::format::Destination;
use crate::format::{FreeForm, RecordContext, RecordCounters, RecordFormat};
use crate::pipeline::{Event, EventSender, Origin, Pending, Ticket};
use crate::sink::elasticsearch::{self as sink, SinkError};
use crate::telemetry::{metrics, Stats, Summary};
use client::Context;
use partitions::{Partitions, TopicPartition};

/// Records handed to the sink together, under one ticket.
pub const BATCH_RECORDS: usize = 500;
/// A record that waited this long for room in the sink pauses the partitions.
pub const PAUSE_AFTER: Duration = Duration::from_secs(1);
/// How often settled offsets are committed, the idle check runs and paused partitions are
/// looked at.
const TICK: Duration = Duration::from_millis(500);
/// Commits are sent at most this often while running (and always at revocation and exit).
const COMMIT_EVERY: Duration = Duration::from_secs(1);
/// Delays between attempts of a record whose event failed.
const RETRY_MIN: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(60);
/// Broker requests made at start and by the idle check wait this long at most.
const BROKER_TIMEOUT: Duration = Duration::from_secs(10);

crate::telemetry::counters! {
    /// What the Kafka source consumed and committed.
    pub struct KafkaCounters {
        records_consumed: "Kafka records received",
        records_retried: "Kafka records sent to the cluster again after a failure (their offsets wait)",
        offset_commits: "Kafka offset commits that succeeded",
        offset_commit_failures: "Kafka offset commits that failed (retried at the next commit)",
        rebalances: "Kafka partition revocations (rebalances, shutdown)",
    }
}

type KafkaConsumer = StreamConsumer<Context>;

#[derive(Debug, thiserror::Error)]
pub enum KafkaSourceError {
    #[error(transparent)]
    Rules(#[from] crate::detect::RulesError),
    #[error(transparent)]
    Sink(#[from] SinkError),
    #[error("kafka: {0}")]
    Consumer(String),
    #[error("cannot listen for metrics on {addr}: {source}")]
    Metrics {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("the indexer stopped: {0}; records in flight are not committed and are read again")]
    Indexer(String),
}

/// The record format the flags ask for, writing free-form values the `free_form` way.
pub fn record_format(config: &KafkaConfig, free_form: FreeForm) -> Arc<dyn RecordFormat> {
    match config.kafka_format {
        KafkaFormat::Confluent => Arc::new(Confluent { free_form }),
        KafkaFormat::Json => Arc::new(Json::new(
            config.kafka_id_field.as_deref(),
            config.kafka_time_field.as_deref(),
        )),
    }
}

/// Creates the consumer (not yet subscribed).
pub fn consumer(
    config: &KafkaConfig,
    stats: Arc<Stats>,
) -> Result<(KafkaConsumer, Shared), KafkaSourceError> {
    let shared = Shared {
        partitions: Arc::new(Mutex::new(Partitions::default())),
        settled: Arc::new(Condvar::new()),
    };
    let lag = Arc::new(client::ConsumerLag::default());
    stats.collect(lag.clone());
    let context = Context {
        shared: shared.clone(),
        counters: stats.counters(),
        stats,
        lag,
    };
    let consumer = client::properties(config)
        .create_with_context(context)
        .map_err(|e| KafkaSourceError::Consumer(format!("creating the consumer failed: {e}")))?;
    Ok((consumer, shared))
}

/// The partition state the consume loop shares with the consumer's callbacks and with the
/// tasks that wait for records to settle; `settled` is notified whenever records settle, for
/// a revocation waiting on its partitions.
#[derive(Clone)]
pub struct Shared {
    partitions: Arc<Mutex<Partitions>>,
    settled: Arc<Condvar>,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Partitions> {
        self.partitions
            .lock()
            .expect("the partitions lock is never poisoned")
    }

    /// The records of `batch` settled.
    fn settle(&self, batch: &[Attempt]) {
        let mut partitions = self.lock();
        for a in batch {
            partitions.settle(&a.tp, a.generation, a.offset);
        }
        drop(partitions);
        self.settled.notify_all();
    }
}

/// A received record, detached from the consumer, with its generation.
struct Received {
    tp: TopicPartition,
    offset: u64,
    generation: u64,
    timestamp: Option<OffsetDateTime>,
    payload: Option<Vec<u8>>,
}

impl Received {
    fn from(message: &BorrowedMessage<'_>, generation: u64) -> Self {
        Received {
            tp: (message.topic().to_string(), message.partition()),
            offset: message.offset().max(0) as u64,
            generation,
            timestamp: message.timestamp().to_millis().and_then(|ms| {
                OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok()
            }),
            payload: message.payload().map(<[u8]>::to_vec),
        }
    }

    fn position(&self) -> String {
        format!("{}-{}-{}", self.tp.0, self.tp.1, self.offset)
    }

    fn origin(&self) -> Origin {
        Origin::new(
            format!("kafka://{}/{}/{}", self.tp.0, self.tp.1, self.offset),
            serde_json::json!({"kafka": {"topic": self.tp.0, "partition": self.tp.1, "offset": self.offset}}),
        )
    }

    /// The record's event, or (for a record that is no JSON) what goes to the dead letter.
    fn into_pending(
        self,
        format: &dyn RecordFormat,
        records: &RecordCounters,
    ) -> (Event, Option<String>, Arc<Origin>) {
        let position = self.position();
        let origin = Arc::new(self.origin());
        let context = RecordContext {
            position: &position,
            fallback_time: self.timestamp,
        };
        let payload = self.payload.as_deref().unwrap_or_default();
        let refused = match self.payload.as_deref() {
            None => Err("the record has no value".to_string()),
            Some(bytes) => format.event(bytes, &context).map_err(|e| e.to_string()),
        };
        match refused {
            Ok(event) => {
                if event.used_fallback_time {
                    records.records_fallback_time.add(1);
                }
                (event, None, origin)
            }
            Err(reason) => {
                records.records_unreadable.add(1);
                warn!(origin = %origin, reason, "record is not usable; sending it to the dead-letter index");
                let time = self.timestamp.unwrap_or(OffsetDateTime::UNIX_EPOCH);
                let event = Event::unreadable(position, payload.to_vec(), time, format.dataset());
                (event, Some(reason), origin)
            }
        }
    }
}

/// Runs until `shutdown` is cancelled (or, with `--exit-when-idle`, everything assigned is
/// read and committed) and returns what was done.
pub async fn run(
    command: &KafkaCommand,
    cluster: Cluster,
    shutdown: CancellationToken,
) -> Result<Summary, KafkaSourceError> {
    let config = &command.kafka;
    let stats = Arc::new(Stats::default());
    stats.counters::<KafkaCounters>();
    stats.counters::<RecordCounters>();
    let metrics_server = metrics::serve_if(command.shared.telemetry.metrics_listen, stats.clone())
        .await
        .map_err(|(addr, source)| KafkaSourceError::Metrics { addr, source })?;
    let detector = detect::from_config(&command.shared.detect)?;
    let probe = record_format(config, FreeForm::Objects);
    let destinations = detect::destinations(
        &command.shared.detect,
        command.shared.index.prefix(),
        vec![Destination::new(
            probe.dataset(),
            command.shared.index.prefix(),
            probe.mappings(),
        )],
    );
    let (_, free_form) = sink::prepare(
        &cluster,
        &command.shared.cluster,
        &command.shared.index,
        &destinations,
    )
    .await?;
    let format = record_format(config, free_form);
    stats.set(&stats.cluster_reachable, true);

    let (consumer, shared) = consumer(config, stats.clone())?;
    let consumer = Arc::new(consumer);
    let topics = config.topics();
    check::topics_exist(&consumer, &topics, BROKER_TIMEOUT).await?;
    let names: Vec<&str> = topics.iter().map(String::as_str).collect();
    consumer
        .subscribe(&names)
        .map_err(|e| KafkaSourceError::Consumer(format!("subscribing to {names:?} failed: {e}")))?;
    stats.set(&stats.source_reachable, true);
    let settings = sink::settings(&command.shared.bulk, &command.shared.index, &destinations);
    let (events, mut indexer) = sink::start(cluster, settings, stats.clone());
    let (events, mut alerting) = detect::attach(
        events,
        detector,
        &command.shared.detect,
        &format!("kafka topics {}", topics.join(",")),
        &destinations,
        free_form,
        &stats,
    );
    info!(topics = ?topics, group = %config.kafka_group_id, "worker started");
    stats.set(&stats.started, true);

    let stop_retrying = CancellationToken::new();
    let mut worker = Worker {
        consumer: consumer.clone(),
        shared: shared.clone(),
        counters: stats.counters(),
        records: stats.counters(),
        stats: stats.clone(),
        events,
        format,
        tasks: JoinSet::new(),
        backlog: VecDeque::new(),
        paused: None,
        stop_retrying: stop_retrying.clone(),
    };
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_commit = Instant::now();
    let mut sink_failure = None;
    let mut sending: Option<Sending> = None;
    loop {
        // Hand the backlog to the sink, a batch at a time, while it has room.
        while sending.is_none() && !worker.backlog.is_empty() {
            sending = worker.start_batch();
        }
        let blocked = sending.is_some();
        let poll = !blocked || worker.paused.is_some();
        tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            joined = &mut indexer, if sink_failure.is_none() => {
                let reason = sink::stopped_early(joined);
                error!(reason, "the indexer stopped; stopping the worker");
                sink_failure = Some(reason);
                break;
            }
            sent = async { sending.as_mut().expect("guarded").wait().await }, if blocked => {
                let send = sending.take().expect("guarded");
                if sent.is_err() {
                    continue; // the indexer is gone; its branch above reports it
                }
                worker.spawn_settle(send);
            }
            received = consumer.recv(), if poll => match received {
                Ok(message) => {
                    worker.receive(&message);
                    drop(message);
                    // Take what else is already fetched, without waiting, into the same batch.
                    while worker.backlog.len() < BATCH_RECORDS {
                        match tokio::time::timeout(Duration::ZERO, consumer.recv()).await {
                            Ok(Ok(message)) => worker.receive(&message),
                            _ => break,
                        }
                    }
                }
                Err(err) => {
                    warn!(error = %err, "consuming failed; retrying");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            },
            Some(_) = worker.tasks.join_next(), if !worker.tasks.is_empty() => {}
            _ = tick.tick() => {
                worker.pace(sending.as_ref().map(Sending::since));
                if last_commit.elapsed() >= COMMIT_EVERY {
                    worker.commit(CommitMode::Async);
                    last_commit = Instant::now();
                }
                if command.exit_when_idle && !blocked && worker.backlog.is_empty()
                    && worker.is_drained().await
                {
                    info!("every assigned partition is read to its end and committed; stopping");
                    break;
                }
            }
        }
    }

    // Stop: records waiting for room are given up (not committed; read again next time),
    // records in the sink get the grace period to settle.
    if shutdown.is_cancelled() {
        info!(grace = ?command.shared.shutdown_grace, "shutting down: reading stopped, finishing records in flight");
    }
    drop(sending);
    worker.backlog.clear();
    let deadline = Instant::now() + command.shared.shutdown_grace;
    while !worker.tasks.is_empty() && sink_failure.is_none() {
        tokio::select! {
            Some(_) = worker.tasks.join_next() => {}
            () = tokio::time::sleep_until(deadline) => {
                warn!(unsettled = worker.tasks.len(), "grace period over; unsettled records are not committed and are read again");
                break;
            }
        }
    }
    stop_retrying.cancel();
    worker.tasks.abort_all();
    while worker.tasks.join_next().await.is_some() {}
    worker.commit(CommitMode::Sync);
    // What settled is committed; whatever the indexer still holds belongs to records given
    // up on (not committed, read again next time), so it is stopped rather than waited for.
    drop(worker);
    alerting.quiet().await;
    if sink_failure.is_none() {
        indexer.abort();
        sink_failure = sink::indexer_failure(indexer.await);
    }
    alerting.finish().await;
    // Leaving the group revokes the partitions (committing anything left) before the summary.
    consumer.unsubscribe();
    drop(consumer);
    metrics_server.stop().await;
    let summary = stats.snapshot();
    info!(?summary, "worker stopped");
    match sink_failure {
        Some(reason) => Err(KafkaSourceError::Indexer(reason)),
        None => Ok(summary),
    }
}

/// One record of a batch: what it sends to the sink (kept until it settled, so that it can
/// be sent again) and where it is.
struct Attempt {
    event: Event,
    origin: Arc<Origin>,
    refusal: Option<String>,
    tp: TopicPartition,
    generation: u64,
    offset: u64,
}

impl Attempt {
    fn pending(&self, ticket: &Arc<Ticket>) -> Pending {
        let event = self.event.clone();
        match &self.refusal {
            Some(reason) => {
                Pending::refused(event, self.origin.clone(), ticket.claim(), reason.as_str())
            }
            None => Pending::new(event, self.origin.clone(), ticket.claim()),
        }
    }
}

/// Sends every attempt of a batch under one ticket.
async fn send_all(
    events: EventSender,
    pendings: Vec<Pending>,
) -> Result<(), crate::pipeline::Closed> {
    for pending in pendings {
        events.send(pending).await?;
    }
    Ok(())
}

/// A batch of records on its way into the sink, waiting for room.
struct Sending {
    future: std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<(), crate::pipeline::Closed>> + Send>,
    >,
    ticket: Arc<Ticket>,
    batch: Vec<Attempt>,
    since: Instant,
}

impl Sending {
    async fn wait(&mut self) -> Result<(), crate::pipeline::Closed> {
        (&mut self.future).await
    }

    fn since(&self) -> Instant {
        self.since
    }
}

/// The consume loop's state.
struct Worker {
    consumer: Arc<KafkaConsumer>,
    shared: Shared,
    stats: Arc<Stats>,
    counters: Arc<KafkaCounters>,
    records: Arc<RecordCounters>,
    events: EventSender,
    format: Arc<dyn RecordFormat>,
    /// Settle tasks: one per record in the sink.
    tasks: JoinSet<()>,
    /// Records received and not yet handed to the sink.
    backlog: VecDeque<Received>,
    /// The partitions paused for backpressure.
    paused: Option<TopicPartitionList>,
    stop_retrying: CancellationToken,
}

impl Worker {
    /// Accounts a received record and queues it; a record of a partition that is not ours
    /// (any more) is left alone.
    fn receive(&mut self, message: &BorrowedMessage<'_>) {
        self.counters.records_consumed.add(1);
        self.stats.set(&self.stats.source_reachable, true);
        let tp = (message.topic().to_string(), message.partition());
        let offset = message.offset().max(0) as u64;
        if let Some(generation) = self.shared.lock().deliver(&tp, offset) {
            self.backlog.push_back(Received::from(message, generation));
        }
    }

    /// Starts handing the next batch of the backlog to the sink, under one ticket; `None`
    /// when every record taken was stale (its partition was revoked since).
    fn start_batch(&mut self) -> Option<Sending> {
        let take = self.backlog.len().min(BATCH_RECORDS);
        let records: Vec<Received> = self.backlog.drain(..take).collect();
        let batch: Vec<Attempt> = {
            let partitions = self.shared.lock();
            records
                .into_iter()
                .filter(|r| partitions.is_current(&r.tp, r.generation))
                .collect::<Vec<_>>()
        }
        .into_iter()
        .map(|record| {
            let (tp, generation, offset) = (record.tp.clone(), record.generation, record.offset);
            let (event, refusal, origin) = record.into_pending(self.format.as_ref(), &self.records);
            Attempt {
                event,
                origin,
                refusal,
                tp,
                generation,
                offset,
            }
        })
        .collect();
        if batch.is_empty() {
            return None;
        }
        let ticket = Ticket::new();
        let pendings = batch.iter().map(|a| a.pending(&ticket)).collect();
        Some(Sending {
            future: Box::pin(send_all(self.events.clone(), pendings)),
            ticket,
            batch,
            since: Instant::now(),
        })
    }

    /// The batch is in the sink: wait for it to settle in a task, sending it again after a
    /// failure (with a growing delay; what was indexed meanwhile answers 409), then settle
    /// its offsets.
    fn spawn_settle(&mut self, send: Sending) {
        let Sending {
            mut ticket,
            mut batch,
            ..
        } = send;
        let shared = self.shared.clone();
        let events = self.events.clone();
        let counters = self.counters.clone();
        let stop = self.stop_retrying.clone();
        self.tasks.spawn(async move {
            let mut delay = RETRY_MIN;
            while let Err(failure) = ticket.settle().await {
                // Records of revoked partitions are the next owner's to read again.
                batch.retain(|a| shared.lock().is_current(&a.tp, a.generation));
                let Some(first) = batch.first() else { return };
                error!(
                    records = batch.len(), first = %first.origin, error = %failure, retry_in = ?delay,
                    "records not settled; sending them again (their offsets are not committed until they settle)"
                );
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(delay) => {}
                }
                delay = (delay * 2).min(RETRY_MAX);
                counters.records_retried.add(batch.len() as u64);
                ticket = Ticket::new();
                let pendings = batch.iter().map(|a| a.pending(&ticket)).collect();
                if send_all(events.clone(), pendings).await.is_err() {
                    return;
                }
            }
            shared.settle(&batch);
        });
    }

    /// Pauses every assigned partition once a record has waited too long for room, and
    /// resumes them once the sink takes records again.
    fn pace(&mut self, waiting_since: Option<Instant>) {
        let waiting = waiting_since.is_some_and(|since| since.elapsed() >= PAUSE_AFTER);
        match (&self.paused, waiting) {
            (None, true) => {
                let Ok(assignment) = self.consumer.assignment() else {
                    return;
                };
                match self.consumer.pause(&assignment) {
                    Ok(()) => {
                        warn!(partitions = assignment.count(), "the cluster is not keeping up; partitions paused (the group membership is kept)");
                        self.paused = Some(assignment);
                    }
                    Err(err) => warn!(error = %err, "pausing the partitions failed"),
                }
            }
            (Some(paused), false) if self.backlog.is_empty() => {
                // Only what is still assigned can be resumed.
                let owned = self.shared.lock().owned();
                let mut list = TopicPartitionList::new();
                for e in paused.elements() {
                    if owned.contains(&(e.topic().to_string(), e.partition())) {
                        list.add_partition(e.topic(), e.partition());
                    }
                }
                if let Err(err) = self.consumer.resume(&list) {
                    warn!(error = %err, "resuming the partitions failed");
                }
                info!(
                    partitions = list.count(),
                    "the cluster takes records again; partitions resumed"
                );
                self.paused = None;
            }
            _ => {}
        }
    }

    /// Commits every offset that moved.
    fn commit(&self, mode: CommitMode) {
        let offsets = self.shared.lock().take_commits();
        if offsets.is_empty() {
            return;
        }
        let list = client::offsets_list(&offsets);
        match self.consumer.commit(&list, mode) {
            Ok(()) if matches!(mode, CommitMode::Sync) => {
                self.counters.offset_commits.add(1);
                info!(offsets = %client::describe_offsets(&offsets), "offsets committed");
            }
            Ok(()) => {}
            Err(err) => {
                self.counters.offset_commit_failures.add(1);
                warn!(error = %err, "committing offsets failed; retrying at the next commit");
                let mut partitions = self.shared.lock();
                for (tp, offset) in &offsets {
                    partitions.commit_failed(tp, *offset);
                }
            }
        }
    }

    /// Nothing is in flight, everything settled is committed, and every assigned
    /// partition is read to its end.
    async fn is_drained(&self) -> bool {
        let owned = {
            let partitions = self.shared.lock();
            if partitions.unsettled() || !partitions.all_committed() || !self.tasks.is_empty() {
                return false;
            }
            partitions.owned()
        };
        if owned.is_empty() {
            return false;
        }
        let consumer = self.consumer.clone();
        let committed: Vec<Option<u64>> = {
            let partitions = self.shared.lock();
            owned.iter().map(|tp| partitions.committed(tp)).collect()
        };
        tokio::task::spawn_blocking(move || {
            let mut list = TopicPartitionList::new();
            for (topic, partition) in &owned {
                list.add_partition(topic, *partition);
            }
            let group = consumer.committed_offsets(list, BROKER_TIMEOUT).ok();
            let positions = consumer.position().ok();
            owned
                .iter()
                .zip(committed)
                .all(|((topic, partition), ours)| {
                    let Ok((low, high)) =
                        consumer.fetch_watermarks(topic, *partition, BROKER_TIMEOUT)
                    else {
                        return false;
                    };
                    let offset_in = |list: &Option<TopicPartitionList>| match list
                        .as_ref()
                        .and_then(|l| l.find_partition(topic, *partition))
                        .map(|e| e.offset())
                    {
                        Some(Offset::Offset(o)) => Some(o),
                        _ => None,
                    };
                    let read_to = [
                        ours.map(|o| o as i64),
                        offset_in(&group),
                        offset_in(&positions),
                    ]
                    .into_iter()
                    .flatten()
                    .max();
                    high <= low || read_to.is_some_and(|o| o >= high)
                })
        })
        .await
        .unwrap_or(false)
    }
}
