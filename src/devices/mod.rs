//! Per-device state the worker keeps: how many jobs each WhatsApp account runs at once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::protocol::DeviceId;

/// Device ids come from producers, so the table is pruned of idle entries past this size.
const PRUNE_ABOVE: usize = 4096;

/// Caps the jobs in flight per device, so one account never gets a burst of parallel WhatsApp queries.
/// Jobs without a device share one slot: the gateway's default device.
pub struct DeviceGate {
    per_device: usize,
    slots: Mutex<HashMap<Option<DeviceId>, Arc<Semaphore>>>,
}

impl DeviceGate {
    pub fn new(per_device: usize) -> Self {
        Self {
            per_device,
            slots: Mutex::new(HashMap::new()),
        }
    }

    pub async fn acquire(&self, device: Option<&DeviceId>) -> OwnedSemaphorePermit {
        let semaphore = {
            let mut slots = self
                .slots
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            if slots.len() > PRUNE_ABOVE {
                let idle = self.per_device;
                slots.retain(|_, s| s.available_permits() < idle || Arc::strong_count(s) > 1);
            }
            slots
                .entry(device.cloned())
                .or_insert_with(|| Arc::new(Semaphore::new(self.per_device)))
                .clone()
        };
        // The semaphore is never closed, so acquiring cannot fail.
        match semaphore.acquire_owned().await {
            Ok(permit) => permit,
            Err(_) => unreachable!("device semaphores are never closed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn caps_each_device_separately() {
        let gate = DeviceGate::new(1);
        let a = DeviceId::parse("a").unwrap();
        let b = DeviceId::parse("b").unwrap();
        let held = gate.acquire(Some(&a)).await;
        // Another device is not blocked by a's permit.
        let _b = gate.acquire(Some(&b)).await;
        let second_a =
            tokio::time::timeout(std::time::Duration::from_millis(50), gate.acquire(Some(&a)))
                .await;
        assert!(second_a.is_err(), "a second job for device a must wait");
        drop(held);
        let _again = gate.acquire(Some(&a)).await;
    }
}
