use std::time::Duration;

use serde::Deserialize;

use super::{SettingsError, invalid};

/// When a `not_on_whatsapp` answer is final (docs/protocol.md): GOWA also says "not on whatsapp" when
/// WhatsApp throttles or times out its lookup, so the worker asks again until a run of such answers cannot
/// reasonably be failures.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NotOnWhatsappSettings {
    /// The accepted chance that a final `not_on_whatsapp` is a run of failed lookups, per number.
    pub max_false_rate: f64,
    /// Lookups of one number at most; an answer still not believable then is `confirmed: false`, retryable.
    pub max_checks: u32,
    /// Half-life of a device's evidence (failed and clean lookups).
    #[serde(rename = "memory_ms", with = "super::millis")]
    pub memory: Duration,
}

impl Default for NotOnWhatsappSettings {
    fn default() -> Self {
        Self {
            max_false_rate: 1e-4,
            max_checks: 8,
            memory: Duration::from_secs(600),
        }
    }
}

impl NotOnWhatsappSettings {
    pub(super) fn validate(&self) -> Result<(), SettingsError> {
        if !(self.max_false_rate > 0.0 && self.max_false_rate < 1.0) {
            return Err(invalid(
                "not_on_whatsapp.max_false_rate",
                "must be above 0 and below 1",
            ));
        }
        if self.max_checks == 0 || self.max_checks > 20 {
            return Err(invalid(
                "not_on_whatsapp.max_checks",
                "must be between 1 and 20",
            ));
        }
        if self.memory.is_zero() {
            return Err(invalid("not_on_whatsapp.memory_ms", "must be at least 1"));
        }
        Ok(())
    }
}
