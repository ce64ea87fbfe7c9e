//! The sessions this process holds, by device, opened, closed and rebuilt one device at a time.
//!
//! - [`SessionRegistry::open`] takes the device's store lock, opens its store and, with
//!   [`Connect::Paired`], connects it. Opening a device that is already open changes nothing.
//! - [`SessionRegistry::close`] disconnects cleanly, releases the lock, and leaves the device listed as
//!   `closed` (its jobs get a retryable `device_disconnected`).
//! - [`SessionRegistry::rebuild`] is `close` then `open`: a new client on the same store, which is read
//!   again (a pairing made since by `avatar-worker pair` is picked up).
//!
//! The worker opens every configured device at start ([`SessionRegistry::open_all`]). Rebuilds happen
//! on their own after a temporary ban ends, and for every ended session when the process receives
//! SIGHUP ([`SessionRegistry::rebuild_on_sighup`]). The same calls let a caller hold a device's session
//! only where it is needed (for example on the one replica that owns the device's job lane).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock, Weak};
use std::time::{Duration, SystemTime};

use whatsapp_rust::wacore::store::traits::Backend;

use super::NativeError;
use super::session::{AFTER_BAN, ClientOptions, OnEnd, Session, SessionState};
use super::store::{StoreLock, StorePath, device_of};
use crate::ops::Metrics;
use crate::protocol::DeviceId;

/// Whether opened sessions connect to WhatsApp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Connect {
    /// Connect every paired session (the worker).
    Paired,
    /// Open only: for tools and tests that must not reach WhatsApp.
    Never,
}

/// Where the sessions' stores come from.
pub enum Stores {
    /// `<dir>/<device>.db`, one SQLite file per device, each locked to this process while in use.
    Dir(PathBuf),
    /// Stores the caller made (an in-memory store, a store of its own), by device; no locks.
    Given(Vec<(DeviceId, Arc<dyn Backend>)>),
}

enum Source {
    Dir(PathBuf),
    Given(HashMap<DeviceId, Arc<dyn Backend>>),
}

/// The sessions of this process. Cheap to clone: clones share the sessions.
#[derive(Clone)]
pub struct SessionRegistry {
    inner: Arc<Inner>,
}

struct Inner {
    source: Source,
    connect: Connect,
    metrics: Option<Metrics>,
    client: ClientOptions,
    sessions: RwLock<BTreeMap<DeviceId, Arc<Session>>>,
    /// One open, close or rebuild at a time.
    changing: tokio::sync::Mutex<()>,
    /// How long after a ban's end its session is rebuilt, in milliseconds.
    after_ban_ms: AtomicU64,
}

impl SessionRegistry {
    /// A registry with no session open yet.
    pub fn new(stores: Stores, connect: Connect, metrics: Option<Metrics>) -> Self {
        Self::with_client_options(stores, connect, metrics, ClientOptions::default())
    }

    /// Like [`SessionRegistry::new`], with clients that reach WhatsApp as `client` says.
    pub fn with_client_options(
        stores: Stores,
        connect: Connect,
        metrics: Option<Metrics>,
        client: ClientOptions,
    ) -> Self {
        let source = match stores {
            Stores::Dir(dir) => Source::Dir(dir),
            Stores::Given(stores) => Source::Given(stores.into_iter().collect()),
        };
        Self {
            inner: Arc::new(Inner {
                source,
                connect,
                metrics,
                client,
                sessions: RwLock::default(),
                changing: tokio::sync::Mutex::new(()),
                after_ban_ms: AtomicU64::new(AFTER_BAN.as_millis() as u64),
            }),
        }
    }

    /// Opens `<sessions_dir>/<device>.db` for each device (creating an empty, unpaired store where none
    /// exists) and, with [`Connect::Paired`], connects the paired ones: what the worker does at start.
    /// Fails if another process holds one of the stores.
    pub async fn open_dir(
        sessions_dir: &Path,
        devices: &[DeviceId],
        connect: Connect,
        metrics: Option<Metrics>,
    ) -> Result<Self, NativeError> {
        let registry = Self::new(Stores::Dir(sessions_dir.to_path_buf()), connect, metrics);
        registry.open_all(devices).await?;
        Ok(registry)
    }

    /// Sessions on stores the caller made, opened and never connected.
    pub async fn from_stores(
        stores: Vec<(DeviceId, Arc<dyn Backend>)>,
        metrics: Option<Metrics>,
    ) -> Result<Self, NativeError> {
        let devices: Vec<DeviceId> = stores.iter().map(|(device, _)| device.clone()).collect();
        let registry = Self::new(Stores::Given(stores), Connect::Never, metrics);
        registry.open_all(&devices).await?;
        Ok(registry)
    }

    /// Opens each device in turn; stops at the first that fails.
    pub async fn open_all(&self, devices: &[DeviceId]) -> Result<(), NativeError> {
        for device in devices {
            self.open(device).await?;
        }
        Ok(())
    }

    /// Opens `device`'s session: takes its store lock, reads its store, and (with [`Connect::Paired`])
    /// connects it when it is paired. A device that is open already is left as it is; a closed one is
    /// opened again. Returns the session's state. An unpaired store is released again at once, so
    /// `avatar-worker pair` can run while the worker does.
    pub async fn open(&self, device: &DeviceId) -> Result<SessionState, NativeError> {
        let _changing = self.inner.changing.lock().await;
        if let Some(open) = self.get(device)
            && open.state() != SessionState::Closed
        {
            return Ok(open.state());
        }
        self.open_locked(device).await
    }

    /// Closes `device`'s session: disconnects cleanly, flushes and releases the store, and lists the
    /// device as `closed`. Returns false when this registry has no session for it.
    pub async fn close(&self, device: &DeviceId) -> bool {
        let _changing = self.inner.changing.lock().await;
        self.close_locked(device).await
    }

    /// Closes and opens `device`'s session again: a new client on the same store, read afresh.
    pub async fn rebuild(&self, device: &DeviceId) -> Result<SessionState, NativeError> {
        let _changing = self.inner.changing.lock().await;
        self.close_locked(device).await;
        self.open_locked(device).await
    }

    /// Rebuilds every session that has ended (not paired, logged out, replaced, banned, outdated,
    /// refused or stopped); live and closed ones are left alone. What SIGHUP does.
    pub async fn rebuild_ended(&self) -> Vec<(DeviceId, Result<SessionState, NativeError>)> {
        let ended: Vec<DeviceId> = self
            .sessions()
            .into_iter()
            .filter(|session| {
                let state = session.state();
                !state.is_live() && state != SessionState::Closed
            })
            .map(|session| session.device().clone())
            .collect();
        let mut rebuilt = Vec::new();
        for device in ended {
            let state = self.rebuild(&device).await;
            rebuilt.push((device, state));
        }
        rebuilt
    }

    /// Rebuilds the ended sessions whenever this process receives SIGHUP, for as long as the registry
    /// lives. Each outcome is logged.
    #[cfg(unix)]
    pub fn rebuild_on_sighup(&self) -> std::io::Result<()> {
        use tokio::signal::unix::{SignalKind, signal};
        let mut hangups = signal(SignalKind::hangup())?;
        let registry = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            while hangups.recv().await.is_some() {
                let Some(inner) = registry.upgrade() else {
                    break;
                };
                let registry = SessionRegistry { inner };
                tracing::info!("SIGHUP: rebuilding ended native sessions");
                for (device, state) in registry.rebuild_ended().await {
                    match state {
                        Ok(state) => {
                            tracing::info!(device_id = %device.as_str(), state = state.name(), "native session rebuilt")
                        }
                        Err(err) => {
                            tracing::error!(device_id = %device.as_str(), %err, "native session could not be rebuilt")
                        }
                    }
                }
            }
        });
        Ok(())
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

    pub fn get(&self, device: &DeviceId) -> Option<Arc<Session>> {
        self.read().get(device).cloned()
    }

    /// The only session, when there is exactly one: where jobs without `device_id` go.
    pub fn only(&self) -> Option<Arc<Session>> {
        let sessions = self.read();
        let mut all = sessions.values();
        match (all.next(), all.next()) {
            (Some(only), None) => Some(only.clone()),
            _ => None,
        }
    }

    /// Every session, by device.
    pub fn sessions(&self) -> Vec<Arc<Session>> {
        self.read().values().cloned().collect()
    }

    /// Disconnects every session cleanly (the worker's shutdown).
    pub async fn stop(&self) {
        let _changing = self.inner.changing.lock().await;
        for session in self.sessions() {
            session.stop().await;
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<DeviceId, Arc<Session>>> {
        self.inner
            .sessions
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn put(&self, session: Session) -> Arc<Session> {
        let session = Arc::new(session);
        self.inner
            .sessions
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(session.device().clone(), session.clone());
        session
    }

    async fn open_locked(&self, device: &DeviceId) -> Result<SessionState, NativeError> {
        let inner = &self.inner;
        let (store, lock): (Arc<dyn Backend>, Option<StoreLock>) = match &inner.source {
            Source::Dir(dir) => {
                let path = StorePath::new(dir, device);
                let lock = StoreLock::acquire(&path)?;
                let store = Arc::new(path.open(&lock).await?);
                (store, Some(lock))
            }
            Source::Given(stores) => match stores.get(device) {
                Some(store) => (store.clone(), None),
                None => {
                    return Err(NativeError::Client {
                        device: device.clone(),
                        message: "no store was given for this device".into(),
                    });
                }
            },
        };
        let session = Session::build(
            device.clone(),
            store,
            lock,
            inner.metrics.clone(),
            &inner.client,
        )
        .await?;
        let session = self.put(session);
        match session.state() {
            SessionState::NotPaired => {
                tracing::warn!(device_id = %device.as_str(),
                    "native session is not paired; run `avatar-worker pair --device {}`, then send the worker SIGHUP", device.as_str());
            }
            _ if inner.connect == Connect::Paired => {
                session.start(Some(self.on_end(&session))).await;
            }
            _ => {}
        }
        Ok(session.state())
    }

    async fn close_locked(&self, device: &DeviceId) -> bool {
        let Some(session) = self.get(device) else {
            return false;
        };
        session.retire().await;
        self.put(Session::without_client(
            device.clone(),
            SessionState::Closed,
            self.inner.metrics.clone(),
        ));
        true
    }

    /// What happens when a session's run loop ends by itself: after a temporary ban, a rebuild once
    /// the ban is over (if the session has not been replaced since).
    fn on_end(&self, session: &Session) -> OnEnd {
        let registry: Weak<Inner> = Arc::downgrade(&self.inner);
        let device = session.device().clone();
        let generation = session.generation();
        Box::new(move |state| {
            let SessionState::Banned {
                until: Some(until), ..
            } = state
            else {
                return;
            };
            let margin = registry.upgrade().map_or(AFTER_BAN, |inner| {
                Duration::from_millis(inner.after_ban_ms.load(Ordering::Relaxed))
            });
            let wait = until.duration_since(SystemTime::now()).unwrap_or_default() + margin;
            tracing::warn!(device_id = %device.as_str(), after_s = wait.as_secs(), "native session banned; rebuilding it once the ban is over");
            tokio::spawn(async move {
                tokio::time::sleep(wait).await;
                let Some(inner) = registry.upgrade() else {
                    return;
                };
                SessionRegistry { inner }
                    .rebuild_after_ban(&device, generation)
                    .await;
            });
        })
    }

    /// Rebuilds `device`'s session if it is still the one of `generation` (not rebuilt since).
    /// Returns the new state, or `None` when a newer session is there.
    async fn rebuild_after_ban(
        &self,
        device: &DeviceId,
        generation: u64,
    ) -> Option<Result<SessionState, NativeError>> {
        let _changing = self.inner.changing.lock().await;
        let current = self.get(device)?;
        if current.generation() != generation {
            return None;
        }
        self.close_locked(device).await;
        let state = self.open_locked(device).await;
        match &state {
            Ok(state) => {
                tracing::info!(device_id = %device.as_str(), state = state.name(), "native session rebuilt after its ban")
            }
            Err(err) => {
                tracing::error!(device_id = %device.as_str(), %err, "native session could not be rebuilt after its ban")
            }
        }
        Some(state)
    }
}

#[cfg(test)]
mod tests {
    use whatsapp_rust::transport::{Transport, TransportEvent, TransportFactory};
    use whatsapp_rust::wacore::store::traits::DeviceStore;
    use whatsapp_rust::wacore::store::{Device, InMemoryBackend};

    use super::*;

    struct Offline;

    #[async_trait::async_trait]
    impl TransportFactory for Offline {
        async fn create_transport(
            &self,
        ) -> Result<
            (
                Arc<dyn Transport>,
                whatsapp_rust::async_channel::Receiver<TransportEvent>,
            ),
            anyhow::Error,
        > {
            Err(anyhow::anyhow!("offline"))
        }
    }

    async fn registry_with_one_session(phone: &DeviceId) -> SessionRegistry {
        let store = InMemoryBackend::new();
        let mut account = Device::new();
        account.pn = Some("15550000071@s.whatsapp.net".parse().unwrap());
        store.save(&account).await.unwrap();
        let registry = SessionRegistry::with_client_options(
            Stores::Given(vec![(phone.clone(), Arc::new(store))]),
            Connect::Paired,
            None,
            ClientOptions {
                transport: Some(Arc::new(Offline)),
                version: Some((2, 3000, 1)),
            },
        );
        registry.inner.after_ban_ms.store(50, Ordering::Relaxed);
        registry.open(phone).await.unwrap();
        registry
    }

    #[tokio::test]
    async fn a_banned_session_is_rebuilt_once_the_ban_is_over() {
        let phone = DeviceId::parse("phone-b").unwrap();
        let registry = registry_with_one_session(&phone).await;
        let banned = registry.get(&phone).unwrap();
        // What the session's task does when its run loop ends after a TemporaryBan.
        let on_end = registry.on_end(&banned);
        on_end(SessionState::Banned {
            reason: "102: too many people blocked you".into(),
            until: Some(SystemTime::now() + Duration::from_millis(100)),
        });
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        let rebuilt = loop {
            let current = registry.get(&phone).unwrap();
            if !Arc::ptr_eq(&current, &banned) && current.state() != SessionState::Closed {
                break current;
            }
            assert!(std::time::Instant::now() < deadline, "never rebuilt");
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert_eq!(rebuilt.state(), SessionState::Connecting);
        registry.stop().await;
    }

    #[tokio::test]
    async fn a_session_rebuilt_during_the_ban_is_not_rebuilt_again_when_it_ends() {
        let phone = DeviceId::parse("phone-c").unwrap();
        let registry = registry_with_one_session(&phone).await;
        let banned = registry.get(&phone).unwrap().generation();
        registry.rebuild(&phone).await.unwrap();
        let current = registry.get(&phone).unwrap();
        assert!(registry.rebuild_after_ban(&phone, banned).await.is_none());
        assert!(Arc::ptr_eq(&current, &registry.get(&phone).unwrap()));
        // The session of the ban itself is rebuilt.
        let rebuilt = registry
            .rebuild_after_ban(&phone, current.generation())
            .await;
        assert_eq!(rebuilt.unwrap().unwrap(), SessionState::Connecting);
        registry.stop().await;
    }
}
