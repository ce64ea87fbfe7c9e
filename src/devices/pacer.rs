//! Per-device rate limiting by reservation (GCRA): every job gets a start time spaced `1/rate` after the
//! previous one, with `burst` jobs allowed back to back. A job that must wait long carries its reserved
//! start time through a delay queue, so it keeps its place instead of queueing up again.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::DeviceKey;
use crate::protocol::{DeviceId, JobKind};
use crate::settings::{Limit, PacingSettings};

/// What to do with a job now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Run,
    /// Its turn comes soon: wait in the worker.
    Hold(Duration),
    /// Its turn is far: park it in a delay queue for `delay`, carrying `slot_ms` (unix ms) along.
    Defer {
        delay: Duration,
        slot_ms: u64,
    },
}

#[derive(Debug, Default, Clone, Copy)]
struct Bucket {
    /// Theoretical arrival time of the next job, unix ms (fractional).
    tat_ms: f64,
    penalty_until_ms: f64,
}

pub struct Pacer {
    settings: PacingSettings,
    buckets: Mutex<HashMap<DeviceKey, Bucket>>,
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}

impl Pacer {
    pub fn new(settings: PacingSettings) -> Self {
        Self {
            settings,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    pub fn limit(&self, device: Option<&DeviceId>, kind: JobKind) -> Option<Limit> {
        self.settings.limit(device, kind)
    }

    /// Reserves a start time for a new job, or checks the one a returning job carries.
    pub fn admit(
        &self,
        device: Option<&DeviceId>,
        kind: JobKind,
        reserved_ms: Option<u64>,
        now_ms: u64,
    ) -> Admission {
        let slot_ms = match reserved_ms {
            Some(slot) => slot,
            None => match self.reserve(device, kind, now_ms) {
                Some(slot) => slot,
                None => return Admission::Run,
            },
        };
        let wait = Duration::from_millis(slot_ms.saturating_sub(now_ms));
        if wait.is_zero() {
            Admission::Run
        } else if wait <= self.settings.max_hold {
            Admission::Hold(wait)
        } else {
            Admission::Defer {
                delay: wait,
                slot_ms,
            }
        }
    }

    fn reserve(&self, device: Option<&DeviceId>, kind: JobKind, now_ms: u64) -> Option<u64> {
        let limit = self.limit(device, kind)?;
        if limit.rate_per_s <= 0.0 {
            return None;
        }
        let now = now_ms as f64;
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let bucket = buckets.entry((device.cloned(), kind)).or_default();
        let factor = if now < bucket.penalty_until_ms {
            self.settings.rate_limited_factor
        } else {
            1.0
        };
        let interval = 1000.0 / limit.rate_per_s * factor;
        let tolerance = interval * f64::from(limit.burst.saturating_sub(1));
        let slot = now.max(bucket.tat_ms - tolerance);
        bucket.tat_ms = bucket.tat_ms.max(now) + interval;
        Some(slot.ceil() as u64)
    }

    /// WhatsApp said rate-overlimit: slow this device down for the cooldown, starting with one pause, at
    /// least as long as the wait the server named.
    pub fn penalize(
        &self,
        device: Option<&DeviceId>,
        kind: JobKind,
        now_ms: u64,
        server_wait: Option<Duration>,
    ) {
        let Some(limit) = self.limit(device, kind) else {
            return;
        };
        let now = now_ms as f64;
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let bucket = buckets.entry((device.cloned(), kind)).or_default();
        bucket.penalty_until_ms = now + self.settings.rate_limited_cooldown.as_millis() as f64;
        let paced = if limit.rate_per_s > 0.0 {
            1000.0 / limit.rate_per_s * self.settings.rate_limited_factor
        } else {
            0.0
        };
        let asked = server_wait.map_or(0.0, |wait| wait.as_millis() as f64);
        let pause = paced.max(asked);
        if pause > 0.0 {
            bucket.tat_ms = bucket.tat_ms.max(now) + pause;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pacer(rate: f64, burst: u32) -> Pacer {
        Pacer::new(PacingSettings {
            fetch: Limit {
                rate_per_s: rate,
                burst,
                concurrency: 1,
            },
            ..PacingSettings::default()
        })
    }

    #[test]
    fn spaces_jobs_after_the_burst() {
        let pacer = pacer(5.0, 2);
        let d = DeviceId::parse("a").unwrap();
        let t0 = 1_000_000;
        let decisions: Vec<_> = (0..5)
            .map(|_| pacer.admit(Some(&d), JobKind::Fetch, None, t0))
            .collect();
        assert_eq!(decisions[0], Admission::Run);
        assert_eq!(decisions[1], Admission::Run);
        assert_eq!(decisions[2], Admission::Hold(Duration::from_millis(200)));
        assert_eq!(decisions[3], Admission::Hold(Duration::from_millis(400)));
        // Another device is not affected.
        let e = DeviceId::parse("e").unwrap();
        assert_eq!(
            pacer.admit(Some(&e), JobKind::Fetch, None, t0),
            Admission::Run
        );
    }

    #[test]
    fn far_turns_are_deferred_and_keep_their_slot() {
        let pacer = pacer(1.0, 1);
        let d = DeviceId::parse("a").unwrap();
        let t0 = 5_000_000;
        for _ in 0..3 {
            pacer.admit(Some(&d), JobKind::Fetch, None, t0);
        }
        let Admission::Defer { delay, slot_ms } = pacer.admit(Some(&d), JobKind::Fetch, None, t0)
        else {
            panic!()
        };
        assert_eq!((delay, slot_ms), (Duration::from_secs(3), t0 + 3000));
        // Coming back at its slot, it runs without taking a new one.
        assert_eq!(
            pacer.admit(Some(&d), JobKind::Fetch, Some(slot_ms), t0 + 3000),
            Admission::Run
        );
        assert_eq!(
            pacer.admit(Some(&d), JobKind::Fetch, Some(slot_ms), t0 + 2500),
            Admission::Hold(Duration::from_millis(500))
        );
    }

    #[test]
    fn rate_limited_slows_the_device_down() {
        let pacer = pacer(10.0, 1);
        let d = DeviceId::parse("a").unwrap();
        let t0 = 9_000_000;
        pacer.penalize(Some(&d), JobKind::Fetch, t0, None);
        // One pause of 4 × 100 ms, then 400 ms spacing during the cooldown.
        assert_eq!(
            pacer.admit(Some(&d), JobKind::Fetch, None, t0),
            Admission::Hold(Duration::from_millis(400))
        );
        assert_eq!(
            pacer.admit(Some(&d), JobKind::Fetch, None, t0),
            Admission::Hold(Duration::from_millis(800))
        );
    }

    #[test]
    fn the_server_backoff_sets_the_first_pause_when_longer() {
        let pacer = pacer(10.0, 1);
        let d = DeviceId::parse("a").unwrap();
        let t0 = 9_000_000;
        pacer.penalize(Some(&d), JobKind::Fetch, t0, Some(Duration::from_secs(30)));
        // Too far off to hold in the worker: parked until the server's wait is over.
        assert_eq!(
            pacer.admit(Some(&d), JobKind::Fetch, None, t0),
            Admission::Defer {
                delay: Duration::from_secs(30),
                slot_ms: t0 + 30_000
            }
        );
    }

    #[test]
    fn no_rate_and_disabled_pacing_always_run() {
        let pacer = pacer(0.0, 1);
        for _ in 0..100 {
            assert_eq!(pacer.admit(None, JobKind::Fetch, None, 1), Admission::Run);
        }
        let off = Pacer::new(PacingSettings {
            enabled: false,
            ..PacingSettings::default()
        });
        for _ in 0..100 {
            assert_eq!(off.admit(None, JobKind::Update, None, 1), Admission::Run);
        }
    }
}
