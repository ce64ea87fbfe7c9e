//! Injected faults (`PUT /_mock/faults`): latency and probabilistic gateway errors.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Fault settings; probabilities are in `0..=1` and drawn independently per request.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    /// Fixed delay added to every `/user/avatar` request (after device selection).
    pub latency_ms: u64,
    /// Extra uniformly random delay in `0..=jitter_ms`.
    pub jitter_ms: u64,
    /// Probability of 500 `info query returned status 429: rate-overlimit`.
    pub rate_overlimit: f64,
    /// Probability of a timeout: sleeps `timeout_ms`, then 408 `CONTEXT_ERROR` (GET) or
    /// 504 `GATEWAY_TIMEOUT` (POST).
    pub timeout: f64,
    /// Probability of 500 `info query returned status 500: internal-server-error`.
    pub internal_error: f64,
    /// Probability of 401 "you are not connect to services server, please reconnect".
    pub not_connected: f64,
    /// Length of an injected timeout; 5000 like the gateway's GET avatar deadline.
    pub timeout_ms: u64,
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            latency_ms: 0,
            jitter_ms: 0,
            rate_overlimit: 0.0,
            timeout: 0.0,
            internal_error: 0.0,
            not_connected: 0.0,
            timeout_ms: 5000,
        }
    }
}

/// The WhatsApp-side fault chosen for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Injected {
    Timeout(u64),
    RateOverlimit,
    InternalError,
}

fn hit(p: f64) -> bool {
    p > 0.0 && (p >= 1.0 || rand::random::<f64>() < p)
}

impl Faults {
    /// Rejects probabilities outside `0..=1`.
    pub fn validate(&self) -> Result<(), String> {
        for (name, p) in [
            ("rate_overlimit", self.rate_overlimit),
            ("timeout", self.timeout),
            ("internal_error", self.internal_error),
            ("not_connected", self.not_connected),
        ] {
            if !(0.0..=1.0).contains(&p) {
                return Err(format!("{name}: must be between 0 and 1."));
            }
        }
        Ok(())
    }

    /// Awaits the configured latency (never blocks a thread).
    pub async fn delay(&self) {
        let jitter = if self.jitter_ms > 0 {
            rand::random_range(0..=self.jitter_ms)
        } else {
            0
        };
        let total = self.latency_ms.saturating_add(jitter);
        if total > 0 {
            tokio::time::sleep(Duration::from_millis(total)).await;
        }
    }

    /// Whether this request hits the not-connected fault.
    pub fn draw_not_connected(&self) -> bool {
        hit(self.not_connected)
    }

    /// The WhatsApp-side fault for this request, if any (timeout, then rate limit, then internal).
    pub fn draw(&self) -> Option<Injected> {
        if hit(self.timeout) {
            Some(Injected::Timeout(self.timeout_ms))
        } else if hit(self.rate_overlimit) {
            Some(Injected::RateOverlimit)
        } else if hit(self.internal_error) {
            Some(Injected::InternalError)
        } else {
            None
        }
    }
}
