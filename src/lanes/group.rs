//! A group this replica owns: its inbox emptied into device lanes, a runner per lane, and lanes removed
//! once idle. Only this replica publishes to its lanes (the owner, and the intake through `local`), so the
//! owner can remove an empty lane without a job slipping in between the check and the delete.
//!
//! A new lane is created beside the inbox, not in its way: declaring a durable queue takes the broker tens
//! of milliseconds under load, and a thousand new devices, created one after the other, kept the devices
//! that already had lanes waiting for seconds (`bench --many-only`). A new lane's jobs wait in hand, in
//! order, until it exists. A device's interactive lane is created only when an interactive job comes: most
//! devices never get one, and a thousand devices start with half the declares and consumers.

use std::collections::HashMap;
use std::sync::Arc;
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
use super::{Hop, Lane, LaneKey, SessionCtx, ack, requeue};
use crate::broker::{Consumers, warn_unless_connection_lost};
use crate::devices::{Start, now_ms};
use crate::settings::QueueType;

struct Running {
    /// The lane kinds whose queues exist and are consumed.
    queues: Vec<LaneKind>,
    /// Tells the runner of a queue created since it started.
    more: mpsc::UnboundedSender<LaneKind>,
    state: Arc<LaneState>,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl Running {
    fn lanes(&self, key: &LaneKey) -> Vec<Lane> {
        let device = &key.device;
        let lane = |&kind| Lane {
            device: device.clone(),
            kind,
        };
        self.queues.iter().map(lane).collect()
    }
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
    creating: HashMap<Lane, Vec<Delivery>>,
    created: mpsc::UnboundedSender<(Lane, bool)>,
}

impl GroupOwner {
    /// Serves the group until `stop`, then stops its lanes and waits (within the grace) for their jobs, so
    /// the next owner never runs a device's jobs beside this one's.
    pub async fn serve(
        ctx: Arc<SessionCtx>,
        group: Group,
        claims: mpsc::UnboundedSender<ClaimCommand>,
        start: Start,
        known: Vec<Lane>,
        markers: mpsc::UnboundedReceiver<Lane>,
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
        known: Vec<Lane>,
        mut markers: mpsc::UnboundedReceiver<Lane>,
        mut created: mpsc::UnboundedReceiver<(Lane, bool)>,
        stop: CancellationToken,
    ) {
        for lane in known {
            self.serve_lane(lane, start);
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
                Some(lane) = markers.recv() => {
                    if !self.creating.contains_key(&lane) {
                        self.serve_lane(lane, start);
                    }
                }
                Some((lane, ok)) = created.recv() => self.lane_created(lane, ok).await,
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
        for delivery in self.creating.drain().flat_map(|(_, waiting)| waiting) {
            requeue(&delivery).await;
        }
        self.stop_lanes().await;
    }

    /// Moves one job from the inbox to its device's lane, creating the lane on first use.
    async fn route(&mut self, delivery: Delivery) {
        let Some(lane) = Lane::read(delivery.properties.headers().as_ref()) else {
            tracing::warn!("a message without routing headers in a group inbox; dead-lettered");
            return self.ctx.job().dead_letter_foreign(delivery).await;
        };
        if let Some(waiting) = self.creating.get_mut(&lane) {
            return waiting.push(delivery);
        }
        if !self.serves(&lane) {
            self.creating.insert(lane.clone(), vec![delivery]);
            self.ctx.watch.spawn(create_lane(
                self.ctx.clone(),
                self.declaring.clone(),
                self.claims.clone(),
                ClaimId::Group(self.group.clone()),
                lane,
                self.created.clone(),
            ));
            return;
        }
        self.hop(&lane, delivery).await;
    }

    fn serves(&self, lane: &Lane) -> bool {
        self.lanes
            .get(&lane.key())
            .is_some_and(|running| running.queues.contains(&lane.kind))
    }

    /// A lane exists now (or could not be made): its waiting jobs go in, in the order they came.
    async fn lane_created(&mut self, lane: Lane, ok: bool) {
        let waiting = self.creating.remove(&lane).unwrap_or_default();
        if ok {
            self.serve_lane(lane.clone(), Start::Fresh);
        }
        for delivery in waiting {
            if ok {
                self.hop(&lane, delivery).await;
            } else {
                requeue(&delivery).await;
            }
        }
    }

    /// Moves one job into its lane (which runs here); the inbox delivery is acked once the broker confirmed.
    async fn hop(&mut self, lane: &Lane, delivery: Delivery) {
        let key = lane.key();
        let Some(running) = self.lanes.get(&key) else {
            return requeue(&delivery).await;
        };
        let hop = Hop::begin(running.state.clone());
        let Some(properties) = super::hop_properties(&delivery.properties, lane, now_ms()) else {
            // Its deadline passed: nobody waits for the answer any more.
            self.ctx.services.metrics.expired(key.kind);
            return ack(&delivery).await;
        };
        let queue = lane.queue(&self.ctx.lane_names);
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
            drop(hop);
        });
    }

    /// Serves a lane queue: in its device's runner, started if there is none yet. From now on the intake
    /// sends its fetches straight in.
    fn serve_lane(&mut self, lane: Lane, start: Start) {
        let key = lane.key();
        match self.lanes.get_mut(&key) {
            Some(running) if running.queues.contains(&lane.kind) => return,
            Some(running) => {
                running.queues.push(lane.kind);
                let _ = running.more.send(lane.kind);
            }
            None => self.run_lane(key.clone(), vec![lane.kind], start),
        }
        self.open_locally(&key);
    }

    fn open_locally(&self, key: &LaneKey) {
        if let Some(running) = self.lanes.get(key) {
            for lane in running.lanes(key) {
                self.ctx.local_lanes.open(lane, running.state.clone());
            }
        }
    }

    fn run_lane(&mut self, key: LaneKey, queues: Vec<LaneKind>, start: Start) {
        let state = Arc::new(LaneState::new());
        let stop = CancellationToken::new();
        let (more, more_rx) = mpsc::unbounded_channel();
        let task = self.ctx.watch.spawn(lane::run(
            self.ctx.clone(),
            self.consumers.clone(),
            lane::Queues::new(key.clone(), queues.clone(), more_rx),
            start,
            state.clone(),
            stop.clone(),
        ));
        let running = Running {
            queues,
            more,
            state,
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
            .filter(|(key, running)| {
                running.state.is_idle(idle) && !self.creating.keys().any(|lane| lane.key() == **key)
            })
            .map(|(key, _)| key.clone())
            .collect();
        for key in idle_keys {
            let Some(running) = self.lanes.get(&key) else {
                continue;
            };
            let lanes = running.lanes(&key);
            // Jobs in the lane that have not reached its runner yet (the broker can be slower than `idle` to
            // deliver the next one after an ack): not idle.
            if !self.lanes_empty(&lanes).await {
                running.state.touch();
                continue;
            }
            if !self
                .ctx
                .local_lanes
                .close_if_idle(&lanes, &running.state, idle)
            {
                continue; // a job on its way in from the intake
            }
            let Some(running) = self.lanes.remove(&key) else {
                continue;
            };
            running.stop.cancel();
            let _ = running.task.await;
            let mut kept = Vec::new();
            for kind in running.queues {
                let lane = Lane {
                    device: key.device.clone(),
                    kind,
                };
                if !self.delete_lane(&lane).await {
                    kept.push(kind);
                    continue;
                }
                let command = ClaimCommand::RemoveLane {
                    claim: ClaimId::Group(self.group.clone()),
                    lane,
                };
                let _ = self.claims.send(command);
                tracing::info!(
                    device = key.device.as_ref().map(|d| d.as_str()).unwrap_or("-"),
                    lane = kind.as_str(),
                    "idle lane removed"
                );
            }
            if !kept.is_empty() {
                // Its pace goes on where the stopped runner left it: no burst, as after a hand-over.
                self.run_lane(key.clone(), kept, Start::TakenOver);
                self.open_locally(&key);
            }
        }
    }

    /// Whether the lane queues hold no ready job (a missing queue counts as not empty). On a channel of its
    /// own: a missing queue closes it.
    async fn lanes_empty(&self, lanes: &[Lane]) -> bool {
        let Ok(channel) = self.ctx.connection.create_channel().await else {
            return false;
        };
        let mut empty = true;
        for lane in lanes {
            let queue = lane.queue(&self.ctx.lane_names);
            if !matches!(crate::broker::message_count(&channel, &queue).await, Ok(0)) {
                empty = false;
                break;
            }
        }
        let _ = channel.close(200, "lanes counted".into()).await;
        empty
    }

    /// Deletes a lane queue if it is empty. On a channel of its own: a refused delete closes it.
    async fn delete_lane(&self, lane: &Lane) -> bool {
        let Ok(channel) = self.ctx.connection.create_channel().await else {
            return false;
        };
        let queue = lane.queue(&self.ctx.lane_names);
        // Quorum queues refuse `if_empty` outright; for them emptiness is checked first, which is enough
        // because only this replica publishes to its lanes and none of its hops is on its way into this one.
        let classic = self.ctx.services.settings.topology.queue_type == QueueType::Classic;
        let empty = matches!(crate::broker::message_count(&channel, &queue).await, Ok(0));
        let options = QueueDeleteOptions {
            if_empty: classic,
            ..QueueDeleteOptions::default()
        };
        let deleted = empty
            && channel
                .queue_delete(queue.as_str().into(), options)
                .await
                .is_ok();
        let _ = channel.close(200, "lane removed".into()).await;
        deleted
    }

    /// Stops every lane and waits until their jobs are settled (or the grace period is over).
    async fn stop_lanes(&mut self) {
        for (key, running) in &self.lanes {
            self.ctx.local_lanes.close(running.lanes(key));
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

/// Declares the lane's queue and records it in the claim before its first job goes in, so a replica taking
/// over finds it; tells the group how it went.
async fn create_lane(
    ctx: Arc<SessionCtx>,
    declaring: Channel,
    claims: mpsc::UnboundedSender<ClaimCommand>,
    claim: ClaimId,
    lane: Lane,
    created: mpsc::UnboundedSender<(Lane, bool)>,
) {
    let queue_type = ctx.services.settings.topology.queue_type;
    let queue = lane.queue(&ctx.lane_names);
    let declared =
        crate::broker::declare_queue(&declaring, &queue, queue_type, FieldTable::default());
    if let Err(err) = declared.await {
        ctx.watch.lost(format!("declaring {queue}: {err}"));
        let _ = created.send((lane, false));
        return;
    }
    let (done, confirmed) = tokio::sync::oneshot::channel();
    let command = ClaimCommand::AddLane {
        claim,
        lane: lane.clone(),
        done,
    };
    let ok = claims.send(command).is_ok() && confirmed.await.unwrap_or(false);
    let _ = created.send((lane, ok));
}
