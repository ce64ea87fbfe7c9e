use serde::{Deserialize, Serialize};

/// Declares [`ErrorCode`] from one list: each variant with its wire name, so the enum, [`ErrorCode::ALL`]
/// and [`ErrorCode::as_str`] cannot drift apart.
macro_rules! error_codes {
    ($($variant:ident => $name:literal,)+) => {
        /// Why a job ended in `status: "error"`. The names are part of the wire contract.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum ErrorCode {
            $(#[serde(rename = $name)] $variant,)+
        }

        impl ErrorCode {
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant,)+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => $name,)+
                }
            }
        }
    };
}

error_codes! {
    InvalidJob => "invalid_job",
    InvalidPhone => "invalid_phone",
    NotOnWhatsapp => "not_on_whatsapp",
    DeviceRequired => "device_required",
    DeviceNotFound => "device_not_found",
    DeviceNotLoggedIn => "device_not_logged_in",
    DeviceDisconnected => "device_disconnected",
    RateLimited => "rate_limited",
    Timeout => "timeout",
    GatewayUnauthorized => "gateway_unauthorized",
    GatewayUnreachable => "gateway_unreachable",
    GatewayError => "gateway_error",
    DownloadFailed => "download_failed",
    DownloadForbidden => "download_forbidden",
    InvalidImage => "invalid_image",
    ImageTooLarge => "image_too_large",
    ImageUrlForbidden => "image_url_forbidden",
    ImageFetchFailed => "image_fetch_failed",
    ResultUnroutable => "result_unroutable",
    RedeliveryLimit => "redelivery_limit",
    Superseded => "superseded",
    Internal => "internal",
}

impl ErrorCode {
    /// Whether the cause is usually transient, so the same job may succeed later.
    pub fn is_transient(self) -> bool {
        matches!(
            self,
            ErrorCode::DeviceDisconnected
                | ErrorCode::RateLimited
                | ErrorCode::Timeout
                | ErrorCode::GatewayUnreachable
                | ErrorCode::GatewayError
                | ErrorCode::DownloadFailed
                | ErrorCode::ImageFetchFailed
        )
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The `error` object of a result: a named cause, a human message, and whether retrying may help.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{code}: {message}")]
pub struct JobError {
    pub code: ErrorCode,
    pub message: String,
    pub retryable: bool,
    /// How long WhatsApp asked us to wait (its `backoff` on a rate-overlimit); the retry waits at least
    /// this long. Internal: not part of the envelope.
    #[serde(skip)]
    pub retry_after: Option<std::time::Duration>,
    /// For `not_on_whatsapp`: whether the worker could confirm it (docs/protocol.md). A confirmed answer is
    /// final; an unconfirmed one is retryable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confirmed: Option<bool>,
    /// What the worker does next with the job. Internal: not part of the envelope.
    #[serde(skip)]
    pub then: Then,
}

/// What follows an error, besides what its `retryable` says.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Then {
    /// Retried while attempts are left when retryable, else answered.
    #[default]
    AsRetryable,
    /// Asked again soon without spending an attempt: a "not on whatsapp" not believable yet.
    Recheck,
    /// Answered now, retryable or not.
    Answer,
    /// Not answered: back to its queue, to wait until the cause is gone (a gateway refusing the
    /// configured credentials: the job is not at fault).
    Requeue,
}

impl JobError {
    /// An error whose retryability follows its code. The message is cut to [`Self::MAX_MESSAGE`] bytes: it
    /// often quotes what the producer sent, and results and headers must stay small.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: super::truncated(&message.into(), Self::MAX_MESSAGE),
            retryable: code.is_transient(),
            retry_after: None,
            confirmed: None,
            then: Then::AsRetryable,
        }
    }

    /// Longest message a result carries.
    pub const MAX_MESSAGE: usize = 1024;

    pub fn with_retry_after(mut self, wait: std::time::Duration) -> Self {
        self.retry_after = Some(wait);
        self
    }

    pub fn with_retryable(mut self, retryable: bool) -> Self {
        self.retryable = retryable;
        self
    }

    /// A `not_on_whatsapp` the backend established itself (a successful registration check): final.
    pub fn confirmed(mut self) -> Self {
        self.confirmed = Some(true);
        self.retryable = false;
        self.then = Then::Answer;
        self
    }

    pub fn invalid_job(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidJob, message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_that_quote_the_producer_stay_small() {
        let err = JobError::invalid_job(format!("is_preview: {}", "A".repeat(200_000)));
        assert!(err.message.len() <= JobError::MAX_MESSAGE);
        assert!(err.message.starts_with("is_preview: AAA") && err.message.ends_with("[truncated]"));
    }

    #[test]
    fn names_round_trip_through_serde() {
        for &code in ErrorCode::ALL {
            let json = serde_json::to_string(&code).unwrap();
            assert_eq!(json, format!("\"{}\"", code.as_str()));
            assert_eq!(serde_json::from_str::<ErrorCode>(&json).unwrap(), code);
        }
    }
}
