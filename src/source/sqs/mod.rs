//! The SQS source: receive -> notification -> S3 objects -> CloudTrail events -> sink ->
//! delete, release or keep, until shutdown.
//!
//! - [`receive`] long-polls while a message slot is free (`--max-in-flight`);
//! - each message runs as its own task: [`notification`] names the objects, [`crate::source::s3`]
//!   streams each one through the CloudTrail format into the sink, and the message's ticket
//!   settles once every event did;
//! - [`ack::decide`] turns the verdict into a decision, and [`ack::run_disposer`] carries it
//!   out in batches;
//! - [`heartbeat`] keeps every received copy invisible while it is worked on.
//!
//! Shutdown (the token is cancelled on SIGTERM/SIGINT): stop receiving; let in-flight
//! messages finish within the grace period; abandon the rest (SQS redelivers them); close the
//! sink and the disposer, which first finish what they hold, so no finished work is lost.
//! With `--exit-when-idle` the same path runs once the queue holds no message at all (none
//! visible, in flight or delayed) and nothing is in flight here. If the sink stops early (a
//! panic), receiving stops, what is in flight settles as failed and stays in the queue, and
//! [`run`] returns an error.

pub mod ack;
pub mod heartbeat;
pub mod notification;
pub mod receive;

use std::sync::Arc;
use std::time::Duration;

use crate::detect;
use crate::sink::elasticsearch::Cluster;
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, info_span, warn, Instrument};

use crate::config::Config;
use crate::config::ObjectFormat;
use crate::format::Format;
use crate::pipeline::{EventSender, Failure, Ticket, Verdict};
use crate::sink::elasticsearch::{self as sink, ClusterError, SinkError, SinkHandle};
use crate::source::s3::{self, ObjectRef, ObjectSink};
use crate::telemetry::{metrics, Stats, Summary};
use ack::{Decision, Disposal, Policy, Receipt};
use receive::{Received, MAX_RECEIVE_BATCH};

/// How often an idle worker with `--exit-when-idle` asks whether the queue is drained.
const IDLE_CHECK_EVERY: Duration = Duration::from_millis(500);

crate::telemetry::counters! {
    /// What the SQS source did with its messages (their deletion and release are the
    /// acknowledgement's, [`ack::AckCounters`]).
    pub struct SqsCounters {
        messages_received: "SQS messages received",
        messages_ignored: "SQS messages that are notifications of other services (AWS Config, SNS subscription confirmations, other EventBridge sources), deleted unread",
        messages_kept: "SQS messages that failed and were left for a later receive",
        messages_failed_permanent: "SQS messages that failed for good",
        messages_failed_transient: "SQS messages that failed for now and come back after their visibility timeout",
        messages_given_up: "SQS messages deleted after failing for good on their --max-receive-count receive",
        messages_abandoned: "SQS messages still in flight when the shutdown grace period ran out",
    }
}

/// The clients every stage shares; nothing else is shared.
#[derive(Clone)]
pub struct Clients {
    pub sqs: aws_sdk_sqs::Client,
    pub s3: aws_sdk_s3::Client,
    pub cluster: Cluster,
}

impl Clients {
    /// Builds the clients from an AWS configuration (the standard chain in production,
    /// explicit endpoints and credentials in tests) and the worker configuration.
    pub fn new(aws: &aws_config::SdkConfig, config: &Config) -> Result<Self, ClusterError> {
        Ok(Clients {
            sqs: aws_sdk_sqs::Client::new(aws),
            s3: s3::client(aws, &config.s3),
            cluster: sink::client::connect(&config.shared.cluster, Some(aws))?,
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error(transparent)]
    Rules(#[from] crate::detect::RulesError),
    #[error(transparent)]
    Sink(#[from] SinkError),
    #[error("queue {url} is not usable: {message}")]
    Queue { url: String, message: String },
    #[error("cannot listen for metrics on {addr}: {source}")]
    Metrics {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("the indexer stopped: {0}; messages in flight stay in the queue")]
    Indexer(String),
}

/// Runs until `shutdown` is cancelled (or the queue is drained with `--exit-when-idle`) and
/// returns what was done. Fails at start when the cluster or the queue is unusable, and
/// later only when the indexer stops.
pub async fn run(
    config: &Config,
    clients: Clients,
    shutdown: CancellationToken,
) -> Result<Summary, WorkerError> {
    let cluster = clients.cluster.clone();
    let destinations = destinations(config);
    let settings = sink::settings(&config.shared.bulk, &config.shared.index, &destinations);
    run_with_sink(config, clients, shutdown, move |stats| {
        sink::start(cluster, settings, stats)
    })
    .await
}

/// Where the worker's events go: the S3 sources' indices, and the alerts'.
fn destinations(config: &Config) -> Vec<crate::format::Destination> {
    detect::destinations(
        &config.shared.detect,
        config.shared.index.prefix(),
        s3::destinations(&config.s3, &config.shared.index),
    )
}

/// [`run`], with the sink started by `start_sink` (given the worker's stats).
pub async fn run_with_sink(
    config: &Config,
    clients: Clients,
    shutdown: CancellationToken,
    start_sink: impl FnOnce(Arc<Stats>) -> SinkHandle,
) -> Result<Summary, WorkerError> {
    let queue_url = config.queue_url().to_string();
    let stats = Arc::new(Stats::default());
    stats.counters::<SqsCounters>();
    stats.counters::<ack::AckCounters>();
    stats.counters::<heartbeat::HeartbeatCounters>();
    stats.counters::<s3::ObjectCounters>();
    stats.counters::<crate::format::RecordCounters>();
    let metrics_server = metrics::serve_if(config.shared.telemetry.metrics_listen, stats.clone())
        .await
        .map_err(|(addr, source)| WorkerError::Metrics { addr, source })?;
    let detector = detect::from_config(&config.shared.detect)?;
    let destinations = destinations(config);
    let (_, free_form) = sink::prepare(
        &clients.cluster,
        &config.shared.cluster,
        &config.shared.index,
        &destinations,
    )
    .await?;
    let queue = check_queue(&clients.sqs, &queue_url).await?;
    if !queue.has_redrive_policy && config.sqs.max_receive_count.is_none() {
        warn!(
            queue_url,
            "the queue has no redrive policy: a message that can never succeed is released with a growing delay (up to 15 min) and received again forever; give the queue a dead-letter queue, or set --max-receive-count"
        );
    }

    stats.set(&stats.cluster_reachable, true);
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
    let slots = Arc::new(Semaphore::new(config.sqs.max_in_flight));
    let stop_receiving = shutdown.child_token();
    let (message_tx, mut message_rx) = mpsc::channel(MAX_RECEIVE_BATCH);
    let receiver = tokio::spawn(receive::run(
        clients.sqs.clone(),
        queue_url.clone(),
        config.sqs.receive_wait,
        slots,
        message_tx,
        stats.clone(),
        stop_receiving.clone(),
    ));
    let (events, mut indexer) = start_sink(stats.clone());
    let (events, mut alerting) = detect::attach(
        events,
        detector,
        &config.shared.detect,
        config.queue_url(),
        &destinations,
        free_form,
        &stats,
    );
    let (disposal_tx, disposal_rx) = mpsc::channel(config.sqs.max_in_flight.max(MAX_RECEIVE_BATCH));
    let disposer = tokio::spawn(ack::run_disposer(
        clients.sqs.clone(),
        queue_url.clone(),
        disposal_rx,
        stats.clone(),
    ));
    let context = Arc::new(MessageContext {
        s3: clients.s3.clone(),
        format: Arc::new(s3::object_format(&config.s3, free_form)),
        object_format: config.s3.object_format,
        events,
        stats: stats.clone(),
        counters: stats.counters(),
        objects: stats.counters(),
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

    // Asked only once nothing has been received for a while, so that a busy start does not
    // pay for attribute calls.
    let mut idle_check =
        tokio::time::interval_at(Instant::now() + IDLE_CHECK_EVERY, IDLE_CHECK_EVERY);
    idle_check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_received = Instant::now();
    let mut sink_failure = None;
    let mut tasks: JoinSet<Option<Disposal>> = JoinSet::new();
    loop {
        tokio::select! {
            received = message_rx.recv() => match received {
                Some(Received { message, slot }) => {
                    context.counters.messages_received.add(1);
                    last_received = Instant::now();
                    let context = context.clone();
                    tasks.spawn(async move {
                        let disposal = process(&context, message).await;
                        drop(slot);
                        disposal
                    });
                }
                None => break,
            },
            Some(joined) = tasks.join_next(), if !tasks.is_empty() => {
                forward(joined, &disposal_tx).await;
            }
            joined = &mut indexer, if sink_failure.is_none() => {
                let reason = sink::stopped_early(joined);
                error!(reason, "the indexer stopped; stopping the worker");
                sink_failure = Some(reason);
                stop_receiving.cancel();
            }
            _ = idle_check.tick(), if config.exit_when_idle && tasks.is_empty() && message_rx.is_empty() => {
                if last_received.elapsed() >= IDLE_CHECK_EVERY
                    && queue_is_drained(&clients.sqs, &queue_url).await
                {
                    info!("the queue is drained and nothing is in flight; stopping");
                    stop_receiving.cancel();
                }
            }
        }
    }
    if shutdown.is_cancelled() {
        info!(
            in_flight = tasks.len(),
            grace = ?config.shared.shutdown_grace,
            "shutting down: receiving stopped, finishing in-flight messages"
        );
    }

    let deadline = Instant::now() + config.shared.shutdown_grace;
    let mut abandoned = 0;
    while !tasks.is_empty() {
        tokio::select! {
            Some(joined) = tasks.join_next() => forward(joined, &disposal_tx).await,
            () = tokio::time::sleep_until(deadline) => {
                abandoned = tasks.len();
                warn!(abandoned, "grace period over; unfinished messages will be redelivered by SQS");
                tasks.abort_all();
                while let Some(joined) = tasks.join_next().await {
                    forward(joined, &disposal_tx).await;
                }
            }
        }
    }
    context.counters.messages_abandoned.add(abandoned as u64);

    // Every message task is gone, so the last event sender goes with the context, and the
    // indexer finishes what it holds.
    drop(context);
    alerting.quiet().await;
    if sink_failure.is_none() {
        if abandoned > 0 {
            // Events of abandoned messages may still be retrying; they need no settling.
            indexer.abort();
        }
        sink_failure = sink::indexer_failure(indexer.await);
    }
    alerting.finish().await;
    drop(disposal_tx);
    disposer.await.expect("the disposer does not panic");
    receiver.await.expect("the receiver does not panic");
    stop_heartbeat.cancel();
    heartbeat.await.expect("the heartbeat does not panic");
    metrics_server.stop().await;

    let summary = stats.snapshot();
    info!(?summary, "worker stopped");
    match sink_failure {
        Some(reason) => Err(WorkerError::Indexer(reason)),
        None => Ok(summary),
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
) -> Result<QueueInfo, WorkerError> {
    use aws_sdk_sqs::types::QueueAttributeName;
    let attributes = sqs
        .get_queue_attributes()
        .queue_url(queue_url)
        .attribute_names(QueueAttributeName::VisibilityTimeout)
        .attribute_names(QueueAttributeName::RedrivePolicy)
        .send()
        .await
        .map_err(|err| WorkerError::Queue {
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
