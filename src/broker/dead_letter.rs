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

    /// The reason an `x-avatar-reason` header names, if it names one.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "retries_exhausted" => Some(DeadReason::RetriesExhausted),
            "redelivery_limit" => Some(DeadReason::RedeliveryLimit),
            "result_unroutable" => Some(DeadReason::ResultUnroutable),
            other => ErrorCode::ALL
                .iter()
                .find(|code| code.as_str() == other)
                .map(|code| DeadReason::Refused(*code)),
        }
    }

    /// Whether the same job may succeed when run again: a malformed job never does.
    pub fn may_succeed_again(self) -> bool {
        !matches!(self, DeadReason::Refused(_))
    }
}

impl std::fmt::Display for DeadReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What is kept of a body over the job size limit.
const KEPT_OF_OVERSIZED: usize = 64 * 1024;

/// What to put in the dead-letter queue, and why.
pub struct DeadLetter<'a> {
    pub body: &'a [u8],
    /// Bodies over this size (the job limit) are cut to a prefix, said in [`headers::BODY_TRUNCATED`].
    pub max_body: usize,
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
            let value = headers::bounded(value, headers::MAX_TEXT);
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
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |since| since.as_millis());
        table.insert(
            headers::DEAD_AT.into(),
            AMQPValue::LongLongInt(now_ms.min(i64::MAX as u128) as i64),
        );
        let mut body = letter.body;
        if body.len() > letter.max_body {
            table.insert(
                headers::BODY_TRUNCATED.into(),
                AMQPValue::LongLongInt(body.len() as i64),
            );
            body = &body[..KEPT_OF_OVERSIZED.min(body.len())];
        }
        let properties = letter.properties.clone().with_headers(table);
        self.publish(queue, body, properties).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_reads_back() {
        let reasons = [
            DeadReason::RetriesExhausted,
            DeadReason::RedeliveryLimit,
            DeadReason::ResultUnroutable,
            DeadReason::Refused(ErrorCode::InvalidJob),
            DeadReason::Refused(ErrorCode::InvalidPhone),
        ];
        for reason in reasons {
            assert_eq!(DeadReason::parse(reason.as_str()), Some(reason));
        }
        assert_eq!(DeadReason::parse("nonsense"), None);
        assert!(!DeadReason::Refused(ErrorCode::InvalidJob).may_succeed_again());
        assert!(DeadReason::RetriesExhausted.may_succeed_again());
    }
}
