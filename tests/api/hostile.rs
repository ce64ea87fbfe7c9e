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
