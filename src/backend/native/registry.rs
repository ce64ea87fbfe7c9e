//! The sessions this process holds, by device: opened from the sessions directory at start, each
//! locked to this process, the paired ones connected.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use whatsapp_rust::wacore::store::traits::Backend;

use super::NativeError;
use super::session::{Session, SessionState};
use super::store::{StoreLock, StorePath, device_of};
use crate::ops::Metrics;
use crate::protocol::DeviceId;

pub struct SessionRegistry {
    sessions: BTreeMap<DeviceId, Session>,
}

/// Whether opened sessions connect to WhatsApp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Connect {
    /// Connect every paired session (the worker).
    Paired,
    /// Open only: for tools and tests that must not reach WhatsApp.
    Never,
}

impl SessionRegistry {
    /// Opens `<sessions_dir>/<device>.db` for each device (creating an empty, unpaired store where none
    /// exists) and, with [`Connect::Paired`], connects the paired ones. Fails if another process holds
    /// one of the stores.
    pub async fn open(
        sessions_dir: &Path,
        devices: &[DeviceId],
        connect: Connect,
        metrics: Option<Metrics>,
    ) -> Result<Self, NativeError> {
        let mut sessions = BTreeMap::new();
        for device in devices {
            let path = StorePath::new(sessions_dir, device);
            let lock = StoreLock::acquire(&path)?;
            let store = Arc::new(path.open(&lock).await?);
            let session =
                Session::build(device.clone(), store, Some(lock), metrics.clone()).await?;
            if session.state() == SessionState::NotPaired {
                tracing::warn!(device_id = %device.as_str(), store = %path.database().display(),
                    "native session is not paired; run `avatar-worker pair --device {}`", device.as_str());
            }
            sessions.insert(device.clone(), session);
        }
        let registry = Self { sessions };
        if connect == Connect::Paired {
            for session in registry.sessions.values() {
                session.start().await;
            }
        }
        Ok(registry)
    }

    /// Sessions on stores the caller made (an in-memory store, a store of its own), never connected.
    pub async fn from_stores(
        stores: Vec<(DeviceId, Arc<dyn Backend>)>,
        metrics: Option<Metrics>,
    ) -> Result<Self, NativeError> {
        let mut sessions = BTreeMap::new();
        for (device, store) in stores {
            let session = Session::build(device.clone(), store, None, metrics.clone()).await?;
            sessions.insert(device, session);
        }
        Ok(Self { sessions })
    }

    /// The devices with a store in `sessions_dir` (`*.db` files), for `backend.default = "native"`.
    pub fn stored_devices(sessions_dir: &Path) -> Result<Vec<DeviceId>, NativeError> {
        let entries = match std::fs::read_dir(sessions_dir) {
            Ok(entries) => entries,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => {
                return Err(NativeError::Io {
                    path: sessions_dir.to_path_buf(),
                    source,
                });
            }
        };
        let mut devices: Vec<DeviceId> = entries
            .filter_map(Result::ok)
            .filter_map(|entry| device_of(&entry.path()))
            .collect();
        devices.sort();
        Ok(devices)
    }

    pub fn get(&self, device: &DeviceId) -> Option<&Session> {
        self.sessions.get(device)
    }

    /// The only session, when there is exactly one: where jobs without `device_id` go.
    pub fn only(&self) -> Option<&Session> {
        let mut sessions = self.sessions.values();
        match (sessions.next(), sessions.next()) {
            (Some(only), None) => Some(only),
            _ => None,
        }
    }

    pub fn sessions(&self) -> impl Iterator<Item = &Session> {
        self.sessions.values()
    }

    /// Disconnects every session cleanly.
    pub async fn stop(&self) {
        for session in self.sessions.values() {
            session.stop().await;
        }
    }
}
