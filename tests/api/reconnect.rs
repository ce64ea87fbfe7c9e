use std::collections::HashSet;

use avatar_worker::protocol::JobKind;
use serde_json::json;

use crate::broker::broker_url;
use crate::helpers::{AppOptions, spawn_app_with};
use crate::proxy::{Proxy, authority};

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
    app.put("/_mock/faults", json!({"latency_ms": 5})).await;
    const JOBS: usize = 300;
    for i in 0..JOBS {
        app.publish_json(
            JobKind::Fetch,
            &json!({"job_id": format!("r{i}"), "phone": format!("62813{i:08}")}),
        )
        .await;
    }
    let mut seen = HashSet::new();
    let mut cuts = 0;
    while seen.len() < JOBS {
        let result = app.next_result().await;
        assert!(result.error.is_none(), "{result:?}");
        seen.insert(result.job_id.to_string());
        // Cut the worker's connection three times while it is busy.
        if seen.len() % 75 == 0 && cuts < 3 && seen.len() / 75 > cuts {
            proxy.cut();
            cuts += 1;
        }
    }
    assert_eq!(cuts, 3);
    app.stop_worker().await;
    assert_eq!(app.queue_depth(&app.names.fetch.clone()).await, 0);
}
