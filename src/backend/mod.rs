//! Where a job's WhatsApp work happens. The worker core only sees [`AvatarBackend`]: the GOWA HTTP
//! gateway is one implementation, in-process sessions (whatsapp-rust, feature `native`) another, and
//! [`DeviceBackends`] picks one per device as `[backend]` configures. [`build`] assembles them.

mod gateway;
#[cfg(feature = "native")]
pub mod native;
mod routed;

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;

pub use gateway::GatewayBackend;
pub use routed::DeviceBackends;

use crate::image::PreparedImage;
use crate::ops::Metrics;
use crate::protocol::{AvatarInfo, DeviceId, JobError, Phone};
use crate::settings::{BackendKind, Settings};

/// What a fetch asks WhatsApp for.
#[derive(Debug, Clone)]
pub struct AvatarRequest {
    pub target: Phone,
    pub preview: bool,
    pub community: bool,
}

/// The definite answers about a picture; everything else is a [`JobError`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    Picture(AvatarInfo),
    NotSet,
    Hidden,
}

/// The state of a session a backend holds itself, for `/readyz` and the metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionReport {
    pub device: DeviceId,
    pub state: &'static str,
    /// Why the session is in that state, when there is more to say than its name.
    pub reason: Option<String>,
}

#[async_trait]
pub trait AvatarBackend: Send + Sync + 'static {
    /// `device: None` lets the backend pick its default device.
    async fn get_avatar(
        &self,
        device: Option<&DeviceId>,
        request: &AvatarRequest,
    ) -> Result<Lookup, JobError>;

    /// Sets the device's own profile picture to exactly these bytes.
    async fn set_avatar(
        &self,
        device: Option<&DeviceId>,
        image: &PreparedImage,
    ) -> Result<(), JobError>;

    /// The sessions held in this process; a gateway holds none.
    fn sessions(&self) -> Vec<SessionReport> {
        Vec::new()
    }

    /// Closes held sessions cleanly, once no job runs any more.
    async fn close(&self) {}

    /// Whether `device` can take an update at all, asked before any image work: a gateway that does not
    /// list the device answers `device_not_found` here. Unsure is `Ok`: the job's own call decides.
    async fn check_device(&self, _device: Option<&DeviceId>) -> Result<(), JobError> {
        Ok(())
    }

    /// Waits while the backend cannot serve `device` at all (a gateway refusing the configured
    /// credentials): jobs wait in the broker meanwhile.
    async fn until_usable(&self, _device: Option<&DeviceId>) {}

    /// What keeps the backend from serving any job, for `/readyz`.
    fn problem(&self) -> Option<String> {
        None
    }

    /// Checks what can be checked before the first job (a gateway's credentials).
    async fn check_at_start(&self) {}

    /// The native sessions this process could hold, and whether it holds each now: where the replicas
    /// place native devices' groups ([`crate::lanes`]). A gateway holds none.
    fn placements(&self) -> Vec<Placement> {
        Vec::new()
    }

    /// Takes a device's session (its store lock) if no other process holds it.
    async fn acquire(&self, _device: &DeviceId) -> bool {
        false
    }

    /// Closes a device's session and releases its store, for another replica to take.
    async fn release(&self, _device: &DeviceId) {}
}

/// A native session this process could serve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    pub device: DeviceId,
    /// This process holds the session (or it is unpaired: nobody holds it and every replica answers alike).
    pub held: bool,
    /// Paired: a real session, shared out among the replicas. An unpaired one is served by any.
    pub paired: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("gateway backend: {0}")]
    Gateway(JobError),
    #[error(
        "the configuration puts devices on the native backend, but this build has none: rebuild with `--features native` (docs/native.md)"
    )]
    NativeNotBuilt,
    #[cfg(feature = "native")]
    #[error(transparent)]
    Native(#[from] native::NativeError),
}

/// The backend `settings` describe: the gateway alone, or the gateway and this process's sessions,
/// each device routed to its own. Native sessions are opened, locked and connected here.
pub async fn build(
    settings: &Settings,
    metrics: &Metrics,
) -> Result<Arc<dyn AvatarBackend>, BuildError> {
    let gateway: Arc<dyn AvatarBackend> = Arc::new(
        GatewayBackend::new(&settings.gateway)
            .map_err(BuildError::Gateway)?
            .with_metrics(metrics.clone()),
    );
    if !settings.backend.uses_native() {
        return Ok(gateway);
    }
    let per_device = settings.backend.per_device();
    let native = native_backend(settings, &per_device, metrics).await?;
    let backend_of = |kind| match kind {
        BackendKind::Http => gateway.clone(),
        BackendKind::Native => native.clone(),
    };
    let mut routed = DeviceBackends::new(backend_of(settings.backend.default));
    for (device, kind) in per_device {
        routed = routed.route(device, backend_of(kind));
    }
    Ok(Arc::new(routed))
}

#[cfg(feature = "native")]
async fn native_backend(
    settings: &Settings,
    per_device: &HashMap<DeviceId, BackendKind>,
    metrics: &Metrics,
) -> Result<Arc<dyn AvatarBackend>, BuildError> {
    use native::{Connect, NativeBackend, SessionRegistry};

    let mut devices: Vec<DeviceId> = per_device
        .iter()
        .filter(|(_, kind)| **kind == BackendKind::Native)
        .map(|(device, _)| device.clone())
        .collect();
    if settings.backend.default == BackendKind::Native {
        // Every stored session not explicitly sent to the gateway.
        for device in SessionRegistry::stored_devices(&settings.native.sessions_dir)? {
            if !per_device.contains_key(&device) {
                devices.push(device);
            }
        }
    }
    devices.sort();
    devices.dedup();
    let registry = SessionRegistry::new(
        native::Stores::Dir(settings.native.sessions_dir.clone()),
        Connect::Paired,
        Some(metrics.clone()),
    );
    // A store another replica holds is left to it: the replicas share native devices out (`lanes`).
    for device in &devices {
        match registry.open(device).await {
            Ok(_) => {}
            Err(native::NativeError::InUse { owner, .. }) => {
                tracing::info!(device = device.as_str(), %owner, "session held by another process; served there");
            }
            Err(err) => return Err(err.into()),
        }
    }
    // Ended sessions (logged out, replaced, a new pairing) are rebuilt on SIGHUP, without a restart.
    #[cfg(unix)]
    if let Err(err) = registry.rebuild_on_sighup() {
        tracing::warn!(%err, "native sessions will not be rebuilt on SIGHUP");
    }
    Ok(Arc::new(
        NativeBackend::new(registry, &settings.native).with_candidates(devices),
    ))
}

#[cfg(not(feature = "native"))]
async fn native_backend(
    _: &Settings,
    _: &HashMap<DeviceId, BackendKind>,
    _: &Metrics,
) -> Result<Arc<dyn AvatarBackend>, BuildError> {
    Err(BuildError::NativeNotBuilt)
}

#[cfg(all(test, not(feature = "native")))]
mod tests {
    use super::*;
    use crate::settings::DeviceBackend;

    #[tokio::test]
    async fn native_devices_need_a_build_with_the_native_feature() {
        let mut settings = Settings::default();
        assert!(build(&settings, &Metrics::new()).await.is_ok());
        settings.backend.devices = vec![DeviceBackend {
            devices: vec![DeviceId::parse("phone-a").unwrap()],
            backend: BackendKind::Native,
        }];
        let err = build(&settings, &Metrics::new())
            .await
            .err()
            .expect("refused");
        assert!(matches!(err, BuildError::NativeNotBuilt));
        assert!(err.to_string().contains("--features native"), "{err}");
    }
}
