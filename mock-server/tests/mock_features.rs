//! Focused tests of the mock's own features: uploads, CDN, faults, request log, world, reset.

mod common;

use std::time::Instant;

use common::*;
use mock_server::world::{self, Outcome};
use mock_server::{Config, Shares, sanitize_phone};
use reqwest::Method;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

async fn fetch(url: &str) -> (u16, String, Vec<u8>) {
    let resp = client().get(url).send().await.expect("fetch");
    let status = resp.status().as_u16();
    let ct = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    (status, ct, resp.bytes().await.expect("bytes").to_vec())
}

#[tokio::test]
async fn upload_then_own_avatar_changes_and_is_centre_cropped() {
    let s = start(&["dev1"], true).await;
    let own = "6281234500001@s.whatsapp.net";
    // Make sure the JID has a picture before, to see the id change.
    control(
        &s,
        Method::PUT,
        &format!("/_mock/contacts/{own}"),
        Some(json!({"picture": "set", "id": "1111111111"})),
    )
    .await;
    let upload = png(1000, 800);
    let (status, body) = post_avatar(&s, "dev1", upload.clone()).await;
    assert_eq!(
        (status, body),
        (
            200,
            json!({"code": "SUCCESS", "message": "Success change avatar"})
        )
    );

    let info = control(&s, Method::GET, "/_mock/devices/dev1/avatar", None).await;
    let r = &info["results"];
    assert_eq!(r["width"], 640);
    assert_eq!(r["height"], 640);
    assert_eq!(r["format"], "jpeg");
    assert_eq!(r["uploaded_format"], "png");
    assert_eq!(r["uploaded_width"], 1000);
    assert_eq!(r["uploaded_height"], 800);
    assert_eq!(r["uploaded_size"], upload.len());
    assert_eq!(r["uploaded_sha256"], hex(&Sha256::digest(&upload)));
    let new_id = str_at(r, "/id").to_string();
    assert_ne!(new_id, "1111111111");

    // The own JID now returns the new picture. Its AD form is looked up as sent (`+628…:1`), and
    // the mock's WhatsApp does not know that number, as GOWA's `IsOnWhatsapp` would find.
    for phone in ["6281234500001", "6281234500001%40s.whatsapp.net"] {
        let (status, v) = get_avatar(&s, &format!("phone={phone}"), Some("dev1")).await;
        assert_eq!(status, 200, "{v}");
        assert_eq!(str_at(&v, "/results/id"), new_id);
    }
    let (status, v) = get_avatar(&s, "phone=6281234500001%3A1%40s.whatsapp.net", None).await;
    assert_eq!((status, str_at(&v, "/code")), (400, "INVALID_JID"), "{v}");
    let (_, v) = get_avatar(&s, "phone=6281234500001", Some("dev1")).await;
    let (status, ct, bytes) = fetch(str_at(&v, "/results/url")).await;
    assert_eq!((status, ct.as_str()), (200, "image/jpeg"));
    assert_eq!(hex(&Sha256::digest(&bytes)), str_at(r, "/sha256"));
    let img = image::load_from_memory(&bytes).expect("jpeg").to_rgb8();
    assert_eq!(img.dimensions(), (640, 640));
    // Centre crop without scaling: output (0,0) is input (180,80); output (639,639) is input (819,719).
    let close =
        |p: &image::Rgb<u8>, want: [u8; 3]| p.0.iter().zip(want).all(|(a, b)| a.abs_diff(b) <= 8);
    assert!(
        close(img.get_pixel(4, 4), [(184 / 4) as u8, (84 / 4) as u8, 128]),
        "{:?}",
        img.get_pixel(4, 4)
    );
    assert!(
        close(
            img.get_pixel(635, 635),
            [(815 / 4) as u8, (715 / 4) as u8, 128]
        ),
        "{:?}",
        img.get_pixel(635, 635)
    );

    let (_, v) = get_avatar(&s, "phone=6281234500001&is_preview=1", Some("dev1")).await;
    let (_, _, preview) = fetch(str_at(&v, "/results/url")).await;
    assert_eq!(
        image::load_from_memory(&preview)
            .expect("preview")
            .to_rgb8()
            .dimensions(),
        (96, 96)
    );

    // A second upload gives yet another id.
    let (status, _) = post_avatar(&s, "dev1", png(300, 500)).await;
    assert_eq!(status, 200);
    let info = control(&s, Method::GET, "/_mock/devices/dev1/avatar", None).await;
    assert_eq!(
        info["results"]["width"], 300,
        "short side kept, no upscaling"
    );
    assert_eq!(info["results"]["height"], 300);
    assert_ne!(str_at(&info, "/results/id"), new_id);
    s.shutdown().await;
}

#[tokio::test]
async fn cdn_serves_jpeg_and_rejects_expired_or_tampered_urls() {
    let s = start_with(Config {
        devices: vec!["d".into()],
        public_url: Some("http://127.0.0.1:1/".into()),
        ..Config::default()
    })
    .await;
    control_open(&s, "/_mock/contacts/628777", json!({"picture": "set"})).await;
    let (_, v) = open_get(&s, "phone=628777").await;
    let url = str_at(&v, "/results/url").to_string();
    assert!(
        url.starts_with("http://127.0.0.1:1/v/t61.24694-24/"),
        "{url}"
    );
    assert!(url.contains("_n.jpg?ccb=11-4&oh="), "{url}");
    assert_eq!(str_at(&v, "/results/id"), world::picture_id(0, "628777"));
    // Served by the mock itself: swap the public base for the bound one.
    let local = url.replace("http://127.0.0.1:1", &s.base_url());
    let (status, ct, bytes) = fetch(&local).await;
    assert_eq!((status, ct.as_str()), (200, "image/jpeg"));
    assert_eq!(
        image::load_from_memory(&bytes)
            .expect("jpeg")
            .to_rgb8()
            .dimensions(),
        (640, 640)
    );
    // Same bytes the second time (cached, deterministic).
    assert_eq!(fetch(&local).await.2, bytes);

    let (base, oe) = local.rsplit_once("&oe=").expect("oe");
    assert!(u64::from_str_radix(oe, 16).is_ok());
    let (status, _, body) = fetch(&format!("{base}&oe=5F5E1000")).await;
    assert_eq!(
        (status, body.as_slice()),
        (403, b"URL signature expired".as_slice())
    );
    let tampered = local.replace("oh=", "oh=0");
    let (status, _, body) = fetch(&tampered).await;
    assert_eq!((status, body.as_slice()), (403, b"Bad URL hash".as_slice()));
    s.shutdown().await;
}

async fn control_open(s: &mock_server::MockServer, path: &str, body: Value) -> Value {
    let resp = client()
        .put(format!("{}{path}", s.base_url()))
        .json(&body)
        .send()
        .await
        .expect("put");
    assert_eq!(resp.status(), 200);
    resp.json().await.expect("json")
}

async fn open_get(s: &mock_server::MockServer, query: &str) -> (u16, Value) {
    let resp = client()
        .get(format!("{}/user/avatar?{query}", s.base_url()))
        .send()
        .await
        .expect("get");
    (resp.status().as_u16(), resp.json().await.expect("json"))
}

#[tokio::test]
async fn faults_are_applied_and_validated() {
    let s = start(&["dev1"], true).await;
    control(
        &s,
        Method::PUT,
        "/_mock/contacts/628100",
        Some(json!({"picture": "set"})),
    )
    .await;
    let f = control(&s, Method::GET, "/_mock/faults", None).await;
    assert_eq!(f["results"]["timeout_ms"], 5000);
    assert_eq!(f["results"]["timeout"], 0.0);

    control(
        &s,
        Method::PUT,
        "/_mock/faults",
        Some(json!({"latency_ms": 150})),
    )
    .await;
    let t = Instant::now();
    let (status, _) = get_avatar(&s, "phone=628100", None).await;
    assert_eq!(status, 200);
    assert!(t.elapsed().as_millis() >= 150, "latency applied");

    control(
        &s,
        Method::PUT,
        "/_mock/faults",
        Some(json!({"internal_error": 1.0})),
    )
    .await;
    let (status, v) = get_avatar(&s, "phone=628100", None).await;
    assert_eq!(
        (status, str_at(&v, "/message")),
        (500, "info query returned status 500: internal-server-error")
    );

    control(
        &s,
        Method::PUT,
        "/_mock/faults",
        Some(json!({"not_connected": 1.0})),
    )
    .await;
    let (status, v) = get_avatar(&s, "phone=628100", None).await;
    assert_eq!((status, str_at(&v, "/code")), (401, "AUTHENTICATION_ERROR"));

    control(
        &s,
        Method::PUT,
        "/_mock/faults",
        Some(json!({"rate_overlimit": 1.0})),
    )
    .await;
    let (status, v) = post_avatar(&s, "dev1", png(10, 10)).await;
    assert_eq!(
        (status, str_at(&v, "/message")),
        (500, "info query returned status 429: rate-overlimit")
    );

    control(
        &s,
        Method::PUT,
        "/_mock/faults",
        Some(json!({"timeout": 1.0, "timeout_ms": 30})),
    )
    .await;
    let t = Instant::now();
    let (status, v) = get_avatar(&s, "phone=628100", None).await;
    assert_eq!((status, str_at(&v, "/code")), (408, "CONTEXT_ERROR"));
    assert!(t.elapsed().as_millis() >= 30);

    for bad in [json!({"timeout": 2.0}), json!({"nonsense": 1})] {
        let resp = client()
            .put(format!("{}/_mock/faults", s.base_url()))
            .basic_auth(USER, Some(PASS))
            .json(&bad)
            .send()
            .await
            .expect("put");
        assert_eq!(resp.status(), 400, "{bad}");
    }
    // Partial PUT replaces everything: omitted fields are back to their defaults.
    control(&s, Method::PUT, "/_mock/faults", Some(json!({}))).await;
    let (status, _) = get_avatar(&s, "phone=628100", None).await;
    assert_eq!(status, 200);
    s.shutdown().await;
}

#[tokio::test]
async fn request_log_records_requests_newest_last() {
    let s = start(&["dev1"], true).await;
    get_avatar(&s, "phone=628200&is_preview=true", Some("dev1")).await;
    let resp = client()
        .get(format!("{}/user/avatar?phone=1", s.base_url()))
        .basic_auth(USER, Some("wrong"))
        .send()
        .await
        .expect("get");
    assert_eq!(resp.status(), 401);
    client()
        .get(format!("{}/health", s.base_url()))
        .send()
        .await
        .expect("health");

    let log = control(&s, Method::GET, "/_mock/requests", None).await;
    let entries = log["results"].as_array().expect("array");
    assert_eq!(entries.len(), 3, "control requests are not recorded: {log}");
    let first = &entries[0];
    assert_eq!(first["method"], "GET");
    assert_eq!(first["path"], "/user/avatar");
    assert_eq!(first["query"], "phone=628200&is_preview=true");
    assert_eq!(first["device_id"], "dev1");
    assert_eq!(first["user"], USER);
    assert!(first["status"].as_u64().is_some());
    assert!(first["time"].as_str().is_some_and(|t| t.ends_with('Z')));
    assert_eq!(entries[1]["status"], 401);
    assert_eq!(entries[1]["user"], Value::Null);
    assert_eq!(entries[2]["path"], "/health");
    assert!(!log.to_string().contains(PASS), "password never recorded");

    let last = control(&s, Method::GET, "/_mock/requests?limit=1", None).await;
    assert_eq!(last["results"].as_array().map(Vec::len), Some(1));
    assert_eq!(last["results"][0]["path"], "/health");

    control(&s, Method::DELETE, "/_mock/requests", None).await;
    let log = control(&s, Method::GET, "/_mock/requests", None).await;
    assert_eq!(log["results"], json!([]));
    s.shutdown().await;
}

#[tokio::test]
async fn world_outcomes_match_the_library_function() {
    let shares = Shares {
        set: 0.4,
        not_set: 0.2,
        hidden: 0.2,
        not_on_whatsapp: 0.2,
    };
    let seed = 0xC0FFEE;
    let s = start_with(Config {
        devices: vec!["d".into()],
        seed,
        shares,
        ..Config::default()
    })
    .await;
    let mut seen = [0usize; 4];
    for _ in 0..200 {
        let n: u64 = rand::random_range(6_280_000_000_000..6_290_000_000_000);
        let phone = n.to_string();
        let (status, v) = open_get(&s, &format!("phone={phone}")).await;
        let got = match (status, str_at(&v, "/message")) {
            (200, _) => Outcome::Set {
                id: str_at(&v, "/results/id").to_string(),
            },
            (500, "that user or group does not have a profile picture") => Outcome::NotSet,
            (500, "the user has hidden their profile picture from you") => Outcome::Hidden,
            (400, _) if str_at(&v, "/code") == "INVALID_JID" => Outcome::NotOnWhatsapp,
            other => panic!("unexpected answer {other:?}: {v}"),
        };
        let predicted = world::outcome(seed, &shares, &phone);
        assert_eq!(got, predicted, "{phone}");
        assert_eq!(
            predicted,
            world::outcome(seed, &shares, &sanitize_phone(&phone))
        );
        seen[match got {
            Outcome::Set { .. } => 0,
            Outcome::NotSet => 1,
            Outcome::Hidden => 2,
            Outcome::NotOnWhatsapp => 3,
        }] += 1;
    }
    assert!(
        seen.iter().all(|c| *c > 0),
        "every outcome occurs: {seen:?}"
    );
    // A different seed gives a different world.
    let other: Vec<_> = (0..50)
        .map(|i| world::outcome(seed + 1, &shares, &format!("62811{i:07}")))
        .collect();
    let this: Vec<_> = (0..50)
        .map(|i| world::outcome(seed, &shares, &format!("62811{i:07}")))
        .collect();
    assert_ne!(other, this);
    s.shutdown().await;
}

#[tokio::test]
async fn reset_restores_the_initial_state() {
    let s = start(&["dev1"], true).await;
    let jid = "628300";
    let before = get_avatar(&s, &format!("phone={jid}"), None).await;
    control(
        &s,
        Method::PUT,
        &format!("/_mock/contacts/{jid}"),
        Some(json!({"picture": "hidden"})),
    )
    .await;
    control(
        &s,
        Method::PUT,
        "/_mock/devices/extra",
        Some(json!({"state": "disconnected", "jid": "628999:2@s.whatsapp.net"})),
    )
    .await;
    control(
        &s,
        Method::PUT,
        "/_mock/faults",
        Some(json!({"latency_ms": 5})),
    )
    .await;
    let (status, _) = post_avatar(&s, "dev1", png(20, 20)).await;
    assert_eq!(status, 200);
    let (status, v) = get_avatar(&s, "phone=628999", Some("628999@s.whatsapp.net")).await;
    assert_eq!(
        (status, str_at(&v, "/code")),
        (401, "AUTHENTICATION_ERROR"),
        "selected by bare JID"
    );

    control(&s, Method::POST, "/_mock/reset", None).await;
    let devices = control(&s, Method::GET, "/_mock/devices", None).await;
    assert_eq!(devices["results"].as_array().map(Vec::len), Some(1));
    assert_eq!(devices["results"][0]["id"], "dev1");
    assert_eq!(
        devices["results"][0]["jid"],
        "6281234500001:1@s.whatsapp.net"
    );
    assert_eq!(devices["results"][0]["avatar_id"], Value::Null);
    let f = control(&s, Method::GET, "/_mock/faults", None).await;
    assert_eq!(f["results"]["latency_ms"], 0);
    let log = control(&s, Method::GET, "/_mock/requests", None).await;
    assert_eq!(log["results"], json!([]));
    let after = get_avatar(&s, &format!("phone={jid}"), None).await;
    assert_eq!(before.0, after.0);
    assert_eq!(
        str_at(&before.1, "/results/id"),
        str_at(&after.1, "/results/id")
    );
    s.shutdown().await;
}
