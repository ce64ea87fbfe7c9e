use avatar_worker::protocol::{ErrorCode, JobKind, Status};
use base64::Engine;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::helpers::{AppOptions, spawn_app, spawn_app_with};

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

#[tokio::test]
async fn wrong_credentials_and_no_gateway_are_told_apart() {
    let mut app = spawn_app_with(AppOptions {
        configure: Box::new(|s| s.gateway.password = Some("wrong".into())),
        ..AppOptions::default()
    })
    .await;
    app.publish_json(JobKind::Fetch, &json!({"phone": SET}))
        .await;
    let error = app.next_result().await.error.unwrap();
    assert_eq!(
        (error.code, error.retryable),
        (ErrorCode::GatewayUnauthorized, false)
    );
    assert!(
        !error.message.contains("wrong"),
        "the password never shows: {}",
        error.message
    );

    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
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
