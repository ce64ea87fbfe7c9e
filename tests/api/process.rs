//! The worker as a separate process (the real binary), configured like a `TestApp`'s in-process worker
//! through environment variables only.

use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use secrecy::ExposeSecret;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::helpers::TestApp;

pub struct WorkerProcess {
    pub child: Child,
}

impl WorkerProcess {
    /// Starts `avatar-worker run` with the app's settings; `extra` overrides or adds variables.
    pub fn start(app: &TestApp, extra: &[(&str, String)]) -> Self {
        let s = &app.settings;
        let mut env = app_env(
            app,
            s.amqp.url.expose_secret().to_string(),
            crate::helpers::PASSWORD,
        );
        env.extend([
            ("AVATAR_WORKER__AMQP__RECONNECT_MIN_MS", "50".into()),
            ("AVATAR_WORKER__AMQP__RECONNECT_MAX_MS", "500".into()),
            (
                "AVATAR_WORKER__PACING__ENABLED",
                s.pacing.enabled.to_string(),
            ),
            (
                "AVATAR_WORKER__RETRY__MAX_ATTEMPTS",
                s.retry.max_attempts.to_string(),
            ),
            (
                "AVATAR_WORKER__WORKER__PREFETCH",
                s.worker.prefetch.to_string(),
            ),
            (
                "AVATAR_WORKER__WORKER__MAX_IN_FLIGHT",
                s.worker.max_in_flight.to_string(),
            ),
            (
                "AVATAR_WORKER__WORKER__MAX_JOB_BYTES",
                s.worker.max_job_bytes.to_string(),
            ),
            (
                "AVATAR_WORKER__WORKER__DOWNLOAD_HOSTS",
                s.worker.download_hosts.join(","),
            ),
            (
                "AVATAR_WORKER__WORKER__DOWNLOAD_ALLOW_HOSTS",
                s.worker.download_allow_hosts.join(","),
            ),
            ("AVATAR_WORKER__LOG__LEVEL", "warn".into()),
        ]);
        for (key, value) in extra {
            env.retain(|(k, _)| k != key);
            env.push((key, value.clone()));
        }
        let child = Command::new(env!("CARGO_BIN_EXE_avatar-worker"))
            .arg("run")
            .env_clear()
            .envs(env)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the worker binary starts");
        Self { child }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Peak resident memory so far, from /proc.
    pub fn peak_rss_kib(&self) -> u64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmHWM:"))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// SIGKILL: no shutdown, no drain, nothing flushed.
    pub fn kill_hard(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then wait for the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.pid().to_string())
            .status();
        self.child.wait().expect("worker exits")
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        if self.is_running() {
            self.kill_hard();
        }
    }
}

/// What every worker process started for `app` needs to share its queues, gateway and cleanup: the broker
/// at `amqp_url`, the gateway with `gateway_password`, the app's prefix, retry delays (its cleanup deletes
/// their queues) and number of groups, and a free admin port (several workers run at once in the tests).
fn app_env(app: &TestApp, amqp_url: String, gateway_password: &str) -> Vec<(&'static str, String)> {
    let s = &app.settings;
    let delays: Vec<String> = s
        .retry
        .delays
        .iter()
        .map(|d| d.as_millis().to_string())
        .collect();
    vec![
        ("AVATAR_WORKER__AMQP__URL", amqp_url),
        ("AVATAR_WORKER__TOPOLOGY__PREFIX", s.topology.prefix.clone()),
        (
            "AVATAR_WORKER__GATEWAY__BASE_URL",
            s.gateway.base_url.clone(),
        ),
        (
            "AVATAR_WORKER__GATEWAY__USERNAME",
            crate::helpers::USER.to_string(),
        ),
        (
            "AVATAR_WORKER__GATEWAY__PASSWORD",
            gateway_password.to_string(),
        ),
        ("AVATAR_WORKER__RETRY__DELAYS_MS", delays.join(",")),
        ("AVATAR_WORKER__LANES__GROUPS", s.lanes.groups.to_string()),
        ("AVATAR_WORKER__ADMIN__BIND", "127.0.0.1:0".to_string()),
    ]
}

/// `avatar-worker run` with exactly `env`, its stderr collected line by line.
pub struct LoggedWorker {
    child: tokio::process::Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl LoggedWorker {
    /// The variables that run a worker for `app` with JSON logs at `level` and a free admin port.
    pub fn env(
        app: &TestApp,
        amqp_url: String,
        gateway_password: &str,
        level: &str,
    ) -> Vec<(&'static str, String)> {
        let mut env = app_env(app, amqp_url, gateway_password);
        env.extend([
            ("AVATAR_WORKER__LOG__FORMAT", "json".to_string()),
            ("AVATAR_WORKER__LOG__LEVEL", level.to_string()),
            ("AVATAR_WORKER__AMQP__RECONNECT_MAX_MS", "300".to_string()),
        ]);
        env
    }

    pub fn start(env: &[(&str, String)], config: Option<&std::path::Path>) -> Self {
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_avatar-worker"));
        command
            .env_clear()
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if let Some(config) = config {
            command.arg("--config").arg(config);
        }
        let mut child = command.arg("run").spawn().expect("worker binary starts");
        let stderr = child.stderr.take().expect("piped stderr");
        let lines: Arc<Mutex<Vec<String>>> = Arc::default();
        let sink = lines.clone();
        tokio::spawn(async move {
            let mut reader = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                sink.lock().unwrap().push(line);
            }
        });
        Self { child, lines }
    }

    pub fn log(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    /// Waits for a log line containing `needle`.
    pub async fn wait_for(&self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(line) = self.log().into_iter().find(|l| l.contains(needle)) {
                return line;
            }
            assert!(
                Instant::now() < deadline,
                "no log line with {needle:?} in:\n{}",
                self.log().join("\n")
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The admin server's address, from its start-up log line.
    pub async fn admin(&self) -> String {
        let line = self.wait_for("admin server listening").await;
        let value: Value = serde_json::from_str(&line).expect("JSON log line");
        value["addr"].as_str().expect("addr field").to_string()
    }

    pub async fn stop(mut self) -> Vec<String> {
        let _ = self.child.kill().await;
        // Let the reader task take the last lines.
        tokio::time::sleep(Duration::from_millis(100)).await;
        self.log()
    }
}
