//! The `[image]` section of the config file (`AVATAR_WORKER__IMAGE__<KEY>` in the environment).

use serde::Deserialize;

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
    pub connect_timeout_ms: u64,
    /// Time allowed for the whole download, DNS and redirects included.
    pub timeout_ms: u64,
    /// Redirects followed before giving up; each hop is checked again.
    pub max_redirects: u32,
    /// `host` or `host:port` entries that may be fetched even though they resolve to a loopback
    /// or private address (the mock server in tests and docker compose).
    pub allow_hosts: Vec<String>,
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
            connect_timeout_ms: 5_000,
            timeout_ms: 20_000,
            max_redirects: 3,
            allow_hosts: Vec::new(),
        }
    }
}

impl ImageSettings {
    /// Quality clamped into what the encoder accepts, so a config typo cannot make every job fail.
    pub(crate) fn quality(&self) -> u8 {
        self.jpeg_quality.clamp(1, 100)
    }

    /// Target side of at least 1 so a zero in the config cannot produce an empty picture.
    pub(crate) fn target(&self) -> u32 {
        self.target_side.max(1)
    }
}
