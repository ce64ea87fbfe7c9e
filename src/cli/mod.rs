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
    crate::client::Client::connect_with(
        settings.amqp.addresses(),
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

/// What the binary prints for an error: each cause once (a cause whose text its parent already holds is
/// left out), joined with `: `, and a hint when RabbitMQ refused the login.
pub fn error_text(error: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if parts.last().is_some_and(|last| last.contains(&text)) || text.is_empty() {
            continue;
        }
        parts.push(text);
    }
    let mut out = parts.join(": ");
    let lower = out.to_ascii_lowercase();
    if lower.contains("not_found - no queue") {
        out.push_str(
            "\nhint: that queue does not exist yet: a worker declares its queues when it starts \
             (avatar-worker run), so check that one ran with this topology.prefix \
             (AVATAR_WORKER__TOPOLOGY__PREFIX) or queue name",
        );
    }
    if lower.contains("access_refused") || lower.contains("access refused") {
        out.push_str(
            "\nhint: RabbitMQ refused the login. Its default user guest/guest may connect only from \
             localhost (loopback_users); from another host or a container, create a user \
             (rabbitmqctl add_user NAME PASSWORD; rabbitmqctl set_permissions NAME \".*\" \".*\" \".*\") \
             and put it in AVATAR_WORKER__AMQP__URL",
        );
    }
    out
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

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn every_flag_has_a_help_line() {
        fn check(command: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for arg in command.get_arguments() {
                let id = arg.get_id().as_str();
                if id == "help" || id == "version" {
                    continue;
                }
                if arg.get_help().is_none() && arg.get_long_help().is_none() {
                    missing.push(format!("{path} --{id}"));
                }
            }
            for sub in command.get_subcommands() {
                if sub.get_about().is_none() && sub.get_long_about().is_none() {
                    missing.push(format!("{path} {} (no about)", sub.get_name()));
                }
                check(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
        let mut missing = Vec::new();
        check(&Cli::command(), "avatar-worker", &mut missing);
        assert!(missing.is_empty(), "without help: {missing:#?}");
    }

    #[test]
    fn each_cause_is_printed_once() {
        #[derive(Debug, thiserror::Error)]
        #[error("broker: {0}")]
        struct Outer(#[source] std::io::Error);
        let io = std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            "Connection refused (os error 111)",
        );
        let error = anyhow::Error::new(Outer(io)).context("cannot reach the broker at amqp://x");
        assert_eq!(
            error_text(&error),
            "cannot reach the broker at amqp://x: broker: Connection refused (os error 111)"
        );
        let missing = anyhow::anyhow!("NOT_FOUND - no queue 'x.dead' in vhost '/'");
        assert!(error_text(&missing).contains("topology.prefix"));
        let refused = anyhow::anyhow!("ACCESS_REFUSED - Login was refused");
        assert!(error_text(&refused).contains("only from localhost"));
    }
}
