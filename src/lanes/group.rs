//! A group this replica owns: its inbox emptied into device lanes, a runner per lane, and lanes removed
//! once idle. The owner is the only publisher to its lanes, so it can remove an empty lane without a job
//! slipping in between the check and the delete.
//!
//! A new lane is created beside the inbox, not in its way: declaring a durable queue takes the broker tens
//! of milliseconds under load, and a thousand new devices, created one after the other, kept the devices
//! that already had lanes waiting for seconds (`bench --many-only`). A new lane's jobs wait in hand, in
//! order, until it exists.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use lapin::Channel;
use lapin::message::Delivery;
use lapin::options::QueueDeleteOptions;
use lapin::types::FieldTable;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::claims::{ClaimCommand, ClaimId};
use super::lane::{self, LaneState};
use super::names::{Group, LaneKind};
use super::{LaneKey, Routing, SessionCtx, ack, requeue};
use crate::broker::{Consumers, warn_unless_connection_lost};
use crate::devices::{Start, now_ms};
use crate::settings::QueueType;

struct Running {
    state: Arc<LaneState>,
    /// Hops sent to the lane and not yet confirmed.
    pending: Arc<AtomicUsize>,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

pub struct GroupOwner {
    ctx: Arc<SessionCtx>,
    group: Group,
    /// The inbox's and the lanes' consumers, on a channel of this group's own.
    consumers: Arc<Consumers>,
    /// Where the group declares its lanes: not on the consumers' channel, where a new lane's consumer would
    /// wait behind every declare under way.
    declaring: Channel,
    claims: mpsc::UnboundedSender<ClaimCommand>,
    lanes: HashMap<LaneKey, Running>,
    /// Lanes being created, with the jobs that arrived for them meanwhile, in inbox order.
    creating: HashMap<LaneKey, Vec<(Delivery, Routing)>>,
    created: mpsc::UnboundedSender<(LaneKey, bool)>,
}

impl GroupOwner {
    /// Serves the group until `stop`, then stops its lanes and waits (within the grace) for their jobs, so
    /// the next owner never runs a device's jobs beside this one's.
    pub async fn serve(
        ctx: Arc<SessionCtx>,
        group: Group,
        claims: mpsc::UnboundedSender<ClaimCommand>,
        start: Start,
        known: Vec<LaneKey>,
        markers: mpsc::UnboundedReceiver<LaneKey>,
        stop: CancellationToken,
    ) {
        let opened = async {
            let consumers = Consumers::open(&ctx.connection).await?;
            Ok::<_, lapin::Error>((Arc::new(consumers), ctx.connection.create_channel().await?))
        };
        let (consumers, declaring) = match opened.await {
            Ok(channels) => channels,
            Err(err) => {
                return ctx
                    .watch
                    .lost(format!("opening a channel for {group:?}: {err}"));
            }
        };
        let (created, created_rx) = mpsc::unbounded_channel();
        let owner = Self {
            ctx,
            group,
            consumers: consumers.clone(),
            declaring: declaring.clone(),
            claims,
            lanes: HashMap::new(),
            creating: HashMap::new(),
            created,
        };
        owner.run(start, known, markers, created_rx, stop).await;
        consumers.close("group stopped").await;
        let _ = declaring.close(200, "group stopped".into()).await;
    }

    async fn run(
        mut self,
        start: Start,
        known: Vec<LaneKey>,
        mut markers: mpsc::UnboundedReceiver<LaneKey>,
        mut created: mpsc::UnboundedReceiver<(LaneKey, bool)>,
        stop: CancellationToken,
    ) {
        for key in known {
            self.run_lane(key, start);
        }
        let inbox = self.ctx.lane_names.inbox(&self.group);
        let prefetch = self.ctx.services.settings.worker.prefetch;
        let (tag, mut deliveries) = match self.consumers.consume(&inbox, prefetch).await {
            Ok(consumer) => consumer,
            Err(err) => return self.ctx.watch.lost(format!("consuming {inbox}: {err}")),
        };
        let idle = self.ctx.services.settings.lanes.idle;
        let mut sweep = tokio::time::interval(
            (idle / 4).clamp(Duration::from_millis(50), Duration::from_secs(30)),
        );
        loop {
            tokio::select! {
                biased;
                _ = stop.cancelled() => break,
                _ = self.ctx.watch.wait() => break,
                Some(key) = markers.recv() => {
                    if !self.lanes.contains_key(&key) && !self.creating.contains_key(&key) {
                        self.run_lane(key, start);
                    }
                }
                Some((key, ok)) = created.recv() => self.lane_created(key, ok).await,
                next = deliveries.next() => match next {
                    Some(Ok(delivery)) => self.route(delivery).await,
                    Some(Err(err)) => {
                        self.ctx.watch.lost(format!("inbox consumer: {err}"));
                        break;
                    }
                    None => {
                        if !stop.is_cancelled() {
                            self.ctx.watch.lost("the broker cancelled an inbox consumer");
                        }
                        break;
                    }
                },
                _ = sweep.tick() => self.remove_idle_lanes(idle).await,
            }
        }
        self.consumers.cancel(&tag).await;
        for (delivery, _) in self.creating.drain().flat_map(|(_, waiting)| waiting) {
            requeue(&delivery).await;
        }
        self.stop_lanes().await;
    }

    /// Moves one job from the inbox to its device's lane, creating the lane on first use.
    async fn route(&mut self, delivery: Delivery) {
        let Some(routing) = Routing::read(delivery.properties.headers().as_ref()) else {
            tracing::warn!("a message without routing headers in a group inbox; dead-lettered");
            return self.ctx.job().dead_letter_foreign(delivery).await;
        };
        let key = LaneKey {
            device: routing.device.clone(),
            kind: routing.lane.job_kind(),
        };
        if let Some(waiting) = self.creating.get_mut(&key) {
            return waiting.push((delivery, routing));
        }
        if !self.lanes.contains_key(&key) {
            self.creating.insert(key.clone(), vec![(delivery, routing)]);
            self.ctx.watch.spawn(create_lane(
                self.ctx.clone(),
                self.declaring.clone(),
                self.claims.clone(),
                ClaimId::Group(self.group.clone()),
                key.clone(),
                self.created.clone(),
            ));
            return;
        }
        self.hop(&key, delivery, routing).await;
    }

    /// A lane exists now (or could not be made): its waiting jobs go in, in the order they came.
    async fn lane_created(&mut self, key: LaneKey, ok: bool) {
        let waiting = self.creating.remove(&key).unwrap_or_default();
        if ok {
            self.run_lane(key.clone(), Start::Fresh);
        }
        for (delivery, routing) in waiting {
            if ok {
                self.hop(&key, delivery, routing).await;
            } else {
                requeue(&delivery).await;
            }
        }
    }

    /// Moves one job into its lane (which runs here); the inbox delivery is acked once the broker confirmed.
    async fn hop(&mut self, key: &LaneKey, delivery: Delivery, routing: Routing) {
        let Some(running) = self.lanes.get(key) else {
            return requeue(&delivery).await;
        };
        running.state.touch();
        let Some(properties) = super::hop_properties(&delivery.properties, &routing, now_ms())
        else {
            // Its deadline passed: nobody waits for the answer any more.
            self.ctx.services.metrics.expired(key.kind);
            return ack(&delivery).await;
        };
        let queue = self.ctx.lane_names.lane(key.device.as_ref(), routing.lane);
        let pending = running.pending.clone();
        pending.fetch_add(1, Ordering::AcqRel);
        let confirmed = self
            .ctx
            .publisher
            .send(&queue, &delivery.data, properties)
            .await;
        self.ctx.services.metrics.published("lane");
        self.ctx.spawn_job(async move {
            match confirmed.await {
                Ok(()) => ack(&delivery).await,
                Err(err) => {
                    warn_unless_connection_lost!(
                        err,
                        "a hop to a lane was not confirmed; the job goes back to the inbox"
                    );
                    requeue(&delivery).await;
                }
            }
            pending.fetch_sub(1, Ordering::AcqRel);
        });
    }

    fn run_lane(&mut self, key: LaneKey, start: Start) {
        let state = Arc::new(LaneState::new());
        let stop = CancellationToken::new();
        let task = self.ctx.watch.spawn(lane::run(
            self.ctx.clone(),
            self.consumers.clone(),
            key.clone(),
            start,
            state.clone(),
            stop.clone(),
        ));
        let running = Running {
            state,
            pending: Arc::new(AtomicUsize::new(0)),
            stop,
            task,
        };
        self.lanes.insert(key, running);
    }

    /// Removes lanes that have been idle for `idle` with nothing in hand or on the way: their runner stops,
    /// their queues are deleted if (still) empty, their marker leaves the claim.
    async fn remove_idle_lanes(&mut self, idle: Duration) {
        let idle_keys: Vec<LaneKey> = self
            .lanes
            .iter()
            .filter(|(_, running)| {
                running.pending.load(Ordering::Acquire) == 0 && running.state.is_idle(idle)
            })
            .map(|(key, _)| key.clone())
            .collect();
        for key in idle_keys {
            let Some(running) = self.lanes.remove(&key) else {
                continue;
            };
            running.stop.cancel();
            let _ = running.task.await;
            if self.delete_lane(&key).await {
                let command = ClaimCommand::RemoveLane {
                    claim: ClaimId::Group(self.group.clone()),
                    lane: key.clone(),
                };
                let _ = self.claims.send(command);
                tracing::info!(
                    device = key.device.as_ref().map(|d| d.as_str()).unwrap_or("-"),
                    kind = %key.kind,
                    "idle lane removed"
                );
            } else {
                self.run_lane(key, Start::Fresh);
            }
        }
    }

    /// Deletes the lane's queues, each only if empty. On a channel of its own: a refused delete closes it.
    async fn delete_lane(&self, key: &LaneKey) -> bool {
        let Ok(channel) = self.ctx.connection.create_channel().await else {
            return false;
        };
        // Quorum queues refuse `if_empty` outright; for them emptiness is checked first, which is enough
        // because this owner is the only publisher to its lanes and has stopped publishing to this one.
        let classic = self.ctx.services.settings.topology.queue_type == QueueType::Classic;
        let mut deleted = true;
        for &lane in LaneKind::of(key.kind) {
            let queue = self.ctx.lane_names.lane(key.device.as_ref(), lane);
            let empty = match crate::broker::message_count(&channel, &queue).await {
                Ok(count) => count == 0,
                Err(_) => false,
            };
            let options = QueueDeleteOptions {
                if_empty: classic,
                ..QueueDeleteOptions::default()
            };
            if !empty
                || channel
                    .queue_delete(queue.as_str().into(), options)
                    .await
                    .is_err()
            {
                deleted = false;
                break;
            }
        }
        let _ = channel.close(200, "lane removed".into()).await;
        deleted
    }

    /// Stops every lane and waits until their jobs are settled (or the grace period is over).
    async fn stop_lanes(&mut self) {
        for running in self.lanes.values() {
            running.stop.cancel();
        }
        let grace = self.ctx.services.settings.worker.shutdown_grace;
        let deadline = tokio::time::Instant::now() + grace;
        for (_, running) in self.lanes.drain() {
            let _ = running.task.await;
            let _ = tokio::time::timeout_at(deadline, running.state.settled()).await;
        }
    }
}

/// Declares the lane's queues and records the lane in the claim before its first job goes in, so a replica
/// taking over finds it; tells the group how it went.
async fn create_lane(
    ctx: Arc<SessionCtx>,
    declaring: Channel,
    claims: mpsc::UnboundedSender<ClaimCommand>,
    claim: ClaimId,
    key: LaneKey,
    created: mpsc::UnboundedSender<(LaneKey, bool)>,
) {
    let queue_type = ctx.services.settings.topology.queue_type;
    for &lane in LaneKind::of(key.kind) {
        let queue = ctx.lane_names.lane(key.device.as_ref(), lane);
        let declared =
            crate::broker::declare_queue(&declaring, &queue, queue_type, FieldTable::default());
        if let Err(err) = declared.await {
            ctx.watch.lost(format!("declaring {queue}: {err}"));
            let _ = created.send((key, false));
            return;
        }
    }
    let (done, confirmed) = tokio::sync::oneshot::channel();
    let command = ClaimCommand::AddLane {
        claim,
        lane: key.clone(),
        done,
    };
    let ok = claims.send(command).is_ok() && confirmed.await.unwrap_or(false);
    let _ = created.send((key, ok));
}
