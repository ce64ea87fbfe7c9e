use std::sync::Arc;

use crate::backend::GatewayBackend;
use crate::settings::Settings;
use crate::shutdown::Shutdown;
use crate::worker::Worker;

pub async fn run(settings: Settings) -> anyhow::Result<()> {
    let backend = GatewayBackend::new(&settings.gateway)?;
    tracing::info!(
        gateway = %settings.gateway.base_url,
        queues = ?settings.topology.names(),
        "starting"
    );
    let worker = Worker::new(settings, Arc::new(backend))?;
    let shutdown = Shutdown::new();
    shutdown.trigger_on_signals();
    worker.run(shutdown).await
}
