//! Preparing the picture of an avatar-update job: where the bytes come from, what they are, and
//! what is uploaded.
//!
//! The gateway centre-crops anything over 640 px instead of scaling it, so a portrait loses most
//! of the face; this pipeline hands it a square of at most 640 px so there is nothing left to
//! crop. Steps: `source`/`fetch` (bytes, guarded) → `sniff` (magic bytes) → `decode`
//! (header limits first, centre square, cheap pre-shrink) → `normalize` (Lanczos3 to the
//! target side, EXIF orientation, JPEG).

mod budget;
mod decode;
mod error;
mod fetch;
mod normalize;
mod orient;
mod pixels;
mod settings;
mod sniff;
mod source;

use std::path::Path;

use bytes::Bytes;
use sha2::{Digest, Sha256};

pub use crate::http::guard::forbidden_reason;
pub use budget::{Cost, DecodeBudget, MAX_JPEG_SCANS};
pub use error::ImageError;
pub use settings::ImageSettings;
pub use sniff::{Format, sniff};
pub use source::decode_base64;

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
    /// Lowercase hex SHA-256 of `bytes`, so identical pictures need not be uploaded twice.
    pub sha256: String,
    pub width: u32,
    pub height: u32,
}

/// Lowercase hex SHA-256: how results and file names identify picture bytes.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    Sha256::digest(bytes)
        .iter()
        .fold(String::with_capacity(64), |mut out, b| {
            let _ = write!(out, "{b:02x}");
            out
        })
}

impl PreparedImage {
    fn new(bytes: Bytes, content_type: &'static str, width: u32, height: u32) -> Self {
        let sha256 = sha256_hex(&bytes);
        Self {
            bytes,
            content_type,
            sha256,
            width,
            height,
        }
    }
}

/// Turns a job's image source into the bytes to upload.
///
/// With `normalize` the result is a square JPEG of at most `target_side` px; without it the
/// original bytes are uploaded once they have been checked to be a complete JPEG, PNG or WebP
/// within the limits. Decoding runs on the blocking pool so a large picture cannot stall the
/// runtime's consumers. One picture alone: [`prepare_within`] shares a worker's decode budget.
pub async fn prepare(
    source: &ImageSource,
    normalize: bool,
    settings: &ImageSettings,
) -> Result<PreparedImage, ImageError> {
    prepare_within(source, normalize, settings, &DecodeBudget::new(settings)).await
}

/// As [`prepare`], the decode waiting for its share of `budget` (the memory its headers say it will
/// hold) and bounded by `image.decode_timeout_ms` once it has it.
pub async fn prepare_within(
    source: &ImageSource,
    normalize: bool,
    settings: &ImageSettings,
    budget: &DecodeBudget,
) -> Result<PreparedImage, ImageError> {
    let fetched = match source {
        ImageSource::Url(url) => Some(fetch::fetch(url, settings).await?),
        ImageSource::Base64(_) => None,
    };
    let base64 = match source {
        ImageSource::Base64(text) => Some(text.clone()),
        ImageSource::Url(_) => None,
    };
    let owned = settings.clone();
    let read = move || {
        let data = match (fetched, base64) {
            (Some(bytes), _) => bytes,
            (None, Some(text)) => Bytes::from(decode_base64(&text, owned.max_bytes)?),
            (None, None) => return Err(ImageError::Invalid("no image source".into())),
        };
        check_size(data.len(), &owned)?;
        let format = sniff(&data)?;
        let cost = budget::cost(&data, format, &owned)?;
        Ok((data, cost))
    };
    let (data, cost) = tokio::task::spawn_blocking(read)
        .await
        .map_err(not_processed)??;
    let permit = budget.reserve(cost).await?;
    let owned = settings.clone();
    let work = move || {
        // Held until the decode ends, even when its job has stopped waiting.
        let _permit = permit;
        if normalize {
            normalize_bytes(&data, &owned)
        } else {
            validate_original(data, &owned)
        }
    };
    match tokio::time::timeout(settings.decode_timeout, tokio::task::spawn_blocking(work)).await {
        Ok(done) => done.map_err(not_processed)?,
        Err(_) => Err(ImageError::TooLarge(format!(
            "decoding the image took longer than {} ms (image.decode_timeout_ms)",
            settings.decode_timeout.as_millis()
        ))),
    }
}

fn not_processed(e: tokio::task::JoinError) -> ImageError {
    ImageError::Invalid(format!("the image could not be processed: {e}"))
}

/// The whole pipeline on bytes already in memory: what `avatar-worker image normalize` runs.
pub fn normalize_bytes(data: &[u8], settings: &ImageSettings) -> Result<PreparedImage, ImageError> {
    check_size(data.len(), settings)?;
    let format = sniff(data)?;
    budget::check(
        budget::cost(data, format, settings)?,
        settings.decode_memory_bytes,
    )?;
    let decoded = decode::decode(data, format, settings)?;
    let square = normalize::square(decoded, settings)?;
    let jpeg = normalize::encode_jpeg(&square, settings)?;
    Ok(PreparedImage::new(
        Bytes::from(jpeg),
        "image/jpeg",
        square.side,
        square.side,
    ))
}

/// Reads `input`, normalises it and writes the JPEG to `output`; I/O failures are reported as
/// [`NormalizeFileError::Io`] so the CLI can tell them apart from a refused picture.
pub fn normalize_file(
    input: &Path,
    output: &Path,
    settings: &ImageSettings,
) -> Result<PreparedImage, NormalizeFileError> {
    let data = std::fs::read(input).map_err(|source| NormalizeFileError::Io {
        path: input.display().to_string(),
        source,
    })?;
    let prepared = normalize_bytes(&data, settings)?;
    std::fs::write(output, &prepared.bytes).map_err(|source| NormalizeFileError::Io {
        path: output.display().to_string(),
        source,
    })?;
    Ok(prepared)
}

/// Why [`normalize_file`] failed.
#[derive(Debug, thiserror::Error)]
pub enum NormalizeFileError {
    #[error("cannot access {path}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Image(#[from] ImageError),
}

/// Checks the original completely (a truncated file fails here, not at the gateway) and
/// returns it unchanged; width and height are as stored in the file.
pub fn validate_original(
    data: Bytes,
    settings: &ImageSettings,
) -> Result<PreparedImage, ImageError> {
    check_size(data.len(), settings)?;
    let format = sniff(&data)?;
    budget::check(
        budget::cost(&data, format, settings)?,
        settings.decode_memory_bytes,
    )?;
    let decoded = decode::decode(&data, format, settings)?;
    let (width, height) = (decoded.source_width, decoded.source_height);
    drop(decoded);
    Ok(PreparedImage::new(
        data,
        format.content_type(),
        width,
        height,
    ))
}

fn check_size(len: usize, settings: &ImageSettings) -> Result<(), ImageError> {
    if len > settings.max_bytes {
        return Err(ImageError::TooLarge(format!(
            "the image is {len} bytes; the limit is {} (image.max_bytes)",
            settings.max_bytes
        )));
    }
    Ok(())
}
