use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;

use super::{AvatarBackend, AvatarRequest, Lookup, Placement, SessionReport};
use crate::image::PreparedImage;
use crate::protocol::{DeviceId, JobError};

/// One backend per device, a default for the rest: the worker core calls this like any backend and never
/// learns which one serves a device.
pub struct DeviceBackends {
    default: Arc<dyn AvatarBackend>,
    by_device: HashMap<DeviceId, Arc<dyn AvatarBackend>>,
}

impl DeviceBackends {
    pub fn new(default: Arc<dyn AvatarBackend>) -> Self {
        Self {
            default,
            by_device: HashMap::new(),
        }
    }

    pub fn route(mut self, device: DeviceId, backend: Arc<dyn AvatarBackend>) -> Self {
        self.by_device.insert(device, backend);
        self
    }

    fn pick(&self, device: Option<&DeviceId>) -> &Arc<dyn AvatarBackend> {
        device
            .and_then(|device| self.by_device.get(device))
            .unwrap_or(&self.default)
    }

    /// Each distinct backend once.
    fn distinct(&self) -> Vec<&Arc<dyn AvatarBackend>> {
        let mut out: Vec<&Arc<dyn AvatarBackend>> = vec![&self.default];
        for backend in self.by_device.values() {
            if !out.iter().any(|seen| Arc::ptr_eq(seen, backend)) {
                out.push(backend);
            }
        }
        out
    }
}

#[async_trait]
impl AvatarBackend for DeviceBackends {
    async fn get_avatar(
        &self,
        device: Option<&DeviceId>,
        request: &AvatarRequest,
    ) -> Result<Lookup, JobError> {
        self.pick(device).get_avatar(device, request).await
    }

    async fn set_avatar(
        &self,
        device: Option<&DeviceId>,
        image: &PreparedImage,
    ) -> Result<(), JobError> {
        self.pick(device).set_avatar(device, image).await
    }

    fn sessions(&self) -> Vec<SessionReport> {
        self.distinct()
            .into_iter()
            .flat_map(|backend| backend.sessions())
            .collect()
    }

    async fn close(&self) {
        for backend in self.distinct() {
            backend.close().await;
        }
    }

    async fn check_device(&self, device: Option<&DeviceId>) -> Result<(), JobError> {
        self.pick(device).check_device(device).await
    }

    async fn until_usable(&self, device: Option<&DeviceId>) {
        self.pick(device).until_usable(device).await
    }

    fn problem(&self) -> Option<String> {
        self.distinct()
            .into_iter()
            .find_map(|backend| backend.problem())
    }

    async fn check_at_start(&self) {
        for backend in self.distinct() {
            backend.check_at_start().await;
        }
    }

    fn placements(&self) -> Vec<Placement> {
        self.distinct()
            .into_iter()
            .flat_map(|backend| backend.placements())
            .collect()
    }

    async fn acquire(&self, device: &DeviceId) -> bool {
        self.pick(Some(device)).acquire(device).await
    }

    async fn release(&self, device: &DeviceId) {
        self.pick(Some(device)).release(device).await
    }
}
