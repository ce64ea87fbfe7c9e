//! The ways preparing a picture can fail, each mapping to one result code.

use crate::protocol::{ErrorCode, JobError};

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

impl From<ImageError> for JobError {
    fn from(err: ImageError) -> Self {
        match err {
            ImageError::Invalid(message) => JobError::new(ErrorCode::InvalidImage, message),
            ImageError::TooLarge(message) => JobError::new(ErrorCode::ImageTooLarge, message),
            ImageError::UrlForbidden(message) => {
                JobError::new(ErrorCode::ImageUrlForbidden, message)
            }
            ImageError::Fetch { message, retryable } => {
                JobError::new(ErrorCode::ImageFetchFailed, message).with_retryable(retryable)
            }
        }
    }
}
