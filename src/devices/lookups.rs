//! When a `not_on_whatsapp` answer can be believed.
//!
//! GOWA checks a number with WhatsApp before querying its picture and answers "not on whatsapp" whenever
//! that check fails, throttled or timed out included (`pkg/utils/whatsapp.go`, `IsOnWhatsapp`). So a "not
//! on whatsapp" is either the truth or a failed lookup, and the worker cannot tell one answer from the
//! other. It can tell a device whose lookups fail: asked again, a failed lookup's number turns out to have a
//! picture (or none, or a hidden one). Per device, the worker keeps that evidence and estimates the share of
//! lookups that fail; a number's "not on whatsapp" becomes final only after enough answers in a row that
//! all of them being failures is less likely than `not_on_whatsapp.max_false_rate`. While the device is
//! throttled (rate-limited or timing out), no such answer is final. Evidence fades with a half-life, back to
//! a cautious start.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use crate::protocol::DeviceId;
use crate::settings::NotOnWhatsappSettings;

/// What a device starts believing: about 3 failed lookups in 10, until evidence says otherwise.
const PRIOR_FAILED: f64 = 3.0;
const PRIOR_LOOKUPS: f64 = 10.0;

/// One gateway answer to a fetch, as evidence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    /// A picture, none, or a hidden one: the number is on WhatsApp.
    Definite {
        /// How many "not on whatsapp" answers this number got before: each was a failed lookup.
        contradicted: u32,
    },
    NotOnWhatsapp,
    /// Throttled or timed out: the device's lookups are failing now.
    Throttled,
}

/// What to do with a "not on whatsapp" answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Believable: final.
    Confirmed,
    /// Ask again later (this was answer `checks` in a row).
    Recheck,
    /// Asked as often as allowed and still not believable: answered, but unconfirmed and retryable.
    Unconfirmed,
}

#[derive(Debug, Clone, Copy, Default)]
struct Evidence {
    /// Definite answers, and failed lookups proven by a later definite answer (decayed counts).
    definite: f64,
    failed: f64,
    throttled_until_ms: u64,
    at_ms: u64,
}

impl Evidence {
    fn decay(&mut self, now_ms: u64, half_life: Duration) {
        let elapsed = now_ms.saturating_sub(self.at_ms) as f64;
        let half = (half_life.as_millis() as f64).max(1.0);
        let keep = 0.5f64.powf(elapsed / half);
        self.definite *= keep;
        self.failed *= keep;
        self.at_ms = now_ms;
    }

    /// The estimated share of this device's lookups that fail.
    fn failure_rate(&self) -> f64 {
        (self.failed + PRIOR_FAILED) / (self.definite + self.failed + PRIOR_LOOKUPS)
    }
}

pub struct LookupHealth {
    settings: NotOnWhatsappSettings,
    cooldown: Duration,
    devices: Mutex<HashMap<Option<DeviceId>, Evidence>>,
}

impl LookupHealth {
    /// `cooldown`: how long a device counts as throttled after a rate limit or a timeout.
    pub fn new(settings: NotOnWhatsappSettings, cooldown: Duration) -> Self {
        Self {
            settings,
            cooldown,
            devices: Mutex::new(HashMap::new()),
        }
    }

    pub fn record(&self, device: Option<&DeviceId>, lookup: Lookup, now_ms: u64) {
        let mut devices = self.devices.lock().unwrap_or_else(|p| p.into_inner());
        // Device ids come from producers: forget the ones not heard of for long.
        if devices.len() > 4096 {
            let forget = self.settings.memory.as_millis() as u64 * 8;
            devices.retain(|_, e| now_ms.saturating_sub(e.at_ms) < forget);
        }
        let evidence = devices.entry(device.cloned()).or_default();
        evidence.decay(now_ms, self.settings.memory);
        match lookup {
            Lookup::Definite { contradicted } => {
                evidence.definite += 1.0;
                evidence.failed += f64::from(contradicted);
            }
            Lookup::NotOnWhatsapp => {}
            Lookup::Throttled => {
                let until = now_ms.saturating_add(self.cooldown.as_millis() as u64);
                evidence.throttled_until_ms = evidence.throttled_until_ms.max(until);
            }
        }
    }

    /// The verdict on a "not on whatsapp" that is the `checks`-th in a row for its number.
    pub fn judge(&self, device: Option<&DeviceId>, checks: u32, now_ms: u64) -> Verdict {
        let (rate, throttled) = {
            let mut devices = self.devices.lock().unwrap_or_else(|p| p.into_inner());
            let evidence = devices.entry(device.cloned()).or_default();
            evidence.decay(now_ms, self.settings.memory);
            (
                evidence.failure_rate(),
                now_ms < evidence.throttled_until_ms,
            )
        };
        if !throttled && checks >= self.required_checks(rate) {
            Verdict::Confirmed
        } else if checks < self.settings.max_checks {
            Verdict::Recheck
        } else {
            Verdict::Unconfirmed
        }
    }

    /// Answers in a row needed before all of them being failed lookups is less likely than the limit.
    fn required_checks(&self, failure_rate: f64) -> u32 {
        let rate = failure_rate.clamp(1e-9, 0.999);
        let needed = self.settings.max_false_rate.ln() / rate.ln();
        (needed.ceil() as u32).max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn health() -> LookupHealth {
        LookupHealth::new(
            NotOnWhatsappSettings {
                max_false_rate: 1e-4,
                max_checks: 8,
                memory: Duration::from_secs(600),
            },
            Duration::from_secs(60),
        )
    }

    /// How many answers in a row a fresh device needs after `definite` clean answers and `failed` proven
    /// failures.
    fn needed(definite: u32, failed: u32) -> u32 {
        let h = health();
        let d = DeviceId::parse("d").unwrap();
        for i in 0..definite {
            let contradicted = u32::from(i < failed);
            h.record(Some(&d), Lookup::Definite { contradicted }, 1_000);
        }
        (1..=8)
            .find(|checks| h.judge(Some(&d), *checks, 1_000) == Verdict::Confirmed)
            .unwrap_or(99)
    }

    #[test]
    fn a_device_starts_cautious_and_trusts_clean_lookups_more() {
        assert_eq!(needed(0, 0), 8, "nothing known: 3 in 10 lookups may fail");
        let after_100 = needed(100, 0);
        let after_1000 = needed(1000, 0);
        assert!(
            after_100 < 8 && after_1000 <= after_100,
            "{after_100} {after_1000}"
        );
        assert_eq!(after_1000, 2, "even a clean device asks twice");
    }

    #[test]
    fn failing_lookups_raise_the_bar() {
        // 3 in 10 lookups failing: each number on WhatsApp costs 0.43 failed lookups before its answer.
        assert!(needed(300, 129) >= 8);
        let h = health();
        let d = DeviceId::parse("d").unwrap();
        for _ in 0..1000 {
            h.record(Some(&d), Lookup::Definite { contradicted: 0 }, 1_000);
        }
        assert_eq!(h.judge(Some(&d), 2, 1_000), Verdict::Confirmed);
        h.record(Some(&d), Lookup::Throttled, 2_000);
        assert_eq!(h.judge(Some(&d), 2, 2_000), Verdict::Recheck, "throttled");
        assert_eq!(
            h.judge(Some(&d), 8, 2_000),
            Verdict::Unconfirmed,
            "asked enough"
        );
        assert_eq!(
            h.judge(Some(&d), 2, 62_001),
            Verdict::Confirmed,
            "cool-down over"
        );
    }

    #[test]
    fn evidence_fades_back_to_caution() {
        let h = health();
        let d = DeviceId::parse("d").unwrap();
        for _ in 0..1000 {
            h.record(Some(&d), Lookup::Definite { contradicted: 0 }, 0);
        }
        assert_eq!(h.judge(Some(&d), 2, 0), Verdict::Confirmed);
        let much_later = 20 * 600_000;
        assert_eq!(h.judge(Some(&d), 2, much_later), Verdict::Recheck);
    }
}
