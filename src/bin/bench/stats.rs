//! What one run measured.

use std::collections::HashMap;
use std::time::{Duration, Instant};

#[derive(Debug, Default)]
pub struct RunStats {
    pub answered: usize,
    /// Jobs per second from the first publish to the last result.
    pub throughput: f64,
    /// From the first publish until the broker confirmed the last.
    pub published_in: Duration,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    /// Mean size of a result body, so the echo baseline answers with the same.
    pub result_bytes: usize,
    /// When each device's results arrived, in order.
    pub arrivals: HashMap<String, Vec<Instant>>,
}

impl RunStats {
    /// Each device's results per second, first result to last; devices with fewer than two are left out.
    pub fn device_rates(&self) -> Vec<(String, f64)> {
        let Some(origin) = self.arrivals.values().flatten().min().copied() else {
            return Vec::new();
        };
        let seconds = self
            .arrivals
            .iter()
            .map(|(device, times)| {
                let times = times
                    .iter()
                    .map(|at| at.duration_since(origin).as_secs_f64());
                (device.clone(), times.collect())
            })
            .collect();
        rates(&seconds, None, 2)
    }
}

/// Each device's events per second, first to last at or after `since` (all of them without it), by device
/// name; `times` in seconds on any one clock, sorted. Devices with fewer than `least` events in that span are
/// left out.
pub fn rates(
    times: &HashMap<String, Vec<f64>>,
    since: Option<f64>,
    least: usize,
) -> Vec<(String, f64)> {
    let mut rates: Vec<(String, f64)> = times
        .iter()
        .filter_map(|(device, times)| {
            let times: Vec<f64> = times
                .iter()
                .copied()
                .filter(|at| since.is_none_or(|since| *at >= since))
                .collect();
            let span = times.last()? - times.first()?;
            (times.len() >= least && span > 0.0)
                .then(|| (device.clone(), (times.len() - 1) as f64 / span))
        })
        .collect();
    rates.sort_by(|a, b| a.0.cmp(&b.0));
    rates
}

/// The `q` quantile (0..1) of sorted latencies, in milliseconds.
pub fn percentile(sorted: &[Duration], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let index = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[index.min(sorted.len() - 1)].as_secs_f64() * 1000.0
}
