//! Basic authentication exactly as the gateway's Fiber `basicauth` middleware (section 5).
//!
//! * no credentials configured → everything is open;
//! * `/health` and the CDN paths `/v/...` skip authentication;
//! * header longer than 8192 bytes → 431 text/plain;
//! * missing header, non-Basic scheme, unknown user or wrong password → 401 text/plain
//!   `Unauthorized` with `WWW-Authenticate`, `Cache-Control: no-store` and `Vary: Authorization`;
//! * malformed Basic value (whitespace, bad base64, invalid UTF-8, control characters, no `:`)
//!   → 400 text/plain `Bad Request`.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use base64::Engine;

use crate::envelope::text;
use crate::state::AppState;

/// The authenticated user, attached to the response for the request log.
#[derive(Debug, Clone)]
pub struct AuthUser(pub String);

/// Fiber's default header limit for the Authorization value.
pub const HEADER_LIMIT: usize = 8192;

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

fn check(state: &AppState, value: Option<&[u8]>) -> Verdict {
    let Some(raw) = value else {
        return Verdict::Unauthorized;
    };
    let auth = raw.trim_ascii();
    if auth.len() > HEADER_LIMIT {
        return Verdict::TooLarge;
    }
    if auth.len() <= 6 || !auth[..6].eq_ignore_ascii_case(b"basic ") {
        return Verdict::Unauthorized;
    }
    let creds = &auth[6..];
    if creds.is_empty()
        || creds
            .iter()
            .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
    {
        return Verdict::BadRequest;
    }
    let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(creds) else {
        return Verdict::BadRequest;
    };
    let Ok(decoded) = String::from_utf8(decoded) else {
        return Verdict::BadRequest;
    };
    if decoded.chars().any(char::is_control) {
        return Verdict::BadRequest;
    }
    let Some((user, pass)) = decoded.split_once(':') else {
        return Verdict::BadRequest;
    };
    match state.auth.get(user) {
        Some(expected) if constant_time_eq(expected.as_bytes(), pass.as_bytes()) => {
            Verdict::Ok(user.to_string())
        }
        _ => Verdict::Unauthorized,
    }
}

/// The middleware.
pub async fn basic_auth(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let path = req.uri().path();
    if state.auth.is_empty() || path == "/health" || path.starts_with("/v/") {
        return next.run(req).await;
    }
    let verdict = check(
        &state,
        req.headers()
            .get(header::AUTHORIZATION)
            .map(|v| v.as_bytes()),
    );
    match verdict {
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
