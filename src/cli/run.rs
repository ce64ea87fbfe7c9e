use crate::app::App;
use crate::broker::QueueNames;
use crate::settings::Settings;
use crate::shutdown::Shutdown;

pub async fn run(settings: Settings) -> anyhow::Result<()> {
    let names = QueueNames::new(&settings.topology);
    tracing::info!(
        gateway = %settings.gateway.base_url,
        default_backend = settings.backend.default.as_str(),
        fetch_queue = %names.fetch,
        update_queue = %names.update,
        results_queue = %names.results,
        dead_queue = %names.dead,
        "starting"
    );
    let app = App::build(settings).await?;
    let shutdown = Shutdown::new();
    shutdown.trigger_on_signals();
    app.run(shutdown).await;
    Ok(())
}
