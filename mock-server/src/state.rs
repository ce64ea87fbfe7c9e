//! Shared server state. Locks are std locks held only for a lookup or an update.

use std::collections::HashMap;
use std::sync::{PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use crate::cdn::Cdn;
use crate::config::{Config, Shares};
use crate::devices::Devices;
use crate::faults::Faults;
use crate::requests_log::RequestLog;
use crate::upload::DecodeGate;
use crate::uploads::Uploads;
use crate::world::{self, Outcome};

/// Everything a handler needs.
pub struct AppState {
    pub seed: u64,
    pub shares: Shares,
    /// `WHATSAPP_ACCOUNT_VALIDATION`: whether user JIDs are looked up before the picture query.
    pub account_validation: bool,
    /// Base of picture URLs, without a trailing `/`.
    pub public_base: String,
    /// Basic-auth user → password (last pair wins).
    pub auth: RwLock<HashMap<String, String>>,
    initial_auth: HashMap<String, String>,
    pub initial_devices: Vec<String>,
    /// Faults at start and after `POST /_mock/reset`.
    pub initial_faults: Faults,
    pub devices: RwLock<Devices>,
    /// Explicit contacts, keyed by [`crate::jid::world_key`].
    pub contacts: RwLock<HashMap<String, Outcome>>,
    /// Picture URLs answered instead of the CDN's for explicit contacts (`PUT /_mock/contacts` `url`),
    /// keyed like `contacts`: lets a test play a gateway that answers a URL of its choosing.
    pub contact_urls: RwLock<HashMap<String, String>>,
    /// Uploaded pictures by picture id (bounded).
    pub uploads: RwLock<Uploads>,
    pub faults: RwLock<Faults>,
    pub log: RequestLog,
    pub cdn: Cdn,
    /// Bounds concurrent upload decodes.
    pub decodes: DecodeGate,
}

/// Read lock that ignores poisoning (no handler panics while holding one).
pub fn read<T>(l: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(PoisonError::into_inner)
}

/// Write lock that ignores poisoning.
pub fn write<T>(l: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(PoisonError::into_inner)
}

impl AppState {
    pub fn new(config: &Config, public_base: String) -> Self {
        AppState {
            seed: config.seed,
            shares: config.shares,
            account_validation: config.account_validation,
            public_base,
            auth: RwLock::new(config.basic_auth.iter().cloned().collect()),
            initial_auth: config.basic_auth.iter().cloned().collect(),
            initial_devices: config.devices.clone(),
            initial_faults: config.faults,
            devices: RwLock::new(Devices::new(&config.devices)),
            contacts: RwLock::new(HashMap::new()),
            contact_urls: RwLock::new(HashMap::new()),
            uploads: RwLock::new(Uploads::default()),
            faults: RwLock::new(config.faults),
            log: RequestLog::default(),
            cdn: Cdn::new(config.seed),
            decodes: DecodeGate::default(),
        }
    }

    /// The effective outcome for a world key: an explicit contact, else the world's hash.
    pub fn lookup(&self, key: &str) -> Outcome {
        if let Some(o) = read(&self.contacts).get(key) {
            return o.clone();
        }
        world::outcome(self.seed, &self.shares, key)
    }

    /// Current fault settings (copied out of the lock).
    pub fn faults(&self) -> Faults {
        *read(&self.faults)
    }

    /// `POST /_mock/reset`: initial devices and faults, no contacts, uploads or log entries.
    pub fn reset(&self) {
        *write(&self.devices) = Devices::new(&self.initial_devices);
        write(&self.contacts).clear();
        write(&self.contact_urls).clear();
        write(&self.uploads).clear();
        *write(&self.faults) = self.initial_faults;
        *write(&self.auth) = self.initial_auth.clone();
        self.log.clear();
    }
}
