//! The Kafka source: a consumer group member -> records -> a record format -> the sink ->
//! offsets committed in order, until shutdown.
//!
//! - [`client`] builds the consumer from the flags and handles rebalances, commit results
//!   and statistics; [`partitions`] keeps, per assigned partition, which records are still
//!   unsettled and the offset that may be committed; `kafka check` is
//!   [`crate::check`]'s.
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

pub mod client;
pub mod partitions;

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use time::OffsetDateTime;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::config::{KafkaCommand, KafkaConfig, KafkaFormat, Shared as SharedConfig};
use crate::format::confluent::Confluent;
use crate::format::json::Json;
use crate::format::{Destination, FreeForm, RecordContext, RecordCounters, RecordFormat};
use crate::pipeline::{Event, EventSender, Origin, Pending, Shutdown, Ticket};
use crate::source::{Context, Ended, Source, SourceError};
use crate::telemetry::Stats;
pub use client::{consumer, ConsumerError, KafkaConsumer, KafkaCounters, Shared};
use partitions::TopicPartition;

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

impl Shared {
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

/// The Kafka source: a member of the consumer group `--kafka-group-id`.
pub struct Kafka {
    command: KafkaCommand,
}

impl Source for Kafka {
    type Command = KafkaCommand;
    const AWS: bool = false;

    fn shared(command: &KafkaCommand) -> &SharedConfig {
        &command.shared
    }

    fn new(command: &KafkaCommand, _: Option<&aws_config::SdkConfig>) -> Result<Self, SourceError> {
        Ok(Kafka {
            command: command.clone(),
        })
    }

    fn describe(&self) -> String {
        format!("kafka topics {}", self.command.kafka.topics().join(","))
    }

    fn destinations(&self) -> Vec<Destination> {
        let format = record_format(&self.command.kafka, FreeForm::Objects);
        let prefix = self.command.shared.index.prefix();
        vec![Destination::new(
            format.dataset(),
            prefix,
            format.mappings(),
        )]
    }

    fn register(stats: &Stats) {
        stats.counters::<KafkaCounters>();
        stats.counters::<RecordCounters>();
    }

    /// Consumes until stopped (or, with `--exit-when-idle`, until everything assigned is
    /// read and committed); records in flight get the grace period, what settled is
    /// committed, and the group is left.
    async fn run(self, context: Context) -> Result<Ended, SourceError> {
        let config = &self.command.kafka;
        let Context {
            events,
            free_form,
            stats,
            shutdown,
        } = context;
        let (consumer, shared) = consumer(config, stats.clone()).map_err(SourceError::new)?;
        let consumer = Arc::new(consumer);
        let topics = config.topics();
        client::topics_exist(&consumer, &topics, BROKER_TIMEOUT)
            .await
            .map_err(SourceError::new)?;
        let names: Vec<&str> = topics.iter().map(String::as_str).collect();
        consumer.subscribe(&names).map_err(|e| {
            SourceError::new(ConsumerError(format!(
                "subscribing to {names:?} failed: {e}"
            )))
        })?;
        stats.set(&stats.source_reachable, true);
        info!(topics = ?topics, group = %config.kafka_group_id, "worker started");
        stats.set(&stats.started, true);
        let mut worker = Worker {
            consumer: consumer.clone(),
            shared,
            counters: stats.counters(),
            records: stats.counters(),
            stats,
            events,
            format: record_format(config, free_form),
            tasks: JoinSet::new(),
            backlog: VecDeque::new(),
            paused: None,
            stop_retrying: CancellationToken::new(),
        };
        worker.consume(&shutdown, self.command.exit_when_idle).await;
        let abandoned = worker.finish(&shutdown).await;
        // Leaving the group revokes the partitions, committing anything left.
        consumer.unsubscribe();
        Ok(Ended {
            abandoned,
            ..Ended::default()
        })
    }
}

impl Worker {
    /// Reads records and hands them to the sink until stopping is asked for or, with
    /// `exit_when_idle`, every assigned partition is read to its end and committed.
    async fn consume(&mut self, shutdown: &Shutdown, exit_when_idle: bool) {
        let consumer = self.consumer.clone();
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_commit = Instant::now();
        let mut sending: Option<Sending> = None;
        loop {
            // Hand the backlog to the sink, a batch at a time, while it has room.
            while sending.is_none() && !self.backlog.is_empty() {
                sending = self.start_batch();
            }
            let blocked = sending.is_some();
            let poll = !blocked || self.paused.is_some();
            tokio::select! {
                biased;
                () = shutdown.requested() => break,
                sent = async { sending.as_mut().expect("guarded").wait().await }, if blocked => {
                    let send = sending.take().expect("guarded");
                    if sent.is_err() {
                        continue; // the sink is gone; the runtime stops this source
                    }
                    self.spawn_settle(send);
                }
                received = consumer.recv(), if poll => match received {
                    Ok(message) => {
                        self.receive(&message);
                        drop(message);
                        self.receive_fetched(&consumer).await;
                    }
                    Err(err) => {
                        warn!(error = %err, "consuming failed; retrying");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                },
                Some(_) = self.tasks.join_next(), if !self.tasks.is_empty() => {}
                _ = tick.tick() => {
                    self.pace(sending.as_ref().map(Sending::since));
                    if last_commit.elapsed() >= COMMIT_EVERY {
                        self.commit(CommitMode::Async);
                        last_commit = Instant::now();
                    }
                    if exit_when_idle && !blocked && self.backlog.is_empty()
                        && self.is_drained().await
                    {
                        info!("every assigned partition is read to its end and committed; stopping");
                        break;
                    }
                }
            }
        }
    }

    /// Takes what else is already fetched, without waiting, into the same batch.
    async fn receive_fetched(&mut self, consumer: &KafkaConsumer) {
        while self.backlog.len() < BATCH_RECORDS {
            match tokio::time::timeout(Duration::ZERO, consumer.recv()).await {
                Ok(Ok(message)) => self.receive(&message),
                _ => break,
            }
        }
    }

    /// Stops reading: records waiting for room are given up (not committed; read again next
    /// time), records in the sink get the grace period to settle, and what settled is
    /// committed. Returns whether records were given up on while in the sink.
    async fn finish(mut self, shutdown: &Shutdown) -> bool {
        if shutdown.is_requested() {
            info!(grace = ?shutdown.grace(), "shutting down: reading stopped, finishing records in flight");
        }
        self.backlog.clear();
        let give_up = shutdown.give_up_token().clone();
        let mut abandoned = false;
        while !self.tasks.is_empty() {
            tokio::select! {
                Some(_) = self.tasks.join_next() => {}
                () = give_up.cancelled() => {
                    warn!(unsettled = self.tasks.len(), "grace period over; unsettled records are not committed and are read again");
                    abandoned = true;
                    break;
                }
            }
        }
        self.stop_retrying.cancel();
        self.tasks.abort_all();
        while self.tasks.join_next().await.is_some() {}
        self.commit(CommitMode::Sync);
        abandoned
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
            future: Box::pin({
                let events = self.events.clone();
                async move { events.send_all(pendings).await }
            }),
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
                if events.send_all(pendings).await.is_err() {
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
