//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::io::Cursor;

use mock_server::{Config, MockServer, spawn};
use serde_json::Value;

pub const USER: &str = "username";
pub const PASS: &str = "password";

pub async fn start(devices: &[&str], auth: bool) -> MockServer {
    start_with(Config {
        devices: devices.iter().map(|d| d.to_string()).collect(),
        basic_auth: if auth {
            vec![
                (USER.into(), PASS.into()),
                ("other".into(), "secret".into()),
            ]
        } else {
            vec![]
        },
        ..Config::default()
    })
    .await
}

pub async fn start_with(config: Config) -> MockServer {
    match spawn(config).await {
        Ok(s) => s,
        Err(e) => panic!("mock server did not start: {e}"),
    }
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client")
}

/// Sends a control request (authenticated as USER) and returns the JSON body.
pub async fn control(
    s: &MockServer,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> Value {
    let mut rb = client()
        .request(method, format!("{}{path}", s.base_url()))
        .basic_auth(USER, Some(PASS));
    if let Some(b) = body {
        rb = rb.json(&b);
    }
    let resp = rb.send().await.expect("control request");
    let status = resp.status();
    let v: Value = resp.json().await.expect("control json");
    assert!(status.is_success(), "{path}: {status} {v}");
    v
}

/// GET /user/avatar as USER; returns (status, body).
pub async fn get_avatar(s: &MockServer, query: &str, device: Option<&str>) -> (u16, Value) {
    let mut rb = client()
        .get(format!("{}/user/avatar?{query}", s.base_url()))
        .basic_auth(USER, Some(PASS));
    if let Some(d) = device {
        rb = rb.header("X-Device-Id", d);
    }
    let resp = rb.send().await.expect("get avatar");
    let status = resp.status().as_u16();
    (status, resp.json().await.expect("json"))
}

/// POST /user/avatar with a multipart `avatar` file.
pub async fn post_avatar(s: &MockServer, device: &str, bytes: Vec<u8>) -> (u16, Value) {
    let form = reqwest::multipart::Form::new().part(
        "avatar",
        reqwest::multipart::Part::bytes(bytes).file_name("image.png"),
    );
    let resp = client()
        .post(format!("{}/user/avatar", s.base_url()))
        .basic_auth(USER, Some(PASS))
        .header("X-Device-Id", device)
        .multipart(form)
        .send()
        .await
        .expect("post avatar");
    let status = resp.status().as_u16();
    (status, resp.json().await.expect("json"))
}

/// A PNG whose pixel (x, y) is (x/4, y/4, 128), so crops can be located.
pub fn png(w: u32, h: u32) -> Vec<u8> {
    let img =
        image::RgbImage::from_fn(w, h, |x, y| image::Rgb([(x / 4) as u8, (y / 4) as u8, 128]));
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png)
        .expect("png");
    out.into_inner()
}

pub fn str_at<'a>(v: &'a Value, ptr: &str) -> &'a str {
    v.pointer(ptr).and_then(Value::as_str).unwrap_or("")
}
