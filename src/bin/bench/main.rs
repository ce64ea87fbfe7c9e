//! End-to-end benchmark: the mock gateway and the worker as separate release-built processes, a load
//! generator on its own connection, and, in the same run, a broker echo baseline for comparison.
//!
//! `cargo build --release --workspace --bins && ./target/release/bench` (see docs/performance.md);
//! `--smoke` runs a few hundred jobs and only checks that every job was answered.

mod echo;
mod load;
mod procs;
mod stats;

use anyhow::{Context, bail};
use clap::Parser;

use load::{Load, Offered};
use procs::{Mock, WorkerProc};

#[derive(Debug, Parser)]
#[command(
    about = "End-to-end throughput, latency and memory of avatar-worker against the broker's own ceiling"
)]
struct Args {
    #[arg(
        long,
        env = "AMQP_URL",
        default_value = "amqp://guest:guest@127.0.0.1:5672/%2f"
    )]
    amqp_url: String,
    /// Fetch jobs per measured run.
    #[arg(long, default_value_t = 50_000)]
    jobs: usize,
    /// Devices the jobs are spread over.
    #[arg(long, default_value_t = 4)]
    devices: usize,
    #[arg(long, default_value_t = 200)]
    prefetch: u16,
    /// Per-device limit of the pacing run, jobs per second.
    #[arg(long, default_value_t = 20.0)]
    paced_rate: f64,
    /// Seconds the pacing run lasts.
    #[arg(long, default_value_t = 15)]
    paced_seconds: u64,
    /// A few hundred jobs, short runs; fails unless every job is answered.
    #[arg(long)]
    smoke: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = Args::parse();
    if args.smoke {
        args.jobs = 300;
        args.paced_seconds = 3;
    }
    let mock = Mock::start(args.devices)
        .await
        .context("starting the mock gateway")?;
    let devices: Vec<String> = (0..args.devices).map(|i| format!("d{i}")).collect();

    println!(
        "# avatar-worker benchmark: {} jobs over {} devices, prefetch {}",
        args.jobs, args.devices, args.prefetch
    );

    // 1. Saturating run against the worker.
    let worker = WorkerProc::start(&args.amqp_url, &mock, args.prefetch, None).await?;
    let load = Load::new(&args.amqp_url, &worker.prefix, &devices).await?;
    let saturated = load.run(args.jobs, Offered::Max).await?;
    let (rss_kib, cpu_s) = (worker.peak_rss_kib(), worker.cpu_seconds());

    // 2. Half the measured maximum, on the same worker.
    let half_rate = saturated.throughput / 2.0;
    let half_jobs = if args.smoke {
        args.jobs
    } else {
        (half_rate * 20.0) as usize
    };
    let half = load
        .run(half_jobs.max(100), Offered::Rate(half_rate))
        .await?;
    drop(worker);
    load.cleanup().await;

    // 3. The broker echo baseline: same queues, prefetch, confirms and acks, a trivial consumer.
    let echo_prefix = format!("bench-echo-{}", uuid::Uuid::new_v4().simple());
    let echo = echo::Echo::start(
        &args.amqp_url,
        &echo_prefix,
        args.prefetch,
        saturated.result_bytes,
    )
    .await?;
    let echo_load = Load::new(&args.amqp_url, &echo_prefix, &devices).await?;
    let baseline = echo_load.run(args.jobs, Offered::Max).await?;
    echo_load.cleanup().await;
    echo.stop().await;

    // 4. Pacing on: each device's achieved rate against its limit.
    let paced_worker =
        WorkerProc::start(&args.amqp_url, &mock, args.prefetch, Some(args.paced_rate)).await?;
    let paced_load = Load::new(&args.amqp_url, &paced_worker.prefix, &devices).await?;
    let per_device = (args.paced_rate * args.paced_seconds as f64) as usize;
    let paced = paced_load
        .run(per_device * args.devices, Offered::Max)
        .await?;
    drop(paced_worker);
    paced_load.cleanup().await;

    let ratio = saturated.throughput / baseline.throughput;
    println!();
    println!("| run | jobs | jobs/s | p50 ms | p95 ms | p99 ms |");
    println!("|---|---:|---:|---:|---:|---:|");
    for (name, run) in [
        ("worker, saturated", &saturated),
        ("echo baseline, saturated", &baseline),
        ("worker, half load", &half),
    ] {
        println!(
            "| {name} | {} | {:.0} | {:.1} | {:.1} | {:.1} |",
            run.answered, run.throughput, run.p50_ms, run.p95_ms, run.p99_ms
        );
    }
    println!();
    println!("worker / echo throughput: {:.2}", ratio);
    println!(
        "worker peak RSS: {:.1} MiB, CPU: {:.1} s for {} jobs",
        rss_kib as f64 / 1024.0,
        cpu_s,
        saturated.answered
    );
    println!("half load offered at {:.0} jobs/s", half_rate);
    println!();
    println!("| device | limit /s | achieved /s | deviation |");
    println!("|---|---:|---:|---:|");
    for (device, rate) in &paced.per_device_rate {
        println!(
            "| {device} | {:.1} | {:.2} | {:+.1} % |",
            args.paced_rate,
            rate,
            (rate / args.paced_rate - 1.0) * 100.0
        );
    }

    let expected = [
        (&saturated, args.jobs),
        (&baseline, args.jobs),
        (&half, half_jobs.max(100)),
        (&paced, per_device * args.devices),
    ];
    for (run, jobs) in expected {
        if run.answered != jobs {
            bail!("only {} of {jobs} jobs were answered", run.answered);
        }
    }
    mock.stop();
    if args.smoke {
        println!("smoke: every job answered");
    }
    Ok(())
}
