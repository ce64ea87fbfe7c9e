//! One device lane at work: its jobs consumed at the device's pace (a reservation per job, a concurrency
//! cap equal to the consumer's prefetch), interactive jobs first at each turn. Only the replica that owns
//! the device's group runs this, so the limit holds however many replicas there are.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use futures_util::stream::SelectAll;
use lapin::message::Delivery;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

use super::names::LaneKind;
use super::{LaneKey, SessionCtx, requeue};
use crate::broker::Consumers;
use crate::devices::{Pacer, Start, now_ms};
use crate::worker::delivery::{self, Feedback, Ready};

/// What the group sees of a running lane: whether it may be removed.
#[derive(Debug)]
pub struct LaneState {
    last_active: Mutex<Instant>,
    /// Deliveries in hand, waiting or running.
    busy: AtomicUsize,
    /// Jobs on their way into the lane ([`super::local::Hop`]).
    hops: AtomicUsize,
    /// Paused until a far turn: its jobs wait in the broker, and it is not idle.
    paused: AtomicBool,
    settled: Notify,
}

impl LaneState {
    pub fn new() -> Self {
        Self {
            last_active: Mutex::new(Instant::now()),
            busy: AtomicUsize::new(0),
            hops: AtomicUsize::new(0),
            paused: AtomicBool::new(false),
            settled: Notify::new(),
        }
    }

    pub fn touch(&self) {
        *self.last_active.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
    }

    /// Idle for at least `idle`, with nothing in hand or on its way in and no pause under way.
    pub fn is_idle(&self, idle: Duration) -> bool {
        !self.is_busy()
            && self.hops.load(Ordering::Acquire) == 0
            && !self.paused.load(Ordering::Acquire)
            && self
                .last_active
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .elapsed()
                >= idle
    }

    pub fn is_busy(&self) -> bool {
        self.busy.load(Ordering::Acquire) > 0
    }

    pub(super) fn hop_begins(&self) {
        self.touch();
        self.hops.fetch_add(1, Ordering::AcqRel);
    }

    pub(super) fn hop_ends(&self) {
        self.hops.fetch_sub(1, Ordering::AcqRel);
    }

    fn take(&self) {
        self.busy.fetch_add(1, Ordering::AcqRel);
    }

    fn done(&self) {
        if self.busy.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.settled.notify_waiters();
        }
    }

    /// Completes once nothing is in hand.
    pub async fn settled(&self) {
        loop {
            let notified = self.settled.notified();
            if !self.is_busy() {
                return;
            }
            notified.await;
        }
    }
}

/// Deliveries waiting for their turn: interactive ones first, each side in arrival order.
#[derive(Default)]
struct Waiting {
    interactive: VecDeque<Ready>,
    bulk: VecDeque<Ready>,
}

impl Waiting {
    fn is_empty(&self) -> bool {
        self.interactive.is_empty() && self.bulk.is_empty()
    }

    fn push(&mut self, ready: Ready) {
        if ready.lane == LaneKind::FetchNow {
            self.interactive.push_back(ready);
        } else {
            self.bulk.push_back(ready);
        }
    }

    fn next(&mut self) -> Option<Ready> {
        self.interactive
            .pop_front()
            .or_else(|| self.bulk.pop_front())
    }

    fn drain(&mut self) -> impl Iterator<Item = Ready> + '_ {
        self.interactive.drain(..).chain(self.bulk.drain(..))
    }
}

type LaneStream = SelectAll<LaneConsumer>;

/// The queues a runner consumes: the device's lanes of one job kind that exist, and news of one created
/// since it started (a device's first interactive job creates its interactive lane).
pub struct Queues {
    key: LaneKey,
    kinds: Vec<LaneKind>,
    more: mpsc::UnboundedReceiver<LaneKind>,
}

impl Queues {
    pub fn new(
        key: LaneKey,
        kinds: Vec<LaneKind>,
        more: mpsc::UnboundedReceiver<LaneKind>,
    ) -> Self {
        Self { key, kinds, more }
    }

    /// Takes in a queue created since; false when it was known already.
    fn add(&mut self, kind: LaneKind) -> bool {
        if self.kinds.contains(&kind) {
            return false;
        }
        self.kinds.push(kind);
        true
    }
}

/// Serves the lane until `stop` (the group stops or removes it) or the session ends.
///
/// A thousand lanes wait here at once, so every larger step is boxed and the waiting future stays small:
/// inlined, they made it 25 KB a lane (heaptrack, `bench --many-only`).
pub async fn run(
    ctx: Arc<SessionCtx>,
    consumers: Arc<Consumers>,
    mut queues: Queues,
    start: Start,
    state: Arc<LaneState>,
    stop: CancellationToken,
) {
    let key = queues.key.clone();
    let settings = &ctx.services.settings;
    let limit = settings.pacing.limit(key.device.as_ref(), key.kind);
    let mut pacer = Pacer::new(limit, &settings.pacing, start, now_ms());
    // Unpaced lanes take what the worker's prefetch allows; the global in-flight bound still applies.
    let concurrency = pacer
        .concurrency()
        .unwrap_or(usize::from(settings.worker.prefetch));
    let slots = Arc::new(Semaphore::new(concurrency));
    let (feedback_tx, mut feedback) = mpsc::unbounded_channel::<Feedback>();
    let _running = ctx.services.metrics.lane_running();
    loop {
        let Some((mut stream, mut tags)) =
            Box::pin(subscribe(&ctx, &consumers, &queues, concurrency)).await
        else {
            return;
        };
        let mut waiting = Waiting::default();
        let mut permit: Option<OwnedSemaphorePermit> = None;
        let mut turn: Option<std::pin::Pin<Box<tokio::time::Sleep>>> = None;
        let pause = loop {
            if permit.is_none() && !waiting.is_empty() {
                permit = slots.clone().try_acquire_owned().ok();
            }
            if permit.is_some() && turn.is_none() && !waiting.is_empty() {
                // A backend that cannot serve the device at all (refused credentials) holds the lane.
                tokio::select! {
                    _ = Box::pin(ctx.services.backend.until_usable(key.device.as_ref())) => {}
                    _ = stop.cancelled() => break None,
                    _ = ctx.watch.wait() => break None,
                }
                let wait = pacer.reserve(now_ms());
                if wait > settings.lanes.max_hold {
                    break Some(wait);
                }
                turn = Some(Box::pin(tokio::time::sleep(wait)));
            }
            tokio::select! {
                biased;
                _ = stop.cancelled() => break None,
                _ = ctx.watch.wait() => break None,
                Some(signal) = feedback.recv() => match signal {
                    Feedback::RateLimited { retry_after } => {
                        pacer.penalize(now_ms(), retry_after);
                    }
                },
                Some(kind) = queues.more.recv() => {
                    if queues.add(kind) {
                        let queue = ctx.lane_names.lane(key.device.as_ref(), kind);
                        let Some((tag, consumer)) =
                            Box::pin(consume(&ctx, &consumers, &queue, kind, concurrency)).await
                        else {
                            break None;
                        };
                        tags.push(tag);
                        stream.push(consumer);
                    }
                }
                _ = async {
                    match turn.as_mut() {
                        Some(turn) => turn.await,
                        None => std::future::pending().await,
                    }
                }, if turn.is_some() => {
                    turn = None;
                    if let (Some(ready), Some(slot)) = (waiting.next(), permit.take()) {
                        start_job(&ctx, ready, slot, &state, feedback_tx.clone());
                    }
                }
                slot = slots.clone().acquire_owned(), if permit.is_none() && !waiting.is_empty() => {
                    permit = slot.ok();
                }
                next = stream.next() => match next {
                    Some((lane, Ok(delivery))) => {
                        state.touch();
                        state.take();
                        match Box::pin(delivery::prepare(&ctx.job(), delivery, lane, &key)).await {
                            Some(ready) => waiting.push(ready),
                            None => state.done(),
                        }
                    }
                    Some((_, Err(err))) => {
                        ctx.watch.lost(format!("lane consumer: {err}"));
                        break None;
                    }
                    None => {
                        if !stop.is_cancelled() {
                            ctx.watch.lost("the broker cancelled a lane consumer");
                        }
                        break None;
                    }
                },
            }
        };
        // Paused before its jobs go back, so the group never takes a pausing lane for an idle one.
        state.paused.store(pause.is_some(), Ordering::Release);
        Box::pin(async {
            for tag in &tags {
                consumers.cancel(tag).await;
            }
            for ready in waiting.drain() {
                requeue(&ready.delivery).await;
                state.done();
            }
            give_back_unread(&mut stream).await;
        })
        .await;
        match pause {
            Some(wait) => {
                tracing::info!(
                    device = key.device.as_ref().map(|d| d.as_str()).unwrap_or("-"),
                    kind = %key.kind,
                    wait_s = wait.as_secs(),
                    "lane paused until its next turn; its jobs wait in the broker"
                );
                let resume = tokio::time::sleep(wait);
                tokio::pin!(resume);
                loop {
                    tokio::select! {
                        _ = &mut resume => break,
                        Some(kind) = queues.more.recv() => {
                            queues.add(kind);
                        }
                        _ = stop.cancelled() => return,
                        _ = ctx.watch.wait() => return,
                    }
                }
                state.paused.store(false, Ordering::Release);
            }
            None => return,
        }
    }
}

/// One consumer per lane queue, each taking as many jobs as the device runs at once.
async fn subscribe(
    ctx: &SessionCtx,
    consumers: &Consumers,
    queues: &Queues,
    concurrency: usize,
) -> Option<(LaneStream, Vec<String>)> {
    let mut stream = SelectAll::new();
    let mut tags = Vec::new();
    for &kind in &queues.kinds {
        let queue = ctx.lane_names.lane(queues.key.device.as_ref(), kind);
        let (tag, consumer) = consume(ctx, consumers, &queue, kind, concurrency).await?;
        tags.push(tag);
        stream.push(consumer);
    }
    Some((stream, tags))
}

type LaneConsumer =
    futures_util::stream::BoxStream<'static, (LaneKind, Result<Delivery, lapin::Error>)>;

async fn consume(
    ctx: &SessionCtx,
    consumers: &Consumers,
    queue: &str,
    kind: LaneKind,
    concurrency: usize,
) -> Option<(String, LaneConsumer)> {
    let prefetch = concurrency.min(usize::from(u16::MAX)) as u16;
    match consumers.consume(queue, prefetch).await {
        Ok((tag, consumer)) => Some((tag, consumer.map(move |d| (kind, d)).boxed())),
        Err(err) => {
            ctx.watch.lost(format!("consuming lane {queue}: {err}"));
            None
        }
    }
}

/// Deliveries the broker sent before the cancel took effect, still unread in the consumers: back to the lane.
/// Left unread they would stay unacked on the session's shared channel, and a lane being removed (its queue
/// checked empty: the broker does not count deliveries in flight) would be deleted with them in it.
async fn give_back_unread(stream: &mut LaneStream) {
    // After basic.cancel-ok nothing more comes for a consumer and its stream ends; a stream that neither ends
    // nor yields belongs to a connection that is going, whose deliveries the broker takes back anyway.
    const UNREAD_WITHIN: Duration = Duration::from_secs(2);
    while let Ok(Some((_, delivery))) = tokio::time::timeout(UNREAD_WITHIN, stream.next()).await {
        if let Ok(delivery) = delivery {
            requeue(&delivery).await;
        }
    }
}

fn start_job(
    ctx: &Arc<SessionCtx>,
    ready: Ready,
    slot: OwnedSemaphorePermit,
    state: &Arc<LaneState>,
    feedback: mpsc::UnboundedSender<Feedback>,
) {
    let job = ctx.job();
    let state = state.clone();
    ctx.spawn_job(async move {
        delivery::run(&job, ready, delivery::RunsIn::Lane(&feedback)).await;
        // The device's slot is kept until the job is settled, so its results leave in the order they ran.
        drop(slot);
        state.touch();
        state.done();
    });
}
