//! Device slots and their states (GOWA's `DeviceManager` and `DeviceInstance`,
//! src/infrastructure/whatsapp/device_manager.go and device_instance.go).

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::cdn::OwnAvatar;
use crate::jid::USER_SERVER;
use crate::util::go_time_now;

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
    /// The `state` of `GET /devices` (usecase/device.go `deriveState`).
    pub fn gateway_state(self) -> &'static str {
        match self {
            DeviceState::LoggedIn => "logged_in",
            DeviceState::NotLoggedIn => "connected",
            DeviceState::Disconnected | DeviceState::NoClient => "disconnected",
        }
    }

    /// Whether the slot's client has a store ID (it was paired): only then GOWA knows its JID.
    pub fn paired(self) -> bool {
        matches!(self, DeviceState::LoggedIn | DeviceState::Disconnected)
    }
}

/// One device slot.
#[derive(Debug, Clone)]
pub struct Device {
    pub id: String,
    /// AD JID, e.g. `6281234500001:1@s.whatsapp.net`.
    pub jid: String,
    pub state: DeviceState,
    /// The account's push name (`display_name`), when set through the control API.
    pub display_name: Option<String>,
    /// Go `time.Time` JSON of the creation time.
    pub created_at: String,
    pub avatar: Option<Arc<OwnAvatar>>,
}

impl Device {
    /// `user@server` of the AD JID.
    pub fn bare_jid(&self) -> String {
        bare(&self.jid)
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

/// The default AD JID of device number `n` (1-based).
pub fn default_jid(n: u64) -> String {
    format!("{}:1@{USER_SERVER}", JID_BASE + n)
}

/// The slots, in creation order.
#[derive(Debug, Clone)]
pub struct Devices {
    pub list: Vec<Device>,
    next_index: u64,
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
            display_name: None,
            created_at: go_time_now(),
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

    /// `ResolveDevice` on an already trimmed id: exact id, then AD JID, then bare JID (only for
    /// paired slots, which know their JID); with no id, the only slot.
    pub fn resolve(&self, id: &str) -> Option<&Device> {
        if id.is_empty() {
            return match self.list.as_slice() {
                [only] => Some(only),
                _ => None,
            };
        }
        let paired = || self.list.iter().filter(|d| d.state.paired());
        self.get(id)
            .or_else(|| paired().find(|d| d.jid == id))
            .or_else(|| paired().find(|d| d.bare_jid() == id))
    }
}
