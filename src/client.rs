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

pub use batch::{Batch, BatchOptions, BatchResults};

use std::time::Duration;

use futures_util::StreamExt;
use lapin::options::{BasicConsumeOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection};
use secrecy::SecretString;

use crate::broker::{self, PublishError, Publisher, QueueNames, Watch};
use crate::protocol::{FetchJob, JobId, JobKind, JobResult, UpdateJob};

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
    #[error("no result within {0:?}")]
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
    url: SecretString,
    connection: Connection,
    publisher: Publisher,
    names: QueueNames,
}

impl Client {
    /// Connects and uses the queues derived from `prefix` (the worker's `topology.prefix`).
    pub async fn connect(url: &str, prefix: &str) -> Result<Self, ClientError> {
        Self::connect_with(url, QueueNames::with_prefix(prefix)).await
    }

    /// Connects and uses explicit queue names (the worker's `topology` settings, overrides included).
    pub async fn connect_with(url: &str, names: QueueNames) -> Result<Self, ClientError> {
        let url = SecretString::from(url);
        let connection = broker::connect(&url, "avatar-worker-client").await?;
        let publisher = Publisher::new(connection.create_channel().await?, Watch::new()).await?;
        Ok(Self {
            url,
            connection,
            publisher,
            names,
        })
    }

    /// Publishes a fetch job (confirmed by the broker); its result goes to `reply_to` or the results queue.
    pub async fn publish_fetch(
        &self,
        job: &FetchJob,
        reply_to: Option<&str>,
    ) -> Result<JobId, ClientError> {
        self.publish_typed(JobKind::Fetch, job, job.job_id.as_ref(), reply_to)
            .await
    }

    /// Publishes an update job (confirmed by the broker); its result goes to `reply_to` or the results queue.
    pub async fn publish_update(
        &self,
        job: &UpdateJob,
        reply_to: Option<&str>,
    ) -> Result<JobId, ClientError> {
        self.publish_typed(JobKind::Update, job, job.job_id.as_ref(), reply_to)
            .await
    }

    /// Serialises a job and publishes it under its own id, or a fresh one.
    async fn publish_typed<T: serde::Serialize>(
        &self,
        kind: JobKind,
        job: &T,
        job_id: Option<&JobId>,
        reply_to: Option<&str>,
    ) -> Result<JobId, ClientError> {
        let id = job_id.cloned().unwrap_or_else(JobId::generate);
        self.publish(kind, &serde_json::to_vec(job)?, &id, reply_to)
            .await?;
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
        publish_job(&self.publisher, &self.names, kind, body, job_id, reply_to).await
    }

    /// Publishes a fetch job and waits up to `timeout` for its result on a reply queue of its own.
    pub async fn fetch_and_wait(
        &self,
        job: &FetchJob,
        timeout: Duration,
    ) -> Result<JobResult, ClientError> {
        let reply = ReplyQueue::open(&self.connection).await?;
        let id = self.publish_fetch(job, Some(&reply.name)).await?;
        reply.wait_for(&id, timeout).await
    }

    /// Publishes an update job and waits up to `timeout` for its result on a reply queue of its own.
    pub async fn update_and_wait(
        &self,
        job: &UpdateJob,
        timeout: Duration,
    ) -> Result<JobResult, ClientError> {
        let reply = ReplyQueue::open(&self.connection).await?;
        let id = self.publish_update(job, Some(&reply.name)).await?;
        reply.wait_for(&id, timeout).await
    }
}

/// Publishes one job body through the default exchange: message_id and correlation_id are the job id, so a
/// result can be matched whichever of the two a consumer looks at.
pub(crate) async fn publish_job(
    publisher: &Publisher,
    names: &QueueNames,
    kind: JobKind,
    body: &[u8],
    job_id: &JobId,
    reply_to: Option<&str>,
) -> Result<(), ClientError> {
    let mut properties = BasicProperties::default()
        .with_content_type("application/json".into())
        .with_message_id(job_id.as_str().into())
        .with_correlation_id(job_id.as_str().into());
    if let Some(reply_to) = reply_to {
        properties = properties.with_reply_to(reply_to.into());
    }
    publisher
        .publish(names.job_queue(kind), body, properties)
        .await?;
    Ok(())
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
            let result = self.next(left).await?;
            if &result.job_id == id {
                let _ = self.channel.close(200, "done".into()).await;
                return Ok(result);
            }
        }
    }
}

/// What `avatar-worker dead replay` did.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ReplayReport {
    /// Dead letters moved back to their job queue.
    pub replayed: usize,
    /// Dead letters with no known source queue; left in the dead-letter queue.
    pub skipped: usize,
}

impl Client {
    /// Moves up to `limit` dead letters back to the job queue they came from, with their attempt and
    /// redelivery counts reset. Each is acked from the dead-letter queue only after its republish is
    /// confirmed, so a crash in between duplicates a job rather than losing it.
    pub async fn replay_dead(&self, limit: Option<usize>) -> Result<ReplayReport, ClientError> {
        use crate::broker::{JobHeaders, headers};
        use lapin::options::{BasicAckOptions, BasicGetOptions, BasicNackOptions};

        let channel = self.connection.create_channel().await?;
        let mut report = ReplayReport::default();
        let mut skipped = Vec::new();
        while limit.is_none_or(|limit| report.replayed < limit) {
            let Some(message) = channel
                .basic_get(
                    self.names.dead.as_str().into(),
                    BasicGetOptions { no_ack: false },
                )
                .await?
            else {
                break;
            };
            let delivery = message.delivery;
            let table = delivery.properties.headers().clone();
            let source = broker::header_str(table.as_ref(), headers::SOURCE_QUEUE)
                .filter(|queue| *queue == self.names.fetch || *queue == self.names.update);
            let Some(source) = source else {
                skipped.push(delivery);
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
            ] {
                inner.remove(key);
            }
            let properties = delivery.properties.clone().with_headers(inner.into());
            self.publisher
                .publish(&source, &delivery.data, properties)
                .await?;
            delivery.acker.ack(BasicAckOptions::default()).await?;
            report.replayed += 1;
        }
        report.skipped = skipped.len();
        for delivery in skipped {
            delivery
                .acker
                .nack(BasicNackOptions {
                    requeue: true,
                    ..BasicNackOptions::default()
                })
                .await?;
        }
        let _ = channel.close(200, "replayed".into()).await;
        Ok(report)
    }
}
