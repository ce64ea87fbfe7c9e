//! The native backend offline: no WhatsApp server, no network. What can be checked without a real
//! account is checked here (docs/native.md lists what cannot): the session registry on temporary SQLite
//! and in-memory stores, one owner per store, pairing's refusal to overwrite, requests and answers
//! through the library's own spec types, and the job outcomes of sessions that are not connected.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use avatar_worker::backend::native::pair::{self, PairOptions};
use avatar_worker::backend::native::{
    Connect, NativeBackend, NativeError, SessionRegistry, SessionState, StoreLock, StorePath,
    answer,
};
use avatar_worker::backend::{self, AvatarBackend, AvatarRequest, Lookup, SessionReport};
use avatar_worker::image::{ImageSettings, PreparedImage, normalize_bytes};
use avatar_worker::ops::Metrics;
use avatar_worker::protocol::{DeviceId, ErrorCode, Phone};
use avatar_worker::settings::{BackendKind, DeviceBackend, NativeSettings, Settings};
use bytes::Bytes;
use whatsapp_rust::NodeBuilder;
use whatsapp_rust::store::SqliteStore;
use whatsapp_rust::wacore::iq::contacts::{
    ProfilePictureSpec, ProfilePictureType, SetProfilePictureSpec,
};
use whatsapp_rust::wacore::iq::spec::IqSpec;
use whatsapp_rust::wacore_binary::node::{Node, NodeContent};

#[path = "support/accounts.rs"]
mod accounts;

use accounts::{pair_store, paired_memory_store};

fn device(id: &str) -> DeviceId {
    DeviceId::parse(id).unwrap()
}

async fn paired_sqlite_store(dir: &Path, id: &str, pn: &str) {
    let path = StorePath::new(dir, &device(id));
    let store = SqliteStore::new(&path.database().to_string_lossy())
        .await
        .unwrap();
    pair_store(&store, pn).await;
}

fn settings() -> NativeSettings {
    NativeSettings {
        fetch_timeout_ms: 5_000,
        ..NativeSettings::default()
    }
}

/// A backend holding one paired, never-connected session (device `phone`, account `pn`).
async fn one_idle_session(pn: &str) -> NativeBackend {
    let registry =
        SessionRegistry::from_stores(vec![(device("phone"), paired_memory_store(pn).await)], None)
            .await
            .unwrap();
    NativeBackend::new(Arc::new(registry), &settings())
}

fn fetch(phone: &str, preview: bool) -> AvatarRequest {
    AvatarRequest {
        target: Phone::parse(phone).unwrap(),
        preview,
        community: false,
    }
}

fn jpeg() -> PreparedImage {
    let mut png = Vec::new();
    image::RgbImage::from_pixel(400, 300, image::Rgb([200, 30, 30]))
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .unwrap();
    normalize_bytes(&png, &ImageSettings::default()).unwrap()
}

#[tokio::test]
async fn the_registry_gives_each_device_the_session_on_its_own_store() {
    let dir = tempfile::tempdir().unwrap();
    paired_sqlite_store(dir.path(), "sales-1", "15550000001@s.whatsapp.net").await;
    paired_sqlite_store(dir.path(), "sales-2", "15550000002@s.whatsapp.net").await;
    let devices = [device("sales-1"), device("sales-2"), device("fresh")];
    let registry = SessionRegistry::open(dir.path(), &devices, Connect::Never, None)
        .await
        .unwrap();
    for (id, account) in [("sales-1", "15550000001"), ("sales-2", "15550000002")] {
        let session = registry.get(&device(id)).unwrap();
        assert_eq!(session.device(), &device(id));
        assert_eq!(
            session
                .client()
                .pn()
                .map(|jid| jid.user.to_string())
                .as_deref(),
            Some(account)
        );
        assert_eq!(session.state(), SessionState::Idle);
    }
    // A device without a store gets a new, empty one: never connected, it waits for `pair`.
    assert_eq!(
        registry.get(&device("fresh")).unwrap().state(),
        SessionState::NotPaired
    );
    assert!(registry.get(&device("other")).is_none());
    assert_eq!(SessionRegistry::stored_devices(dir.path()).unwrap(), {
        let mut sorted = devices.to_vec();
        sorted.sort();
        sorted
    });

    let memory = SessionRegistry::from_stores(
        vec![
            (
                device("mem-1"),
                paired_memory_store("15550000011@s.whatsapp.net").await,
            ),
            (
                device("mem-2"),
                paired_memory_store("15550000012@s.whatsapp.net").await,
            ),
        ],
        None,
    )
    .await
    .unwrap();
    let accounts: Vec<String> = memory
        .sessions()
        .map(|s| format!("{}={}", s.device().as_str(), s.client().pn().unwrap().user))
        .collect();
    assert_eq!(accounts, ["mem-1=15550000011", "mem-2=15550000012"]);
}

#[tokio::test]
async fn jobs_are_answered_by_the_state_of_their_devices_session() {
    let dir = tempfile::tempdir().unwrap();
    paired_sqlite_store(dir.path(), "paired", "15550000003@s.whatsapp.net").await;
    let registry = SessionRegistry::open(
        dir.path(),
        &[device("paired"), device("unpaired")],
        Connect::Never,
        None,
    )
    .await
    .unwrap();
    let backend = NativeBackend::new(Arc::new(registry), &settings());
    let request = fetch("6281234567890", false);
    let cases = [
        (Some(device("unpaired")), ErrorCode::DeviceNotLoggedIn),
        (Some(device("nobody")), ErrorCode::DeviceNotFound),
        (None, ErrorCode::DeviceRequired),
        (Some(device("paired")), ErrorCode::DeviceDisconnected),
    ];
    for (device, code) in cases {
        let err = backend
            .get_avatar(device.as_ref(), &request)
            .await
            .unwrap_err();
        assert_eq!(err.code, code, "{device:?}: {err:?}");
    }
    let empty = NativeBackend::new(
        Arc::new(
            SessionRegistry::from_stores(Vec::new(), None)
                .await
                .unwrap(),
        ),
        &settings(),
    );
    let err = empty.get_avatar(None, &request).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::DeviceNotFound, "{err:?}");
    assert!(err.message.contains("avatar-worker pair"), "{err:?}");
    let reports = backend.sessions();
    assert_eq!(
        reports,
        [
            SessionReport {
                device: device("paired"),
                state: "idle"
            },
            SessionReport {
                device: device("unpaired"),
                state: "not_paired"
            },
        ]
    );
}

#[tokio::test]
async fn a_device_that_is_not_connected_answers_device_disconnected_at_once() {
    let backend = one_idle_session("15550000004@s.whatsapp.net").await;
    for preview in [false, true] {
        let started = Instant::now();
        let err = backend
            .get_avatar(None, &fetch("15551234567", preview))
            .await
            .unwrap_err();
        assert_eq!(
            (err.code, err.retryable),
            (ErrorCode::DeviceDisconnected, true),
            "{err:?}"
        );
        // Not after the 5 s deadline: the library refuses at once when no socket is up.
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
    }
    let started = Instant::now();
    let err = backend.set_avatar(None, &jpeg()).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::DeviceDisconnected, "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn an_empty_or_non_jpeg_picture_is_refused_before_whatsapp_is_asked() {
    let backend = one_idle_session("15550000005@s.whatsapp.net").await;
    let empty = PreparedImage {
        bytes: Bytes::new(),
        ..jpeg()
    };
    let png = PreparedImage {
        content_type: "image/png",
        ..jpeg()
    };
    // Had the library been called, the unconnected session would answer device_disconnected.
    for image in [empty, png] {
        let err = backend.set_avatar(None, &image).await.unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidImage, "{err:?}");
    }
}

fn picture_child(node: &Node) -> Option<&Node> {
    match &node.content {
        Some(NodeContent::Nodes(children)) => children.iter().find(|child| child.tag == "picture"),
        _ => None,
    }
}

#[test]
fn the_picture_query_and_its_answers_go_through_the_librarys_spec_types() {
    let jid = answer::jid(&Phone::parse("+62 812-3456-7890").unwrap()).unwrap();
    for (preview, kind) in [
        (true, ProfilePictureType::Preview),
        (false, ProfilePictureType::Full),
    ] {
        let spec = ProfilePictureSpec::new(&jid, kind);
        let iq = spec.build_iq();
        assert_eq!(iq.namespace, "w:profile:picture");
        assert_eq!(iq.target.as_ref(), Some(&jid));
        let content = Node {
            tag: "iq".into(),
            attrs: Default::default(),
            content: iq.content.clone(),
        };
        let picture = picture_child(&content).expect("a <picture> child");
        assert_eq!(
            picture.attrs().optional_string("type").as_deref(),
            Some(answer::picture_type(preview))
        );

        let answered = NodeBuilder::new("iq")
            .attr("type", "result")
            .children([NodeBuilder::new("picture")
                .attr("id", "1700000123")
                .attr("url", "https://pps.whatsapp.net/v/t61/abc.jpg?oe=1")
                .attr("type", answer::picture_type(preview))
                .build()])
            .build();
        let parsed = spec.parse_response(&answered.as_node_ref()).unwrap();
        match answer::lookup(parsed, preview) {
            Lookup::Picture(avatar) => {
                assert_eq!(avatar.id, "1700000123");
                assert_eq!(avatar.url, "https://pps.whatsapp.net/v/t61/abc.jpg?oe=1");
                assert_eq!(avatar.kind, answer::picture_type(preview));
            }
            other => panic!("expected a picture, got {other:?}"),
        }

        // 404 (no picture) and 401 (hidden) both parse to "none": reported as not_set.
        for code in ["404", "401"] {
            let refused = NodeBuilder::new("iq")
                .attr("type", "result")
                .children([NodeBuilder::new("picture")
                    .children([NodeBuilder::new("error").attr("code", code).build()])
                    .build()])
                .build();
            let parsed = spec.parse_response(&refused.as_node_ref()).unwrap();
            assert_eq!(answer::lookup(parsed, preview), Lookup::NotSet, "{code}");
        }
        let failed = NodeBuilder::new("iq")
            .attr("type", "result")
            .children([NodeBuilder::new("picture")
                .children([NodeBuilder::new("error")
                    .attr("code", "500")
                    .attr("text", "internal")
                    .build()])
                .build()])
            .build();
        assert!(spec.parse_response(&failed.as_node_ref()).is_err());
    }
}

#[test]
fn setting_sends_the_bytes_as_they_are_and_empty_bytes_would_remove_the_picture() {
    let picture = jpeg();
    let iq = SetProfilePictureSpec::for_own(picture.bytes.to_vec()).build_iq();
    let wrapper = Node {
        tag: "iq".into(),
        attrs: Default::default(),
        content: iq.content.clone(),
    };
    let sent = picture_child(&wrapper).expect("a <picture> child");
    assert_eq!(
        sent.attrs().optional_string("type").as_deref(),
        Some("image")
    );
    assert_eq!(
        sent.content,
        Some(NodeContent::Bytes(picture.bytes.to_vec()))
    );
    // The footgun the backend guards against: no <picture> at all is a removal.
    assert!(
        SetProfilePictureSpec::for_own(Vec::new())
            .build_iq()
            .content
            .is_none()
    );
}

#[tokio::test]
async fn a_session_store_has_one_owner() {
    let dir = tempfile::tempdir().unwrap();
    let devices = [device("owned")];
    let first = SessionRegistry::open(dir.path(), &devices, Connect::Never, None)
        .await
        .unwrap();
    match SessionRegistry::open(dir.path(), &devices, Connect::Never, None).await {
        Err(NativeError::InUse { owner, .. }) => assert_eq!(owner, std::process::id().to_string()),
        Err(other) => panic!("expected InUse, got {other}"),
        Ok(_) => panic!("a second owner opened the store"),
    }

    // Another process (the real binary) is refused with the owner named.
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_avatar-worker"))
        .args(["pair", "--device", "owned", "--timeout-s", "5"])
        .env("AVATAR_WORKER__NATIVE__SESSIONS_DIR", dir.path())
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains(&format!(
            "is in use by another process (pid {})",
            std::process::id()
        )),
        "{stderr}"
    );

    drop(first);
    let path = StorePath::new(dir.path(), &device("owned"));
    StoreLock::acquire(&path).expect("free once the owner is gone");
}

#[tokio::test]
async fn pairing_never_replaces_a_paired_session_without_force() {
    let dir = tempfile::tempdir().unwrap();
    paired_sqlite_store(dir.path(), "linked", "15550000006@s.whatsapp.net").await;
    // In-process: the refusal comes before any connection. (The binary's own refusal of a locked store is
    // shown in `a_session_store_has_one_owner`.) The store is locked, released and locked again here
    // while other tests spawn processes: see `a_released_store_lock_is_free_even_while_children_are_being_spawned`.
    let options = PairOptions {
        device: device("linked"),
        phone: None,
        force: false,
        timeout: Duration::from_secs(5),
    };
    let refused = pair::pair(dir.path(), options, |prompt| {
        panic!("no pairing may start: {prompt:?}")
    })
    .await
    .expect_err("refused");
    let message = refused.to_string();
    assert!(
        message.contains("already paired") && message.contains("--force"),
        "{message}"
    );
    let registry = SessionRegistry::open(dir.path(), &[device("linked")], Connect::Never, None)
        .await
        .unwrap();
    let session = registry.get(&device("linked")).unwrap();
    assert_eq!(session.state(), SessionState::Idle, "still paired");
    assert_eq!(
        session.client().pn().unwrap().user.to_string(),
        "15550000006"
    );
}

#[tokio::test]
async fn the_configured_backend_routes_each_device_without_the_worker_knowing() {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = Settings::default();
    // Nothing listens here: a job routed to the gateway fails as unreachable, not as a native outcome.
    settings.gateway.base_url = "http://127.0.0.1:9".into();
    settings.backend.devices = vec![DeviceBackend {
        devices: vec!["phone-a".into()],
        backend: BackendKind::Native,
    }];
    settings.native.sessions_dir = dir.path().to_path_buf();
    settings.validate().unwrap();
    let metrics = Metrics::new();
    let backend = backend::build(&settings, &metrics).await.unwrap();
    let request = fetch("15551234567", false);
    let native = backend
        .get_avatar(Some(&device("phone-a")), &request)
        .await
        .unwrap_err();
    assert_eq!(native.code, ErrorCode::DeviceNotLoggedIn, "{native:?}");
    let http = backend
        .get_avatar(Some(&device("gowa-1")), &request)
        .await
        .unwrap_err();
    assert_eq!(http.code, ErrorCode::GatewayUnreachable, "{http:?}");
    assert_eq!(
        backend.sessions(),
        [SessionReport {
            device: device("phone-a"),
            state: "not_paired"
        }]
    );
    assert!(
        metrics
            .render()
            .contains(r#"avatar_worker_native_session{device="phone-a",state="not_paired"} 1"#),
        "{}",
        metrics.render()
    );
    backend.close().await;

    // With native as the default, every store in the directory is opened.
    let other = tempfile::tempdir().unwrap();
    let stored = StorePath::new(other.path(), &device("phone-c"));
    SqliteStore::new(&stored.database().to_string_lossy())
        .await
        .unwrap();
    settings.native.sessions_dir = other.path().to_path_buf();
    settings.backend.devices.clear();
    settings.backend.default = BackendKind::Native;
    let backend = backend::build(&settings, &Metrics::new()).await.unwrap();
    assert_eq!(
        backend.sessions(),
        [SessionReport {
            device: device("phone-c"),
            state: "not_paired"
        }]
    );
    assert_eq!(
        backend.get_avatar(None, &request).await.unwrap_err().code,
        ErrorCode::DeviceNotLoggedIn
    );
}

/// A process being spawned holds a duplicate of every descriptor of this one until it execs (CLOEXEC
/// only acts at exec). Were a released lock merely closed, such a duplicate would keep it held for those
/// milliseconds and a re-acquisition would be refused with this process's own pid: the cause of a
/// once-flaky `pairing_never_replaces_a_paired_session_without_force`. Unlocked explicitly, it is free.
#[test]
fn a_released_store_lock_is_free_even_while_children_are_being_spawned() {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    let dir = tempfile::tempdir().unwrap();
    let path = StorePath::new(dir.path(), &device("spawning"));
    let stop = Arc::new(AtomicBool::new(false));
    let spawned = Arc::new(AtomicUsize::new(0));
    let spawner = std::thread::spawn({
        let (stop, spawned) = (stop.clone(), spawned.clone());
        move || {
            while !stop.load(Ordering::Relaxed) {
                let _ = std::process::Command::new("true").status();
                spawned.fetch_add(1, Ordering::Relaxed);
            }
        }
    });
    let mut refused = Vec::new();
    let mut rounds = 0;
    // Before the fix, most rounds were refused while children were spawning.
    while rounds < 300 || spawned.load(Ordering::Relaxed) < 20 {
        match StoreLock::acquire(&path) {
            Ok(lock) => drop(lock),
            Err(err) => refused.push(err.to_string()),
        }
        rounds += 1;
    }
    stop.store(true, Ordering::Relaxed);
    spawner.join().unwrap();
    assert!(
        refused.is_empty(),
        "{} of {rounds} refused: {:?}",
        refused.len(),
        refused.first()
    );
}
