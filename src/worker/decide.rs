//! What to do with a delivery, decided without touching the broker. Each step returns a [`Decision`];
//! [`super::settle`] carries it out. Kept pure so every rule is unit-tested without RabbitMQ.

use std::time::{Duration, Instant};

use crate::broker::{DeadReason, JobHeaders, RetryPolicy};
use crate::devices::UpdateOrder;
use crate::lanes::Lane;
use crate::protocol::{DeviceId, ErrorCode, JobError, JobResult, ParsedJob, Status, Then};

use super::execute::Outcome;

/// The one thing that happens to a delivery.
#[derive(Debug)]
pub(crate) enum Decision {
    Answer(Box<Answer>),
    Park(Park),
    /// Give the delivery back to the broker (nack with requeue).
    Requeue,
    /// Ack it without an answer: its deadline passed, nobody waits for one.
    Drop,
}

/// Publish the result (first a dead-letter copy, when `dead` says why), then ack.
#[derive(Debug)]
pub(crate) struct Answer {
    pub result: JobResult,
    pub headers: JobHeaders,
    pub dead: Option<DeadReason>,
}

/// Republish the job with `headers` to `queue` (a group's inbox, a lane, a delay queue, or its own queue),
/// then ack.
#[derive(Debug)]
pub(crate) struct Park {
    pub queue: String,
    pub headers: JobHeaders,
    /// The message's own TTL: its wait in a delay queue, or what is left of its deadline.
    pub expiration: Option<Duration>,
    /// For a retry, the error it follows (`avatar_worker_retries_total{reason}`).
    pub retry_of: Option<ErrorCode>,
    /// Where the job goes next, for a group's owner (a hop to an inbox, a redelivery back into a lane).
    pub routing: Option<Lane>,
}

/// A malformed job can never succeed: answer it and keep a copy for a person, never requeue it.
pub(crate) fn refuse(
    parsed: &ParsedJob,
    err: JobError,
    headers: JobHeaders,
    started: Instant,
) -> Decision {
    let dead = DeadReason::Refused(err.code);
    answer(parsed, Err(err), headers, Some(dead), started)
}

/// A delivery the broker gave us again: the worker that had it crashed or lost its connection. Counted in
/// a header by republishing it to its own queue before running it, so a job that kills the worker cannot
/// loop forever, on classic and quorum queues alike.
pub(crate) fn redelivered(
    parsed: &ParsedJob,
    mut headers: JobHeaders,
    limit: u32,
    back_to: (&str, Option<Lane>),
    started: Instant,
) -> Decision {
    headers.redeliveries = headers.redeliveries.saturating_add(1);
    if headers.redeliveries > limit {
        let err = JobError::new(
            ErrorCode::RedeliveryLimit,
            format!(
                "delivered {} times without finishing; the worker may crash on it",
                headers.redeliveries
            ),
        );
        return answer(
            parsed,
            Err(err),
            headers,
            Some(DeadReason::RedeliveryLimit),
            started,
        );
    }
    tracing::info!(
        redeliveries = headers.redeliveries,
        "redelivered job: counted and requeued"
    );
    back_to_lane(headers, back_to)
}

/// The job again at the end of its lane, with what is left of its deadline; dropped when none is.
fn back_to_lane(headers: JobHeaders, (queue, routing): (&str, Option<Lane>)) -> Decision {
    let expiration = remaining(&headers, now_ms());
    if expiration == Some(Duration::ZERO) {
        return Decision::Drop;
    }
    Decision::Park(Park {
        queue: queue.to_string(),
        headers,
        expiration,
        retry_of: None,
        routing,
    })
}

/// A checked job on its way to its group's inbox (or straight into its lane), with what is left of its
/// deadline; dropped when none is.
pub(crate) fn hop(headers: JobHeaders, queue: &str, routing: Lane, now_ms: u64) -> Decision {
    let expiration = remaining(&headers, now_ms);
    if expiration == Some(Duration::ZERO) {
        return Decision::Drop;
    }
    Decision::Park(Park {
        queue: queue.to_string(),
        headers,
        expiration,
        retry_of: None,
        routing: Some(routing),
    })
}

/// Whether the job's deadline passed (its answer would reach nobody).
pub(crate) fn expired(headers: &JobHeaders, now_ms: u64) -> bool {
    remaining(headers, now_ms) == Some(Duration::ZERO)
}

/// A job whose `reply_to` queue is gone: nobody would read its result, so no WhatsApp query is spent on
/// it. It is answered (the result is dead-lettered with the job) without running.
pub(crate) fn unroutable(
    parsed: &ParsedJob,
    reply_to: &str,
    headers: JobHeaders,
    started: Instant,
) -> Decision {
    let err = JobError::new(
        ErrorCode::ResultUnroutable,
        format!("reply_to names no queue: {reply_to:?}; the job was not run"),
    );
    answer(
        parsed,
        Err(err),
        headers,
        Some(DeadReason::ResultUnroutable),
        started,
    )
}

fn remaining(headers: &JobHeaders, now_ms: u64) -> Option<Duration> {
    headers
        .expires_at_ms
        .map(|deadline| Duration::from_millis(deadline.saturating_sub(now_ms)))
}

/// The job ran: answer it, or, after a transient failure with attempts left, send it to a delay queue; a
/// failure that is not the job's (the backend cannot serve its device) sends it back to its lane.
pub(crate) fn ran(
    parsed: &ParsedJob,
    outcome: Result<Outcome, JobError>,
    mut headers: JobHeaders,
    retry: &RetryPolicy,
    (job_queue, lane): (&str, (&str, Option<Lane>)),
    started: Instant,
) -> Decision {
    let err = match outcome {
        Err(err) if err.then == Then::Recheck => {
            return recheck(retry, job_queue, headers, err.code);
        }
        Err(err) if err.then == Then::Requeue => {
            // Not counted as an attempt or a redelivery: the lane waits until the backend can serve it.
            tracing::warn!(code = %err.code, "not the job's fault; it waits in its lane");
            return back_to_lane(headers, lane);
        }
        Err(err) if err.retryable && err.then == Then::AsRetryable => err,
        outcome => return answer(parsed, outcome, headers, None, started),
    };
    let attempt = headers.attempts.saturating_add(1);
    headers
        .history
        .push(RetryPolicy::history_line(attempt, err.code, &err.message));
    let Some(delay) = retry.retry(attempt, err.retry_after) else {
        let dead = Some(DeadReason::RetriesExhausted);
        return answer(parsed, Err(err), headers, dead, started);
    };
    tracing::info!(code = %err.code, attempt, delay_ms = delay.wait.as_millis() as u64, "transient failure; retrying later");
    headers.attempts = attempt;
    Decision::Park(Park {
        queue: retry.delay_queue(job_queue, delay.tier),
        headers,
        expiration: Some(delay.wait),
        retry_of: Some(err.code),
        routing: None,
    })
}

/// Asks again soon (the first delay tier), without spending an attempt: the answer's count is in the
/// job's headers.
fn recheck(retry: &RetryPolicy, job_queue: &str, headers: JobHeaders, code: ErrorCode) -> Decision {
    let tier = retry.first_tier();
    Decision::Park(Park {
        queue: retry.delay_queue(job_queue, tier),
        headers,
        expiration: Some(tier),
        retry_of: Some(code),
        routing: None,
    })
}

/// Last writer wins for a device's picture: an update older than one already applied is skipped instead
/// of undoing the newer picture.
pub(crate) fn check_order(
    order: &UpdateOrder,
    device: Option<&DeviceId>,
    stamp: u64,
) -> Result<(), JobError> {
    if order.is_superseded(device, stamp) {
        return Err(JobError::new(
            ErrorCode::Superseded,
            "a newer update for this device was applied first; this older one was skipped",
        ));
    }
    Ok(())
}

fn answer(
    parsed: &ParsedJob,
    outcome: Result<Outcome, JobError>,
    headers: JobHeaders,
    dead: Option<DeadReason>,
    started: Instant,
) -> Decision {
    let result = result_of(parsed, outcome, headers.attempts.saturating_add(1), started);
    Decision::Answer(Box::new(Answer {
        result,
        headers,
        dead,
    }))
}

/// The result envelope of a job: what it produced or why it failed, and how long it took.
fn result_of(
    parsed: &ParsedJob,
    outcome: Result<Outcome, JobError>,
    attempts: u32,
    started: Instant,
) -> JobResult {
    let (status, avatar, image, error) = match outcome {
        Ok(outcome) => (outcome.status, outcome.avatar, outcome.image, None),
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
        attempts,
        duration_ms: started.elapsed().as_millis() as u64,
        finished_at: now_rfc3339(),
    }
}

fn now_ms() -> u64 {
    crate::devices::now_ms()
}

fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{JobKind, parse_job};
    use crate::settings::RetrySettings;

    fn parsed() -> ParsedJob {
        parse_job(
            JobKind::Fetch,
            br#"{"job_id":"j","phone":"6281"}"#,
            None,
            1024,
        )
    }

    fn policy(max_attempts: u32) -> RetryPolicy {
        RetryPolicy::new(&RetrySettings {
            max_attempts,
            delays: vec![Duration::from_millis(100), Duration::from_millis(400)],
            ..RetrySettings::default()
        })
    }

    fn timeout() -> JobError {
        JobError::new(ErrorCode::Timeout, "slow")
    }

    #[test]
    fn a_malformed_job_is_answered_and_dead_lettered_as_refused() {
        let err = JobError::new(ErrorCode::InvalidPhone, "phone: not a number");
        let Decision::Answer(answer) =
            refuse(&parsed(), err, JobHeaders::default(), Instant::now())
        else {
            panic!("answered")
        };
        assert_eq!(
            answer.dead,
            Some(DeadReason::Refused(ErrorCode::InvalidPhone))
        );
        assert_eq!(answer.dead.map(DeadReason::as_str), Some("invalid_phone"));
        assert_eq!(answer.result.status, Status::Error);
        assert_eq!(answer.result.attempts, 1);
    }

    #[test]
    fn redeliveries_are_counted_then_bounded() {
        let limit = 2;
        let mut headers = JobHeaders::default();
        for expected in 1..=limit {
            let Decision::Park(park) =
                redelivered(&parsed(), headers, limit, ("q.fetch", None), Instant::now())
            else {
                panic!("requeued with its count")
            };
            assert_eq!((park.queue.as_str(), park.expiration), ("q.fetch", None));
            assert_eq!(park.headers.redeliveries, expected);
            headers = park.headers;
        }
        let Decision::Answer(answer) =
            redelivered(&parsed(), headers, limit, ("q.fetch", None), Instant::now())
        else {
            panic!("answered past the limit")
        };
        assert_eq!(answer.dead, Some(DeadReason::RedeliveryLimit));
        let code = answer.result.error.map(|e| e.code);
        assert_eq!(code, Some(ErrorCode::RedeliveryLimit));
    }

    #[test]
    fn a_transient_failure_goes_to_the_tier_of_its_attempt() {
        let policy = policy(3);
        let headers = JobHeaders {
            attempts: 1,
            ..JobHeaders::default()
        };
        let Decision::Park(park) = ran(
            &parsed(),
            Err(timeout()),
            headers,
            &policy,
            ("q.fetch", ("q.lane", None)),
            Instant::now(),
        ) else {
            panic!("retried")
        };
        assert_eq!(park.queue, "q.fetch.delay.400ms");
        assert_eq!(park.headers.attempts, 2);
        assert_eq!(park.headers.history, ["2 timeout: slow"]);
        assert_eq!(park.retry_of, Some(ErrorCode::Timeout));
        let wait = park.expiration.unwrap();
        assert!(wait >= Duration::from_millis(320) && wait <= Duration::from_millis(400));
    }

    #[test]
    fn a_backend_that_cannot_serve_sends_the_job_back_to_its_lane_uncounted() {
        let refused = JobError {
            then: Then::Requeue,
            ..JobError::new(ErrorCode::GatewayUnauthorized, "refused")
        };
        let Decision::Park(park) = ran(
            &parsed(),
            Err(refused),
            JobHeaders::default(),
            &policy(3),
            ("q.fetch", ("q.lane", None)),
            Instant::now(),
        ) else {
            panic!("parked")
        };
        assert_eq!(park.queue, "q.lane");
        assert_eq!((park.headers.attempts, park.headers.redeliveries), (0, 0));
        assert_eq!(park.retry_of, None);
    }

    #[test]
    fn the_last_attempt_answers_and_dead_letters() {
        let headers = JobHeaders {
            attempts: 2,
            ..JobHeaders::default()
        };
        let Decision::Answer(answer) = ran(
            &parsed(),
            Err(timeout()),
            headers,
            &policy(3),
            ("q.fetch", ("q.lane", None)),
            Instant::now(),
        ) else {
            panic!("answered")
        };
        assert_eq!(answer.dead, Some(DeadReason::RetriesExhausted));
        assert_eq!(answer.result.attempts, 3);
        assert_eq!(answer.headers.history, ["3 timeout: slow"]);
        let error = answer.result.error.unwrap();
        assert!(error.retryable, "the cause was transient");
    }

    #[test]
    fn final_answers_are_never_retried() {
        let not_found = JobError::new(ErrorCode::DeviceNotFound, "no such device");
        let Decision::Answer(answer) = ran(
            &parsed(),
            Err(not_found),
            JobHeaders::default(),
            &policy(5),
            ("q.fetch", ("q.lane", None)),
            Instant::now(),
        ) else {
            panic!("answered")
        };
        assert_eq!(answer.dead, None);
        let Decision::Answer(answer) = ran(
            &parsed(),
            Ok(Outcome::with_status(Status::Hidden)),
            JobHeaders::default(),
            &policy(5),
            ("q.fetch", ("q.lane", None)),
            Instant::now(),
        ) else {
            panic!("answered")
        };
        assert_eq!((answer.result.status, answer.dead), (Status::Hidden, None));
    }

    #[test]
    fn an_update_older_than_the_applied_one_is_superseded() {
        let order = UpdateOrder::new();
        let device = DeviceId::parse("d").unwrap();
        let (older, newer) = (order.stamp(), order.stamp());
        assert!(check_order(&order, Some(&device), older).is_ok());
        order.applied(Some(&device), newer);
        let err = check_order(&order, Some(&device), older).unwrap_err();
        assert_eq!((err.code, err.retryable), (ErrorCode::Superseded, false));
        assert!(check_order(&order, Some(&device), newer).is_ok());
    }

    #[test]
    fn a_hop_carries_what_is_left_of_the_deadline_and_an_expired_job_is_dropped() {
        let routing = Lane {
            device: None,
            kind: crate::lanes::names::LaneKind::Fetch,
        };
        let headers = JobHeaders {
            expires_at_ms: Some(10_000),
            ..JobHeaders::default()
        };
        let Decision::Park(park) = hop(headers.clone(), "p.inbox.shard-1", routing.clone(), 7_500)
        else {
            panic!("sent on")
        };
        assert_eq!(park.queue, "p.inbox.shard-1");
        assert_eq!(park.expiration, Some(Duration::from_millis(2_500)));
        assert_eq!(park.routing, Some(routing.clone()));
        assert!(matches!(
            hop(headers.clone(), "q", routing.clone(), 10_000),
            Decision::Drop
        ));
        assert!(expired(&headers, 10_001) && !expired(&headers, 9_999));
        let forever = JobHeaders::default();
        let Decision::Park(park) = hop(forever, "q", routing, 1) else {
            panic!("sent on")
        };
        assert_eq!(park.expiration, None);
    }
}
