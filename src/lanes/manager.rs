//! This replica's share of the work: the claims it subscribes to, the owners it runs for the claims it
//! wins, and the excess it hands over when it owns more than its fair share.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::claims::{ClaimCommand, ClaimEvent, ClaimId, Claims, Subscription};
use super::group::GroupOwner;
use super::names::Group;
use super::{Lane, SessionCtx};
use crate::devices::Start;
use crate::ops::GaugeGuard;
use crate::protocol::DeviceId;
use crate::worker::intake;

struct Owned {
    stop: CancellationToken,
    task: JoinHandle<()>,
    markers: Option<mpsc::UnboundedSender<Lane>>,
    /// Counted in `avatar_worker_claims_owned` while this replica owns the claim.
    _counted: GaugeGuard,
}

/// The `claim` label of `avatar_worker_claims_owned`.
fn metric_kind(claim: &ClaimId) -> &'static str {
    match claim {
        ClaimId::Group(Group::Shard(_)) => "shard",
        ClaimId::Group(Group::Native(_)) => "native",
        ClaimId::UpdateIntake => "update_intake",
    }
}

pub struct Manager {
    ctx: Arc<SessionCtx>,
    claims: mpsc::UnboundedSender<ClaimCommand>,
    events: mpsc::UnboundedReceiver<ClaimEvent>,
    owned: HashMap<ClaimId, Owned>,
    /// The claims this replica subscribes to, each with the number of its current subscription.
    subscribed: HashMap<ClaimId, Subscription>,
    last_subscription: Subscription,
    /// Native devices whose claim this replica subscribes to (it holds their sessions).
    native: HashSet<DeviceId>,
    /// Native devices handed over lately, not to be taken back before the instant.
    cooling: HashMap<DeviceId, tokio::time::Instant>,
}

impl Manager {
    /// Subscribes to every shard, to reading updates, and to the native devices whose sessions this process
    /// holds.
    pub fn start(ctx: Arc<SessionCtx>, claims_channel: lapin::Channel) -> Self {
        let (events_tx, events) = mpsc::unbounded_channel();
        let (claims, commands) = mpsc::unbounded_channel();
        let names = ctx.lane_names.clone();
        let queue_of = move |claim: &ClaimId| match claim {
            ClaimId::Group(group) => names.claim(group),
            ClaimId::UpdateIntake => names.update_intake_claim(),
        };
        let runner = Claims::new(
            claims_channel,
            ctx.publisher.clone(),
            queue_of,
            events_tx,
            ctx.watch.clone(),
        );
        ctx.watch.spawn(runner.run(commands));
        let mut subscriptions: Vec<ClaimId> = (0..ctx.services.settings.lanes.groups)
            .map(|n| ClaimId::Group(Group::Shard(n)))
            .collect();
        subscriptions.push(ClaimId::UpdateIntake);
        let native: HashSet<DeviceId> = ctx
            .services
            .backend
            .placements()
            .into_iter()
            .filter(|placement| placement.held)
            .map(|placement| placement.device)
            .collect();
        subscriptions.extend(
            native
                .iter()
                .map(|device| ClaimId::Group(Group::Native(device.clone()))),
        );
        let mut manager = Self {
            ctx,
            claims,
            events,
            owned: HashMap::new(),
            subscribed: HashMap::new(),
            last_subscription: 0,
            native,
            cooling: HashMap::new(),
        };
        for claim in subscriptions {
            manager.subscribe(claim);
        }
        manager
    }

    fn next_subscription(&mut self, claim: &ClaimId) -> Subscription {
        self.last_subscription += 1;
        self.subscribed
            .insert(claim.clone(), self.last_subscription);
        self.last_subscription
    }

    fn subscribe(&mut self, claim: ClaimId) {
        let subscription = self.next_subscription(&claim);
        let _ = self
            .claims
            .send(ClaimCommand::Subscribe(claim, subscription));
    }

    /// Gives an owned claim to the next subscriber; this replica stays a subscriber, under a new number.
    fn release(&mut self, claim: ClaimId) {
        let subscription = self.next_subscription(&claim);
        let _ = self.claims.send(ClaimCommand::Release(claim, subscription));
    }

    fn unsubscribe(&mut self, claim: ClaimId) {
        self.subscribed.remove(&claim);
        let _ = self.claims.send(ClaimCommand::Unsubscribe(claim));
    }

    /// Runs the owners of won claims until `stop`, then stops them (each waits for its jobs within the grace).
    pub async fn run(mut self, stop: CancellationToken) {
        let lanes = &self.ctx.services.settings.lanes;
        let mut balance = tokio::time::interval(lanes.balance);
        let mut renew = tokio::time::interval(lanes.renew);
        renew.tick().await;
        loop {
            tokio::select! {
                biased;
                _ = stop.cancelled() => break,
                _ = self.ctx.watch.wait() => break,
                Some(event) = self.events.recv() => self.on_event(event),
                _ = balance.tick() => self.balance().await,
                _ = renew.tick() => {
                    let _ = self.claims.send(ClaimCommand::Renew);
                }
            }
        }
        for owned in self.owned.values() {
            owned.stop.cancel();
        }
        for (_, owned) in self.owned.drain() {
            let _ = owned.task.await;
        }
    }

    fn on_event(&mut self, event: ClaimEvent) {
        match event {
            ClaimEvent::Won {
                claim,
                subscription,
                start,
                lanes,
            } => {
                // A claim given up or released (a native device handed over, its session closed) can still
                // be won by a delivery that reached the claims before they were told: owning it would serve
                // its devices on two replicas. The claims return that token with the old subscription.
                if self.subscribed.get(&claim) != Some(&subscription) {
                    tracing::info!(
                        ?claim,
                        "claim won by a subscription since ended; left to the next replica"
                    );
                    return;
                }
                tracing::info!(?claim, ?start, lanes = lanes.len(), "claim won");
                let owned = self.run_owner(&claim, start, lanes);
                self.owned.insert(claim, owned);
            }
            ClaimEvent::Lane { claim, lane } => {
                if let Some(markers) = self.owned.get(&claim).and_then(|o| o.markers.as_ref()) {
                    let _ = markers.send(lane);
                }
            }
        }
    }

    fn run_owner(&self, claim: &ClaimId, start: Start, lanes: Vec<Lane>) -> Owned {
        let stop = CancellationToken::new();
        let counted = self.ctx.services.metrics.claim_owned(metric_kind(claim));
        match claim {
            ClaimId::Group(group) => {
                let (markers, markers_rx) = mpsc::unbounded_channel();
                let task = self.ctx.watch.spawn(GroupOwner::serve(
                    self.ctx.clone(),
                    group.clone(),
                    self.claims.clone(),
                    start,
                    lanes,
                    markers_rx,
                    stop.clone(),
                ));
                Owned {
                    stop,
                    task,
                    markers: Some(markers),
                    _counted: counted,
                }
            }
            ClaimId::UpdateIntake => {
                let task = self
                    .ctx
                    .watch
                    .spawn(intake::serve_updates(self.ctx.clone(), stop.clone()));
                Owned {
                    stop,
                    task,
                    markers: None,
                    _counted: counted,
                }
            }
        }
    }

    /// Hands over the shards and native devices beyond this replica's fair share, `ceil(n / replicas)`,
    /// where the replicas are the subscribers of a shard's claim (every replica subscribes to every shard),
    /// and takes the native sessions that are free.
    async fn balance(&mut self) {
        let claim_queue = self.ctx.lane_names.claim(&Group::Shard(0));
        let Ok(replicas) = self.ctx.consumer_count(&claim_queue).await else {
            return;
        };
        let replicas = (replicas as usize).max(1);
        self.balance_shards(replicas).await;
        self.place_native(replicas).await;
    }

    async fn balance_shards(&mut self, replicas: usize) {
        let shards = usize::from(self.ctx.services.settings.lanes.groups);
        let fair = shards.div_ceil(replicas);
        let mut mine: Vec<ClaimId> = self
            .owned
            .keys()
            .filter(|claim| matches!(claim, ClaimId::Group(Group::Shard(_))))
            .cloned()
            .collect();
        if mine.len() <= fair {
            return;
        }
        mine.sort();
        for claim in mine.split_off(fair) {
            tracing::info!(
                ?claim,
                replicas,
                fair,
                "handing a claim over to balance the replicas"
            );
            self.stop_owner(&claim).await;
            self.release(claim);
        }
    }

    /// Native devices go where their sessions are: this replica subscribes to a device's claim while it
    /// holds the session, takes free sessions (not ones it handed over lately), and hands over those beyond
    /// its fair share of the paired ones (closing the session frees it for another replica). Unpaired
    /// sessions, held by nobody, are served by any replica.
    async fn place_native(&mut self, replicas: usize) {
        let placements = self.ctx.services.backend.placements();
        if placements.is_empty() {
            return;
        }
        let now = tokio::time::Instant::now();
        self.cooling.retain(|_, until| *until > now);
        let paired: HashSet<DeviceId> = placements
            .iter()
            .filter(|p| p.paired)
            .map(|p| p.device.clone())
            .collect();
        let fair = paired.len().div_ceil(replicas);
        let mine = |native: &HashSet<DeviceId>| native.intersection(&paired).count();
        for placement in &placements {
            let device = &placement.device;
            let held = placement.held
                || (mine(&self.native) < fair
                    && !self.cooling.contains_key(device)
                    && self.ctx.services.backend.acquire(device).await);
            if held && self.native.insert(device.clone()) {
                let group = Group::Native(device.clone());
                if let Err(err) = self.ctx.declare_group(&group).await {
                    return self
                        .ctx
                        .watch
                        .lost(format!("declaring a native group: {err}"));
                }
                self.subscribe(ClaimId::Group(group));
            }
        }
        while mine(&self.native) > fair {
            let Some(device) = self.native.intersection(&paired).max().cloned() else {
                break;
            };
            tracing::info!(
                device = device.as_str(),
                replicas,
                fair,
                "handing a native device over"
            );
            let claim = ClaimId::Group(Group::Native(device.clone()));
            self.stop_owner(&claim).await;
            self.unsubscribe(claim);
            self.ctx.services.backend.release(&device).await;
            self.native.remove(&device);
            let cool = self.ctx.services.settings.lanes.balance * 3;
            self.cooling.insert(device, now + cool);
        }
    }

    /// Stops the owner of a claim, if this replica runs one, and waits until its jobs are settled.
    async fn stop_owner(&mut self, claim: &ClaimId) {
        if let Some(owned) = self.owned.remove(claim) {
            owned.stop.cancel();
            let _ = owned.task.await;
        }
    }
}
