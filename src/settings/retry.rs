use std::time::Duration;

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
    /// Delay tiers; retry n waits `delays[n-1]` (the last tier repeats), minus up to 20 % jitter.
    /// Each tier is a queue `<job queue>.delay.<label>`; changing a delay makes a new queue.
    #[serde(rename = "delays_ms", with = "super::millis::list")]
    pub delays: Vec<Duration>,
    /// A job delivered again and again without finishing (the worker crashed or lost its connection while
    /// running it) is dead-lettered after this many redeliveries.
    pub max_redeliveries: u32,
}

impl Default for RetrySettings {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            delays: [1, 5, 30, 120].map(Duration::from_secs).to_vec(),
            max_redeliveries: 5,
        }
    }
}

impl RetrySettings {
    pub(super) fn validate(&self) -> Result<(), SettingsError> {
        if self.max_attempts == 0 {
            return Err(invalid("retry.max_attempts", "must be at least 1"));
        }
        let allowed = Duration::from_millis(10)..=Duration::from_secs(86_400);
        if self.delays.is_empty() || self.delays.iter().any(|d| !allowed.contains(d)) {
            return Err(invalid(
                "retry.delays_ms",
                "needs at least one delay, each between 10 ms and 24 h",
            ));
        }
        Ok(())
    }
}
