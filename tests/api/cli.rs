//! The `avatar-worker` command (the real binary) against a test's topology: producer and operator
//! commands, configured through the environment only.

use std::process::{Command, Output, Stdio};
use std::time::Duration;

use avatar_worker::protocol::JobResult;
use futures_util::StreamExt;
use lapin::message::Delivery;
use serde_json::{Value, json};

use crate::helpers::{AppOptions, TestApp, WAIT, consume, spawn_app_with};

/// `avatar-worker ARGS` with the app's broker and queue prefix and nothing else of the environment.
pub fn command(app: &TestApp, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_avatar-worker"));
    command
        .args(args)
        .env_clear()
        .env("AVATAR_WORKER__AMQP__URL", &app.amqp_url)
        .env(
            "AVATAR_WORKER__TOPOLOGY__PREFIX",
            &app.settings.topology.prefix,
        )
        .env(
            "AVATAR_WORKER__LANES__GROUPS",
            app.settings.lanes.groups.to_string(),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

/// Runs a command to its end off the async runtime.
pub async fn output(mut command: Command) -> Output {
    tokio::task::spawn_blocking(move || command.output().expect("the binary runs"))
        .await
        .expect("joined")
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// An app whose jobs nobody consumes but the test.
pub async fn app_without_worker() -> TestApp {
    spawn_app_with(AppOptions {
        start_worker: false,
        ..AppOptions::default()
    })
    .await
}

/// The next job on `consumer`.
pub async fn next_job(consumer: &mut lapin::Consumer) -> Delivery {
    tokio::time::timeout(WAIT, consumer.next())
        .await
        .expect("a job within the deadline")
        .expect("consumer open")
        .expect("delivery")
}

/// Answers a job the way the worker does: a result envelope on its reply_to queue.
pub async fn answer(app: &TestApp, job: &Delivery, error: Option<&str>) {
    let reply_to = job.properties.reply_to().clone().expect("reply_to");
    let job_id = job.properties.message_id().clone().expect("message_id");
    let mut result = json!({
        "job_id": job_id.as_str(), "kind": "fetch", "device_id": null, "status": "ok",
        "avatar": {"url": "http://127.0.0.1/p.jpg", "id": "1", "type": "image"}, "image": null,
        "error": null, "attempts": 1, "duration_ms": 3, "finished_at": "2026-12-01T00:00:00Z",
    });
    if let Some(code) = error {
        result["status"] = json!("error");
        result["avatar"] = Value::Null;
        result["error"] =
            json!({"code": code, "message": "the gateway said no", "retryable": false});
    }
    let _: JobResult = serde_json::from_value(result.clone()).expect("a valid result");
    app.channel
        .basic_publish(
            "".into(),
            reply_to.as_str().into(),
            Default::default(),
            result.to_string().as_bytes(),
            Default::default(),
        )
        .await
        .expect("publish")
        .await
        .expect("confirm");
}

#[tokio::test]
async fn enqueue_wait_gives_its_job_the_wait_as_expiration() {
    let app = app_without_worker().await;
    let mut jobs = consume(&app.connection, &app.names.fetch).await;
    let run = tokio::spawn(output(command(
        &app,
        &[
            "enqueue",
            "fetch",
            "--phone",
            "6281234567892",
            "--wait",
            "--timeout",
            "7",
        ],
    )));
    let job = next_job(&mut jobs).await;
    assert_eq!(
        job.properties.expiration().as_ref().map(|e| e.as_str()),
        Some("7000"),
        "nobody waits for the answer after 7 s"
    );
    answer(&app, &job, None).await;
    let out = tokio::time::timeout(Duration::from_secs(30), run)
        .await
        .expect("enqueue ends once answered")
        .expect("joined");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("\"status\":\"ok\""),
        "{}",
        text(&out.stdout)
    );
}

#[tokio::test]
async fn enqueue_without_wait_sets_no_expiration() {
    let app = app_without_worker().await;
    let mut jobs = consume(&app.connection, &app.names.fetch).await;
    let out = output(command(
        &app,
        &["enqueue", "fetch", "--phone", "6281234567892"],
    ))
    .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let job = next_job(&mut jobs).await;
    assert_eq!(job.properties.expiration(), &None);
}
