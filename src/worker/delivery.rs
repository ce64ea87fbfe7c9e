//! One delivery through the worker: parse, bound redeliveries, pace per device, execute, then retry
//! through a delay queue or settle with a result (see [`super::reply`]).

use std::time::{Duration, Instant};

use lapin::message::Delivery;
use rand::Rng;
use tracing::Instrument;

use super::Services;
use super::execute::{Outcome, execute};
use super::reply::{Settle, history_line};
use crate::broker::{JobHeaders, Publisher};
use crate::devices::{Admission, now_ms};
use crate::protocol::{ErrorCode, Job, JobError, JobKind, JobResult, ParsedJob, Status, parse_job};
use crate::settings::QueueNames;

pub(crate) async fn handle(
    services: &Services,
    publisher: &Publisher,
    kind: JobKind,
    delivery: Delivery,
) {
    let started = Instant::now();
    let message_id = delivery
        .properties
        .message_id()
        .as_ref()
        .map(|id| id.as_str());
    let parsed = parse_job(
        kind,
        &delivery.data,
        message_id,
        services.settings.worker.max_job_bytes,
    );
    let span = tracing::info_span!(
        "job",
        job_id = %parsed.job_id,
        kind = %kind,
        device_id = parsed.device_id.as_ref().map(|d| d.as_str()).unwrap_or("-"),
    );
    let mut headers = JobHeaders::read(delivery.properties.headers().as_ref());
    async {
        let settle = Settle {
            services,
            publisher,
            delivery: &delivery,
            kind,
        };
        let job = match &parsed.job {
            Ok(job) => job,
            Err(err) => {
                let result = envelope(&parsed, Err(err.clone()), &headers, started);
                // A malformed job can never succeed: keep a copy for a person to look at, never requeue it.
                return settle
                    .finish(&result, &headers, Some(err.code.as_str()))
                    .await;
            }
        };
        if delivery.redelivered {
            return guard_redelivery(&settle, &parsed, headers, started).await;
        }
        let device = parsed.device_id.as_ref();
        let pacer = &services.pacer;
        let hold = Duration::from_millis(services.settings.pacing.max_hold_ms);
        match pacer.admit(device, kind, headers.slot_ms, now_ms()) {
            Admission::Run => {}
            Admission::Hold(wait) => tokio::time::sleep(wait).await,
            Admission::Defer { delay, slot_ms } => {
                tracing::debug!(?delay, "device busy; parking the job until its turn");
                headers.slot_ms = Some(slot_ms);
                return park_for(&settle, &headers, delay).await;
            }
        }
        let _device_slot = match pacer.limit(device, kind) {
            Some(limit) => match services
                .gate
                .acquire(device, kind, limit.concurrency, hold)
                .await
            {
                Some(slot) => Some(slot),
                None => {
                    tracing::debug!("device at its concurrency cap; parking the job");
                    headers.slot_ms.get_or_insert_with(now_ms);
                    // Come back after a hold period, not at once: a slow device must not cause a busy loop.
                    return park_for(&settle, &headers, hold).await;
                }
            },
            None => None,
        };
        let Ok(permit) = services.in_flight.acquire().await else {
            return settle.requeue().await;
        };
        let in_flight = services.metrics.in_flight();
        let outcome = run(services, device, job, &mut headers).await;
        // In flight while executing; publishing and acking hold no global slot. The device slot is kept
        // until the job is settled, so a device's results leave in the order its jobs ran.
        drop((in_flight, permit));
        match outcome {
            Err(err) if err.retryable => {
                retry_or_give_up(&settle, &parsed, headers, err, started).await
            }
            outcome => {
                let result = envelope(&parsed, outcome, &headers, started);
                log_result(&result);
                settle.finish(&result, &headers, None).await
            }
        }
    }
    .instrument(span)
    .await
}

/// Executes the job; for updates, enforces last-writer-wins per device.
async fn run(
    services: &Services,
    device: Option<&crate::protocol::DeviceId>,
    job: &Job,
    headers: &mut JobHeaders,
) -> Result<Outcome, JobError> {
    let Job::Update(_) = job else {
        return execute(services, job).await;
    };
    let stamp = *headers.stamp.get_or_insert_with(|| services.order.stamp());
    if services.order.is_superseded(device, stamp) {
        return Err(JobError::new(
            ErrorCode::Superseded,
            "a newer update for this device was applied first; this older one was skipped",
        ));
    }
    let outcome = execute(services, job).await;
    if outcome.is_ok() {
        services.order.applied(device, stamp);
    }
    outcome
}

/// A delivery the broker gave us again: the worker that had it crashed or lost its connection. Counted in
/// a header by republishing before running it, so a job that kills the worker cannot loop forever, on
/// classic and quorum queues alike.
async fn guard_redelivery(
    settle: &Settle<'_>,
    parsed: &ParsedJob,
    mut headers: JobHeaders,
    started: Instant,
) {
    headers.redeliveries += 1;
    let limit = settle.services.settings.retry.max_redeliveries;
    if headers.redeliveries > limit {
        let err = JobError::new(
            ErrorCode::RedeliveryLimit,
            format!(
                "delivered {} times without finishing; the worker may crash on it",
                headers.redeliveries
            ),
        );
        let result = envelope(parsed, Err(err), &headers, started);
        log_result(&result);
        return settle
            .finish(&result, &headers, Some("redelivery_limit"))
            .await;
    }
    tracing::info!(
        redeliveries = headers.redeliveries,
        "redelivered job: counted and requeued"
    );
    settle.park(settle.source_queue(), &headers, None).await
}

async fn retry_or_give_up(
    settle: &Settle<'_>,
    parsed: &ParsedJob,
    mut headers: JobHeaders,
    err: JobError,
    started: Instant,
) {
    let services = settle.services;
    if err.code == ErrorCode::RateLimited {
        services.pacer.penalize(
            parsed.device_id.as_ref(),
            parsed.kind,
            now_ms(),
            err.retry_after,
        );
    }
    let attempt = headers.attempts + 1;
    headers
        .history
        .push(history_line(attempt, err.code, &err.message));
    let retry = &services.settings.retry;
    if attempt < retry.max_attempts {
        headers.attempts = attempt;
        headers.slot_ms = None;
        services.metrics.retried(err.code);
        let (tier, delay_ms) = retry_delay(&retry.delays_ms, attempt, err.retry_after);
        tracing::info!(code = %err.code, attempt, delay_ms, "transient failure; retrying later");
        let queue = QueueNames::delay_queue(settle.source_queue(), tier);
        return settle.park(&queue, &headers, Some(delay_ms)).await;
    }
    let result = envelope(parsed, Err(err), &headers, started);
    log_result(&result);
    settle
        .finish(&result, &headers, Some("retries_exhausted"))
        .await
}

/// The delay tier and the wait (its message expiration) of retry number `attempt`: the attempt's tier minus
/// up to 20 % jitter, or, when the server named a longer wait, the shortest tier that holds that wait
/// (the longest tier when none does).
fn retry_delay(tiers: &[u64], attempt: u32, server_wait: Option<Duration>) -> (u64, u64) {
    let tier = tiers[(attempt as usize - 1).min(tiers.len() - 1)];
    let jittered = rand::rng().random_range(tier * 4 / 5..=tier);
    let wanted = server_wait.map_or(0, |wait| wait.as_millis() as u64);
    if wanted <= jittered {
        return (tier, jittered);
    }
    let longest = tiers.iter().copied().max().unwrap_or(tier);
    let holding = tiers
        .iter()
        .copied()
        .filter(|t| *t >= wanted)
        .min()
        .unwrap_or(longest);
    (holding, wanted.min(holding))
}

/// Parks a job in the delay tier that fits `delay`: the largest tier not longer than it, or the shortest
/// tier with the message's own shorter expiration.
async fn park_for(settle: &Settle<'_>, headers: &JobHeaders, delay: Duration) {
    let tiers = &settle.services.settings.retry.delays_ms;
    let wanted = (delay.as_millis() as u64).max(1);
    let tier = tiers
        .iter()
        .copied()
        .filter(|t| *t <= wanted)
        .max()
        .unwrap_or_else(|| tiers.iter().copied().min().unwrap_or(1000));
    let queue = QueueNames::delay_queue(settle.source_queue(), tier);
    settle.park(&queue, headers, Some(wanted.min(tier))).await
}

fn envelope(
    parsed: &ParsedJob,
    outcome: Result<Outcome, JobError>,
    headers: &JobHeaders,
    started: Instant,
) -> JobResult {
    let (status, avatar, image, error) = match outcome {
        Ok(outcome) => (
            outcome.status.unwrap_or(Status::Ok),
            outcome.avatar,
            outcome.image,
            None,
        ),
        Err(err) => (Status::Error, None, None, Some(err)),
    };
    JobResult {
        job_id: parsed.job_id.clone(),
        kind: parsed.kind,
        device_id: parsed.device_id.clone(),
        status,
        avatar,
        image,
        error,
        attempts: headers.attempts + 1,
        duration_ms: started.elapsed().as_millis() as u64,
        finished_at: now_rfc3339(),
    }
}

fn log_result(result: &JobResult) {
    match &result.error {
        Some(err) => {
            tracing::info!(code = %err.code, retryable = err.retryable, message = %err.message, attempts = result.attempts, "job failed")
        }
        None => tracing::info!(status = result.status.as_str(), "job done"),
    }
}

fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_backoff_lengthens_the_retry_delay() {
        let tiers = [1_000, 5_000, 30_000];
        let (tier, wait) = retry_delay(&tiers, 1, None);
        assert_eq!(tier, 1_000);
        assert!((800..=1_000).contains(&wait), "{wait}");
        assert_eq!(
            retry_delay(&tiers, 1, Some(Duration::from_secs(20))),
            (30_000, 20_000)
        );
        assert_eq!(
            retry_delay(&tiers, 1, Some(Duration::from_secs(300))),
            (30_000, 30_000)
        );
        let (tier, wait) = retry_delay(&tiers, 2, Some(Duration::from_millis(100)));
        assert_eq!(tier, 5_000);
        assert!((4_000..=5_000).contains(&wait), "{wait}");
    }
}
