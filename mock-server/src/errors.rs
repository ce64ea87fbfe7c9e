//! GOWA's error answers: its typed errors (src/pkg/error/*.go) and what its `Recovery`
//! middleware (src/ui/rest/middleware/recovery.go) makes of a panic.

use axum::http::StatusCode;
use axum::response::Response;

use crate::envelope::reply;

/// `pkgError.ErrNotConnected`.
pub const NOT_CONNECTED: &str = "you are not connect to services server, please reconnect";
/// `pkgError.ErrNotLoggedIn`.
pub const NOT_LOGGED_IN: &str = "you are not logged in";
/// whatsmeow `ErrProfilePictureNotSet` (errors.go).
pub const NO_PICTURE: &str = "that user or group does not have a profile picture";
/// whatsmeow `ErrProfilePictureUnauthorized` (errors.go).
pub const HIDDEN: &str = "the user has hidden their profile picture from you";

/// 500 `INTERNAL_SERVER_ERROR` with an untyped error's text (`fmt.Sprintf("%v", err)`).
pub fn internal(message: &str) -> Response {
    reply(
        StatusCode::INTERNAL_SERVER_ERROR,
        "INTERNAL_SERVER_ERROR",
        message,
    )
}

/// 500 `INVALID_WA_CLI` (`pkgError.ErrWaCLI`).
pub fn no_client() -> Response {
    reply(
        StatusCode::INTERNAL_SERVER_ERROR,
        "INVALID_WA_CLI",
        "your WhatsApp CLI is invalid or empty",
    )
}

/// 401 `AUTHENTICATION_ERROR` (`pkgError.AuthError`).
pub fn auth(message: &str) -> Response {
    reply(StatusCode::UNAUTHORIZED, "AUTHENTICATION_ERROR", message)
}

/// 400 `VALIDATION_ERROR` (`pkgError.ValidationError`).
pub fn validation(message: &str) -> Response {
    reply(StatusCode::BAD_REQUEST, "VALIDATION_ERROR", message)
}

/// 400 `INVALID_JID` (`pkgError.InvalidJID`).
pub fn invalid_jid(message: &str) -> Response {
    reply(StatusCode::BAD_REQUEST, "INVALID_JID", message)
}

/// 408 `CONTEXT_ERROR` "Error timeout get avatar!" (usecase/user.go `Avatar`).
pub fn avatar_timeout() -> Response {
    reply(
        StatusCode::REQUEST_TIMEOUT,
        "CONTEXT_ERROR",
        "Error timeout get avatar!",
    )
}

/// 504 `GATEWAY_TIMEOUT`: a bare `context.DeadlineExceeded` reaching `Recovery`.
pub fn gateway_timeout() -> Response {
    reply(
        StatusCode::GATEWAY_TIMEOUT,
        "GATEWAY_TIMEOUT",
        "Request timed out waiting for WhatsApp server response",
    )
}
