//! Basic auth as GOWA configures Fiber v3.4's `basicauth` (src/cmd/rest.go
//! `newBasicAuthMiddleware`, fiber `middleware/basicauth/basicauth.go` `New`), step by step:
//!
//! 1. no (or an empty) `Authorization` header → 401;
//! 2. longer than 8192 bytes → 431 `Request Header Fields Too Large`;
//! 3. a control character other than tab, DEL or any non-ASCII byte → 400;
//! 4. trimmed of ASCII whitespace: empty → 401; not starting with `Basic` (any case) → 401;
//! 5. `Basic` not followed by exactly one space and a value (`Basic`, `Basicxyz`, `Basic  x`) → 400;
//! 6. whitespace inside the value → 400;
//! 7. base64 with padding, else (Go `RawStdEncoding`) without; neither → 400; not UTF-8 → 400;
//! 8. no `:` → 400; a control character in user or password → 400;
//! 9. unknown user or wrong password (constant-time) → 401.
//!
//! 401 is text/plain `Unauthorized` with `WWW-Authenticate: Basic realm="Restricted",
//! charset="UTF-8"`, `Cache-Control: no-store`, `Vary: Authorization`; 400 is `Bad Request`.
//! Fiber NFC-normalises the decoded credentials; the mock compares them as sent (the same for
//! ASCII credentials). No credentials configured → no auth at all; `GET /health` and the CDN
//! skip it.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use base64::Engine;
use base64::alphabet::STANDARD;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};

use crate::envelope::text;
use crate::routes::is_public;
use crate::state::{AppState, read};

/// The authenticated user, attached to the response for the request log.
#[derive(Debug, Clone)]
pub struct AuthUser(pub String);

/// Fiber's default `HeaderLimit`.
pub const HEADER_LIMIT: usize = 8192;

/// Go's `base64.StdEncoding` (padding required, trailing bits allowed).
const PADDED: GeneralPurpose = GeneralPurpose::new(
    &STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(DecodePaddingMode::RequireCanonical),
);
/// Go's `base64.RawStdEncoding` (no padding).
const UNPADDED: GeneralPurpose = GeneralPurpose::new(
    &STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(DecodePaddingMode::RequireNone),
);

enum Verdict {
    Ok(String),
    Unauthorized,
    BadRequest,
    TooLarge,
}

fn unauthorized() -> Response {
    let mut r = text(StatusCode::UNAUTHORIZED, "Unauthorized");
    let h = r.headers_mut();
    h.insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"Restricted\", charset=\"UTF-8\""),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::VARY, HeaderValue::from_static("Authorization"));
    r
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn check(state: &AppState, raw: &[u8]) -> Verdict {
    if raw.is_empty() {
        return Verdict::Unauthorized;
    }
    if raw.len() > HEADER_LIMIT {
        return Verdict::TooLarge;
    }
    if raw
        .iter()
        .any(|&b| (b < 0x20 && b != b'\t') || b == 0x7f || b >= 0x80)
    {
        return Verdict::BadRequest;
    }
    let auth = raw.trim_ascii();
    if auth.len() < 5 || !auth[..5].eq_ignore_ascii_case(b"Basic") {
        return Verdict::Unauthorized;
    }
    let rest = &auth[5..];
    if rest.len() < 2 || rest[0] != b' ' || rest[1] == b' ' {
        return Verdict::BadRequest;
    }
    let creds = &rest[1..];
    // Only space and tab can remain after step 3.
    if creds.iter().any(|&b| b == b' ' || b == b'\t') {
        return Verdict::BadRequest;
    }
    let Ok(decoded) = PADDED.decode(creds).or_else(|_| UNPADDED.decode(creds)) else {
        return Verdict::BadRequest;
    };
    let Ok(decoded) = String::from_utf8(decoded) else {
        return Verdict::BadRequest;
    };
    let Some((user, pass)) = decoded.split_once(':') else {
        return Verdict::BadRequest;
    };
    if user.chars().chain(pass.chars()).any(char::is_control) {
        return Verdict::BadRequest;
    }
    match read(&state.auth).get(user) {
        Some(expected) if constant_time_eq(expected.as_bytes(), pass.as_bytes()) => {
            Verdict::Ok(user.to_string())
        }
        _ => Verdict::Unauthorized,
    }
}

/// The middleware.
pub async fn basic_auth(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    if read(&state.auth).is_empty() || is_public(req.method(), req.uri().path()) {
        return next.run(req).await;
    }
    let raw = req
        .headers()
        .get(header::AUTHORIZATION)
        .map(|v| v.as_bytes())
        .unwrap_or_default();
    match check(&state, raw) {
        Verdict::Ok(user) => {
            let mut resp = next.run(req).await;
            resp.extensions_mut().insert(AuthUser(user));
            resp
        }
        Verdict::Unauthorized => unauthorized(),
        Verdict::BadRequest => text(StatusCode::BAD_REQUEST, "Bad Request"),
        Verdict::TooLarge => text(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "Request Header Fields Too Large",
        ),
    }
}
