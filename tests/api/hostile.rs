//! A corpus of hostile and malformed messages, interleaved with good jobs, against the worker binary.

use std::collections::HashMap;

use avatar_worker::protocol::{ErrorCode, JobKind, Status};
use base64::Engine;
use lapin::BasicProperties;
use serde_json::{Value, json};

use crate::helpers::{AppOptions, spawn_app_with};
use crate::process::WorkerProcess;
use crate::update::encoded;
use test_support::pictures::png_claiming;

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

enum Body {
    Raw(Vec<u8>),
    Json(Value),
}

#[tokio::test]
async fn hostile_messages_get_named_errors_and_good_jobs_still_succeed() {
    let mut app = spawn_app_with(AppOptions {
        start_worker: false,
        configure: Box::new(|s| s.worker.max_job_bytes = 4 * 1024 * 1024),
        ..AppOptions::default()
    })
    .await;
    let jpeg = encoded(400, 300, image::ImageFormat::Jpeg);
    let mut truncated = jpeg.clone();
    truncated.truncate(jpeg.len() / 2);
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let deep_phone = format!(
        r#"{{"phone": {}{}}}"#,
        "[".repeat(50_000),
        "]".repeat(50_000)
    );
    let mut big = vec![b'x'; 10 * 1024 * 1024];
    big[0] = b'{';
    use ErrorCode::*;
    use JobKind::{Fetch as F, Update as U};
    let corpus: Vec<(JobKind, Body, ErrorCode)> = vec![
        (F, Body::Raw(b"hello".to_vec()), InvalidJob),
        (F, Body::Raw(b"[1,2,3]".to_vec()), InvalidJob),
        (F, Body::Raw(b"null".to_vec()), InvalidJob),
        (F, Body::Raw(b"42".to_vec()), InvalidJob),
        (F, Body::Raw(b"\"6281234567890\"".to_vec()), InvalidJob),
        (F, Body::Raw(b"".to_vec()), InvalidJob),
        (
            F,
            Body::Raw(b"\xff\xfe\xfd{\"phone\":\"6281234\"}".to_vec()),
            InvalidJob,
        ),
        (
            F,
            Body::Raw(b"\xef\xbb\xbf{\"phone\":\"6281234\"}".to_vec()),
            InvalidJob,
        ),
        (
            F,
            Body::Raw(b"{\"phone\":\"62\xff\xfe81234\"}".to_vec()),
            InvalidJob,
        ),
        (F, Body::Raw(deep.into_bytes()), InvalidJob),
        (F, Body::Raw(deep_phone.into_bytes()), InvalidJob),
        (F, Body::Raw(big), InvalidJob),
        (F, Body::Json(json!({})), InvalidJob),
        (F, Body::Json(json!({"phone": true})), InvalidJob),
        (F, Body::Json(json!({"phone": []})), InvalidJob),
        (F, Body::Json(json!({"phone": {"n": 1}})), InvalidJob),
        (F, Body::Json(json!({"phone": -5})), InvalidJob),
        (F, Body::Json(json!({"phone": 1.5})), InvalidJob),
        (F, Body::Json(json!({"phone": ""})), InvalidPhone),
        (F, Body::Json(json!({"phone": "62abc123"})), InvalidPhone),
        (
            F,
            Body::Json(json!({"phone": "call me maybe"})),
            InvalidPhone,
        ),
        (F, Body::Json(json!({"phone": "62812\n3456"})), InvalidPhone),
        (
            F,
            Body::Json(json!({"phone": "6".repeat(10_000)})),
            InvalidPhone,
        ),
        (
            F,
            Body::Json(json!({"phone": "6281234@evil.example"})),
            InvalidPhone,
        ),
        (
            F,
            Body::Json(json!({"phone": "'; DROP TABLE contacts; --"})),
            InvalidPhone,
        ),
        (
            F,
            Body::Json(json!({"phone": "6281234567", "is_preview": "yes"})),
            InvalidJob,
        ),
        (
            F,
            Body::Json(json!({"phone": "6281234567", "download": 1})),
            InvalidJob,
        ),
        (
            F,
            Body::Json(json!({"phone": "6281234567", "known_id": 5})),
            InvalidJob,
        ),
        (
            F,
            Body::Json(json!({"phone": "6281234567", "device_id": "dev\r\nX-Injected: 1"})),
            InvalidJob,
        ),
        (
            F,
            Body::Json(json!({"phone": "6281234567", "device_id": "d".repeat(10_240)})),
            InvalidJob,
        ),
        (
            F,
            Body::Json(json!({"phone": "6281234567", "device_id": 7})),
            InvalidJob,
        ),
        (
            F,
            Body::Json(json!({"phone": "6281234567", "job_id": {"x": 1}})),
            InvalidJob,
        ),
        (U, Body::Raw(b"{\"image\":".to_vec()), InvalidJob),
        (U, Body::Json(json!({})), InvalidJob),
        (U, Body::Json(json!({"image": "AAAA"})), InvalidJob),
        (
            U,
            Body::Json(json!({"image": {"base64": "AAAA", "url": "https://example.com/a.jpg"}})),
            InvalidJob,
        ),
        (
            U,
            Body::Json(json!({"image": {"file": "/etc/passwd"}})),
            InvalidJob,
        ),
        (
            U,
            Body::Json(json!({"image": {"base64": b64(&jpeg)}, "normalize": "no"})),
            InvalidJob,
        ),
        (
            U,
            Body::Json(json!({"image": {"base64": "!!! not base64 !!!"}})),
            InvalidImage,
        ),
        (
            U,
            Body::Json(json!({"image": {"base64": ""}})),
            InvalidImage,
        ),
        (
            U,
            Body::Json(json!({"image": {"base64": b64(&truncated)}})),
            InvalidImage,
        ),
        (
            U,
            Body::Json(json!({"image": {"base64": b64(&png_claiming(100_000, 100_000))}})),
            ImageTooLarge,
        ),
        (
            U,
            Body::Json(
                json!({"image": {"base64": b64(&encoded(300, 300, image::ImageFormat::Gif))}}),
            ),
            InvalidImage,
        ),
        (
            U,
            Body::Json(
                json!({"image": {"base64": b64(&encoded(300, 300, image::ImageFormat::Bmp))}}),
            ),
            InvalidImage,
        ),
        (
            U,
            Body::Json(
                json!({"image": {"base64": b64(b"<svg xmlns='http://www.w3.org/2000/svg' width='500' height='500'/>")}}),
            ),
            InvalidImage,
        ),
        (
            U,
            Body::Json(json!({"image": {"base64": b64(b"this is text saved as photo.jpg")}})),
            InvalidImage,
        ),
        (
            U,
            Body::Json(
                json!({"image": {"base64": b64(&encoded(10, 10, image::ImageFormat::Png))}}),
            ),
            InvalidImage,
        ),
        (
            U,
            Body::Json(json!({"image": {"url": "http://127.0.0.1:9/avatar.jpg"}})),
            ImageUrlForbidden,
        ),
        (
            U,
            Body::Json(json!({"image": {"url": "http://169.254.169.254/latest/meta-data/"}})),
            ImageUrlForbidden,
        ),
        (
            U,
            Body::Json(json!({"image": {"url": "http://[::1]/a.png"}})),
            ImageUrlForbidden,
        ),
        (
            U,
            Body::Json(json!({"image": {"url": "http://10.0.0.8/a.png"}})),
            ImageUrlForbidden,
        ),
        (
            U,
            Body::Json(json!({"image": {"url": "file:///etc/passwd"}})),
            ImageUrlForbidden,
        ),
        (
            U,
            Body::Json(json!({"image": {"url": "ftp://example.com/a.jpg"}})),
            ImageUrlForbidden,
        ),
        (
            U,
            Body::Json(json!({"image": {"url": "gopher://localhost:70/1"}})),
            ImageUrlForbidden,
        ),
    ];
    assert!(corpus.len() >= 40);

    let mut expected: HashMap<String, (ErrorCode, usize)> = HashMap::new();
    let mut good = Vec::new();
    for (i, (kind, body, code)) in corpus.iter().enumerate() {
        let id = format!("bad-{i}");
        let bytes = match body {
            Body::Raw(bytes) => bytes.clone(),
            Body::Json(value) => value.to_string().into_bytes(),
        };
        app.publish_raw(
            *kind,
            &bytes,
            BasicProperties::default().with_message_id(id.as_str().into()),
        )
        .await;
        expected.insert(id, (*code, i));
        // A good job after every hostile one.
        let good_id = format!("good-{i}");
        if i % 8 == 7 {
            app.publish_json(
                U,
                &json!({"job_id": good_id, "image": {"base64": b64(&jpeg)}}),
            )
            .await;
        } else {
            app.publish_json(
                F,
                &json!({"job_id": good_id, "phone": format!("+62 812-{i:07}")}),
            )
            .await;
        }
        good.push(good_id);
    }
    let mut worker = WorkerProcess::start(&app, &[]);
    let results = app.results(corpus.len() + good.len()).await;
    for result in &results {
        let id = result.job_id.as_str();
        if let Some((code, i)) = expected.get(id) {
            let error = result
                .error
                .as_ref()
                .unwrap_or_else(|| panic!("row {i} answered {result:?}"));
            assert_eq!(error.code, *code, "row {i}: {}", error.message);
            assert!(!error.message.is_empty());
        } else {
            assert!(id.starts_with("good-"), "{id}");
            assert_eq!(result.status, Status::Ok, "{id}: {:?}", result.error);
        }
    }
    assert!(worker.is_running(), "the worker survived the corpus");
    let peak = worker.peak_rss_kib();
    eprintln!("worker peak RSS over the corpus: {} MiB", peak / 1024);
    assert!(
        peak < 256 * 1024,
        "resident memory stays bounded: {peak} KiB"
    );
    assert!(worker.terminate().success());
}

/// A server the worker must never reach: counts the requests it gets and answers a secret.
struct Secret {
    addr: std::net::SocketAddr,
    hits: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

const SECRET: &str = "TOP-SECRET-instance-credentials";

async fn secret_server() -> Secret {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let hits = std::sync::Arc::new(AtomicUsize::new(0));
    let counted = hits.clone();
    let app = axum::Router::new().fallback(move || {
        let counted = counted.clone();
        async move {
            counted.fetch_add(1, Ordering::SeqCst);
            SECRET
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    Secret { addr, hits }
}

/// A server on an allowed host whose every path redirects to `to`.
async fn redirector(to: String) -> std::net::SocketAddr {
    let app = axum::Router::new().fallback(move || {
        let to = to.clone();
        async move { axum::response::Redirect::to(&to) }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

/// A gateway naming picture URLs inside the network (loopback, IPv6 loopback, a name resolving to
/// loopback, the metadata service, a redirect to a local port, a host off the list, another scheme) gets
/// `download_forbidden` for each, the secret server is never reached, and a good download beside them is
/// answered.
#[tokio::test]
async fn picture_urls_reaching_inside_are_refused_and_good_downloads_answered() {
    let secret = secret_server().await;
    let port = secret.addr.port();
    let redirect = redirector(format!("http://127.0.0.1:{port}/secret")).await;
    let redirect_host = redirect.to_string();
    let mut app = spawn_app_with(AppOptions {
        configure: Box::new(move |s| {
            // Hosts the gateway may name, by name only (any port), so the address guard is what refuses
            // a loopback port; the mock and the redirector are allowed their own address and port.
            s.worker.download_hosts.extend(
                ["127.0.0.1", "[::1]", "localhost", "169.254.169.254"]
                    .map(String::from)
                    .into_iter()
                    .chain([redirect_host.clone()]),
            );
            s.worker.download_allow_hosts.push(redirect_host);
        }),
        ..AppOptions::default()
    })
    .await;
    let hostile = [
        (
            "loopback",
            format!("http://127.0.0.1:{port}/secret"),
            "loopback",
        ),
        (
            "ipv6-loopback",
            format!("http://[::1]:{port}/secret"),
            "loopback",
        ),
        (
            "localhost",
            format!("http://localhost:{port}/secret"),
            "loopback",
        ),
        (
            "metadata",
            "http://169.254.169.254/latest/meta-data/".to_string(),
            "link-local",
        ),
        (
            "redirect",
            format!("http://{redirect}/picture.jpg"),
            "loopback",
        ),
        (
            "unlisted",
            format!("http://127.0.0.2:{port}/secret"),
            "worker.download_hosts",
        ),
        ("scheme", "file:///etc/passwd".to_string(), "scheme"),
    ];
    for (i, (id, url, _)) in hostile.iter().enumerate() {
        app.put(
            &format!("/_mock/contacts/62811000{i:05}"),
            json!({"picture": "set", "url": url}),
        )
        .await;
        app.publish_json(
            JobKind::Fetch,
            &json!({"job_id": id, "phone": format!("62811000{i:05}"), "download": true}),
        )
        .await;
    }
    app.put("/_mock/contacts/6281100099999", json!({"picture": "set"}))
        .await;
    app.publish_json(
        JobKind::Fetch,
        &json!({"job_id": "good", "phone": "6281100099999", "download": true}),
    )
    .await;

    let results = app.results(hostile.len() + 1).await;
    for result in &results {
        let text = serde_json::to_string(result).unwrap();
        assert!(!text.contains(SECRET), "{text}");
        if result.job_id.as_str() == "good" {
            assert_eq!(result.status, Status::Ok, "{:?}", result.error);
            let image = result.image.as_ref().expect("the downloaded picture");
            assert_eq!(image.content_type, "image/jpeg");
            continue;
        }
        let (_, url, says) = hostile
            .iter()
            .find(|(id, ..)| *id == result.job_id.as_str())
            .expect("a job of the test");
        let error = result.error.as_ref().expect("an error");
        assert_eq!(error.code, ErrorCode::DownloadForbidden, "{url}: {error:?}");
        assert!(!error.retryable, "{url}");
        assert!(error.message.contains(says), "{url}: {}", error.message);
    }
    assert_eq!(
        secret.hits.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "the secret server was never reached"
    );
}

/// `HTTP_PROXY` and friends in the worker's environment are not used: neither the gateway's Basic
/// credentials nor the guarded downloads (picture, image URL) go through a proxy nobody configured, whose
/// resolving and connecting the address guard could not see.
#[tokio::test]
async fn proxy_variables_in_the_environment_are_ignored() {
    let mut app = spawn_app_with(AppOptions {
        start_worker: false,
        ..AppOptions::default()
    })
    .await;
    let proxy = secret_server().await;
    let photo = encoded(400, 400, image::ImageFormat::Jpeg);
    let images = {
        let app = axum::Router::new().fallback(move || {
            let photo = photo.clone();
            async move { ([("content-type", "image/jpeg")], photo) }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        addr
    };
    app.put("/_mock/contacts/6281100088888", json!({"picture": "set"}))
        .await;
    app.publish_json(
        JobKind::Fetch,
        &json!({"job_id": "fetch", "phone": "6281100088888", "download": true}),
    )
    .await;
    app.publish_json(
        JobKind::Update,
        &json!({"job_id": "update", "image": {"url": format!("http://{images}/photo.jpg")}}),
    )
    .await;
    let via = format!("http://{}", proxy.addr);
    let mut env: Vec<(&str, String)> = [
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "http_proxy",
        "https_proxy",
        "all_proxy",
    ]
    .into_iter()
    .map(|key| (key, via.clone()))
    .collect();
    env.push(("AVATAR_WORKER__IMAGE__ALLOW_HOSTS", images.to_string()));
    let mut worker = WorkerProcess::start(&app, &env);
    for result in app.results(2).await {
        assert_eq!(
            result.status,
            Status::Ok,
            "{}: {:?}",
            result.job_id.as_str(),
            result.error
        );
    }
    assert_eq!(
        proxy.hits.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "nothing went through the proxy"
    );
    assert!(worker.terminate().success());
}

/// A producer naming someone else's queue as `reply_to` gets `invalid_job` on the results queue; nothing
/// is written into that queue with the worker's rights.
#[tokio::test]
async fn a_reply_to_outside_the_allowed_queues_is_refused() {
    let mut app = spawn_app_with(AppOptions::default()).await;
    let victim = format!("victim-{}", uuid::Uuid::new_v4().simple());
    app.channel
        .queue_declare(
            victim.as_str().into(),
            lapin::options::QueueDeclareOptions {
                auto_delete: true,
                ..Default::default()
            },
            lapin::types::FieldTable::default(),
        )
        .await
        .expect("declare the victim queue");
    let job = json!({"job_id": "foreign", "phone": "6281100077777"});
    app.publish_raw(
        JobKind::Fetch,
        job.to_string().as_bytes(),
        BasicProperties::default().with_reply_to(victim.as_str().into()),
    )
    .await;
    app.publish_json(
        JobKind::Fetch,
        &json!({"job_id": "good", "phone": "6281100077778"}),
    )
    .await;
    for result in app.results(2).await {
        match result.job_id.as_str() {
            "good" => assert_eq!(result.status, Status::Ok, "{:?}", result.error),
            _ => {
                let error = result.error.expect("an error");
                assert_eq!(error.code, ErrorCode::InvalidJob);
                assert!(
                    error.message.contains("reply_to_prefixes"),
                    "{}",
                    error.message
                );
            }
        }
    }
    assert_eq!(
        app.queue_depth(&victim).await,
        0,
        "nothing reached {victim}"
    );
    app.channel
        .queue_delete(victim.as_str().into(), Default::default())
        .await
        .expect("delete the victim queue");
}

/// A gateway answering without end is read up to 1 MiB: the job gets `gateway_error` at once.
#[tokio::test]
async fn a_gateway_answer_over_a_mebibyte_is_refused() {
    use axum::routing::get;
    let huge = format!(
        r#"{{"code":"SUCCESS","message":"{}","results":{{"url":"x","id":"1","type":"image"}}}}"#,
        "A".repeat(3 * 1024 * 1024)
    );
    let gateway = axum::Router::new()
        .route(
            "/devices",
            get(|| async {
                axum::Json(json!({"code": "SUCCESS", "message": "ok",
                    "results": [{"id": "dev-a", "jid": "6281234500001@s.whatsapp.net"}]}))
            }),
        )
        .route("/user/avatar", get(move || async move { huge.clone() }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, gateway).await });
    let mut app = spawn_app_with(AppOptions {
        configure: Box::new(move |s| s.gateway.base_url = format!("http://{addr}")),
        ..AppOptions::default()
    })
    .await;
    app.publish_json(
        JobKind::Fetch,
        &json!({"job_id": "huge", "device_id": "dev-a", "phone": "6281100066666"}),
    )
    .await;
    let result = app.next_result().await;
    let error = result.error.expect("an error");
    assert_eq!(error.code, ErrorCode::GatewayError, "{}", error.message);
    assert!(error.message.contains("1048576"), "{}", error.message);
}

/// An update for a device the gateway does not have costs no image work: answered `device_not_found`
/// before its image URL is fetched (or anything decoded).
#[tokio::test]
async fn an_update_for_an_unknown_device_fetches_and_decodes_nothing() {
    let images = secret_server().await;
    let allowed = images.addr.to_string();
    let mut app = spawn_app_with(AppOptions {
        configure: Box::new(move |s| s.image.allow_hosts = vec![allowed]),
        ..AppOptions::default()
    })
    .await;
    app.publish_json(
        JobKind::Update,
        &json!({"job_id": "ghost", "device_id": "no-such-device",
            "image": {"url": format!("http://{}/photo.jpg", images.addr)}}),
    )
    .await;
    let result = app.next_result().await;
    let error = result.error.expect("an error");
    assert_eq!(error.code, ErrorCode::DeviceNotFound, "{}", error.message);
    assert_eq!(
        images.hits.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "the image was never fetched"
    );
}
