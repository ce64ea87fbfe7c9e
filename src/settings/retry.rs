use serde::Deserialize;

use super::{SettingsError, invalid};

/// Transient failures come back through broker-side delay queues (TTL + dead-letter), never by sleeping
/// on a delivery: the worker stays free, and a restart loses no waiting job.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetrySettings {
    /// Attempts in all, the first included. After the last, the job gets an error result with
    /// `retryable: true` and goes to the dead-letter queue.
    pub max_attempts: u32,
    /// Delay tiers; retry n waits `delays_ms[n-1]` (the last tier repeats), minus up to 20 % jitter.
    /// Each tier is a queue `<job queue>.delay.<label>`; changing a delay makes a new queue.
    pub delays_ms: Vec<u64>,
    /// A job delivered again and again without finishing (the worker crashed or lost its connection while
    /// running it) is dead-lettered after this many redeliveries.
    pub max_redeliveries: u32,
}

impl Default for RetrySettings {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            delays_ms: vec![1_000, 5_000, 30_000, 120_000],
            max_redeliveries: 5,
        }
    }
}

impl RetrySettings {
    pub(super) fn validate(&self) -> Result<(), SettingsError> {
        if self.max_attempts == 0 {
            return Err(invalid("retry.max_attempts", "must be at least 1"));
        }
        if self.delays_ms.is_empty() || self.delays_ms.iter().any(|d| *d < 10 || *d > 86_400_000) {
            return Err(invalid(
                "retry.delays_ms",
                "needs at least one delay, each between 10 ms and 24 h",
            ));
        }
        Ok(())
    }
}

/// The queue-name suffix of a delay tier: `1s`, `2m`, `250ms`.
pub fn delay_label(ms: u64) -> String {
    if ms.is_multiple_of(60_000) {
        format!("{}m", ms / 60_000)
    } else if ms.is_multiple_of(1_000) {
        format!("{}s", ms / 1_000)
    } else {
        format!("{ms}ms")
    }
}
