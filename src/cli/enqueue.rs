use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use base64::Engine;
use clap::Subcommand;

use crate::protocol::{
    DeviceId, FetchJob, ImageSpec, JobId, JobKind, JobResult, Phone, Status, UpdateJob,
};
use crate::settings::Settings;

#[derive(Debug, Subcommand)]
pub enum EnqueueCommand {
    /// A profile picture lookup.
    Fetch {
        /// A number or any JID.
        #[arg(long)]
        phone: String,
        /// The device (WhatsApp account) that asks; without it the worker's only or default device.
        #[arg(long)]
        device: Option<String>,
        /// The small thumbnail instead of the full picture.
        #[arg(long)]
        preview: bool,
        /// The JID is a community (its picture is asked as a community's).
        #[arg(long)]
        community: bool,
        /// The picture id you already have (answers `unchanged` when equal).
        #[arg(long)]
        known_id: Option<String>,
        /// Ask the worker to return the picture bytes.
        #[arg(long)]
        download: bool,
        #[command(flatten)]
        wait: Wait,
    },
    /// Set the device's own profile picture.
    Update {
        /// A JPEG, PNG or WebP file, sent inline as base64.
        #[arg(long, conflicts_with = "url", required_unless_present = "url")]
        image: Option<PathBuf>,
        /// An http(s) URL the worker downloads.
        #[arg(long)]
        url: Option<String>,
        /// The device whose own picture is set; without it the worker's only or default device.
        #[arg(long)]
        device: Option<String>,
        /// Upload the original instead of the square 640 px JPEG.
        #[arg(long)]
        no_normalize: bool,
        #[command(flatten)]
        wait: Wait,
    },
}

#[derive(Debug, clap::Args)]
pub struct Wait {
    /// Wait for the result and print it; exits non-zero when the result is an error. The job expires
    /// (unanswered) when nobody waits any more.
    #[arg(long)]
    wait: bool,
    /// How long --wait waits, in seconds.
    #[arg(long, default_value_t = 60)]
    timeout: u64,
}

pub async fn enqueue(settings: &Settings, command: EnqueueCommand) -> anyhow::Result<()> {
    let client = super::connect_client(settings).await?;
    let kind = match &command {
        EnqueueCommand::Fetch { .. } => JobKind::Fetch,
        EnqueueCommand::Update { .. } => JobKind::Update,
    };
    let queue = client.names().job_queue(kind).to_string();
    if let Some(counts) = client.queue_counts(&queue).await?
        && counts.consumers == 0
    {
        eprintln!(
            "warning: no worker consumes {queue} ({} job(s) waiting there); this job waits until one starts",
            counts.messages
        );
    }
    let device = |device: Option<String>| {
        device
            .map(DeviceId::parse)
            .transpose()
            .map_err(anyhow::Error::msg)
    };
    let job_id = Some(JobId::generate());
    match command {
        EnqueueCommand::Fetch {
            phone,
            device: d,
            preview,
            community,
            known_id,
            download,
            wait,
        } => {
            let job = FetchJob {
                job_id,
                device_id: device(d)?,
                phone: Phone::parse(&phone).map_err(anyhow::Error::msg)?,
                is_preview: preview,
                is_community: community,
                known_id,
                download,
                interactive: false,
            };
            println!("{}", serde_json::to_string(&job)?);
            if wait.wait {
                let result = client
                    .fetch_and_wait(&job, Duration::from_secs(wait.timeout))
                    .await?;
                println!("{}", serde_json::to_string(&result)?);
                failed(&result)?;
            } else {
                client.publish_fetch(&job, None).await?;
            }
        }
        EnqueueCommand::Update {
            image,
            url,
            device: d,
            no_normalize,
            wait,
        } => {
            let spec = match (image, url) {
                (Some(path), _) => {
                    let bytes = std::fs::read(&path)
                        .with_context(|| format!("cannot read {}", path.display()))?;
                    ImageSpec::Base64(base64::engine::general_purpose::STANDARD.encode(bytes))
                }
                (None, Some(url)) => ImageSpec::Url(url),
                (None, None) => anyhow::bail!("give --image FILE or --url URL"),
            };
            let job = UpdateJob {
                job_id,
                device_id: device(d)?,
                image: spec,
                normalize: !no_normalize,
            };
            let shown = match &job.image {
                ImageSpec::Base64(data) => {
                    serde_json::json!({"job_id": job.job_id, "device_id": job.device_id, "image": {"base64": format!("<{} base64 chars>", data.len())}, "normalize": job.normalize})
                }
                ImageSpec::Url(_) => serde_json::to_value(&job)?,
            };
            println!("{shown}");
            if wait.wait {
                let result = client
                    .update_and_wait(&job, Duration::from_secs(wait.timeout))
                    .await?;
                println!("{}", serde_json::to_string(&result)?);
                failed(&result)?;
            } else {
                client.publish_update(&job, None).await?;
            }
        }
    }
    Ok(())
}

/// An error result ends the command with a non-zero exit.
fn failed(result: &JobResult) -> anyhow::Result<()> {
    match (&result.status, &result.error) {
        (Status::Error, Some(error)) => anyhow::bail!(
            "job {} failed: {}: {}",
            result.job_id.as_str(),
            error.code,
            error.message
        ),
        (Status::Error, None) => anyhow::bail!("job {} failed", result.job_id.as_str()),
        _ => Ok(()),
    }
}
