//! `dead replay`: bounded by what the dead-letter queue held at the start, malformed letters left alone
//! unless asked, results of gone reply queues sent to the results queue.

use avatar_worker::client::{Client, ReplayOptions};
use avatar_worker::protocol::{ErrorCode, JobKind, Status};
use futures_util::StreamExt;
use lapin::BasicProperties;
use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app};

async fn client(app: &TestApp) -> Client {
    Client::connect_with(&app.amqp_url, app.names.clone())
        .await
        .expect("client connects")
}

/// `GET /user/avatar` calls the mock has answered so far.
async fn avatar_calls(app: &TestApp) -> usize {
    let log = app.get("/_mock/requests").await;
    log["results"].as_array().map_or(0, |entries| {
        entries
            .iter()
            .filter(|entry| entry["path"] == "/user/avatar")
            .count()
    })
}

/// A fetch of a group: GOWA makes no on-WhatsApp lookup for it, so a throttled gateway fails the job
/// itself (retries exhausted at once with the tests' one attempt).
fn group_fetch(id: &str, n: usize) -> Value {
    json!({"job_id": id, "phone": format!("1203630000000000{n:02}@g.us")})
}

async fn publish_failing(app: &mut TestApp, prefix: &str, n: usize) {
    app.put("/_mock/faults", json!({"rate_overlimit": 1.0}))
        .await;
    for i in 0..n {
        app.publish_json(JobKind::Fetch, &group_fetch(&format!("{prefix}{i}"), i))
            .await;
    }
    for result in app.results(n).await {
        assert_eq!(
            result.error.map(|e| e.code),
            Some(ErrorCode::RateLimited),
            "{}",
            result.job_id.as_str()
        );
    }
}

#[tokio::test]
async fn a_replay_of_letters_that_fail_again_takes_each_once() {
    let mut app = spawn_app().await;
    const N: usize = 3;
    publish_failing(&mut app, "again", N).await;
    // Each dead letter is confirmed before its result is published.
    assert_eq!(app.queue_depth(&app.names.dead).await, N as u32);
    let before = avatar_calls(&app).await;
    assert_eq!(before, N);

    let report = client(&app)
        .await
        .replay_dead(ReplayOptions::default())
        .await
        .unwrap();
    assert_eq!(
        (report.found, report.examined, report.replayed),
        (N as u32, N, N)
    );
    assert_eq!(report.skipped_total(), 0);
    for result in app.results(N).await {
        assert_eq!(result.status, Status::Error);
    }
    assert_eq!(
        avatar_calls(&app).await - before,
        N,
        "a replay of {N} letters makes at most {N} gateway calls"
    );
    assert_eq!(
        app.queue_depth(&app.names.dead).await,
        N as u32,
        "each failed again once and waits for the next replay"
    );
}

#[tokio::test]
async fn a_limit_smaller_than_the_queue_replays_only_that_many() {
    let mut app = spawn_app().await;
    publish_failing(&mut app, "lim", 3).await;
    app.put("/_mock/faults", json!({"rate_overlimit": 0.0}))
        .await;
    let report = client(&app)
        .await
        .replay_dead(ReplayOptions {
            limit: Some(2),
            include_invalid: false,
        })
        .await
        .unwrap();
    assert_eq!((report.found, report.examined, report.replayed), (3, 2, 2));
    let results = app.results(2).await;
    assert!(
        results.iter().all(|r| r.status == Status::Ok),
        "{results:?}"
    );
    assert_eq!(app.queue_depth(&app.names.dead).await, 1);
}

#[tokio::test]
async fn malformed_letters_stay_unless_included() {
    let mut app = spawn_app().await;
    for id in ["bad0", "bad1"] {
        app.publish_json(
            JobKind::Fetch,
            &json!({"job_id": id, "phone": "letters-only"}),
        )
        .await;
    }
    let _ = app.results(2).await;
    let client = client(&app).await;
    let before = avatar_calls(&app).await;

    let report = client.replay_dead(ReplayOptions::default()).await.unwrap();
    assert_eq!((report.examined, report.replayed), (2, 0));
    assert_eq!(report.skipped.get("invalid_phone"), Some(&2), "{report:?}");
    assert_eq!(app.queue_depth(&app.names.dead).await, 2, "left in place");

    let report = client
        .replay_dead(ReplayOptions {
            limit: None,
            include_invalid: true,
        })
        .await
        .unwrap();
    assert_eq!((report.replayed, report.skipped_total()), (2, 0));
    let mut ids: Vec<String> = app
        .results(2)
        .await
        .into_iter()
        .map(|r| {
            assert_eq!(r.error.map(|e| e.code), Some(ErrorCode::InvalidPhone));
            r.job_id.as_str().to_string()
        })
        .collect();
    ids.sort();
    assert_eq!(ids, ["bad0", "bad1"]);
    assert_eq!(
        avatar_calls(&app).await,
        before,
        "no gateway call for either"
    );
}

#[tokio::test]
async fn a_letter_whose_reply_queue_is_gone_is_answered_on_the_results_queue() {
    let mut app = spawn_app().await;
    let gone = format!("amq.gen-gone-{}", uuid::Uuid::new_v4().simple());
    app.publish_raw(
        JobKind::Fetch,
        json!({"job_id": "orphan", "phone": "6281234567892"})
            .to_string()
            .as_bytes(),
        BasicProperties::default().with_reply_to(gone.as_str().into()),
    )
    .await;
    // Seen on a channel of the test's own, then left in the queue as the channel closes unacked.
    let channel = app.connection.create_channel().await.unwrap();
    let mut seen = channel
        .basic_consume(
            app.names.dead.as_str().into(),
            "".into(),
            Default::default(),
            Default::default(),
        )
        .await
        .unwrap();
    let letter = tokio::time::timeout(crate::helpers::WAIT, seen.next())
        .await
        .expect("a dead letter")
        .unwrap()
        .unwrap();
    assert_eq!(
        crate::helpers::header(&letter.properties, avatar_worker::broker::headers::REASON)
            .as_deref(),
        Some("result_unroutable")
    );
    channel.close(200, "seen".into()).await.unwrap();

    let report = client(&app)
        .await
        .replay_dead(ReplayOptions::default())
        .await
        .unwrap();
    assert_eq!((report.replayed, report.to_results), (1, 1));
    let result = app.next_result().await;
    assert_eq!(
        (result.job_id.as_str(), result.status),
        ("orphan", Status::Ok)
    );
    assert_eq!(app.queue_depth(&app.names.dead).await, 0);
}
