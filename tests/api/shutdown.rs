use std::collections::HashMap;

use avatar_worker::protocol::JobKind;
use serde_json::json;

use crate::helpers::{AppOptions, TestApp, spawn_app_with};

const JOBS: usize = 300;

/// Every job is either answered exactly once or back in its queue; none is lost, none answered twice.
async fn assert_nothing_lost(app: &mut TestApp, first: String) -> (usize, usize) {
    let mut seen: HashMap<String, usize> = HashMap::from([(first, 1)]);
    for result in app.remaining_results().await {
        *seen.entry(result.job_id.to_string()).or_default() += 1;
    }
    let answered = seen.len();
    let answered_jobs = seen.keys().filter(|id| id.as_str() != "warm-up").count();
    assert!(seen.values().all(|n| *n == 1), "no job answered twice");
    let requeued = app.waiting_jobs().await;
    for message in &requeued {
        let value: serde_json::Value = serde_json::from_slice(&message.delivery.data).unwrap();
        let id = value["job_id"].as_str().unwrap().to_string();
        assert!(
            !seen.contains_key(&id),
            "{id} was answered and also requeued"
        );
        seen.insert(id, 1);
    }
    seen.remove("warm-up");
    assert_eq!(seen.len(), JOBS, "every job accounted for");
    let _ = answered_jobs;
    (answered, requeued.len())
}

#[tokio::test]
async fn shutdown_finishes_in_flight_jobs_and_returns_the_rest() {
    let mut app = spawn_app_with(AppOptions {
        configure: Box::new(|s| {
            s.worker.max_in_flight = 200;
            s.worker.prefetch = 200;
        }),
        start_worker: false,
        ..AppOptions::default()
    })
    .await;
    app.put("/_mock/faults", json!({"latency_ms": 300})).await;
    app.publish_fetches("s", JOBS).await;
    app.start_worker().await;
    // Stopped with at least 50 jobs at the gateway, however long a busy machine takes to get there.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let in_flight = loop {
        let now = app.metric("avatar_worker_in_flight").await;
        if now >= 50.0 {
            break now as usize;
        }
        assert!(std::time::Instant::now() < deadline, "{now} jobs in flight");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    };
    app.stop_worker().await;
    let first = app.next_result().await;
    let (answered, requeued) = assert_nothing_lost(&mut app, first.job_id.to_string()).await;
    assert!(
        answered >= in_flight,
        "the {in_flight} jobs in flight at the stop finish within the grace period: {answered} answered"
    );
    assert!(requeued > 0, "jobs not started wait in the broker");
}

#[tokio::test]
async fn nothing_is_lost_when_the_grace_period_runs_out() {
    let mut app = spawn_app_with(AppOptions {
        configure: Box::new(|s| {
            s.worker.max_in_flight = 50;
            s.worker.shutdown_grace = std::time::Duration::from_millis(200);
            // No job may finish while the test publishes, however slowly a busy machine lets it.
            s.gateway.timeout = std::time::Duration::from_secs(120);
        }),
        ..AppOptions::default()
    })
    .await;
    app.publish_json(
        JobKind::Fetch,
        &json!({"job_id": "warm-up", "phone": "6281299999999"}),
    )
    .await;
    let first = app.next_result().await;
    // From now on the gateway is far too slow for the grace period.
    app.put("/_mock/faults", json!({"latency_ms": 60000})).await;
    app.publish_fetches("s", JOBS).await;
    // The broker's ready count is the only outside view of what the worker holds.
    let deadline = tokio::time::Instant::now() + crate::helpers::WAIT;
    while app.queue_depth(&app.names.fetch.clone()).await > (JOBS - 50) as u32 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the worker never took the jobs"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let stopping = tokio::time::Instant::now();
    app.stop_worker().await;
    assert!(
        stopping.elapsed() < std::time::Duration::from_secs(3),
        "the grace period bounds the stop"
    );
    let (answered, requeued) = assert_nothing_lost(&mut app, first.job_id.to_string()).await;
    assert_eq!(answered, 1, "only the warm-up job was answered");
    assert_eq!(
        requeued, JOBS,
        "the abandoned in-flight jobs went back to the broker"
    );
}
