use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::{SettingsError, check_deadline, check_devices, invalid};
use crate::protocol::DeviceId;

/// Where a device's WhatsApp session lives.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// In a GOWA gateway, reached over HTTP (`[gateway]`).
    #[default]
    Http,
    /// In this process, through whatsapp-rust (`[native]`; a build with `--features native`).
    Native,
}

impl BackendKind {
    pub fn as_str(self) -> &'static str {
        match self {
            BackendKind::Http => "http",
            BackendKind::Native => "native",
        }
    }
}

/// Which backend serves which device. The worker core never sees this: it calls one backend, and the
/// choice is made behind it (`backend::DeviceBackends`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BackendSettings {
    /// The backend of devices no entry names, and of jobs without `device_id`.
    pub default: BackendKind,
    pub devices: Vec<DeviceBackend>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceBackend {
    pub devices: Vec<DeviceId>,
    pub backend: BackendKind,
}

impl BackendSettings {
    /// The backend of every device an entry names (a later entry wins).
    pub fn per_device(&self) -> HashMap<DeviceId, BackendKind> {
        self.devices
            .iter()
            .flat_map(|entry| {
                entry
                    .devices
                    .iter()
                    .map(move |device| (device.clone(), entry.backend))
            })
            .collect()
    }

    /// Whether any job can reach a native session.
    pub fn uses_native(&self) -> bool {
        self.default == BackendKind::Native
            || self
                .devices
                .iter()
                .any(|entry| entry.backend == BackendKind::Native)
    }

    pub(super) fn validate(&self) -> Result<(), SettingsError> {
        for entry in &self.devices {
            check_devices("backend.devices.devices", &entry.devices)?;
        }
        Ok(())
    }
}

/// Sessions held in this process (whatsapp-rust): where their stores live, how long a call may take, how
/// long a number's "on WhatsApp" answer is kept, and the name a newly linked device shows on the phone.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NativeSettings {
    /// One SQLite store per device, `<sessions_dir>/<device>.db`, made by `avatar-worker pair`.
    pub sessions_dir: PathBuf,
    /// Deadline of a picture query; the library's own default is 75 s.
    #[serde(rename = "fetch_timeout_ms", with = "super::millis")]
    pub fetch_timeout: Duration,
    /// Deadline of setting the own picture (an upload of up to a few hundred KiB).
    #[serde(rename = "update_timeout_ms", with = "super::millis")]
    pub update_timeout: Duration,
    /// How long the answer of an "is this number on WhatsApp" check is kept, per number; 0 keeps none.
    #[serde(rename = "on_whatsapp_cache_ms", with = "super::millis")]
    pub on_whatsapp_cache: Duration,
    /// The name a device linked by `avatar-worker pair` shows under Linked devices on the phone.
    pub device_name: String,
}

impl Default for NativeSettings {
    fn default() -> Self {
        Self {
            sessions_dir: PathBuf::from("sessions"),
            fetch_timeout: Duration::from_secs(5),
            update_timeout: Duration::from_secs(30),
            on_whatsapp_cache: Duration::from_secs(86_400),
            device_name: "avatar-worker".into(),
        }
    }
}

impl NativeSettings {
    pub(super) fn validate(&self) -> Result<(), SettingsError> {
        if self.sessions_dir.as_os_str().is_empty() {
            return Err(invalid("native.sessions_dir", "must not be empty"));
        }
        check_deadline("native.fetch_timeout_ms", self.fetch_timeout)?;
        check_deadline("native.update_timeout_ms", self.update_timeout)?;
        if self.on_whatsapp_cache > Duration::from_secs(7 * 86_400) {
            return Err(invalid(
                "native.on_whatsapp_cache_ms",
                "must be at most 604800000 (7 days)",
            ));
        }
        let name = self.device_name.trim();
        if name.is_empty() || name.chars().count() > 50 || name.chars().any(char::is_control) {
            return Err(invalid(
                "native.device_name",
                "must be 1 to 50 characters, none of them control characters",
            ));
        }
        Ok(())
    }
}
