//! One delivery through the worker: read it, decide what happens to it (refuse, count a redelivery, wait
//! for the device's turn, run, answer or retry; see [`super::decide`]), then settle that decision once
//! (see [`super::settle`]).

use std::time::Instant;

use lapin::message::Delivery;
use tokio::sync::OwnedSemaphorePermit;
use tracing::Instrument;

use super::Services;
use super::decide::{self, Decision};
use super::execute::{Outcome, execute};
use super::settle::Settle;
use crate::broker::{JobHeaders, Publisher};
use crate::devices::{Admission, now_ms};
use crate::protocol::{ErrorCode, Job, JobError, JobKind, ParsedJob, parse_job};

/// A device's concurrency slot, held until its job is settled so a device's results leave in the order
/// its jobs ran.
type DeviceSlot = Option<OwnedSemaphorePermit>;

pub(crate) async fn handle(
    services: &Services,
    publisher: &Publisher,
    kind: JobKind,
    delivery: Delivery,
) {
    let started = Instant::now();
    let message_id = delivery.properties.message_id().as_ref();
    let max_bytes = services.settings.worker.max_job_bytes;
    let parsed = parse_job(
        kind,
        &delivery.data,
        message_id.map(|id| id.as_str()),
        max_bytes,
    );
    let span = tracing::info_span!(
        "job",
        job_id = %parsed.job_id,
        kind = %kind,
        device_id = parsed.device_id.as_ref().map(|d| d.as_str()).unwrap_or("-"),
    );
    async {
        let headers = JobHeaders::read(delivery.properties.headers().as_ref());
        let (decision, device_slot) =
            route(services, &parsed, headers, delivery.redelivered, started).await;
        let settle = Settle {
            services,
            publisher,
            delivery: &delivery,
            kind,
        };
        settle.apply(decision).await;
        drop(device_slot);
    }
    .instrument(span)
    .await
}

/// The way through the worker, as a decision: a malformed job is refused, a redelivered one counted, any
/// other waits for its device's turn (or is parked until then), runs, and is answered or retried.
async fn route(
    services: &Services,
    parsed: &ParsedJob,
    mut headers: JobHeaders,
    redelivered: bool,
    started: Instant,
) -> (Decision, DeviceSlot) {
    let job_queue = services.names.job_queue(parsed.kind);
    let job = match &parsed.job {
        Ok(job) => job,
        Err(err) => return (decide::refuse(parsed, err.clone(), headers, started), None),
    };
    if redelivered {
        let limit = services.settings.retry.max_redeliveries;
        let decision = decide::redelivered(parsed, headers, limit, job_queue, started);
        return (decision, None);
    }
    let device_slot = match wait_for_turn(services, parsed, &mut headers).await {
        Ok(slot) => slot,
        Err(parked) => return (parked, None),
    };
    let Ok(permit) = services.in_flight.acquire().await else {
        return (Decision::Requeue, device_slot);
    };
    let in_flight = services.metrics.in_flight();
    let outcome = run(services, parsed, job, &mut headers).await;
    // In flight while executing; publishing and acking hold no global slot.
    drop((in_flight, permit));
    if let Err(err) = &outcome
        && err.code == ErrorCode::RateLimited
    {
        let device = parsed.device_id.as_ref();
        let pacer = &services.pacer;
        pacer.penalize(device, parsed.kind, now_ms(), err.retry_after);
    }
    let decision = decide::ran(
        parsed,
        outcome,
        headers,
        &services.retry,
        job_queue,
        started,
    );
    (decision, device_slot)
}

/// Waits for the device's pacing turn and a concurrency slot, as long as that takes at most
/// `pacing.max_hold`; a job whose turn is further away is parked in a delay queue, keeping its turn.
async fn wait_for_turn(
    services: &Services,
    parsed: &ParsedJob,
    headers: &mut JobHeaders,
) -> Result<DeviceSlot, Decision> {
    let (device, kind) = (parsed.device_id.as_ref(), parsed.kind);
    let job_queue = services.names.job_queue(kind);
    let pacer = &services.pacer;
    match pacer.admit(device, kind, headers.slot_ms, now_ms()) {
        Admission::Run => {}
        Admission::Hold(wait) => tokio::time::sleep(wait).await,
        Admission::Defer { delay, slot_ms } => {
            tracing::debug!(?delay, "device busy; parking the job until its turn");
            headers.slot_ms = Some(slot_ms);
            return Err(decide::park(
                &services.retry,
                job_queue,
                headers.clone(),
                delay,
            ));
        }
    }
    let Some(limit) = pacer.limit(device, kind) else {
        return Ok(None);
    };
    let hold = services.settings.pacing.max_hold;
    match services
        .gate
        .acquire(device, kind, limit.concurrency, hold)
        .await
    {
        Some(slot) => Ok(Some(slot)),
        None => {
            tracing::debug!("device at its concurrency cap; parking the job");
            headers.slot_ms.get_or_insert_with(now_ms);
            // Come back after a hold period, not at once: a slow device must not cause a busy loop.
            Err(decide::park(
                &services.retry,
                job_queue,
                headers.clone(),
                hold,
            ))
        }
    }
}

/// Executes the job; an update first takes its place in the device's order (last writer wins).
async fn run(
    services: &Services,
    parsed: &ParsedJob,
    job: &Job,
    headers: &mut JobHeaders,
) -> Result<Outcome, JobError> {
    let Job::Update(_) = job else {
        return execute(services, job).await;
    };
    let device = parsed.device_id.as_ref();
    let stamp = *headers.stamp.get_or_insert_with(|| services.order.stamp());
    decide::check_order(&services.order, device, stamp)?;
    let outcome = execute(services, job).await;
    if outcome.is_ok() {
        services.order.applied(device, stamp);
    }
    outcome
}
