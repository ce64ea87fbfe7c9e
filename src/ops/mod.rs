//! What the people running the worker look at: Prometheus [`metrics`], the [`readiness`] of the job loop,
//! and the [`admin`] HTTP server exposing both (`/metrics`, `/healthz`, `/readyz`).
//!
//! The worker owns one [`Metrics`] and one [`Readiness`] (see `worker::Worker::metrics`), so several
//! workers in one process (the tests) never mix their numbers.

pub mod admin;
pub mod metrics;
pub mod readiness;

pub use admin::{AdminServer, serve};
pub use metrics::{GaugeGuard, Metrics};
pub use readiness::{Readiness, ReadyState};
