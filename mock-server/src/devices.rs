//! Device slots, their states, the gateway's device selection (section 4) and the
//! `/devices` management routes.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::cdn::OwnAvatar;
use crate::envelope::{internal, reply, reply_with, success};
use crate::jid::USER_SERVER;
use crate::state::{AppState, read, write};
use crate::util::{query_unescape, rfc3339_now};

/// First number of the default device JIDs: device N gets `6281234500000 + N`.
pub const JID_BASE: u64 = 6_281_234_500_000;

/// State of a device slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceState {
    /// Paired and connected: everything works.
    LoggedIn,
    /// Paired but the websocket is down: 401 "you are not connect to services server, please reconnect".
    Disconnected,
    /// Connected but not paired (QR pending): 401 "you are not logged in".
    NotLoggedIn,
    /// Slot without a client (never paired, or logged out): 500 `INVALID_WA_CLI`.
    NoClient,
}

impl DeviceState {
    /// The `state` string of `GET /devices`.
    pub fn gateway_state(self) -> &'static str {
        match self {
            DeviceState::LoggedIn => "logged_in",
            DeviceState::NotLoggedIn => "connected",
            DeviceState::Disconnected | DeviceState::NoClient => "disconnected",
        }
    }
}

/// One device slot.
#[derive(Debug, Clone)]
pub struct Device {
    pub id: String,
    /// AD JID, e.g. `6281234500001:1@s.whatsapp.net`.
    pub jid: String,
    pub state: DeviceState,
    pub created_at: String,
    pub avatar: Option<Arc<OwnAvatar>>,
}

impl Device {
    /// `user@server` of the AD JID.
    pub fn bare_jid(&self) -> String {
        bare(&self.jid)
    }

    fn has_store_id(&self) -> bool {
        matches!(
            self.state,
            DeviceState::LoggedIn | DeviceState::Disconnected
        )
    }
}

/// Strips the device/agent part of a JID.
pub fn bare(jid: &str) -> String {
    match jid.split_once('@') {
        Some((user, server)) => {
            let user = user.split([':', '.']).next().unwrap_or(user);
            format!("{user}@{server}")
        }
        None => jid.to_string(),
    }
}

/// The slots, in creation order.
#[derive(Debug, Clone)]
pub struct Devices {
    pub list: Vec<Device>,
    next_index: u64,
}

/// The default AD JID of device number `n` (1-based).
pub fn default_jid(n: u64) -> String {
    format!("{}:1@{USER_SERVER}", JID_BASE + n)
}

impl Devices {
    /// The given ids, logged in, with default JIDs.
    pub fn new(ids: &[String]) -> Self {
        let mut d = Devices {
            list: Vec::new(),
            next_index: 1,
        };
        for id in ids {
            if d.get(id).is_none() {
                d.add(id.clone(), DeviceState::LoggedIn, None);
            }
        }
        d
    }

    pub fn get(&self, id: &str) -> Option<&Device> {
        self.list.iter().find(|d| d.id == id)
    }

    pub fn get_mut(&mut self, id: &str) -> Option<&mut Device> {
        self.list.iter_mut().find(|d| d.id == id)
    }

    /// Adds a slot; a missing JID gets the next default one.
    pub fn add(&mut self, id: String, state: DeviceState, jid: Option<String>) -> &Device {
        let n = self.next_index;
        self.next_index += 1;
        self.list.push(Device {
            id,
            jid: jid.unwrap_or_else(|| default_jid(n)),
            state,
            created_at: rfc3339_now(),
            avatar: None,
        });
        let last = self.list.len() - 1;
        &self.list[last]
    }

    pub fn remove(&mut self, id: &str) -> bool {
        let before = self.list.len();
        self.list.retain(|d| d.id != id);
        before != self.list.len()
    }

    /// `ResolveDevice`: exact id, then AD JID, then bare JID; with no id, the only slot.
    pub fn resolve(&self, id: Option<&str>) -> Option<&Device> {
        match id {
            Some(id) => self
                .list
                .iter()
                .find(|d| d.id == id)
                .or_else(|| self.list.iter().find(|d| d.jid == id))
                .or_else(|| self.list.iter().find(|d| d.bare_jid() == id)),
            None if self.list.len() == 1 => self.list.first(),
            None => None,
        }
    }
}

/// What a handler needs of the selected device.
#[derive(Debug, Clone)]
pub struct Selected {
    pub id: String,
    pub jid: String,
    pub state: DeviceState,
}

/// The gateway's device middleware: `X-Device-Id` (trimmed, then `url.QueryUnescape`d, so `+`
/// is a space) or else the `device_id` query value.
pub fn select(
    state: &AppState,
    headers: &HeaderMap,
    query_id: Option<String>,
) -> Result<Selected, Response> {
    let header_id = headers
        .get("x-device-id")
        .map(|v| String::from_utf8_lossy(v.as_bytes()).trim().to_string())
        .unwrap_or_default();
    let id = if header_id.is_empty() {
        query_id.map(|q| q.trim().to_string()).unwrap_or_default()
    } else {
        query_unescape(&header_id).unwrap_or(header_id)
    };
    let devices = read(&state.devices);
    let wanted = (!id.is_empty()).then_some(id.as_str());
    match devices.resolve(wanted) {
        Some(d) => Ok(Selected {
            id: d.id.clone(),
            jid: d.jid.clone(),
            state: d.state,
        }),
        None if wanted.is_some() => Err(reply_with(
            StatusCode::NOT_FOUND,
            "DEVICE_NOT_FOUND",
            "device not found; create a device first from /api/devices or provide a valid X-Device-Id",
            &serde_json::json!({ "device_id": id }),
        )),
        None => Err(reply(
            StatusCode::BAD_REQUEST,
            "DEVICE_ID_REQUIRED",
            "device_id is required via X-Device-Id header or device_id query",
        )),
    }
}

#[derive(Serialize)]
struct DeviceInfo<'a> {
    id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    phone_number: Option<String>,
    state: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    jid: Option<&'a str>,
    created_at: &'a str,
}

fn info(d: &Device) -> DeviceInfo<'_> {
    let paired = d.has_store_id();
    DeviceInfo {
        id: &d.id,
        phone_number: paired.then(|| {
            d.jid
                .split([':', '.', '@'])
                .next()
                .unwrap_or("")
                .to_string()
        }),
        state: d.state.gateway_state(),
        jid: paired.then_some(d.jid.as_str()),
        created_at: &d.created_at,
    }
}

#[derive(Serialize)]
struct DeviceStatus<'a> {
    device_id: &'a str,
    is_connected: bool,
    is_logged_in: bool,
}

fn status(d: &Device) -> DeviceStatus<'_> {
    DeviceStatus {
        device_id: &d.id,
        is_connected: matches!(d.state, DeviceState::LoggedIn | DeviceState::NotLoggedIn),
        is_logged_in: d.state == DeviceState::LoggedIn,
    }
}

/// `GET /devices`: `results` omitted when there are no devices.
pub async fn list(State(state): State<Arc<AppState>>) -> Response {
    let devices = read(&state.devices);
    if devices.list.is_empty() {
        return success::<()>("List devices", None);
    }
    let items: Vec<DeviceInfo<'_>> = devices.list.iter().map(info).collect();
    success("List devices", Some(&items))
}

#[derive(Deserialize)]
struct AddDevice {
    #[serde(default)]
    device_id: Option<String>,
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

/// `POST /devices` with a JSON body `{device_id?, webhook_*?}`; the new slot has no client.
pub async fn add(State(state): State<Arc<AppState>>, headers: HeaderMap, body: Bytes) -> Response {
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .eq_ignore_ascii_case("application/json")
        });
    let parsed: Option<AddDevice> = if is_json {
        serde_json::from_slice(&body).ok()
    } else {
        None
    };
    let Some(req) = parsed else {
        return reply(
            StatusCode::BAD_REQUEST,
            "BAD_REQUEST",
            "Invalid request body",
        );
    };
    let id = req
        .device_id
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(new_uuid);
    let mut devices = write(&state.devices);
    if devices.get(&id).is_some() {
        return internal(&format!("device {id} already exists"));
    }
    let d = devices.add(id, DeviceState::NoClient, None);
    success("Device added", Some(&info(d)))
}

/// `DELETE /devices/{id}`: idempotent.
pub async fn remove(State(state): State<Arc<AppState>>, Path(id): Path<String>) -> Response {
    write(&state.devices).remove(&id);
    success(
        "Device removed",
        Some(&serde_json::json!({ "device_id": id })),
    )
}

/// `GET /devices/{id}`.
pub async fn get_info(State(state): State<Arc<AppState>>, Path(id): Path<String>) -> Response {
    match read(&state.devices).get(&id) {
        Some(d) => success("Device info", Some(&status(d))),
        None => internal(&format!("device {id} not found")),
    }
}

/// `GET /devices/{id}/status`.
pub async fn get_status(State(state): State<Arc<AppState>>, Path(id): Path<String>) -> Response {
    match read(&state.devices).get(&id) {
        Some(d) => success("Device status", Some(&status(d))),
        None => internal(&format!("device {id} not found")),
    }
}

/// The JSON view of a slot used by the control API.
pub fn control_view(d: &Device) -> serde_json::Value {
    serde_json::json!({
        "id": d.id,
        "jid": d.jid,
        "state": d.state,
        "created_at": d.created_at,
        "avatar_id": d.avatar.as_ref().map(|a| a.id.clone()),
    })
}
