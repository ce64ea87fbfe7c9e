//! The native backend offline: no WhatsApp server, no network. What can be checked without a real
//! account is checked here (docs/native.md lists what cannot): the session registry on temporary SQLite
//! and in-memory stores, opened, closed and rebuilt one device at a time; sessions started on a
//! transport that never connects, whose run loop really ends; one owner per store; pairing's refusal to
//! overwrite and its `--force` offline; the picture query and each of its answers through the library's
//! own node builders and parsers; the on-WhatsApp check; and what jobs get in each state.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use avatar_worker::backend::native::pair::{self, Notice, PairOptions};
use avatar_worker::backend::native::{
    ClientOptions, Connect, NativeBackend, NativeError, SessionRegistry, SessionState, StoreLock,
    StorePath, Stores, check_upload, library_errors, picture, registration,
};
use avatar_worker::backend::{self, AvatarBackend, AvatarRequest, Lookup, SessionReport};
use avatar_worker::image::{ImageSettings, PreparedImage, normalize_bytes, validate_original};
use avatar_worker::ops::Metrics;
use avatar_worker::protocol::{AvatarInfo, DeviceId, ErrorCode, JobError, Phone};
use avatar_worker::settings::{BackendKind, DeviceBackend, NativeSettings, Settings};
use bytes::Bytes;
use whatsapp_rust::request::RequestUtils;
use whatsapp_rust::store::SqliteStore;
use whatsapp_rust::wacore::iq::contacts::SetProfilePictureSpec;
use whatsapp_rust::wacore::iq::spec::IqSpec;
use whatsapp_rust::wacore::iq::usync::{IsOnWhatsAppQueryType, IsOnWhatsAppSpec, IsOnWhatsAppUser};
use whatsapp_rust::wacore::xml::DisplayableNode;
use whatsapp_rust::wacore_binary::node::{Node, NodeContent};
use whatsapp_rust::{ContactError, IqError, IsOnWhatsAppResult, Jid, NodeBuilder};

use test_support::accounts::{OFFLINE_VERSION, offline_transport, paired_memory_store};

/// Clients that never reach WhatsApp: no transport, and no web-version fetch.
fn offline() -> ClientOptions {
    ClientOptions {
        transport: Some(offline_transport()),
        version: Some(OFFLINE_VERSION),
    }
}

fn device(id: &str) -> DeviceId {
    DeviceId::parse(id).unwrap()
}

async fn paired_sqlite_store(dir: &Path, id: &str, pn: &str) {
    let path = StorePath::new(dir, &device(id));
    test_support::accounts::paired_sqlite_store(path.database(), pn).await;
}

fn settings() -> NativeSettings {
    NativeSettings {
        fetch_timeout: Duration::from_secs(5),
        ..NativeSettings::default()
    }
}

/// A backend holding one paired, never-connected session (device `phone`, account `pn`).
async fn one_idle_session(pn: &str) -> NativeBackend {
    let registry =
        SessionRegistry::from_stores(vec![(device("phone"), paired_memory_store(pn).await)], None)
            .await
            .unwrap();
    NativeBackend::new(registry, &settings())
}

/// A registry whose paired sessions are started on a transport that never connects.
fn started(stores: Stores, metrics: &Metrics) -> SessionRegistry {
    SessionRegistry::with_client_options(stores, Connect::Paired, Some(metrics.clone()), offline())
}

fn fetch(phone: &str, preview: bool) -> AvatarRequest {
    AvatarRequest {
        target: Phone::parse(phone).unwrap(),
        preview,
        community: false,
    }
}

fn png(width: u32, height: u32) -> Vec<u8> {
    let mut png = Vec::new();
    image::RgbImage::from_pixel(width, height, image::Rgb([200, 30, 30]))
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .unwrap();
    png
}

/// What the pipeline makes of a job with `normalize: true`.
fn jpeg() -> PreparedImage {
    normalize_bytes(&png(400, 300), &ImageSettings::default()).unwrap()
}

/// What the pipeline passes on for a job with `normalize: false`: the original, checked.
fn original(width: u32, height: u32, format: image::ImageFormat) -> PreparedImage {
    let mut bytes = Vec::new();
    image::RgbImage::from_pixel(width, height, image::Rgb([20, 90, 200]))
        .write_to(&mut std::io::Cursor::new(&mut bytes), format)
        .unwrap();
    validate_original(Bytes::from(bytes), &ImageSettings::default()).unwrap()
}

/// Waits until `device`'s session is in state `name` (the run loop moves it on its own task).
async fn until_state(registry: &SessionRegistry, device: &DeviceId, name: &str) -> SessionState {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let state = registry.get(device).map(|session| session.state());
        if state.as_ref().is_some_and(|state| state.name() == name) {
            return state.unwrap();
        }
        assert!(
            Instant::now() < deadline,
            "{}: still {state:?}, not {name}",
            device.as_str()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn lock_is_free(dir: &Path, id: &str) -> bool {
    StoreLock::acquire(&StorePath::new(dir, &device(id))).is_ok()
}

#[tokio::test]
async fn the_registry_gives_each_device_the_session_on_its_own_store() {
    let dir = tempfile::tempdir().unwrap();
    paired_sqlite_store(dir.path(), "sales-1", "15550000001@s.whatsapp.net").await;
    paired_sqlite_store(dir.path(), "sales-2", "15550000002@s.whatsapp.net").await;
    let devices = [device("sales-1"), device("sales-2"), device("fresh")];
    let registry = SessionRegistry::open_dir(dir.path(), &devices, Connect::Never, None)
        .await
        .unwrap();
    for (id, account) in [("sales-1", "15550000001"), ("sales-2", "15550000002")] {
        let session = registry.get(&device(id)).unwrap();
        assert_eq!(session.device(), &device(id));
        let client = session.client().expect("a paired session has a client");
        assert_eq!(
            client.pn().map(|jid| jid.user.to_string()).as_deref(),
            Some(account)
        );
        assert_eq!(session.state(), SessionState::Idle);
        assert!(session.holds_store());
    }
    // A device without a store gets a new, empty one: no client is built on it, and its lock is let go
    // at once, so `avatar-worker pair` can run beside the worker.
    let fresh = registry.get(&device("fresh")).unwrap();
    assert_eq!(fresh.state(), SessionState::NotPaired);
    assert!(fresh.client().is_none());
    assert!(lock_is_free(dir.path(), "fresh"));
    assert!(!lock_is_free(dir.path(), "sales-1"));
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
        .iter()
        .map(|s| {
            format!(
                "{}={}",
                s.device().as_str(),
                s.client().unwrap().pn().unwrap().user
            )
        })
        .collect();
    assert_eq!(accounts, ["mem-1=15550000011", "mem-2=15550000012"]);
}

#[tokio::test]
async fn jobs_are_answered_by_the_state_of_their_devices_session() {
    let dir = tempfile::tempdir().unwrap();
    paired_sqlite_store(dir.path(), "paired", "15550000003@s.whatsapp.net").await;
    let registry = SessionRegistry::open_dir(
        dir.path(),
        &[device("paired"), device("unpaired")],
        Connect::Never,
        None,
    )
    .await
    .unwrap();
    let backend = NativeBackend::new(registry, &settings());
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
    let unpaired = backend
        .get_avatar(Some(&device("unpaired")), &request)
        .await
        .unwrap_err();
    assert!(
        unpaired
            .message
            .contains("run `avatar-worker pair --device unpaired`")
            && unpaired.message.contains("SIGHUP"),
        "{unpaired:?}"
    );
    let empty = NativeBackend::new(
        SessionRegistry::from_stores(Vec::new(), None)
            .await
            .unwrap(),
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
                state: "idle",
                reason: None,
            },
            SessionReport {
                device: device("unpaired"),
                state: "not_paired",
                reason: Some("the store holds no pairing".into()),
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
        // Not after the 5 s deadline: the session's client is asked whether it is connected first.
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

/// Native updates are always square JPEGs of 192–640 px. `normalize: true` (the default) makes one; a
/// `normalize: false` original is uploaded as it is only when it already is one, and refused otherwise
/// (the result then describes exactly what was uploaded). Empty bytes would remove the picture.
#[tokio::test]
async fn only_square_jpegs_of_192_to_640_px_are_uploaded_whatever_normalize_says() {
    let backend = one_idle_session("15550000005@s.whatsapp.net").await;
    let refused = [
        (
            "empty",
            PreparedImage {
                bytes: Bytes::new(),
                ..jpeg()
            },
        ),
        ("png", original(400, 400, image::ImageFormat::Png)),
        ("not square", original(800, 600, image::ImageFormat::Jpeg)),
        ("too large", original(1024, 1024, image::ImageFormat::Jpeg)),
        // (The pipeline already refuses these; the backend does not rely on it.)
        (
            "too small",
            PreparedImage {
                width: 100,
                height: 100,
                ..jpeg()
            },
        ),
    ];
    for (what, image) in refused {
        // Had the library been called, the unconnected session would answer device_disconnected.
        let err = backend.set_avatar(None, &image).await.unwrap_err();
        assert_eq!(
            (err.code, err.retryable),
            (ErrorCode::InvalidImage, false),
            "{what}: {err:?}"
        );
        if what != "empty" {
            assert!(err.message.contains("normalize: true"), "{what}: {err:?}");
        }
    }
    for (what, image) in [
        ("normalized", jpeg()),
        (
            "square original",
            original(640, 640, image::ImageFormat::Jpeg),
        ),
    ] {
        assert_eq!(check_upload(&image), Ok(()), "{what}");
        let err = backend.set_avatar(None, &image).await.unwrap_err();
        assert_eq!(err.code, ErrorCode::DeviceDisconnected, "{what}: {err:?}");
    }
    let normalized = jpeg();
    assert_eq!(
        (normalized.content_type, normalized.width, normalized.height),
        ("image/jpeg", 300, 300)
    );
}

fn user(number: &str) -> Jid {
    format!("{number}@s.whatsapp.net").parse().unwrap()
}

/// The whole `<iq>` the backend sends, as `Client::send_iq` renders it (the library's own
/// `RequestUtils::build_iq_node`), in the library's XML form.
fn sent(query: &whatsapp_rust::wacore::iq::contacts::ProfilePictureSpec) -> (Node, String) {
    let node = RequestUtils::new("test".into()).build_iq_node(query.build_iq(), Some("q-1".into()));
    let xml = DisplayableNode(&node).to_string();
    (node, xml)
}

#[test]
fn the_picture_query_is_the_librarys_with_the_privacy_token_and_a_short_deadline() {
    let jid = library_errors::jid(&Phone::parse("+62 812-3456-7890").unwrap()).unwrap();
    for (preview, kind) in [(true, "preview"), (false, "image")] {
        let query = picture::query(&jid, preview, Duration::from_millis(5_000), None);
        assert_eq!(query.build_iq().timeout, Some(Duration::from_secs(5)));
        let (_, xml) = sent(&query);
        assert_eq!(
            xml,
            format!(
                r#"<iq id="q-1" target="6281234567890@s.whatsapp.net" to="s.whatsapp.net" type="get" xmlns="w:profile:picture"><picture query="url" type="{kind}"/></iq>"#
            )
        );
    }
    // With a stored privacy token it rides along, as the library attaches it.
    let query = picture::query(&jid, false, Duration::from_secs(5), Some(vec![0xCA, 0xFE]));
    let (node, _) = sent(&query);
    let picture = node.get_optional_child("picture").expect("<picture>");
    let token = picture.get_optional_child("tctoken").expect("<tctoken>");
    assert_eq!(token.content, Some(NodeContent::Bytes(vec![0xCA, 0xFE])));
    // A device suffix is dropped: the picture is the account's.
    let suffixed =
        library_errors::jid(&Phone::parse("6281234567890:7@s.whatsapp.net").unwrap()).unwrap();
    assert_eq!(suffixed, jid);
}

#[test]
fn a_privacy_token_is_sent_while_it_is_fresh() {
    let now = 1_800_000_000;
    let day = 86_400;
    assert_eq!(
        picture::usable_token(vec![1, 2], now - day, now),
        Some(vec![1, 2])
    );
    assert_eq!(picture::usable_token(vec![1, 2], now - 60 * day, now), None);
    assert_eq!(picture::usable_token(Vec::new(), now, now), None);
}

fn result_with(picture: Node) -> Node {
    NodeBuilder::new("iq")
        .attr("type", "result")
        .attr("from", "s.whatsapp.net")
        .attr("id", "q-1")
        .children([picture])
        .build()
}

fn nested_error(code: &str, text: &str, backoff: Option<&str>) -> Node {
    let mut error = NodeBuilder::new("error")
        .attr("code", code)
        .attr("text", text);
    if let Some(backoff) = backoff {
        error = error.attr("backoff", backoff);
    }
    result_with(
        NodeBuilder::new("picture")
            .children([error.build()])
            .build(),
    )
}

/// An `<iq type="error">`: what `Client::send_iq` does with it is the library's own
/// `RequestUtils::parse_iq_response`, which turns it into `IqError::ServerError`.
fn iq_error(code: &str, text: &str, backoff: Option<&str>) -> IqError {
    let mut error = NodeBuilder::new("error")
        .attr("code", code)
        .attr("text", text);
    if let Some(backoff) = backoff {
        error = error.attr("backoff", backoff);
    }
    let node = NodeBuilder::new("iq")
        .attr("type", "error")
        .attr("from", "s.whatsapp.net")
        .attr("id", "q-1")
        .children([error.build()])
        .build();
    RequestUtils::new("test".into())
        .parse_iq_response(&node.as_node_ref())
        .expect_err("an error answer")
        .into()
}

#[test]
fn each_answer_to_the_picture_query_has_its_own_outcome() {
    let jid = user("15551234567");
    let query = picture::query(&jid, false, Duration::from_secs(5), None);
    let found = result_with(
        NodeBuilder::new("picture")
            .attr("id", "1700000123")
            .attr("url", "https://pps.whatsapp.net/v/t61/abc.jpg?oe=1")
            .attr("direct_path", "/v/t61/abc.jpg")
            .attr("type", "image")
            .build(),
    );
    assert_eq!(
        picture::answer(&query, Ok(&found.as_node_ref())),
        Ok(Lookup::Picture(AvatarInfo {
            url: "https://pps.whatsapp.net/v/t61/abc.jpg?oe=1".into(),
            id: "1700000123".into(),
            kind: "image".into(),
        }))
    );
    let preview = picture::query(&jid, true, Duration::from_secs(5), None);
    match picture::answer(&preview, Ok(&found.as_node_ref())) {
        Ok(Lookup::Picture(avatar)) => assert_eq!(avatar.kind, "preview"),
        other => panic!("{other:?}"),
    }

    // (answer, outcome or error code, retryable, retry_after)
    type Expected = Result<Lookup, (ErrorCode, bool, Option<u64>)>;
    let nodes: Vec<(&str, Node, Expected)> = vec![
        (
            "nested 404",
            nested_error("404", "item-not-found", None),
            Ok(Lookup::NotSet),
        ),
        (
            "nested 401",
            nested_error("401", "not-authorized", None),
            Ok(Lookup::Hidden),
        ),
        (
            "nested 403",
            nested_error("403", "forbidden", None),
            Ok(Lookup::Hidden),
        ),
        (
            "nested 429",
            nested_error("429", "rate-overlimit", Some("30")),
            Err((ErrorCode::RateLimited, true, Some(30))),
        ),
        (
            "nested 400",
            nested_error("400", "bad-request", None),
            Err((ErrorCode::InvalidPhone, false, None)),
        ),
        (
            "nested 500",
            nested_error("500", "internal-server-error", None),
            Err((ErrorCode::GatewayError, true, None)),
        ),
        (
            "nested 409",
            nested_error("409", "conflict", None),
            Err((ErrorCode::GatewayError, false, None)),
        ),
        (
            "no picture at all",
            NodeBuilder::new("iq").attr("type", "result").build(),
            Err((ErrorCode::GatewayError, false, None)),
        ),
        (
            "a picture without url",
            result_with(NodeBuilder::new("picture").attr("id", "1").build()),
            Err((ErrorCode::GatewayError, false, None)),
        ),
    ];
    for (what, node, expected) in nodes {
        let outcome = picture::answer(&query, Ok(&node.as_node_ref()));
        check(what, outcome, expected);
    }
    let errors: Vec<(&str, IqError, Expected)> = vec![
        (
            "iq 404",
            iq_error("404", "item-not-found", None),
            Ok(Lookup::NotSet),
        ),
        (
            "iq 401",
            iq_error("401", "not-authorized", None),
            Ok(Lookup::Hidden),
        ),
        (
            "iq 403",
            iq_error("403", "forbidden", None),
            Ok(Lookup::Hidden),
        ),
        (
            "iq 429",
            iq_error("429", "rate-overlimit", Some("45")),
            Err((ErrorCode::RateLimited, true, Some(45))),
        ),
        (
            "iq 503",
            iq_error("503", "service-unavailable", None),
            Err((ErrorCode::GatewayError, true, None)),
        ),
        (
            "not connected",
            IqError::NotConnected,
            Err((ErrorCode::DeviceDisconnected, true, None)),
        ),
        (
            "timeout",
            IqError::Timeout,
            Err((ErrorCode::Timeout, true, None)),
        ),
    ];
    for (what, err, expected) in errors {
        let outcome = picture::answer(&query, Err(&err));
        check(what, outcome, expected);
    }

    fn check(
        what: &str,
        outcome: Result<Lookup, JobError>,
        expected: Result<Lookup, (ErrorCode, bool, Option<u64>)>,
    ) {
        match (outcome, expected) {
            (Ok(lookup), Ok(expected)) => assert_eq!(lookup, expected, "{what}"),
            (Err(err), Err((code, retryable, wait))) => {
                assert_eq!(
                    (err.code, err.retryable, err.retry_after),
                    (code, retryable, wait.map(Duration::from_secs)),
                    "{what}: {err:?}"
                );
                assert!(!err.message.is_empty());
            }
            (outcome, expected) => panic!("{what}: {outcome:?}, expected {expected:?}"),
        }
    }
}

/// The answer of the library's usync query for one user, built as the server sends it.
fn usync_answer(number: &str, contact: Node) -> Node {
    NodeBuilder::new("iq")
        .attr("type", "result")
        .children([NodeBuilder::new("usync")
            .children([NodeBuilder::new("list")
                .children([NodeBuilder::new("user")
                    .attr("jid", format!("{number}@s.whatsapp.net"))
                    .children([contact])
                    .build()])
                .build()])
            .build()])
        .build()
}

#[test]
fn only_a_successful_check_says_a_number_is_not_on_whatsapp() {
    let jid = user("15551234567");
    let spec = IsOnWhatsAppSpec::new(
        vec![IsOnWhatsAppUser {
            jid: jid.clone(),
            known_lid: None,
        }],
        "sid",
        IsOnWhatsAppQueryType::Pn,
    );
    let parse = |node: Node| -> Result<Vec<IsOnWhatsAppResult>, ContactError> {
        spec.parse_response(&node.as_node_ref())
            .map_err(|err| IqError::ParseError(err).into())
    };
    let inside = usync_answer(
        "15551234567",
        NodeBuilder::new("contact").attr("type", "in").build(),
    );
    assert_eq!(registration::registered(&jid, parse(inside)), Ok(true));
    let outside = usync_answer(
        "15551234567",
        NodeBuilder::new("contact").attr("type", "out").build(),
    );
    assert_eq!(registration::registered(&jid, parse(outside)), Ok(false));
    let not_on = registration::not_on_whatsapp(&jid);
    assert_eq!(
        (not_on.code, not_on.retryable),
        (ErrorCode::NotOnWhatsapp, false)
    );

    // The check itself refused for this user: retryable, with WhatsApp's backoff.
    let limited = usync_answer(
        "15551234567",
        NodeBuilder::new("contact")
            .children([NodeBuilder::new("error")
                .attr("code", "429")
                .attr("text", "rate-overlimit")
                .attr("backoff", "60")
                .build()])
            .build(),
    );
    let failed = registration::registered(&jid, parse(limited)).unwrap_err();
    assert_eq!(
        (failed.code, failed.retryable, failed.retry_after),
        (ErrorCode::RateLimited, true, Some(Duration::from_secs(60)))
    );
    // An answer about someone else, or none at all: no verdict.
    let other = usync_answer(
        "15550000000",
        NodeBuilder::new("contact").attr("type", "out").build(),
    );
    assert!(
        registration::registered(&jid, parse(other))
            .unwrap_err()
            .retryable
    );
    let unreadable = NodeBuilder::new("iq").attr("type", "result").build();
    let failed = registration::registered(&jid, parse(unreadable)).unwrap_err();
    assert!(
        failed.retryable && failed.code != ErrorCode::NotOnWhatsapp,
        "{failed:?}"
    );
    // Only phone-number users are checked: a group's or a LID's existence is not in question.
    assert!(registration::applies(&jid));
    assert!(!registration::applies(
        &"120363025246125486@g.us".parse().unwrap()
    ));
    assert!(!registration::applies(&"100000001@lid".parse().unwrap()));
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
    let sent = wrapper
        .get_optional_child("picture")
        .expect("a <picture> child");
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
    paired_sqlite_store(dir.path(), "owned", "15550000007@s.whatsapp.net").await;
    let devices = [device("owned")];
    let first = SessionRegistry::open_dir(dir.path(), &devices, Connect::Never, None)
        .await
        .unwrap();
    match SessionRegistry::open_dir(dir.path(), &devices, Connect::Never, None).await {
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
    assert!(
        lock_is_free(dir.path(), "owned"),
        "free once the owner is gone"
    );
}

#[tokio::test]
async fn pairing_never_replaces_a_paired_session_without_force() {
    let dir = tempfile::tempdir().unwrap();
    paired_sqlite_store(dir.path(), "linked", "15550000006@s.whatsapp.net").await;
    // In-process: the refusal comes before any connection. (The binary's own refusal of a locked store is
    // shown in `a_session_store_has_one_owner`.) The store is locked, released and locked again here
    // while other tests spawn processes: see `a_released_store_lock_is_free_even_while_children_are_being_spawned`.
    let options = PairOptions {
        timeout: Duration::from_secs(5),
        ..PairOptions::new(device("linked"))
    };
    let refused = pair::pair(dir.path(), options, |notice| {
        panic!("no pairing may start: {notice:?}")
    })
    .await
    .expect_err("refused");
    let message = refused.to_string();
    assert!(
        message.contains("already paired") && message.contains("--force"),
        "{message}"
    );
    let registry = SessionRegistry::open_dir(dir.path(), &[device("linked")], Connect::Never, None)
        .await
        .unwrap();
    let session = registry.get(&device("linked")).unwrap();
    assert_eq!(session.state(), SessionState::Idle, "still paired");
    assert_eq!(
        session.client().unwrap().pn().unwrap().user.to_string(),
        "15550000006"
    );
}

/// `--force` logs the old device out first. Offline it cannot, and says so; the keys are deleted
/// anyway and a new pairing starts (which nobody completes here).
#[tokio::test]
async fn pairing_with_force_tries_to_log_the_old_device_out_and_says_when_it_cannot() {
    let dir = tempfile::tempdir().unwrap();
    paired_sqlite_store(dir.path(), "moving", "15550000008@s.whatsapp.net").await;
    let notices = Arc::new(std::sync::Mutex::new(Vec::new()));
    let options = PairOptions {
        force: true,
        timeout: Duration::from_secs(1),
        logout_timeout: Duration::from_secs(1),
        client: offline(),
        ..PairOptions::new(device("moving"))
    };
    let seen = notices.clone();
    let outcome = pair::pair(dir.path(), options, move |notice| {
        seen.lock().unwrap().push(notice)
    })
    .await;
    let message = outcome.expect_err("nobody scans offline").to_string();
    assert!(message.contains("not linked within 1 s"), "{message}");
    let notices = notices.lock().unwrap().clone();
    assert_eq!(
        notices,
        [Notice::OldDeviceNotLoggedOut {
            account: "15550000008@s.whatsapp.net".into(),
            why: "it did not connect to WhatsApp within 1 s".into(),
        }]
    );
    // The old keys are gone: the store is no longer paired.
    let registry = SessionRegistry::open_dir(dir.path(), &[device("moving")], Connect::Never, None)
        .await
        .unwrap();
    assert_eq!(
        registry.get(&device("moving")).unwrap().state(),
        SessionState::NotPaired
    );
}

/// Sessions opened, closed and rebuilt one device at a time, on SQLite stores, while others run on.
#[tokio::test]
async fn a_devices_session_is_opened_closed_and_rebuilt_on_its_own() {
    let dir = tempfile::tempdir().unwrap();
    paired_sqlite_store(dir.path(), "steady", "15550000031@s.whatsapp.net").await;
    let metrics = Metrics::new();
    let registry = started(Stores::Dir(dir.path().to_path_buf()), &metrics);
    assert_eq!(
        registry.open(&device("steady")).await.unwrap(),
        SessionState::Connecting
    );
    // Opening a device that is open changes nothing.
    assert_eq!(
        registry.open(&device("steady")).await.unwrap(),
        SessionState::Connecting
    );
    let steady = registry.get(&device("steady")).unwrap();

    // A device not paired yet: opened, seen, its store let go at once.
    assert_eq!(
        registry.open(&device("late")).await.unwrap(),
        SessionState::NotPaired
    );
    assert!(lock_is_free(dir.path(), "late"));
    // `avatar-worker pair` runs beside the worker (here: the store is paired by hand), then a rebuild
    // picks the pairing up.
    paired_sqlite_store(dir.path(), "late", "15550000032@s.whatsapp.net").await;
    assert_eq!(
        registry.rebuild(&device("late")).await.unwrap(),
        SessionState::Connecting
    );
    let late = registry.get(&device("late")).unwrap();
    assert_eq!(
        late.client().unwrap().pn().unwrap().user.to_string(),
        "15550000032"
    );
    assert!(!lock_is_free(dir.path(), "late"));

    // Closing one device releases its store and leaves it listed as closed.
    assert!(registry.close(&device("late")).await);
    assert!(lock_is_free(dir.path(), "late"));
    assert_eq!(
        registry.get(&device("late")).unwrap().state(),
        SessionState::Closed
    );
    let backend = NativeBackend::new(registry.clone(), &settings());
    let err = backend
        .get_avatar(Some(&device("late")), &fetch("15551234567", false))
        .await
        .unwrap_err();
    assert_eq!(
        (err.code, err.retryable),
        (ErrorCode::DeviceDisconnected, true)
    );
    assert!(
        metrics
            .render()
            .contains(r#"avatar_worker_native_session{device="late",state="closed"} 1"#)
    );
    // ...and opening it again builds a new session on the same store.
    assert_eq!(
        registry.open(&device("late")).await.unwrap(),
        SessionState::Connecting
    );
    assert!(!Arc::ptr_eq(&late, &registry.get(&device("late")).unwrap()));

    // The other device was never touched.
    assert!(Arc::ptr_eq(
        &steady,
        &registry.get(&device("steady")).unwrap()
    ));
    assert_eq!(steady.state(), SessionState::Connecting);
    assert!(!registry.close(&device("nobody")).await);
    registry.stop().await;
    assert!(lock_is_free(dir.path(), "steady"));
}

/// A started session whose client is logged out: the run loop really ends, the session is terminal
/// with its reason, its store is released for `pair --force`, jobs are told what to do, and a rebuild
/// brings it back without a restart.
#[tokio::test]
async fn a_session_whose_client_ends_is_terminal_and_can_be_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    paired_sqlite_store(dir.path(), "phone-9", "15550000041@s.whatsapp.net").await;
    let metrics = Metrics::new();
    let registry = started(Stores::Dir(dir.path().to_path_buf()), &metrics);
    registry.open(&device("phone-9")).await.unwrap();
    let backend = NativeBackend::new(registry.clone(), &settings());
    let session = registry.get(&device("phone-9")).unwrap();
    assert_eq!(session.state(), SessionState::Connecting);
    // Connecting: answered at once, retryable.
    let started_at = Instant::now();
    let err = backend
        .get_avatar(Some(&device("phone-9")), &fetch("15551234567", false))
        .await
        .unwrap_err();
    assert_eq!(
        (err.code, err.retryable),
        (ErrorCode::DeviceDisconnected, true)
    );
    assert!(err.message.contains("connecting"), "{err:?}");
    assert!(started_at.elapsed() < Duration::from_secs(2));

    session.client().unwrap().logout().await;
    let state = until_state(&registry, &device("phone-9"), "logged_out").await;
    assert_eq!(
        state.reason().as_deref(),
        Some("logged out by this process")
    );
    // The run loop has ended and the store is free for `avatar-worker pair --force`.
    let deadline = Instant::now() + Duration::from_secs(10);
    while session.holds_store() {
        assert!(Instant::now() < deadline, "the store is still held");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(lock_is_free(dir.path(), "phone-9"));
    let err = backend
        .get_avatar(Some(&device("phone-9")), &fetch("15551234567", false))
        .await
        .unwrap_err();
    assert_eq!(
        (err.code, err.retryable),
        (ErrorCode::DeviceNotLoggedIn, false)
    );
    assert!(
        err.message
            .contains("run `avatar-worker pair --device phone-9 --force`"),
        "{err:?}"
    );
    assert_eq!(
        backend.sessions(),
        [SessionReport {
            device: device("phone-9"),
            state: "logged_out",
            reason: Some("logged out by this process".into()),
        }]
    );
    assert!(
        metrics
            .render()
            .contains(r#"avatar_worker_native_session{device="phone-9",state="logged_out"} 1"#)
    );

    // SIGHUP's work: every ended session is rebuilt on its store, live ones are left alone.
    let rebuilt = registry.rebuild_ended().await;
    assert_eq!(rebuilt.len(), 1, "{rebuilt:?}");
    assert_eq!(rebuilt[0].0, device("phone-9"));
    assert_eq!(rebuilt[0].1.as_ref().unwrap(), &SessionState::Connecting);
    assert!(registry.rebuild_ended().await.is_empty());
    assert!(
        metrics
            .render()
            .contains(r#"avatar_worker_native_session{device="phone-9",state="connecting"} 1"#),
        "the ended session no longer speaks for the device"
    );
    registry.stop().await;
}

/// A run loop that ends with no reason from the library is `stopped`; SIGHUP rebuilds it.
#[cfg(unix)]
#[tokio::test]
async fn sighup_rebuilds_a_session_whose_client_stopped() {
    let metrics = Metrics::new();
    let registry = started(
        Stores::Given(vec![(
            device("phone-h"),
            paired_memory_store("15550000051@s.whatsapp.net").await,
        )]),
        &metrics,
    );
    registry.open(&device("phone-h")).await.unwrap();
    registry.rebuild_on_sighup().unwrap();
    let first = registry.get(&device("phone-h")).unwrap();
    first.client().unwrap().disconnect().await;
    let state = until_state(&registry, &device("phone-h"), "stopped").await;
    assert!(
        state
            .refusal(&device("phone-h"))
            .unwrap()
            .message
            .contains("SIGHUP")
    );

    let status = std::process::Command::new("kill")
        .args(["-HUP", &std::process::id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    until_state(&registry, &device("phone-h"), "connecting").await;
    assert!(!Arc::ptr_eq(
        &first,
        &registry.get(&device("phone-h")).unwrap()
    ));
    registry.stop().await;
}

#[tokio::test]
async fn the_configured_backend_routes_each_device_without_the_worker_knowing() {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = Settings::default();
    // Nothing listens here: a job routed to the gateway fails as unreachable, not as a native outcome.
    settings.gateway.base_url = "http://127.0.0.1:9".into();
    settings.backend.devices = vec![DeviceBackend {
        devices: vec![device("phone-a")],
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
            state: "not_paired",
            reason: Some("the store holds no pairing".into()),
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
            state: "not_paired",
            reason: Some("the store holds no pairing".into()),
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
