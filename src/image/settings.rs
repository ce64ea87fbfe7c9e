//! The `[image]` section of the config file (`AVATAR_WORKER__IMAGE__<KEY>` in the environment).

use std::time::Duration;

use serde::Deserialize;

use crate::settings::SettingsError;

/// Limits and choices for preparing update images.
///
/// Every limit exists because the input comes from a job author we do not control: the byte and
/// pixel caps bound memory and CPU per job, and the URL settings bound how long and where a job
/// can make the worker reach out on the network.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ImageSettings {
    /// Largest accepted source in bytes, base64-decoded or downloaded (default 10 MiB).
    pub max_bytes: usize,
    /// Widest accepted image as stored in the file, checked from the header before decoding.
    pub max_width: u32,
    /// Tallest accepted image as stored in the file, checked from the header before decoding.
    pub max_height: u32,
    /// Largest accepted width × height, checked from the header before decoding.
    pub max_pixels: u64,
    /// Shortest accepted side: WhatsApp refuses profile pictures under 192 px.
    pub min_side: u32,
    /// Side of the square that is uploaded; WhatsApp stores at most 640 px.
    pub target_side: u32,
    /// JPEG quality (1–100) of the uploaded picture.
    pub jpeg_quality: u8,
    /// Time allowed to open a TCP (and TLS) connection to an image URL.
    #[serde(rename = "connect_timeout_ms", with = "crate::settings::millis")]
    pub connect_timeout: Duration,
    /// Time allowed for the whole download, DNS and redirects included.
    #[serde(rename = "timeout_ms", with = "crate::settings::millis")]
    pub timeout: Duration,
    /// Redirects followed before giving up; each hop is checked again.
    pub max_redirects: u32,
    /// `host` or `host:port` entries that may be fetched even though they resolve to a loopback
    /// or private address (the mock server in tests and docker compose).
    pub allow_hosts: Vec<String>,
    /// Memory all decodes of the worker may hold at once, counted from each picture's headers with the
    /// decoder's real buffers (a progressive JPEG's coefficients, every component, whole-frame formats);
    /// a picture needing more alone is refused, others wait for their share.
    pub decode_memory_bytes: u64,
    /// Deadline of one decode once its memory is granted; the job is answered `image_too_large` then.
    #[serde(rename = "decode_timeout_ms", with = "crate::settings::millis")]
    pub decode_timeout: Duration,
}

impl Default for ImageSettings {
    fn default() -> Self {
        Self {
            max_bytes: 10 * 1024 * 1024,
            max_width: 16_384,
            max_height: 16_384,
            max_pixels: 50_000_000,
            min_side: 192,
            target_side: 640,
            jpeg_quality: 85,
            connect_timeout: Duration::from_secs(5),
            timeout: Duration::from_secs(20),
            max_redirects: 3,
            allow_hosts: Vec::new(),
            decode_memory_bytes: 48 * 1024 * 1024,
            decode_timeout: Duration::from_secs(5),
        }
    }
}

impl ImageSettings {
    pub(crate) fn validate(&self) -> Result<(), SettingsError> {
        use crate::settings::invalid;
        if self.max_bytes == 0 {
            return Err(invalid("image.max_bytes", "must be at least 1"));
        }
        if self.max_width == 0 || self.max_height == 0 || self.max_pixels == 0 {
            return Err(invalid(
                "image.max_pixels",
                "image.max_width, image.max_height and image.max_pixels must be at least 1",
            ));
        }
        if self.target_side == 0 || self.target_side < self.min_side {
            return Err(invalid(
                "image.target_side",
                "must be at least 1 and at least image.min_side",
            ));
        }
        if !(1..=100).contains(&self.jpeg_quality) {
            return Err(invalid("image.jpeg_quality", "must be between 1 and 100"));
        }
        if self.decode_memory_bytes < 4 * 1024 * 1024 {
            return Err(invalid(
                "image.decode_memory_bytes",
                "must be at least 4194304 (4 MiB)",
            ));
        }
        if self.decode_timeout.is_zero() {
            return Err(invalid("image.decode_timeout_ms", "must be at least 1"));
        }
        if self.connect_timeout.is_zero() || self.timeout.is_zero() {
            return Err(invalid(
                "image.timeout_ms",
                "image.timeout_ms and image.connect_timeout_ms must be at least 1",
            ));
        }
        Ok(())
    }
}
