use std::time::Duration;

use serde::Deserialize;

use super::{SettingsError, check_devices, invalid};
use crate::protocol::{DeviceId, JobKind};

/// How fast and how wide one device may go for one job kind.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limit {
    /// Jobs per second, sustained; 0 means no rate limit.
    pub rate_per_s: f64,
    /// Jobs that may start back to back before the rate applies.
    pub burst: u32,
    /// Jobs running at once.
    pub concurrency: usize,
}

/// Per-device pacing. WhatsApp suspends accounts that look like scrapers, so the defaults are slow:
/// fetches about one per second per device (what the WAHA maintainers use for bulk contact pulls) with a
/// small burst, and profile-picture updates at most one per 10 s (Green API's documented limit).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PacingSettings {
    /// `false` switches rates and per-device caps off (tests, benchmarks); only `worker.max_in_flight` applies.
    pub enabled: bool,
    pub fetch: Limit,
    pub update: Limit,
    /// After `rate_limited`, the device's rate is divided by `rate_limited_factor` for this long.
    #[serde(rename = "rate_limited_cooldown_ms", with = "super::millis")]
    pub rate_limited_cooldown: Duration,
    pub rate_limited_factor: f64,
    pub devices: Vec<DevicePacing>,
}

/// Overrides for some devices; unset kinds keep the defaults.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DevicePacing {
    pub devices: Vec<DeviceId>,
    pub fetch: Option<Limit>,
    pub update: Option<Limit>,
}

impl Default for PacingSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            fetch: Limit {
                rate_per_s: 1.0,
                burst: 5,
                concurrency: 2,
            },
            update: Limit {
                rate_per_s: 0.1,
                burst: 1,
                concurrency: 1,
            },
            rate_limited_cooldown: Duration::from_secs(60),
            rate_limited_factor: 4.0,
            devices: Vec::new(),
        }
    }
}

impl PacingSettings {
    /// The limit for one device and kind, or `None` when pacing is off.
    pub fn limit(&self, device: Option<&DeviceId>, kind: JobKind) -> Option<Limit> {
        if !self.enabled {
            return None;
        }
        let pick = |p: &DevicePacing| match kind {
            JobKind::Fetch => p.fetch,
            JobKind::Update => p.update,
        };
        let overridden = device.and_then(|device| {
            self.devices
                .iter()
                .filter(|p| p.devices.contains(device))
                .find_map(pick)
        });
        let limit = overridden.unwrap_or(match kind {
            JobKind::Fetch => self.fetch,
            JobKind::Update => self.update,
        });
        Some(limit)
    }

    pub(super) fn validate(&self) -> Result<(), SettingsError> {
        let check = |key: &'static str, limit: &Limit| {
            if !(limit.rate_per_s >= 0.0 && limit.rate_per_s.is_finite()) {
                return Err(invalid(key, "rate_per_s must be 0 (no limit) or positive"));
            }
            if limit.burst == 0 || limit.concurrency == 0 {
                return Err(invalid(key, "burst and concurrency must be at least 1"));
            }
            Ok(())
        };
        check("pacing.fetch", &self.fetch)?;
        check("pacing.update", &self.update)?;
        for device in &self.devices {
            check_devices("pacing.devices.devices", &device.devices)?;
            if let Some(limit) = &device.fetch {
                check("pacing.devices.fetch", limit)?;
            }
            if let Some(limit) = &device.update {
                check("pacing.devices.update", limit)?;
            }
        }
        if self.rate_limited_factor < 1.0 {
            return Err(invalid("pacing.rate_limited_factor", "must be at least 1"));
        }
        Ok(())
    }
}
