//! The ways preparing a picture can fail, each mapping to one result code.

/// Why a picture could not be prepared; the message names what was found so the job author can
/// fix the input without reading worker logs.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// Not a JPEG, PNG or WebP, corrupt, truncated, or too small (`invalid_image`).
    #[error("{0}")]
    Invalid(String),
    /// Over a byte or pixel limit (`image_too_large`).
    #[error("{0}")]
    TooLarge(String),
    /// The URL may not be fetched: bad scheme, private address... Retrying cannot help
    /// (`image_url_forbidden`).
    #[error("{0}")]
    UrlForbidden(String),
    /// The download failed: network, timeout, HTTP status (`image_fetch_failed`).
    #[error("{message}")]
    Fetch { message: String, retryable: bool },
}

impl ImageError {
    /// The result code the worker reports for this error.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Invalid(_) => "invalid_image",
            Self::TooLarge(_) => "image_too_large",
            Self::UrlForbidden(_) => "image_url_forbidden",
            Self::Fetch { .. } => "image_fetch_failed",
        }
    }

    /// Whether the same job may succeed later (only some download failures).
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Self::Fetch {
                retryable: true,
                ..
            }
        )
    }
}
