//! The `avatar-worker` command line: `run`, `enqueue`, `image`.

mod dead;
mod enqueue;
mod logging;
mod run;
mod sync;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::settings::{LogFormat, Settings};

#[derive(Debug, Parser)]
#[command(
    name = "avatar-worker",
    version,
    about = "WhatsApp avatar jobs from RabbitMQ, run on a GOWA gateway"
)]
pub struct Cli {
    /// A TOML file layered over the built-in defaults (see config/default.toml).
    #[arg(long, global = true, env = "AVATAR_WORKER_CONFIG")]
    config: Option<PathBuf>,
    /// Overrides `log.format`.
    #[arg(long, global = true, value_parser = parse_log_format)]
    log_format: Option<LogFormat>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Consume jobs until SIGTERM or SIGINT.
    Run,
    /// Publish one job (and with --wait, print its result).
    Enqueue {
        #[command(subcommand)]
        job: enqueue::EnqueueCommand,
    },
    /// The dead-letter queue.
    Dead {
        #[command(subcommand)]
        command: dead::DeadCommand,
    },
    /// Fetch the pictures of a whole contact list (CSV or JSONL), keeping results and files.
    Sync(sync::SyncArgs),
}

fn parse_log_format(value: &str) -> Result<LogFormat, String> {
    match value {
        "text" => Ok(LogFormat::Text),
        "json" => Ok(LogFormat::Json),
        other => Err(format!("{other:?}: expected text or json")),
    }
}

/// Entry point of the binary.
pub async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let mut settings = Settings::load(cli.config.as_deref())?;
    if let Some(format) = cli.log_format {
        settings.log.format = format;
    }
    match cli.command {
        Command::Run => {
            logging::init(&settings.log);
            run::run(settings).await
        }
        Command::Enqueue { job } => {
            logging::init_quiet(&settings.log);
            enqueue::enqueue(&settings, job).await
        }
        Command::Dead { command } => {
            logging::init_quiet(&settings.log);
            dead::dead(&settings, command).await
        }
        Command::Sync(args) => {
            logging::init_quiet(&settings.log);
            sync::sync(&settings, args).await
        }
    }
}
