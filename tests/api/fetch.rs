use avatar_worker::protocol::{ErrorCode, JobKind, Status};
use base64::Engine;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::helpers::{AppOptions, PASSWORD, TestApp, USER, spawn_app, spawn_app_with};

const SET: &str = "6281100000001";
const NONE: &str = "6281100000002";
const HIDDEN: &str = "6281100000003";
const GHOST: &str = "6281100000004";

async fn world(app: &crate::helpers::TestApp) {
    for (phone, picture) in [
        (SET, "set"),
        (NONE, "none"),
        (HIDDEN, "hidden"),
        (GHOST, "not_on_whatsapp"),
    ] {
        let mut body = json!({ "picture": picture });
        if picture == "set" {
            body["id"] = json!("1635239861");
        }
        app.put(&format!("/_mock/contacts/{phone}"), body).await;
    }
}

#[tokio::test]
async fn every_picture_outcome_end_to_end() {
    let mut app = spawn_app().await;
    world(&app).await;
    let cases = [
        (json!({"job_id": "ok", "phone": SET}), Status::Ok, None),
        (
            json!({"job_id": "preview", "phone": SET, "is_preview": true}),
            Status::Ok,
            None,
        ),
        (
            json!({"job_id": "unchanged", "phone": SET, "known_id": "1635239861"}),
            Status::Unchanged,
            None,
        ),
        (
            json!({"job_id": "changed", "phone": SET, "known_id": "1"}),
            Status::Ok,
            None,
        ),
        (
            json!({"job_id": "not_set", "phone": NONE}),
            Status::NotSet,
            None,
        ),
        (
            json!({"job_id": "hidden", "phone": HIDDEN}),
            Status::Hidden,
            None,
        ),
        (
            json!({"job_id": "ghost", "phone": GHOST}),
            Status::Error,
            Some(ErrorCode::NotOnWhatsapp),
        ),
        (
            json!({"job_id": "letters", "phone": "62abc"}),
            Status::Error,
            Some(ErrorCode::InvalidPhone),
        ),
        (
            json!({"job_id": "no-phone"}),
            Status::Error,
            Some(ErrorCode::InvalidJob),
        ),
        (
            json!({"job_id": "unknown-device", "phone": SET, "device_id": "nope"}),
            Status::Error,
            Some(ErrorCode::DeviceNotFound),
        ),
    ];
    for (job, _, _) in &cases {
        app.publish_json(JobKind::Fetch, job).await;
    }
    let mut results = app.results(cases.len()).await;
    results.sort_by(|a, b| a.job_id.as_str().cmp(b.job_id.as_str()));
    for (job, status, code) in &cases {
        let id = job["job_id"].as_str().unwrap();
        let result = results.iter().find(|r| r.job_id.as_str() == id).expect(id);
        assert_eq!(result.status, *status, "{id}: {result:?}");
        assert_eq!(
            result.error.as_ref().map(|e| e.code),
            *code,
            "{id}: {result:?}"
        );
        assert_eq!(result.kind, avatar_worker::protocol::JobKind::Fetch);
        assert_eq!(result.attempts, 1);
    }
    let ok = results.iter().find(|r| r.job_id.as_str() == "ok").unwrap();
    let avatar = ok.avatar.as_ref().unwrap();
    assert_eq!(
        (avatar.id.as_str(), avatar.kind.as_str()),
        ("1635239861", "image")
    );
    assert!(avatar.url.contains("/v/t61.24694-24/") && avatar.url.contains("oe="));
    let preview = results
        .iter()
        .find(|r| r.job_id.as_str() == "preview")
        .unwrap();
    assert_eq!(preview.avatar.as_ref().unwrap().kind, "preview");
    let unchanged = results
        .iter()
        .find(|r| r.job_id.as_str() == "unchanged")
        .unwrap();
    assert!(unchanged.image.is_none() && unchanged.avatar.is_some());
}

#[tokio::test]
async fn download_returns_the_picture_bytes() {
    let mut app = spawn_app().await;
    world(&app).await;
    app.publish_json(JobKind::Fetch, &json!({"phone": SET, "download": true}))
        .await;
    let result = app.next_result().await;
    assert_eq!(result.status, Status::Ok, "{result:?}");
    let image = result.image.expect("image");
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(image.base64.unwrap())
        .unwrap();
    assert_eq!(bytes.len() as u64, image.size);
    assert_eq!(image.sha256, hex(&Sha256::digest(&bytes)));
    assert_eq!(image.content_type, "image/jpeg");
    assert!(bytes.starts_with(&[0xFF, 0xD8, 0xFF]));
    let served = app
        .http
        .get(&result.avatar.unwrap().url)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(served.as_ref(), bytes.as_slice());
}

#[tokio::test]
async fn device_states_and_gateway_faults_have_their_own_codes() {
    let mut app = spawn_app_with(AppOptions {
        devices: vec!["dev-a".into(), "dev-b".into()],
        ..AppOptions::default()
    })
    .await;
    world(&app).await;
    for (device, state) in [
        ("off", "disconnected"),
        ("new", "not_logged_in"),
        ("empty", "no_client"),
    ] {
        app.put(
            &format!("/_mock/devices/{device}"),
            json!({ "state": state }),
        )
        .await;
    }
    let cases = [
        (
            json!({"job_id": "no-device", "phone": SET}),
            ErrorCode::DeviceRequired,
            false,
        ),
        (
            json!({"job_id": "off", "phone": SET, "device_id": "off"}),
            ErrorCode::DeviceDisconnected,
            true,
        ),
        (
            json!({"job_id": "new", "phone": SET, "device_id": "new"}),
            ErrorCode::DeviceNotLoggedIn,
            false,
        ),
        (
            json!({"job_id": "empty", "phone": SET, "device_id": "empty"}),
            ErrorCode::DeviceNotLoggedIn,
            false,
        ),
    ];
    for (job, _, _) in &cases {
        app.publish_json(JobKind::Fetch, job).await;
    }
    let results = app.results(cases.len()).await;
    for (job, code, retryable) in &cases {
        let id = job["job_id"].as_str().unwrap();
        let result = results.iter().find(|r| r.job_id.as_str() == id).expect(id);
        let error = result.error.as_ref().expect(id);
        assert_eq!(
            (error.code, error.retryable),
            (*code, *retryable),
            "{id}: {error:?}"
        );
    }

    // A group skips GOWA's on-WhatsApp lookup: throttling shows at the picture query.
    const GROUP: &str = "120363000000000001@g.us";
    for (faults, phone, code) in [
        (
            json!({"rate_overlimit": 1.0}),
            GROUP,
            ErrorCode::RateLimited,
        ),
        (
            json!({"timeout": 1.0, "timeout_ms": 50}),
            SET,
            ErrorCode::Timeout,
        ),
        (json!({"internal_error": 1.0}), SET, ErrorCode::GatewayError),
        // For a user the lookup is throttled first, and GOWA says "not on whatsapp": never final.
        (
            json!({"rate_overlimit": 1.0}),
            SET,
            ErrorCode::NotOnWhatsapp,
        ),
    ] {
        app.put("/_mock/faults", faults).await;
        app.publish_json(
            JobKind::Fetch,
            &json!({"phone": phone, "device_id": "dev-a"}),
        )
        .await;
        let result = app.next_result().await;
        let error = result.error.expect("an error");
        assert_eq!(error.code, code, "{error:?}");
        assert!(error.retryable, "{error:?}");
        if code == ErrorCode::NotOnWhatsapp {
            assert_eq!(error.confirmed, Some(false), "{error:?}");
        }
    }
}

#[tokio::test]
async fn a_gateway_too_slow_for_the_deadline_is_a_timeout() {
    let mut app = spawn_app_with(AppOptions {
        configure: Box::new(|s| s.gateway.timeout = std::time::Duration::from_millis(200)),
        ..AppOptions::default()
    })
    .await;
    app.put("/_mock/faults", json!({"latency_ms": 2000})).await;
    app.publish_json(JobKind::Fetch, &json!({"phone": SET}))
        .await;
    let result = app.next_result().await;
    assert_eq!(result.error.unwrap().code, ErrorCode::Timeout);
    assert!(
        result.duration_ms < 1500,
        "the worker's own deadline applies: {}",
        result.duration_ms
    );
}

/// A wrong gateway password must not turn the queue into `gateway_unauthorized` answers: the worker
/// finds it at start (`GET /devices`) or at the first refused call, holds the device's jobs in the broker,
/// says why in `/readyz`, and serves them once the gateway accepts its credentials again.
#[tokio::test]
async fn wrong_credentials_hold_the_jobs_until_the_gateway_accepts_them() {
    let mut app = spawn_app_with(AppOptions {
        configure: Box::new(|s| {
            s.gateway.username = Some("worker".into());
            s.gateway.password = Some("worker-pass".into());
        }),
        ..AppOptions::default()
    })
    .await;
    let reason = app
        .readyz_until(|status, body| status == 503 && body.contains("credentials"))
        .await;
    assert!(
        !reason.contains("worker-pass"),
        "no password in /readyz: {reason}"
    );
    for i in 0..3 {
        app.publish_json(
            JobKind::Fetch,
            &json!({"job_id": format!("held-{i}"), "phone": SET}),
        )
        .await;
    }
    // The worker keeps asking `GET /devices`; no job is spent on a gateway that refuses it.
    wait_for_refused_checks(&app, 2).await;
    assert_eq!(avatar_calls(&app).await, Vec::<u64>::new());

    let both = json!({"pairs": [format!("{USER}:{PASSWORD}"), "worker:worker-pass"]});
    app.put("/_mock/basic-auth", both.clone()).await;
    let mut ids: Vec<String> = Vec::new();
    for result in app.results(3).await {
        assert_eq!(result.status, Status::Ok, "{result:?}");
        ids.push(result.job_id.as_str().to_string());
    }
    ids.sort();
    assert_eq!(ids, ["held-0", "held-1", "held-2"]);
    app.readyz_becomes(200).await;

    // Refused while running: the job that met the 401 waits too, uncounted, and is answered once.
    app.put(
        "/_mock/basic-auth",
        json!({"pairs": [format!("{USER}:{PASSWORD}")]}),
    )
    .await;
    app.publish_json(JobKind::Fetch, &json!({"job_id": "later", "phone": SET}))
        .await;
    app.readyz_until(|status, body| status == 503 && body.contains("credentials"))
        .await;
    app.put("/_mock/basic-auth", both).await;
    let result = app.next_result().await;
    assert_eq!(
        (result.job_id.as_str(), result.status, result.attempts),
        ("later", Status::Ok, 1)
    );
    assert_eq!(
        avatar_calls(&app)
            .await
            .iter()
            .filter(|&&s| s == 401)
            .count(),
        1
    );
    assert!(app.remaining_results().await.is_empty());
}

/// The statuses of the gateway's `GET /user/avatar` answers, oldest first.
async fn avatar_calls(app: &TestApp) -> Vec<u64> {
    let log = app.get("/_mock/requests").await;
    log["results"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|entry| entry["path"] == "/user/avatar")
        .filter_map(|entry| entry["status"].as_u64())
        .collect()
}

/// Waits until the gateway has refused `n` `GET /devices` checks.
async fn wait_for_refused_checks(app: &TestApp, n: usize) {
    let deadline = std::time::Instant::now() + crate::helpers::WAIT;
    loop {
        let log = app.get("/_mock/requests").await;
        let refused = log["results"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|entry| entry["path"] == "/devices" && entry["status"] == 401)
            .count();
        if refused >= n {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{refused} refused checks"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn no_gateway_answers_gateway_unreachable() {
    // Bound but not listening: connections are refused, and no other test (or test process, under nextest)
    // can take the port while this one runs, as it could once a listener's port was given back.
    let closed = tokio::net::TcpSocket::new_v4().unwrap();
    closed.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let port = closed.local_addr().unwrap().port();
    let mut app = spawn_app_with(AppOptions {
        configure: Box::new(move |s| s.gateway.base_url = format!("http://127.0.0.1:{port}")),
        ..AppOptions::default()
    })
    .await;
    app.publish_json(JobKind::Fetch, &json!({"phone": SET}))
        .await;
    let error = app.next_result().await.error.unwrap();
    assert_eq!(
        (error.code, error.retryable),
        (ErrorCode::GatewayUnreachable, true)
    );
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
