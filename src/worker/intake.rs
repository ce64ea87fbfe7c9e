//! Where a job enters: read from its job queue, checked once, answered at once when it cannot run, and
//! otherwise sent to the inbox of the group that owns its device (`crate::lanes`). Fetch jobs are read by
//! every replica; update jobs by the one replica holding the update-intake claim, one at a time, so a
//! device's updates reach its lane in the order they were published.

use std::sync::Arc;
use std::time::Instant;

use futures_util::StreamExt;
use lapin::BasicProperties;
use lapin::message::Delivery;
use lapin::options::BasicCancelOptions;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::decide;
use super::delivery::{JobCtx, read};
use super::settle::Settle;
use crate::broker::JobHeaders;
use crate::devices::{UpdateOrder, now_ms};
use crate::lanes::names::LaneKind;
use crate::lanes::{Routing, SessionCtx};
use crate::protocol::{Job, JobError, JobKind};

pub(crate) async fn handle(job: &JobCtx, kind: JobKind, delivery: Delivery) {
    let started = Instant::now();
    let services = &job.services;
    let (parsed, span) = read(services, kind, &delivery);
    async {
        let settle = Settle {
            job,
            delivery: &delivery,
            kind,
        };
        let mut headers = JobHeaders::read(delivery.properties.headers().as_ref());
        let job_queue = services.names.job_queue(kind);
        // Counted before anything else: a job that breaks the worker, however it is made, cannot loop.
        if delivery.redelivered {
            let limit = services.settings.retry.max_redeliveries;
            let decision = decide::redelivered(&parsed, headers, limit, (job_queue, None), started);
            return settle.apply(decision).await;
        }
        let checked = parsed
            .job
            .clone()
            .and_then(|request| allowed_reply_to(job, &delivery.properties).map(|()| request));
        let request = match checked {
            Ok(request) => request,
            Err(err) => {
                return settle
                    .apply(decide::refuse(&parsed, err, headers, started))
                    .await;
            }
        };
        let now = now_ms();
        if headers.expires_at_ms.is_none() {
            headers.expires_at_ms = deadline(&delivery.properties, now);
        }
        if kind == JobKind::Update {
            let stamp = UpdateOrder::plausible(headers.stamp);
            headers.stamp = Some(stamp.unwrap_or_else(|| services.order.stamp()));
        }
        let routing = Routing {
            device: parsed.device_id.clone(),
            lane: lane_of(job, &request, &delivery.properties),
        };
        let group = services.group_of(parsed.device_id.as_ref());
        let inbox = services.lane_names.inbox(&group);
        settle
            .apply(decide::hop(headers, &inbox, routing, now))
            .await
    }
    .instrument(span)
    .await
}

/// Reads the update job queue while this replica holds the update-intake claim, one job after the other.
pub(crate) async fn serve_updates(ctx: Arc<SessionCtx>, stop: CancellationToken) {
    let queue = ctx.services.names.job_queue(JobKind::Update).to_string();
    let (tag, mut updates) = match ctx
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
    let _ = ctx
        .lanes_channel
        .basic_cancel(tag.as_str().into(), BasicCancelOptions::default())
        .await;
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
