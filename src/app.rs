//! The worker as `avatar-worker run` starts it, assembled in one place so the tests start exactly the
//! same thing: the backend the settings describe, one metrics registry, the job loop, and the admin server.

use std::net::SocketAddr;
use std::sync::Arc;

use crate::backend::{self, AvatarBackend, BuildError};
use crate::ops::{self, AdminServer, Metrics, Readiness};
use crate::settings::Settings;
use crate::shutdown::Shutdown;
use crate::worker::Worker;

/// Why the worker could not start. Each names what to fix; none is a job's error.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Backend(#[from] BuildError),
    #[error("admin server on {bind}: {source}")]
    Admin {
        bind: SocketAddr,
        source: std::io::Error,
    },
}

/// A worker ready to run, its admin port already bound.
pub struct App {
    worker: Worker,
    admin: Option<AdminServer>,
    /// Stops the admin server after the worker's drain, so `/readyz` answers 503 (not "connection
    /// refused") while in-flight jobs finish.
    admin_stop: Shutdown,
}

impl App {
    /// Everything `settings` describe: native sessions are opened and locked here, the admin port bound.
    pub async fn build(settings: Settings) -> Result<Self, StartupError> {
        let metrics = Metrics::new();
        let backend = backend::build(&settings, &metrics).await?;
        backend.check_at_start().await;
        Self::build_on(settings, backend, metrics).await
    }

    /// As [`App::build`], on a backend assembled by the caller (tests of the native backend), counting into
    /// `metrics` (the registry the backend counts into).
    pub async fn build_on(
        settings: Settings,
        backend: Arc<dyn AvatarBackend>,
        metrics: Metrics,
    ) -> Result<Self, StartupError> {
        let admin_settings = settings.admin.clone();
        let worker = Worker::with_metrics(settings, backend, metrics);
        let admin_stop = Shutdown::new();
        let admin = if admin_settings.enabled {
            let bind = admin_settings.bind;
            let server = ops::serve(
                &admin_settings,
                worker.metrics().clone(),
                worker.readiness().clone(),
                admin_stop.clone(),
            )
            .await
            .map_err(|source| StartupError::Admin { bind, source })?;
            Some(server)
        } else {
            None
        };
        Ok(Self {
            worker,
            admin,
            admin_stop,
        })
    }

    /// Where the admin server listens (`None` when `admin.enabled = false`).
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().map(|admin| admin.addr)
    }

    pub fn metrics(&self) -> &Metrics {
        self.worker.metrics()
    }

    pub fn readiness(&self) -> &Readiness {
        self.worker.readiness()
    }

    /// Consumes jobs until `shutdown` triggers, drains, closes the sessions, then stops the admin server.
    pub async fn run(self, shutdown: Shutdown) {
        self.worker.run(shutdown).await;
        self.admin_stop.trigger();
        if let Some(admin) = self.admin {
            let _ = admin.task.await;
        }
    }
}
