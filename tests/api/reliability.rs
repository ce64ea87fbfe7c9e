use std::collections::{HashMap, HashSet};
use std::time::Duration;

use avatar_worker::broker::headers;
use avatar_worker::protocol::{ErrorCode, JobKind, Status};
use avatar_worker::settings::{DevicePacing, Limit, QueueType};
use lapin::BasicProperties;
use lapin::options::{BasicConsumeOptions, BasicNackOptions};
use lapin::types::{AMQPValue, FieldTable};
use serde_json::json;

use crate::helpers::{AppOptions, header, spawn_app_with};

fn retries(attempts: u32) -> Box<dyn FnOnce(&mut avatar_worker::settings::Settings) + Send> {
    Box::new(move |s| {
        s.retry.max_attempts = attempts;
        s.retry.delays = crate::helpers::ms(&[50, 100, 200]);
        s.worker.max_in_flight = 64;
    })
}

#[tokio::test]
async fn transient_failures_retry_then_dead_letter_with_their_history() {
    let mut app = spawn_app_with(AppOptions {
        configure: retries(3),
        ..AppOptions::default()
    })
    .await;
    app.put("/_mock/faults", json!({"rate_overlimit": 1.0}))
        .await;
    // A group: GOWA makes no on-WhatsApp lookup for it, so throttling shows at the picture query.
    app.publish_json(
        JobKind::Fetch,
        &json!({"job_id": "flaky", "phone": "120363000000000001@g.us"}),
    )
    .await;
    let result = app.next_result().await;
    let error = result.error.as_ref().unwrap();
    assert_eq!(
        (error.code, error.retryable, result.attempts),
        (ErrorCode::RateLimited, true, 3)
    );
    let dead = app.dead_letters(1).await;
    let props = &dead[0].properties;
    assert_eq!(
        header(props, headers::REASON).as_deref(),
        Some("retries_exhausted")
    );
    assert_eq!(
        header(props, headers::ERROR_CODE).as_deref(),
        Some("rate_limited")
    );
    let history = match props
        .headers()
        .as_ref()
        .unwrap()
        .inner()
        .get(headers::HISTORY)
    {
        Some(AMQPValue::FieldArray(items)) => items.as_slice().len(),
        other => panic!("{other:?}"),
    };
    assert_eq!(history, 3, "one line per attempt");
    let gets = app.get("/_mock/requests").await["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|entry| entry["path"] == "/user/avatar")
        .count();
    assert_eq!(gets, 3, "three attempts reached the gateway");

    // The dead letter can be replayed once the cause is gone.
    app.put("/_mock/faults", json!({"rate_overlimit": 0.0}))
        .await;
    let client = avatar_worker::client::Client::connect_with(&app.amqp_url, app.names.clone())
        .await
        .unwrap();
    app.publish_json(
        JobKind::Fetch,
        &json!({"job_id": "bad", "phone": "letters-only"}),
    )
    .await;
    let _ = app.next_result().await;
    let report = client
        .replay_dead(avatar_worker::client::ReplayOptions {
            limit: Some(1),
            include_invalid: true,
        })
        .await
        .unwrap();
    assert_eq!(report.replayed, 1);
    let replayed = app.next_result().await;
    assert_eq!(
        (replayed.job_id.as_str(), replayed.status, replayed.attempts),
        ("bad", Status::Error, 1)
    );
}

#[tokio::test]
async fn gateway_down_for_ten_seconds_then_back_every_job_finishes() {
    let refusing = test_support::ports::RefusingPort::new();
    let port = refusing.port();
    let mut app = spawn_app_with(AppOptions {
        configure: Box::new(move |s| {
            s.gateway.base_url = format!("http://127.0.0.1:{port}");
            s.retry.max_attempts = 20;
            s.retry.delays = crate::helpers::ms(&[250, 500, 1000, 2000]);
        }),
        ..AppOptions::default()
    })
    .await;
    const JOBS: usize = 30;
    app.publish_fetches("g", JOBS).await;
    // The outage itself is the scenario: ten seconds of nothing listening on the gateway's port.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let gateway = mock_server::spawn(mock_server::Config {
        port: refusing.release(),
        ..crate::helpers::mock_config(vec!["dev-a".into()])
    })
    .await
    .unwrap();
    let results = app.results(JOBS).await;
    for result in &results {
        assert_eq!(result.status, Status::Ok, "{:?}", result.error);
    }
    assert!(
        results.iter().all(|r| r.attempts > 1),
        "every job was retried"
    );
    drop(gateway);
}

#[tokio::test]
async fn two_thousand_jobs_under_gateway_faults_all_end_with_a_named_outcome() {
    let mut app = spawn_app_with(AppOptions {
        configure: Box::new(|s| {
            s.retry.max_attempts = 5;
            s.retry.delays = crate::helpers::ms(&[20, 50, 100, 200]);
            s.worker.max_in_flight = 128;
            s.worker.prefetch = 300;
        }),
        ..AppOptions::default()
    })
    .await;
    app.put(
        "/_mock/faults",
        json!({"rate_overlimit": 0.2, "timeout": 0.1, "timeout_ms": 20, "internal_error": 0.1}),
    )
    .await;
    const JOBS: usize = 2000;
    app.publish_fetches("f", JOBS).await;
    let mut outcomes: HashMap<String, usize> = HashMap::new();
    let mut seen = HashSet::new();
    while seen.len() < JOBS {
        let result = app.next_result().await;
        let outcome = match &result.error {
            // Every number is on WhatsApp here: a throttled lookup's "not on whatsapp" is never final.
            Some(err) if err.code == ErrorCode::NotOnWhatsapp => {
                assert_eq!(
                    (err.confirmed, err.retryable),
                    (Some(false), true),
                    "{err:?}"
                );
                err.code.to_string()
            }
            Some(err) => {
                assert!(
                    matches!(
                        err.code,
                        ErrorCode::RateLimited | ErrorCode::Timeout | ErrorCode::GatewayError
                    ),
                    "{err:?}"
                );
                assert_eq!(
                    result.attempts, 5,
                    "errors come only after the last attempt"
                );
                err.code.to_string()
            }
            None => result.status.as_str().to_string(),
        };
        if seen.insert(result.job_id.to_string()) {
            *outcomes.entry(outcome).or_default() += 1;
        }
    }
    eprintln!("outcomes of {JOBS} jobs under faults: {outcomes:?}");
    assert!(
        outcomes.get("ok").copied().unwrap_or(0) + outcomes.get("not_set").copied().unwrap_or(0)
            > JOBS * 9 / 10
    );
}

#[tokio::test]
async fn a_job_that_keeps_coming_back_is_dead_lettered() {
    let mut app = spawn_app_with(AppOptions {
        start_worker: false,
        ..AppOptions::default()
    })
    .await;
    // Two jobs, one already seen 5 times (the limit): make the broker mark both redelivered by taking
    // and nacking them, as it would after a worker crash.
    for (id, seen) in [("poison", 5i64), ("unlucky", 0)] {
        let mut table = FieldTable::default();
        table.insert(headers::REDELIVERIES.into(), AMQPValue::LongLongInt(seen));
        let properties = BasicProperties::default()
            .with_message_id(id.into())
            .with_headers(table);
        app.publish_raw(JobKind::Fetch, br#"{"phone":"6281600000001"}"#, properties)
            .await;
    }
    let channel = app.connection.create_channel().await.unwrap();
    let mut taker = channel
        .basic_consume(
            app.names.fetch.as_str().into(),
            "taker".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    for _ in 0..2 {
        use futures_util::StreamExt;
        let delivery = taker.next().await.unwrap().unwrap();
        delivery
            .acker
            .nack(BasicNackOptions {
                requeue: true,
                multiple: false,
            })
            .await
            .unwrap();
    }
    channel.close(200, "done".into()).await.unwrap();
    app.start_replica().await;
    let results = app.results(2).await;
    let poison = results
        .iter()
        .find(|r| r.job_id.as_str() == "poison")
        .unwrap();
    assert_eq!(
        poison.error.as_ref().unwrap().code,
        ErrorCode::RedeliveryLimit
    );
    let unlucky = results
        .iter()
        .find(|r| r.job_id.as_str() == "unlucky")
        .unwrap();
    assert!(unlucky.error.is_none(), "{unlucky:?}");
    let dead = app.dead_letters(1).await;
    assert_eq!(
        header(&dead[0].properties, headers::REASON).as_deref(),
        Some("redelivery_limit")
    );
}

#[tokio::test]
async fn a_throttled_device_never_delays_another() {
    let mut app = spawn_app_with(AppOptions {
        devices: vec!["dev-a".into(), "dev-b".into()],
        configure: Box::new(|s| {
            s.pacing.enabled = true;
            s.pacing.fetch = Limit {
                rate_per_s: 5.0,
                burst: 1,
                concurrency: 2,
            };
            s.pacing.devices = vec![DevicePacing {
                devices: vec![avatar_worker::protocol::DeviceId::parse("dev-b").unwrap()],
                fetch: Some(Limit {
                    rate_per_s: 0.0,
                    burst: 1,
                    concurrency: 16,
                }),
                update: None,
            }];
        }),
        ..AppOptions::default()
    })
    .await;
    let mut jobs = Vec::new();
    for device in ["dev-a", "dev-b"] {
        for i in 0..300 {
            jobs.push(json!({"job_id": format!("{device}-{i}"), "device_id": device, "phone": format!("62817{i:08}")}));
        }
    }
    app.publish_all(JobKind::Fetch, &jobs, BasicProperties::default())
        .await;
    let (mut a_done, mut b_done) = (0usize, 0usize);
    while b_done < 300 {
        let result = app.next_result().await;
        assert!(result.error.is_none(), "{result:?}");
        match result.device_id.as_ref().map(|d| d.as_str()) {
            Some("dev-a") => a_done += 1,
            _ => b_done += 1,
        }
    }
    eprintln!("device B's 300 jobs done while device A (5/s) did {a_done}");
    assert!(a_done < 300, "B is not held behind A's backlog");
    // A keeps to 5/s however fast B goes: never more than 5 calls within a second.
    while a_done < 20 {
        if app
            .next_result()
            .await
            .device_id
            .as_ref()
            .map(|d| d.as_str())
            == Some("dev-a")
        {
            a_done += 1;
        }
    }
    // Measured where the calls arrive (the mock), over all of A's calls: with four tests beside this one on two
    // cores, two calls 200 ms apart at the worker can arrive 100 ms apart, so a one-second window would count
    // the scheduler's jitter. The exact pace is measured in tests/api/pacing.rs, one test at a time.
    let starts = app.gateway_starts().await;
    let a = &starts["dev-a"];
    let rate = (a.len() - 1) as f64 / (a[a.len() - 1] - a[0]);
    assert!(
        rate <= 5.0 * 1.05,
        "A keeps to 5/s: {rate:.2}/s over {} calls",
        a.len()
    );
}

#[tokio::test]
async fn updates_for_one_device_apply_in_arrival_order() {
    let mut app = spawn_app_with(AppOptions {
        configure: Box::new(|s| {
            s.pacing.enabled = true;
            s.pacing.update = Limit {
                rate_per_s: 0.0,
                burst: 1,
                concurrency: 1,
            };
        }),
        ..AppOptions::default()
    })
    .await;
    let images: Vec<Vec<u8>> = (0..3)
        .map(|i| crate::update::encoded(400 + i * 20, 400, image::ImageFormat::Png))
        .collect();
    for (i, image) in images.iter().enumerate() {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD.encode(image);
        app.publish_json(
            JobKind::Update,
            &json!({"job_id": format!("u{i}"), "device_id": "dev-a", "image": {"base64": b64}}),
        )
        .await;
    }
    let results = app.results(3).await;
    let order: Vec<&str> = results.iter().map(|r| r.job_id.as_str()).collect();
    assert_eq!(order, ["u0", "u1", "u2"], "applied in arrival order");
    let last = results[2].image.as_ref().unwrap();
    let stored = app.get("/_mock/devices/dev-a/avatar").await["results"].clone();
    assert_eq!(
        stored["uploaded_sha256"],
        json!(last.sha256),
        "the last one wins"
    );
}

#[tokio::test]
async fn quorum_queues_work_the_same() {
    let mut app = spawn_app_with(AppOptions {
        configure: Box::new(|s| {
            s.topology.queue_type = QueueType::Quorum;
            s.retry.max_attempts = 3;
        }),
        ..AppOptions::default()
    })
    .await;
    app.put("/_mock/faults", json!({"rate_overlimit": 0.3}))
        .await;
    app.publish_fetches("q", 100).await;
    let mut seen = HashSet::new();
    while seen.len() < 100 {
        seen.insert(app.next_result().await.job_id.to_string());
    }
}
