//! One broker connection's life: the topology declared, the channels opened, fetch jobs read from their
//! queue (a job **enters** here), this replica's claims and lanes started (`crate::lanes`), and everything
//! stopped again on shutdown or when any channel fails.

use std::sync::Arc;

use futures_util::StreamExt;
use lapin::Connection;
use lapin::types::{AMQPValue, FieldTable};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::delivery::{JobCtx, ReplyCheck};
use super::{Services, intake};
use crate::broker::{self, Backoff, Consumers, Publisher, Watch};
use crate::lanes::{LocalLanes, Manager, names::Group, names::LaneNames};
use crate::protocol::JobKind;
use crate::shutdown::Shutdown;

pub enum SessionEnd {
    /// Shutdown was requested and in-flight work has been settled or abandoned to the broker.
    Shutdown,
    /// The connection or a channel failed; the caller reconnects.
    Lost(String),
}

/// What every part of one connection's work shares.
pub(crate) struct SessionCtx {
    pub services: Arc<Services>,
    pub publisher: Publisher,
    pub connection: Arc<Connection>,
    /// The update intake's consumer (each group owner has a channel of its own).
    pub consumers: Consumers,
    pub lane_names: LaneNames,
    /// The lanes this session's owners serve; the intake sends fetches straight into them.
    pub local_lanes: Arc<LocalLanes>,
    pub watch: Watch,
    tracker: TaskTracker,
    replies: ReplyCheck,
    declared: Arc<std::sync::Mutex<std::collections::HashSet<Group>>>,
}

impl SessionCtx {
    /// Declares a group's claim (single active consumer) and inbox; idempotent.
    pub async fn declare_group(&self, group: &Group) -> Result<(), lapin::Error> {
        self.job().ensure_group(group).await
    }

    /// How many consumers `queue` has, asked on a channel of its own (a missing queue closes it).
    pub async fn consumer_count(&self, queue: &str) -> Result<u32, lapin::Error> {
        let channel = self.connection.create_channel().await?;
        let counts = broker::queue_counts(&channel, queue).await;
        let _ = channel.close(200, "counted".into()).await;
        counts.map(|(_, consumers)| consumers)
    }

    /// Runs one job's work (or one hop's settling) as a task the drain waits for, ended when the session is
    /// lost: an ack or publish then could wait for lapin forever, and the broker redelivers the job anyway.
    pub fn spawn_job(&self, work: impl std::future::Future<Output = ()> + Send + 'static) {
        // A job's future is kilobytes and spawning moves it several times; boxed, only its pointer moves.
        self.tracker.spawn(self.watch.ending(Box::pin(work)));
    }

    pub fn job(&self) -> JobCtx {
        JobCtx {
            services: self.services.clone(),
            publisher: self.publisher.clone(),
            replies: self.replies.clone(),
            declared: self.declared.clone(),
            local_lanes: self.local_lanes.clone(),
        }
    }
}

pub(crate) async fn run(
    services: &Arc<Services>,
    connection: Connection,
    shutdown: &Shutdown,
    backoff: &mut Backoff,
) -> SessionEnd {
    let connection = Arc::new(connection);
    let tracker = TaskTracker::new();
    let watch = Watch::new();
    watch.follow(&connection);
    let served = watch.bound(serve(
        services,
        &connection,
        shutdown,
        backoff,
        &tracker,
        &watch,
    ));
    let end = match served.await {
        Some(Ok(end)) => end,
        Some(Err(err)) => SessionEnd::Lost(err.to_string()),
        None => SessionEnd::Lost(watch.reason()),
    };
    tracker.close();
    if let SessionEnd::Lost(reason) = &end {
        // Everything still at work on this connection stops waiting on it.
        watch.lost(reason.as_str());
    }
    // Closing returns every unacked delivery to its queue. Tasks of a lost connection finish on their
    // own: their publishes and acks fail and the broker redelivers those jobs.
    broker::close(&connection, "worker stopping").await;
    end
}

async fn serve(
    services: &Arc<Services>,
    connection: &Arc<Connection>,
    shutdown: &Shutdown,
    backoff: &mut Backoff,
    tracker: &TaskTracker,
    watch: &Watch,
) -> Result<SessionEnd, lapin::Error> {
    let publisher = Publisher::new(connection.create_channel().await?, watch.clone()).await?;
    let lane_names = LaneNames::new(&services.settings.topology.prefix);
    let declared = declare(services, &publisher, &lane_names).await?;
    let ctx = Arc::new(SessionCtx {
        services: services.clone(),
        publisher: publisher.clone(),
        connection: connection.clone(),
        consumers: Consumers::open(connection).await?,
        lane_names,
        local_lanes: Arc::default(),
        watch: watch.clone(),
        tracker: tracker.clone(),
        replies: ReplyCheck::new(connection.clone()),
        declared: Arc::new(std::sync::Mutex::new(declared.into_iter().collect())),
    });
    let stop_lanes = CancellationToken::new();
    let manager = Manager::start(ctx.clone(), connection.create_channel().await?);
    let lanes = watch.spawn(manager.run(stop_lanes.clone()));

    let intake = Consumers::open(connection).await?;
    let fetch_queue = services.names.job_queue(JobKind::Fetch).to_string();
    let (tag, mut fetches) = intake
        .consume(&fetch_queue, services.settings.worker.prefetch)
        .await?;
    let consuming = services.metrics.job_consumer(JobKind::Fetch);
    backoff.reset();
    tracing::info!(fetch_queue = %fetch_queue, "consuming");
    services.readiness.consuming();

    let end = loop {
        let next = tokio::select! {
            biased;
            _ = shutdown.wait() => break SessionEnd::Shutdown,
            _ = watch.wait() => break SessionEnd::Lost(watch.reason()),
            next = fetches.next() => next,
        };
        match next {
            Some(Ok(delivery)) => {
                let job = ctx.job();
                ctx.spawn_job(async move { intake::handle(&job, JobKind::Fetch, delivery).await });
            }
            Some(Err(err)) => break SessionEnd::Lost(format!("fetch consumer: {err}")),
            None => break SessionEnd::Lost("the broker cancelled the fetch consumer".into()),
        }
    };
    if let SessionEnd::Lost(_) = &end {
        stop_lanes.cancel();
        return Ok(end);
    }
    // Stop reading new jobs; deliveries already pushed but not started go back when the channel closes.
    intake.cancel(&tag).await;
    drop(consuming);
    stop_lanes.cancel();
    let _ = lanes.await;
    drain(services, tracker).await;
    intake.close("worker stopping").await;
    ctx.consumers.close("worker stopping").await;
    let _ = publisher
        .channel()
        .close(200, "worker stopping".into())
        .await;
    Ok(SessionEnd::Shutdown)
}

/// Lets in-flight jobs finish within the grace period. Channels are closed (and their close-ok awaited)
/// before the connection, so every ack already sent is processed: a connection close can overtake acks
/// still queued in the broker's channel.
async fn drain(services: &Services, tracker: &TaskTracker) {
    tracker.close();
    let grace = services.settings.worker.shutdown_grace;
    if tokio::time::timeout(grace, tracker.wait()).await.is_err() {
        tracing::warn!(
            unfinished = tracker.len(),
            "grace period over; unfinished jobs go back to their queue"
        );
    }
}

/// The job, result and dead-letter queues, the delay queues of the retry policy, and every shard's claim
/// and inbox. Idempotent: every worker does it at every (re)connect.
async fn declare(
    services: &Services,
    publisher: &Publisher,
    lane_names: &LaneNames,
) -> Result<Vec<Group>, lapin::Error> {
    let queue_type = services.settings.topology.queue_type;
    let channel = publisher.channel();
    broker::declare(channel, &services.names, queue_type, &services.retry).await?;
    let claim = lane_names.update_intake_claim();
    broker::declare_queue(channel, &claim, queue_type, single_active()).await?;
    let mut groups: Vec<Group> = (0..services.settings.lanes.groups)
        .map(Group::Shard)
        .collect();
    groups.extend(
        services
            .backend
            .placements()
            .into_iter()
            .map(|placement| Group::Native(placement.device)),
    );
    for group in &groups {
        declare_group(services, publisher, group).await?;
    }
    Ok(groups)
}

/// Declares a group's claim (single active consumer) and its inbox; idempotent.
pub(crate) async fn declare_group(
    services: &Services,
    publisher: &Publisher,
    group: &Group,
) -> Result<(), lapin::Error> {
    let queue_type = services.settings.topology.queue_type;
    let channel = publisher.channel();
    let names = &services.lane_names;
    broker::declare_queue(channel, &names.claim(group), queue_type, single_active()).await?;
    broker::declare_queue(
        channel,
        &names.inbox(group),
        queue_type,
        FieldTable::default(),
    )
    .await
}

fn single_active() -> FieldTable {
    let mut arguments = FieldTable::default();
    arguments.insert("x-single-active-consumer".into(), AMQPValue::Boolean(true));
    arguments
}
