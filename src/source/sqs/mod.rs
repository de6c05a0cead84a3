//! The SQS source: receive -> notification -> S3 objects -> CloudTrail events -> sink ->
//! delete, release or keep, until shutdown.
//!
//! - [`receive`] long-polls while a message slot is free (`--max-in-flight`);
//! - each message runs as its own task: [`notification`] names the objects, [`crate::source::s3`]
//!   streams each one through the CloudTrail format into the sink, and the message's ticket
//!   settles once every event did; a CloudTrail event that EventBridge put in the message
//!   itself goes through the same CloudTrail format, with no S3 read;
//! - [`ack::decide`] turns the verdict into a decision, and [`ack::run_disposer`] carries it
//!   out in batches;
//! - [`heartbeat`] keeps every received copy invisible while it is worked on.
//!
//! Shutdown (the runtime's [`Shutdown`], on SIGTERM/SIGINT): stop receiving, finishing the
//! poll in flight and making what it brings visible again at once; let in-flight messages
//! finish within the grace period; abandon the rest (SQS redelivers them); close the
//! disposer, which first carries out what it holds, so no finished work is lost. With
//! `--exit-when-idle` the same path runs once the queue holds no message at all (none
//! visible, in flight or delayed, at two checks half a second apart) and nothing is in
//! flight here; its long polls are kept short (1 s at most), so the exit comes within a few
//! seconds. If the sink stops early (a panic), the runtime halts the source: what is in
//! flight is abandoned and stays in the queue, and the run ends with an error.

pub mod ack;
pub mod heartbeat;
pub mod notification;
pub mod receive;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, Semaphore};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, info_span, warn, Instrument};

use crate::config::{Config, ObjectFormat, Shared};
use crate::format::cloudtrail;
use crate::format::{Destination, Format};
use crate::pipeline::{EventSender, Failure, Origin, Pending, Shutdown, Ticket, Verdict};
use crate::source::s3::{self, ObjectRef, ObjectSink};
use crate::source::{Context, Ended, Source, SourceError};
use crate::telemetry::Stats;
use ack::{Decision, Disposal, Policy, Receipt};
use receive::{Received, MAX_RECEIVE_BATCH};

/// How often an idle worker with `--exit-when-idle` asks whether the queue is drained.
const IDLE_CHECK_EVERY: Duration = Duration::from_millis(500);
/// The longest long poll with `--exit-when-idle`.
const IDLE_RECEIVE_WAIT: Duration = Duration::from_secs(1);

crate::telemetry::counters! {
    /// What the SQS source did with its messages (their deletion and release are the
    /// acknowledgement's, [`ack::AckCounters`]).
    pub struct SqsCounters {
        messages_received: "SQS messages received",
        messages_ignored: "SQS messages that are notifications of other services (AWS Config, SNS subscription confirmations, other EventBridge sources), deleted unread",
        messages_inline: "SQS messages that carried a CloudTrail event themselves (EventBridge \"... via CloudTrail\"), indexed without reading S3",
        messages_kept: "SQS messages that failed and were left for a later receive",
        messages_failed_permanent: "SQS messages that failed for good",
        messages_failed_transient: "SQS messages that failed for now and come back after their visibility timeout",
        messages_given_up: "SQS messages deleted after failing for good on their --max-receive-count receive",
        messages_abandoned: "SQS messages still in flight when the shutdown grace period ran out",
    }
}

/// The AWS clients the SQS source reads with.
#[derive(Clone)]
pub struct Clients {
    pub sqs: aws_sdk_sqs::Client,
    pub s3: aws_sdk_s3::Client,
}

impl Clients {
    /// Builds the clients from an AWS configuration (the standard chain in production,
    /// explicit endpoints and credentials in tests) and the worker configuration.
    pub fn new(aws: &aws_config::SdkConfig, config: &Config) -> Self {
        Clients {
            sqs: aws_sdk_sqs::Client::new(aws),
            s3: s3::client(aws, &config.s3),
        }
    }
}

/// The queue cannot be used (wrong URL, region or credentials).
#[derive(Debug, thiserror::Error)]
#[error("queue {url} is not usable: {message}")]
pub struct QueueError {
    pub url: String,
    pub message: String,
}

/// The SQS source: its configuration and clients.
pub struct Sqs {
    config: Config,
    clients: Clients,
}

impl Sqs {
    /// The source `config` asks for, reading with `clients`.
    pub fn with_clients(config: &Config, clients: Clients) -> Self {
        Sqs {
            config: config.clone(),
            clients,
        }
    }
}

impl Source for Sqs {
    type Command = Config;
    const AWS: bool = true;

    fn shared(command: &Config) -> &Shared {
        &command.shared
    }

    fn new(command: &Config, aws: Option<&aws_config::SdkConfig>) -> Result<Self, SourceError> {
        let aws =
            aws.ok_or_else(|| SourceError::new("the SQS source needs an AWS configuration"))?;
        Ok(Sqs::with_clients(command, Clients::new(aws, command)))
    }

    fn describe(&self) -> String {
        self.config.queue_url().to_string()
    }

    /// The objects' destinations; CloudTrail's always, since EventBridge may deliver
    /// CloudTrail events inline whatever the objects hold.
    fn destinations(&self) -> Vec<Destination> {
        let index = &self.config.shared.index;
        let mut destinations = s3::destinations(&self.config.s3, index);
        if !self.config.s3.object_format.reads_cloudtrail() {
            destinations.insert(0, s3::cloudtrail_destination(index));
        }
        destinations
    }

    fn register(stats: &Stats) {
        stats.counters::<SqsCounters>();
        stats.counters::<ack::AckCounters>();
        stats.counters::<heartbeat::HeartbeatCounters>();
        stats.counters::<s3::ObjectCounters>();
        stats.counters::<crate::format::RecordCounters>();
    }

    /// Receives until stopped (or, with `--exit-when-idle`, until the queue is drained and
    /// nothing is in flight here); gives what is in flight the grace period.
    async fn run(self, context: Context) -> Result<Ended, SourceError> {
        let mut worker = Worker::start(self, context).await?;
        worker.receive_until_stopped().await;
        let abandoned = worker.finish_in_flight().await;
        worker.stop().await;
        Ok(Ended {
            abandoned: abandoned > 0,
            ..Ended::default()
        })
    }
}

/// A running SQS source: its background tasks and the messages in flight.
struct Worker {
    config: Config,
    sqs: aws_sdk_sqs::Client,
    context: Arc<MessageContext>,
    shutdown: Shutdown,
    /// Stops receiving: on shutdown, or once idle with `--exit-when-idle`.
    stop_receiving: CancellationToken,
    messages: mpsc::Receiver<Received>,
    receiver: JoinHandle<()>,
    disposals: mpsc::Sender<Disposal>,
    disposer: JoinHandle<()>,
    stop_heartbeat: CancellationToken,
    heartbeat: JoinHandle<()>,
    tasks: JoinSet<Option<Disposal>>,
}

impl Worker {
    /// Checks the queue and starts the heartbeat, the receiver and the disposer.
    async fn start(source: Sqs, context: Context) -> Result<Self, SourceError> {
        let Sqs { config, clients } = source;
        let queue_url = config.queue_url().to_string();
        let queue = open_queue(&clients.sqs, &config).await?;
        let Context {
            events,
            free_form,
            stats,
            shutdown,
        } = context;
        stats.set(&stats.source_reachable, true);
        let in_flight = heartbeat::Registry::default();
        let stop_heartbeat = CancellationToken::new();
        let heartbeat = tokio::spawn(heartbeat::run(
            clients.sqs.clone(),
            queue_url.clone(),
            in_flight.clone(),
            queue.visibility_timeout,
            config.sqs.max_processing_time,
            stats.clone(),
            stop_heartbeat.clone(),
        ));
        let (disposals, disposal_rx) =
            mpsc::channel(config.sqs.max_in_flight.max(MAX_RECEIVE_BATCH));
        let disposer = tokio::spawn(ack::run_disposer(
            clients.sqs.clone(),
            queue_url.clone(),
            disposal_rx,
            stats.clone(),
        ));
        let stop_receiving = shutdown.stop_token().child_token();
        let (message_tx, messages) = mpsc::channel(MAX_RECEIVE_BATCH);
        let receiver = tokio::spawn(receive::run(receive::Receiver {
            sqs: clients.sqs.clone(),
            queue_url,
            wait: receive_wait(&config),
            slots: Arc::new(Semaphore::new(config.sqs.max_in_flight)),
            messages: message_tx,
            returns: disposals.clone(),
            stats: stats.clone(),
            stop: stop_receiving.clone(),
            give_up: shutdown.give_up_token().clone(),
        }));
        let context = Arc::new(MessageContext {
            s3: clients.s3,
            format: Arc::new(s3::object_format(&config.s3, free_form)),
            cloudtrail: cloudtrail::Options { free_form },
            object_format: config.s3.object_format,
            events,
            counters: stats.counters(),
            objects: stats.counters(),
            stats: stats.clone(),
            in_flight,
            policy: Policy {
                has_redrive_policy: queue.has_redrive_policy,
                max_receive_count: config.sqs.max_receive_count,
            },
        });
        info!(
            max_in_flight = config.sqs.max_in_flight,
            visibility_timeout = ?queue.visibility_timeout,
            heartbeat_every = ?heartbeat::interval(queue.visibility_timeout),
            "worker started"
        );
        stats.set(&stats.started, true);
        Ok(Worker {
            config,
            sqs: clients.sqs,
            context,
            shutdown,
            stop_receiving,
            messages,
            receiver,
            disposals,
            disposer,
            stop_heartbeat,
            heartbeat,
            tasks: JoinSet::new(),
        })
    }

    /// Runs each received message as its own task until the receiver stopped (shutdown, or
    /// idle with `--exit-when-idle`) and handed over everything it received.
    async fn receive_until_stopped(&mut self) {
        // Asked only once nothing has been received for a while, so that a busy start does
        // not pay for attribute calls.
        let mut idle_check =
            tokio::time::interval_at(Instant::now() + IDLE_CHECK_EVERY, IDLE_CHECK_EVERY);
        idle_check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_received = Instant::now();
        // The queue's counts are read apart, so a message whose visibility runs out as they
        // are read can be in none of them: drained means drained at two checks in a row.
        let mut drained_before = false;
        let exit_when_idle = self.config.exit_when_idle;
        loop {
            let idle = self.tasks.is_empty() && self.messages.is_empty();
            tokio::select! {
                received = self.messages.recv() => match received {
                    Some(Received { message, slot }) => {
                        self.context.counters.messages_received.add(1);
                        last_received = Instant::now();
                        drained_before = false;
                        let context = self.context.clone();
                        self.tasks.spawn(async move {
                            let disposal = process(&context, message).await;
                            drop(slot);
                            disposal
                        });
                    }
                    None => break,
                },
                Some(joined) = self.tasks.join_next(), if !self.tasks.is_empty() => {
                    forward(joined, &self.disposals).await;
                }
                _ = idle_check.tick(), if exit_when_idle && idle && !self.stop_receiving.is_cancelled() => {
                    let drained = last_received.elapsed() >= IDLE_CHECK_EVERY
                        && queue_is_drained(&self.sqs, self.config.queue_url()).await;
                    if drained && drained_before {
                        info!("the queue is drained and nothing is in flight; stopping");
                        self.stop_receiving.cancel();
                    }
                    drained_before = drained;
                }
            }
        }
    }

    /// Lets the messages in flight finish within the grace period (all of them when the
    /// source stopped by itself); returns how many were abandoned (SQS redelivers them).
    async fn finish_in_flight(&mut self) -> usize {
        if self.shutdown.is_requested() {
            info!(
                in_flight = self.tasks.len(),
                grace = ?self.shutdown.grace(),
                "shutting down: receiving stopped, finishing in-flight messages"
            );
        }
        let give_up = self.shutdown.give_up_token().clone();
        let mut abandoned = 0;
        while !self.tasks.is_empty() {
            tokio::select! {
                Some(joined) = self.tasks.join_next() => forward(joined, &self.disposals).await,
                () = give_up.cancelled() => {
                    abandoned = self.tasks.len();
                    warn!(abandoned, "grace period over; unfinished messages will be redelivered by SQS");
                    self.tasks.abort_all();
                    while let Some(joined) = self.tasks.join_next().await {
                        forward(joined, &self.disposals).await;
                    }
                }
            }
        }
        self.context
            .counters
            .messages_abandoned
            .add(abandoned as u64);
        abandoned
    }

    /// Carries out every disposal decided, then stops the heartbeat. The message tasks are
    /// gone, so the last event sender goes with the context.
    async fn stop(self) {
        drop(self.context);
        self.receiver.await.expect("the receiver does not panic");
        drop(self.disposals);
        self.disposer.await.expect("the disposer does not panic");
        self.stop_heartbeat.cancel();
        self.heartbeat.await.expect("the heartbeat does not panic");
    }
}

/// The queue's attributes; warns when nothing ends a message that can never succeed.
async fn open_queue(sqs: &aws_sdk_sqs::Client, config: &Config) -> Result<QueueInfo, SourceError> {
    let queue_url = config.queue_url();
    let queue = check_queue(sqs, queue_url)
        .await
        .map_err(SourceError::new)?;
    if !queue.has_redrive_policy && config.sqs.max_receive_count.is_none() {
        warn!(
            queue_url,
            "the queue has no redrive policy: a message that can never succeed is released with a growing delay (up to 15 min) and received again forever; give the queue a dead-letter queue, or set --max-receive-count"
        );
    }
    Ok(queue)
}

/// The long-poll wait: `--receive-wait`, kept short with `--exit-when-idle` so that the
/// poll in flight when the queue is found drained ends within a few seconds.
fn receive_wait(config: &Config) -> Duration {
    if config.exit_when_idle {
        config.sqs.receive_wait.min(IDLE_RECEIVE_WAIT)
    } else {
        config.sqs.receive_wait
    }
}

/// What the worker needs to know about its queue.
#[derive(Debug, Clone, Copy)]
pub struct QueueInfo {
    pub visibility_timeout: Duration,
    pub has_redrive_policy: bool,
}

/// Reads the queue's attributes; fails fast on a wrong queue URL, region or credentials.
pub async fn check_queue(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
) -> Result<QueueInfo, QueueError> {
    use aws_sdk_sqs::types::QueueAttributeName;
    let attributes = sqs
        .get_queue_attributes()
        .queue_url(queue_url)
        .attribute_names(QueueAttributeName::VisibilityTimeout)
        .attribute_names(QueueAttributeName::RedrivePolicy)
        .send()
        .await
        .map_err(|err| QueueError {
            url: queue_url.to_string(),
            message: aws_sdk_sqs::error::DisplayErrorContext(&err).to_string(),
        })?
        .attributes
        .unwrap_or_default();
    let visibility_timeout = attributes
        .get(&QueueAttributeName::VisibilityTimeout)
        .and_then(|v| v.parse().ok())
        .map(Duration::from_secs)
        .unwrap_or(Duration::from_secs(30));
    Ok(QueueInfo {
        visibility_timeout,
        has_redrive_policy: attributes.contains_key(&QueueAttributeName::RedrivePolicy),
    })
}

/// No message is visible, in flight (here or with another consumer) or delayed. An error
/// counts as "not drained": the worker keeps going and asks again.
async fn queue_is_drained(sqs: &aws_sdk_sqs::Client, queue_url: &str) -> bool {
    use aws_sdk_sqs::types::QueueAttributeName as A;
    let names = [
        A::ApproximateNumberOfMessages,
        A::ApproximateNumberOfMessagesNotVisible,
        A::ApproximateNumberOfMessagesDelayed,
    ];
    let answer = sqs
        .get_queue_attributes()
        .queue_url(queue_url)
        .set_attribute_names(Some(names.to_vec()))
        .send()
        .await;
    match answer {
        Ok(out) => {
            let attributes = out.attributes.unwrap_or_default();
            let count = |name: &A| {
                attributes
                    .get(name)
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(0)
            };
            let left: u64 = names.iter().map(count).sum();
            debug!(left, "messages left in the queue");
            left == 0
        }
        Err(err) => {
            warn!(error = %aws_sdk_sqs::error::DisplayErrorContext(&err), "cannot tell whether the queue is drained");
            false
        }
    }
}

async fn forward(
    joined: Result<Option<Disposal>, tokio::task::JoinError>,
    disposals: &mpsc::Sender<Disposal>,
) {
    match joined {
        Ok(Some(disposal)) => disposals
            .send(disposal)
            .await
            .expect("the disposer outlives the message tasks"),
        Ok(None) => {}
        Err(err) if err.is_cancelled() => {}
        Err(err) => std::panic::resume_unwind(err.into_panic()),
    }
}

struct MessageContext {
    s3: aws_sdk_s3::Client,
    format: Arc<dyn Format>,
    /// How a CloudTrail record delivered inline becomes its event.
    cloudtrail: cloudtrail::Options,
    object_format: ObjectFormat,
    events: EventSender,
    stats: Arc<Stats>,
    counters: Arc<SqsCounters>,
    objects: Arc<s3::ObjectCounters>,
    in_flight: heartbeat::Registry,
    policy: Policy,
}

/// Handles one message; returns what to do with it (nothing: let its visibility timeout
/// bring it back).
async fn process(
    context: &MessageContext,
    message: Box<aws_sdk_sqs::types::Message>,
) -> Option<Disposal> {
    let receipt = Receipt {
        message_id: message.message_id.clone().unwrap_or_default(),
        receipt_handle: message.receipt_handle.clone().unwrap_or_default(),
    };
    let _tracked = context
        .in_flight
        .track(&receipt.message_id, &receipt.receipt_handle);
    let receive_count = receive::receive_count(&message);
    let span = info_span!("message", message_id = %receipt.message_id, receive_count);
    async move {
        let stats = &context.stats;
        let _counted = stats.enter(&stats.messages_in_flight);
        let body = message.body.as_deref().unwrap_or("");
        let verdict = match notification::parse(body, context.object_format) {
            Err(error) => Err(Failure::new(notification::UnreadableNotification {
                error,
                body_start: body.chars().take(200).collect(),
            })),
            Ok(notification) => {
                if let notification::Kind::Ignored(what) = &notification.kind {
                    debug!(
                        what = what.as_str(),
                        "not a notification for this worker; deleting it"
                    );
                    context.counters.messages_ignored.add(1);
                    return Some(Disposal::Delete(receipt));
                }
                context
                    .objects
                    .keys_skipped
                    .add(notification.skipped.len() as u64);
                for reason in &notification.skipped {
                    debug!(reason = reason.as_str(), "announced key skipped");
                }
                let ticket = Ticket::new();
                if let Some(inline) = &notification.inline {
                    send_inline(context, inline, body, &ticket, &receipt.message_id).await;
                }
                for object in &notification.objects {
                    read_object(context, object, &ticket, &receipt.message_id).await;
                }
                let verdict = ticket.settle().await;
                if verdict.is_ok() {
                    debug!(
                        kind = ?notification.kind,
                        objects = notification.objects.len(),
                        skipped = notification.skipped.len(),
                        "message done; deleting"
                    );
                }
                verdict
            }
        };
        dispose(context, receipt, receive_count, verdict)
    }
    .instrument(span)
    .await
}

/// Carries the one decision into counters, one log line for a failed message, and the
/// disposal.
fn dispose(
    context: &MessageContext,
    receipt: Receipt,
    receive_count: u32,
    verdict: Verdict,
) -> Option<Disposal> {
    let counters = &context.counters;
    let decision = ack::decide(&verdict, receive_count, context.policy);
    let Err(failure) = verdict else {
        return Some(Disposal::Delete(receipt));
    };
    let message_id = receipt.message_id.as_str();
    if failure.is_transient() {
        counters.messages_failed_transient.add(1);
    } else {
        counters.messages_failed_permanent.add(1);
    }
    match decision {
        Decision::Delete => Some(Disposal::Delete(receipt)),
        Decision::GiveUp => {
            error!(
                message_id,
                receive_count,
                reason = %failure,
                "message failed for good on its last allowed receive (--max-receive-count); deleting it"
            );
            counters.messages_given_up.add(1);
            Some(Disposal::Delete(receipt))
        }
        Decision::Release(after) => {
            counters.messages_kept.add(1);
            error!(
                message_id,
                receive_count,
                reason = %failure,
                release_in = ?after,
                "message failed for good; releasing it for the queue's redrive policy"
            );
            Some(Disposal::Release(receipt, after))
        }
        Decision::Keep => {
            counters.messages_kept.add(1);
            warn!(
                message_id,
                receive_count,
                reason = %failure,
                "message failed for now; SQS will redeliver it after its visibility timeout"
            );
            None
        }
    }
}

/// Sends the CloudTrail event the message carries to the sink, made by the same CloudTrail
/// format as a record of a log; a record it cannot use fails the message for good.
async fn send_inline(
    context: &MessageContext,
    inline: &notification::Inline,
    body: &str,
    ticket: &Arc<Ticket>,
    message_id: &str,
) {
    context.counters.messages_inline.add(1);
    match cloudtrail::record_event(&inline.record, &context.cloudtrail, inline.time) {
        Ok(event) => {
            let origin = Origin::new(
                format!("EventBridge event {}", inline.id),
                serde_json::json!({
                    "sqs": {"message_id": message_id},
                    "eventbridge": {"id": inline.id, "detail_type": inline.detail_type},
                }),
            );
            // A closed sink drops the event, and its claim settles as a transient failure.
            let _ = context
                .events
                .send(Pending::new(event, Arc::new(origin), ticket.claim()))
                .await;
        }
        Err(err) => {
            error!(message_id, eventbridge_id = %inline.id, error = %err, "the CloudTrail event in the message is unusable");
            ticket.fail(Failure::new(notification::UnreadableNotification {
                error: notification::NotificationError::Record(err.to_string()),
                body_start: body.chars().take(200).collect(),
            }));
        }
    }
}

async fn read_object(
    context: &MessageContext,
    object: &ObjectRef,
    ticket: &Arc<Ticket>,
    message_id: &str,
) {
    let stats = &context.stats;
    let span = info_span!("object", bucket = %object.bucket, key = %object.key);
    let sink = ObjectSink {
        origin: Arc::new(object.origin(serde_json::json!({"sqs": {"message_id": message_id}}))),
        place: s3::S3_PLACE,
        format: context.format.clone(),
        ticket: ticket.clone(),
        events: context.events.clone(),
    };
    match s3::fetch(&context.s3, object, sink).instrument(span).await {
        Ok(summary) => {
            s3::count(stats, object, &summary);
            debug!(bucket = %object.bucket, key = %object.key, documents = summary.events, bytes = summary.stored_bytes, "object read");
        }
        Err(err) => {
            context.objects.objects_failed.add(1);
            error!(
                message_id,
                bucket = %object.bucket,
                key = %object.key,
                transient = err.is_transient(),
                error = %err,
                "object could not be read"
            );
            ticket.fail(Failure::new(s3::ObjectFailure {
                bucket: object.bucket.clone(),
                key: object.key.clone(),
                error: err,
            }));
        }
    }
}
