use clap::Subcommand;

use crate::settings::Settings;

#[derive(Debug, Subcommand)]
pub enum DeadCommand {
    /// Move dead letters back to the job queue they came from, attempts reset.
    Replay {
        /// At most this many.
        #[arg(long)]
        limit: Option<usize>,
    },
}

pub async fn dead(settings: &Settings, command: DeadCommand) -> anyhow::Result<()> {
    let client = super::connect_client(settings).await?;
    match command {
        DeadCommand::Replay { limit } => {
            let report = client.replay_dead(limit).await?;
            println!("{}", serde_json::to_string(&report)?);
        }
    }
    Ok(())
}
