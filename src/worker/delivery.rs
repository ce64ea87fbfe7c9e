//! A job in its device's lane: checked when it arrives ([`prepare`]: a redelivery is counted, a job whose
//! answer nobody can receive is answered without a WhatsApp query), then run at its device's turn ([`run`]):
//! executed, decided ([`super::decide`]) and settled once ([`super::settle`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use lapin::message::Delivery;
use lapin::{Channel, Connection};
use tracing::Instrument;

use super::Services;
use super::decide::{self, Decision};
use super::execute::{Outcome, execute};
use super::settle::Settle;
use crate::broker::{self, DeadLetter, DeadReason, JobHeaders, Publisher, headers};
use crate::devices::{Lookup, Verdict, now_ms};
use crate::lanes::names::{Group, LaneKind};
use crate::lanes::{Lane, LaneKey};
use crate::protocol::{ErrorCode, Job, JobError, JobKind, ParsedJob, Then, parse_job};

/// What a job needs from its session.
#[derive(Clone)]
pub(crate) struct JobCtx {
    pub services: Arc<Services>,
    pub publisher: Publisher,
    pub replies: ReplyCheck,
    /// The groups whose claim and inbox this session declared.
    pub declared: Arc<Mutex<std::collections::HashSet<Group>>>,
    pub local_lanes: Arc<crate::lanes::LocalLanes>,
}

/// What a running job tells its lane.
#[derive(Debug)]
pub(crate) enum Feedback {
    /// WhatsApp throttled the device: the lane slows down.
    RateLimited { retry_after: Option<Duration> },
}

/// A lane delivery checked on arrival, waiting for its device's turn; or an unpaced fetch the intake runs
/// at once (`super::intake`).
pub(crate) struct Ready {
    pub delivery: Delivery,
    pub lane: LaneKind,
    pub parsed: ParsedJob,
    pub headers: JobHeaders,
    pub started: Instant,
    pub span: tracing::Span,
}

/// Reads a job, the same way wherever it is read: bounded, with a span naming it in every log line.
pub(crate) fn read(
    services: &Services,
    kind: JobKind,
    delivery: &Delivery,
) -> (ParsedJob, tracing::Span) {
    let message_id = delivery.properties.message_id().as_ref();
    let parsed = parse_job(
        kind,
        &delivery.data,
        message_id.map(|id| id.as_str()),
        services.settings.worker.max_job_bytes,
    );
    let span = tracing::info_span!(
        "job",
        job_id = %parsed.job_id,
        kind = %kind,
        device_id = parsed.device_id.as_ref().map(|d| d.as_str()).unwrap_or("-"),
    );
    (parsed, span)
}

/// Checks a delivery as it arrives in its lane. `None` when it was settled on the spot: a redelivery is
/// counted and goes behind the lane's other jobs (or, past the limit, is answered and dead-lettered), a job
/// whose deadline passed is dropped, and one whose `reply_to` queue is gone is answered without running.
pub(crate) async fn prepare(
    job: &JobCtx,
    delivery: Delivery,
    lane: LaneKind,
    key: &LaneKey,
) -> Option<Ready> {
    let started = Instant::now();
    let kind = lane.job_kind();
    let (parsed, span) = read(&job.services, kind, &delivery);
    let headers = JobHeaders::read(delivery.properties.headers().as_ref());
    let decision = check(job, &parsed, &headers, &delivery, lane, key, started)
        .instrument(span.clone())
        .await;
    match decision {
        Some(decision) => {
            let settle = Settle {
                job,
                delivery: &delivery,
                kind,
            };
            settle.apply(decision).instrument(span).await;
            None
        }
        None => Some(Ready {
            delivery,
            lane,
            parsed,
            headers,
            started,
            span,
        }),
    }
}

/// The decision for a delivery that must not wait for its turn, if any.
async fn check(
    job: &JobCtx,
    parsed: &ParsedJob,
    headers: &JobHeaders,
    delivery: &Delivery,
    lane: LaneKind,
    key: &LaneKey,
    started: Instant,
) -> Option<Decision> {
    if let Err(err) = &parsed.job {
        return Some(decide::refuse(
            parsed,
            err.clone(),
            headers.clone(),
            started,
        ));
    }
    if delivery.redelivered {
        let queue = job.services.lane_names.lane(key.device.as_ref(), lane);
        let routing = Lane {
            device: key.device.clone(),
            kind: lane,
        };
        let limit = job.services.settings.retry.max_redeliveries;
        let back_to = (queue.as_str(), Some(routing));
        return Some(decide::redelivered(
            parsed,
            headers.clone(),
            limit,
            back_to,
            started,
        ));
    }
    if decide::expired(headers, now_ms()) {
        return Some(Decision::Drop);
    }
    let reply_to = delivery.properties.reply_to().as_ref().map(|q| q.as_str());
    if let Some(reply_to) = reply_to
        && !job.replies.exists(reply_to).await
    {
        tracing::info!(
            reply_to,
            "reply queue gone; answered without running the job"
        );
        return Some(decide::unroutable(
            parsed,
            reply_to,
            headers.clone(),
            started,
        ));
    }
    None
}

/// Where a job runs: in its device's lane, which hears of throttling, or where it was read (an unpaced
/// fetch, `super::intake`).
pub(crate) enum RunsIn<'a> {
    Lane(&'a tokio::sync::mpsc::UnboundedSender<Feedback>),
    Intake,
}

/// Runs a job at its turn and settles it.
pub(crate) async fn run(job: &JobCtx, ready: Ready, runs_in: RunsIn<'_>) {
    let Ready {
        delivery,
        lane,
        parsed,
        mut headers,
        started,
        span,
    } = ready;
    let kind = lane.job_kind();
    let settle = Settle {
        job,
        delivery: &delivery,
        kind,
    };
    async {
        let services = &job.services;
        let Ok(request) = &parsed.job else {
            return settle.apply(Decision::Requeue).await;
        };
        let Ok(permit) = services.in_flight.acquire().await else {
            return settle.apply(Decision::Requeue).await;
        };
        let in_flight = services.metrics.in_flight();
        // Boxed, like settling (`Settle::apply`): the backend's call is kilobytes, and thousands of jobs can be
        // waiting for their result's confirm at once; only what is under way takes the space.
        let outcome = Box::pin(execute_in_order(services, &parsed, request, &mut headers)).await;
        // In flight while executing; publishing and acking hold no global slot.
        drop((in_flight, permit));
        let outcome = match request {
            Job::Fetch(_) => believe(services, &parsed, &mut headers, outcome),
            Job::Update(_) => outcome,
        };
        if let Err(err) = &outcome
            && err.code == ErrorCode::RateLimited
            && let RunsIn::Lane(lane) = runs_in
        {
            let _ = lane.send(Feedback::RateLimited {
                retry_after: err.retry_after,
            });
        }
        let job_queue = services.names.job_queue(kind);
        // What waits for the backend waits in its lane; a job run at intake reaches its lane through the inbox.
        let device = parsed.device_id.as_ref();
        let lane_queue = match runs_in {
            RunsIn::Lane(_) => services.lane_names.lane(device, lane),
            RunsIn::Intake => services.lane_names.inbox(&services.group_of(device)),
        };
        let routing = Lane {
            device: parsed.device_id.clone(),
            kind: lane,
        };
        let decision = decide::ran(
            &parsed,
            outcome,
            headers,
            &services.retry,
            (job_queue, (lane_queue.as_str(), Some(routing))),
            started,
        );
        settle.apply(decision).await
    }
    .instrument(span)
    .await
}

/// A fetch's answer as evidence about its device's lookups, and a "not on whatsapp" judged by that
/// evidence (`devices::LookupHealth`): confirmed and final, asked again, or unconfirmed.
fn believe(
    services: &Services,
    parsed: &ParsedJob,
    headers: &mut JobHeaders,
    outcome: Result<Outcome, JobError>,
) -> Result<Outcome, JobError> {
    let device = parsed.device_id.as_ref();
    let health = &services.lookups;
    let now = now_ms();
    match outcome {
        Ok(answer) => {
            let contradicted = std::mem::take(&mut headers.checks);
            if contradicted > 0 {
                tracing::info!(
                    failed_lookups = contradicted,
                    "an earlier \"not on whatsapp\" was a failed lookup"
                );
            }
            health.record(device, Lookup::Definite { contradicted }, now);
            Ok(answer)
        }
        Err(err) if err.code == ErrorCode::NotOnWhatsapp && err.confirmed.is_none() => {
            headers.checks = headers.checks.saturating_add(1);
            health.record(device, Lookup::NotOnWhatsapp, now);
            let checks = headers.checks;
            Err(match health.judge(device, checks, now) {
                Verdict::Confirmed => JobError::new(
                    err.code,
                    format!("{} (confirmed by {checks} answers in a row)", err.message),
                )
                .confirmed(),
                Verdict::Recheck => {
                    let mut recheck = err;
                    recheck.then = Then::Recheck;
                    recheck
                }
                Verdict::Unconfirmed => {
                    let mut unsure = JobError::new(
                        err.code,
                        format!(
                            "{}; not confirmed after {checks} answers while the device's lookups were failing: try again later",
                            err.message
                        ),
                    )
                    .with_retryable(true);
                    unsure.confirmed = Some(false);
                    unsure.then = Then::Answer;
                    unsure
                }
            })
        }
        Err(err) => {
            if matches!(err.code, ErrorCode::RateLimited | ErrorCode::Timeout) {
                health.record(device, Lookup::Throttled, now);
            }
            Err(err)
        }
    }
}

/// Executes the job; an update older than one already applied on its device is skipped (last writer wins).
async fn execute_in_order(
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

impl JobCtx {
    /// Declares a group's claim and inbox unless this session did already (a native device's group is
    /// declared by the first replica that routes a job to it).
    pub async fn ensure_group(&self, group: &Group) -> Result<(), lapin::Error> {
        let known = self
            .declared
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(group);
        if !known {
            super::session::declare_group(&self.services, &self.publisher, group).await?;
            self.declared
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(group.clone());
        }
        Ok(())
    }

    /// Dead-letters a message that is no job of ours (it lacks what the worker itself writes), so a person
    /// can look at it; nothing is answered.
    pub async fn dead_letter_foreign(&self, delivery: Delivery) {
        let table = headers::producer_headers(delivery.properties.headers().as_ref());
        let properties = broker::properties::carried(&delivery.properties, table);
        let letter = DeadLetter {
            body: &delivery.data,
            max_body: self.services.settings.worker.max_job_bytes,
            properties: &properties,
            source_queue: "",
            job_id: delivery
                .properties
                .message_id()
                .as_ref()
                .map_or("", |id| id.as_str()),
            reason: DeadReason::Refused(ErrorCode::InvalidJob),
            error_code: Some(ErrorCode::InvalidJob),
            error_message: Some("a message in a worker queue without the worker's routing headers"),
        };
        let settled = self
            .publisher
            .dead_letter(&self.services.names.dead, letter)
            .await;
        let settle = Settle {
            job: self,
            delivery: &delivery,
            kind: JobKind::Fetch,
        };
        match settled {
            Ok(()) => settle.apply(Decision::Drop).await,
            Err(_) => settle.requeue().await,
        }
    }
}

/// Whether a reply queue exists, asked of the broker (a passive declare) and remembered for a few seconds,
/// so a job whose producer is gone costs no WhatsApp query. Unsure answers count as "exists": a job is
/// never dropped on a doubt.
#[derive(Clone)]
pub(crate) struct ReplyCheck {
    connection: Arc<Connection>,
    channel: Arc<tokio::sync::Mutex<Option<Channel>>>,
    seen: Arc<Mutex<HashMap<String, (bool, Instant)>>>,
}

impl ReplyCheck {
    const REMEMBER: Duration = Duration::from_secs(5);
    const REMEMBERED_AT_MOST: usize = 10_000;

    pub fn new(connection: Arc<Connection>) -> Self {
        Self {
            connection,
            channel: Arc::default(),
            seen: Arc::default(),
        }
    }

    pub async fn exists(&self, queue: &str) -> bool {
        // Direct reply-to is a pseudo-queue of the consumer's channel: it cannot be declared.
        if queue.starts_with("amq.rabbitmq.reply-to") {
            return true;
        }
        if let Some((exists, at)) = self.remembered(queue)
            && at.elapsed() < Self::REMEMBER
        {
            return exists;
        }
        let exists = self.ask(queue).await;
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        if seen.len() >= Self::REMEMBERED_AT_MOST {
            seen.retain(|_, (_, at)| at.elapsed() < Self::REMEMBER);
        }
        seen.insert(queue.to_string(), (exists, Instant::now()));
        exists
    }

    fn remembered(&self, queue: &str) -> Option<(bool, Instant)> {
        let seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        seen.get(queue).copied()
    }

    async fn ask(&self, queue: &str) -> bool {
        let mut channel = self.channel.lock().await;
        if channel.as_ref().is_none_or(|c| !c.status().connected()) {
            *channel = self.connection.create_channel().await.ok();
        }
        let Some(open) = channel.as_ref() else {
            return true;
        };
        match broker::queue_counts(open, queue).await {
            Ok(_) => true,
            Err(err) => {
                // A missing queue closes the channel (404); the next question opens another.
                *channel = None;
                !is_not_found(&err)
            }
        }
    }
}

fn is_not_found(err: &lapin::Error) -> bool {
    match err.kind() {
        lapin::ErrorKind::ProtocolError(amqp) => amqp.get_id() == 404,
        _ => false,
    }
}
