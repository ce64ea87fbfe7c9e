use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::DeviceKey;
use crate::protocol::{DeviceId, JobKind};

/// Device ids come from producers, so the table is pruned of idle entries past this size.
const PRUNE_ABOVE: usize = 4096;

/// Caps the jobs running at once per device and kind, so one account never gets a burst of parallel
/// WhatsApp queries. Waiting is bounded: a job that cannot get a slot soon is parked instead.
#[derive(Default)]
pub struct DeviceGate {
    slots: Mutex<HashMap<DeviceKey, (usize, Arc<Semaphore>)>>,
}

impl DeviceGate {
    pub fn new() -> Self {
        Self::default()
    }

    /// A slot within `wait`, or `None`. Waiters are served in arrival order.
    pub async fn acquire(
        &self,
        device: Option<&DeviceId>,
        kind: JobKind,
        cap: usize,
        wait: Duration,
    ) -> Option<OwnedSemaphorePermit> {
        let semaphore = {
            let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
            if slots.len() > PRUNE_ABOVE {
                slots
                    .retain(|_, (cap, s)| s.available_permits() < *cap || Arc::strong_count(s) > 1);
            }
            let entry = slots
                .entry((device.cloned(), kind))
                .or_insert_with(|| (cap, Arc::new(Semaphore::new(cap))));
            if entry.0 != cap {
                // The configured cap changed for this key (per-device override): start a fresh semaphore.
                *entry = (cap, Arc::new(Semaphore::new(cap)));
            }
            entry.1.clone()
        };
        tokio::time::timeout(wait, semaphore.acquire_owned())
            .await
            .ok()
            .and_then(Result::ok)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn caps_each_device_separately_and_bounds_the_wait() {
        let gate = DeviceGate::new();
        let a = DeviceId::parse("a").unwrap();
        let b = DeviceId::parse("b").unwrap();
        let wait = Duration::from_millis(30);
        let held = gate
            .acquire(Some(&a), JobKind::Fetch, 1, wait)
            .await
            .unwrap();
        assert!(
            gate.acquire(Some(&b), JobKind::Fetch, 1, wait)
                .await
                .is_some()
        );
        assert!(
            gate.acquire(Some(&a), JobKind::Update, 1, wait)
                .await
                .is_some()
        );
        assert!(
            gate.acquire(Some(&a), JobKind::Fetch, 1, wait)
                .await
                .is_none()
        );
        drop(held);
        assert!(
            gate.acquire(Some(&a), JobKind::Fetch, 1, wait)
                .await
                .is_some()
        );
    }
}
