//! Where a job leaves the worker: its result is published (confirmed), a copy goes to the dead-letter
//! queue when needed, or the job is parked in a delay queue; only then is the delivery acked. If the broker
//! does not confirm, the job goes back to its queue: answered later, never lost.

use lapin::BasicProperties;
use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, BasicNackOptions};

use super::Services;
use crate::broker::{DeadLetter, JobHeaders, PublishError, Publisher};
use crate::protocol::{ErrorCode, JobKind, JobResult};

/// One delivery and what the worker knows about it, for settling.
pub(crate) struct Settle<'a> {
    pub services: &'a Services,
    pub publisher: &'a Publisher,
    pub delivery: &'a Delivery,
    pub kind: JobKind,
}

impl Settle<'_> {
    pub fn source_queue(&self) -> &str {
        match self.kind {
            JobKind::Fetch => &self.services.names.fetch,
            JobKind::Update => &self.services.names.update,
        }
    }

    /// Publishes the result, dead-letters with `dead_reason` if given, then acks.
    pub async fn finish(
        &self,
        result: &JobResult,
        headers: &JobHeaders,
        dead_reason: Option<&str>,
    ) {
        self.services.metrics.job_finished(result);
        let names = &self.services.names;
        let properties = &self.delivery.properties;
        let reply_to = properties
            .reply_to()
            .as_ref()
            .map(|q| q.to_string())
            .unwrap_or_else(|| names.results.clone());
        let correlation_id = properties
            .correlation_id()
            .clone()
            .unwrap_or_else(|| result.job_id.as_str().into());
        let body = match serde_json::to_vec(result) {
            Ok(body) => body,
            Err(err) => {
                tracing::error!(%err, "cannot serialise a result; returning the job to its queue");
                return self.requeue().await;
            }
        };
        let result_properties = BasicProperties::default()
            .with_content_type("application/json".into())
            .with_correlation_id(correlation_id)
            .with_message_id(result.job_id.as_str().into())
            .with_type(result.kind.as_str().into());
        let error = result.error.as_ref();
        // The dead letter goes first: once a producer sees the result, the copy is already there.
        if let Some(reason) = dead_reason {
            let code = error.map(|e| e.code);
            let message = error.map(|e| e.message.as_str());
            let dead = self.dead_letter(headers, reason, code, message, result.job_id.as_str());
            if let Err(err) = dead.await {
                return self.ack_or_requeue(Err(err)).await;
            }
        }
        let settled = match self
            .publisher
            .publish(&reply_to, &body, result_properties)
            .await
        {
            Err(PublishError::Unroutable(queue)) if dead_reason.is_none() => {
                tracing::error!(reply_to = %queue, "result unroutable: no such reply queue; dead-lettering the job");
                let message = format!("reply_to names no queue: {queue:?}");
                self.dead_letter(
                    headers,
                    "result_unroutable",
                    Some(ErrorCode::ResultUnroutable),
                    Some(&message),
                    result.job_id.as_str(),
                )
                .await
            }
            Err(PublishError::Unroutable(queue)) => {
                tracing::error!(reply_to = %queue, "result unroutable; the job is already dead-lettered");
                Ok(())
            }
            other => other,
        };
        self.ack_or_requeue(settled).await;
    }

    async fn dead_letter(
        &self,
        headers: &JobHeaders,
        reason: &str,
        code: Option<ErrorCode>,
        message: Option<&str>,
        job_id: &str,
    ) -> Result<(), PublishError> {
        let table = headers.write(self.delivery.properties.headers().as_ref());
        let properties = self.delivery.properties.clone().with_headers(table);
        let letter = DeadLetter {
            body: &self.delivery.data,
            properties: &properties,
            source_queue: self.source_queue(),
            job_id,
            reason,
            error_code: code.map(ErrorCode::as_str),
            error_message: message,
        };
        self.publisher
            .dead_letter(&self.services.names.dead, letter)
            .await
            .inspect(|()| self.services.metrics.dead_lettered(reason))
    }

    /// Republishes the job, with its headers, to `queue` (a delay queue or its own queue), then acks.
    /// `expiration_ms` shortens the delay queue's TTL for this message (jitter, short pacing waits).
    pub async fn park(&self, queue: &str, headers: &JobHeaders, expiration_ms: Option<u64>) {
        let table = headers.write(self.delivery.properties.headers().as_ref());
        let mut properties = self.delivery.properties.clone().with_headers(table);
        if let Some(ms) = expiration_ms {
            properties = properties.with_expiration(ms.to_string().into());
        }
        let parked = self
            .publisher
            .publish(queue, &self.delivery.data, properties)
            .await;
        self.ack_or_requeue(parked).await;
    }

    async fn ack_or_requeue(&self, settled: Result<(), PublishError>) {
        match settled {
            Ok(()) => {
                if let Err(err) = self.delivery.acker.ack(BasicAckOptions::default()).await {
                    // The channel is gone: the broker redelivers, and the job may be answered twice.
                    tracing::warn!(%err, "ack failed after the broker confirmed");
                }
            }
            Err(err) => {
                tracing::warn!(%err, "the broker did not confirm; returning the job to its queue");
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
            tracing::warn!(%err, "nack failed; the broker requeues the job when the channel closes");
        }
    }
}

/// For the dead-letter header of a job that ran out of attempts.
pub(crate) fn history_line(attempt: u32, code: ErrorCode, message: &str) -> String {
    let message: String = message.chars().take(300).collect();
    format!("{attempt} {code}: {message}")
}
