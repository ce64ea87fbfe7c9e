//! GOWA's device routes (src/ui/rest/device.go, src/usecase/device.go). They are registered
//! before the device middleware, so they need no `X-Device-Id`. Path ids are used as sent
//! (Fiber does not unescape path parameters).
//!
//! * `GET /devices` → `[{id, phone_number?, display_name?, state, jid?, created_at}]`
//!   (`convertInstance`): `phone_number` is never set by GOWA, `jid` is the bare JID of a paired
//!   slot; no slots → `"results":null` (a nil slice inside `any` is not omitted);
//! * `POST /devices` → a map, so keys come out sorted: `created_at, display_name, id, jid,
//!   state` (+ `webhook_*` when a webhook field was given);
//! * `GET /devices/{id}` → one `convertInstance` ("Device info"); unknown → 500;
//! * `DELETE /devices/{id}` → "Device removed" without results, also for an unknown id;
//! * `GET /devices/{id}/status` → `{device_id, is_connected, is_logged_in}`, both false for a
//!   slot whose client was never paired (`Store.ID == nil`); unknown → 500.

use std::collections::BTreeMap;

use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use bytes::Bytes;
use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::bind::{BodyKind, body_kind, json_syntax_error};
use crate::devices::{Device, DeviceState};
use crate::envelope::{reply, reply_with, success};
use crate::errors::{internal, validation};
use crate::state::{AppState, read, write};
use crate::util::query_args;

#[derive(Serialize)]
struct DeviceInfo<'a> {
    id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    display_name: Option<&'a str>,
    state: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    jid: Option<String>,
    created_at: &'a str,
}

fn info(d: &Device) -> DeviceInfo<'_> {
    DeviceInfo {
        id: &d.id,
        display_name: d.display_name.as_deref().filter(|n| !n.is_empty()),
        state: d.state.gateway_state(),
        jid: d.state.paired().then(|| d.bare_jid()),
        created_at: &d.created_at,
    }
}

/// `GET /devices`.
pub fn list(state: &AppState) -> Response {
    let devices = read(&state.devices);
    if devices.list.is_empty() {
        return reply_with(StatusCode::OK, "SUCCESS", "List devices", &Value::Null);
    }
    let items: Vec<DeviceInfo<'_>> = devices.list.iter().map(info).collect();
    success("List devices", Some(&items))
}

/// The fields of `AddDevice`'s request struct.
#[derive(Default)]
struct AddDevice {
    device_id: String,
    webhook_url: String,
    webhook_secret: String,
    webhook_events: String,
    webhook_insecure_skip_verify: bool,
}

impl AddDevice {
    fn has_webhook(&self) -> bool {
        !self.webhook_url.is_empty()
            || !self.webhook_secret.is_empty()
            || !self.webhook_events.is_empty()
            || self.webhook_insecure_skip_verify
    }

    /// Sets a field from its name (JSON tag or, for form bodies, Go field name); false on a
    /// value of the wrong type.
    fn set(&mut self, name: &str, value: &Value) -> bool {
        let text = |v: &Value| match v {
            Value::String(s) => Some(s.clone()),
            Value::Null => Some(String::new()),
            _ => None,
        };
        let field = match name.to_ascii_lowercase().replace('_', "").as_str() {
            "deviceid" => &mut self.device_id,
            "webhookurl" => &mut self.webhook_url,
            "webhooksecret" => &mut self.webhook_secret,
            "webhookevents" => &mut self.webhook_events,
            "webhookinsecureskipverify" => {
                return match value {
                    Value::Bool(b) => {
                        self.webhook_insecure_skip_verify = *b;
                        true
                    }
                    Value::Null => true,
                    _ => false,
                };
            }
            _ => return true,
        };
        match text(value) {
            Some(s) => {
                *field = s;
                true
            }
            None => false,
        }
    }
}

/// `c.Bind().Body(&req)`: JSON keys match case-insensitively (encoding/json); form bodies bind by
/// Go field name (`DeviceID=…`), since the struct has no `form` tags; `None` is a bind error.
fn bind_add(headers: &HeaderMap, body: &[u8]) -> Option<AddDevice> {
    let mut req = AddDevice::default();
    match body_kind(headers) {
        BodyKind::Json => {
            if !json_syntax_error(body).is_empty() {
                return None;
            }
            match serde_json::from_slice::<Value>(body).ok()? {
                Value::Null => {}
                Value::Object(fields) => {
                    for (k, v) in &fields {
                        let json_name = k.eq_ignore_ascii_case("device_id")
                            || k.to_ascii_lowercase().starts_with("webhook_");
                        if json_name && !req.set(k, v) {
                            return None;
                        }
                    }
                }
                _ => return None,
            }
        }
        BodyKind::Form => {
            let text = String::from_utf8_lossy(body);
            for (k, v) in query_args(&text) {
                if !k.contains('_') && !req.set(&k, &Value::String(v)) {
                    return None;
                }
            }
        }
        _ => return None,
    }
    Some(req)
}

/// `POST /devices`: a new slot without client.
pub fn add(state: &AppState, headers: &HeaderMap, body: &Bytes) -> Response {
    let Some(req) = bind_add(headers, body) else {
        return reply(
            StatusCode::BAD_REQUEST,
            "BAD_REQUEST",
            "Invalid request body",
        );
    };
    let id = if req.device_id.is_empty() {
        new_uuid()
    } else {
        req.device_id.clone()
    };
    let mut devices = write(&state.devices);
    if devices.get(&id).is_some() {
        return internal(&format!("device {id} already exists"));
    }
    let d = devices.add(id, DeviceState::NoClient, None);
    let mut results: BTreeMap<&str, Value> = BTreeMap::new();
    results.insert("id", json!(d.id));
    results.insert("display_name", json!(""));
    results.insert("jid", json!(""));
    results.insert("state", json!(d.state.gateway_state()));
    results.insert("created_at", json!(d.created_at));
    if req.has_webhook() {
        results.insert("webhook_url", json!(req.webhook_url));
        results.insert("webhook_secret", json!(req.webhook_secret));
        results.insert("webhook_events", json!(req.webhook_events));
        results.insert(
            "webhook_insecure_skip_verify",
            json!(req.webhook_insecure_skip_verify),
        );
    }
    let results: Map<String, Value> = results
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    success("Device added", Some(&results))
}

/// `DELETE /devices/{id}`.
pub fn remove(state: &AppState, id: &str) -> Response {
    if id.trim().is_empty() {
        return validation("device_id is required");
    }
    write(&state.devices).remove(id);
    success::<()>("Device removed", None)
}

/// `GET /devices/{id}`.
pub fn get_info(state: &AppState, id: &str) -> Response {
    match read(&state.devices).get(id) {
        Some(d) => success("Device info", Some(&info(d))),
        None => internal(&format!("device {id} not found")),
    }
}

/// `GET /devices/{id}/status`.
pub fn get_status(state: &AppState, id: &str) -> Response {
    let devices = read(&state.devices);
    let Some(d) = devices.get(id) else {
        return internal(&format!("device {id} not found"));
    };
    let (connected, logged_in) = match d.state {
        DeviceState::LoggedIn => (true, true),
        DeviceState::Disconnected | DeviceState::NotLoggedIn | DeviceState::NoClient => {
            (false, false)
        }
    };
    success(
        "Device status",
        Some(&json!({ "device_id": id, "is_connected": connected, "is_logged_in": logged_in })),
    )
}

fn new_uuid() -> String {
    let b: [u8; 16] = rand::random();
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    let version = format!("4{}", &h[13..16]);
    let variant = format!("{:x}{}", 0x8 | (b[8] >> 4 & 0x3), &h[17..20]);
    format!(
        "{}-{}-{version}-{variant}-{}",
        &h[0..8],
        &h[8..12],
        &h[20..32]
    )
}
