//! Preparing the picture of an avatar-update job: where the bytes come from, what they are, and what is uploaded.
//!
//! PLACEHOLDER: the full pipeline (URL sources, safe decoding, square scale to 640) replaces this module.

use bytes::Bytes;
use serde::Deserialize;

/// Limits and choices for preparing update images (`[image]` in the config).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ImageSettings {
    /// Largest accepted source in bytes (base64-decoded or downloaded).
    pub max_bytes: usize,
}

impl Default for ImageSettings {
    fn default() -> Self {
        Self {
            max_bytes: 10 * 1024 * 1024,
        }
    }
}

/// Where an update job's picture comes from.
#[derive(Debug, Clone)]
pub enum ImageSource {
    Base64(String),
    Url(String),
}

/// The bytes that will be uploaded, and what the result reports about them.
#[derive(Debug, Clone)]
pub struct PreparedImage {
    pub bytes: Bytes,
    pub content_type: &'static str,
    pub sha256: String,
    pub width: u32,
    pub height: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    TooLarge(String),
    #[error("{0}")]
    UrlForbidden(String),
    #[error("{message}")]
    Fetch { message: String, retryable: bool },
}

/// Turns a job's image source into the bytes to upload.
pub async fn prepare(
    source: &ImageSource,
    normalize: bool,
    settings: &ImageSettings,
) -> Result<PreparedImage, ImageError> {
    let _ = (source, normalize, settings);
    Err(ImageError::Invalid("image pipeline not built yet".into()))
}
