//! Producer side: publish jobs and, when asked, wait for their results on a private reply queue.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use avatar_worker::client::Client;
//! use avatar_worker::protocol::{FetchJob, Phone};
//! let client = Client::connect("amqp://guest:guest@127.0.0.1:5672/%2f", "avatar").await?;
//! let job = FetchJob { job_id: None, device_id: None, phone: Phone::parse("6281234567890").map_err(anyhow::Error::msg)?,
//!     is_preview: false, is_community: false, known_id: None, download: false, interactive: false };
//! let result = client.fetch_and_wait(&job, std::time::Duration::from_secs(30)).await?;
//! println!("{:?}", result.status);
//! # Ok(()) }
//! ```
//!
//! Many jobs at once: [`Client::run_batch`] or [`Batch`] (bounded in flight, one reply queue,
//! re-published across broker reconnects), shown in `examples/fetch_batch.rs`.

#![warn(missing_docs)]

mod batch;
mod inspect;

pub use batch::{Batch, BatchOptions, BatchResults};
pub use inspect::{DeadLetterInfo, PurgeReport, QueueCounts, is_not_found};

use std::time::Duration;

use crate::broker::{self, Addresses, PublishError, Publisher, QueueNames};
use crate::protocol::{FetchJob, JobId, JobKind, JobResult, UpdateJob};
use futures_util::StreamExt;
use lapin::options::{BasicConsumeOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection};

/// Why a client call failed. Broker-side causes (`Amqp`, `Publish`, `ReplyQueueClosed`) are worth a
/// reconnect; the others are not.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The connection or a channel failed.
    #[error("broker: {0}")]
    Amqp(#[from] lapin::Error),
    /// The broker did not take a job (no such queue, or a nack).
    #[error("publish: {0}")]
    Publish(#[from] PublishError),
    /// Nothing arrived in time.
    #[error("no result within {}", seconds(*.0))]
    Timeout(Duration),
    /// The reply queue's consumer ended (its channel or connection closed).
    #[error("the reply queue closed before the result arrived")]
    ReplyQueueClosed,
    /// A job could not be encoded or a result decoded.
    #[error("a result could not be read: {0}")]
    BadResult(#[from] serde_json::Error),
    /// Two jobs of one batch had the same job_id; results are matched by job_id, so one would be lost.
    #[error("job_id {0:?} appears twice in the batch")]
    DuplicateJobId(String),
    /// A batch could not get back to the broker.
    #[error(
        "the broker is unreachable: gave up after {attempts} connection attempts; last error: {last}"
    )]
    BrokerUnreachable {
        /// Consecutive attempts that failed without any result arriving in between.
        attempts: u32,
        /// What the last attempt failed with.
        last: Box<ClientError>,
    },
}

/// A duration for a person: `60 s`, `1.5 s`, `250 ms`.
pub fn seconds(duration: Duration) -> String {
    if duration < Duration::from_secs(1) {
        format!("{} ms", duration.as_millis())
    } else if duration.subsec_millis() == 0 {
        format!("{} s", duration.as_secs())
    } else {
        format!("{:.1} s", duration.as_secs_f64())
    }
}

impl ClientError {
    /// Whether a new connection may cure it (as opposed to a refused job or a bad answer).
    pub fn is_connection_problem(&self) -> bool {
        matches!(
            self,
            ClientError::Amqp(_)
                | ClientError::ReplyQueueClosed
                | ClientError::Publish(PublishError::Amqp(_) | PublishError::Nacked)
        )
    }
}

/// A connection to the broker with a confirm-mode channel for jobs.
pub struct Client {
    addresses: Addresses,
    connection: Connection,
    publisher: Publisher,
    names: QueueNames,
}

impl Client {
    /// Connects and uses the queues derived from `prefix` (the worker's `topology.prefix`). `addresses`
    /// is one URL or a cluster's [`Addresses`] (the first node that answers is used).
    pub async fn connect(
        addresses: impl Into<Addresses>,
        prefix: &str,
    ) -> Result<Self, ClientError> {
        Self::connect_with(addresses, QueueNames::with_prefix(prefix)).await
    }

    /// Connects and uses explicit queue names (the worker's `topology` settings, overrides included).
    pub async fn connect_with(
        addresses: impl Into<Addresses>,
        names: QueueNames,
    ) -> Result<Self, ClientError> {
        let addresses = addresses.into();
        let connection = addresses.connect("avatar-worker-client").await?.connection;
        let publisher = Publisher::open(&connection).await?;
        Ok(Self {
            addresses,
            connection,
            publisher,
            names,
        })
    }

    /// The connection, for channels of a caller's own.
    pub fn connection(&self) -> &Connection {
        &self.connection
    }

    /// The queues this client publishes to and reads from.
    pub fn names(&self) -> &QueueNames {
        &self.names
    }

    /// Publishes a fetch job (confirmed by the broker); its result goes to `reply_to` or the results queue.
    pub async fn publish_fetch(
        &self,
        job: &FetchJob,
        reply_to: Option<&str>,
    ) -> Result<JobId, ClientError> {
        self.publish_typed(JobKind::Fetch, job, job.job_id.as_ref(), reply_to, None)
            .await
    }

    /// Publishes an update job (confirmed by the broker); its result goes to `reply_to` or the results queue.
    pub async fn publish_update(
        &self,
        job: &UpdateJob,
        reply_to: Option<&str>,
    ) -> Result<JobId, ClientError> {
        self.publish_typed(JobKind::Update, job, job.job_id.as_ref(), reply_to, None)
            .await
    }

    /// Serialises a job and publishes it under its own id, or a fresh one, expiring after `expiration`.
    async fn publish_typed<T: serde::Serialize>(
        &self,
        kind: JobKind,
        job: &T,
        job_id: Option<&JobId>,
        reply_to: Option<&str>,
        expiration: Option<Duration>,
    ) -> Result<JobId, ClientError> {
        let id = job_id.cloned().unwrap_or_else(JobId::generate);
        let body = serde_json::to_vec(job)?;
        let target = JobTarget {
            kind,
            job_id: &id,
            reply_to,
            expiration,
        };
        publish_job(&self.publisher, &self.names, &body, target).await?;
        Ok(id)
    }

    /// Publishes a raw body to a job queue: message_id and correlation_id are the job id.
    pub async fn publish(
        &self,
        kind: JobKind,
        body: &[u8],
        job_id: &JobId,
        reply_to: Option<&str>,
    ) -> Result<(), ClientError> {
        let target = JobTarget {
            kind,
            job_id,
            reply_to,
            expiration: None,
        };
        publish_job(&self.publisher, &self.names, body, target).await
    }

    /// Publishes a fetch job and waits up to `timeout` for its result on a reply queue of its own. The job
    /// expires after `timeout` (AMQP `expiration`): once nobody waits for its answer, the worker drops it
    /// instead of asking WhatsApp.
    pub async fn fetch_and_wait(
        &self,
        job: &FetchJob,
        timeout: Duration,
    ) -> Result<JobResult, ClientError> {
        let reply = ReplyQueue::open(&self.connection).await?;
        let id = self
            .publish_typed(
                JobKind::Fetch,
                job,
                job.job_id.as_ref(),
                Some(&reply.name),
                Some(timeout),
            )
            .await?;
        reply.wait_for(&id, timeout).await
    }

    /// Publishes an update job and waits up to `timeout` for its result on a reply queue of its own; the
    /// job expires after `timeout`, as in [`Client::fetch_and_wait`].
    pub async fn update_and_wait(
        &self,
        job: &UpdateJob,
        timeout: Duration,
    ) -> Result<JobResult, ClientError> {
        let reply = ReplyQueue::open(&self.connection).await?;
        let id = self
            .publish_typed(
                JobKind::Update,
                job,
                job.job_id.as_ref(),
                Some(&reply.name),
                Some(timeout),
            )
            .await?;
        reply.wait_for(&id, timeout).await
    }
}

/// Where a job goes and who waits for it.
pub(crate) struct JobTarget<'a> {
    pub kind: JobKind,
    pub job_id: &'a JobId,
    pub reply_to: Option<&'a str>,
    /// How long the producer waits for the answer: the job's AMQP `expiration`, which the worker keeps as
    /// its deadline (docs/protocol.md).
    pub expiration: Option<Duration>,
}

/// Publishes one job body through the default exchange: message_id and correlation_id are the job id, so a
/// result can be matched whichever of the two a consumer looks at.
pub(crate) async fn publish_job(
    publisher: &Publisher,
    names: &QueueNames,
    body: &[u8],
    target: JobTarget<'_>,
) -> Result<(), ClientError> {
    let job_id = target.job_id.as_str();
    let mut properties = BasicProperties::default()
        .with_content_type("application/json".into())
        .with_message_id(job_id.into())
        .with_correlation_id(job_id.into());
    if let Some(reply_to) = target.reply_to {
        properties = properties.with_reply_to(reply_to.into());
    }
    if let Some(expiration) = target.expiration {
        properties = properties.with_expiration(expiration_ms(expiration).into());
    }
    publisher
        .publish(names.job_queue(target.kind), body, properties)
        .await?;
    Ok(())
}

/// An AMQP `expiration`: whole milliseconds, at least 1 (0 would expire at once).
pub fn expiration_ms(wait: Duration) -> String {
    wait.as_millis().clamp(1, u128::from(u32::MAX)).to_string()
}

/// A server-named, exclusive queue that lives as long as its channel: results for this client only.
pub struct ReplyQueue {
    channel: Channel,
    /// The broker-chosen name, for `reply_to`.
    pub name: String,
    consumer: lapin::Consumer,
}

impl ReplyQueue {
    /// Declares the queue on a channel of its own and starts consuming (no acks: it is private).
    pub async fn open(connection: &Connection) -> Result<Self, ClientError> {
        let channel = connection.create_channel().await?;
        let queue = channel
            .queue_declare(
                "".into(),
                QueueDeclareOptions {
                    exclusive: true,
                    auto_delete: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await?;
        let name = queue.name().to_string();
        let consumer = channel
            .basic_consume(
                name.as_str().into(),
                "".into(),
                BasicConsumeOptions {
                    no_ack: true,
                    ..BasicConsumeOptions::default()
                },
                FieldTable::default(),
            )
            .await?;
        Ok(Self {
            channel,
            name,
            consumer,
        })
    }

    /// The next result on this queue.
    pub async fn next(&mut self, timeout: Duration) -> Result<JobResult, ClientError> {
        let delivery = tokio::time::timeout(timeout, self.consumer.next())
            .await
            .map_err(|_| ClientError::Timeout(timeout))?
            .ok_or(ClientError::ReplyQueueClosed)??;
        Ok(serde_json::from_slice(&delivery.data)?)
    }

    async fn wait_for(mut self, id: &JobId, timeout: Duration) -> Result<JobResult, ClientError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let result = self.next(left).await.map_err(|error| match error {
                // The whole wait, not what was left of it.
                ClientError::Timeout(_) => ClientError::Timeout(timeout),
                other => other,
            })?;
            if &result.job_id == id {
                let _ = self.channel.close(200, "done".into()).await;
                return Ok(result);
            }
        }
    }
}

/// What `avatar-worker dead replay` may take.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ReplayOptions {
    /// At most this many dead letters are looked at (never more than the queue held at the start).
    pub limit: Option<usize>,
    /// Replay letters that can never succeed (reason `invalid_job` or `invalid_phone`) too.
    pub include_invalid: bool,
}

/// What `avatar-worker dead replay` did.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ReplayReport {
    /// Dead letters in the queue when the replay started: the most it looks at.
    pub found: u32,
    /// Dead letters taken from the queue and looked at.
    pub examined: usize,
    /// Dead letters moved back to their job queue.
    pub replayed: usize,
    /// Of the replayed, those whose result goes to the results queue: their `reply_to` queue is gone
    /// (reason `result_unroutable`, or a reply queue that closed since).
    pub to_results: usize,
    /// Dead letters left in the dead-letter queue, by why: `invalid_job`/`invalid_phone` (they can never
    /// succeed; [`ReplayOptions::include_invalid`] replays them), `no_source_queue` (not from a job queue
    /// of this topology).
    pub skipped: std::collections::BTreeMap<String, usize>,
}

impl ReplayReport {
    /// Dead letters left in the queue, all reasons.
    pub fn skipped_total(&self) -> usize {
        self.skipped.values().sum()
    }
}

impl Client {
    /// Moves dead letters back to the job queue they came from, with their attempt and redelivery counts
    /// and their deadline reset. It looks at no more than the queue held when it started (letters that
    /// fail again at once come back behind them and are not taken again), and at most `options.limit`.
    /// Letters that can never succeed stay unless `include_invalid`; letters whose reply queue is gone are
    /// replayed without `reply_to`, so their result goes to the results queue. Each is acked from the
    /// dead-letter queue only after its republish is confirmed, so a crash in between duplicates a job
    /// rather than losing it; the letters left are returned to the queue in their order.
    pub async fn replay_dead(&self, options: ReplayOptions) -> Result<ReplayReport, ClientError> {
        use crate::broker::{DeadReason, JobHeaders, headers, properties};
        use lapin::options::{BasicAckOptions, BasicGetOptions};

        let channel = self.connection.create_channel().await?;
        let found = broker::message_count(&channel, &self.names.dead).await?;
        let budget = options
            .limit
            .map_or(found as usize, |limit| limit.min(found as usize));
        let mut report = ReplayReport {
            found,
            ..ReplayReport::default()
        };
        let mut kept = Vec::new();
        let mut gone_reply_queues = std::collections::HashMap::new();
        while report.examined < budget {
            let Some(message) = channel
                .basic_get(
                    self.names.dead.as_str().into(),
                    BasicGetOptions { no_ack: false },
                )
                .await?
            else {
                break;
            };
            report.examined += 1;
            let delivery = message.delivery;
            let table = delivery.properties.headers().clone();
            let reason = broker::header_str(table.as_ref(), headers::REASON);
            let parsed = reason.as_deref().and_then(DeadReason::parse);
            let source = broker::header_str(table.as_ref(), headers::SOURCE_QUEUE)
                .filter(|queue| *queue == self.names.fetch || *queue == self.names.update);
            let skip = match (&source, parsed) {
                (None, _) => Some("no_source_queue".to_string()),
                (Some(_), Some(reason))
                    if !reason.may_succeed_again() && !options.include_invalid =>
                {
                    Some(reason.as_str().to_string())
                }
                _ => None,
            };
            let (Some(source), None) = (source, skip.clone()) else {
                *report.skipped.entry(skip.unwrap_or_default()).or_default() += 1;
                kept.push(delivery);
                continue;
            };
            let mut inner = JobHeaders::default()
                .write(table.clone().unwrap_or_default())
                .inner()
                .clone();
            for key in [
                headers::REASON,
                headers::ERROR_CODE,
                headers::ERROR_MESSAGE,
                headers::SOURCE_QUEUE,
                headers::JOB_ID,
                headers::DEAD_AT,
                headers::EXPIRES_AT,
            ] {
                inner.remove(key);
            }
            let reply_to = delivery
                .properties
                .reply_to()
                .as_ref()
                .map(|q| q.to_string());
            let reroute = match reply_to {
                None => false,
                Some(_) if parsed == Some(DeadReason::ResultUnroutable) => true,
                Some(queue) => match gone_reply_queues.get(&queue) {
                    Some(gone) => *gone,
                    None => {
                        let gone = !self.queue_exists(&queue).await?;
                        gone_reply_queues.insert(queue, gone);
                        gone
                    }
                },
            };
            let properties = if reroute {
                report.to_results += 1;
                properties::carried_but_reply_to(&delivery.properties, inner.into())
            } else {
                properties::carried(&delivery.properties, inner.into())
            };
            self.publisher
                .publish(&source, &delivery.data, properties)
                .await?;
            delivery.acker.ack(BasicAckOptions::default()).await?;
            report.replayed += 1;
        }
        inspect::give_back(kept).await?;
        let _ = channel.close(200, "replayed".into()).await;
        Ok(report)
    }

    /// Whether a queue exists, asked on a channel of its own (a passive declare of a missing queue closes
    /// its channel).
    async fn queue_exists(&self, queue: &str) -> Result<bool, ClientError> {
        let channel = self.connection.create_channel().await?;
        match broker::queue_counts(&channel, queue).await {
            Ok(_) => {
                let _ = channel.close(200, "checked".into()).await;
                Ok(true)
            }
            Err(error) if inspect::is_not_found(&error) => Ok(false),
            Err(error) => Err(error.into()),
        }
    }
}
