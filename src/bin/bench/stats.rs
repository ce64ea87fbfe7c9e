//! What one run measured.

use std::time::Duration;

#[derive(Debug, Default)]
pub struct RunStats {
    pub answered: usize,
    /// Jobs per second from the first publish to the last result.
    pub throughput: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    /// Mean size of a result body, so the echo baseline answers with the same.
    pub result_bytes: usize,
    /// Achieved results per second of each device, first to last result.
    pub per_device_rate: Vec<(String, f64)>,
}

/// The `q` quantile (0..1) of sorted latencies, in milliseconds.
pub fn percentile(sorted: &[Duration], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let index = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[index.min(sorted.len() - 1)].as_secs_f64() * 1000.0
}
