//! GOWA's device middleware (src/ui/rest/middleware/device.go `DeviceMiddleware`) and
//! `DeviceManager.ResolveDevice` (src/infrastructure/whatsapp/device_manager.go).
//!
//! The id is the `X-Device-Id` header, trimmed, then `url.QueryUnescape`d when that succeeds (so
//! `+` is a space and `dev%20` is `dev `); only when that is exactly empty, the first `device_id`
//! query value, trimmed. `ResolveDevice` trims again: `dev-a%20` is `dev-a`, and `%20` is no id
//! at all (the query is not consulted then). No id: the only slot, else 400
//! `DEVICE_ID_REQUIRED`. An id that matches nothing: 404 `DEVICE_NOT_FOUND` with the trimmed id.

use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;

use crate::devices::DeviceState;
use crate::envelope::{reply, reply_with};
use crate::state::{AppState, read};
use crate::util::{query_first, query_unescape};

/// What a handler needs of the selected device.
#[derive(Debug, Clone)]
pub struct Selected {
    pub id: String,
    pub jid: String,
    pub state: DeviceState,
}

/// The device id the middleware hands to `ResolveDevice`.
fn requested_id(headers: &HeaderMap, raw_query: &str) -> String {
    let header = headers
        .get("x-device-id")
        .map(|v| String::from_utf8_lossy(v.as_bytes()).trim().to_string())
        .unwrap_or_default();
    let id = query_unescape(&header).unwrap_or(header);
    if id.is_empty() {
        query_first(raw_query, "device_id")
            .map(|q| q.trim().to_string())
            .unwrap_or_default()
    } else {
        id
    }
}

/// Runs the middleware: the selected slot, or GOWA's answer.
pub fn select(
    state: &AppState,
    headers: &HeaderMap,
    raw_query: &str,
) -> Result<Selected, Response> {
    let requested = requested_id(headers, raw_query);
    let id = requested.trim();
    let devices = read(&state.devices);
    if let Some(d) = devices.resolve(id) {
        return Ok(Selected {
            id: d.id.clone(),
            jid: d.jid.clone(),
            state: d.state,
        });
    }
    if id.is_empty() {
        return Err(reply(
            StatusCode::BAD_REQUEST,
            "DEVICE_ID_REQUIRED",
            "device_id is required via X-Device-Id header or device_id query",
        ));
    }
    Err(reply_with(
        StatusCode::NOT_FOUND,
        "DEVICE_NOT_FOUND",
        "device not found; create a device first from /api/devices or provide a valid X-Device-Id",
        &serde_json::json!({ "device_id": id }),
    ))
}
