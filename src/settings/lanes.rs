use std::time::Duration;

use serde::Deserialize;

use super::{SettingsError, invalid};

/// Device lanes (docs/scaling.md): each device's jobs wait in queues of their own, and one replica at a
/// time serves them, at the device's pace.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LanesSettings {
    /// Gateway devices are spread over this many groups; one replica at a time serves a group. Every
    /// replica must use the same number: change it only with all of them stopped.
    pub groups: u16,
    /// A lane without a job for this long is removed (its queue deleted, once empty).
    #[serde(rename = "idle_ms", with = "super::millis")]
    pub idle: Duration,
    /// A turn further away than this is not awaited with the job in hand: the lane gives its jobs back to
    /// the broker and pauses until then (the broker closes a channel that holds a job for 30 min).
    #[serde(rename = "max_hold_ms", with = "super::millis")]
    pub max_hold: Duration,
    /// Fetch jobs with this AMQP priority or higher overtake their device's backlog (as do jobs with
    /// `"interactive": true`).
    pub interactive_priority: u8,
    /// How often a replica compares the groups it serves with its fair share and hands the excess over.
    #[serde(rename = "balance_ms", with = "super::millis")]
    pub balance: Duration,
    /// How often an owner renews what it holds of a claim; below the broker's `consumer_timeout`
    /// (30 min by default), which would otherwise close the channel.
    #[serde(rename = "renew_ms", with = "super::millis")]
    pub renew: Duration,
}

impl Default for LanesSettings {
    fn default() -> Self {
        Self {
            groups: 16,
            idle: Duration::from_secs(600),
            max_hold: Duration::from_secs(300),
            interactive_priority: 5,
            balance: Duration::from_secs(5),
            renew: Duration::from_secs(600),
        }
    }
}

impl LanesSettings {
    pub(super) fn validate(&self) -> Result<(), SettingsError> {
        if self.groups == 0 || self.groups > 1024 {
            return Err(invalid("lanes.groups", "must be between 1 and 1024"));
        }
        if self.max_hold.is_zero() || self.max_hold > Duration::from_secs(20 * 60) {
            return Err(invalid(
                "lanes.max_hold_ms",
                "must be between 1 and 1200000 (the broker closes a channel holding a job for 30 min)",
            ));
        }
        if self.renew.is_zero() || self.renew > Duration::from_secs(20 * 60) {
            return Err(invalid(
                "lanes.renew_ms",
                "must be between 1 and 1200000 (below the broker's 30 min consumer_timeout)",
            ));
        }
        if self.idle.is_zero() || self.balance.is_zero() {
            return Err(invalid(
                "lanes.idle_ms",
                "lanes.idle_ms and lanes.balance_ms must be at least 1",
            ));
        }
        if self.interactive_priority == 0 {
            return Err(invalid(
                "lanes.interactive_priority",
                "must be at least 1 (0 is every job's default priority)",
            ));
        }
        Ok(())
    }
}
