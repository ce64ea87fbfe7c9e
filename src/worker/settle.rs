//! Where a job leaves the worker: a [`Decision`] carried out against the broker. The result is published
//! (confirmed), a copy goes to the dead-letter queue when needed, or the job is parked in a delay queue;
//! only then is the delivery acked. If the broker does not confirm, the job goes back to its queue:
//! answered later, never lost.

use std::future::Future;
use std::pin::Pin;

use lapin::BasicProperties;
use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, BasicNackOptions};

use super::decide::{Answer, Decision, Park};
use super::delivery::JobCtx;
use crate::broker::headers::{self, JobHeaders};
use crate::broker::{
    DeadLetter, DeadReason, PublishError, properties, warn_unless_connection_lost,
};
use crate::protocol::{ErrorCode, JobKind, JobResult};

/// One delivery, and what settling it needs.
pub(crate) struct Settle<'a> {
    pub job: &'a JobCtx,
    pub delivery: &'a Delivery,
    pub kind: JobKind,
}

impl Settle<'_> {
    /// Boxed here, once for every caller: thousands of jobs can wait in their lanes or for their confirms at
    /// once, and a caller's future only takes the space of settling while it settles.
    pub fn apply(&self, decision: Decision) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(self.carry_out(decision))
    }

    async fn carry_out(&self, decision: Decision) {
        match decision {
            Decision::Answer(answer) => self.answer(answer).await,
            Decision::Park(park) => self.park(park).await,
            Decision::Requeue => self.requeue().await,
            Decision::Drop => {
                tracing::info!(
                    "deadline passed; nobody waits for the answer, so the job is dropped"
                );
                self.job.services.metrics.expired(self.kind);
                self.ack_or_requeue(Ok(())).await
            }
        }
    }

    /// The job queue the job came from: where replays and retries return.
    fn source_queue(&self) -> &str {
        self.job.services.names.job_queue(self.kind)
    }

    /// Publishes the result, dead-letters first if the answer says why, then acks.
    async fn answer(&self, answer: Box<Answer>) {
        let Answer {
            result,
            headers,
            dead,
        } = *answer;
        log_result(&result, dead);
        self.job.services.metrics.job_finished(&result);
        let body = match serde_json::to_vec(&result) {
            Ok(body) => body,
            Err(err) => {
                tracing::error!(%err, "cannot serialise a result; returning the job to its queue");
                return self.requeue().await;
            }
        };
        // The dead letter goes first: once a producer sees the result, the copy is already there.
        if let Some(reason) = dead {
            let error = result.error.as_ref();
            let letter = self.dead_letter(
                &headers,
                reason,
                error.map(|e| e.code),
                error.map(|e| e.message.as_str()),
                &result,
            );
            if let Err(err) = letter.await {
                return self.ack_or_requeue(Err(err)).await;
            }
        }
        let reply_to = self.reply_to();
        let settled = match self
            .job
            .publisher
            .publish(&reply_to, &body, result_properties(self.delivery, &result))
            .await
        {
            Err(PublishError::Unroutable(queue)) if dead.is_none() => {
                tracing::error!(job_id = result.job_id.as_str(), reply_to = %queue, "result unroutable: no such reply queue; dead-lettering the job");
                let message = format!("reply_to names no queue: {queue:?}");
                self.dead_letter(
                    &headers,
                    DeadReason::ResultUnroutable,
                    Some(ErrorCode::ResultUnroutable),
                    Some(&message),
                    &result,
                )
                .await
            }
            Err(PublishError::Unroutable(queue)) => {
                tracing::error!(job_id = result.job_id.as_str(), reply_to = %queue, "result unroutable; the job is already dead-lettered");
                Ok(())
            }
            other => other,
        };
        self.ack_or_requeue(settled).await;
    }

    /// The queue the producer asked for when it is an allowed reply queue, or the results queue.
    fn reply_to(&self) -> String {
        let services = &self.job.services;
        self.delivery
            .properties
            .reply_to()
            .as_ref()
            .map(|q| q.as_str())
            .filter(|queue| services.reply_to_allowed(queue))
            .map_or_else(|| services.names.results.clone(), str::to_string)
    }

    async fn dead_letter(
        &self,
        headers: &JobHeaders,
        reason: DeadReason,
        code: Option<ErrorCode>,
        message: Option<&str>,
        result: &JobResult,
    ) -> Result<(), PublishError> {
        let services = &self.job.services;
        let table = headers.write(headers::producer_headers(
            self.delivery.properties.headers().as_ref(),
        ));
        let properties = properties::carried(&self.delivery.properties, table);
        let letter = DeadLetter {
            body: &self.delivery.data,
            max_body: services.settings.worker.max_job_bytes,
            properties: &properties,
            source_queue: self.source_queue(),
            job_id: result.job_id.as_str(),
            reason,
            error_code: code,
            error_message: message,
        };
        self.job
            .publisher
            .dead_letter(&services.names.dead, letter)
            .await
            .inspect(|()| services.metrics.dead_lettered(reason.as_str()))
    }

    /// Republishes the job, with its headers, to an inbox, a delay queue or a lane, then acks. Its
    /// properties are built afresh from the allowed ones; the expiration is its wait or its deadline.
    async fn park(&self, park: Park) {
        let routing = park
            .routing
            .as_ref()
            .map(|r| r.headers())
            .unwrap_or_default();
        let properties = properties::republished(
            &self.delivery.properties,
            &park.headers,
            &routing,
            park.expiration,
        );
        let services = &self.job.services;
        let parked = self
            .job
            .publisher
            .publish(&park.queue, &self.delivery.data, properties)
            .await;
        services.metrics.published(if park.routing.is_some() {
            "hop"
        } else {
            "retry"
        });
        if parked.is_ok()
            && let Some(code) = park.retry_of
        {
            services.metrics.retried(code);
        }
        self.ack_or_requeue(parked).await;
    }

    async fn ack_or_requeue(&self, settled: Result<(), PublishError>) {
        match settled {
            Ok(()) => {
                if let Err(err) = self.delivery.acker.ack(BasicAckOptions::default()).await {
                    // The channel is gone: the broker redelivers, and the job may be answered twice.
                    warn_unless_connection_lost!(err, "ack failed after the broker confirmed");
                }
            }
            Err(err) => {
                warn_unless_connection_lost!(
                    err,
                    "the broker did not confirm; returning the job to its queue"
                );
                self.requeue().await;
            }
        }
    }

    pub async fn requeue(&self) {
        let options = BasicNackOptions {
            requeue: true,
            ..BasicNackOptions::default()
        };
        if let Err(err) = self.delivery.acker.nack(options).await {
            warn_unless_connection_lost!(
                err,
                "nack failed; the broker requeues the job when the channel closes"
            );
        }
    }
}

/// Result messages: JSON, matched to their job by correlation id (the producer's, or the job id).
fn result_properties(delivery: &Delivery, result: &JobResult) -> BasicProperties {
    let correlation_id = delivery
        .properties
        .correlation_id()
        .clone()
        .unwrap_or_else(|| result.job_id.as_str().into());
    BasicProperties::default()
        .with_content_type("application/json".into())
        .with_correlation_id(correlation_id)
        .with_message_id(result.job_id.as_str().into())
        .with_type(result.kind.as_str().into())
}

fn log_result(result: &JobResult, dead: Option<DeadReason>) {
    match (&result.error, dead) {
        (Some(err), Some(DeadReason::Refused(_))) => {
            tracing::warn!(code = %err.code, message = %err.message, "malformed job refused")
        }
        (Some(err), _) => {
            tracing::info!(code = %err.code, retryable = err.retryable, message = %err.message, attempts = result.attempts, "job failed")
        }
        (None, _) => tracing::info!(status = result.status.as_str(), "job done"),
    }
}
