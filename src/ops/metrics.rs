//! The worker's Prometheus metrics, kept in a registry of its own (not a process global) so each worker,
//! and each test, reads only its own counts.
//!
//! Labels are low-cardinality on purpose: job kind, result status or error code, gateway operation and HTTP
//! status. Phone numbers never become labels; they would leak personal data and explode the series count.

use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::protocol::{ErrorCode, JobKind, JobResult, Status};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct JobLabels {
    kind: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GatewayLabels {
    op: String,
    code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SessionLabels {
    device: String,
    state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: String,
}

type HistogramFamily = Family<KindLabels, Histogram, fn() -> Histogram>;

/// A gateway call, as the `op` label names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GatewayOp {
    Get,
    Set,
}

impl GatewayOp {
    fn as_str(self) -> &'static str {
        match self {
            GatewayOp::Get => "get",
            GatewayOp::Set => "set",
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PurposeLabels {
    purpose: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ClaimLabels {
    claim: String,
}

struct Inner {
    registry: Registry,
    claims: Family<ClaimLabels, Gauge>,
    lanes: Gauge,
    published: Family<PurposeLabels, Counter>,
    expired: Family<KindLabels, Counter>,
    jobs: Family<JobLabels, Counter>,
    duration: HistogramFamily,
    gateway: Family<GatewayLabels, Counter>,
    retries: Family<ReasonLabels, Counter>,
    dead_lettered: Family<ReasonLabels, Counter>,
    in_flight: Gauge,
    connected: Gauge,
    ready: Gauge,
    consumers: Family<KindLabels, Gauge>,
    native_sessions: Family<SessionLabels, Gauge>,
}

/// A cheap, cloneable handle on one registry and its metric families.
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

/// Job durations run from a few milliseconds (a fetch on a warm gateway) to minutes (retries through delay
/// queues): 5 ms doubling 16 times reaches about 164 s.
fn duration_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.005, 2.0, 16))
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("avatar_worker");
        let jobs = Family::<JobLabels, Counter>::default();
        registry.register(
            "jobs",
            "Jobs answered, by kind and result status (or error code)",
            jobs.clone(),
        );
        let duration: HistogramFamily = Family::new_with_constructor(duration_histogram);
        registry.register(
            "job_duration_seconds",
            "Time from receiving a job to its result, by kind",
            duration.clone(),
        );
        let gateway = Family::<GatewayLabels, Counter>::default();
        registry.register(
            "gateway_requests",
            "Gateway calls, by operation (get/set) and HTTP status (or timeout/transport)",
            gateway.clone(),
        );
        let retries = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "retries",
            "Jobs parked in a delay queue for another attempt, by the error code that caused it",
            retries.clone(),
        );
        let dead_lettered = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "dead_lettered",
            "Jobs copied to the dead-letter queue, by reason",
            dead_lettered.clone(),
        );
        let claims = Family::<ClaimLabels, Gauge>::default();
        registry.register(
            "claims_owned",
            "Claims this replica owns: device groups (shard, native) and reading the update queue (update_intake)",
            claims.clone(),
        );
        let lanes = Gauge::default();
        registry.register(
            "lanes_running",
            "Device lanes this replica serves now",
            lanes.clone(),
        );
        let published = Family::<PurposeLabels, Counter>::default();
        registry.register(
            "job_publishes",
            "Jobs the worker published on their way (hop to an inbox, hop to a lane, retry): the broker work a job costs besides its result",
            published.clone(),
        );
        let expired = Family::<KindLabels, Counter>::default();
        registry.register(
            "jobs_expired",
            "Jobs dropped unanswered because their deadline (the producer's expiration) passed",
            expired.clone(),
        );
        let in_flight = Gauge::default();
        registry.register("in_flight", "Jobs executing right now", in_flight.clone());
        let connected = Gauge::default();
        registry.register(
            "amqp_connected",
            "1 while the worker holds a broker connection, else 0",
            connected.clone(),
        );
        let ready = Gauge::default();
        registry.register(
            "ready",
            "1 when /readyz answers 200 (connected to the broker, consuming, no gateway refusing the credentials, no native session problem), as of this scrape",
            ready.clone(),
        );
        let consumers = Family::<KindLabels, Gauge>::default();
        for kind in [JobKind::Fetch, JobKind::Update] {
            let _ = consumers.get_or_create(&KindLabels {
                kind: kind.as_str().into(),
            });
        }
        registry.register(
            "job_consumers",
            "Consumers this worker holds on the job queues, by kind: fetch while it reads the fetch queue (every consuming replica), update while it holds the update-intake claim; summed over replicas, each queue's consumer count",
            consumers.clone(),
        );
        // Device ids as labels: bounded by configuration (the sessions this process holds), unlike phones.
        let native_sessions = Family::<SessionLabels, Gauge>::default();
        registry.register(
            "native_session",
            "1 for the current state of each native session (connected, disconnected, logged_out, ...)",
            native_sessions.clone(),
        );
        let build = Family::<BuildLabels, Gauge>::default();
        build
            .get_or_create(&BuildLabels {
                version: env!("CARGO_PKG_VERSION").into(),
            })
            .set(1);
        registry.register("build_info", "The running version; always 1", build);
        initialise(&jobs, &duration, &retries, &dead_lettered, &expired);
        Self {
            inner: Arc::new(Inner {
                registry,
                claims,
                lanes,
                published,
                expired,
                jobs,
                duration,
                gateway,
                retries,
                dead_lettered,
                in_flight,
                connected,
                ready,
                consumers,
                native_sessions,
            }),
        }
    }

    /// A job got its result envelope: counts it by status (or error code) and records its duration.
    pub fn job_finished(&self, result: &JobResult) {
        let kind = result.kind.as_str().to_string();
        let status = match &result.error {
            Some(err) => err.code.as_str().to_string(),
            None => result.status.as_str().to_string(),
        };
        self.inner
            .jobs
            .get_or_create(&JobLabels {
                kind: kind.clone(),
                status,
            })
            .inc();
        self.inner
            .duration
            .get_or_create(&KindLabels { kind })
            .observe(result.duration_ms as f64 / 1000.0);
    }

    /// One gateway call: `code` is the HTTP status, or `timeout` / `transport` when none came back.
    pub fn gateway_request(&self, op: GatewayOp, code: &str) {
        self.inner
            .gateway
            .get_or_create(&GatewayLabels {
                op: op.as_str().into(),
                code: code.into(),
            })
            .inc();
    }

    /// A native session is now in `state`: its series is 1, the device's other `states` 0.
    pub fn set_native_session(&self, device: &str, state: &str, states: &[&str]) {
        for candidate in states {
            let labels = SessionLabels {
                device: device.into(),
                state: (*candidate).into(),
            };
            self.inner
                .native_sessions
                .get_or_create(&labels)
                .set(i64::from(*candidate == state));
        }
    }

    /// A transient failure sent the job to a delay queue.
    pub fn retried(&self, code: ErrorCode) {
        self.inner
            .retries
            .get_or_create(&ReasonLabels {
                reason: code.as_str().into(),
            })
            .inc();
    }

    pub fn dead_lettered(&self, reason: &str) {
        self.inner
            .dead_lettered
            .get_or_create(&ReasonLabels {
                reason: reason.into(),
            })
            .inc();
    }

    /// Counts a claim of `kind` this replica owns until the returned guard drops.
    pub fn claim_owned(&self, kind: &str) -> GaugeGuard {
        let labels = ClaimLabels { claim: kind.into() };
        GaugeGuard::count(&self.inner.claims.get_or_create(&labels))
    }

    /// Counts a lane running here until the returned guard drops.
    pub fn lane_running(&self) -> GaugeGuard {
        GaugeGuard::count(&self.inner.lanes)
    }

    /// A job published on its way: `hop` (to a group's inbox), `lane`, or `retry`.
    pub fn published(&self, purpose: &str) {
        self.inner
            .published
            .get_or_create(&PurposeLabels {
                purpose: purpose.into(),
            })
            .inc();
    }

    /// A job dropped unanswered: its deadline passed.
    pub fn expired(&self, kind: JobKind) {
        self.inner
            .expired
            .get_or_create(&KindLabels {
                kind: kind.as_str().into(),
            })
            .inc();
    }

    /// Counts a job as executing until the returned guard drops, so every exit path decrements.
    pub fn in_flight(&self) -> GaugeGuard {
        GaugeGuard::count(&self.inner.in_flight)
    }

    /// Counts a consumer on the job queue of `kind` until the returned guard drops (the consumer ended with
    /// its session, or was cancelled).
    pub fn job_consumer(&self, kind: JobKind) -> GaugeGuard {
        let labels = KindLabels {
            kind: kind.as_str().into(),
        };
        GaugeGuard::count(&self.inner.consumers.get_or_create(&labels))
    }

    pub fn set_connected(&self, connected: bool) {
        self.inner.connected.set(i64::from(connected));
    }

    /// What `/readyz` would answer now: set by the admin server before each `/metrics` answer.
    pub fn set_ready(&self, ready: bool) {
        self.inner.ready.set(i64::from(ready));
    }

    /// The Prometheus text exposition format (OpenMetrics flavour, which Prometheus scrapes).
    pub fn render(&self) -> String {
        let mut out = String::new();
        if let Err(err) = prometheus_client::encoding::text::encode(&mut out, &self.inner.registry)
        {
            tracing::error!(%err, "cannot encode metrics");
        }
        out
    }
}

/// Every series whose labels are known in advance exists from the start at 0, so Prometheus's `increase()`
/// and `rate()` see the first job of a status, the first retry or the first dead letter of a reason (a
/// series that appears at 1 has no earlier sample to rise from, and an alert on it would miss it).
fn initialise(
    jobs: &Family<JobLabels, Counter>,
    duration: &HistogramFamily,
    retries: &Family<ReasonLabels, Counter>,
    dead_lettered: &Family<ReasonLabels, Counter>,
    expired: &Family<KindLabels, Counter>,
) {
    let answers = [
        Status::Ok,
        Status::Unchanged,
        Status::NotSet,
        Status::Hidden,
    ];
    let statuses = answers
        .iter()
        .map(|status| status.as_str())
        .chain(ErrorCode::ALL.iter().map(|code| code.as_str()));
    for status in statuses {
        for kind in [JobKind::Fetch, JobKind::Update] {
            let _ = jobs.get_or_create(&JobLabels {
                kind: kind.as_str().into(),
                status: status.into(),
            });
        }
    }
    for kind in [JobKind::Fetch, JobKind::Update] {
        let labels = KindLabels {
            kind: kind.as_str().into(),
        };
        let _ = duration.get_or_create(&labels);
        let _ = expired.get_or_create(&labels);
    }
    let retried = ErrorCode::ALL
        .iter()
        .filter(|code| code.is_transient() || **code == ErrorCode::NotOnWhatsapp);
    for code in retried {
        let _ = retries.get_or_create(&ReasonLabels {
            reason: code.as_str().into(),
        });
    }
    for reason in DEAD_REASONS {
        let _ = dead_lettered.get_or_create(&ReasonLabels {
            reason: reason.into(),
        });
    }
}

/// Every `reason` of `avatar_worker_dead_lettered_total` (`crate::broker::DeadReason`).
const DEAD_REASONS: [&str; 5] = [
    "invalid_job",
    "invalid_phone",
    "retries_exhausted",
    "redelivery_limit",
    "result_unroutable",
];

/// Takes its one back from a gauge when dropped: a job in flight, a consumer, an owned claim, a running lane,
/// counted for exactly as long as it lasts, however it ends.
pub struct GaugeGuard {
    gauge: Gauge,
}

impl GaugeGuard {
    fn count(gauge: &Gauge) -> Self {
        gauge.inc();
        Self {
            gauge: gauge.clone(),
        }
    }
}

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        self.gauge.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_family_is_exposed_with_its_prefix() {
        let metrics = Metrics::new();
        metrics.gateway_request(GatewayOp::Get, "200");
        metrics.retried(ErrorCode::Timeout);
        metrics.dead_lettered("retries_exhausted");
        metrics.set_connected(true);
        let guard = metrics.in_flight();
        let text = metrics.render();
        for line in [
            "avatar_worker_gateway_requests_total{op=\"get\",code=\"200\"} 1",
            "avatar_worker_retries_total{reason=\"timeout\"} 1",
            "avatar_worker_dead_lettered_total{reason=\"retries_exhausted\"} 1",
            "avatar_worker_amqp_connected 1",
            "avatar_worker_in_flight 1",
            "avatar_worker_build_info{version=\"",
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
        drop(guard);
        assert!(metrics.render().contains("avatar_worker_in_flight 0"));
    }

    #[test]
    fn known_series_exist_at_zero_before_anything_happens() {
        let text = Metrics::new().render();
        for line in [
            "avatar_worker_jobs_total{kind=\"fetch\",status=\"ok\"} 0",
            "avatar_worker_jobs_total{kind=\"fetch\",status=\"device_not_logged_in\"} 0",
            "avatar_worker_jobs_total{kind=\"update\",status=\"gateway_unauthorized\"} 0",
            "avatar_worker_jobs_total{kind=\"fetch\",status=\"rate_limited\"} 0",
            "avatar_worker_job_duration_seconds_count{kind=\"fetch\"} 0",
            "avatar_worker_job_duration_seconds_count{kind=\"update\"} 0",
            "avatar_worker_jobs_expired_total{kind=\"update\"} 0",
            "avatar_worker_retries_total{reason=\"rate_limited\"} 0",
            "avatar_worker_retries_total{reason=\"not_on_whatsapp\"} 0",
            "avatar_worker_dead_lettered_total{reason=\"retries_exhausted\"} 0",
            "avatar_worker_dead_lettered_total{reason=\"invalid_job\"} 0",
            "avatar_worker_ready 0",
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
        assert!(
            !text.contains("avatar_worker_retries_total{reason=\"invalid_job\"}"),
            "only reasons a retry can have"
        );
        for reason in DEAD_REASONS {
            let parsed = crate::broker::DeadReason::parse(reason).expect("a dead-letter reason");
            assert_eq!(parsed.as_str(), reason);
        }
    }

    #[test]
    fn job_consumers_are_exposed_at_zero_and_follow_their_guards() {
        let metrics = Metrics::new();
        let text = metrics.render();
        for kind in ["fetch", "update"] {
            let line = format!("avatar_worker_job_consumers{{kind=\"{kind}\"}} 0");
            assert!(text.contains(&line), "{line} missing from\n{text}");
        }
        let fetch = metrics.job_consumer(JobKind::Fetch);
        let update = metrics.job_consumer(JobKind::Update);
        let text = metrics.render();
        assert!(text.contains("avatar_worker_job_consumers{kind=\"fetch\"} 1"));
        assert!(text.contains("avatar_worker_job_consumers{kind=\"update\"} 1"));
        drop(fetch);
        let text = metrics.render();
        assert!(text.contains("avatar_worker_job_consumers{kind=\"fetch\"} 0"));
        assert!(text.contains("avatar_worker_job_consumers{kind=\"update\"} 1"));
        drop(update);
        assert!(
            metrics
                .render()
                .contains("avatar_worker_job_consumers{kind=\"update\"} 0")
        );
    }
}
