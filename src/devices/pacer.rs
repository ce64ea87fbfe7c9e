//! Per-device rate limiting by reservation (GCRA): every job gets a start time spaced `1/rate` after the
//! previous one, with `burst` jobs allowed back to back. One pacer per device lane, held by the one replica
//! that owns the lane, so a device's limit is exact however many replicas run.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::settings::{Limit, PacingSettings};

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}

/// How a lane's pacing starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// A lane nobody served before: its burst is available.
    Fresh,
    /// A lane taken over from another replica, which may have just used the burst: none is available, so
    /// the two together never exceed the limit across the hand-over.
    TakenOver,
}

#[derive(Debug, Clone)]
pub struct Pacer {
    limit: Option<Limit>,
    cooldown: Duration,
    factor: f64,
    /// Theoretical arrival time of the next job, unix ms (fractional).
    tat_ms: f64,
    penalty_until_ms: f64,
}

impl Pacer {
    /// `limit: None` never waits (pacing off).
    pub fn new(limit: Option<Limit>, settings: &PacingSettings, start: Start, now_ms: u64) -> Self {
        let mut pacer = Self {
            limit,
            cooldown: settings.rate_limited_cooldown,
            factor: settings.rate_limited_factor,
            tat_ms: 0.0,
            penalty_until_ms: 0.0,
        };
        if let (Start::TakenOver, Some(interval)) = (start, pacer.interval_ms(now_ms as f64)) {
            let burst = f64::from(limit.map_or(1, |l| l.burst).max(1));
            pacer.tat_ms = now_ms as f64 + interval * burst;
        }
        pacer
    }

    /// Jobs of this lane that may run at once.
    pub fn concurrency(&self) -> Option<usize> {
        self.limit.map(|limit| limit.concurrency)
    }

    /// Reserves the next start time and returns how long from `now_ms` the job waits for it.
    pub fn reserve(&mut self, now_ms: u64) -> Duration {
        let now = now_ms as f64;
        let (Some(limit), Some(interval)) = (self.limit, self.interval_ms(now)) else {
            return Duration::ZERO;
        };
        let tolerance = interval * f64::from(limit.burst.saturating_sub(1));
        let slot = now.max(self.tat_ms - tolerance);
        self.tat_ms = self.tat_ms.max(now) + interval;
        Duration::from_millis((slot - now).ceil() as u64)
    }

    /// WhatsApp said rate-overlimit: slow down for the cooldown, starting with one pause at least as long
    /// as the wait the server named.
    pub fn penalize(&mut self, now_ms: u64, server_wait: Option<Duration>) {
        if self.limit.is_none() {
            return;
        }
        let now = now_ms as f64;
        self.penalty_until_ms = now + self.cooldown.as_millis() as f64;
        let paced = self.interval_ms(now).unwrap_or(0.0);
        let asked = server_wait.map_or(0.0, |wait| wait.as_millis() as f64);
        let pause = paced.max(asked);
        if pause > 0.0 {
            self.tat_ms = self.tat_ms.max(now) + pause;
        }
    }

    /// Milliseconds between jobs now (longer during a cool-down), or `None` without a rate.
    fn interval_ms(&self, now: f64) -> Option<f64> {
        let rate = self.limit?.rate_per_s;
        if rate <= 0.0 {
            return None;
        }
        let factor = if now < self.penalty_until_ms {
            self.factor
        } else {
            1.0
        };
        Some(1000.0 / rate * factor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pacer(rate: f64, burst: u32, start: Start, now: u64) -> Pacer {
        let limit = Limit {
            rate_per_s: rate,
            burst,
            concurrency: 1,
        };
        Pacer::new(Some(limit), &PacingSettings::default(), start, now)
    }

    fn ms(ms: u64) -> Duration {
        Duration::from_millis(ms)
    }

    #[test]
    fn spaces_jobs_after_the_burst() {
        let t0 = 1_000_000;
        let mut p = pacer(5.0, 2, Start::Fresh, t0);
        let waits: Vec<_> = (0..4).map(|_| p.reserve(t0)).collect();
        assert_eq!(waits, [ms(0), ms(0), ms(200), ms(400)]);
        // Idle time refills the burst.
        assert_eq!(p.reserve(t0 + 10_000), ms(0));
    }

    #[test]
    fn a_lane_taken_over_starts_without_a_burst() {
        let t0 = 2_000_000;
        let mut p = pacer(10.0, 3, Start::TakenOver, t0);
        // As if the previous owner had just used its burst of 3: the first turn is one interval after it.
        assert_eq!(p.reserve(t0), ms(100));
        assert_eq!(p.reserve(t0), ms(200));
    }

    #[test]
    fn rate_limited_slows_the_lane_down() {
        let t0 = 9_000_000;
        let mut p = pacer(10.0, 1, Start::Fresh, t0);
        p.penalize(t0, None);
        // One pause of 4 × 100 ms, then 400 ms spacing during the cooldown.
        assert_eq!(p.reserve(t0), ms(400));
        assert_eq!(p.reserve(t0), ms(800));
        let mut p = pacer(10.0, 1, Start::Fresh, t0);
        p.penalize(t0, Some(Duration::from_secs(30)));
        assert_eq!(p.reserve(t0), Duration::from_secs(30), "the server's wait");
    }

    #[test]
    fn no_rate_or_no_pacing_never_waits() {
        let mut p = pacer(0.0, 1, Start::TakenOver, 1);
        let mut off = Pacer::new(None, &PacingSettings::default(), Start::Fresh, 1);
        for _ in 0..100 {
            assert_eq!(p.reserve(1), Duration::ZERO);
            assert_eq!(off.reserve(1), Duration::ZERO);
        }
    }
}
