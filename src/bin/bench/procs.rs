//! The mock gateway and the worker as child processes, found next to the bench executable.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

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
async fn wait_ready(url: &str) -> anyhow::Result<()> {
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(20);
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
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .context("mock-server")?;
        let base_url = format!("http://127.0.0.1:{port}");
        let mock = Self { child, base_url };
        wait_ready(&format!("{}/health", mock.base_url)).await?;
        Ok(mock)
    }

    pub fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub struct WorkerProc {
    child: Child,
    pub prefix: String,
}

impl WorkerProc {
    /// A worker on its own queue prefix; `paced_rate` turns pacing on with that per-device fetch limit.
    pub async fn start(
        amqp_url: &str,
        mock: &Mock,
        prefetch: u16,
        paced_rate: Option<f64>,
    ) -> anyhow::Result<Self> {
        let prefix = format!("bench-{}", uuid::Uuid::new_v4().simple());
        let admin = free_port()?;
        let mut command = Command::new(sibling("avatar-worker")?);
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
        match paced_rate {
            None => {
                command.env("AVATAR_WORKER__PACING__ENABLED", "false");
            }
            Some(rate) => {
                command
                    .env("AVATAR_WORKER__PACING__ENABLED", "true")
                    .env("AVATAR_WORKER__PACING__FETCH__RATE_PER_S", rate.to_string())
                    .env("AVATAR_WORKER__PACING__FETCH__BURST", "1")
                    .env("AVATAR_WORKER__PACING__FETCH__CONCURRENCY", "4")
                    .env("AVATAR_WORKER__RETRY__DELAYS_MS", "250,1000,5000");
            }
        }
        let child = command.spawn().context("avatar-worker")?;
        let worker = Self { child, prefix };
        let ready = format!("http://127.0.0.1:{admin}/readyz");
        wait_ready(&ready).await?;
        Ok(worker)
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

    /// User + system CPU time so far (clock ticks of 1/100 s).
    pub fn cpu_seconds(&self) -> f64 {
        let stat = self.proc_file("stat");
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
