use std::collections::HashSet;
use std::time::{Duration, Instant};

use avatar_worker::protocol::JobKind;
use avatar_worker::settings::{Limit, QueueType};
use serde_json::json;

use crate::helpers::{AppOptions, spawn_app_with};
use crate::process::WorkerProcess;

async fn three_replicas_answer_every_job(queue_type: QueueType) {
    let mut app = spawn_app_with(AppOptions {
        start_worker: false,
        configure: Box::new(move |s| s.topology.queue_type = queue_type),
        ..AppOptions::default()
    })
    .await;
    let kind = match queue_type {
        QueueType::Classic => "classic",
        QueueType::Quorum => "quorum",
    };
    let replicas: Vec<WorkerProcess> = (0..3)
        .map(|_| {
            WorkerProcess::start(
                &app,
                &[("AVATAR_WORKER__TOPOLOGY__QUEUE_TYPE", kind.into())],
            )
        })
        .collect();
    const JOBS: usize = 1500;
    app.publish_fetches("x", JOBS).await;
    let mut seen = HashSet::new();
    while seen.len() < JOBS {
        let result = app.next_result().await;
        assert!(result.error.is_none(), "{result:?}");
        seen.insert(result.job_id.to_string());
    }
    for mut replica in replicas {
        assert!(replica.terminate().success());
    }
}

#[tokio::test]
async fn several_replicas_on_classic_queues_answer_every_job() {
    three_replicas_answer_every_job(QueueType::Classic).await;
}

#[tokio::test]
async fn several_replicas_on_quorum_queues_answer_every_job() {
    three_replicas_answer_every_job(QueueType::Quorum).await;
}

/// Two replicas, each told there are two: together they keep a device at its limit.
#[tokio::test]
async fn replicas_share_a_devices_rate() {
    let mut app = spawn_app_with(AppOptions {
        start_worker: false,
        configure: Box::new(|s| {
            s.pacing.enabled = true;
            s.pacing.fetch = Limit {
                rate_per_s: 10.0,
                burst: 2,
                concurrency: 2,
            };
            s.retry.delays = crate::helpers::ms(&[250, 500, 1000]);
        }),
        ..AppOptions::default()
    })
    .await;
    const JOBS: usize = 40;
    let started = Instant::now();
    for i in 0..JOBS {
        app.publish_json(JobKind::Fetch, &json!({"job_id": format!("p{i}"), "device_id": "dev-a", "phone": format!("62822{i:08}")})).await;
    }
    app.start_replica().await;
    app.start_replica().await;
    let results = app.results(JOBS).await;
    assert!(results.iter().all(|r| r.error.is_none()));
    let elapsed = started.elapsed();
    eprintln!("{JOBS} jobs for one device limited to 10/s over two replicas took {elapsed:?}");
    // 40 jobs at 10/s with a burst of 2 need at least 3.8 s; without sharing the limit they would take half.
    assert!(
        elapsed >= Duration::from_millis(3400),
        "the device's rate held across replicas: {elapsed:?}"
    );
}
