//! One broker connection: a consuming channel, a confirm-mode publishing channel, both job consumers,
//! and the loop that hands each delivery to its own task within the in-flight bounds.

use std::sync::Arc;

use futures_util::StreamExt;
use lapin::options::{BasicCancelOptions, BasicConsumeOptions, BasicQosOptions};
use lapin::types::FieldTable;
use lapin::{Channel, Connection};
use tokio_util::task::TaskTracker;

use super::{Services, delivery};
use crate::broker::{self, Backoff, Publisher};
use crate::protocol::JobKind;
use crate::shutdown::Shutdown;

pub enum SessionEnd {
    /// Shutdown was requested and in-flight work has been settled or abandoned to the broker.
    Shutdown,
    /// The connection or a channel failed; the caller reconnects.
    Lost(String),
}

pub(crate) async fn run(
    services: &Arc<Services>,
    connection: Connection,
    shutdown: &Shutdown,
    backoff: &mut Backoff,
) -> SessionEnd {
    let tracker = TaskTracker::new();
    let end = match consume(services, &connection, shutdown, backoff, &tracker).await {
        Ok(end) => end,
        Err(err) => SessionEnd::Lost(err.to_string()),
    };
    tracker.close();
    // Closing returns every unacked delivery to its queue. Tasks of a lost connection finish on their
    // own: their publishes and acks fail and the broker redelivers those jobs.
    let _ = connection.close(200, "worker stopping".into()).await;
    end
}

/// Lets in-flight jobs finish within the grace period, then closes the consuming channel. Closing the
/// channel (and waiting for the broker's close-ok) before the connection makes sure every ack already
/// sent has been processed: a connection close can overtake acks still queued in the broker's channel.
async fn drain(services: &Services, tracker: &TaskTracker, channel: &Channel) {
    tracker.close();
    let grace = services.settings.worker.shutdown_grace;
    if tokio::time::timeout(grace, tracker.wait()).await.is_err() {
        tracing::warn!(
            unfinished = tracker.len(),
            "grace period over; unfinished jobs go back to their queue"
        );
    }
    let _ = channel.close(200, "worker stopping".into()).await;
}

async fn consume(
    services: &Arc<Services>,
    connection: &Connection,
    shutdown: &Shutdown,
    backoff: &mut Backoff,
    tracker: &TaskTracker,
) -> Result<SessionEnd, lapin::Error> {
    let names = &services.names;
    let publisher = Publisher::new(connection.create_channel().await?).await?;
    let settings = &services.settings;
    broker::declare(
        publisher.channel(),
        names,
        settings.topology.queue_type,
        &services.retry,
    )
    .await?;
    let consumer_channel = connection.create_channel().await?;
    consumer_channel
        .basic_qos(
            services.settings.worker.prefetch,
            BasicQosOptions::default(),
        )
        .await?;
    let tag = |kind: JobKind| {
        format!(
            "avatar-worker-{}-{kind}-{}",
            std::process::id(),
            uuid::Uuid::new_v4()
        )
    };
    let (fetch_tag, update_tag) = (tag(JobKind::Fetch), tag(JobKind::Update));
    let fetch = start_consumer(&consumer_channel, &names.fetch, &fetch_tag).await?;
    let update = start_consumer(&consumer_channel, &names.update, &update_tag).await?;
    backoff.reset();
    tracing::info!(fetch = %names.fetch, update = %names.update, "consuming");
    services.readiness.consuming();

    let mut deliveries = futures_util::stream::select(
        fetch.map(|d| (JobKind::Fetch, d)),
        update.map(|d| (JobKind::Update, d)),
    );
    // Deliveries in hand are bounded by the prefetch window; each task takes an in-flight slot only once
    // its device may run, so a throttled device never holds slots other devices need.
    loop {
        let next = tokio::select! {
            biased;
            _ = shutdown.wait() => break,
            next = deliveries.next() => next,
        };
        match next {
            Some((kind, Ok(delivery))) => {
                let services = services.clone();
                let publisher = publisher.clone();
                tracker.spawn(async move {
                    delivery::handle(&services, &publisher, kind, delivery).await;
                });
            }
            Some((_, Err(err))) => return Ok(SessionEnd::Lost(err.to_string())),
            None => return Ok(SessionEnd::Lost("the broker cancelled a consumer".into())),
        }
    }
    // Stop new deliveries; the ones already pushed but not started are requeued when the channel closes.
    for tag in [fetch_tag, update_tag] {
        let _ = consumer_channel
            .basic_cancel(tag.as_str().into(), BasicCancelOptions::default())
            .await;
    }
    drain(services, tracker, &consumer_channel).await;
    let _ = publisher
        .channel()
        .close(200, "worker stopping".into())
        .await;
    Ok(SessionEnd::Shutdown)
}

async fn start_consumer(
    channel: &Channel,
    queue: &str,
    tag: &str,
) -> Result<lapin::Consumer, lapin::Error> {
    channel
        .basic_consume(
            queue.into(),
            tag.into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
}
