//! One worker, devices on both backends: the mock gateway over HTTP and native sessions in-process.
//! The sessions never connect (no WhatsApp server here); what is shown is that the worker core routes
//! each job to its device's backend and answers with that session's state.

use std::sync::Arc;

use avatar_worker::backend::native::{NativeBackend, SessionRegistry};
use avatar_worker::backend::{DeviceBackends, GatewayBackend};
use avatar_worker::ops::Metrics;
use avatar_worker::protocol::{DeviceId, ErrorCode, JobKind, Status};
use avatar_worker::settings::{BackendKind, DeviceBackend};
use serde_json::json;

use crate::helpers::{AppOptions, spawn_app_with};
use test_support::accounts::paired_memory_store;

#[tokio::test]
async fn one_worker_serves_gateway_and_native_devices_side_by_side() {
    let mut app = spawn_app_with(AppOptions {
        devices: vec!["dev-a".into()],
        start_worker: false,
        ..Default::default()
    })
    .await;
    let store = paired_memory_store("15550000021@s.whatsapp.net").await;
    let metrics = Metrics::new();
    let registry = SessionRegistry::from_stores(
        vec![(DeviceId::parse("phone-a").unwrap(), store)],
        Some(metrics.clone()),
    )
    .await
    .unwrap();
    let native = NativeBackend::new(Arc::new(registry), &app.settings.native);
    let gateway = GatewayBackend::new(&app.settings.gateway)
        .unwrap()
        .with_metrics(metrics.clone());
    let backend = DeviceBackends::new(Arc::new(gateway))
        .route(DeviceId::parse("phone-a").unwrap(), Arc::new(native));
    app.start_worker_on(Arc::new(backend), metrics).await;

    app.publish_json(
        JobKind::Fetch,
        &json!({"job_id": "via-gateway", "phone": "6281234567001", "device_id": "dev-a"}),
    )
    .await;
    app.publish_json(
        JobKind::Fetch,
        &json!({"job_id": "via-native", "phone": "6281234567002", "device_id": "phone-a"}),
    )
    .await;
    let results = app.results(2).await;
    let gateway = results
        .iter()
        .find(|r| r.job_id.as_str() == "via-gateway")
        .unwrap();
    assert_eq!(gateway.status, Status::Ok, "{gateway:?}");
    assert!(gateway.avatar.is_some());
    let native = results
        .iter()
        .find(|r| r.job_id.as_str() == "via-native")
        .unwrap();
    let err = native.error.as_ref().expect("an error result");
    assert_eq!(
        (err.code, err.retryable),
        (ErrorCode::DeviceDisconnected, true),
        "{native:?}"
    );
    // Only the gateway device's job reached the mock.
    let seen = app.get("/_mock/requests").await;
    let devices: Vec<&str> = seen["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|request| request["path"] == "/user/avatar")
        .filter_map(|request| request["device_id"].as_str())
        .collect();
    assert_eq!(devices, ["dev-a"], "{seen}");

    let (status, body) = app.admin_get("/readyz").await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("session phone-a: idle"), "{body}");
    let (_, metrics) = app.admin_get("/metrics").await;
    assert!(
        metrics.contains(r#"avatar_worker_native_session{device="phone-a",state="idle"} 1"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_native_device_without_a_pairing_is_answered_by_name() {
    let sessions = tempfile::tempdir().unwrap();
    let dir = sessions.path().to_path_buf();
    let mut app = spawn_app_with(AppOptions {
        configure: Box::new(move |settings| {
            settings.backend.devices = vec![DeviceBackend {
                devices: vec!["phone-b".into()],
                backend: BackendKind::Native,
            }];
            settings.native.sessions_dir = dir;
        }),
        ..Default::default()
    })
    .await;
    app.publish_json(
        JobKind::Fetch,
        &json!({"job_id": "unpaired", "phone": "6281234567003", "device_id": "phone-b"}),
    )
    .await;
    let result = app.next_result().await;
    let err = result.error.expect("an error result");
    assert_eq!(
        (err.code, err.retryable),
        (ErrorCode::DeviceNotLoggedIn, false)
    );
    assert!(
        err.message.contains("avatar-worker pair --device phone-b"),
        "{}",
        err.message
    );
    assert!(sessions.path().join("phone-b.db").exists());
}
