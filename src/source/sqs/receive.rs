//! Receive: long-polls the queue while a message slot is free and hands each message over
//! with its slot, so at most `--max-in-flight` messages are in flight.
//!
//! Failure policy: a failed ReceiveMessage is logged and retried with capped jittered
//! backoff; readiness reports the queue unreachable meanwhile.
//!
//! Stopping never strands a message. SQS may hand a long poll a message up to the moment it
//! answers, even when the client has gone away, and such a message would then stay
//! invisible for its whole visibility timeout (minutes on a CloudTrail queue). So a poll in
//! flight when stopping is asked for is finished, and what it brings is made visible again
//! at once ([`Disposal::Return`]) for another worker; only when the grace period is over is
//! the poll dropped.

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_sqs::types::{Message, MessageSystemAttributeName};
use backon::{BackoffBuilder, ExponentialBuilder};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tracing::error;

use super::ack::{Disposal, Receipt};
use crate::telemetry::Stats;

/// SQS returns at most this many messages per receive.
pub const MAX_RECEIVE_BATCH: usize = 10;

/// A received message and the slot it occupies until its task is done.
pub struct Received {
    pub message: Box<Message>,
    pub slot: OwnedSemaphorePermit,
}

/// Where the receiver hands messages, and when it stops.
pub struct Receiver {
    pub sqs: aws_sdk_sqs::Client,
    pub queue_url: String,
    /// Long-poll wait of one receive.
    pub wait: Duration,
    pub slots: Arc<Semaphore>,
    pub messages: mpsc::Sender<Received>,
    /// Where messages received while stopping go, to be made visible again.
    pub returns: mpsc::Sender<Disposal>,
    pub stats: Arc<Stats>,
    /// Stop receiving (the poll in flight is finished).
    pub stop: CancellationToken,
    /// Stop waiting for the poll in flight too.
    pub give_up: CancellationToken,
}

type ReceiveResult = Result<
    aws_sdk_sqs::operation::receive_message::ReceiveMessageOutput,
    aws_sdk_sqs::error::SdkError<aws_sdk_sqs::operation::receive_message::ReceiveMessageError>,
>;

/// Long-polls while a slot is free until `stop` is cancelled or the receiver side closes.
pub async fn run(receiver: Receiver) {
    let backoff = ExponentialBuilder::default()
        .with_jitter()
        .with_min_delay(Duration::from_secs(1))
        .with_max_delay(Duration::from_secs(30))
        .without_max_times();
    let mut delays = backoff.build();
    loop {
        let Some(mut permits) = receiver.free_slots().await else {
            return;
        };
        let Some(result) = receiver.poll(permits.len()).await else {
            return;
        };
        let stats = &receiver.stats;
        stats.set(&stats.source_reachable, result.is_ok());
        match result {
            Ok(output) => {
                delays = backoff.build();
                for message in output.messages.unwrap_or_default() {
                    let slot = permits
                        .pop()
                        .expect("SQS returns at most the requested count");
                    let received = Received {
                        message: Box::new(message),
                        slot,
                    };
                    if receiver.messages.send(received).await.is_err() {
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
                    () = receiver.stop.cancelled() => return,
                }
            }
        }
    }
}

impl Receiver {
    /// Waits for a free slot and takes every other free one (up to a receive's batch);
    /// `None` once stopping.
    async fn free_slots(&self) -> Option<Vec<OwnedSemaphorePermit>> {
        let first = tokio::select! {
            permit = self.slots.clone().acquire_owned() => permit.expect("the slot semaphore is never closed"),
            () = self.stop.cancelled() => return None,
        };
        let mut permits = vec![first];
        while permits.len() < MAX_RECEIVE_BATCH {
            match self.slots.clone().try_acquire_owned() {
                Ok(permit) => permits.push(permit),
                Err(_) => break,
            }
        }
        Some(permits)
    }

    /// One long poll for up to `count` messages; `None` when stopping came first (the poll
    /// is then finished and what it brings returned, unless the grace period runs out).
    async fn poll(&self, count: usize) -> Option<ReceiveResult> {
        let receive = self
            .sqs
            .receive_message()
            .queue_url(&self.queue_url)
            .max_number_of_messages(count as i32)
            .wait_time_seconds(self.wait.as_secs() as i32)
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .send();
        tokio::pin!(receive);
        tokio::select! {
            result = &mut receive => return Some(result),
            () = self.stop.cancelled() => {}
        }
        tokio::select! {
            result = &mut receive => {
                if let Ok(output) = result {
                    return_all(output.messages.unwrap_or_default(), &self.returns).await;
                }
            }
            () = self.give_up.cancelled() => {}
        }
        None
    }
}

/// Hands every message of a poll that finished while stopping back to the queue.
async fn return_all(received: Vec<Message>, returns: &mpsc::Sender<Disposal>) {
    if !received.is_empty() {
        tracing::info!(
            count = received.len(),
            "messages received while stopping; making them visible again"
        );
    }
    for message in received {
        let receipt = Receipt {
            message_id: message.message_id.unwrap_or_default(),
            receipt_handle: message.receipt_handle.unwrap_or_default(),
        };
        if returns.send(Disposal::Return(receipt)).await.is_err() {
            return;
        }
    }
}

/// The receive count SQS reports for a message (1 on its first receive).
pub fn receive_count(message: &Message) -> u32 {
    message
        .attributes
        .as_ref()
        .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
}
