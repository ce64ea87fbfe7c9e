//! End-to-end benchmark: the mock gateway and the worker as separate release-built processes, a load
//! generator on its own connection, and, in the same run, a broker echo baseline for comparison.
//!
//! `cargo build --release --workspace --bins && ./target/release/bench` (see docs/performance.md);
//! `--smoke` runs a few hundred jobs and only checks that every job was answered. Besides the saturated,
//! half-load and paced runs it measures the two costs of device lanes: a deep backlog for one device
//! (extra broker publishes per job) and many paced devices on one worker (rates, memory, broker memory).

mod echo;
mod load;
mod procs;
mod stats;

use anyhow::{Context, bail};
use clap::Parser;
use std::time::{Duration, Instant};

use load::{Load, Offered};
use procs::{Mock, Pacing, WorkerProc};

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
    /// Jobs queued at once for one device in the backlog run.
    #[arg(long, default_value_t = 20_000)]
    backlog_jobs: usize,
    /// That device's limit, jobs per second.
    #[arg(long, default_value_t = 500.0)]
    backlog_rate: f64,
    /// Devices of the many-devices run, each with a backlog, all on one worker.
    #[arg(long, default_value_t = 1_000)]
    many_devices: usize,
    /// Each of those devices' limit, jobs per second.
    #[arg(long, default_value_t = 2.0)]
    many_rate: f64,
    /// Seconds of jobs each of those devices gets.
    #[arg(long, default_value_t = 10)]
    many_seconds: u64,
    /// A few hundred jobs, short runs; fails unless every job is answered.
    #[arg(long)]
    smoke: bool,
    /// Only the many-devices run (with the CPU time of the worker, the mock and the broker).
    #[arg(long)]
    many_only: bool,
    /// Only this: instructions the worker executes per fetch job, under valgrind's callgrind (two runs of
    /// N and 2N jobs over the devices, pacing off; the difference divided by N). N = --jobs.
    #[arg(long)]
    callgrind: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = Args::parse();
    if args.smoke {
        args.jobs = 300;
        args.paced_seconds = 3;
        args.backlog_jobs = 300;
        args.many_devices = 50;
        args.many_seconds = 3;
    }
    let mock = Mock::start(args.devices.max(args.many_devices))
        .await
        .context("starting the mock gateway")?;
    let devices: Vec<String> = (0..args.devices).map(|i| format!("d{i}")).collect();
    if args.callgrind {
        let per_job = instructions_per_job(&args, &mock, &devices).await?;
        drop(mock);
        println!("worker instructions per fetch job (callgrind): {per_job:.0}");
        return Ok(());
    }

    if args.many_only {
        let many = many_devices(&args, &mock).await?;
        many.print(&args);
        drop(mock);
        return many.check();
    }

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
    let pacing = |rate_per_s| Pacing {
        rate_per_s,
        burst: 1,
        concurrency: 4,
    };
    let paced_worker = WorkerProc::start(
        &args.amqp_url,
        &mock,
        args.prefetch,
        Some(pacing(args.paced_rate)),
    )
    .await?;
    let paced_load = Load::new(&args.amqp_url, &paced_worker.prefix, &devices).await?;
    let per_device = (args.paced_rate * args.paced_seconds as f64) as usize;
    let paced = paced_load
        .run(per_device * args.devices, Offered::Max)
        .await?;
    drop(paced_worker);
    paced_load.cleanup().await;

    // 5. Backlog: one device's jobs all queued at once; what the lanes cost in broker publishes.
    let backlog_worker = WorkerProc::start(
        &args.amqp_url,
        &mock,
        args.prefetch,
        Some(pacing(args.backlog_rate)),
    )
    .await?;
    let backlog_load = Load::new(&args.amqp_url, &backlog_worker.prefix, &devices[..1]).await?;
    let backlog = backlog_load.run(args.backlog_jobs, Offered::Max).await?;
    let backlog_publishes = backlog_worker
        .metric("avatar_worker_job_publishes_total")
        .await?;
    let backlog_rss = backlog_worker.peak_rss_kib();
    drop(backlog_worker);
    backlog_load.cleanup().await;

    // 6. Many devices, each with a backlog, paced, on one worker.
    let many = many_devices(&args, &mock).await?;

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
    for (device, rate) in &paced.device_rates() {
        println!(
            "| {device} | {:.1} | {:.2} | {:+.1} % |",
            args.paced_rate,
            rate,
            (rate / args.paced_rate - 1.0) * 100.0
        );
    }

    println!();
    println!(
        "backlog: {} jobs for one device at {}/s: {:.2} extra publishes a job ({backlog_publishes} in all), worker peak RSS {:.1} MiB",
        backlog.answered,
        args.backlog_rate,
        backlog_publishes / backlog.answered.max(1) as f64,
        backlog_rss as f64 / 1024.0
    );
    many.print(&args);

    let expected = [
        (&saturated, args.jobs),
        (&baseline, args.jobs),
        (&half, half_jobs.max(100)),
        (&paced, per_device * args.devices),
        (&backlog, args.backlog_jobs),
    ];
    for (run, jobs) in expected {
        if run.answered != jobs {
            bail!("only {} of {jobs} jobs were answered", run.answered);
        }
    }
    many.check()?;
    drop(mock);
    if args.smoke {
        println!("smoke: every job answered");
    }
    Ok(())
}

/// What the many-devices run measured.
struct ManyDevices {
    devices: usize,
    jobs: usize,
    run: stats::RunStats,
    /// From the first publish until every job had left the job queue and the inboxes for its lane.
    fill: Option<Duration>,
    /// Each device's rate at the gateway, first call to last.
    rates: Vec<(String, f64)>,
    /// The same from the fill on: its backlog in its lane.
    steady_rates: Vec<(String, f64)>,
    worker_rss_kib: u64,
    cpu_s: ProcessCpu,
    broker_queues: Option<usize>,
    broker: Option<procs::BrokerStatus>,
}

fn or_na(value: Option<impl std::fmt::Display>) -> String {
    value.map_or("n/a".to_string(), |v| v.to_string())
}

/// CPU seconds each process spent during a run.
struct ProcessCpu {
    worker: f64,
    mock: f64,
    broker: Option<f64>,
}

/// Many devices, each with a backlog of `many_seconds` of jobs at its limit, all on one worker.
async fn many_devices(args: &Args, mock: &Mock) -> anyhow::Result<ManyDevices> {
    let many: Vec<String> = (0..args.many_devices).map(|i| format!("d{i}")).collect();
    let pacing = Pacing {
        rate_per_s: args.many_rate,
        burst: 1,
        concurrency: 2,
    };
    let worker = WorkerProc::start(&args.amqp_url, mock, args.prefetch, Some(pacing)).await?;
    let load = Load::new(&args.amqp_url, &worker.prefix, &many).await?;
    let jobs = (args.many_rate * args.many_seconds as f64) as usize * many.len();
    let broker = procs::BrokerStatus::read();
    let (mock_before, broker_before) =
        (mock.cpu_seconds(), broker.as_ref().map(|b| b.cpu_seconds()));
    let fill = load.watch_fill().await?;
    let started = Instant::now();
    let run = load.run(jobs, Offered::Max).await?;
    let filled_at = fill.filled_at();
    drop(fill);
    let cpu_s = ProcessCpu {
        worker: worker.cpu_seconds(),
        mock: mock.cpu_seconds() - mock_before,
        broker: broker
            .as_ref()
            .map(|b| b.cpu_seconds())
            .zip(broker_before)
            .map(|(after, before)| after - before),
    };
    let calls = mock.call_starts().await?;
    // Instants on the gateway's clock (the Unix epoch); the mock's log also holds the bench's earlier runs.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64();
    let unix = |at: Instant| now - at.elapsed().as_secs_f64();
    let many = ManyDevices {
        devices: many.len(),
        jobs,
        fill: filled_at.map(|at| at.duration_since(started)),
        rates: stats::rates(&calls, Some(unix(started)), 3),
        steady_rates: filled_at.map_or_else(Vec::new, |at| stats::rates(&calls, Some(unix(at)), 3)),
        run,
        worker_rss_kib: worker.peak_rss_kib(),
        cpu_s,
        broker_queues: procs::broker_queue_count(&worker.prefix),
        broker: procs::BrokerStatus::read(),
    };
    drop(worker);
    load.cleanup().await;
    Ok(many)
}

impl ManyDevices {
    fn print(&self, args: &Args) {
        let spread = |rates: &[(String, f64)]| {
            if rates.is_empty() {
                return "no device had jobs left".to_string();
            }
            let deviations: Vec<f64> = rates
                .iter()
                .map(|(_, rate)| rate / args.many_rate - 1.0)
                .collect();
            let outside = deviations.iter().filter(|d| d.abs() > 0.05).count();
            let (low, high) = deviations
                .iter()
                .fold((f64::MAX, f64::MIN), |(lo, hi), &d| (lo.min(d), hi.max(d)));
            format!(
                "{:+.1} % to {:+.1} % of the limit, {outside} devices outside 5 %",
                low * 100.0,
                high * 100.0
            )
        };
        println!(
            "many devices: {} devices at {}/s, {} jobs published in {:.1} s, {:.0} jobs/s; worker peak RSS {:.1} MiB; broker: {} queues of this run, RSS {}, file handle limit {}",
            self.devices,
            args.many_rate,
            self.run.answered,
            self.run.published_in.as_secs_f64(),
            self.run.throughput,
            self.worker_rss_kib as f64 / 1024.0,
            or_na(self.broker_queues),
            or_na(
                self.broker
                    .as_ref()
                    .and_then(|b| b.rss_bytes)
                    .map(|b| format!("{:.0} MiB", b as f64 / 1048576.0))
            ),
            or_na(self.broker.as_ref().and_then(|b| b.file_handles)),
        );
        println!(
            "many devices, each device's calls at the gateway, first to last: {}",
            spread(&self.rates)
        );
        match self.fill {
            Some(fill) => println!(
                "many devices, once every job was in its lane ({:.1} s after the first publish), the {} devices with calls left: {}",
                fill.as_secs_f64(),
                self.steady_rates.len(),
                spread(&self.steady_rates)
            ),
            None => println!("many devices: no job was seen on its way to a lane"),
        }
        println!(
            "many devices, CPU seconds: worker {:.1}, mock {:.1}, broker {}",
            self.cpu_s.worker,
            self.cpu_s.mock,
            or_na(self.cpu_s.broker.map(|s| format!("{s:.1}"))),
        );
    }

    fn check(&self) -> anyhow::Result<()> {
        if self.run.answered != self.jobs {
            bail!(
                "only {} of {} jobs were answered",
                self.run.answered,
                self.jobs
            );
        }
        Ok(())
    }
}

/// Instructions per job: the worker's total under callgrind for N and for 2N jobs, differenced, so start-up
/// and shutdown cancel out.
async fn instructions_per_job(args: &Args, mock: &Mock, devices: &[String]) -> anyhow::Result<f64> {
    let mut totals = Vec::new();
    for jobs in [args.jobs, 2 * args.jobs] {
        let out = std::env::temp_dir().join(format!(
            "avatar-worker-callgrind-{}.out",
            uuid::Uuid::new_v4().simple()
        ));
        let worker =
            WorkerProc::start_under_callgrind(&args.amqp_url, mock, args.prefetch, &out).await?;
        let load = Load::new(&args.amqp_url, &worker.prefix, devices).await?;
        let answered = load.run(jobs, Offered::Max).await?.answered;
        if answered != jobs {
            bail!("only {answered} of {jobs} jobs were answered under callgrind");
        }
        worker.stop();
        load.cleanup().await;
        let total = procs::callgrind_instructions(&out)?;
        println!(
            "callgrind: {jobs} jobs, {total} instructions (profile: {}; callgrind_annotate reads it)",
            out.display()
        );
        totals.push(total);
    }
    Ok((totals[1] as f64 - totals[0] as f64) / args.jobs as f64)
}
