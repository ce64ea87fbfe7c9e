//! Claims: who serves what, decided by the broker. A claim is a queue with a single active consumer; every
//! replica that could serve it subscribes and puts one token in. The broker gives all of the claim's
//! messages to its active consumer only, so that replica holds the token (unacked) and thereby owns the
//! claim; surplus tokens are acked away. When the owner dies, the broker returns what it held and gives it
//! to the next subscriber: the hand-over needs no other coordination.
//!
//! An owner also keeps one marker per lane queue it created in its claim: the claim is the group's lane
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

use super::names::{Group, LaneKind};
use super::{Lane, ack, requeue};
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
/// The marker's lane kind. Markers written before interactive lanes were created on demand lack it and
/// stand for every lane of their job kind; they are rewritten as one marker per lane when received.
const LANE_KIND: &str = "x-avatar-lane";

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
        lanes: Vec<Lane>,
    },
    /// A marker of an owned claim arrived after the token.
    Lane { claim: ClaimId, lane: Lane },
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
        lane: Lane,
        done: tokio::sync::oneshot::Sender<bool>,
    },
    /// Forget a removed lane.
    RemoveLane {
        claim: ClaimId,
        lane: Lane,
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
    markers: HashMap<Lane, Delivery>,
    /// Markers to ack when they arrive (their lane was removed before its marker came back).
    removed: Vec<Lane>,
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
        if self.held.get(&claim).is_none_or(|held| held.tag != tag) {
            // What a cancelled subscription still receives goes back to the queue.
            requeue(&delivery).await;
            return Ok(());
        }
        let table = delivery.properties.headers().as_ref();
        let marker = match header_str(table, KIND).as_deref() {
            Some("lane") => Marker::read(table),
            _ => None,
        };
        if let Some(Marker::Legacy(lanes)) = marker {
            self.rewrite_legacy(&claim, lanes, delivery).await;
            return Ok(());
        }
        let Some(held) = self.held.get_mut(&claim) else {
            return Ok(());
        };
        match (header_str(table, KIND).as_deref(), marker) {
            (_, Some(Marker::Lane(lane))) => {
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
            (Some("token"), _) if held.token.is_none() => {
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
            // Surplus tokens (one per subscriber), unreadable markers and anything else a producer may have
            // put there.
            _ => ack(&delivery).await,
        }
        Ok(())
    }

    async fn put_token(&self, claim: &ClaimId) {
        let mut headers = FieldTable::default();
        put_str(&mut headers, KIND, "token");
        self.put(claim, headers).await.await;
    }

    /// Replaces a marker of an older release, which stood for every lane of its kind, with one marker per
    /// lane (they arrive like any other); the old one goes once the broker has the new ones.
    async fn rewrite_legacy(&self, claim: &ClaimId, lanes: Vec<Lane>, legacy: Delivery) {
        let mut confirms = Vec::new();
        for lane in &lanes {
            confirms.push(self.put_marker(claim, lane).await);
        }
        tokio::spawn(async move {
            if futures_util::future::join_all(confirms)
                .await
                .into_iter()
                .all(|confirmed| confirmed)
            {
                ack(&legacy).await;
            } else {
                requeue(&legacy).await;
            }
        });
    }

    /// Sends a lane's marker; the returned wait tells whether the broker confirmed it.
    async fn put_marker(
        &self,
        claim: &ClaimId,
        lane: &Lane,
    ) -> impl Future<Output = bool> + Send + 'static {
        let mut headers = FieldTable::default();
        put_str(&mut headers, KIND, "lane");
        put_str(&mut headers, JOB_KIND, lane.kind.job_kind().as_str());
        put_str(&mut headers, LANE_KIND, lane.kind.as_str());
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

/// What a lane marker records.
enum Marker {
    Lane(Lane),
    /// A marker of an older release: every lane of its job kind.
    Legacy(Vec<Lane>),
}

impl Marker {
    fn read(table: Option<&FieldTable>) -> Option<Self> {
        let device = match header_str(table, DEVICE) {
            Some(id) => Some(DeviceId::parse(id).ok()?),
            None => None,
        };
        if let Some(kind) = header_str(table, LANE_KIND) {
            let kind = LaneKind::parse(&kind)?;
            return Some(Marker::Lane(Lane { device, kind }));
        }
        let kind = match header_str(table, JOB_KIND)?.as_str() {
            "fetch" => JobKind::Fetch,
            "update" => JobKind::Update,
            _ => return None,
        };
        let lanes = LaneKind::of(kind).iter().map(|&kind| Lane {
            device: device.clone(),
            kind,
        });
        Some(Marker::Legacy(lanes.collect()))
    }

    fn lanes(self) -> Vec<Lane> {
        match self {
            Marker::Lane(lane) => vec![lane],
            Marker::Legacy(lanes) => lanes,
        }
    }
}

/// The lanes a claim records, read without taking anything: each message is fetched and then returned
/// (an owner holds its messages, so this sees a claim's lanes while nobody owns it). A missing claim queue
/// is an error that closes `channel`.
pub async fn lanes_of_claim(channel: &Channel, queue: &str) -> Result<Vec<Lane>, lapin::Error> {
    use lapin::options::BasicGetOptions;
    let mut lanes = Vec::new();
    let mut last = None;
    while let Some(message) = channel
        .basic_get(queue.into(), BasicGetOptions { no_ack: false })
        .await?
    {
        let delivery = message.delivery;
        let table = delivery.properties.headers().as_ref();
        if header_str(table, KIND).as_deref() == Some("lane")
            && let Some(marker) = Marker::read(table)
        {
            lanes.extend(marker.lanes());
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
