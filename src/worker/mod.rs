//! The job loop: jobs read from their queues, routed to their device's lane, run there at the device's
//! pace, answered.
//!
//! - `session`: one broker connection's life: topology, channels, the fetch consumer, claims and lanes.
//! - `intake`: a job **enters**: checked once, answered at once when it cannot run, else sent towards its
//!   device's lane (`crate::lanes` **routes** it there and runs it at the device's turn).
//! - `delivery`: a job in its lane: checked on arrival, run at its turn.
//! - `decide`: the rules (refuse, redelivery bound, deadline, retry or give up), free of broker I/O.
//! - `execute`: what a job does against the backend.
//! - `settle`: a decision carried out; the result **leaves** here (published and confirmed, dead letter
//!   or delay queue, then the ack).
//!
//! The broker connection is re-established forever with capped, jittered backoff; while it is down,
//! nothing is consumed and nothing is acked, so nothing is lost.

mod decide;
pub(crate) mod delivery;
mod download;
mod execute;
pub(crate) mod intake;
mod session;
mod settle;

use std::sync::Arc;

use tokio::sync::Semaphore;

use crate::backend::AvatarBackend;
use crate::broker::{self, Backoff, QueueNames, RetryPolicy};
use crate::devices::{LookupHealth, UpdateOrder};
use crate::lanes::names::{Group, LaneNames};
use crate::ops::{Metrics, Readiness};
use crate::protocol::DeviceId;
use crate::settings::BackendKind;
use crate::settings::Settings;
use crate::shutdown::Shutdown;

use download::Downloader;
pub(crate) use session::SessionCtx;
pub use session::SessionEnd;

/// What every job task shares.
pub(crate) struct Services {
    pub settings: Settings,
    pub names: QueueNames,
    pub lane_names: LaneNames,
    pub retry: RetryPolicy,
    pub backend: Arc<dyn AvatarBackend>,
    /// Update stamps (given on reading the update queue) and the last update applied per device.
    pub order: UpdateOrder,
    /// How far each device's "not on whatsapp" answers can be believed.
    pub lookups: LookupHealth,
    pub in_flight: Arc<Semaphore>,
    downloader: Downloader,
    /// The decode memory every update job of this worker shares (`image.decode_memory_bytes`).
    pub decodes: crate::image::DecodeBudget,
    pub metrics: Metrics,
    pub readiness: Readiness,
}

impl Services {
    /// The group that serves `device`: its own when its session is native, else a shard.
    pub fn group_of(&self, device: Option<&DeviceId>) -> Group {
        let backend = &self.settings.backend;
        let native = match device {
            Some(device) => backend
                .devices
                .iter()
                .rev()
                .find(|entry| entry.devices.contains(device))
                .map_or(backend.default, |entry| entry.backend),
            None => BackendKind::Http,
        };
        match (native, device) {
            (BackendKind::Native, Some(device)) => Group::Native(device.clone()),
            _ => Group::shard_of(device, self.settings.lanes.groups),
        }
    }

    /// Whether results may be published to `queue`: the results queue, or a queue whose name starts with
    /// one of `worker.reply_to_prefixes`.
    pub fn reply_to_allowed(&self, queue: &str) -> bool {
        queue == self.names.results
            || self
                .settings
                .worker
                .reply_to_prefixes
                .iter()
                .any(|prefix| queue.starts_with(prefix.as_str()))
    }
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
    ) -> Self {
        let downloader = Downloader::new(&settings.worker);
        let services = Services {
            names: QueueNames::new(&settings.topology),
            lane_names: LaneNames::new(&settings.topology.prefix),
            retry: RetryPolicy::new(&settings.retry),
            order: UpdateOrder::new(),
            lookups: LookupHealth::new(
                settings.not_on_whatsapp.clone(),
                settings.pacing.rate_limited_cooldown,
            ),
            in_flight: Arc::new(Semaphore::new(settings.worker.max_in_flight)),
            downloader,
            decodes: crate::image::DecodeBudget::new(&settings.image),
            readiness: Readiness::new(&metrics).with_sessions(backend.clone()),
            metrics,
            backend,
            settings,
        };
        Self {
            services: Arc::new(services),
            name: format!("avatar-worker-{}", std::process::id()),
        }
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
        let addresses = amqp.addresses();
        let mut backoff = Backoff::new(amqp.reconnect_min, amqp.reconnect_max);
        while !shutdown.is_triggered() {
            let connected = tokio::select! {
                connected = addresses.connect(&self.name) => connected,
                _ = shutdown.wait() => break,
            };
            match connected {
                Ok(broker::Connected { connection, node }) => {
                    tracing::info!(broker = %node, "connected to the broker");
                    self.services.readiness.connected(node);
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
