//! Many fetch jobs over one private reply queue, with a bound on jobs in flight.
//!
//! A bulk producer must neither flood the job queue (other producers share it, and a crash would leave
//! thousands of orphaned jobs) nor wait for each result in turn. A batch keeps at most `in_flight` jobs
//! unanswered and yields results in the order they arrive.
//!
//! The reply queue is exclusive, so it dies with its connection: results published after a drop are
//! unroutable. On reconnect the batch therefore opens a new reply queue and re-publishes every job still
//! unanswered; the worker may then answer a job twice, and the batch passes on only the first answer
//! for each job_id.

use std::collections::{HashMap, HashSet};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::{Stream, StreamExt};
use lapin::Connection;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::{Client, ClientError, JobTarget, ReplyQueue, publish_job};
use crate::broker::{Addresses, Backoff, Publisher, QueueNames};
use crate::protocol::{FetchJob, JobId, JobKind, JobResult};

/// How a batch paces itself and how hard it tries to get back to the broker.
#[derive(Debug, Clone)]
pub struct BatchOptions {
    /// Jobs published and not yet answered, at most (at least 1).
    pub in_flight: usize,
    /// Connection attempts in a row, with no result arriving in between, before the batch gives up
    /// with [`ClientError::BrokerUnreachable`]. The first connection counts as an attempt.
    pub max_connect_attempts: u32,
    /// First delay between attempts; it doubles up to `reconnect_max`, with jitter.
    pub reconnect_min: Duration,
    /// Longest delay between attempts.
    pub reconnect_max: Duration,
    /// Longest wait for the next result while jobs are outstanding; `None` waits for ever. Without it a
    /// batch whose worker is down never ends.
    pub idle_timeout: Option<Duration>,
    /// Each job's AMQP `expiration`: how long an answer is still awaited. A job still queued by then is
    /// dropped by the broker or the worker, unanswered and without a WhatsApp query. `None` never expires.
    pub job_ttl: Option<Duration>,
}

impl Default for BatchOptions {
    fn default() -> Self {
        Self {
            in_flight: 64,
            max_connect_attempts: 6,
            reconnect_min: Duration::from_millis(200),
            reconnect_max: Duration::from_secs(10),
            idle_timeout: Some(Duration::from_secs(600)),
            job_ttl: Some(Duration::from_secs(600)),
        }
    }
}

/// A batch not started yet: where to publish and how. [`Batch::run`] starts it.
#[derive(Debug, Clone)]
pub struct Batch {
    addresses: Addresses,
    names: QueueNames,
    options: BatchOptions,
}

impl Batch {
    /// A batch on its own connection to `addresses` (one URL or a cluster's nodes; a reconnect goes to
    /// the next node that answers), publishing to the job queues in `names`.
    pub fn new(addresses: impl Into<Addresses>, names: QueueNames, options: BatchOptions) -> Self {
        Self {
            addresses: addresses.into(),
            names,
            options,
        }
    }

    /// Starts publishing `jobs` (pulled lazily, only as room frees up) and returns their results as they
    /// arrive. Jobs without a job_id get a generated one; job ids must be unique within the batch.
    ///
    /// The stream ends after the last result, or right after an `Err` item (the batch stopped). Dropping
    /// it stops the batch; jobs already published are still answered by the worker, to a queue that no
    /// longer exists.
    pub fn run<I>(self, jobs: I) -> BatchResults
    where
        I: IntoIterator<Item = FetchJob>,
        I::IntoIter: Send + 'static,
    {
        let (tx, rx) = mpsc::channel(self.options.in_flight.max(1));
        let driver = Driver {
            addresses: self.addresses,
            names: self.names,
            options: self.options,
            jobs: Box::new(jobs.into_iter()),
            exhausted: false,
            outstanding: HashMap::new(),
            seen: HashSet::new(),
            progressed: false,
            tx,
        };
        BatchResults {
            rx,
            task: tokio::spawn(driver.drive()),
        }
    }
}

impl Client {
    /// A batch on the same broker and queues as this client, with these options.
    pub fn batch(&self, options: BatchOptions) -> Batch {
        Batch {
            addresses: self.addresses.clone(),
            names: self.names.clone(),
            options,
        }
    }

    /// Runs `jobs` with at most `in_flight` unanswered at a time (other options at their defaults); see
    /// [`Batch::run`].
    pub fn run_batch<I>(&self, jobs: I, in_flight: usize) -> BatchResults
    where
        I: IntoIterator<Item = FetchJob>,
        I::IntoIter: Send + 'static,
    {
        self.batch(BatchOptions {
            in_flight,
            ..BatchOptions::default()
        })
        .run(jobs)
    }
}

/// The results of a running batch, one per job, in arrival order.
pub struct BatchResults {
    rx: mpsc::Receiver<Result<JobResult, ClientError>>,
    task: JoinHandle<()>,
}

impl Stream for BatchResults {
    type Item = Result<JobResult, ClientError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx)
    }
}

impl Drop for BatchResults {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// How one connection's session ended.
enum SessionEnd {
    /// Every job answered.
    Done,
    /// The consumer of the results went away.
    Cancelled,
}

/// The state that outlives connections: which jobs are still owed an answer.
struct Driver {
    addresses: Addresses,
    names: QueueNames,
    options: BatchOptions,
    jobs: Box<dyn Iterator<Item = FetchJob> + Send>,
    exhausted: bool,
    outstanding: HashMap<JobId, FetchJob>,
    /// Every job id published so far, to refuse a repeated one.
    seen: HashSet<JobId>,
    /// A result arrived since the last connection attempt: the broker is working, so the attempt
    /// budget starts over.
    progressed: bool,
    tx: mpsc::Sender<Result<JobResult, ClientError>>,
}

impl Driver {
    async fn drive(mut self) {
        if let Err(error) = self.run().await {
            let _ = self.tx.send(Err(error)).await;
        }
    }

    async fn run(&mut self) -> Result<(), ClientError> {
        let mut backoff = Backoff::new(self.options.reconnect_min, self.options.reconnect_max);
        let mut failures = 0u32;
        loop {
            self.progressed = false;
            let error = match self.session().await {
                Ok(SessionEnd::Done | SessionEnd::Cancelled) => return Ok(()),
                Err(error) if error.is_connection_problem() => error,
                Err(error) => return Err(error),
            };
            if self.progressed {
                failures = 0;
                backoff.reset();
            }
            failures += 1;
            if failures >= self.options.max_connect_attempts.max(1) {
                return Err(ClientError::BrokerUnreachable {
                    attempts: failures,
                    last: Box::new(error),
                });
            }
            let delay = backoff.next_delay();
            tracing::warn!(%error, outstanding = self.outstanding.len(), delay = %super::seconds(delay), "batch lost the broker; reconnecting");
            tokio::time::sleep(delay).await;
        }
    }

    /// One connection: a new reply queue, the unanswered jobs published again, then new jobs and results
    /// until done or the connection fails.
    async fn session(&mut self) -> Result<SessionEnd, ClientError> {
        let connection = self
            .addresses
            .connect("avatar-worker-batch")
            .await?
            .connection;
        let result = self.exchange(&connection).await;
        crate::broker::close(&connection, "batch finished").await;
        result
    }

    async fn exchange(&mut self, connection: &Connection) -> Result<SessionEnd, ClientError> {
        let publisher = Publisher::open(connection).await?;
        let mut reply = ReplyQueue::open(connection).await?;
        let again: Vec<FetchJob> = self.outstanding.values().cloned().collect();
        let ttl = self.options.job_ttl;
        for job in &again {
            publish(&publisher, &self.names, job, &reply.name, ttl).await?;
        }
        let mut health = tokio::time::interval(Duration::from_secs(1));
        loop {
            self.fill(&publisher, &reply.name).await?;
            if self.exhausted && self.outstanding.is_empty() {
                // Channels first: closing the connection under open channels makes lapin log errors.
                let _ = reply.channel.close(200, "batch finished".into()).await;
                let _ = publisher
                    .channel()
                    .close(200, "batch finished".into())
                    .await;
                return Ok(SessionEnd::Done);
            }
            let idle = self.options.idle_timeout.unwrap_or(Duration::MAX);
            tokio::select! {
                _ = self.tx.closed() => return Ok(SessionEnd::Cancelled),
                _ = health.tick() => {
                    if !connection.status().connected() {
                        return Err(ClientError::ReplyQueueClosed);
                    }
                }
                next = tokio::time::timeout(idle, reply.consumer.next()) => match next {
                    Err(_) => return Err(ClientError::Timeout(idle)),
                    Ok(None) => return Err(ClientError::ReplyQueueClosed),
                    Ok(Some(Err(error))) => return Err(error.into()),
                    Ok(Some(Ok(delivery))) => {
                        if !self.accept(&delivery.data).await {
                            return Ok(SessionEnd::Cancelled);
                        }
                    }
                },
            }
        }
    }

    /// Publishes new jobs while there is room under the in-flight bound.
    async fn fill(&mut self, publisher: &Publisher, reply_to: &str) -> Result<(), ClientError> {
        while !self.exhausted && self.outstanding.len() < self.options.in_flight.max(1) {
            let Some(mut job) = self.jobs.next() else {
                self.exhausted = true;
                break;
            };
            let id = job.job_id.get_or_insert_with(JobId::generate).clone();
            if !self.seen.insert(id.clone()) {
                return Err(ClientError::DuplicateJobId(id.as_str().to_string()));
            }
            // Owed an answer from here on, so a publish lost with the connection is redone on reconnect.
            self.outstanding.insert(id, job.clone());
            publish(publisher, &self.names, &job, reply_to, self.options.job_ttl).await?;
        }
        Ok(())
    }

    /// Passes on the first answer for an outstanding job; false when nobody listens any more.
    async fn accept(&mut self, data: &[u8]) -> bool {
        let result: JobResult = match serde_json::from_slice(data) {
            Ok(result) => result,
            Err(error) => {
                tracing::warn!(%error, "ignoring an unreadable message on the batch's reply queue");
                return true;
            }
        };
        if self.outstanding.remove(&result.job_id).is_none() {
            return true;
        }
        self.progressed = true;
        self.tx.send(Ok(result)).await.is_ok()
    }
}

/// Publishes a job of the batch (it always has its job_id by now).
async fn publish(
    publisher: &Publisher,
    names: &QueueNames,
    job: &FetchJob,
    reply_to: &str,
    ttl: Option<Duration>,
) -> Result<(), ClientError> {
    let id = job.job_id.clone().unwrap_or_else(JobId::generate);
    let body = serde_json::to_vec(job)?;
    let target = JobTarget {
        kind: JobKind::Fetch,
        job_id: &id,
        reply_to: Some(reply_to),
        expiration: ttl,
    };
    publish_job(publisher, names, &body, target).await
}
