use std::collections::HashSet;

use avatar_worker::protocol::JobKind;
use serde_json::json;

use crate::helpers::{AppOptions, spawn_app_with};
use crate::proxy::Proxy;
use test_support::broker::broker_url;

#[tokio::test]
async fn the_worker_reconnects_and_answers_every_job() {
    let broker = broker_url().await;
    let (proxy, via_proxy) = Proxy::in_front_of(&broker).await;
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

/// The session watch ends on a lost connection, with nothing waiting on the broker (lapin never answers a
/// request sent after its I/O stopped), and not on one channel's error.
#[tokio::test]
async fn the_session_watch_follows_the_connection_not_its_channels() {
    let broker = broker_url().await;
    let (proxy, via_proxy) = Proxy::in_front_of(&broker).await;
    let connection = lapin::Connection::connect(&via_proxy, lapin::ConnectionProperties::default())
        .await
        .unwrap();
    let watch = avatar_worker::broker::Watch::new();
    watch.follow(&connection);

    let channel = connection.create_channel().await.unwrap();
    let missing = format!("missing-{}", uuid::Uuid::new_v4().simple());
    let refused = channel
        .queue_declare(
            missing.as_str().into(),
            lapin::options::QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            lapin::types::FieldTable::default(),
        )
        .await;
    assert!(
        refused.is_err(),
        "a passive declare of a missing queue fails"
    );
    // The channel's close went through the same events; the connection is still good.
    let still = connection.create_channel().await.unwrap();
    still.close(200, "checked".into()).await.unwrap();
    assert!(!watch.is_lost(), "{}", watch.reason());

    proxy.cut();
    tokio::time::timeout(std::time::Duration::from_secs(10), watch.wait())
        .await
        .expect("the watch ends when the connection does");
    assert!(
        watch.reason().starts_with("connection:"),
        "{}",
        watch.reason()
    );
    // What would otherwise wait forever ends with the watch.
    assert!(watch.bound(std::future::pending::<()>()).await.is_none());
}

/// A refused publish (nack) ends the session: RabbitMQ 3.10 can nack every later publish on a channel after a
/// quorum leader election, and a worker requeueing its jobs on such a channel would loop on them forever.
#[tokio::test]
async fn a_refused_publish_ends_the_session() {
    let broker = broker_url().await;
    let connection = lapin::Connection::connect(&broker, lapin::ConnectionProperties::default())
        .await
        .unwrap();
    let channel = connection.create_channel().await.unwrap();
    let mut refusing = lapin::types::FieldTable::default();
    refusing.insert("x-max-length".into(), lapin::types::AMQPValue::LongInt(0));
    refusing.insert(
        "x-overflow".into(),
        lapin::types::AMQPValue::LongString("reject-publish".into()),
    );
    let full = channel
        .queue_declare(
            "".into(),
            lapin::options::QueueDeclareOptions {
                exclusive: true,
                ..Default::default()
            },
            refusing,
        )
        .await
        .unwrap();
    let watch = avatar_worker::broker::Watch::new();
    let publisher = avatar_worker::broker::Publisher::new(
        connection.create_channel().await.unwrap(),
        watch.clone(),
    )
    .await
    .unwrap();
    let refused = publisher
        .publish(
            full.name().as_str(),
            b"{}",
            lapin::BasicProperties::default(),
        )
        .await;
    assert!(
        matches!(refused, Err(avatar_worker::broker::PublishError::Nacked)),
        "{refused:?}"
    );
    assert!(watch.is_lost());
    assert!(watch.reason().contains("nack"), "{}", watch.reason());
    let _ = connection.close(200, "done".into()).await;
}
