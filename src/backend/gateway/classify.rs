//! Reading the gateway's answers. GOWA reports most WhatsApp outcomes as HTTP 500 with whatsmeow's error
//! text, so the text decides; the table in `docs/protocol.md` lists every answer and its outcome.

use serde::Deserialize;

use crate::backend::Lookup;
use crate::protocol::{AvatarInfo, ErrorCode, JobError};

/// `{"code", "message", "results"?}`: the gateway's JSON reply.
#[derive(Debug, Deserialize)]
struct Reply {
    code: String,
    #[serde(default)]
    message: String,
    #[serde(default)]
    results: Option<serde_json::Value>,
}

/// The answer to `GET /user/avatar`.
pub fn classify_get(status: u16, content_type: &str, body: &[u8]) -> Result<Lookup, JobError> {
    let reply = reply(status, content_type, body)?;
    if status == 200 && reply.code == "SUCCESS" {
        let info: AvatarInfo = reply
            .results
            .and_then(|results| serde_json::from_value(results).ok())
            .ok_or_else(|| {
                JobError::new(
                    ErrorCode::GatewayError,
                    "gateway answered SUCCESS without {url, id, type}",
                )
                .with_retryable(false)
            })?;
        return Ok(Lookup::Picture(info));
    }
    let message = reply.message.as_str();
    if status == 500 && reply.code == "INTERNAL_SERVER_ERROR" {
        if message.contains("does not have a profile picture") || message == "no avatar found" {
            return Ok(Lookup::NotSet);
        }
        if message.contains("hidden their profile picture") {
            return Ok(Lookup::Hidden);
        }
    }
    Err(error_from(status, &reply))
}

/// The answer to `POST /user/avatar`.
pub fn classify_set(status: u16, content_type: &str, body: &[u8]) -> Result<(), JobError> {
    let reply = reply(status, content_type, body)?;
    if status == 200 && reply.code == "SUCCESS" {
        return Ok(());
    }
    Err(error_from(status, &reply))
}

/// Parses the JSON reply, or explains a non-JSON answer (Basic-auth failures, proxies, body limits).
fn reply(status: u16, content_type: &str, body: &[u8]) -> Result<Reply, JobError> {
    let is_json = content_type.starts_with("application/json");
    if let Some(reply) = is_json
        .then(|| serde_json::from_slice::<Reply>(body).ok())
        .flatten()
    {
        return Ok(reply);
    }
    let text = String::from_utf8_lossy(&body[..body.len().min(200)])
        .trim()
        .to_string();
    let error = match status {
        401 => JobError::new(
            ErrorCode::GatewayUnauthorized,
            "gateway refused the credentials (HTTP 401): check gateway.username and gateway.password",
        ),
        400 | 431 => JobError::new(
            ErrorCode::GatewayUnauthorized,
            format!("gateway refused the Authorization header (HTTP {status} {text})"),
        ),
        413 => JobError::new(
            ErrorCode::ImageTooLarge,
            "gateway refused the upload as too large (HTTP 413)",
        ),
        429 => JobError::new(ErrorCode::RateLimited, format!("HTTP 429 {text}")),
        504 => JobError::new(ErrorCode::Timeout, format!("HTTP 504 {text}")),
        500..=599 => JobError::new(ErrorCode::GatewayError, format!("HTTP {status} {text}")),
        _ => JobError::new(
            ErrorCode::GatewayError,
            format!("unexpected HTTP {status} answer that is not the gateway's JSON: {text}"),
        )
        .with_retryable(false),
    };
    Err(error)
}

fn error_from(status: u16, reply: &Reply) -> JobError {
    let message = reply.message.as_str();
    let said = format!("gateway answered {status} {}: {message}", reply.code);
    let code = match (status, reply.code.as_str()) {
        (_, "VALIDATION_ERROR") => ErrorCode::InvalidPhone,
        (_, "INVALID_JID") if message.contains("is not on whatsapp") => ErrorCode::NotOnWhatsapp,
        (_, "INVALID_JID") => ErrorCode::InvalidPhone,
        (_, "DEVICE_ID_REQUIRED") => ErrorCode::DeviceRequired,
        (_, "DEVICE_NOT_FOUND" | "NOT_FOUND") => ErrorCode::DeviceNotFound,
        (_, "AUTHENTICATION_ERROR") if message.contains("not connect") => {
            ErrorCode::DeviceDisconnected
        }
        // A slot with no client was never paired or was logged out: a person must log it in again.
        (_, "AUTHENTICATION_ERROR" | "INVALID_WA_CLI") => ErrorCode::DeviceNotLoggedIn,
        (_, "CONTEXT_ERROR" | "GATEWAY_TIMEOUT") | (408 | 504, _) => ErrorCode::Timeout,
        (_, "WA_REACHOUT_TIMELOCK") | (429, _) => ErrorCode::RateLimited,
        (_, "INTERNAL_SERVER_ERROR") => return internal_error(message, said),
        (500..=599, _) => ErrorCode::GatewayError,
        _ => return JobError::new(ErrorCode::GatewayError, said).with_retryable(false),
    };
    JobError::new(code, said)
}

/// Plain whatsmeow and Fiber errors, told apart by their text.
fn internal_error(message: &str, said: String) -> JobError {
    let code = if message.contains("rate-overlimit") || message.contains("status 429") {
        ErrorCode::RateLimited
    } else if message.contains("failed to decode image") || message.contains("not a valid image") {
        ErrorCode::InvalidImage
    } else if message.starts_with("invalid JID") {
        ErrorCode::InvalidPhone
    } else if message.starts_with("bind \"")
        || message == "Unprocessable Entity"
        || message.contains("no uploaded file")
    {
        // The request itself was malformed: a bug on our side, and retrying cannot help.
        return JobError::new(ErrorCode::Internal, said).with_retryable(false);
    } else {
        ErrorCode::GatewayError
    };
    JobError::new(code, said)
}

#[cfg(test)]
mod tests {
    use super::*;

    const JSON: &str = "application/json; charset=utf-8";
    const TEXT: &str = "text/plain; charset=utf-8";

    fn body(code: &str, message: &str) -> Vec<u8> {
        serde_json::json!({"code": code, "message": message})
            .to_string()
            .into_bytes()
    }

    /// Every answer of gowa-avatar-api.md §1–§6 that `GET /user/avatar` can give.
    #[test]
    fn maps_every_get_answer() {
        use ErrorCode::*;
        type Row<'a> = (
            u16,
            &'a str,
            &'a str,
            &'a str,
            Result<&'a str, (ErrorCode, bool)>,
        );
        let rows: Vec<Row> = vec![
            (
                500,
                JSON,
                "INTERNAL_SERVER_ERROR",
                "that user or group does not have a profile picture",
                Ok("not_set"),
            ),
            (
                500,
                JSON,
                "INTERNAL_SERVER_ERROR",
                "no avatar found",
                Ok("not_set"),
            ),
            (
                500,
                JSON,
                "INTERNAL_SERVER_ERROR",
                "the user has hidden their profile picture from you",
                Ok("hidden"),
            ),
            (
                500,
                JSON,
                "INTERNAL_SERVER_ERROR",
                "info query returned status 429: rate-overlimit",
                Err((RateLimited, true)),
            ),
            (
                500,
                JSON,
                "INTERNAL_SERVER_ERROR",
                "info query returned status 400: bad-request",
                Err((GatewayError, true)),
            ),
            (
                500,
                JSON,
                "INTERNAL_SERVER_ERROR",
                "invalid JID x.y.z@s.whatsapp.net: unexpected number of dots in JID",
                Err((InvalidPhone, false)),
            ),
            (
                500,
                JSON,
                "INTERNAL_SERVER_ERROR",
                "bind \"is_preview\" from query: schema: error converting value for \"is_preview\"",
                Err((Internal, false)),
            ),
            (
                500,
                JSON,
                "INVALID_WA_CLI",
                "your WhatsApp CLI is invalid or empty",
                Err((DeviceNotLoggedIn, false)),
            ),
            (
                400,
                JSON,
                "VALIDATION_ERROR",
                "phone: cannot be blank.",
                Err((InvalidPhone, false)),
            ),
            (
                400,
                JSON,
                "INVALID_JID",
                "Phone 628xx@s.whatsapp.net is not on whatsapp",
                Err((NotOnWhatsapp, false)),
            ),
            (
                400,
                JSON,
                "DEVICE_ID_REQUIRED",
                "device_id is required via X-Device-Id header or device_id query",
                Err((DeviceRequired, false)),
            ),
            (
                404,
                JSON,
                "DEVICE_NOT_FOUND",
                "device not found; create a device first from /api/devices or provide a valid X-Device-Id",
                Err((DeviceNotFound, false)),
            ),
            (
                401,
                JSON,
                "AUTHENTICATION_ERROR",
                "you are not connect to services server, please reconnect",
                Err((DeviceDisconnected, true)),
            ),
            (
                401,
                JSON,
                "AUTHENTICATION_ERROR",
                "you are not logged in",
                Err((DeviceNotLoggedIn, false)),
            ),
            (
                408,
                JSON,
                "CONTEXT_ERROR",
                "Error timeout get avatar!",
                Err((Timeout, true)),
            ),
            (
                504,
                JSON,
                "GATEWAY_TIMEOUT",
                "Request timed out waiting for WhatsApp server response",
                Err((Timeout, true)),
            ),
            (
                503,
                JSON,
                "DEVICE_MANAGER_UNAVAILABLE",
                "Device manager is not initialized",
                Err((GatewayError, true)),
            ),
            (
                401,
                TEXT,
                "",
                "Unauthorized",
                Err((GatewayUnauthorized, false)),
            ),
            (
                400,
                TEXT,
                "",
                "Bad Request",
                Err((GatewayUnauthorized, false)),
            ),
            (
                431,
                TEXT,
                "",
                "Request Header Fields Too Large",
                Err((GatewayUnauthorized, false)),
            ),
            (
                502,
                "text/html",
                "",
                "<html>bad gateway</html>",
                Err((GatewayError, true)),
            ),
            (
                404,
                TEXT,
                "",
                "Cannot GET /user/avatar",
                Err((GatewayError, false)),
            ),
        ];
        for (status, content_type, code, message, expected) in rows {
            let raw = if content_type == JSON {
                body(code, message)
            } else {
                message.as_bytes().to_vec()
            };
            let got = classify_get(status, content_type, &raw);
            match (got, expected) {
                (Ok(Lookup::NotSet), Ok("not_set")) | (Ok(Lookup::Hidden), Ok("hidden")) => {}
                (Err(err), Err((code, retryable))) => {
                    assert_eq!(
                        (err.code, err.retryable),
                        (code, retryable),
                        "{status} {message}"
                    );
                    assert!(
                        err.message
                            .contains(message.split(';').next().unwrap_or(message))
                            || content_type != JSON
                    );
                }
                (got, expected) => panic!("{status} {message}: got {got:?}, expected {expected:?}"),
            }
        }
    }

    #[test]
    fn reads_a_picture() {
        let raw = br#"{"code":"SUCCESS","message":"Success get avatar","results":{"url":"https://pps.whatsapp.net/v/x.jpg?ccb=11-4\u0026oh=1\u0026oe=2","id":"1635239861","type":"image"}}"#;
        let Ok(Lookup::Picture(info)) = classify_get(200, JSON, raw) else {
            panic!()
        };
        assert_eq!(info.id, "1635239861");
        assert_eq!(info.kind, "image");
        assert!(info.url.contains("&oh=1&oe=2"));
        let broken = classify_get(200, JSON, br#"{"code":"SUCCESS","message":"Success"}"#);
        assert_eq!(broken.unwrap_err().code, ErrorCode::GatewayError);
    }

    #[test]
    fn maps_every_set_answer() {
        use ErrorCode::*;
        assert!(
            classify_set(
                200,
                JSON,
                br#"{"code":"SUCCESS","message":"Success change avatar"}"#
            )
            .is_ok()
        );
        let rows = [
            (
                500,
                JSON,
                "INTERNAL_SERVER_ERROR",
                "failed to decode image: image: unknown format",
                InvalidImage,
            ),
            (
                500,
                JSON,
                "INTERNAL_SERVER_ERROR",
                "the given data is not a valid image",
                InvalidImage,
            ),
            (
                500,
                JSON,
                "INTERNAL_SERVER_ERROR",
                "Unprocessable Entity",
                Internal,
            ),
            (
                500,
                JSON,
                "INTERNAL_SERVER_ERROR",
                "there is no uploaded file associated with the given key",
                Internal,
            ),
            (
                500,
                JSON,
                "INVALID_WA_CLI",
                "your WhatsApp CLI is invalid or empty",
                DeviceNotLoggedIn,
            ),
            (
                401,
                JSON,
                "AUTHENTICATION_ERROR",
                "you are not logged in",
                DeviceNotLoggedIn,
            ),
            (
                504,
                JSON,
                "GATEWAY_TIMEOUT",
                "Request timed out waiting for WhatsApp server response",
                Timeout,
            ),
            (413, TEXT, "", "Request Entity Too Large", ImageTooLarge),
        ];
        for (status, content_type, code, message, expected) in rows {
            let raw = if content_type == JSON {
                body(code, message)
            } else {
                message.as_bytes().to_vec()
            };
            assert_eq!(
                classify_set(status, content_type, &raw).unwrap_err().code,
                expected,
                "{message}"
            );
        }
    }
}
