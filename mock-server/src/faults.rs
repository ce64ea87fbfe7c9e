//! Injected faults (`PUT /_mock/faults`, `--fault-*` flags): latency and WhatsApp-side errors.
//!
//! Each WhatsApp query a request makes draws its faults independently:
//! * the on-WhatsApp lookup (only when GOWA makes one): `lookup_error`, then `rate_overlimit`;
//!   GOWA swallows any lookup error (`pkg/utils/whatsapp.go` `IsOnWhatsapp`), so a hit is a
//!   400 `INVALID_JID` "not on whatsapp";
//! * each picture query (`GetProfilePictureInfo`) and the upload (`SetGroupPhoto`): `timeout`,
//!   then `rate_overlimit`, then `internal_error`.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Fault settings; probabilities are in `0..=1`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    /// Fixed delay added to every `/user/avatar` request (after device selection).
    pub latency_ms: u64,
    /// Extra uniformly random delay in `0..=jitter_ms`.
    pub jitter_ms: u64,
    /// Probability that a WhatsApp query is throttled: 400 `INVALID_JID` at the lookup,
    /// 500 `info query returned status 429: rate-overlimit` at the picture query or upload.
    pub rate_overlimit: f64,
    /// Probability of a picture-query or upload timeout: sleeps `timeout_ms`, then 408
    /// `CONTEXT_ERROR` (GET), or `upload_timeout_ms`, then 504 `GATEWAY_TIMEOUT` (POST).
    pub timeout: f64,
    /// Probability of 500 `info query returned status 500: internal-server-error` (picture query,
    /// upload).
    pub internal_error: f64,
    /// Probability of 401 "you are not connect to services server, please reconnect".
    pub not_connected: f64,
    /// Probability that the on-WhatsApp lookup fails (any error: timeout, network): 400
    /// `INVALID_JID` "Phone … is not on whatsapp" even for a registered number.
    pub lookup_error: f64,
    /// Length of an injected GET timeout; 5000 like GOWA's GET avatar deadline.
    pub timeout_ms: u64,
    /// Length of an injected POST timeout, counted from the start of the request; 45000 like
    /// GOWA's request deadline (`middleware.DefaultRequestTimeout`).
    pub upload_timeout_ms: u64,
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
            lookup_error: 0.0,
            timeout_ms: 5000,
            upload_timeout_ms: 45_000,
        }
    }
}

/// The fault that hit one picture query or upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Injected {
    /// Sleep this long, then time out.
    Timeout(Duration),
    RateOverlimit,
    InternalError,
}

impl Injected {
    /// The text of whatsmeow's IQ error (timeouts have none).
    pub fn iq_error(self) -> Option<&'static str> {
        match self {
            Injected::Timeout(_) => None,
            Injected::RateOverlimit => Some("info query returned status 429: rate-overlimit"),
            Injected::InternalError => {
                Some("info query returned status 500: internal-server-error")
            }
        }
    }
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
            ("lookup_error", self.lookup_error),
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

    /// Whether the on-WhatsApp lookup fails (`lookup_error`, else `rate_overlimit`).
    pub fn draw_lookup_failure(&self) -> bool {
        hit(self.lookup_error) || hit(self.rate_overlimit)
    }

    fn draw(&self, timeout_ms: u64) -> Option<Injected> {
        if hit(self.timeout) {
            Some(Injected::Timeout(Duration::from_millis(timeout_ms)))
        } else if hit(self.rate_overlimit) {
            Some(Injected::RateOverlimit)
        } else if hit(self.internal_error) {
            Some(Injected::InternalError)
        } else {
            None
        }
    }

    /// The fault of one picture query, if any.
    pub fn draw_query(&self) -> Option<Injected> {
        self.draw(self.timeout_ms)
    }

    /// The fault of the upload, if any.
    pub fn draw_upload(&self) -> Option<Injected> {
        self.draw(self.upload_timeout_ms)
    }
}
