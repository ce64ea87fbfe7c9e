//! Retries through broker-side delay queues: a queue per tier with a TTL, whose expired messages
//! dead-letter back into the job queue. [`RetryPolicy`] owns every choice about them, so a retry change
//! touches this module only: the tiers, which tier a retry waits in, the delay-queue names, and the
//! history line a failed attempt leaves in the job's headers.

use std::time::Duration;

use rand::Rng;

use crate::protocol::ErrorCode;
use crate::settings::RetrySettings;

/// Where and how long a job waits before it comes back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delay {
    /// The tier (delay queue) it waits in.
    pub tier: Duration,
    /// Its own expiration, at most the tier's TTL.
    pub wait: Duration,
}

#[derive(Debug, Clone)]
pub struct RetryPolicy {
    max_attempts: u32,
    tiers: Vec<Duration>,
}

impl RetryPolicy {
    pub fn new(settings: &RetrySettings) -> Self {
        Self {
            max_attempts: settings.max_attempts,
            tiers: settings.delays.clone(),
        }
    }

    /// The delay queue of one tier for a job queue: `avatar.fetch.delay.5s`.
    pub fn delay_queue(&self, job_queue: &str, tier: Duration) -> String {
        format!("{job_queue}.delay.{}", label(tier))
    }

    /// Every tier of a job queue with its delay queue's name, for declaring and deleting them.
    pub fn delay_queues(&self, job_queue: &str) -> Vec<(Duration, String)> {
        self.tiers
            .iter()
            .map(|tier| (*tier, self.delay_queue(job_queue, *tier)))
            .collect()
    }

    /// The wait before attempt `attempt + 1`, after `attempt` attempts failed, or `None` when that was the
    /// last attempt allowed. The attempt's tier minus up to 20 % jitter or, when the server named a longer
    /// wait, the shortest tier that holds that wait (the longest tier when none does).
    pub fn retry(&self, attempt: u32, server_wait: Option<Duration>) -> Option<Delay> {
        if attempt >= self.max_attempts {
            return None;
        }
        let tier = self.tiers[(attempt as usize)
            .saturating_sub(1)
            .min(self.tiers.len() - 1)];
        let jittered = rand::rng().random_range(tier * 4 / 5..=tier);
        let wanted = server_wait.unwrap_or_default();
        if wanted <= jittered {
            return Some(Delay {
                tier,
                wait: jittered,
            });
        }
        let holding = self
            .tiers
            .iter()
            .copied()
            .filter(|t| *t >= wanted)
            .min()
            .unwrap_or_else(|| self.longest());
        Some(Delay {
            tier: holding,
            wait: wanted.min(holding),
        })
    }

    /// The line attempt `attempt` leaves in the job's `x-avatar-history` header: `<n> <code>: <message>`.
    pub fn history_line(attempt: u32, code: ErrorCode, message: &str) -> String {
        let message: String = message.chars().take(300).collect();
        format!("{attempt} {code}: {message}")
    }

    /// The shortest wait: for asking again soon.
    pub fn first_tier(&self) -> Duration {
        self.tiers
            .first()
            .copied()
            .unwrap_or(Duration::from_secs(1))
    }

    fn longest(&self) -> Duration {
        self.tiers
            .iter()
            .copied()
            .max()
            .unwrap_or(Duration::from_secs(1))
    }
}

/// The queue-name suffix of a tier: `1s`, `2m`, `250ms`.
fn label(tier: Duration) -> String {
    let ms = tier.as_millis();
    if ms.is_multiple_of(60_000) {
        format!("{}m", ms / 60_000)
    } else if ms.is_multiple_of(1_000) {
        format!("{}s", ms / 1_000)
    } else {
        format!("{ms}ms")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(max_attempts: u32, tiers_ms: &[u64]) -> RetryPolicy {
        RetryPolicy::new(&RetrySettings {
            max_attempts,
            delays: tiers_ms
                .iter()
                .copied()
                .map(Duration::from_millis)
                .collect(),
            ..RetrySettings::default()
        })
    }

    fn ms(ms: u64) -> Duration {
        Duration::from_millis(ms)
    }

    #[test]
    fn a_server_backoff_lengthens_the_retry_delay() {
        let policy = policy(5, &[1_000, 5_000, 30_000]);
        let delay = policy.retry(1, None).unwrap();
        assert_eq!(delay.tier, ms(1_000));
        assert!((ms(800)..=ms(1_000)).contains(&delay.wait), "{delay:?}");
        assert_eq!(
            policy.retry(1, Some(Duration::from_secs(20))),
            Some(Delay {
                tier: ms(30_000),
                wait: ms(20_000)
            })
        );
        assert_eq!(
            policy.retry(1, Some(Duration::from_secs(300))),
            Some(Delay {
                tier: ms(30_000),
                wait: ms(30_000)
            })
        );
        let delay = policy.retry(2, Some(ms(100))).unwrap();
        assert_eq!(delay.tier, ms(5_000));
        assert!((ms(4_000)..=ms(5_000)).contains(&delay.wait), "{delay:?}");
    }

    #[test]
    fn later_attempts_take_later_tiers_and_the_last_repeats() {
        let policy = policy(9, &[100, 200, 400]);
        let tiers: Vec<_> = (1..=5)
            .map(|n| policy.retry(n, None).unwrap().tier)
            .collect();
        assert_eq!(tiers, [100, 200, 400, 400, 400].map(ms));
    }

    #[test]
    fn retries_end_with_the_last_attempt() {
        let policy = policy(3, &[100]);
        assert!(policy.retry(2, None).is_some());
        assert_eq!(policy.retry(3, None), None);
        assert_eq!(self::policy(1, &[100]).retry(1, None), None);
    }

    #[test]
    fn names_and_history() {
        let policy = policy(5, &[250, 1_000, 120_000]);
        let names: Vec<_> = policy
            .delay_queues("avatar.fetch")
            .into_iter()
            .map(|(_, name)| name)
            .collect();
        assert_eq!(
            names,
            [
                "avatar.fetch.delay.250ms",
                "avatar.fetch.delay.1s",
                "avatar.fetch.delay.2m"
            ]
        );
        let line = RetryPolicy::history_line(2, ErrorCode::Timeout, &"x".repeat(400));
        assert!(line.starts_with("2 timeout: xxx"));
        assert_eq!(line.len(), "2 timeout: ".len() + 300);
    }
}
