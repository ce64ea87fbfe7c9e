//! The worker as a separate process (the real binary), configured like a `TestApp`'s in-process worker
//! through environment variables only.

use std::process::{Child, Command, Stdio};

use secrecy::ExposeSecret;

use crate::helpers::TestApp;

pub struct WorkerProcess {
    pub child: Child,
}

impl WorkerProcess {
    /// Starts `avatar-worker run` with the app's settings; `extra` overrides or adds variables.
    pub fn start(app: &TestApp, extra: &[(&str, String)]) -> Self {
        let s = &app.settings;
        let delays: Vec<String> = s
            .retry
            .delays
            .iter()
            .map(|d| d.as_millis().to_string())
            .collect();
        let mut env: Vec<(&str, String)> = vec![
            (
                "AVATAR_WORKER__AMQP__URL",
                s.amqp.url.expose_secret().to_string(),
            ),
            ("AVATAR_WORKER__AMQP__RECONNECT_MIN_MS", "50".into()),
            ("AVATAR_WORKER__AMQP__RECONNECT_MAX_MS", "500".into()),
            ("AVATAR_WORKER__TOPOLOGY__PREFIX", s.topology.prefix.clone()),
            (
                "AVATAR_WORKER__GATEWAY__BASE_URL",
                s.gateway.base_url.clone(),
            ),
            (
                "AVATAR_WORKER__GATEWAY__USERNAME",
                crate::helpers::USER.into(),
            ),
            (
                "AVATAR_WORKER__GATEWAY__PASSWORD",
                crate::helpers::PASSWORD.into(),
            ),
            (
                "AVATAR_WORKER__PACING__ENABLED",
                s.pacing.enabled.to_string(),
            ),
            (
                "AVATAR_WORKER__RETRY__MAX_ATTEMPTS",
                s.retry.max_attempts.to_string(),
            ),
            ("AVATAR_WORKER__RETRY__DELAYS_MS", delays.join(",")),
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
            ("AVATAR_WORKER__LANES__GROUPS", s.lanes.groups.to_string()),
            (
                "AVATAR_WORKER__WORKER__DOWNLOAD_HOSTS",
                s.worker.download_hosts.join(","),
            ),
            (
                "AVATAR_WORKER__WORKER__DOWNLOAD_ALLOW_HOSTS",
                s.worker.download_allow_hosts.join(","),
            ),
            ("AVATAR_WORKER__LOG__LEVEL", "warn".into()),
            // Several workers run at once in the tests: let each pick a free admin port.
            ("AVATAR_WORKER__ADMIN__BIND", "127.0.0.1:0".into()),
        ];
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
