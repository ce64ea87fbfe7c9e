//! What an operator reads: the real binary's JSON log at `info`, one clear line per event at its level.

use avatar_worker::protocol::{ErrorCode, JobKind};
use serde_json::{Value, json};

use crate::helpers::{AppOptions, PASSWORD, spawn_app_with};
use crate::process::LoggedWorker;
use crate::proxy::Proxy;

fn parsed(line: &str) -> Value {
    serde_json::from_str(line).unwrap_or_else(|err| panic!("not a JSON log line ({err}): {line}"))
}

fn level(line: &str) -> String {
    parsed(line)["level"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[tokio::test]
async fn starting_a_malformed_job_and_a_lost_connection_are_one_line_each() {
    let mut app = spawn_app_with(AppOptions {
        start_worker: false,
        ..AppOptions::default()
    })
    .await;
    let (proxy, via_proxy) = Proxy::in_front_of(&app.amqp_url).await;
    let worker = LoggedWorker::start(&LoggedWorker::env(&app, via_proxy, PASSWORD, "info"), None);

    // The queues are fields of the starting line, not a struct's debug text.
    let starting = parsed(&worker.wait_for("\"starting\"").await);
    assert_eq!(
        starting["fetch_queue"],
        app.names.fetch.as_str(),
        "{starting}"
    );
    assert_eq!(
        starting["update_queue"],
        app.names.update.as_str(),
        "{starting}"
    );
    assert!(!starting.to_string().contains("QueueNames"), "{starting}");
    worker.wait_for("consuming").await;

    // A fetch without a phone: answered, and logged once at WARN with its job_id, code and reason.
    app.publish_json(
        JobKind::Fetch,
        &json!({"job_id": "no-phone", "device_id": "dev-a"}),
    )
    .await;
    let result = app.next_result().await;
    assert_eq!(result.error.map(|e| e.code), Some(ErrorCode::InvalidJob));
    let refused = worker.wait_for("malformed job refused").await;
    let line = parsed(&refused);
    assert_eq!(line["level"], "WARN", "{refused}");
    assert_eq!(line["span"]["job_id"], "no-phone", "{refused}");
    assert_eq!(line["code"], "invalid_job", "{refused}");
    assert!(
        line["message"]
            .as_str()
            .is_some_and(|m| m.contains("phone")),
        "the reason names what is wrong: {refused}"
    );
    let about_job = worker
        .log()
        .iter()
        .filter(|l| l.contains("no-phone") && level(l) != "DEBUG")
        .count();
    assert_eq!(about_job, 1, "{}", worker.log().join("\n"));

    // An ordinary disconnect: the worker's own WARN, no ERROR from anybody, and it connects again.
    let before = worker.log().len();
    proxy.cut();
    worker.wait_for("broker connection lost").await;
    let reconnected = || {
        worker.log()[before..]
            .iter()
            .any(|l| l.contains("connected to the broker"))
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !reconnected() {
        assert!(std::time::Instant::now() < deadline, "no reconnection");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let log = worker.stop().await;
    let around_cut: Vec<&String> = log[before..].iter().collect();
    // The malformed job's ack may still be on its way when the connection is cut: then it comes back and is
    // refused (and logged) again, as at-least-once allows. Those lines are about the job, not the connection.
    let loud: Vec<&&String> = around_cut
        .iter()
        .filter(|l| matches!(level(l).as_str(), "WARN" | "ERROR") && !l.contains("\"no-phone\""))
        .collect();
    assert_eq!(
        loud.len(),
        1,
        "one WARN line for one lost connection:\n{}",
        around_cut
            .iter()
            .map(|l| l.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(loud[0].contains("broker connection lost"), "{}", loud[0]);
}
