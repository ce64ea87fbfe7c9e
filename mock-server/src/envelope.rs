//! The gateway's response envelope `{code, message, results?}` and its plain-text answers.
//!
//! The body is produced like Go's `encoding/json`: key order `code`, `message`, `results`,
//! `results` omitted when absent, and `&`, `<`, `>`, U+2028, U+2029 escaped as `\u0026` etc.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// `Content-Type` of every JSON answer.
pub const JSON_CONTENT_TYPE: &str = "application/json; charset=utf-8";
/// `Content-Type` of Fiber's plain-text answers.
pub const TEXT_CONTENT_TYPE: &str = "text/plain; charset=utf-8";

#[derive(Serialize)]
struct Body<'a, T: Serialize> {
    code: &'a str,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    results: Option<&'a T>,
}

/// Serialises like Go's `json.Marshal` with HTML escaping.
pub fn go_json<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    let raw = match serde_json::to_vec(value) {
        Ok(raw) => raw,
        Err(e) => {
            return format!(
                "{{\"code\":\"INTERNAL_SERVER_ERROR\",\"message\":\"json: {}\"}}",
                e.to_string().replace('"', "'")
            )
            .into_bytes();
        }
    };
    go_escape(raw)
}

fn go_escape(raw: Vec<u8>) -> Vec<u8> {
    // `&<>` and U+2028/U+2029 (E2 80 A8/A9) can only appear inside JSON strings.
    let needs = raw.iter().any(|b| matches!(b, b'&' | b'<' | b'>' | 0xE2));
    if !needs {
        return raw;
    }
    let mut out = Vec::with_capacity(raw.len() + 16);
    let mut i = 0;
    while i < raw.len() {
        let b = raw[i];
        match b {
            b'&' => out.extend_from_slice(b"\\u0026"),
            b'<' => out.extend_from_slice(b"\\u003c"),
            b'>' => out.extend_from_slice(b"\\u003e"),
            0xE2 if i + 2 < raw.len()
                && raw[i + 1] == 0x80
                && matches!(raw[i + 2], 0xA8 | 0xA9) =>
            {
                out.extend_from_slice(if raw[i + 2] == 0xA8 {
                    b"\\u2028"
                } else {
                    b"\\u2029"
                });
                i += 2;
            }
            _ => out.push(b),
        }
        i += 1;
    }
    out
}

/// A JSON answer with the given status.
pub fn json_response(status: StatusCode, body: Vec<u8>) -> Response {
    let mut resp = (status, body).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(JSON_CONTENT_TYPE),
    );
    resp
}

/// `{code, message}` without results.
pub fn reply(status: StatusCode, code: &str, message: &str) -> Response {
    json_response(
        status,
        go_json(&Body::<()> {
            code,
            message,
            results: None,
        }),
    )
}

/// `{code, message, results}`.
pub fn reply_with<T: Serialize>(
    status: StatusCode,
    code: &str,
    message: &str,
    results: &T,
) -> Response {
    json_response(
        status,
        go_json(&Body {
            code,
            message,
            results: Some(results),
        }),
    )
}

/// 200 `SUCCESS` with a message and optional results.
pub fn success<T: Serialize>(message: &str, results: Option<&T>) -> Response {
    match results {
        Some(r) => reply_with(StatusCode::OK, "SUCCESS", message, r),
        None => reply(StatusCode::OK, "SUCCESS", message),
    }
}

/// A Fiber plain-text answer such as `Unauthorized` or `Request Entity Too Large`.
pub fn text(status: StatusCode, body: &'static str) -> Response {
    let mut resp = (status, body).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(TEXT_CONTENT_TYPE),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_like_go() {
        let v = serde_json::json!({"url": "a?x=1&y=<2>\u{2028}"});
        assert_eq!(
            String::from_utf8(go_json(&v)).unwrap(),
            r#"{"url":"a?x=1\u0026y=\u003c2\u003e\u2028"}"#
        );
    }
}
