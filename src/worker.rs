//! Worker: receive -> bounded in-flight messages -> fetch -> bulk -> ack, until shutdown.
//!
//! One receiver task long-polls SQS only while a message slot is free (`--max-in-flight`),
//! so at most that many messages are in flight. Each message runs as its own task: parse the
//! notification, stream every object it names into the bulk stage, wait for its ticket to
//! settle, and hand back a [`Deletion`] when, and only when, everything it produced was
//! accepted. The run loop forwards deletions to the batched deleter.
//!
//! Shutdown (the token is cancelled on SIGTERM/SIGINT): stop receiving; let in-flight
//! messages finish within the grace period; abandon the rest (SQS redelivers them); close the
//! bulk and delete stages, which first finish what they hold, so no finished work is lost.
//! With `--exit-when-idle` the same path runs once a receive comes back empty while
//! nothing is in flight.

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_sqs::types::Message;
use backon::{BackoffBuilder, ExponentialBuilder};
use elasticsearch::Elasticsearch;
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, info_span, warn, Instrument};

use crate::ack::{self, Deletion, Disposal, Failure, Ticket};
use crate::bulk::{self, BulkSettings};
use crate::cluster::{self, ClusterError};
use crate::config::{BulkCompression, Config};
use crate::document;
use crate::fetch::{self, ObjectSink, Origin, PendingDocument};
use crate::heartbeat;
use crate::metrics;
use crate::notification::{self, ObjectRef};
use crate::stats::{Stats, Summary};
use crate::template::{self, TemplateError};

/// SQS returns at most this many messages per receive.
const MAX_RECEIVE_BATCH: usize = 10;
/// Documents buffered between the fetch and bulk stages.
const DOCUMENT_CHANNEL: usize = 2048;

/// The clients every stage shares; nothing else is shared.
#[derive(Clone)]
pub struct Clients {
    pub sqs: aws_sdk_sqs::Client,
    pub s3: aws_sdk_s3::Client,
    pub cluster: Elasticsearch,
}

impl Clients {
    /// Builds the clients from an AWS configuration (the standard chain in production,
    /// explicit endpoints and credentials in tests) and the worker configuration.
    pub fn new(aws: &aws_config::SdkConfig, config: &Config) -> Result<Self, ClusterError> {
        let s3 = aws_sdk_s3::config::Builder::from(aws)
            .force_path_style(config.s3_force_path_style)
            .build();
        Ok(Clients {
            sqs: aws_sdk_sqs::Client::new(aws),
            s3: aws_sdk_s3::Client::from_conf(s3),
            cluster: cluster::connect(config)?,
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    #[error(transparent)]
    Template(#[from] TemplateError),
    #[error("queue {url} is not usable: {message}")]
    Queue { url: String, message: String },
    #[error("cannot listen for metrics on {addr}: {source}")]
    Metrics {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
}

/// Runs until `shutdown` is cancelled (or the queue is idle with `--exit-when-idle`) and
/// returns what was done. Fails only at start, when the cluster or the queue is unusable.
pub async fn run(
    config: &Config,
    clients: Clients,
    shutdown: CancellationToken,
) -> Result<Summary, WorkerError> {
    let queue_url = config.queue_url().to_string();
    let stats = Arc::new(Stats::default());
    let stop_metrics = CancellationToken::new();
    let metrics_server = match config.metrics_listen {
        Some(addr) => Some(
            metrics::serve(addr, stats.clone(), stop_metrics.clone())
                .await
                .map_err(|source| WorkerError::Metrics { addr, source })?,
        ),
        None => None,
    };
    let info = cluster::detect(&clients.cluster, config.elasticsearch_url().as_str()).await?;
    info!(distribution = %info.distribution, version = %info.version, "cluster detected");
    let free_form = template::prepare(&clients.cluster, config, &info).await?;
    let queue = check_queue(&clients.sqs, &queue_url).await?;
    if !queue.has_redrive_policy && config.max_receive_count.is_none() {
        warn!(
            queue_url,
            "the queue has no redrive policy: a message that can never succeed will be received again and again; give the queue a dead-letter queue, or set --max-receive-count"
        );
    }

    stats.set(&stats.cluster_reachable, true);
    stats.set(&stats.queue_reachable, true);
    let in_flight = heartbeat::Registry::default();
    let stop_heartbeat = CancellationToken::new();
    let heartbeat = tokio::spawn(heartbeat::run(
        clients.sqs.clone(),
        queue_url.clone(),
        in_flight.clone(),
        queue.visibility_timeout,
        config.max_processing_time,
        stats.clone(),
        stop_heartbeat.clone(),
    ));
    let slots = Arc::new(Semaphore::new(config.max_in_flight));
    let stop_receiving = shutdown.child_token();
    let (message_tx, mut message_rx) = mpsc::channel(MAX_RECEIVE_BATCH);
    let receiver = tokio::spawn(receive_loop(
        clients.sqs.clone(),
        queue_url.clone(),
        config.receive_wait,
        slots,
        message_tx,
        stats.clone(),
        stop_receiving.clone(),
    ));
    let (document_tx, document_rx) = mpsc::channel(DOCUMENT_CHANNEL);
    let indexer = tokio::spawn(bulk::run_indexer(
        clients.cluster.clone(),
        bulk_settings(config),
        document_rx,
        stats.clone(),
    ));
    let (deletion_tx, deletion_rx) = mpsc::channel(config.max_in_flight.max(MAX_RECEIVE_BATCH));
    let deleter = tokio::spawn(ack::run_deleter(
        clients.sqs.clone(),
        queue_url,
        deletion_rx,
        stats.clone(),
    ));
    let context = Arc::new(MessageContext {
        s3: clients.s3.clone(),
        document_options: Arc::new(document::Options {
            index_prefix: config.index_prefix.clone(),
            free_form,
        }),
        documents: document_tx,
        stats: stats.clone(),
        in_flight,
        max_receive_count: config.max_receive_count,
    });
    info!(
        max_in_flight = config.max_in_flight,
        visibility_timeout = ?queue.visibility_timeout,
        heartbeat_every = ?heartbeat::interval(queue.visibility_timeout),
        "worker started"
    );
    stats.set(&stats.started, true);

    let mut tasks: JoinSet<Option<Disposal>> = JoinSet::new();
    loop {
        tokio::select! {
            received = message_rx.recv() => match received {
                Some(Received::Message(message, permit)) => {
                    stats.add(&stats.messages_received, 1);
                    tasks.spawn(process(context.clone(), message, permit));
                }
                Some(Received::Empty) => {
                    if config.exit_when_idle && tasks.is_empty() {
                        info!("queue is empty and nothing is in flight; stopping");
                        stop_receiving.cancel();
                    }
                }
                None => break,
            },
            Some(joined) = tasks.join_next(), if !tasks.is_empty() => {
                forward(joined, &deletion_tx).await;
            }
        }
    }
    if shutdown.is_cancelled() {
        info!(
            in_flight = tasks.len(),
            grace = ?config.shutdown_grace,
            "shutting down: receiving stopped, finishing in-flight messages"
        );
    }

    let deadline = Instant::now() + config.shutdown_grace;
    let mut abandoned = 0;
    while !tasks.is_empty() {
        tokio::select! {
            Some(joined) = tasks.join_next() => forward(joined, &deletion_tx).await,
            () = tokio::time::sleep_until(deadline) => {
                abandoned = tasks.len();
                warn!(abandoned, "grace period over; unfinished messages will be redelivered by SQS");
                tasks.abort_all();
                while let Some(joined) = tasks.join_next().await {
                    forward(joined, &deletion_tx).await;
                }
            }
        }
    }
    stats.add(&stats.messages_abandoned, abandoned as u64);

    // Every message task is gone, so the last document sender goes with the context.
    drop(context);
    if abandoned > 0 {
        // Documents of abandoned messages may still be retrying; they need no settling.
        indexer.abort();
    }
    match indexer.await {
        Ok(()) => {}
        Err(err) if err.is_cancelled() => {}
        Err(err) => std::panic::resume_unwind(err.into_panic()),
    }
    drop(deletion_tx);
    deleter.await.expect("the deleter does not panic");
    receiver.await.expect("the receiver does not panic");
    stop_heartbeat.cancel();
    heartbeat.await.expect("the heartbeat does not panic");
    stop_metrics.cancel();
    if let Some(server) = metrics_server {
        server.await.expect("the metrics server does not panic");
    }

    let summary = stats.snapshot();
    info!(?summary, "worker stopped");
    Ok(summary)
}

fn bulk_settings(config: &Config) -> BulkSettings {
    BulkSettings {
        max_bytes: config.bulk_max_bytes,
        linger: config.bulk_linger,
        concurrency: config.bulk_concurrency,
        max_attempts: config.bulk_max_attempts,
        min_backoff: Duration::from_millis(200),
        max_backoff: Duration::from_secs(30),
        gzip: config.bulk_compression == BulkCompression::Gzip,
        dead_letter_prefix: config.dead_letter_prefix(),
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

async fn forward(
    joined: Result<Option<Disposal>, tokio::task::JoinError>,
    deletions: &mpsc::Sender<Disposal>,
) {
    match joined {
        Ok(Some(deletion)) => deletions
            .send(deletion)
            .await
            .expect("the deleter outlives the message tasks"),
        Ok(None) => {}
        Err(err) if err.is_cancelled() => {}
        Err(err) => std::panic::resume_unwind(err.into_panic()),
    }
}

enum Received {
    Message(Box<Message>, OwnedSemaphorePermit),
    /// A receive came back with no message.
    Empty,
}

/// Long-polls while a slot is free, handing each message over with its slot.
async fn receive_loop(
    sqs: aws_sdk_sqs::Client,
    queue_url: String,
    wait: Duration,
    slots: Arc<Semaphore>,
    messages: mpsc::Sender<Received>,
    stats: Arc<Stats>,
    stop: CancellationToken,
) {
    let backoff = ExponentialBuilder::default()
        .with_jitter()
        .with_min_delay(Duration::from_secs(1))
        .with_max_delay(Duration::from_secs(30))
        .without_max_times();
    let mut delays = backoff.build();
    loop {
        let first = tokio::select! {
            permit = slots.clone().acquire_owned() => permit.expect("the slot semaphore is never closed"),
            () = stop.cancelled() => return,
        };
        let mut permits = vec![first];
        while permits.len() < MAX_RECEIVE_BATCH {
            match slots.clone().try_acquire_owned() {
                Ok(permit) => permits.push(permit),
                Err(_) => break,
            }
        }
        let receive = sqs
            .receive_message()
            .queue_url(&queue_url)
            .max_number_of_messages(permits.len() as i32)
            .wait_time_seconds(wait.as_secs() as i32)
            .message_system_attribute_names(
                aws_sdk_sqs::types::MessageSystemAttributeName::ApproximateReceiveCount,
            )
            .send();
        // Cancelling a long poll is safe: anything SQS had picked for it becomes visible
        // again after the visibility timeout.
        let result = tokio::select! {
            result = receive => result,
            () = stop.cancelled() => return,
        };
        stats.set(&stats.queue_reachable, result.is_ok());
        match result {
            Ok(output) => {
                delays = backoff.build();
                let received = output.messages.unwrap_or_default();
                if received.is_empty() {
                    if messages.send(Received::Empty).await.is_err() {
                        return;
                    }
                    continue;
                }
                for message in received {
                    let permit = permits
                        .pop()
                        .expect("SQS returns at most the requested count");
                    if messages
                        .send(Received::Message(Box::new(message), permit))
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
            }
            Err(err) => {
                let delay = delays.next().unwrap_or(Duration::from_secs(30));
                error!(
                    error = %aws_sdk_sqs::error::DisplayErrorContext(&err),
                    retry_in = ?delay,
                    "receiving from the queue failed"
                );
                drop(permits);
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    () = stop.cancelled() => return,
                }
            }
        }
    }
}

struct MessageContext {
    s3: aws_sdk_s3::Client,
    document_options: Arc<document::Options>,
    documents: mpsc::Sender<PendingDocument>,
    stats: Arc<Stats>,
    in_flight: heartbeat::Registry,
    max_receive_count: Option<u32>,
}

/// Handles one message; returns what to do with it (nothing: let its visibility timeout
/// bring it back).
async fn process(
    context: Arc<MessageContext>,
    message: Box<Message>,
    _slot: OwnedSemaphorePermit,
) -> Option<Disposal> {
    let message_id = message.message_id.clone().unwrap_or_default();
    let receipt_handle = message.receipt_handle.clone().unwrap_or_default();
    let _tracked = context.in_flight.track(&message_id, &receipt_handle);
    let receive_count: u32 = message
        .attributes
        .as_ref()
        .and_then(|a| {
            a.get(&aws_sdk_sqs::types::MessageSystemAttributeName::ApproximateReceiveCount)
        })
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let span = info_span!("message", message_id = %message_id, receive_count);
    let handle = Deletion {
        message_id: message_id.clone(),
        receipt_handle,
    };
    async move {
        let stats = &context.stats;
        let _counted = stats.enter(&stats.messages_in_flight);
        let body = message.body.as_deref().unwrap_or("");
        let notification = match notification::parse(body) {
            Ok(n) => n,
            Err(err) => {
                let failure = Failure::permanent(format!(
                    "notification not understood: {err}; body starts {:?}",
                    body.chars().take(200).collect::<String>()
                ));
                return dispose_failed(&context, handle, receive_count, failure);
            }
        };
        stats.add(&stats.keys_skipped, notification.skipped.len() as u64);
        for reason in &notification.skipped {
            debug!(reason = reason.as_str(), "announced key skipped");
        }

        let ticket = Ticket::new();
        for object in &notification.objects {
            read_object(&context, object, &ticket, &message_id).await;
        }
        match ticket.settle().await {
            Ok(()) => {
                debug!(
                    kind = ?notification.kind,
                    objects = notification.objects.len(),
                    skipped = notification.skipped.len(),
                    "message done; deleting"
                );
                Some(Disposal::Delete(handle))
            }
            Err(failure) => dispose_failed(&context, handle, receive_count, failure),
        }
    }
    .instrument(span)
    .await
}

/// A failed message: given up on after `--max-receive-count` receives, released at once
/// when the failure is permanent, otherwise left for its visibility timeout. One error or
/// warning line names the message and the reason (which names the bucket and key).
fn dispose_failed(
    context: &MessageContext,
    handle: Deletion,
    receive_count: u32,
    failure: Failure,
) -> Option<Disposal> {
    let stats = &context.stats;
    let message_id = handle.message_id.as_str();
    if context
        .max_receive_count
        .is_some_and(|max| receive_count >= max)
    {
        error!(
            message_id,
            receive_count,
            reason = %failure,
            "message failed on its last allowed receive (--max-receive-count); deleting it"
        );
        stats.add(&stats.messages_given_up, 1);
        return Some(Disposal::Delete(handle));
    }
    stats.add(&stats.messages_kept, 1);
    if failure.permanent {
        stats.add(&stats.messages_failed_permanent, 1);
        error!(
            message_id,
            receive_count,
            reason = %failure,
            "message failed for good; releasing it now for the queue's redrive policy"
        );
        Some(Disposal::Release(handle))
    } else {
        stats.add(&stats.messages_failed_transient, 1);
        warn!(
            message_id,
            receive_count,
            reason = %failure,
            "message failed; SQS will redeliver it after its visibility timeout"
        );
        None
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
        origin: Arc::new(Origin {
            message_id: message_id.to_string(),
            bucket: object.bucket.clone(),
            key: object.key.clone(),
        }),
        options: context.document_options.clone(),
        ticket: ticket.clone(),
        documents: context.documents.clone(),
    };
    let result = fetch::fetch(&context.s3, sink).instrument(span).await;
    match result {
        Ok(summary) => {
            stats.add(&stats.objects_read, 1);
            stats.add(&stats.bytes_read, summary.stored_bytes);
            if summary.fallback_time_documents > 0 {
                warn!(
                    bucket = %object.bucket,
                    key = %object.key,
                    documents = summary.fallback_time_documents,
                    "records without a usable eventTime were placed by the object's LastModified"
                );
            }
            debug!(bucket = %object.bucket, key = %object.key, documents = summary.documents, bytes = summary.stored_bytes, "object read");
        }
        Err(err) => {
            stats.add(&stats.objects_failed, 1);
            error!(
                message_id,
                bucket = %object.bucket,
                key = %object.key,
                transient = err.is_transient(),
                error = %err,
                "object could not be read; its message is not deleted"
            );
            ticket.fail(Failure {
                reason: format!("{object}: {err}"),
                permanent: !err.is_transient(),
            });
        }
    }
}
