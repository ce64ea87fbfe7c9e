use std::collections::HashSet;

use avatar_worker::protocol::JobKind;
use serde_json::json;

use crate::helpers::{AppOptions, spawn_app_with};
use crate::proxy::{Proxy, authority};
use test_support::broker::broker_url;

#[tokio::test]
async fn the_worker_reconnects_and_answers_every_job() {
    let broker = broker_url().await;
    let (userinfo, upstream) = authority(&broker);
    let proxy = Proxy::start(upstream).await;
    let via_proxy = format!("amqp://{userinfo}@127.0.0.1:{}/%2f", proxy.port);
    let mut app = spawn_app_with(AppOptions {
        worker_amqp_url: Some(via_proxy),
        ..AppOptions::default()
    })
    .await;
    app.put("/_mock/faults", json!({"latency_ms": 2})).await;
    const JOBS: usize = 1000;
    const CUT_EVERY: usize = 100;
    app.publish_fetches("r", JOBS).await;
    let mut seen = HashSet::new();
    let mut answers = 0;
    let mut cuts = 0;
    while seen.len() < JOBS {
        let result = app.next_result().await;
        assert!(result.error.is_none(), "{result:?}");
        answers += 1;
        if seen.insert(result.job_id.to_string())
            && seen.len() % CUT_EVERY == 0
            && seen.len() < JOBS
        {
            // Drop the worker's broker connection while it is busy.
            proxy.cut();
            cuts += 1;
        }
    }
    assert_eq!(cuts, JOBS / CUT_EVERY - 1);
    eprintln!(
        "{JOBS} jobs through {cuts} connection drops: {} duplicate answers",
        answers - JOBS
    );
    // Nothing stuck: the worker is still consuming after the last drop.
    app.publish_json(
        JobKind::Fetch,
        &json!({"job_id": "after", "phone": "6281300000000"}),
    )
    .await;
    loop {
        if app.next_result().await.job_id.as_str() == "after" {
            break;
        }
    }
    app.stop_worker().await;
    assert_eq!(app.queue_depth(&app.names.fetch.clone()).await, 0);
}
