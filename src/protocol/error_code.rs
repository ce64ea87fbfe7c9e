use serde::{Deserialize, Serialize};

/// Why a job ended in `status: "error"`. The names are part of the wire contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    InvalidJob,
    InvalidPhone,
    NotOnWhatsapp,
    DeviceRequired,
    DeviceNotFound,
    DeviceNotLoggedIn,
    DeviceDisconnected,
    RateLimited,
    Timeout,
    GatewayUnauthorized,
    GatewayUnreachable,
    GatewayError,
    DownloadFailed,
    InvalidImage,
    ImageTooLarge,
    ImageUrlForbidden,
    ImageFetchFailed,
    ResultUnroutable,
    RedeliveryLimit,
    Superseded,
    Internal,
}

impl ErrorCode {
    pub const ALL: [ErrorCode; 21] = [
        ErrorCode::InvalidJob,
        ErrorCode::InvalidPhone,
        ErrorCode::NotOnWhatsapp,
        ErrorCode::DeviceRequired,
        ErrorCode::DeviceNotFound,
        ErrorCode::DeviceNotLoggedIn,
        ErrorCode::DeviceDisconnected,
        ErrorCode::RateLimited,
        ErrorCode::Timeout,
        ErrorCode::GatewayUnauthorized,
        ErrorCode::GatewayUnreachable,
        ErrorCode::GatewayError,
        ErrorCode::DownloadFailed,
        ErrorCode::InvalidImage,
        ErrorCode::ImageTooLarge,
        ErrorCode::ImageUrlForbidden,
        ErrorCode::ImageFetchFailed,
        ErrorCode::ResultUnroutable,
        ErrorCode::RedeliveryLimit,
        ErrorCode::Superseded,
        ErrorCode::Internal,
    ];

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

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidJob => "invalid_job",
            ErrorCode::InvalidPhone => "invalid_phone",
            ErrorCode::NotOnWhatsapp => "not_on_whatsapp",
            ErrorCode::DeviceRequired => "device_required",
            ErrorCode::DeviceNotFound => "device_not_found",
            ErrorCode::DeviceNotLoggedIn => "device_not_logged_in",
            ErrorCode::DeviceDisconnected => "device_disconnected",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::Timeout => "timeout",
            ErrorCode::GatewayUnauthorized => "gateway_unauthorized",
            ErrorCode::GatewayUnreachable => "gateway_unreachable",
            ErrorCode::GatewayError => "gateway_error",
            ErrorCode::DownloadFailed => "download_failed",
            ErrorCode::InvalidImage => "invalid_image",
            ErrorCode::ImageTooLarge => "image_too_large",
            ErrorCode::ImageUrlForbidden => "image_url_forbidden",
            ErrorCode::ImageFetchFailed => "image_fetch_failed",
            ErrorCode::ResultUnroutable => "result_unroutable",
            ErrorCode::RedeliveryLimit => "redelivery_limit",
            ErrorCode::Superseded => "superseded",
            ErrorCode::Internal => "internal",
        }
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
}

impl JobError {
    /// An error whose retryability follows its code.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            retryable: code.is_transient(),
            retry_after: None,
        }
    }

    pub fn with_retry_after(mut self, wait: std::time::Duration) -> Self {
        self.retry_after = Some(wait);
        self
    }

    pub fn with_retryable(mut self, retryable: bool) -> Self {
        self.retryable = retryable;
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
    fn names_round_trip_through_serde() {
        for code in ErrorCode::ALL {
            let json = serde_json::to_string(&code).unwrap();
            assert_eq!(json, format!("\"{}\"", code.as_str()));
            assert_eq!(serde_json::from_str::<ErrorCode>(&json).unwrap(), code);
        }
    }
}
