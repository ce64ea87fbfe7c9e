//! One worker, devices on both backends: the mock gateway over HTTP and native sessions in-process.
//! The sessions never connect (no WhatsApp server here); what is shown is that the worker core routes
//! each job to its device's backend and answers with that session's state.

use std::sync::Arc;

use avatar_worker::backend::native::{
    ClientOptions, Connect, NativeBackend, SessionRegistry, SessionState, Stores,
};
use avatar_worker::backend::{DeviceBackends, GatewayBackend};
use avatar_worker::ops::Metrics;
use avatar_worker::protocol::{DeviceId, ErrorCode, JobKind, Status};
use avatar_worker::settings::{BackendKind, DeviceBackend};
use serde_json::json;

use crate::helpers::{AppOptions, spawn_app_with};
use test_support::accounts::{OFFLINE_VERSION, offline_transport, paired_memory_store};

/// Clients that never reach WhatsApp: no transport, and no web-version fetch.
fn offline() -> ClientOptions {
    ClientOptions {
        transport: Some(offline_transport()),
        version: Some(OFFLINE_VERSION),
    }
}

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
    let native = NativeBackend::new(registry, &app.settings.native);
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
                devices: vec![DeviceId::parse("phone-b").unwrap()],
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

/// A session whose client ends (here: logged out) is terminal: its jobs are answered at once, not
/// retried, naming what to do; `/readyz` and the gauge say why; and a rebuild brings it back while the
/// worker keeps running.
#[tokio::test]
async fn a_logged_out_native_session_is_named_in_jobs_and_readyz_until_it_is_rebuilt() {
    let mut app = spawn_app_with(AppOptions {
        devices: vec!["dev-a".into()],
        start_worker: false,
        ..Default::default()
    })
    .await;
    let phone = DeviceId::parse("phone-z").unwrap();
    let metrics = Metrics::new();
    let registry = SessionRegistry::with_client_options(
        Stores::Given(vec![(
            phone.clone(),
            paired_memory_store("15550000061@s.whatsapp.net").await,
        )]),
        Connect::Paired,
        Some(metrics.clone()),
        offline(),
    );
    registry.open(&phone).await.unwrap();
    let native = NativeBackend::new(registry.clone(), &app.settings.native);
    let gateway = GatewayBackend::new(&app.settings.gateway)
        .unwrap()
        .with_metrics(metrics.clone());
    let backend = DeviceBackends::new(Arc::new(gateway)).route(phone.clone(), Arc::new(native));
    app.start_worker_on(Arc::new(backend), metrics).await;

    let (_, body) = app.admin_get("/readyz").await;
    assert!(body.contains("session phone-z: connecting\n"), "{body}");

    let session = registry.get(&phone).unwrap();
    session.client().unwrap().logout().await;
    assert_eq!(
        session.state(),
        SessionState::LoggedOut("logged out by this process".into())
    );
    app.publish_json(
        JobKind::Fetch,
        &json!({"job_id": "after-logout", "phone": "6281234567004", "device_id": "phone-z"}),
    )
    .await;
    let result = app.next_result().await;
    let err = result.error.expect("an error result");
    assert_eq!(
        (err.code, err.retryable),
        (ErrorCode::DeviceNotLoggedIn, false)
    );
    assert!(
        err.message
            .contains("avatar-worker pair --device phone-z --force"),
        "{}",
        err.message
    );
    let (status, body) = app.admin_get("/readyz").await;
    assert_eq!(status, 200, "sessions never change the verdict: {body}");
    assert!(
        body.contains("session phone-z: logged_out (logged out by this process)\n"),
        "{body}"
    );
    let (_, text) = app.admin_get("/metrics").await;
    assert!(
        text.contains(r#"avatar_worker_native_session{device="phone-z",state="logged_out"} 1"#),
        "{text}"
    );

    // Rebuilt on its store without restarting the worker (what SIGHUP does).
    let rebuilt = registry.rebuild_ended().await;
    assert_eq!(rebuilt.len(), 1);
    let (_, body) = app.admin_get("/readyz").await;
    assert!(body.contains("session phone-z: connecting\n"), "{body}");
    registry.stop().await;
}

/// Two replicas on one host share a sessions directory: each holds the sessions it can lock, they share
/// the paired ones out, and a device moves to the other replica when its owner stops.
#[tokio::test]
async fn native_devices_are_shared_out_and_move_when_their_owner_stops() {
    use avatar_worker::backend::native::StorePath;
    let devices: Vec<DeviceId> = ["phone-a", "phone-b"]
        .iter()
        .map(|d| DeviceId::parse(*d).unwrap())
        .collect();
    let dir = tempfile::tempdir().unwrap();
    for (device, pn) in devices.iter().zip(["15550000031", "15550000032"]) {
        let store = StorePath::new(dir.path(), device);
        test_support::accounts::paired_sqlite_store(
            store.database(),
            &format!("{pn}@s.whatsapp.net"),
        )
        .await;
    }
    let listed = devices.clone();
    let mut app = spawn_app_with(AppOptions {
        devices: vec!["dev-a".into()],
        configure: Box::new(move |s| {
            s.backend.devices = vec![DeviceBackend {
                devices: listed,
                backend: BackendKind::Native,
            }];
            s.lanes.balance = std::time::Duration::from_millis(200);
        }),
        start_worker: false,
        ..Default::default()
    })
    .await;
    // A replica: sessions on the shared directory, opened where the store is free, never connected.
    let replica = |app: &crate::helpers::TestApp| {
        let (settings, devices, dir) = (
            app.settings.clone(),
            devices.clone(),
            dir.path().to_path_buf(),
        );
        async move {
            let metrics = Metrics::new();
            let registry =
                SessionRegistry::new(Stores::Dir(dir), Connect::Never, Some(metrics.clone()));
            for device in &devices {
                let _ = registry.open(device).await;
            }
            let native: Arc<dyn avatar_worker::backend::AvatarBackend> = Arc::new(
                NativeBackend::new(registry, &settings.native).with_candidates(devices.clone()),
            );
            let gateway = GatewayBackend::new(&settings.gateway).unwrap();
            let mut backend = DeviceBackends::new(Arc::new(gateway));
            for device in &devices {
                backend = backend.route(device.clone(), native.clone());
            }
            (
                Arc::new(backend) as Arc<dyn avatar_worker::backend::AvatarBackend>,
                metrics,
            )
        }
    };
    let (first, first_metrics) = replica(&app).await;
    app.start_worker_on(first, first_metrics).await;
    let second_stop = avatar_worker::shutdown::Shutdown::new();
    let (second, second_metrics) = replica(&app).await;
    let (second_task, second_seen) =
        crate::helpers::start_worker_on(&app.settings, &second_stop, second, second_metrics).await;
    let native_claims = |text: String| -> u32 {
        text.lines()
            .find_map(|line| line.strip_prefix("avatar_worker_claims_owned{claim=\"native\"} "))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    };
    let http = app.http.clone();
    let second_url = format!("http://{}/metrics", second_seen.admin);
    let second_metrics = || async {
        http.get(second_url.as_str())
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };
    // Balancing moves one claim per `lanes.balance_ms` round; beside four other tests on two cores a round can
    // take several times its period.
    let deadline = std::time::Instant::now() + 3 * crate::helpers::WAIT;
    loop {
        let first = native_claims(app.admin_get("/metrics").await.1);
        let second = native_claims(second_metrics().await);
        if (first, second) == (1, 1) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "shared out: {first} and {second}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    app.stop_worker().await;
    loop {
        if native_claims(second_metrics().await) == 2 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the stopped replica's device moved"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // Both devices' jobs are answered by the remaining replica, from its own sessions.
    for device in ["phone-a", "phone-b"] {
        app.publish_json(
            JobKind::Fetch,
            &json!({"job_id": device, "phone": "6281234567003", "device_id": device}),
        )
        .await;
    }
    let results = app.results(2).await;
    for result in results {
        let code = result.error.map(|e| e.code);
        assert_eq!(
            code,
            Some(ErrorCode::DeviceDisconnected),
            "{}",
            result.job_id
        );
    }
    second_stop.trigger();
    second_task.await.unwrap();
}
