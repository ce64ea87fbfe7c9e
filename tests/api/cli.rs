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

/// `avatar-worker ARGS` with only `env` in its environment (no broker needed).
fn bare(args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_avatar-worker"));
    command
        .args(args)
        .env_clear()
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

#[tokio::test]
async fn an_invalid_log_level_stops_the_start() {
    let out = output(bare(&["run"], &[("AVATAR_WORKER__LOG__LEVEL", "verbose")])).await;
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("log.level") && stderr.contains("verbose"),
        "{stderr}"
    );
}

#[tokio::test]
async fn config_redacts_secrets_and_names_variables_it_never_reads() {
    let out = output(bare(
        &["config"],
        &[
            ("AVATAR_WORKER_GATEWAY__BASE_URL", "http://gowa:3000"),
            ("AVATAR_WORKER__GATEWAY__USERNAME", "gowa"),
            ("AVATAR_WORKER__GATEWAY__PASSWORD", "s3cret-pass"),
            (
                "AVATAR_WORKER__AMQP__URL",
                "amqp://app:hunter2@rabbit:5672/%2f",
            ),
            ("AVATAR_WORKER__WORKER__PREFETCH", "42"),
        ],
    ))
    .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(
        stderr.contains("AVATAR_WORKER_GATEWAY__BASE_URL is not read")
            && stderr.contains("did you mean AVATAR_WORKER__GATEWAY__BASE_URL"),
        "{stderr}"
    );
    assert!(
        !stdout.contains("s3cret-pass") && !stdout.contains("hunter2"),
        "{stdout}"
    );
    assert!(stdout.contains("password = \"***\""), "{stdout}");
    assert!(
        stdout.contains("url = \"amqp://app:***@rabbit:5672/%2f\""),
        "{stdout}"
    );
    assert!(stdout.contains("prefetch = 42"), "{stdout}");
    assert!(
        stdout.contains("base_url = \"http://127.0.0.1:3000\""),
        "the misspelt variable changed nothing: {stdout}"
    );
}

#[tokio::test]
async fn status_fails_while_no_worker_consumes_the_job_queues() {
    let mut app = app_without_worker().await;
    let out = output(command(&app, &["status"])).await;
    assert!(!out.status.success(), "{}", text(&out.stdout));
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(stderr.contains("no worker consumes"), "{stderr}");
    for queue in app.names.main_queues() {
        assert!(stdout.contains(queue), "{queue} in {stdout}");
    }

    app.start_worker().await;
    app.readyz_becomes(200).await;
    // The update queue is read once the worker has won the update-intake claim, moments after it is ready.
    app.metric_becomes(r#"avatar_worker_job_consumers{kind="update"}"#, 1.0)
        .await;
    app.publish_json(
        avatar_worker::protocol::JobKind::Fetch,
        &json!({"job_id": "bad", "phone": "letters-only"}),
    )
    .await;
    let _ = app.next_result().await;
    let out = output(command(&app, &["status"])).await;
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    let dead_line = stdout
        .lines()
        .find(|line| line.starts_with(app.names.dead.as_str()))
        .expect("the dead queue's line");
    assert_eq!(
        dead_line.split_whitespace().collect::<Vec<_>>()[1..],
        ["1", "0"]
    );
    assert!(
        stdout
            .lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["invalid_phone", "1"]),
        "{stdout}"
    );
}

/// A worker that has dead-lettered `malformed` malformed jobs (`bad0`, …) and one throttled group fetch
/// (`slow`, retries exhausted).
async fn app_with_dead_letters(malformed: usize) -> TestApp {
    let mut app = crate::helpers::spawn_app().await;
    for i in 0..malformed {
        app.publish_json(
            avatar_worker::protocol::JobKind::Fetch,
            &json!({"job_id": format!("bad{i}"), "device_id": "dev-a", "phone": "letters-only"}),
        )
        .await;
    }
    let _ = app.results(malformed).await;
    app.put("/_mock/faults", json!({"rate_overlimit": 1.0}))
        .await;
    app.publish_json(
        avatar_worker::protocol::JobKind::Fetch,
        &json!({"job_id": "slow", "phone": "120363000000000001@g.us"}),
    )
    .await;
    let _ = app.next_result().await;
    app
}

#[tokio::test]
async fn dead_list_shows_each_letter_and_leaves_them_in_order() {
    let app = app_with_dead_letters(2).await;
    let out = output(command(&app, &["dead", "list"])).await;
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let rows: Vec<Vec<&str>> = stdout
        .lines()
        .skip(1)
        .take(3)
        .map(|line| line.split_whitespace().collect())
        .collect();
    assert_eq!(
        rows.iter().map(|r| r[..4].to_vec()).collect::<Vec<_>>(),
        [
            ["bad0", "fetch", "dev-a", "invalid_phone"],
            ["bad1", "fetch", "dev-a", "invalid_phone"],
            ["slow", "fetch", "-", "retries_exhausted"],
        ],
        "{stdout}"
    );
    assert!(stdout.contains("rate_limited: "), "{stdout}");
    assert_eq!(rows[2][4], "1", "one attempt: {stdout}");
    assert!(stdout.contains("3 dead letter(s)"), "{stdout}");
    assert_eq!(app.queue_depth(&app.names.dead).await, 3, "nothing taken");

    let out = output(command(&app, &["dead", "list", "--limit", "1", "--json"])).await;
    let lines: Vec<Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON"))
        .collect();
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["job_id"], "bad0");
    assert!(lines[0]["dead_at_ms"].as_u64().is_some(), "{}", lines[0]);
    let again = output(command(&app, &["dead", "list", "--json"])).await;
    let ids: Vec<String> = text(&again.stdout)
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("JSON")["job_id"].to_string())
        .collect();
    assert_eq!(
        ids,
        ["\"bad0\"", "\"bad1\"", "\"slow\""],
        "the order is kept"
    );
}

#[tokio::test]
async fn dead_purge_needs_its_confirmation_and_can_keep_other_reasons() {
    let app = app_with_dead_letters(2).await;
    let out = output(command(&app, &["dead", "purge"])).await;
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("--yes"), "{}", text(&out.stderr));
    assert_eq!(app.queue_depth(&app.names.dead).await, 3, "nothing deleted");

    let out = output(command(
        &app,
        &["dead", "purge", "--reason", "invalid_phone", "--yes"],
    ))
    .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("purged 2"),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(app.queue_depth(&app.names.dead).await, 1);
    let out = output(command(&app, &["dead", "list", "--json"])).await;
    assert!(text(&out.stdout).contains("\"job_id\":\"slow\""));

    let out = output(command(&app, &["dead", "purge", "--yes"])).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(app.queue_depth(&app.names.dead).await, 0);
}

#[tokio::test]
async fn results_shows_what_waits_and_leaves_it() {
    let mut app = app_without_worker().await;
    // The test's own consumer of the results queue would take them; stop it first.
    let _ = app.remaining_results().await;
    let body = json!({"job_id": "r1", "kind": "fetch", "status": "not_set"}).to_string();
    app.channel
        .basic_publish(
            "".into(),
            app.names.results.as_str().into(),
            Default::default(),
            body.as_bytes(),
            Default::default(),
        )
        .await
        .expect("publish")
        .await
        .expect("confirm");
    let out = output(command(&app, &["results"])).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), body);
    assert_eq!(
        app.queue_depth(&app.names.results).await,
        1,
        "left in place"
    );
}

#[tokio::test]
async fn enqueue_wait_fails_on_an_error_result() {
    let app = app_without_worker().await;
    let mut jobs = consume(&app.connection, &app.names.fetch).await;
    let run = tokio::spawn(output(command(
        &app,
        &["enqueue", "fetch", "--phone", "6281234567892", "--wait"],
    )));
    let job = next_job(&mut jobs).await;
    answer(&app, &job, Some("not_on_whatsapp")).await;
    let out = tokio::time::timeout(Duration::from_secs(30), run)
        .await
        .expect("enqueue ends once answered")
        .expect("joined");
    let stderr = text(&out.stderr);
    assert!(!out.status.success(), "an error result fails the command");
    assert!(
        stderr.contains("failed: not_on_whatsapp: the gateway said no"),
        "{stderr}"
    );
    assert!(
        !stderr.contains('\u{1b}'),
        "no colour when stderr is no terminal: {stderr:?}"
    );
}

#[tokio::test]
async fn enqueue_wait_warns_without_a_worker_and_gives_up_after_its_timeout_in_seconds() {
    let app = app_without_worker().await;
    let out = output(command(
        &app,
        &[
            "enqueue",
            "fetch",
            "--phone",
            "6281234567892",
            "--wait",
            "--timeout",
            "1",
        ],
    ))
    .await;
    let stderr = text(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains(&format!("no worker consumes {}", app.names.fetch)),
        "warned at once: {stderr}"
    );
    assert!(stderr.contains("no result within 1 s"), "{stderr}");
}

#[tokio::test]
async fn an_unreachable_broker_is_said_once() {
    let refusing = test_support::ports::RefusingPort::new();
    let url = format!("amqp://guest:guest@{}/%2f", refusing.addr());
    let out = output(bare(
        &["enqueue", "fetch", "--phone", "6281234567892"],
        &[("AVATAR_WORKER__AMQP__URL", url.as_str())],
    ))
    .await;
    let stderr = text(&out.stderr);
    assert!(!out.status.success());
    assert_eq!(stderr.matches("Connection refused").count(), 1, "{stderr}");
}

#[tokio::test]
async fn sync_of_an_empty_file_says_it_is_empty() {
    let dir = std::env::temp_dir().join(format!("aw-empty-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let input = dir.join("contacts.csv");
    std::fs::write(&input, "").unwrap();
    let output_file = dir.join("out.jsonl");
    let out = output(bare(
        &[
            "sync",
            input.to_str().unwrap(),
            "--output",
            output_file.to_str().unwrap(),
        ],
        &[],
    ))
    .await;
    let stderr = text(&out.stderr);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(!out.status.success());
    assert!(stderr.contains("is empty"), "{stderr}");
}

#[tokio::test]
async fn sync_interrupted_prints_its_summary_and_the_resume_hint() {
    let app = app_without_worker().await;
    let dir = std::env::temp_dir().join(format!("aw-int-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let input = dir.join("contacts.csv");
    std::fs::write(&input, "phone\n6281234567001\n6281234567002\n").unwrap();
    let output_file = dir.join("out.jsonl");
    let mut jobs = consume(&app.connection, &app.names.fetch).await;
    let child = command(
        &app,
        &[
            "sync",
            input.to_str().unwrap(),
            "--device",
            "dev-a",
            "--output",
            output_file.to_str().unwrap(),
        ],
    )
    .spawn()
    .expect("sync starts");
    let pid = child.id();
    // Both jobs are out and nobody answers: a person presses Ctrl-C.
    let _ = next_job(&mut jobs).await;
    let _ = next_job(&mut jobs).await;
    let status = Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let out = tokio::time::timeout(
        Duration::from_secs(30),
        tokio::task::spawn_blocking(move || child.wait_with_output().expect("sync ends")),
    )
    .await
    .expect("sync stops on Ctrl-C")
    .expect("joined");
    let _ = std::fs::remove_dir_all(&dir);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(!out.status.success());
    assert!(stdout.contains("sync summary"), "{stdout}");
    assert!(
        stderr.contains("2 rows unanswered") && stderr.contains("--resume"),
        "{stderr}"
    );
}
