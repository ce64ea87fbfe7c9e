//! Where a job enters: read from its job queue, checked once, answered at once when it cannot run, run here
//! when it is an unpaced fetch, sent straight into its lane when this replica owns it, and otherwise to the
//! inbox of the group that owns its device (`crate::lanes`). Fetch jobs are read by every replica; update
//! jobs by the one replica holding the update-intake claim, one at a time, so a device's updates reach its
//! lane in the order they were published.

use std::sync::Arc;
use std::time::Instant;

use futures_util::{FutureExt, StreamExt};
use lapin::BasicProperties;
use lapin::message::Delivery;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::decide::{self, Decision};
use super::delivery::{self, JobCtx, Ready, read};
use super::settle::Settle;
use crate::broker::JobHeaders;
use crate::devices::{UpdateOrder, now_ms};
use crate::lanes::names::{Group, LaneKind};
use crate::lanes::{Hop, Lane, SessionCtx};
use crate::protocol::{Job, JobError, JobKind, ParsedJob};

pub(crate) async fn handle(job: &JobCtx, kind: JobKind, delivery: Delivery) {
    let started = Instant::now();
    let (parsed, span) = read(&job.services, kind, &delivery);
    let admitted = span.in_scope(|| admit(job, kind, &delivery, &parsed, started));
    let (delivery, decision, hop) = match admitted {
        Admitted::Settle(decision) => (delivery, decision, None),
        Admitted::Lane { headers, routing }
            if Box::pin(runs_here(job, &routing, &headers, &delivery)).await =>
        {
            let ready = Ready {
                delivery,
                lane: routing.kind,
                parsed,
                headers,
                started,
                span,
            };
            return Box::pin(delivery::run(job, ready, delivery::RunsIn::Intake)).await;
        }
        Admitted::Lane { headers, routing } => {
            let (queue, hop) = next_queue(job, &routing);
            (
                delivery,
                decide::hop(headers, &queue, routing, now_ms()),
                hop,
            )
        }
    };
    let settle = Settle {
        job,
        delivery: &delivery,
        kind,
    };
    settle.apply(decision).instrument(span).await;
    // The lane it went into may be removed only now.
    drop(hop);
}

/// Where a job on its way to its lane goes next: straight into the lane when this replica owns it and the
/// lane exists, otherwise into its group's inbox. Updates always take the inbox: the group's owner moves
/// them in the order they were read, also when the group changed hands with updates in its inbox.
fn next_queue(job: &JobCtx, routing: &Lane) -> (String, Option<Hop>) {
    let names = &job.services.lane_names;
    if routing.kind != LaneKind::Update
        && let Some(hop) = job.local_lanes.enter(routing)
    {
        return (routing.queue(names), Some(hop));
    }
    let group = job.services.group_of(routing.device.as_ref());
    (names.inbox(&group), None)
}

/// What the intake makes of a job: settled here, or on its way to its device's lane.
enum Admitted {
    Settle(Decision),
    Lane { headers: JobHeaders, routing: Lane },
}

fn admit(
    job: &JobCtx,
    kind: JobKind,
    delivery: &Delivery,
    parsed: &ParsedJob,
    started: Instant,
) -> Admitted {
    let services = &job.services;
    let mut headers = JobHeaders::read(delivery.properties.headers().as_ref());
    let job_queue = services.names.job_queue(kind);
    // Counted before anything else: a job that breaks the worker, however it is made, cannot loop.
    if delivery.redelivered {
        let limit = services.settings.retry.max_redeliveries;
        let decision = decide::redelivered(parsed, headers, limit, (job_queue, None), started);
        return Admitted::Settle(decision);
    }
    let checked = parsed
        .job
        .clone()
        .and_then(|request| allowed_reply_to(job, &delivery.properties).map(|()| request));
    let request = match checked {
        Ok(request) => request,
        Err(err) => return Admitted::Settle(decide::refuse(parsed, err, headers, started)),
    };
    if headers.expires_at_ms.is_none() {
        headers.expires_at_ms = deadline(&delivery.properties, now_ms());
    }
    if kind == JobKind::Update {
        let stamp = UpdateOrder::plausible(headers.stamp);
        headers.stamp = Some(stamp.unwrap_or_else(|| services.order.stamp()));
    }
    let routing = Lane {
        device: parsed.device_id.clone(),
        kind: lane_of(job, &request, &delivery.properties),
    };
    Admitted::Lane { headers, routing }
}

/// An unpaced fetch (no limit for its device, `pacing.enabled = false`) runs where it was read: its lane
/// would only pass it through the broker twice more, with no turn to wait for and no order to keep. Native
/// devices keep their lanes, which run where their sessions are; so does a job whose reply queue is gone
/// (its lane answers it without a WhatsApp query).
async fn runs_here(
    job: &JobCtx,
    routing: &Lane,
    headers: &JobHeaders,
    delivery: &Delivery,
) -> bool {
    let services = &job.services;
    let device = routing.device.as_ref();
    if routing.kind.job_kind() != JobKind::Fetch
        || decide::expired(headers, now_ms())
        || services.settings.pacing.limit(device, JobKind::Fetch).is_some()
        || matches!(services.group_of(device), Group::Native(_))
        // A backend that cannot serve the device now: its lane holds the job until it can.
        || services.backend.until_usable(device).now_or_never().is_none()
    {
        return false;
    }
    match delivery.properties.reply_to() {
        Some(queue) => job.replies.exists(queue.as_str()).await,
        None => true,
    }
}

/// Reads the update job queue while this replica holds the update-intake claim, one job after the other.
pub(crate) async fn serve_updates(ctx: Arc<SessionCtx>, stop: CancellationToken) {
    let queue = ctx.services.names.job_queue(JobKind::Update).to_string();
    let (tag, mut updates) = match ctx
        .consumers
        .consume(&queue, ctx.services.settings.worker.prefetch)
        .await
    {
        Ok(consumer) => consumer,
        Err(err) => return ctx.watch.lost(format!("consuming {queue}: {err}")),
    };
    let _consuming = ctx.services.metrics.job_consumer(JobKind::Update);
    tracing::info!(update_queue = %queue, "reading update jobs");
    let job = ctx.job();
    loop {
        let next = tokio::select! {
            biased;
            _ = stop.cancelled() => break,
            _ = ctx.watch.wait() => break,
            next = updates.next() => next,
        };
        match next {
            Some(Ok(delivery)) => handle(&job, JobKind::Update, delivery).await,
            Some(Err(err)) => return ctx.watch.lost(format!("update consumer: {err}")),
            None => {
                if !stop.is_cancelled() {
                    ctx.watch.lost("the broker cancelled the update consumer");
                }
                break;
            }
        }
    }
    ctx.consumers.cancel(&tag).await;
}

/// A job may name where its answer goes only within the allowed reply queues (`worker.reply_to_prefixes`),
/// so a producer cannot write into another tenant's queue with the worker's rights.
fn allowed_reply_to(job: &JobCtx, properties: &BasicProperties) -> Result<(), JobError> {
    match properties.reply_to() {
        Some(queue) if !job.services.reply_to_allowed(queue.as_str()) => {
            Err(JobError::invalid_job(format!(
                "reply_to {:?} is not an allowed reply queue (worker.reply_to_prefixes); the result goes to the results queue",
                queue.as_str()
            )))
        }
        _ => Ok(()),
    }
}

/// When the producer stops waiting: its `expiration` counted from now (the first time the worker sees it).
fn deadline(properties: &BasicProperties, now_ms: u64) -> Option<u64> {
    let ttl: u64 = properties
        .expiration()
        .as_ref()?
        .as_str()
        .trim()
        .parse()
        .ok()?;
    Some(now_ms.saturating_add(ttl))
}

/// A fetch marked interactive (`"interactive": true`, or an AMQP priority at `lanes.interactive_priority`
/// or above) goes to its device's interactive lane; updates keep their order and have one lane.
fn lane_of(job: &JobCtx, request: &Job, properties: &BasicProperties) -> LaneKind {
    match request {
        Job::Update(_) => LaneKind::Update,
        Job::Fetch(fetch) => {
            let threshold = job.services.settings.lanes.interactive_priority;
            let urgent = properties.priority().is_some_and(|p| p >= threshold);
            if fetch.interactive || urgent {
                LaneKind::FetchNow
            } else {
                LaneKind::Fetch
            }
        }
    }
}
