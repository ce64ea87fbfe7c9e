//! `mock-server` binary: see `mock-server --help` and README.md.

use clap::Parser;
use mock_server::config::Cli;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    mock_server::logging::init();
    let config = Cli::parse().into_config().map_err(anyhow::Error::msg)?;
    let server = mock_server::spawn(config).await?;
    tracing::info!(url = %server.base_url(), "ready");
    tokio::signal::ctrl_c().await?;
    server.shutdown().await;
    Ok(())
}
