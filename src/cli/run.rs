use crate::backend;
use crate::ops::{self, Metrics};
use crate::settings::Settings;
use crate::shutdown::Shutdown;
use crate::worker::Worker;

pub async fn run(settings: Settings) -> anyhow::Result<()> {
    let metrics = Metrics::new();
    tracing::info!(
        gateway = %settings.gateway.base_url,
        default_backend = settings.backend.default.as_str(),
        queues = ?settings.topology.names(),
        "starting"
    );
    let backend = backend::build(&settings, &metrics).await?;
    let admin = settings.admin.clone();
    let worker = Worker::with_metrics(settings, backend, metrics)?;
    // The admin server outlives the worker's drain: it stops only once the worker has returned, so
    // `/readyz` answers 503 (not "connection refused") while in-flight jobs finish.
    let admin_stop = Shutdown::new();
    let admin_server = if admin.enabled {
        let server = ops::serve(
            &admin.bind,
            worker.metrics().clone(),
            worker.readiness().clone(),
            admin_stop.clone(),
        )
        .await
        .map_err(|err| anyhow::anyhow!("admin server on {}: {err}", admin.bind))?;
        Some(server)
    } else {
        None
    };
    let shutdown = Shutdown::new();
    shutdown.trigger_on_signals();
    let result = worker.run(shutdown).await;
    admin_stop.trigger();
    if let Some(server) = admin_server {
        let _ = server.task.await;
    }
    result
}
