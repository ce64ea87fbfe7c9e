//! The `avatar-worker` command line: `run`, `enqueue`, `image`, `dead`, `sync`, `pair`, `status`,
//! `results`, `config`.

mod dead;
mod enqueue;
mod image;
mod logging;
mod pair;
mod results;
mod run;
mod status;
mod sync;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::settings::{LogFormat, Settings};

#[derive(Debug, Parser)]
#[command(
    name = "avatar-worker",
    version,
    about = "WhatsApp avatar jobs from RabbitMQ, run on a GOWA gateway or in-process sessions (--features native)"
)]
pub struct Cli {
    /// A TOML file layered over the built-in defaults (see config/default.toml).
    #[arg(long, global = true, env = "AVATAR_WORKER_CONFIG")]
    config: Option<PathBuf>,
    /// Overrides `log.format`.
    #[arg(long, global = true, value_enum)]
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
    /// The image pipeline of update jobs.
    Image {
        #[command(subcommand)]
        command: image::ImageCommand,
    },
    /// The dead-letter queue.
    Dead {
        #[command(subcommand)]
        command: dead::DeadCommand,
    },
    /// Fetch the pictures of a whole contact list (CSV or JSONL), keeping results and files.
    Sync(sync::SyncArgs),
    /// Link a device to a WhatsApp account for the native backend (QR code, or pair code with --phone).
    Pair(pair::PairArgs),
    /// Every queue of the topology with its depth and consumers, and the dead letters by reason; exits
    /// non-zero when no worker consumes the job queues.
    Status,
    /// The results waiting on the results queue (jobs published without reply_to), one JSON line each.
    Results(results::ResultsArgs),
    /// The effective configuration (defaults, --config file, environment), secrets redacted; warns about
    /// AVATAR_WORKER_* variables that are never read.
    Config,
}

/// A producer connection with the configured broker and queue names.
async fn connect_client(settings: &Settings) -> anyhow::Result<crate::client::Client> {
    use anyhow::Context;
    use secrecy::ExposeSecret;
    crate::client::Client::connect_with(
        settings.amqp.url.expose_secret(),
        crate::broker::QueueNames::new(&settings.topology),
    )
    .await
    .with_context(|| {
        format!(
            "cannot reach the broker at {}",
            settings.amqp.redacted_url()
        )
    })
}

/// Entry point of the binary.
pub async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let unread = crate::settings::unread_env_vars(std::env::vars());
    if !matches!(cli.command, Command::Run) {
        for warning in &unread {
            eprintln!("warning: {warning}");
        }
    }
    if matches!(cli.command, Command::Config) {
        let effective = crate::settings::effective(cli.config.as_deref(), std::env::vars())?;
        print!("{}", crate::settings::effective_text(&effective));
        return Ok(());
    }
    let mut settings = Settings::load(cli.config.as_deref())?;
    if let Some(format) = cli.log_format {
        settings.log.format = format;
    }
    match cli.command {
        Command::Run => {
            logging::init(&settings.log);
            for warning in &unread {
                tracing::warn!("{warning}");
            }
            run::run(settings).await
        }
        Command::Enqueue { job } => {
            logging::init_quiet(&settings.log);
            enqueue::enqueue(&settings, job).await
        }
        Command::Image { command } => image::image(&settings, command),
        Command::Dead { command } => {
            logging::init_quiet(&settings.log);
            dead::dead(&settings, command).await
        }
        Command::Sync(args) => {
            logging::init_quiet(&settings.log);
            sync::sync(&settings, args).await
        }
        Command::Pair(args) => {
            logging::init_quiet(&settings.log);
            pair::pair(&settings, args).await
        }
        Command::Status => {
            logging::init_quiet(&settings.log);
            status::status(&settings).await
        }
        Command::Results(args) => {
            logging::init_quiet(&settings.log);
            results::results(&settings, args).await
        }
        Command::Config => Ok(()),
    }
}
