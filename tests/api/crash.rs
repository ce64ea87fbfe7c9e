use std::collections::HashSet;

use serde_json::json;

use crate::helpers::{AppOptions, spawn_app_with};
use crate::process::WorkerProcess;

#[tokio::test]
async fn a_worker_killed_mid_run_loses_nothing() {
    let mut app = spawn_app_with(AppOptions {
        start_worker: false,
        configure: Box::new(|s| {
            s.worker.prefetch = 200;
            s.worker.max_in_flight = 64;
        }),
        ..AppOptions::default()
    })
    .await;
    const JOBS: usize = 5000;
    app.publish_fetches("k", JOBS).await;
    let mut worker = WorkerProcess::start(&app, &[]);
    let mut seen = HashSet::new();
    let mut answers = 0;
    while seen.len() < JOBS / 3 {
        seen.insert(app.next_result().await.job_id.to_string());
        answers += 1;
    }
    worker.kill_hard();
    let killed_at = seen.len();
    let mut worker = WorkerProcess::start(&app, &[]);
    while seen.len() < JOBS {
        let result = app.next_result().await;
        assert!(result.error.is_none(), "{result:?}");
        seen.insert(result.job_id.to_string());
        answers += 1;
    }
    eprintln!(
        "killed after {killed_at} answers; {JOBS} jobs answered with {} duplicates",
        answers - JOBS
    );
    let status = worker.terminate();
    assert!(status.success(), "SIGTERM exits 0: {status:?}");
    assert_eq!(app.queue_depth(&app.names.fetch.clone()).await, 0);
}

#[tokio::test]
async fn sigterm_drains_and_exits_zero() {
    let mut app = spawn_app_with(AppOptions {
        start_worker: false,
        ..AppOptions::default()
    })
    .await;
    app.put("/_mock/faults", json!({"latency_ms": 200})).await;
    let mut worker = WorkerProcess::start(&app, &[]);
    app.publish_fetches("t", 20).await;
    let first = app.next_result().await;
    let status = worker.terminate();
    assert!(status.success(), "{status:?}");
    let mut answered: HashSet<String> = HashSet::from([first.job_id.to_string()]);
    for result in app.remaining_results().await {
        assert!(answered.insert(result.job_id.to_string()), "answered once");
    }
    let left = app.queue_depth(&app.names.fetch.clone()).await as usize;
    assert_eq!(
        answered.len() + left,
        20,
        "every job answered or back in its queue"
    );
}
