//! The dead-letter queue: a copy of every job that will not be tried again, for a person to look at or
//! replay, with headers that say why.

use lapin::BasicProperties;
use lapin::types::AMQPValue;

use super::{PublishError, Publisher, headers};
use crate::protocol::ErrorCode;

/// Why a job was dead-lettered: the `x-avatar-reason` header and the `reason` label of
/// `avatar_worker_dead_lettered_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeadReason {
    /// The job itself is malformed (`invalid_job`, `invalid_phone`): it can never succeed.
    Refused(ErrorCode),
    /// Every attempt allowed failed with a transient error.
    RetriesExhausted,
    /// Delivered again and again without finishing: it may crash the worker.
    RedeliveryLimit,
    /// Its `reply_to` names no queue, so its result had nowhere to go.
    ResultUnroutable,
}

impl DeadReason {
    pub fn as_str(self) -> &'static str {
        match self {
            DeadReason::Refused(code) => code.as_str(),
            DeadReason::RetriesExhausted => "retries_exhausted",
            DeadReason::RedeliveryLimit => "redelivery_limit",
            DeadReason::ResultUnroutable => "result_unroutable",
        }
    }
}

impl std::fmt::Display for DeadReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What to put in the dead-letter queue, and why.
pub struct DeadLetter<'a> {
    pub body: &'a [u8],
    pub properties: &'a BasicProperties,
    pub source_queue: &'a str,
    pub job_id: &'a str,
    pub reason: DeadReason,
    pub error_code: Option<ErrorCode>,
    pub error_message: Option<&'a str>,
}

impl Publisher {
    /// Copies a job into the dead-letter queue with the reason in headers, keeping its own properties.
    pub async fn dead_letter(
        &self,
        queue: &str,
        letter: DeadLetter<'_>,
    ) -> Result<(), PublishError> {
        let mut table = letter.properties.headers().clone().unwrap_or_default();
        let mut put = |key: &str, value: &str| {
            table.insert(key.into(), AMQPValue::LongString(value.into()));
        };
        put(headers::REASON, letter.reason.as_str());
        put(headers::SOURCE_QUEUE, letter.source_queue);
        put(headers::JOB_ID, letter.job_id);
        if let Some(code) = letter.error_code {
            put(headers::ERROR_CODE, code.as_str());
        }
        if let Some(message) = letter.error_message {
            put(headers::ERROR_MESSAGE, message);
        }
        let properties = letter.properties.clone().with_headers(table);
        self.publish(queue, letter.body, properties).await
    }
}
