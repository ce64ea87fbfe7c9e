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

/// A PNG whose header declares `w×h` but which carries the pixels of a 1×1 image.
pub fn png_header_only(w: u32, h: u32) -> Vec<u8> {
    let mut out = png(1, 1);
    // IHDR: length (8..12), type (12..16), width (16..20), height (20..24), …, CRC (29..33).
    out[16..20].copy_from_slice(&w.to_be_bytes());
    out[20..24].copy_from_slice(&h.to_be_bytes());
    let crc = crc32(&out[12..29]);
    out[29..33].copy_from_slice(&crc.to_be_bytes());
    out
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in data {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// Writes deflate bits least-significant first.
#[derive(Default)]
struct Bits {
    out: Vec<u8>,
    acc: u64,
    n: u32,
}

impl Bits {
    fn put(&mut self, value: u64, count: u32) {
        self.acc |= value << self.n;
        self.n += count;
        while self.n >= 8 {
            self.out.push(self.acc as u8);
            self.acc >>= 8;
            self.n -= 8;
        }
    }
    /// A Huffman code: most significant bit first.
    fn code(&mut self, code: u64, len: u32) {
        for i in (0..len).rev() {
            self.put((code >> i) & 1, 1);
        }
    }
    fn finish(mut self) -> Vec<u8> {
        if self.n > 0 {
            self.out.push(self.acc as u8);
        }
        self.out
    }
}

/// A zlib stream of `n` zero bytes (fixed Huffman: one literal, then 258-byte copies).
fn zlib_zeros(n: u64) -> Vec<u8> {
    let mut bits = Bits::default();
    bits.put(1, 1); // BFINAL
    bits.put(1, 2); // fixed Huffman
    let mut left = n;
    if left > 0 {
        bits.code(0x30, 8); // literal 0
        left -= 1;
    }
    while left >= 258 {
        bits.code(0xC5, 8); // length 258 (code 285)
        bits.code(0, 5); // distance 1
        left -= 258;
    }
    for _ in 0..left {
        bits.code(0x30, 8);
    }
    bits.code(0, 7); // end of block
    let mut out = vec![0x78, 0x01];
    out.extend(bits.finish());
    let adler = ((n % 65_521) << 16) | 1;
    out.extend_from_slice(&(adler as u32).to_be_bytes());
    out
}

fn png_chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    let start = out.len();
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    let crc = crc32(&out[start..]);
    out.extend_from_slice(&crc.to_be_bytes());
}

/// A real, fully decodable black grayscale PNG of `edge×edge` pixels, about a megabyte for
/// 13000×13000 (169 MB of pixels): a decompression bomb.
pub fn png_bomb(edge: u32) -> Vec<u8> {
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&edge.to_be_bytes());
    ihdr.extend_from_slice(&edge.to_be_bytes());
    ihdr.extend_from_slice(&[8, 0, 0, 0, 0]); // 8-bit grayscale
    png_chunk(&mut out, b"IHDR", &ihdr);
    let raw = edge as u64 * (edge as u64 + 1); // filter byte + pixels per row
    png_chunk(&mut out, b"IDAT", &zlib_zeros(raw));
    png_chunk(&mut out, b"IEND", &[]);
    out
}
