//! `GET /user/avatar` and `POST /user/avatar`, in the gateway's processing order
//! (sections 2 and 3 of gowa-avatar-api.md).

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{FromRequest, Multipart, RawQuery, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use bytes::Bytes;
use image::{GenericImageView, ImageFormat, RgbImage};
use serde::Serialize;

use crate::cdn::{OwnAvatar, StoredPicture, encode_jpeg, sha256_hex};
use crate::devices::{DeviceState, Selected, bare, select};
use crate::envelope::{internal, reply, success, text};
use crate::faults::Injected;
use crate::jid::{USER_SERVER, parse_jid, sanitize_phone, world_key};
use crate::state::{AppState, write};
use crate::util::{go_bool, query_last};
use crate::world::Outcome;

/// Fiber's global body limit (not configurable in the gateway).
pub const BODY_LIMIT: usize = 100_000_000;
const NOT_CONNECTED: &str = "you are not connect to services server, please reconnect";
const NOT_LOGGED_IN: &str = "you are not logged in";

#[derive(Serialize)]
struct AvatarResponse<'a> {
    url: &'a str,
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
}

fn no_client() -> Response {
    internal_code("INVALID_WA_CLI", "your WhatsApp CLI is invalid or empty")
}

fn internal_code(code: &str, message: &str) -> Response {
    reply(StatusCode::INTERNAL_SERVER_ERROR, code, message)
}

fn auth_error(message: &str) -> Response {
    reply(StatusCode::UNAUTHORIZED, "AUTHENTICATION_ERROR", message)
}

/// `MustLogin` (plus the `not_connected` fault).
fn must_login(dev: &Selected, not_connected_fault: bool) -> Result<(), Response> {
    match dev.state {
        DeviceState::Disconnected => Err(auth_error(NOT_CONNECTED)),
        DeviceState::NotLoggedIn => Err(auth_error(NOT_LOGGED_IN)),
        _ if not_connected_fault => Err(auth_error(NOT_CONNECTED)),
        _ => Ok(()),
    }
}

fn bind_bool(q: &str, key: &str) -> Result<bool, Response> {
    match query_last(q, key) {
        None => Ok(false),
        Some(v) => go_bool(&v).ok_or_else(|| {
            internal(&format!(
                "bind \"{key}\" from query: schema: error converting value for \"{key}\""
            ))
        }),
    }
}

/// `GET /user/avatar`.
pub async fn get_avatar(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    let q = q.unwrap_or_default();
    let dev = match select(&state, &headers, query_last(&q, "device_id")) {
        Ok(d) => d,
        Err(r) => return r,
    };
    let faults = state.faults();
    faults.delay().await;
    // 1. bind + sanitise
    let is_preview = match bind_bool(&q, "is_preview") {
        Ok(b) => b,
        Err(r) => return r,
    };
    if let Err(r) = bind_bool(&q, "is_community") {
        return r;
    }
    let phone = sanitize_phone(&query_last(&q, "phone").unwrap_or_default());
    // 2. client
    if dev.state == DeviceState::NoClient {
        return no_client();
    }
    // 3. validation
    if phone.is_empty() {
        return reply(
            StatusCode::BAD_REQUEST,
            "VALIDATION_ERROR",
            "phone: cannot be blank.",
        );
    }
    // 4. login, JID parsing, on-WhatsApp check
    if let Err(r) = must_login(&dev, faults.draw_not_connected()) {
        return r;
    }
    let jid = match parse_jid(&phone) {
        Ok(j) => j,
        Err(e) => return internal(&e),
    };
    let key = world_key(&phone);
    let outcome = state.lookup(&key);
    if jid.server == USER_SERVER && outcome == Outcome::NotOnWhatsapp {
        return reply(
            StatusCode::BAD_REQUEST,
            "INVALID_JID",
            &format!("Phone {phone} is not on whatsapp"),
        );
    }
    // 5. picture query
    match faults.draw() {
        Some(Injected::Timeout(ms)) => {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            return reply(
                StatusCode::REQUEST_TIMEOUT,
                "CONTEXT_ERROR",
                "Error timeout get avatar!",
            );
        }
        Some(Injected::RateOverlimit) => {
            return internal("info query returned status 429: rate-overlimit");
        }
        Some(Injected::InternalError) => {
            return internal("info query returned status 500: internal-server-error");
        }
        None => {}
    }
    match outcome {
        Outcome::Set { id } => {
            let url = state.cdn.url(&state.public_base, &id, is_preview, &key);
            let kind = if is_preview { "preview" } else { "image" };
            success(
                "Success get avatar",
                Some(&AvatarResponse {
                    url: &url,
                    id: &id,
                    kind,
                }),
            )
        }
        Outcome::Hidden => internal("the user has hidden their profile picture from you"),
        Outcome::NotSet | Outcome::NotOnWhatsapp => {
            internal("that user or group does not have a profile picture")
        }
    }
}

/// Content types Fiber's `Bind().Body` accepts.
fn bindable(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    matches!(
        essence.as_str(),
        "application/json"
            | "application/xml"
            | "text/xml"
            | "application/cbor"
            | "application/vnd.msgpack"
            | "application/msgpack"
            | "application/x-www-form-urlencoded"
            | "multipart/form-data"
    )
}

/// Sniffs the formats the gateway's binary registers with `image.Decode`.
pub fn sniff(data: &[u8]) -> Option<ImageFormat> {
    let starts = |m: &[u8]| data.len() >= m.len() && &data[..m.len()] == m;
    if starts(b"\xff\xd8") {
        Some(ImageFormat::Jpeg)
    } else if starts(b"\x89PNG\r\n\x1a\n") {
        Some(ImageFormat::Png)
    } else if starts(b"GIF87a") || starts(b"GIF89a") {
        Some(ImageFormat::Gif)
    } else if data.len() >= 10 && starts(b"BM") && data[6..10] == [0, 0, 0, 0] {
        Some(ImageFormat::Bmp)
    } else if starts(b"II\x2a\x00") || starts(b"MM\x00\x2a") {
        Some(ImageFormat::Tiff)
    } else if data.len() >= 15 && starts(b"RIFF") && &data[8..15] == b"WEBPVP8" {
        Some(ImageFormat::WebP)
    } else {
        None
    }
}

fn format_name(f: ImageFormat) -> &'static str {
    match f {
        ImageFormat::Jpeg => "jpeg",
        ImageFormat::Png => "png",
        ImageFormat::Gif => "gif",
        ImageFormat::Bmp => "bmp",
        ImageFormat::Tiff => "tiff",
        ImageFormat::WebP => "webp",
        _ => "unknown",
    }
}

/// Approximates the Go decoders' error text for data that has the right magic but is corrupt:
/// truncated input gives Go's `unexpected EOF`, anything else the package's "invalid format" error.
fn go_decode_error(format: ImageFormat, e: &image::ImageError) -> &'static str {
    let text = e.to_string().to_ascii_lowercase();
    let truncated = matches!(e, image::ImageError::IoError(_))
        || [
            "eof",
            "enough bytes",
            "end of",
            "truncated",
            "unexpected end",
        ]
        .iter()
        .any(|w| text.contains(w));
    if truncated {
        return "unexpected EOF";
    }
    match format {
        ImageFormat::Jpeg => "invalid JPEG format: bad data",
        ImageFormat::Png => "png: invalid format: invalid data",
        ImageFormat::Gif => "gif: invalid format",
        ImageFormat::Bmp => "bmp: invalid format",
        ImageFormat::Tiff => "tiff: invalid format: malformed data",
        _ => "riff: invalid format",
    }
}

/// The result of the gateway's conversion of an upload.
#[derive(Debug)]
pub struct Processed {
    pub jpeg: Vec<u8>,
    pub preview: Vec<u8>,
    pub edge: u32,
    pub uploaded_format: &'static str,
    pub uploaded_width: u32,
    pub uploaded_height: u32,
}

/// Decode, then `size = min(w, h)` capped at 640, centre-crop `size×size` (the gateway never
/// scales: its resize branch is dead code), premultiply alpha onto black like Go's JPEG encoder,
/// encode as JPEG quality 80. Also makes a 96×96 preview for the CDN.
pub fn process(data: &[u8]) -> Result<Processed, String> {
    let format = sniff(data).ok_or("failed to decode image: image: unknown format")?;
    let img = image::load_from_memory_with_format(data, format)
        .map_err(|e| format!("failed to decode image: {}", go_decode_error(format, &e)))?;
    let (w, h) = img.dimensions();
    let size = w.min(h).min(640);
    if size == 0 {
        return Err("failed to encode image: empty image".into());
    }
    let rgba = img
        .crop_imm((w - size) / 2, (h - size) / 2, size, size)
        .to_rgba8();
    let rgb = RgbImage::from_fn(size, size, |x, y| {
        let p = rgba.get_pixel(x, y).0;
        let a = p[3] as u32;
        let m = |c: u8| ((c as u32 * a + 127) / 255) as u8;
        image::Rgb([m(p[0]), m(p[1]), m(p[2])])
    });
    let jpeg = encode_jpeg(&rgb, 80)?;
    let small = image::imageops::resize(&rgb, 96, 96, image::imageops::FilterType::Triangle);
    let preview = encode_jpeg(&small, 80)?;
    Ok(Processed {
        jpeg,
        preview,
        edge: size,
        uploaded_format: format_name(format),
        uploaded_width: w,
        uploaded_height: h,
    })
}

fn new_picture_id(previous: Option<&str>) -> String {
    loop {
        let id = rand::random_range(1_000_000_000u64..2_000_000_000).to_string();
        if Some(id.as_str()) != previous {
            return id;
        }
    }
}

/// `POST /user/avatar`.
pub async fn post_avatar(State(state): State<Arc<AppState>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let bytes = match axum::body::to_bytes(body, BODY_LIMIT).await {
        Ok(b) => b,
        Err(_) => return text(StatusCode::PAYLOAD_TOO_LARGE, "Request Entity Too Large"),
    };
    let q = parts.uri.query().unwrap_or("").to_string();
    let dev = match select(&state, &parts.headers, query_last(&q, "device_id")) {
        Ok(d) => d,
        Err(r) => return r,
    };
    let faults = state.faults();
    faults.delay().await;
    let content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .unwrap_or_default();
    if !bindable(&content_type) {
        return internal("Unprocessable Entity");
    }
    let upload = match form_file(parts, bytes, &content_type).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    if dev.state == DeviceState::NoClient {
        return no_client();
    }
    if let Err(r) = must_login(&dev, faults.draw_not_connected()) {
        return r;
    }
    let data = upload.clone();
    let processed = match tokio::task::spawn_blocking(move || process(&data)).await {
        Ok(Ok(p)) => p,
        Ok(Err(e)) => return internal(&e),
        Err(_) => return internal("failed to process image"),
    };
    match faults.draw() {
        Some(Injected::Timeout(ms)) => {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            return reply(
                StatusCode::GATEWAY_TIMEOUT,
                "GATEWAY_TIMEOUT",
                "Request timed out waiting for WhatsApp server response",
            );
        }
        Some(Injected::RateOverlimit) => {
            return internal("info query returned status 429: rate-overlimit");
        }
        Some(Injected::InternalError) => {
            return internal("info query returned status 500: internal-server-error");
        }
        None => {}
    }
    store(&state, &dev, &upload, processed);
    success::<()>("Success change avatar", None)
}

/// fasthttp's `FormFile("avatar")`.
async fn form_file(
    parts: axum::http::request::Parts,
    bytes: Bytes,
    content_type: &str,
) -> Result<Bytes, Response> {
    let essence = content_type.split(';').next().unwrap_or("").trim();
    if !essence.eq_ignore_ascii_case("multipart/form-data") || !content_type.contains("boundary=") {
        return Err(internal("request has no multipart/form-data Content-Type"));
    }
    let req = Request::from_parts(parts, Body::from(bytes));
    let mut mp = match Multipart::from_request(req, &()).await {
        Ok(m) => m,
        Err(_) => return Err(internal("request has no multipart/form-data Content-Type")),
    };
    loop {
        match mp.next_field().await {
            Ok(Some(field)) => {
                if field.name() == Some("avatar") && field.file_name().is_some() {
                    return field.bytes().await.map_err(|e| {
                        internal(&format!("cannot read multipart/form-data body: {e}"))
                    });
                }
            }
            Ok(None) => {
                return Err(internal(
                    "there is no uploaded file associated with the given key",
                ));
            }
            Err(e) => {
                return Err(internal(&format!(
                    "cannot read multipart/form-data body: {e}"
                )));
            }
        }
    }
}

fn store(state: &AppState, dev: &Selected, upload: &[u8], p: Processed) {
    let mut devices = write(&state.devices);
    let previous = devices
        .get(&dev.id)
        .and_then(|d| d.avatar.as_ref().map(|a| a.id.clone()));
    let id = new_picture_id(previous.as_deref());
    let avatar = OwnAvatar {
        id: id.clone(),
        width: p.edge,
        height: p.edge,
        format: "jpeg",
        size: p.jpeg.len(),
        sha256: sha256_hex(&p.jpeg),
        uploaded_format: p.uploaded_format,
        uploaded_width: p.uploaded_width,
        uploaded_height: p.uploaded_height,
        uploaded_size: upload.len(),
        uploaded_sha256: sha256_hex(upload),
    };
    let jid = devices
        .get_mut(&dev.id)
        .map(|d| {
            d.avatar = Some(Arc::new(avatar));
            d.jid.clone()
        })
        .unwrap_or_else(|| dev.jid.clone());
    drop(devices);
    write(&state.uploads).insert(
        id.clone(),
        Arc::new(StoredPicture {
            full: Bytes::from(p.jpeg),
            preview: Bytes::from(p.preview),
        }),
    );
    write(&state.contacts).insert(world_key(&bare(&jid)), Outcome::Set { id });
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use image::{DynamicImage, ImageFormat, Rgba, RgbaImage};

    use super::*;

    fn encode(img: &DynamicImage, f: ImageFormat) -> Vec<u8> {
        let mut out = Cursor::new(Vec::new());
        img.write_to(&mut out, f).expect("encode");
        out.into_inner()
    }

    #[test]
    fn every_gateway_format_is_sniffed_decoded_and_cropped() {
        let img = DynamicImage::ImageRgba8(RgbaImage::from_pixel(50, 70, Rgba([200, 10, 10, 255])));
        for (f, name) in [
            (ImageFormat::Jpeg, "jpeg"),
            (ImageFormat::Png, "png"),
            (ImageFormat::Gif, "gif"),
            (ImageFormat::Bmp, "bmp"),
            (ImageFormat::Tiff, "tiff"),
            (ImageFormat::WebP, "webp"),
        ] {
            let input = if f == ImageFormat::Jpeg {
                encode(&DynamicImage::ImageRgb8(img.to_rgb8()), f)
            } else {
                encode(&img, f)
            };
            assert_eq!(sniff(&input), Some(f), "{name}");
            let p = process(&input).expect(name);
            assert_eq!((p.edge, p.uploaded_format), (50, name));
            assert_eq!((p.uploaded_width, p.uploaded_height), (50, 70));
            let out =
                image::load_from_memory_with_format(&p.jpeg, ImageFormat::Jpeg).expect("jpeg");
            assert_eq!((out.width(), out.height()), (50, 50));
        }
    }

    #[test]
    fn transparent_pixels_become_black_and_garbage_is_unknown() {
        let img = DynamicImage::ImageRgba8(RgbaImage::from_pixel(8, 8, Rgba([255, 255, 255, 0])));
        let p = process(&encode(&img, ImageFormat::Png)).expect("png");
        let out = image::load_from_memory(&p.jpeg).expect("jpeg").to_rgb8();
        assert!(out.get_pixel(4, 4).0.iter().all(|c| *c < 10));
        assert_eq!(
            process(b"GIF").unwrap_err(),
            "failed to decode image: image: unknown format"
        );
        assert_eq!(sniff(b"RIFF\0\0\0\0WEBPVP8 "), Some(ImageFormat::WebP));
        assert_eq!(
            process(b"\xff\xd8\xff\xe0garbage").unwrap_err(),
            "failed to decode image: unexpected EOF"
        );
    }
}
