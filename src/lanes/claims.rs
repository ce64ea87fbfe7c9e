//! Claims: who serves what, decided by the broker. A claim is a queue with a single active consumer; every
//! replica that could serve it subscribes and puts one token in. The broker gives all of the claim's
//! messages to its active consumer only, so that replica holds the token (unacked) and thereby owns the
//! claim; surplus tokens are acked away. When the owner dies, the broker returns what it held and gives it
//! to the next subscriber: the hand-over needs no other coordination.
//!
//! An owner also keeps one marker per device lane it created in its claim: the claim is the group's lane
//! registry. A replica that takes a claim over receives the markers with the token and finds every lane
//! that may still hold jobs, even after every replica restarted.
//!
//! Held messages are returned to the queue and received again every `lanes.renew`, because the broker closes
//! a channel that holds a delivery longer than its `consumer_timeout` (30 min by default).

use std::collections::HashMap;

use futures_util::StreamExt;
use futures_util::stream::SelectAll;
use lapin::message::Delivery;
use lapin::options::{BasicCancelOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel};
use tokio::sync::mpsc;

use super::names::Group;
use super::{LaneKey, ack, requeue};
use crate::broker::{Publisher, Watch, header_str, headers::put_str, warn_unless_connection_lost};
use crate::devices::Start;
use crate::protocol::{DeviceId, JobKind};

const KIND: &str = "x-avatar-claim";

/// Deliveries of one subscription, tagged with its claim and consumer tag.
type ClaimStream = std::pin::Pin<
    Box<
        dyn futures_util::Stream<Item = (ClaimId, String, Result<Delivery, lapin::Error>)>
            + Send
            + Sync,
    >,
>;
const DEVICE: &str = "x-avatar-device";
const JOB_KIND: &str = "x-avatar-kind";

/// What can be claimed.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ClaimId {
    /// A group of devices and their lanes.
    Group(Group),
    /// Reading the update job queue: one reader keeps a device's updates in publish order.
    UpdateIntake,
}

/// Which subscription to a claim an event comes from. The session numbers its subscriptions: a claim can be
/// won by a delivery that reached the claims before they were told to give it up, and the session must not
/// act on a win of a subscription it has since ended or renewed.
pub type Subscription = u64;

/// What the claims tell the session.
#[derive(Debug)]
pub enum ClaimEvent {
    /// This replica now owns the claim; `lanes` are the markers received so far.
    Won {
        claim: ClaimId,
        subscription: Subscription,
        start: Start,
        lanes: Vec<LaneKey>,
    },
    /// A marker of an owned claim arrived after the token.
    Lane { claim: ClaimId, lane: LaneKey },
}

/// What the session asks of the claims.
#[derive(Debug)]
pub enum ClaimCommand {
    Subscribe(ClaimId, Subscription),
    /// Give the claim to the next subscriber (after the owner stopped) and subscribe again at the end, as
    /// a new subscription.
    Release(ClaimId, Subscription),
    /// Give the claim up altogether (this replica can no longer serve it: a native session it released).
    Unsubscribe(ClaimId),
    /// Record a new lane of an owned claim; `done` fires once the broker confirmed the marker.
    AddLane {
        claim: ClaimId,
        lane: LaneKey,
        done: tokio::sync::oneshot::Sender<bool>,
    },
    /// Forget a removed lane.
    RemoveLane {
        claim: ClaimId,
        lane: LaneKey,
    },
    /// Return every held message to the queue, to receive it again (see the module docs).
    Renew,
}

/// The claim of one subscription: what this replica holds of it.
#[derive(Default)]
struct Held {
    tag: String,
    subscription: Subscription,
    token: Option<Delivery>,
    markers: HashMap<LaneKey, Delivery>,
    /// Markers to ack when they arrive (their lane was removed before its marker came back).
    removed: Vec<LaneKey>,
    owner: bool,
}

pub struct Claims {
    channel: Channel,
    publisher: Publisher,
    queue_of: Box<dyn Fn(&ClaimId) -> String + Send + Sync>,
    held: HashMap<ClaimId, Held>,
    streams: SelectAll<ClaimStream>,
    events: mpsc::UnboundedSender<ClaimEvent>,
    watch: Watch,
    generation: u64,
}

impl Claims {
    pub fn new(
        channel: Channel,
        publisher: Publisher,
        queue_of: impl Fn(&ClaimId) -> String + Send + Sync + 'static,
        events: mpsc::UnboundedSender<ClaimEvent>,
        watch: Watch,
    ) -> Self {
        Self {
            channel,
            publisher,
            queue_of: Box::new(queue_of),
            held: HashMap::new(),
            streams: SelectAll::new(),
            events,
            watch,
            generation: 0,
        }
    }

    /// Runs until the session stops or its connection is lost.
    pub async fn run(mut self, mut commands: mpsc::UnboundedReceiver<ClaimCommand>) {
        if let Err(err) = self.channel.basic_qos(0, BasicQosOptions::default()).await {
            return self.watch.lost(format!("claims channel: {err}"));
        }
        loop {
            tokio::select! {
                _ = self.watch.wait() => return,
                command = commands.recv() => match command {
                    Some(command) => {
                        if let Err(err) = self.command(command).await {
                            return self.watch.lost(format!("claims channel: {err}"));
                        }
                    }
                    None => return,
                },
                Some((claim, tag, delivery)) = self.streams.next() => match delivery {
                    Ok(delivery) => {
                        if let Err(err) = self.delivered(claim, &tag, delivery).await {
                            return self.watch.lost(format!("claims channel: {err}"));
                        }
                    }
                    Err(err) => return self.watch.lost(format!("claim consumer: {err}")),
                },
            }
        }
    }

    async fn command(&mut self, command: ClaimCommand) -> Result<(), lapin::Error> {
        match command {
            ClaimCommand::Subscribe(claim, subscription) => {
                if !self.held.contains_key(&claim) {
                    self.subscribe(&claim, subscription).await?;
                    self.put_token(&claim).await;
                }
            }
            ClaimCommand::Release(claim, subscription) => {
                if self.unsubscribe(&claim).await? {
                    self.subscribe(&claim, subscription).await?;
                }
            }
            ClaimCommand::Unsubscribe(claim) => {
                self.unsubscribe(&claim).await?;
            }
            ClaimCommand::AddLane { claim, lane, done } => {
                // Confirmed apart from the other commands: lanes created at once (a thousand new devices)
                // do not wait for each other's markers, and the claims keep answering meanwhile.
                let confirm = self.put_marker(&claim, &lane).await;
                tokio::spawn(async move {
                    let _ = done.send(confirm.await);
                });
            }
            ClaimCommand::RemoveLane { claim, lane } => {
                if let Some(held) = self.held.get_mut(&claim) {
                    match held.markers.remove(&lane) {
                        Some(marker) => ack(&marker).await,
                        None => held.removed.push(lane),
                    }
                }
            }
            ClaimCommand::Renew => {
                for held in self.held.values_mut() {
                    let messages = held
                        .token
                        .take()
                        .into_iter()
                        .chain(held.markers.drain().map(|(_, m)| m));
                    for message in messages {
                        requeue(&message).await;
                    }
                }
            }
        }
        Ok(())
    }

    async fn subscribe(
        &mut self,
        claim: &ClaimId,
        subscription: Subscription,
    ) -> Result<(), lapin::Error> {
        self.generation += 1;
        let tag = format!("claim-{}-{}", std::process::id(), self.generation);
        let consumer = self
            .channel
            .basic_consume(
                (self.queue_of)(claim).as_str().into(),
                tag.as_str().into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        let (id, stream_tag) = (claim.clone(), tag.clone());
        self.streams.push(Box::pin(
            consumer.map(move |delivery| (id.clone(), stream_tag.clone(), delivery)),
        ));
        self.held.insert(
            claim.clone(),
            Held {
                tag,
                subscription,
                ..Held::default()
            },
        );
        Ok(())
    }

    /// Cancels the subscription first, so what it held goes to the next subscriber, then returns it.
    /// False when there was no subscription.
    async fn unsubscribe(&mut self, claim: &ClaimId) -> Result<bool, lapin::Error> {
        let Some(held) = self.held.remove(claim) else {
            return Ok(false);
        };
        self.channel
            .basic_cancel(held.tag.as_str().into(), BasicCancelOptions::default())
            .await?;
        for message in held.token.iter().chain(held.markers.values()) {
            requeue(message).await;
        }
        Ok(true)
    }

    async fn delivered(
        &mut self,
        claim: ClaimId,
        tag: &str,
        delivery: Delivery,
    ) -> Result<(), lapin::Error> {
        let table = delivery.properties.headers().as_ref();
        let Some(held) = self.held.get_mut(&claim).filter(|held| held.tag == tag) else {
            // What a cancelled subscription still receives goes back to the queue.
            requeue(&delivery).await;
            return Ok(());
        };
        match header_str(table, KIND).as_deref() {
            Some("lane") => {
                let Some(lane) = lane_of(table) else {
                    ack(&delivery).await;
                    return Ok(());
                };
                if let Some(at) = held.removed.iter().position(|removed| *removed == lane) {
                    held.removed.swap_remove(at);
                    ack(&delivery).await;
                } else if held.markers.contains_key(&lane) {
                    ack(&delivery).await; // a duplicate marker
                } else {
                    held.markers.insert(lane.clone(), delivery);
                    if held.owner {
                        let _ = self.events.send(ClaimEvent::Lane { claim, lane });
                    }
                }
            }
            Some("token") if held.token.is_none() => {
                let start = if delivery.redelivered && !held.owner {
                    Start::TakenOver
                } else {
                    Start::Fresh
                };
                held.token = Some(delivery);
                if !held.owner {
                    held.owner = true;
                    let lanes = held.markers.keys().cloned().collect();
                    let _ = self.events.send(ClaimEvent::Won {
                        claim,
                        subscription: held.subscription,
                        start,
                        lanes,
                    });
                }
            }
            // Surplus tokens (one per subscriber) and anything else a producer may have put there.
            _ => ack(&delivery).await,
        }
        Ok(())
    }

    async fn put_token(&self, claim: &ClaimId) {
        let mut headers = FieldTable::default();
        put_str(&mut headers, KIND, "token");
        self.put(claim, headers).await.await;
    }

    /// Sends a lane's marker; the returned wait tells whether the broker confirmed it.
    async fn put_marker(
        &self,
        claim: &ClaimId,
        lane: &LaneKey,
    ) -> impl Future<Output = bool> + Send + 'static {
        let mut headers = FieldTable::default();
        put_str(&mut headers, KIND, "lane");
        put_str(&mut headers, JOB_KIND, lane.kind.as_str());
        if let Some(device) = &lane.device {
            put_str(&mut headers, DEVICE, device.as_str());
        }
        self.put(claim, headers).await
    }

    async fn put(
        &self,
        claim: &ClaimId,
        headers: FieldTable,
    ) -> impl Future<Output = bool> + Send + 'static {
        let properties = BasicProperties::default().with_headers(headers);
        let confirmed = self
            .publisher
            .send(&(self.queue_of)(claim), b"", properties)
            .await;
        let claim = claim.clone();
        async move {
            match confirmed.await {
                Ok(()) => true,
                Err(err) => {
                    warn_unless_connection_lost!(err, ?claim, "cannot put a message into a claim");
                    false
                }
            }
        }
    }
}

fn lane_of(table: Option<&FieldTable>) -> Option<LaneKey> {
    let kind = match header_str(table, JOB_KIND)?.as_str() {
        "fetch" => JobKind::Fetch,
        "update" => JobKind::Update,
        _ => return None,
    };
    let device = match header_str(table, DEVICE) {
        Some(id) => Some(DeviceId::parse(id).ok()?),
        None => None,
    };
    Some(LaneKey { device, kind })
}

/// The lanes a claim records, read without taking anything: each message is fetched and then returned
/// (an owner holds its messages, so this sees a claim's lanes while nobody owns it). A missing claim queue
/// is an error that closes `channel`.
pub async fn lanes_of_claim(channel: &Channel, queue: &str) -> Result<Vec<LaneKey>, lapin::Error> {
    use lapin::options::BasicGetOptions;
    let mut lanes = Vec::new();
    let mut last = None;
    while let Some(message) = channel
        .basic_get(queue.into(), BasicGetOptions { no_ack: false })
        .await?
    {
        let delivery = message.delivery;
        if header_str(delivery.properties.headers().as_ref(), KIND).as_deref() == Some("lane")
            && let Some(lane) = lane_of(delivery.properties.headers().as_ref())
        {
            lanes.push(lane);
        }
        last = Some(delivery);
    }
    if let Some(last) = last {
        let options = BasicNackOptions {
            multiple: true,
            requeue: true,
        };
        last.acker.nack(options).await?;
    }
    Ok(lanes)
}
