//! One delivery, from the bytes the broker pushed to the ack: parse, execute, publish the result with a
//! confirm, dead-letter what must not come back, and only then ack.

use std::time::Instant;

use lapin::BasicProperties;
use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, BasicNackOptions};
use tracing::Instrument;

use super::Services;
use super::execute::{Outcome, execute};
use crate::broker::{DeadLetter, PublishError, Publisher};
use crate::protocol::{ErrorCode, JobKind, JobResult, ParsedJob, Status, parse_job};

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
    async move {
        let outcome = match &parsed.job {
            Ok(job) => {
                let _device_slot = services.devices.acquire(parsed.device_id.as_ref()).await;
                execute(services, job).await
            }
            Err(err) => Err(err.clone()),
        };
        let result = envelope(&parsed, outcome, started);
        match &result.error {
            Some(err) => tracing::info!(code = %err.code, retryable = err.retryable, message = %err.message, "job failed"),
            None => tracing::info!(status = result.status.as_str(), "job done"),
        }
        settle(services, publisher, &parsed, &delivery, &result).await;
    }
    .instrument(span)
    .await
}

fn envelope(
    parsed: &ParsedJob,
    outcome: Result<Outcome, crate::protocol::JobError>,
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
        attempts: 1,
        duration_ms: started.elapsed().as_millis() as u64,
        finished_at: now_rfc3339(),
    }
}

/// Publishes the result, dead-letters when needed, then acks. If the broker cannot take the result,
/// the job is returned to its queue instead: answered later, never lost.
async fn settle(
    services: &Services,
    publisher: &Publisher,
    parsed: &ParsedJob,
    delivery: &Delivery,
    result: &JobResult,
) {
    let names = &services.names;
    let reply_to = delivery
        .properties
        .reply_to()
        .as_ref()
        .map(|q| q.to_string())
        .unwrap_or_else(|| names.results.clone());
    let correlation_id = delivery
        .properties
        .correlation_id()
        .clone()
        .unwrap_or_else(|| parsed.job_id.as_str().into());
    let body = match serde_json::to_vec(result) {
        Ok(body) => body,
        Err(err) => {
            tracing::error!(%err, "cannot serialise a result; returning the job to its queue");
            return requeue(delivery).await;
        }
    };
    let properties = BasicProperties::default()
        .with_content_type("application/json".into())
        .with_correlation_id(correlation_id)
        .with_message_id(parsed.job_id.as_str().into())
        .with_type(result.kind.as_str().into());
    let source_queue = match parsed.kind {
        JobKind::Fetch => &names.fetch,
        JobKind::Update => &names.update,
    };
    let dead_letter = |reason: &'static str, code: Option<ErrorCode>, message: Option<String>| async move {
        let letter = DeadLetter {
            body: &delivery.data,
            properties: &delivery.properties,
            source_queue,
            job_id: parsed.job_id.as_str(),
            reason,
            error_code: code.map(ErrorCode::as_str),
            error_message: message.as_deref(),
        };
        publisher.dead_letter(&names.dead, letter).await
    };
    let published = publisher.publish(&reply_to, &body, properties).await;
    let dead_lettered = match published {
        Ok(()) => match &result.error {
            // A malformed job can never succeed: keep a copy for a person to look at, never requeue it.
            Some(err) if err.code == ErrorCode::InvalidJob => {
                dead_letter("invalid_job", Some(err.code), Some(err.message.clone())).await
            }
            _ => Ok(()),
        },
        Err(PublishError::Unroutable(queue)) => {
            tracing::error!(reply_to = %queue, "result unroutable: no such reply queue; dead-lettering the job");
            dead_letter(
                "result_unroutable",
                Some(ErrorCode::ResultUnroutable),
                Some(format!("reply_to names no queue: {queue:?}")),
            )
            .await
        }
        Err(err) => Err(err),
    };
    match dead_lettered {
        Ok(()) => {
            if let Err(err) = delivery.acker.ack(BasicAckOptions::default()).await {
                // The channel is gone: the broker will redeliver, and the job may be answered twice.
                tracing::warn!(%err, "ack failed after the result was confirmed");
            }
        }
        Err(err) => {
            tracing::warn!(%err, "the broker did not confirm; returning the job to its queue");
            requeue(delivery).await;
        }
    }
}

async fn requeue(delivery: &Delivery) {
    let options = BasicNackOptions {
        requeue: true,
        ..BasicNackOptions::default()
    };
    if let Err(err) = delivery.acker.nack(options).await {
        tracing::warn!(%err, "nack failed; the broker requeues the job when the channel closes");
    }
}

fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}
