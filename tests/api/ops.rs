//! The admin server of a running worker: `/metrics` counts move as jobs pass, `/readyz` follows the broker
//! connection.

use avatar_worker::protocol::{ErrorCode, JobKind};
use serde_json::json;

use crate::helpers::{AppOptions, sample, spawn_app, spawn_app_with};
use crate::proxy::Proxy;
use test_support::broker::broker_url;

const FETCH_CONSUMERS: &str = r#"avatar_worker_job_consumers{kind="fetch"}"#;
const UPDATE_CONSUMERS: &str = r#"avatar_worker_job_consumers{kind="update"}"#;

#[tokio::test]
async fn metrics_count_jobs_gateway_calls_and_durations() {
    let mut app = spawn_app().await;
    app.readyz_becomes(200).await;
    let (status, body) = app.admin_get("/healthz").await;
    assert_eq!((status, body.trim()), (200, "ok"));

    for i in 0..3 {
        app.publish_json(
            JobKind::Fetch,
            &json!({"job_id": format!("m{i}"), "phone": format!("6281300000{i:03}")}),
        )
        .await;
    }
    app.publish_json(
        JobKind::Fetch,
        &json!({"job_id": "nodev", "phone": "6281300000999", "device_id": "no-such-device"}),
    )
    .await;
    let results = app.results(4).await;
    let failed = results
        .iter()
        .find(|r| r.job_id.as_str() == "nodev")
        .and_then(|r| r.error.as_ref())
        .map(|e| e.code);
    assert_eq!(failed, Some(ErrorCode::DeviceNotFound));

    let (status, text) = app.admin_get("/metrics").await;
    assert_eq!(status, 200);
    let expect = [
        (r#"avatar_worker_jobs_total{kind="fetch",status="ok"}"#, 3.0),
        (
            r#"avatar_worker_jobs_total{kind="fetch",status="device_not_found"}"#,
            1.0,
        ),
        (
            r#"avatar_worker_job_duration_seconds_count{kind="fetch"}"#,
            4.0,
        ),
        (
            r#"avatar_worker_gateway_requests_total{op="get",code="200"}"#,
            3.0,
        ),
        ("avatar_worker_in_flight", 0.0),
        ("avatar_worker_amqp_connected", 1.0),
        (r#"avatar_worker_build_info{version="0.1.0"}"#, 1.0),
    ];
    for (series, value) in expect {
        assert_eq!(sample(&text, series), Some(value), "{series} in\n{text}");
    }
    // The failed lookup was counted under the gateway's own status, whatever it is.
    let gateway_calls: f64 = text
        .lines()
        .filter(|l| l.starts_with("avatar_worker_gateway_requests_total{op=\"get\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert_eq!(gateway_calls, 4.0, "{text}");
    assert!(
        !text.contains("6281300000"),
        "phone numbers never become labels"
    );
}

#[tokio::test]
async fn retries_and_dead_letters_are_counted_by_reason() {
    let mut app = spawn_app_with(AppOptions {
        configure: Box::new(|s| s.retry.max_attempts = 2),
        ..AppOptions::default()
    })
    .await;
    // Every gateway call fails with a 500 the worker treats as transient.
    app.put("/_mock/faults", json!({"internal_error": 1.0}))
        .await;
    app.publish_json(
        JobKind::Fetch,
        &json!({"job_id": "flaky", "phone": "6281300001000"}),
    )
    .await;
    let result = app.next_result().await;
    let code = result.error.as_ref().map(|e| e.code).expect("an error");
    app.dead_letters(1).await;
    let (_, text) = app.admin_get("/metrics").await;
    let reason = format!(
        r#"avatar_worker_retries_total{{reason="{}"}}"#,
        code.as_str()
    );
    assert_eq!(sample(&text, &reason), Some(1.0), "{text}");
    assert_eq!(
        sample(
            &text,
            r#"avatar_worker_dead_lettered_total{reason="retries_exhausted"}"#
        ),
        Some(1.0),
        "{text}"
    );
}

#[tokio::test]
async fn readyz_follows_the_broker_connection() {
    let broker = broker_url().await;
    let (proxy, worker_url) = Proxy::in_front_of(&broker).await;
    let mut app = spawn_app_with(AppOptions {
        worker_amqp_url: Some(worker_url.clone()),
        ..AppOptions::default()
    })
    .await;
    // The node it is connected to, password hidden.
    assert_eq!(
        app.readyz_becomes(200).await.trim(),
        format!(
            "ready\nbroker {}",
            avatar_worker::settings::redact_url(&worker_url)
        )
    );
    // Ready means consuming the fetch queue; the one replica also wins the update-intake claim.
    let (_, text) = app.admin_get("/metrics").await;
    assert_eq!(sample(&text, FETCH_CONSUMERS), Some(1.0), "{text}");
    app.metric_becomes(UPDATE_CONSUMERS, 1.0).await;

    proxy.pause();
    let reason = app.readyz_becomes(503).await;
    assert!(reason.starts_with("not ready"), "{reason}");
    assert!(
        !reason.contains("\nbroker "),
        "no node while disconnected: {reason}"
    );
    let (_, text) = app.admin_get("/metrics").await;
    assert_eq!(sample(&text, "avatar_worker_amqp_connected"), Some(0.0));
    // The consumers ended with the connection: nobody reads the job queues through this worker.
    assert_eq!(sample(&text, FETCH_CONSUMERS), Some(0.0), "{text}");
    app.metric_becomes(UPDATE_CONSUMERS, 0.0).await;
    // Liveness does not depend on the broker.
    assert_eq!(app.admin_get("/healthz").await.0, 200);

    proxy.resume();
    app.readyz_becomes(200).await;
    let (_, text) = app.admin_get("/metrics").await;
    assert_eq!(sample(&text, "avatar_worker_amqp_connected"), Some(1.0));
    assert_eq!(sample(&text, FETCH_CONSUMERS), Some(1.0), "{text}");
    app.metric_becomes(UPDATE_CONSUMERS, 1.0).await;
    app.publish_json(
        JobKind::Fetch,
        &json!({"job_id": "after", "phone": "6281300002000"}),
    )
    .await;
    assert!(app.next_result().await.error.is_none());

    app.shutdown_handle().trigger();
    assert!(
        app.observed
            .as_ref()
            .is_some_and(|o| o.readiness.check().is_err())
    );
}

/// `GET path` on a connection of its own: the status line, and how long the answer took.
async fn raw_get(admin: std::net::SocketAddr, path: &str) -> (String, std::time::Duration) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let started = std::time::Instant::now();
    let mut stream = tokio::net::TcpStream::connect(admin)
        .await
        .expect("connect");
    let request = format!("GET {path} HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("send");
    let mut answer = String::new();
    tokio::time::timeout(crate::helpers::WAIT, stream.read_to_string(&mut answer))
        .await
        .expect("an answer within the deadline")
        .expect("read");
    let status = answer.lines().next().unwrap_or_default().to_string();
    (status, started.elapsed())
}

/// Ten times more idle connections than `admin.max_connections`: the server holds at most the cap (a
/// probe behind a full house waits for a slot), closes each idle one after `admin.idle_timeout_ms`, and a
/// probe queued behind all of them is answered once they have timed out.
#[tokio::test]
async fn idle_connections_neither_exhaust_the_admin_server_nor_block_probes() {
    use std::time::Duration;
    use tokio::io::AsyncReadExt;
    const CAP: usize = 4;
    const IDLE: Duration = Duration::from_millis(400);
    let app = spawn_app_with(AppOptions {
        configure: Box::new(|s| {
            s.admin.max_connections = CAP;
            s.admin.idle_timeout = IDLE;
        }),
        ..AppOptions::default()
    })
    .await;
    app.readyz_becomes(200).await;
    let admin = app.observed.as_ref().expect("a started worker").admin;

    // A full house of idle connections: a probe waits for one of them to time out.
    let mut idle = open_idle(admin, CAP).await;
    let (status, took) = raw_get(admin, "/readyz").await;
    assert!(status.contains(" 200 "), "{status}");
    assert!(
        took >= IDLE / 2,
        "the cap holds: the probe waited for a slot ({took:?})"
    );

    // Ten times the cap, then a probe behind them: answered once they have timed out, ten rounds at most.
    idle.extend(open_idle(admin, 10 * CAP).await);
    let (status, took) = raw_get(admin, "/readyz").await;
    assert!(status.contains(" 200 "), "{status}");
    assert!(took < IDLE * 11 + Duration::from_secs(3), "{took:?}");
    eprintln!(
        "a probe behind {} idle connections (cap {CAP}, idle timeout {IDLE:?}) answered in {took:?}",
        10 * CAP
    );

    // Every idle connection was closed by the server.
    for mut stream in idle {
        let mut buf = [0u8; 64];
        let read = tokio::time::timeout(crate::helpers::WAIT, stream.read(&mut buf))
            .await
            .expect("the server closes an idle connection");
        assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    }
}

/// `n` connections to `addr` that send nothing.
async fn open_idle(addr: std::net::SocketAddr, n: usize) -> Vec<tokio::net::TcpStream> {
    let mut idle = Vec::with_capacity(n);
    for _ in 0..n {
        idle.push(tokio::net::TcpStream::connect(addr).await.expect("connect"));
    }
    idle
}
