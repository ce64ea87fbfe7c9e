//! Secrets never leak: the gateway password and the AMQP password appear in no log line, result, dead
//! letter, probe answer or metric. The worker runs as its own process (the real binary, JSON logs) so
//! everything it writes to stderr is searched.

use avatar_worker::protocol::{ErrorCode, JobKind};
use base64::Engine;
use lapin::BasicProperties;
use serde_json::{Value, json};

use crate::helpers::{AppOptions, USER, spawn_app_with};
use crate::process::LoggedWorker;

const AMQP_SECRET: &str = "amqp-secret-7Qx2vL";
const GATEWAY_SECRET: &str = "gateway-secret-Zt9wKp";

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
    let common = |amqp_url: String| LoggedWorker::env(&app, amqp_url, GATEWAY_SECRET, "debug");

    // 1. A broker that refuses the password: the failures are logged and shown by /readyz.
    let (_, host) = crate::proxy::authority(&app.amqp_url);
    let refused = LoggedWorker::start(
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
    let worker = LoggedWorker::start(&common(app.amqp_url.clone()), Some(&config));
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
