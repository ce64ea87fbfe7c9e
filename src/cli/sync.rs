use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;

use crate::broker::QueueNames;
use crate::client::{Batch, BatchOptions};
use crate::protocol::DeviceId;
use crate::settings::Settings;
use crate::sync::{self, InputFormat, Progress, SyncOptions};

#[derive(Debug, clap::Args)]
pub struct SyncArgs {
    /// The contact list: CSV with a `phone` column (optional `device_id`, `known_id`), or JSON Lines
    /// with the same fields (`.jsonl`, `.ndjson`).
    input: PathBuf,
    /// The input format, when the extension does not tell.
    #[arg(long, value_enum)]
    format: Option<InputFormat>,
    /// The device for rows without a device_id.
    #[arg(long)]
    device: Option<String>,
    /// Results file: one JSON line per row (phone, device, status, picture id, error code, file).
    #[arg(long)]
    output: PathBuf,
    /// Download the pictures and keep each once as <sha256>.jpg in this directory.
    #[arg(long)]
    download_dir: Option<PathBuf>,
    /// Results of an earlier run: its picture ids become known_id, so unchanged pictures are skipped.
    #[arg(long)]
    previous: Option<PathBuf>,
    /// Keep the rows already in --output and ask only the others.
    #[arg(long)]
    resume: bool,
    /// Jobs published and not yet answered, at most.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    in_flight: u32,
    /// Broker connection attempts in a row, with no result in between, before giving up.
    #[arg(long, default_value_t = 6, value_parser = clap::value_parser!(u32).range(1..))]
    connect_attempts: u32,
    /// Give up when no result arrives for this many seconds while rows are outstanding.
    #[arg(long, default_value_t = 600)]
    idle_timeout: u64,
}

pub async fn sync(settings: &Settings, args: SyncArgs) -> anyhow::Result<()> {
    let device = args
        .device
        .map(DeviceId::parse)
        .transpose()
        .map_err(anyhow::Error::msg)
        .context("--device")?;
    let options = SyncOptions {
        input: args.input,
        format: args.format,
        device,
        output: args.output,
        download_dir: args.download_dir,
        previous: args.previous,
        resume: args.resume,
    };
    if std::fs::metadata(&options.input).is_ok_and(|m| m.is_file() && m.len() == 0) {
        anyhow::bail!(
            "{} is empty: no contact rows to sync (CSV needs a `phone` header and one row per contact)",
            options.input.display()
        );
    }
    let plan = sync::prepare(&options)?;
    if plan.input_rows == 0 {
        anyhow::bail!(
            "{} is empty: no contact rows to sync (CSV needs a `phone` header and one row per contact)",
            options.input.display()
        );
    }
    for malformed in &plan.malformed {
        eprintln!("{}: skipped {malformed}", options.input.display());
    }
    let batch = Batch::new(
        settings.amqp.addresses(),
        QueueNames::new(&settings.topology),
        BatchOptions {
            in_flight: args.in_flight as usize,
            max_connect_attempts: args.connect_attempts,
            reconnect_min: settings.amqp.reconnect_min,
            reconnect_max: settings.amqp.reconnect_max,
            idle_timeout: Some(Duration::from_secs(args.idle_timeout)),
            // Waited for as long as the sync waits for any answer; later, nobody reads it.
            job_ttl: Some(Duration::from_secs(args.idle_timeout)),
        },
    );
    let progress = Progress::stderr(plan.to_do() as u64);
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    match sync::execute_until(plan, batch, progress, ctrl_c).await {
        Ok(summary) => {
            print!("{summary}");
            Ok(())
        }
        Err(sync::SyncError::Interrupted {
            unanswered,
            summary,
        }) => {
            print!("{summary}");
            anyhow::bail!(
                "interrupted with {unanswered} rows unanswered; the answers so far are in {}: rerun with \
                 --resume to continue",
                options.output.display()
            )
        }
        Err(error) => Err(error).with_context(|| {
            format!(
                "sync stopped (broker {}); rerun with --resume to continue",
                settings.amqp.redacted_url()
            )
        }),
    }
}
