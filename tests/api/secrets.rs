//! Secrets never leak: the gateway password and the AMQP password appear in no log line, result, dead
//! letter, probe answer or metric. The worker runs as its own process (the real binary, JSON logs) so
//! everything it writes to stderr is searched.

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use avatar_worker::protocol::{ErrorCode, JobKind};
use base64::Engine;
use lapin::BasicProperties;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::helpers::{AppOptions, USER, spawn_app_with};

const AMQP_SECRET: &str = "amqp-secret-7Qx2vL";
const GATEWAY_SECRET: &str = "gateway-secret-Zt9wKp";

/// `avatar-worker run` with exactly `env`, its stderr collected line by line.
struct WorkerProcess {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl WorkerProcess {
    fn start(env: &[(&str, String)], config: Option<&std::path::Path>) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_avatar-worker"));
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

    fn log(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    /// Waits for a log line containing `needle`.
    async fn wait_for(&self, needle: &str) -> String {
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
    async fn admin(&self) -> String {
        let line = self.wait_for("admin server listening").await;
        let value: Value = serde_json::from_str(&line).expect("JSON log line");
        value["addr"].as_str().expect("addr field").to_string()
    }

    async fn stop(mut self) -> Vec<String> {
        let _ = self.child.kill().await;
        // Let the reader task take the last lines.
        tokio::time::sleep(Duration::from_millis(100)).await;
        self.log()
    }
}

fn assert_clean(what: &str, text: &str) {
    let authorization =
        base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{GATEWAY_SECRET}"));
    for secret in [AMQP_SECRET, GATEWAY_SECRET, authorization.as_str()] {
        assert!(!text.contains(secret), "{what} leaks {secret:?}:\n{text}");
    }
}

#[tokio::test]
async fn passwords_never_reach_logs_results_dead_letters_or_probes() {
    let mut app = spawn_app_with(AppOptions {
        start_worker: false,
        ..AppOptions::default()
    })
    .await;
    let http = reqwest::Client::new();
    let common = |amqp_url: String| {
        vec![
            ("AVATAR_WORKER__AMQP__URL", amqp_url),
            ("AVATAR_WORKER__GATEWAY__BASE_URL", app.mock.base_url()),
            ("AVATAR_WORKER__GATEWAY__USERNAME", USER.to_string()),
            (
                "AVATAR_WORKER__GATEWAY__PASSWORD",
                GATEWAY_SECRET.to_string(),
            ),
            (
                "AVATAR_WORKER__TOPOLOGY__PREFIX",
                app.settings.topology.prefix.clone(),
            ),
            ("AVATAR_WORKER__ADMIN__BIND", "127.0.0.1:0".to_string()),
            // The test's cleanup knows its own number of groups.
            (
                "AVATAR_WORKER__LANES__GROUPS",
                app.settings.lanes.groups.to_string(),
            ),
            ("AVATAR_WORKER__LOG__FORMAT", "json".to_string()),
            ("AVATAR_WORKER__LOG__LEVEL", "debug".to_string()),
            ("AVATAR_WORKER__AMQP__RECONNECT_MAX_MS", "300".to_string()),
        ]
    };

    // 1. A broker that refuses the password: the failures are logged and shown by /readyz.
    let (_, host) = crate::proxy::authority(&app.amqp_url);
    let refused = WorkerProcess::start(
        &common(format!("amqp://guest:{AMQP_SECRET}@{host}/%2f")),
        None,
    );
    let admin = refused.admin().await;
    refused.wait_for("cannot reach the broker").await;
    let readyz = http
        .get(format!("http://{admin}/readyz"))
        .send()
        .await
        .unwrap();
    assert_eq!(readyz.status().as_u16(), 503);
    assert_clean("/readyz", &readyz.text().await.unwrap());
    let metrics = http
        .get(format!("http://{admin}/metrics"))
        .send()
        .await
        .unwrap();
    assert_clean("/metrics", &metrics.text().await.unwrap());
    let log = refused.stop().await.join("\n");
    assert!(
        log.contains("guest:***@"),
        "the URL is logged redacted:\n{log}"
    );
    assert_clean("the log of a refused connection", &log);

    // 2. A gateway that refuses the password: the worker says so (ERROR line, /readyz) and holds the
    // jobs; a bad job is still answered; once the gateway takes the password, the held job runs.
    let config = std::env::temp_dir().join(format!("{}.toml", app.settings.topology.prefix));
    std::fs::write(
        &config,
        "[retry]\nmax_attempts = 1\ndelays_ms = [100, 200, 400]\n[pacing]\nenabled = false\n",
    )
    .unwrap();
    let worker = WorkerProcess::start(&common(app.amqp_url.clone()), Some(&config));
    worker.wait_for("consuming").await;
    worker.wait_for("refuses the configured credentials").await;
    app.publish_json(
        JobKind::Fetch,
        &json!({"job_id": "leak-1", "phone": "6281300003000", "device_id": "dev-a"}),
    )
    .await;
    app.publish_raw(JobKind::Fetch, b"{not json", BasicProperties::default())
        .await;
    let invalid = app.next_result().await;
    assert_eq!(
        invalid.error.as_ref().map(|e| e.code),
        Some(ErrorCode::InvalidJob)
    );
    let readyz = http
        .get(format!("http://{}/readyz", worker.admin().await))
        .send()
        .await
        .unwrap();
    assert_eq!(readyz.status().as_u16(), 503);
    let reason = readyz.text().await.unwrap();
    assert!(reason.contains("credentials"), "{reason}");
    assert_clean("/readyz", &reason);
    app.put(
        "/_mock/basic-auth",
        json!({"pairs": [format!("{USER}:{GATEWAY_SECRET}")]}),
    )
    .await;
    let held = app.next_result().await;
    assert_eq!(
        (held.job_id.as_str(), held.error.as_ref().map(|e| e.code)),
        ("leak-1", None)
    );
    for result in [&invalid, &held] {
        assert_clean("a result", &serde_json::to_string(result).unwrap());
    }
    for letter in app.dead_letters(1).await {
        assert_clean("a dead letter body", &String::from_utf8_lossy(&letter.data));
        assert_clean("dead letter headers", &format!("{:?}", letter.properties));
    }
    let admin = worker.admin().await;
    let metrics = http
        .get(format!("http://{admin}/metrics"))
        .send()
        .await
        .unwrap();
    assert_clean("/metrics", &metrics.text().await.unwrap());
    let log = worker.stop().await;
    let _ = std::fs::remove_file(&config);
    assert_clean("the worker's log", &log.join("\n"));

    // Every line about the job carries its job_id, kind and device_id.
    let job_lines: Vec<Value> = log
        .iter()
        .filter(|l| l.contains("leak-1"))
        .map(|l| serde_json::from_str(l).expect("JSON log line"))
        .collect();
    assert!(!job_lines.is_empty(), "{}", log.join("\n"));
    for line in &job_lines {
        let span = &line["span"];
        assert_eq!(span["job_id"], "leak-1", "{line}");
        assert_eq!(span["kind"], "fetch", "{line}");
        assert_eq!(span["device_id"], "dev-a", "{line}");
    }
    assert!(
        log.iter()
            .any(|l| l.contains("ERROR") && l.contains("refuses the configured credentials")),
        "the refusal is logged as an ERROR"
    );
}
