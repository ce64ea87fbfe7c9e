use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::protocol::DeviceId;

fn now_stamp() -> u64 {
    super::now_ms().saturating_mul(1000)
}

/// Last writer wins for profile-picture updates: each update is stamped when first read from the update
/// queue (by the one replica that reads it, in publish order), and an update that comes back (a retry, a
/// redelivery) after a newer one was applied is skipped instead of undoing it. Stamps follow the wall
/// clock (microseconds), so they keep increasing when another replica takes over the reading.
#[derive(Default)]
pub struct UpdateOrder {
    next: AtomicU64,
    applied: Mutex<HashMap<Option<DeviceId>, u64>>,
}

impl UpdateOrder {
    pub fn new() -> Self {
        Self::default()
    }

    /// A stamp later than every earlier one of this process, and not earlier than the clock.
    pub fn stamp(&self) -> u64 {
        self.next.fetch_max(now_stamp(), Ordering::Relaxed);
        self.next.fetch_add(1, Ordering::Relaxed)
    }

    /// A stamp a job carries, if it could be one of ours: a stamp from the future is a producer's forgery
    /// and would make every later update of the device look superseded.
    pub fn plausible(stamp: Option<u64>) -> Option<u64> {
        stamp.filter(|stamp| *stamp <= now_stamp().saturating_add(60_000_000))
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
    fn stamps_increase_and_forged_ones_from_the_future_are_refused() {
        let order = UpdateOrder::new();
        let stamps: Vec<u64> = (0..1000).map(|_| order.stamp()).collect();
        assert!(stamps.windows(2).all(|w| w[0] < w[1]));
        assert!(stamps[0] >= now_stamp() - 1_000_000);
        assert_eq!(UpdateOrder::plausible(Some(u64::MAX)), None);
        assert_eq!(UpdateOrder::plausible(Some(stamps[5])), Some(stamps[5]));
    }

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
