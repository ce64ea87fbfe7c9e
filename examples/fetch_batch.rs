//! Looks up the pictures of many numbers at once with a bounded number of jobs in flight.
//!
//! Usage: `fetch_batch DEVICE PHONE...` with a worker running on the default queues (`avatar.*`);
//! `AMQP_URL` overrides the broker (default `amqp://guest:guest@127.0.0.1:5672/%2f`).

use std::process::ExitCode;

use avatar_worker::broker::QueueNames;
use avatar_worker::client::{Batch, BatchOptions};
use avatar_worker::protocol::{DeviceId, FetchJob, Phone};
use avatar_worker::settings::TopologySettings;
use futures_util::StreamExt;

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((device, phones)) = args.split_first() else {
        eprintln!("usage: fetch_batch DEVICE PHONE...");
        return ExitCode::from(2);
    };
    let device = match DeviceId::parse(device.as_str()) {
        Ok(device) => device,
        Err(reason) => {
            eprintln!("{reason}");
            return ExitCode::from(2);
        }
    };
    let mut jobs = Vec::new();
    for phone in phones {
        match Phone::parse(phone) {
            Ok(phone) => jobs.push(FetchJob {
                job_id: None,
                device_id: Some(device.clone()),
                phone,
                is_preview: false,
                is_community: false,
                known_id: None,
                download: false,
                interactive: false,
            }),
            Err(reason) => eprintln!("skipping {phone}: {reason}"),
        }
    }
    let url = std::env::var("AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".to_string());
    let names = QueueNames::new(&TopologySettings::default());
    let options = BatchOptions {
        in_flight: 8,
        ..BatchOptions::default()
    };
    let mut results = Batch::new(&url, names, options).run(jobs);
    while let Some(result) = results.next().await {
        match result {
            Ok(result) => println!(
                "{} {} {}",
                result.job_id.as_str(),
                result.status.as_str(),
                result.avatar.map(|a| a.id).unwrap_or_default()
            ),
            Err(error) => {
                eprintln!("batch stopped: {error}");
                return ExitCode::FAILURE;
            }
        }
    }
    ExitCode::SUCCESS
}
