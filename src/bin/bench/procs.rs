//! The mock gateway and the worker as child processes, found next to the bench executable.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

const USER: &str = "bench";
const PASSWORD: &str = "bench-password";

fn sibling(name: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let path = exe.with_file_name(name);
    if !path.exists() {
        bail!(
            "{} not found: build it with `cargo build --release --workspace --bins`",
            path.display()
        );
    }
    Ok(path)
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Polls `url` until it answers 200: the processes have no other way to say they are ready.
async fn wait_ready(url: &str, patience: Duration) -> anyhow::Result<()> {
    let client = reqwest::Client::new();
    let deadline = Instant::now() + patience;
    while Instant::now() < deadline {
        if let Ok(response) = client.get(url).send().await
            && response.status().is_success()
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("{url} did not become ready")
}

pub struct Mock {
    child: Child,
    pub base_url: String,
}

impl Mock {
    pub async fn start(devices: usize) -> anyhow::Result<Self> {
        let port = free_port()?;
        let devices: Vec<String> = (0..devices).map(|i| format!("d{i}")).collect();
        let child = Command::new(sibling("mock-server")?)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--devices", &devices.join(",")])
            .args(["--basic-auth", &format!("{USER}:{PASSWORD}")])
            // Every contact has a picture: no "not on whatsapp" answer to confirm by asking again, so each
            // job is one gateway call and the per-device rates are the pace itself.
            .args([
                "--share-set",
                "1",
                "--share-not-set",
                "0",
                "--share-hidden",
                "0",
            ])
            .args(["--share-not-on-whatsapp", "0"])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .context("mock-server")?;
        let base_url = format!("http://127.0.0.1:{port}");
        let mock = Self { child, base_url };
        wait_ready(
            &format!("{}/health", mock.base_url),
            Duration::from_secs(20),
        )
        .await?;
        Ok(mock)
    }

    /// User + system CPU time so far.
    pub fn cpu_seconds(&self) -> f64 {
        cpu_seconds(self.child.id())
    }

    /// When each device's avatar lookups started at the gateway (seconds since the Unix epoch, sorted),
    /// from the mock's request log: the pace WhatsApp would see, free of the results' way back.
    pub async fn call_starts(&self) -> anyhow::Result<HashMap<String, Vec<f64>>> {
        let log: serde_json::Value = reqwest::Client::new()
            .get(format!("{}/_mock/requests", self.base_url))
            .basic_auth(USER, Some(PASSWORD))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let mut starts: HashMap<String, Vec<f64>> = HashMap::new();
        for entry in log["results"].as_array().into_iter().flatten() {
            if entry["path"] != "/user/avatar" || entry["method"] != "GET" {
                continue;
            }
            let Some(at) = entry["time"]
                .as_str()
                .and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok())
            else {
                continue;
            };
            let answered = at.unix_timestamp_nanos() as f64 / 1e9;
            let took = entry["duration_ms"].as_f64().unwrap_or(0.0) / 1000.0;
            let device = entry["device_id"].as_str().unwrap_or("-").to_string();
            starts.entry(device).or_default().push(answered - took);
        }
        for times in starts.values_mut() {
            times.sort_by(f64::total_cmp);
        }
        Ok(starts)
    }
}

/// Stopped when dropped, also when the bench ends early on an error.
impl Drop for Mock {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub struct WorkerProc {
    child: Child,
    pub prefix: String,
    admin: u16,
}

/// A per-device fetch limit for a paced run.
#[derive(Debug, Clone, Copy)]
pub struct Pacing {
    pub rate_per_s: f64,
    pub burst: u32,
    pub concurrency: u32,
}

impl WorkerProc {
    /// A worker on its own queue prefix; `pacing` turns pacing on with that per-device fetch limit.
    pub async fn start(
        amqp_url: &str,
        mock: &Mock,
        prefetch: u16,
        pacing: Option<Pacing>,
    ) -> anyhow::Result<Self> {
        Self::start_under(amqp_url, mock, prefetch, pacing, None).await
    }

    /// The same, run by `callgrind` writing its profile to `out` (startup takes seconds under it).
    pub async fn start_under_callgrind(
        amqp_url: &str,
        mock: &Mock,
        prefetch: u16,
        out: &std::path::Path,
    ) -> anyhow::Result<Self> {
        Self::start_under(amqp_url, mock, prefetch, None, Some(out)).await
    }

    async fn start_under(
        amqp_url: &str,
        mock: &Mock,
        prefetch: u16,
        pacing: Option<Pacing>,
        callgrind: Option<&std::path::Path>,
    ) -> anyhow::Result<Self> {
        let prefix = format!("bench-{}", uuid::Uuid::new_v4().simple());
        let admin = free_port()?;
        let mut command = match callgrind {
            None => Command::new(sibling("avatar-worker")?),
            Some(out) => {
                let mut valgrind = Command::new("valgrind");
                valgrind
                    .arg("--tool=callgrind")
                    .arg(format!("--callgrind-out-file={}", out.display()))
                    .arg(sibling("avatar-worker")?)
                    .stderr(Stdio::null());
                valgrind
            }
        };
        command
            .arg("run")
            .env("AVATAR_WORKER__AMQP__URL", amqp_url)
            .env("AVATAR_WORKER__TOPOLOGY__PREFIX", &prefix)
            .env("AVATAR_WORKER__GATEWAY__BASE_URL", &mock.base_url)
            .env("AVATAR_WORKER__GATEWAY__USERNAME", USER)
            .env("AVATAR_WORKER__GATEWAY__PASSWORD", PASSWORD)
            .env("AVATAR_WORKER__WORKER__PREFETCH", prefetch.to_string())
            .env("AVATAR_WORKER__WORKER__MAX_IN_FLIGHT", prefetch.to_string())
            .env("AVATAR_WORKER__ADMIN__BIND", format!("127.0.0.1:{admin}"))
            .env("AVATAR_WORKER__LOG__LEVEL", "warn")
            .stdout(Stdio::null());
        // BENCH_LOG=debug keeps each worker's JSON log in /tmp/bench-<prefix>.log, to see what a run did.
        if let Ok(level) = std::env::var("BENCH_LOG") {
            command
                .env("AVATAR_WORKER__LOG__LEVEL", level)
                .env("AVATAR_WORKER__LOG__FORMAT", "json")
                .stderr(std::fs::File::create(format!("/tmp/bench-{prefix}.log"))?);
        }
        match pacing {
            None => {
                command.env("AVATAR_WORKER__PACING__ENABLED", "false");
            }
            Some(pacing) => {
                command
                    .env("AVATAR_WORKER__PACING__ENABLED", "true")
                    .env(
                        "AVATAR_WORKER__PACING__FETCH__RATE_PER_S",
                        pacing.rate_per_s.to_string(),
                    )
                    .env(
                        "AVATAR_WORKER__PACING__FETCH__BURST",
                        pacing.burst.to_string(),
                    )
                    .env(
                        "AVATAR_WORKER__PACING__FETCH__CONCURRENCY",
                        pacing.concurrency.to_string(),
                    )
                    .env("AVATAR_WORKER__RETRY__DELAYS_MS", "250,1000,5000");
            }
        }
        let child = command.spawn().context("avatar-worker")?;
        let worker = Self {
            child,
            prefix,
            admin,
        };
        let ready = format!("http://127.0.0.1:{admin}/readyz");
        let patience = if callgrind.is_some() { 300 } else { 20 };
        wait_ready(&ready, Duration::from_secs(patience)).await?;
        Ok(worker)
    }

    /// A counter or gauge of the worker's `/metrics`, summed over its labels.
    pub async fn metric(&self, name: &str) -> anyhow::Result<f64> {
        let text = reqwest::get(format!("http://127.0.0.1:{}/metrics", self.admin))
            .await?
            .text()
            .await?;
        Ok(text
            .lines()
            .filter(|line| {
                line.strip_prefix(name)
                    .is_some_and(|rest| rest.starts_with([' ', '{']))
            })
            .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .sum())
    }

    fn proc_file(&self, name: &str) -> String {
        std::fs::read_to_string(format!("/proc/{}/{name}", self.child.id())).unwrap_or_default()
    }

    /// Peak resident memory (VmHWM).
    pub fn peak_rss_kib(&self) -> u64 {
        self.proc_file("status")
            .lines()
            .find_map(|line| line.strip_prefix("VmHWM:"))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    }

    /// User + system CPU time so far.
    pub fn cpu_seconds(&self) -> f64 {
        cpu_seconds(self.child.id())
    }
}

impl WorkerProc {
    /// Stops the worker (SIGTERM) and waits until it has exited.
    pub fn stop(self) {
        drop(self);
    }
}

impl Drop for WorkerProc {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}

/// How many queues of `prefix` the broker holds, from `rabbitmqctl` when it is on this machine.
pub fn broker_queue_count(prefix: &str) -> Option<usize> {
    let output = Command::new("rabbitmqctl")
        .args(["-q", "list_queues", "name"])
        .output()
        .ok()?;
    let listed = String::from_utf8_lossy(&output.stdout);
    let start = format!("{prefix}.");
    Some(listed.lines().filter(|l| l.starts_with(&start)).count())
}

/// User + system CPU time of a process so far (clock ticks of 1/100 s), 0 when it cannot be read.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

/// What `rabbitmqctl status` says of the broker, when it runs on this machine.
pub struct BrokerStatus {
    pid: u32,
    pub rss_bytes: Option<u64>,
    /// The file handles it allows itself (its open-file limit less a reserve). Each classic queue with
    /// messages wants its own; below the queue count they are closed and reopened all the time.
    pub file_handles: Option<u64>,
}

impl BrokerStatus {
    pub fn read() -> Option<Self> {
        let output = Command::new("rabbitmqctl")
            .args(["-q", "status", "--formatter", "json"])
            .output()
            .ok()?;
        let status: serde_json::Value = serde_json::from_slice(&output.stdout).ok()?;
        Some(Self {
            pid: status["pid"].as_u64()?.try_into().ok()?,
            rss_bytes: status["memory"]["total"]["rss"].as_u64(),
            file_handles: status["file_descriptors"]["total_limit"].as_u64(),
        })
    }

    /// The broker's CPU time so far.
    pub fn cpu_seconds(&self) -> f64 {
        cpu_seconds(self.pid)
    }
}

/// The instructions a callgrind profile counted (its `summary:` or `totals:` line).
pub fn callgrind_instructions(out: &std::path::Path) -> anyhow::Result<u64> {
    let text =
        std::fs::read_to_string(out).with_context(|| format!("reading {}", out.display()))?;
    text.lines()
        .find_map(|line| {
            line.strip_prefix("summary:")
                .or_else(|| line.strip_prefix("totals:"))
        })
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .with_context(|| format!("no instruction total in {}", out.display()))
}
