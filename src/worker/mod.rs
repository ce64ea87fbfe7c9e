//! The job loop: consume from the job queues, run each job on its device, publish its result, ack.
//!
//! - `session`: one broker connection's life: channels, topology, consumers, dispatch. A job **enters** here.
//! - `delivery`: one delivery's route: parse, decide, settle. A job is **routed** here.
//! - `decide`: the rules (refuse, redelivery bound, pacing park, retry or give up), free of broker I/O.
//! - `execute`: what a job does against the backend.
//! - `settle`: a decision carried out; the result **leaves** here (published and confirmed, dead letter
//!   or delay queue, then the ack).
//!
//! The broker connection is re-established forever with capped, jittered backoff; while it is down,
//! nothing is consumed and nothing is acked, so nothing is lost.

mod decide;
mod delivery;
mod download;
mod execute;
mod session;
mod settle;

use std::sync::Arc;

use tokio::sync::Semaphore;

use crate::backend::AvatarBackend;
use crate::broker::{self, Backoff, QueueNames, RetryPolicy};
use crate::devices::{DeviceGate, Pacer, UpdateOrder};
use crate::ops::{Metrics, Readiness};
use crate::settings::Settings;
use crate::shutdown::Shutdown;

use download::Downloader;
pub use session::SessionEnd;

/// What every job task shares.
pub(crate) struct Services {
    settings: Settings,
    names: QueueNames,
    retry: RetryPolicy,
    backend: Arc<dyn AvatarBackend>,
    pacer: Pacer,
    gate: DeviceGate,
    order: UpdateOrder,
    in_flight: Arc<Semaphore>,
    downloader: Downloader,
    metrics: Metrics,
    readiness: Readiness,
}

pub struct Worker {
    services: Arc<Services>,
    name: String,
}

impl Worker {
    /// A worker on `backend`, counting into `metrics` (share it with the backend, so its calls land in the
    /// same registry). [`crate::app::App`] assembles both from the settings.
    pub fn with_metrics(
        settings: Settings,
        backend: Arc<dyn AvatarBackend>,
        metrics: Metrics,
    ) -> Result<Self, reqwest::Error> {
        let downloader = Downloader::new(
            settings.worker.download_max_bytes,
            settings.worker.download_timeout,
        )?;
        let services = Services {
            names: QueueNames::new(&settings.topology),
            retry: RetryPolicy::new(&settings.retry),
            pacer: Pacer::new(settings.pacing.clone()),
            gate: DeviceGate::new(),
            order: UpdateOrder::new(),
            in_flight: Arc::new(Semaphore::new(settings.worker.max_in_flight)),
            downloader,
            readiness: Readiness::new(&metrics).with_sessions(backend.clone()),
            metrics,
            backend,
            settings,
        };
        Ok(Self {
            services: Arc::new(services),
            name: format!("avatar-worker-{}", std::process::id()),
        })
    }

    /// This worker's metrics, for the admin server and tests.
    pub fn metrics(&self) -> &Metrics {
        &self.services.metrics
    }

    /// Whether this worker is connected and consuming, for `/readyz` and tests.
    pub fn readiness(&self) -> &Readiness {
        &self.services.readiness
    }

    /// Runs until `shutdown` is triggered, then drains in-flight jobs within the grace budget.
    pub async fn run(&self, shutdown: Shutdown) {
        let amqp = &self.services.settings.amqp;
        self.services.readiness.watch(&shutdown);
        let mut backoff = Backoff::new(amqp.reconnect_min, amqp.reconnect_max);
        while !shutdown.is_triggered() {
            let connected = tokio::select! {
                connected = broker::connect(&amqp.url, &self.name) => connected,
                _ = shutdown.wait() => break,
            };
            match connected {
                Ok(connection) => {
                    self.services.readiness.connected();
                    tracing::info!(broker = %amqp.redacted_url(), "connected to the broker");
                    match session::run(&self.services, connection, &shutdown, &mut backoff).await {
                        SessionEnd::Shutdown => break,
                        SessionEnd::Lost(reason) => {
                            self.services.readiness.disconnected(reason.as_str());
                            tracing::warn!(%reason, "broker connection lost; reconnecting");
                        }
                    }
                }
                Err(err) => {
                    self.services.readiness.disconnected(err.to_string());
                    tracing::warn!(broker = %amqp.redacted_url(), %err, "cannot reach the broker");
                }
            }
            let delay = backoff.next_delay();
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = shutdown.wait() => break,
            }
        }
        self.services.readiness.stopping();
        self.services.backend.close().await;
        tracing::info!("worker stopped");
    }
}
