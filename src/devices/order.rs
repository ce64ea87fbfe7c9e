use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::protocol::DeviceId;

/// Last writer wins for profile-picture updates: each update is stamped when first seen, and an update
/// that comes back (from a retry) after a newer one was applied is skipped instead of undoing it.
#[derive(Default)]
pub struct UpdateOrder {
    next: AtomicU64,
    applied: Mutex<HashMap<Option<DeviceId>, u64>>,
}

impl UpdateOrder {
    pub fn new() -> Self {
        // Wall-clock based, so stamps stay increasing across restarts of the worker.
        let start = super::now_ms().saturating_mul(1000);
        Self {
            next: AtomicU64::new(start),
            applied: Mutex::new(HashMap::new()),
        }
    }

    pub fn stamp(&self) -> u64 {
        self.next.fetch_add(1, Ordering::Relaxed)
    }

    pub fn is_superseded(&self, device: Option<&DeviceId>, stamp: u64) -> bool {
        let applied = self.applied.lock().unwrap_or_else(|p| p.into_inner());
        applied
            .get(&device.cloned())
            .is_some_and(|last| *last > stamp)
    }

    pub fn applied(&self, device: Option<&DeviceId>, stamp: u64) {
        let mut applied = self.applied.lock().unwrap_or_else(|p| p.into_inner());
        let last = applied.entry(device.cloned()).or_default();
        *last = (*last).max(stamp);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_older_update_after_a_newer_one_is_superseded() {
        let order = UpdateOrder::new();
        let d = DeviceId::parse("d").unwrap();
        let (first, second) = (order.stamp(), order.stamp());
        assert!(!order.is_superseded(Some(&d), first));
        order.applied(Some(&d), second);
        assert!(order.is_superseded(Some(&d), first));
        assert!(
            !order.is_superseded(None, first),
            "other devices are independent"
        );
    }
}
