//! The control API under `/_mock/` (the mock's own, behind the same Basic auth as the gateway
//! routes). Answers use the gateway envelope; bad input gives 400 `BAD_REQUEST`, unknown ids
//! 404 `NOT_FOUND`.

use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use bytes::Bytes;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::devices::{Device, DeviceState};
use crate::envelope::{reply, success};
use crate::faults::Faults;
use crate::jid::world_key;
use crate::state::{AppState, read, write};
use crate::util::query_last;
use crate::world::{self, Outcome};

type St = State<Arc<AppState>>;
type Answer = Result<Response, Response>;

fn bad_request(message: &str) -> Response {
    reply(StatusCode::BAD_REQUEST, "BAD_REQUEST", message)
}

fn not_found(message: &str) -> Response {
    reply(StatusCode::NOT_FOUND, "NOT_FOUND", message)
}

fn parse<T: DeserializeOwned + Default>(body: &[u8]) -> Result<T, Response> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body).map_err(|e| bad_request(&format!("invalid JSON body: {e}")))
}

fn answer(result: Answer) -> Response {
    result.unwrap_or_else(|r| r)
}

/// The JSON view of a slot.
pub fn device_view(d: &Device) -> Value {
    json!({
        "id": d.id,
        "jid": d.jid,
        "state": d.state,
        "display_name": d.display_name,
        "created_at": d.created_at,
        "avatar_id": d.avatar.as_ref().map(|a| a.id.clone()),
    })
}

/// `POST /_mock/reset`.
pub async fn reset(State(state): St) -> Response {
    state.reset();
    success::<()>("Mock reset", None)
}

/// `GET /_mock/devices`.
pub async fn list_devices(State(state): St) -> Response {
    let devices = read(&state.devices);
    let items: Vec<_> = devices.list.iter().map(device_view).collect();
    success("Mock devices", Some(&items))
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PutDevice {
    state: Option<DeviceState>,
    jid: Option<String>,
    display_name: Option<String>,
}

/// `PUT /_mock/devices/{id}` `{"state", "jid", "display_name"}`: creates (default state
/// `logged_in`, next default JID) or updates the given fields.
pub async fn put_device(State(state): St, Path(id): Path<String>, body: Bytes) -> Response {
    answer(save_device(&state, id, &body))
}

fn save_device(state: &AppState, id: String, body: &[u8]) -> Answer {
    let req: PutDevice = parse(body)?;
    if let Some(j) = &req.jid
        && (!j.contains('@') || j.trim().is_empty())
    {
        return Err(bad_request(
            "jid: must be a JID such as 6281234500001:1@s.whatsapp.net.",
        ));
    }
    let mut devices = write(&state.devices);
    if devices.get(&id).is_none() {
        let state = req.state.unwrap_or(DeviceState::LoggedIn);
        devices.add(id.clone(), state, req.jid.clone());
    }
    let d = devices
        .get_mut(&id)
        .ok_or_else(|| not_found(&format!("device {id} not found")))?;
    if let Some(s) = req.state {
        d.state = s;
    }
    if let Some(j) = req.jid {
        d.jid = j;
    }
    if let Some(n) = req.display_name {
        d.display_name = Some(n).filter(|n| !n.is_empty());
    }
    Ok(success("Mock device saved", Some(&device_view(d))))
}

/// `DELETE /_mock/devices/{id}`.
pub async fn delete_device(State(state): St, Path(id): Path<String>) -> Response {
    if write(&state.devices).remove(&id) {
        success::<()>("Mock device removed", None)
    } else {
        not_found(&format!("device {id} not found"))
    }
}

/// `GET /_mock/devices/{id}/avatar`.
pub async fn device_avatar(State(state): St, Path(id): Path<String>) -> Response {
    let devices = read(&state.devices);
    let found = devices
        .get(&id)
        .ok_or_else(|| not_found(&format!("device {id} not found")))
        .and_then(|d| {
            d.avatar
                .as_ref()
                .ok_or_else(|| not_found(&format!("device {id} has no uploaded avatar")))
        });
    answer(found.map(|a| success("Mock device avatar", Some(a.as_ref()))))
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PutContact {
    picture: Option<String>,
    id: Option<String>,
    url: Option<String>,
}

fn contact_view(key: &str, outcome: &Outcome, explicit: bool, url: Option<&str>) -> Value {
    let (picture, id) = match outcome {
        Outcome::Set { id } => ("set", Some(id.as_str())),
        Outcome::NotSet => ("none", None),
        Outcome::Hidden => ("hidden", None),
        Outcome::NotOnWhatsapp => ("not_on_whatsapp", None),
    };
    json!({ "jid": key, "picture": picture, "id": id, "explicit": explicit, "url": url })
}

/// The world key of a control path (trimmed: the control API's own convenience).
fn contact_key(jid: &str) -> String {
    world_key(jid.trim())
}

/// `PUT /_mock/contacts/{phone-or-jid}` `{"picture": "set"|"none"|"hidden"|"not_on_whatsapp", "id": "...",
/// "url": "..."}`. `id` applies to `set`; without it the world's stable id for that JID is used. `url`
/// (only with `set`) is answered verbatim as the picture URL instead of the CDN's.
pub async fn put_contact(State(state): St, Path(jid): Path<String>, body: Bytes) -> Response {
    answer(save_contact(&state, &jid, &body))
}

fn save_contact(state: &AppState, jid: &str, body: &[u8]) -> Answer {
    let req: PutContact = parse(body)?;
    let key = contact_key(jid);
    if key.is_empty() {
        return Err(bad_request("jid: cannot be blank."));
    }
    let outcome = match req.picture.as_deref() {
        Some("set") => {
            let id = req
                .id
                .filter(|i| !i.is_empty())
                .unwrap_or_else(|| world::picture_id(state.seed, &key));
            if !id.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad_request("id: must be a numeric string."));
            }
            Outcome::Set { id }
        }
        Some("none") => Outcome::NotSet,
        Some("hidden") => Outcome::Hidden,
        Some("not_on_whatsapp") => Outcome::NotOnWhatsapp,
        _ => {
            return Err(bad_request(
                "picture: must be one of set, none, hidden, not_on_whatsapp.",
            ));
        }
    };
    if req.url.is_some() && !matches!(outcome, Outcome::Set { .. }) {
        return Err(bad_request("url: only with picture set."));
    }
    let url = req.url.filter(|u| !u.is_empty());
    let view = contact_view(&key, &outcome, true, url.as_deref());
    match url {
        Some(url) => write(&state.contact_urls).insert(key.clone(), url),
        None => write(&state.contact_urls).remove(&key),
    };
    write(&state.contacts).insert(key, outcome);
    Ok(success("Mock contact saved", Some(&view)))
}

/// `GET /_mock/contacts/{phone-or-jid}`: the effective outcome and whether it is explicit.
pub async fn get_contact(State(state): St, Path(jid): Path<String>) -> Response {
    let key = contact_key(&jid);
    let explicit = read(&state.contacts).contains_key(&key);
    let outcome = state.lookup(&key);
    let url = read(&state.contact_urls).get(&key).cloned();
    success(
        "Mock contact",
        Some(&contact_view(&key, &outcome, explicit, url.as_deref())),
    )
}

/// `DELETE /_mock/contacts/{phone-or-jid}`: back to the world's outcome.
pub async fn delete_contact(State(state): St, Path(jid): Path<String>) -> Response {
    let key = contact_key(&jid);
    write(&state.contact_urls).remove(&key);
    write(&state.contacts).remove(&key);
    success::<()>("Mock contact removed", None)
}

/// `GET /_mock/faults`.
pub async fn get_faults(State(state): St) -> Response {
    success("Mock faults", Some(&state.faults()))
}

/// `PUT /_mock/faults`: replaces the settings; omitted fields take their defaults.
pub async fn put_faults(State(state): St, body: Bytes) -> Response {
    answer(save_faults(&state, &body))
}

fn save_faults(state: &AppState, body: &[u8]) -> Answer {
    let f: Faults = parse(body)?;
    f.validate().map_err(|e| bad_request(&e))?;
    *write(&state.faults) = f;
    Ok(success("Mock faults", Some(&f)))
}

/// `GET /_mock/requests[?limit=N]`: recorded requests, newest last.
pub async fn get_requests(State(state): St, RawQuery(q): RawQuery) -> Response {
    let limit = query_last(q.as_deref().unwrap_or(""), "limit").and_then(|l| l.parse().ok());
    success("Mock requests", Some(&state.log.snapshot(limit)))
}

/// `DELETE /_mock/requests`.
pub async fn clear_requests(State(state): St) -> Response {
    state.log.clear();
    success::<()>("Mock requests cleared", None)
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Credentials {
    #[serde(default)]
    pairs: Vec<String>,
}

/// `PUT /_mock/basic-auth` `{"pairs": ["user:pass", …]}`: replaces the accepted credentials (an empty
/// list turns authentication off), so a test can fix a "wrong password" while a client keeps running.
pub async fn put_basic_auth(State(state): St, body: Bytes) -> Response {
    answer(save_basic_auth(&state, &body))
}

fn save_basic_auth(state: &AppState, body: &[u8]) -> Answer {
    let credentials: Credentials = parse(body)?;
    let pairs = credentials
        .pairs
        .iter()
        .map(|pair| crate::config::parse_basic_auth_pair(pair))
        .collect::<Result<std::collections::HashMap<_, _>, _>>()
        .map_err(|e| bad_request(&e))?;
    let users: Vec<&String> = pairs.keys().collect();
    let view = json!({ "users": users });
    *write(&state.auth) = pairs;
    Ok(success("Mock credentials", Some(&view)))
}
