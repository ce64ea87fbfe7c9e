//! This replica's share of the work: the claims it subscribes to, the owners it runs for the claims it
//! wins, and the excess it hands over when it owns more than its fair share.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::claims::{ClaimCommand, ClaimEvent, ClaimId, Claims};
use super::group::GroupOwner;
use super::names::Group;
use super::{LaneKey, SessionCtx};
use crate::devices::Start;
use crate::worker::intake;

struct Owned {
    stop: CancellationToken,
    task: JoinHandle<()>,
    markers: Option<mpsc::UnboundedSender<LaneKey>>,
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
        tokio::spawn(runner.run(commands));
        let mut subscriptions: Vec<ClaimId> = (0..ctx.services.settings.lanes.groups)
            .map(|n| ClaimId::Group(Group::Shard(n)))
            .collect();
        subscriptions.push(ClaimId::UpdateIntake);
        subscriptions.extend(
            ctx.services
                .backend
                .sessions()
                .into_iter()
                .map(|session| ClaimId::Group(Group::Native(session.device))),
        );
        for claim in subscriptions {
            let _ = claims.send(ClaimCommand::Subscribe(claim));
        }
        Self {
            ctx,
            claims,
            events,
            owned: HashMap::new(),
        }
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
        for (claim, owned) in self.owned.drain() {
            let _ = owned.task.await;
            self.ctx.services.metrics.claim_owned(metric_kind(&claim), -1);
        }
    }

    fn on_event(&mut self, event: ClaimEvent) {
        match event {
            ClaimEvent::Won {
                claim,
                start,
                lanes,
            } => {
                tracing::info!(?claim, ?start, lanes = lanes.len(), "claim won");
                let owned = self.run_owner(&claim, start, lanes);
                self.ctx.services.metrics.claim_owned(metric_kind(&claim), 1);
                self.owned.insert(claim, owned);
            }
            ClaimEvent::Lane { claim, lane } => {
                if let Some(markers) = self.owned.get(&claim).and_then(|o| o.markers.as_ref()) {
                    let _ = markers.send(lane);
                }
            }
        }
    }

    fn run_owner(&self, claim: &ClaimId, start: Start, lanes: Vec<LaneKey>) -> Owned {
        let stop = CancellationToken::new();
        match claim {
            ClaimId::Group(group) => {
                let (markers, markers_rx) = mpsc::unbounded_channel();
                let owner = GroupOwner::new(self.ctx.clone(), group.clone(), self.claims.clone());
                let task = tokio::spawn(owner.serve(start, lanes, markers_rx, stop.clone()));
                Owned {
                    stop,
                    task,
                    markers: Some(markers),
                }
            }
            ClaimId::UpdateIntake => {
                let task = tokio::spawn(intake::serve_updates(self.ctx.clone(), stop.clone()));
                Owned {
                    stop,
                    task,
                    markers: None,
                }
            }
        }
    }

    /// Hands over the shards beyond this replica's fair share: `ceil(shards / replicas)`, where the replicas
    /// are the subscribers of a shard's claim (every replica subscribes to every shard).
    async fn balance(&mut self) {
        let shards = usize::from(self.ctx.services.settings.lanes.groups);
        let claim_queue = self.ctx.lane_names.claim(&Group::Shard(0));
        let Ok(replicas) = self.ctx.consumer_count(&claim_queue).await else {
            return;
        };
        let fair = shards.div_ceil((replicas as usize).max(1));
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
            if let Some(owned) = self.owned.remove(&claim) {
                tracing::info!(
                    ?claim,
                    replicas,
                    fair,
                    "handing a claim over to balance the replicas"
                );
                owned.stop.cancel();
                let _ = owned.task.await;
                self.ctx.services.metrics.claim_owned(metric_kind(&claim), -1);
                let _ = self.claims.send(ClaimCommand::Release(claim));
            }
        }
    }
}
