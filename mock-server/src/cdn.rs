//! The picture CDN: signed URLs shaped like `pps.whatsapp.net` ones, and the JPEG bytes behind them.
//!
//! URL: `{base}/v/t61.24694-24/{id}_{96|640}_{n}_n.jpg?ccb=11-4&oh={32 hex}&oe={HEX unix expiry}`.
//! `oh` is a keyed hash of the path and `oe`. World pictures are generated from the id (a
//! gradient in a colour derived from it: 96×96 preview, 640×640 full) and cached (at most
//! 4096); uploaded pictures are served from [`crate::uploads`]. Checks, in order: bad/missing `oe` → 403 `Bad URL timestamp`,
//! expired → 403 `URL signature expired`, wrong `oh` → 403 `Bad URL hash`, unknown file → 404.

use std::collections::HashMap;
use std::io::Cursor;
use std::sync::{Arc, Mutex, PoisonError};

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use image::codecs::jpeg::JpegEncoder;
use image::{ImageBuffer, Rgb, RgbImage};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::envelope::text;
use crate::state::{AppState, read};
use crate::util::{query_last, unix_now};

/// Path prefix of picture URLs.
pub const PATH_PREFIX: &str = "/v/t61.24694-24/";
/// Lifetime of a picture URL (14 days).
pub const URL_TTL_SECS: u64 = 14 * 24 * 3600;
/// Edge of generated previews.
pub const PREVIEW_EDGE: u32 = 96;
/// Edge of generated full pictures.
pub const FULL_EDGE: u32 = 640;
const CACHE_MAX: usize = 4096;

/// The device's own current picture, for `GET /_mock/devices/{id}/avatar`.
#[derive(Debug, Clone, Serialize)]
pub struct OwnAvatar {
    pub id: String,
    pub width: u32,
    pub height: u32,
    pub format: &'static str,
    pub size: usize,
    pub sha256: String,
    pub uploaded_format: &'static str,
    pub uploaded_width: u32,
    pub uploaded_height: u32,
    pub uploaded_size: usize,
    pub uploaded_sha256: String,
}

/// Signing key and generated-picture cache.
pub struct Cdn {
    key: [u8; 32],
    cache: Mutex<HashMap<(String, bool), Bytes>>,
}

/// Lowercase hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// sha256 as lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

impl Cdn {
    pub fn new(seed: u64) -> Self {
        let mut h = Sha256::new();
        h.update(b"mock-server cdn key");
        h.update(seed.to_le_bytes());
        Cdn {
            key: h.finalize().into(),
            cache: Mutex::new(HashMap::new()),
        }
    }

    fn sign(&self, path: &str, oe: &str) -> String {
        let mut h = Sha256::new();
        h.update(self.key);
        h.update(path.as_bytes());
        h.update(b"|");
        h.update(oe.as_bytes());
        hex(&h.finalize()[..16])
    }

    /// The URL of picture `id` of target `key`.
    pub fn url(&self, base: &str, id: &str, preview: bool, key: &str) -> String {
        let mut h = Sha256::new();
        h.update(self.key);
        h.update(key.as_bytes());
        let d = h.finalize();
        let mut n = [0u8; 8];
        n.copy_from_slice(&d[..8]);
        let edge = if preview { PREVIEW_EDGE } else { FULL_EDGE };
        let path = format!(
            "{PATH_PREFIX}{id}_{edge}_{}_n.jpg",
            u64::from_le_bytes(n) % 10_000_000_000_000_000_000
        );
        let oe = format!("{:X}", unix_now() + URL_TTL_SECS);
        let oh = self.sign(&path, &oe);
        format!("{base}{path}?ccb=11-4&oh={oh}&oe={oe}")
    }

    fn cached(&self, id: &str, preview: bool) -> Option<Bytes> {
        self.cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&(id.to_string(), preview))
            .cloned()
    }

    fn store(&self, id: &str, preview: bool, bytes: Bytes) {
        let mut c = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        if c.len() >= CACHE_MAX {
            c.clear();
        }
        c.insert((id.to_string(), preview), bytes);
    }
}

/// Encodes RGB pixels as JPEG with the given quality.
pub fn encode_jpeg(img: &RgbImage, quality: u8) -> Result<Vec<u8>, String> {
    let mut out = Cursor::new(Vec::new());
    JpegEncoder::new_with_quality(&mut out, quality)
        .encode_image(img)
        .map_err(|e| format!("failed to encode image: {e}"))?;
    Ok(out.into_inner())
}

/// The deterministic picture of a world id.
pub fn generate(id: &str, preview: bool) -> Result<Vec<u8>, String> {
    let d = Sha256::digest(id.as_bytes());
    let (r, g, b) = (d[0] as u32, d[1] as u32, d[2] as u32);
    let edge = if preview { PREVIEW_EDGE } else { FULL_EDGE };
    let img: RgbImage = ImageBuffer::from_fn(edge, edge, |x, y| {
        let t = (x + y) * 255 / (2 * edge);
        let mix = |c: u32| ((c * (255 - t) + (255 - c) * t) / 255) as u8;
        Rgb([mix(r), mix(g), mix(b)])
    });
    encode_jpeg(&img, 80)
}

fn jpeg(bytes: Bytes) -> Response {
    let mut r = (StatusCode::OK, bytes).into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("image/jpeg"));
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("max-age=1209600"),
    );
    r
}

/// `GET /v/t61.24694-24/{file}`.
pub async fn serve(
    State(state): State<Arc<AppState>>,
    Path(file): Path<String>,
    RawQuery(q): RawQuery,
) -> Response {
    picture(&state, &file, &q.unwrap_or_default())
        .await
        .unwrap_or_else(|r| r)
}

/// Checks the signature of a picture URL; returns its id and whether it is the preview.
fn verify<'a>(state: &AppState, file: &'a str, q: &str) -> Result<(&'a str, bool), Response> {
    let bad_timestamp = || text(StatusCode::FORBIDDEN, "Bad URL timestamp");
    let oe = query_last(q, "oe").ok_or_else(bad_timestamp)?;
    let expiry = u64::from_str_radix(&oe, 16).map_err(|_| bad_timestamp())?;
    if expiry < unix_now() {
        return Err(text(StatusCode::FORBIDDEN, "URL signature expired"));
    }
    let path = format!("{PATH_PREFIX}{file}");
    if query_last(q, "oh").as_deref() != Some(state.cdn.sign(&path, &oe).as_str()) {
        return Err(text(StatusCode::FORBIDDEN, "Bad URL hash"));
    }
    let parts: Vec<&str> = file
        .strip_suffix("_n.jpg")
        .unwrap_or("")
        .split('_')
        .collect();
    match parts.as_slice() {
        [id, "96", _] => Ok((id, true)),
        [id, "640", _] => Ok((id, false)),
        _ => Err(text(StatusCode::NOT_FOUND, "Not Found")),
    }
}

async fn picture(state: &AppState, file: &str, q: &str) -> Result<Response, Response> {
    let (id, preview) = verify(state, file, q)?;
    let uploaded = read(&state.uploads).get(id);
    if let Some(p) = uploaded {
        return Ok(jpeg(if preview {
            p.preview.clone()
        } else {
            p.full.clone()
        }));
    }
    if let Some(b) = state.cdn.cached(id, preview) {
        return Ok(jpeg(b));
    }
    let owned = id.to_string();
    let bytes = tokio::task::spawn_blocking(move || generate(&owned, preview))
        .await
        .ok()
        .and_then(Result::ok)
        .map(Bytes::from)
        .ok_or_else(|| text(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error"))?;
    state.cdn.store(id, preview, bytes.clone());
    Ok(jpeg(bytes))
}
