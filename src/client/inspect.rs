//! Looking at queues without changing what a worker sees: depths and consumers, the dead letters and the
//! results waiting, read with `basic.get` and returned to their queue in their order.

use std::collections::BTreeMap;

use lapin::Channel;
use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, BasicGetOptions, BasicNackOptions, QueuePurgeOptions};

use super::{Client, ClientError};
use crate::broker::{self, DeadReason, JobHeaders, headers};
use crate::protocol::JobKind;

/// A queue's depth and consumers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct QueueCounts {
    /// Messages ready for delivery (not those delivered and not yet acked).
    pub messages: u32,
    /// Consumers attached.
    pub consumers: u32,
}

/// One dead letter, as `avatar-worker dead list` shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DeadLetterInfo {
    /// The job id (`x-avatar-job-id`, else the message id), empty when neither is set.
    pub job_id: String,
    /// The job queue it came from, as a kind; `None` when not from a job queue of this topology.
    pub kind: Option<JobKind>,
    /// The job's `device_id`, when its body is JSON and names one.
    pub device: Option<String>,
    /// `x-avatar-reason`.
    pub reason: Option<String>,
    /// `x-avatar-error-code` and `x-avatar-error-message`: the last error.
    pub error_code: Option<String>,
    /// The last error's message.
    pub error_message: Option<String>,
    /// Attempts made before it was dead-lettered.
    pub attempts: u32,
    /// When it was dead-lettered (unix ms, `x-avatar-dead-at`); older dead letters lack it.
    pub dead_at_ms: Option<u64>,
}

/// What `dead purge` removed and kept.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PurgeReport {
    /// Dead letters removed, by reason (`-` for none).
    pub purged: BTreeMap<String, usize>,
    /// Dead letters left in place (another reason).
    pub kept: usize,
}

impl PurgeReport {
    /// Dead letters removed, all reasons.
    pub fn purged_total(&self) -> usize {
        self.purged.values().sum()
    }
}

impl Client {
    /// A queue's depth and consumers, or `None` when it does not exist (asked on a channel of its own).
    pub async fn queue_counts(&self, queue: &str) -> Result<Option<QueueCounts>, ClientError> {
        let channel = self.connection.create_channel().await?;
        match broker::queue_counts(&channel, queue).await {
            Ok((messages, consumers)) => {
                let _ = channel.close(200, "counted".into()).await;
                Ok(Some(QueueCounts {
                    messages,
                    consumers,
                }))
            }
            Err(error) if is_not_found(&error) => Ok(None),
            Err(error) => Err(error.into()),
        }
    }

    /// The dead letters, oldest first, up to `limit`; they stay in the queue, in their order.
    pub async fn dead_letters(
        &self,
        limit: Option<usize>,
    ) -> Result<Vec<DeadLetterInfo>, ClientError> {
        let names = &self.names;
        let letters = self
            .peek(&names.dead, limit)
            .await?
            .iter()
            .map(|delivery| self.describe(delivery))
            .collect();
        Ok(letters)
    }

    /// Removes the dead letters with reason `reason`, or all of them. Only letters present when it starts
    /// are looked at; the others are returned to the queue in their order.
    pub async fn purge_dead(&self, reason: Option<&str>) -> Result<PurgeReport, ClientError> {
        let channel = self.connection.create_channel().await?;
        let mut report = PurgeReport::default();
        let Some(reason) = reason else {
            let purged = channel
                .queue_purge(
                    self.names.dead.as_str().into(),
                    QueuePurgeOptions::default(),
                )
                .await?;
            report.purged.insert("all".into(), purged as usize);
            let _ = channel.close(200, "purged".into()).await;
            return Ok(report);
        };
        let taken = take(&channel, &self.names.dead, None).await?;
        let mut kept = Vec::new();
        for delivery in taken {
            let table = delivery.properties.headers().as_ref();
            if broker::header_str(table, headers::REASON).as_deref() == Some(reason) {
                delivery.acker.ack(BasicAckOptions::default()).await?;
                *report.purged.entry(reason.to_string()).or_default() += 1;
            } else {
                kept.push(delivery);
            }
        }
        report.kept = kept.len();
        give_back(kept).await?;
        let _ = channel.close(200, "purged".into()).await;
        Ok(report)
    }

    /// The dead letters by reason (`-` for letters without one), all of them read and returned.
    pub async fn dead_reasons(&self) -> Result<BTreeMap<String, usize>, ClientError> {
        let mut out = BTreeMap::new();
        for letter in self.dead_letters(None).await? {
            *out.entry(letter.reason.unwrap_or_else(|| "-".into()))
                .or_default() += 1;
        }
        Ok(out)
    }

    /// The bodies waiting on the results queue, oldest first, up to `limit`; they stay.
    pub async fn waiting_results(&self, limit: Option<usize>) -> Result<Vec<Vec<u8>>, ClientError> {
        let names = &self.names;
        Ok(self
            .peek(&names.results, limit)
            .await?
            .into_iter()
            .map(|delivery| delivery.data)
            .collect())
    }

    /// Copies of up to `limit` messages of `queue` (no more than it held at the start), returned to it.
    async fn peek(&self, queue: &str, limit: Option<usize>) -> Result<Vec<Peeked>, ClientError> {
        let channel = self.connection.create_channel().await?;
        let taken = take(&channel, queue, limit).await?;
        let copies = taken.iter().map(copy).collect();
        give_back(taken).await?;
        let _ = channel.close(200, "read".into()).await;
        Ok(copies)
    }

    fn describe(&self, delivery: &Peeked) -> DeadLetterInfo {
        let table = delivery.properties.headers().as_ref();
        let text = |key| broker::header_str(table, key);
        let kind = text(headers::SOURCE_QUEUE).and_then(|queue| {
            self.names
                .job_queues()
                .into_iter()
                .find(|(_, name)| *name == queue)
                .map(|(kind, _)| kind)
        });
        let device = serde_json::from_slice::<serde_json::Value>(&delivery.data)
            .ok()
            .and_then(|job| job.get("device_id")?.as_str().map(str::to_string));
        let job_id = text(headers::JOB_ID)
            .or_else(|| {
                delivery
                    .properties
                    .message_id()
                    .as_ref()
                    .map(|id| id.to_string())
            })
            .unwrap_or_default();
        let dead_at_ms = table
            .and_then(|t| t.inner().get(headers::DEAD_AT))
            .and_then(|value| value.as_long_long_int())
            .and_then(|ms| u64::try_from(ms).ok());
        let reason = text(headers::REASON);
        DeadLetterInfo {
            job_id,
            kind,
            device,
            reason: reason.map(|r| DeadReason::parse(&r).map_or(r, |r| r.as_str().to_string())),
            error_code: text(headers::ERROR_CODE),
            error_message: text(headers::ERROR_MESSAGE),
            // The header counts attempts before the last delivery; the history has one line per failure.
            attempts: {
                let job = JobHeaders::read(table);
                job.attempts.max(job.history.len() as u32)
            },
            dead_at_ms,
        }
    }
}

/// Takes up to `limit` messages (no more than the queue held at the start) without acking them.
async fn take(
    channel: &Channel,
    queue: &str,
    limit: Option<usize>,
) -> Result<Vec<Delivery>, ClientError> {
    let found = broker::message_count(channel, queue).await? as usize;
    let budget = limit.map_or(found, |limit| limit.min(found));
    let mut out = Vec::with_capacity(budget);
    while out.len() < budget {
        let Some(message) = channel
            .basic_get(queue.into(), BasicGetOptions { no_ack: false })
            .await?
        else {
            break;
        };
        out.push(message.delivery);
    }
    Ok(out)
}

/// Returns taken messages to their queue, newest first, so a classic queue puts each back where it was.
pub(super) async fn give_back(taken: Vec<Delivery>) -> Result<(), ClientError> {
    for delivery in taken.into_iter().rev() {
        delivery
            .acker
            .nack(BasicNackOptions {
                requeue: true,
                ..BasicNackOptions::default()
            })
            .await?;
    }
    Ok(())
}

/// A message read and returned: its properties and body.
struct Peeked {
    properties: lapin::BasicProperties,
    data: Vec<u8>,
}

fn copy(delivery: &Delivery) -> Peeked {
    Peeked {
        properties: delivery.properties.clone(),
        data: delivery.data.clone(),
    }
}

/// Whether the broker answered that a queue does not exist (404).
pub fn is_not_found(error: &lapin::Error) -> bool {
    matches!(error.kind(), lapin::ErrorKind::ProtocolError(amqp) if amqp.get_id() == 404)
}
