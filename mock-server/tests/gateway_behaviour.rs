//! One table: each row is a behaviour of gowa-avatar-api.md sections 2–5, sent as a real HTTP
//! request over TCP, checked for status, `code`, `message` and body content type.

mod common;

use base64::Engine;
use common::*;
use mock_server::MockServer;
use reqwest::Method;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[derive(Clone, Copy, PartialEq)]
enum Srv {
    /// auth on; dev1 + dev-disc, dev-nologin, dev-noclient, "my dev"
    Multi,
    /// auth on; only dev1
    Single,
    /// auth on; no devices
    Empty,
    /// auth off; only dev1
    Open,
}

#[derive(Clone, Copy)]
enum Auth {
    Good,
    Other,
    None,
    Header(&'static str),
    Long,
}

#[derive(Clone, Copy)]
enum Body {
    None,
    Raw(&'static str, &'static [u8]),
    File(&'static str, Img),
    /// Headers only, claiming this Content-Length (sent over a raw socket).
    ClaimLength(u64),
}

#[derive(Clone, Copy)]
enum Img {
    Png,
    Garbage,
}

#[derive(Clone, Copy)]
enum Results {
    Any,
    Absent,
    Eq(&'static str),
    Field(&'static str, &'static str),
}

const JSON: &str = "application/json; charset=utf-8";
const TEXT: &str = "text/plain; charset=utf-8";

struct Row {
    name: &'static str,
    srv: Srv,
    method: &'static str,
    path: &'static str,
    device: Option<&'static str>,
    auth: Auth,
    body: Body,
    faults: Option<&'static str>,
    status: u16,
    /// `code` for JSON answers; `None` for text/plain.
    code: Option<&'static str>,
    /// `message` for JSON answers, the whole body for text/plain.
    message: &'static str,
    ctype: &'static str,
    results: Results,
}

const fn row(name: &'static str, method: &'static str, path: &'static str) -> Row {
    Row {
        name,
        srv: Srv::Multi,
        method,
        path,
        device: Some("dev1"),
        auth: Auth::Good,
        body: Body::None,
        faults: None,
        status: 200,
        code: Some("SUCCESS"),
        message: "Success get avatar",
        ctype: JSON,
        results: Results::Any,
    }
}

impl Row {
    const fn srv(mut self, s: Srv) -> Self {
        self.srv = s;
        self
    }
    const fn dev(mut self, d: Option<&'static str>) -> Self {
        self.device = d;
        self
    }
    const fn auth(mut self, a: Auth) -> Self {
        self.auth = a;
        self
    }
    const fn body(mut self, b: Body) -> Self {
        self.body = b;
        self
    }
    const fn faults(mut self, f: &'static str) -> Self {
        self.faults = Some(f);
        self
    }
    const fn json(mut self, status: u16, code: &'static str, message: &'static str) -> Self {
        self.status = status;
        self.code = Some(code);
        self.message = message;
        self.ctype = JSON;
        self
    }
    const fn text(mut self, status: u16, body: &'static str) -> Self {
        self.status = status;
        self.code = None;
        self.message = body;
        self.ctype = TEXT;
        self
    }
    const fn results(mut self, r: Results) -> Self {
        self.results = r;
        self
    }
}

const GET: &str = "GET";
const POST: &str = "POST";
const DELETE: &str = "DELETE";
const NOT_CONNECTED: &str = "you are not connect to services server, please reconnect";
const NOT_FOUND_MSG: &str =
    "device not found; create a device first from /api/devices or provide a valid X-Device-Id";
const REQUIRED_MSG: &str = "device_id is required via X-Device-Id header or device_id query";
const NO_PICTURE: &str = "that user or group does not have a profile picture";
const HIDDEN: &str = "the user has hidden their profile picture from you";

fn rows() -> Vec<Row> {
    use Results::*;
    vec![
        // ---- section 2: GET /user/avatar
        row("success image", GET, "/user/avatar?phone=6281000000001")
            .results(Eq(r#"{"url":"*","id":"1635239861","type":"image"}"#)),
        row(
            "success preview",
            GET,
            "/user/avatar?phone=6281000000001&is_preview=true",
        )
        .results(Field("type", "preview")),
        row(
            "bool on",
            GET,
            "/user/avatar?phone=6281000000001&is_preview=on",
        )
        .results(Field("type", "preview")),
        row(
            "bool T",
            GET,
            "/user/avatar?phone=6281000000001&is_preview=T",
        )
        .results(Field("type", "preview")),
        row(
            "bool empty is false",
            GET,
            "/user/avatar?phone=6281000000001&is_preview=",
        )
        .results(Field("type", "image")),
        row(
            "bool 0",
            GET,
            "/user/avatar?phone=6281000000001&is_preview=0",
        )
        .results(Field("type", "image")),
        row(
            "full JID",
            GET,
            "/user/avatar?phone=6281000000001%40s.whatsapp.net",
        )
        .results(Field("id", "1635239861")),
        row("leading plus", GET, "/user/avatar?phone=%2B6281000000001")
            .results(Field("id", "1635239861")),
        row(
            "is_community ignored for users",
            GET,
            "/user/avatar?phone=6281000000001&is_community=true",
        )
        .results(Field("id", "1635239861")),
        row(
            "unknown keys ignored",
            GET,
            "/user/avatar?phone=6281000000001&foo=bar",
        )
        .results(Field("id", "1635239861")),
        row(
            "last value wins",
            GET,
            "/user/avatar?phone=6281000000003&phone=6281000000001",
        )
        .results(Field("id", "1635239861")),
        row(
            "bad bool",
            GET,
            "/user/avatar?phone=6281000000001&is_preview=yes",
        )
        .json(
            500,
            "INTERNAL_SERVER_ERROR",
            "bind \"is_preview\" from query: schema: error converting value for \"is_preview\"",
        ),
        row(
            "bad community bool",
            GET,
            "/user/avatar?phone=6281000000001&is_community=2",
        )
        .json(
            500,
            "INTERNAL_SERVER_ERROR",
            "bind \"is_community\" from query: schema: error converting value for \"is_community\"",
        ),
        row("blank phone", GET, "/user/avatar?phone=")
            .json(400, "VALIDATION_ERROR", "phone: cannot be blank.")
            .results(Absent),
        row("missing phone", GET, "/user/avatar").json(
            400,
            "VALIDATION_ERROR",
            "phone: cannot be blank.",
        ),
        row("client check before validation", GET, "/user/avatar")
            .dev(Some("dev-noclient"))
            .json(
                500,
                "INVALID_WA_CLI",
                "your WhatsApp CLI is invalid or empty",
            ),
        row("disconnected", GET, "/user/avatar?phone=6281000000001")
            .dev(Some("dev-disc"))
            .json(401, "AUTHENTICATION_ERROR", NOT_CONNECTED),
        row("not logged in", GET, "/user/avatar?phone=6281000000001")
            .dev(Some("dev-nologin"))
            .json(401, "AUTHENTICATION_ERROR", "you are not logged in"),
        row("validation before login", GET, "/user/avatar?phone=")
            .dev(Some("dev-disc"))
            .json(400, "VALIDATION_ERROR", "phone: cannot be blank."),
        row("not on whatsapp", GET, "/user/avatar?phone=6281000000004").json(
            400,
            "INVALID_JID",
            "Phone 6281000000004@s.whatsapp.net is not on whatsapp",
        ),
        row(
            "not on whatsapp shows sanitised",
            GET,
            "/user/avatar?phone=%2B6281000000004",
        )
        .json(
            400,
            "INVALID_JID",
            "Phone +6281000000004@s.whatsapp.net is not on whatsapp",
        ),
        row("no picture", GET, "/user/avatar?phone=6281000000002").json(
            500,
            "INTERNAL_SERVER_ERROR",
            NO_PICTURE,
        ),
        row("hidden", GET, "/user/avatar?phone=6281000000003").json(
            500,
            "INTERNAL_SERVER_ERROR",
            HIDDEN,
        ),
        row(
            "16 chars become a group",
            GET,
            "/user/avatar?phone=1203630000000001",
        )
        .results(Field("id", "1700000001")),
        row(
            "groups skip the on-whatsapp check",
            GET,
            "/user/avatar?phone=120363000000099%40g.us",
        )
        .json(500, "INTERNAL_SERVER_ERROR", NO_PICTURE),
        row(
            "LIDs skip the on-whatsapp check",
            GET,
            "/user/avatar?phone=99887766%40lid",
        )
        .json(500, "INTERNAL_SERVER_ERROR", NO_PICTURE),
        row(
            "newsletters pass through",
            GET,
            "/user/avatar?phone=120363111%40newsletter",
        )
        .results(Field("id", "1700000002")),
        row("empty user", GET, "/user/avatar?phone=%40s.whatsapp.net").json(
            500,
            "INTERNAL_SERVER_ERROR",
            "invalid JID @s.whatsapp.net: no server specified",
        ),
        row(
            "too many dots",
            GET,
            "/user/avatar?phone=x.y.z%40s.whatsapp.net",
        )
        .json(
            500,
            "INTERNAL_SERVER_ERROR",
            "invalid JID x.y.z@s.whatsapp.net: unexpected number of dots in JID",
        ),
        row("timeout", GET, "/user/avatar?phone=6281000000001")
            .faults(r#"{"timeout":1,"timeout_ms":20}"#)
            .json(408, "CONTEXT_ERROR", "Error timeout get avatar!"),
        row("rate limited", GET, "/user/avatar?phone=6281000000001")
            .faults(r#"{"rate_overlimit":1}"#)
            .json(
                500,
                "INTERNAL_SERVER_ERROR",
                "info query returned status 429: rate-overlimit",
            ),
        // ---- section 3: POST /user/avatar
        row("post without content type", POST, "/user/avatar")
            .body(Body::Raw("", b"abc"))
            .json(500, "INTERNAL_SERVER_ERROR", "Unprocessable Entity"),
        row("post image/jpeg body", POST, "/user/avatar")
            .body(Body::Raw("image/jpeg", b"\xff\xd8abc"))
            .json(500, "INTERNAL_SERVER_ERROR", "Unprocessable Entity"),
        row("post without avatar field", POST, "/user/avatar")
            .body(Body::File("photo", Img::Png))
            .json(
                500,
                "INTERNAL_SERVER_ERROR",
                "there is no uploaded file associated with the given key",
            ),
        row("missing file before client check", POST, "/user/avatar")
            .dev(Some("dev-noclient"))
            .body(Body::File("photo", Img::Png))
            .json(
                500,
                "INTERNAL_SERVER_ERROR",
                "there is no uploaded file associated with the given key",
            ),
        row("post no client", POST, "/user/avatar")
            .dev(Some("dev-noclient"))
            .body(Body::File("avatar", Img::Png))
            .json(
                500,
                "INVALID_WA_CLI",
                "your WhatsApp CLI is invalid or empty",
            ),
        row("post disconnected", POST, "/user/avatar")
            .dev(Some("dev-disc"))
            .body(Body::File("avatar", Img::Png))
            .json(401, "AUTHENTICATION_ERROR", NOT_CONNECTED),
        row("post not logged in", POST, "/user/avatar")
            .dev(Some("dev-nologin"))
            .body(Body::File("avatar", Img::Garbage))
            .json(401, "AUTHENTICATION_ERROR", "you are not logged in"),
        row("post undecodable", POST, "/user/avatar")
            .body(Body::File("avatar", Img::Garbage))
            .json(
                500,
                "INTERNAL_SERVER_ERROR",
                "failed to decode image: image: unknown format",
            ),
        row("post success", POST, "/user/avatar")
            .body(Body::File("avatar", Img::Png))
            .json(200, "SUCCESS", "Success change avatar")
            .results(Absent),
        row("post body over 100 MB", POST, "/user/avatar")
            .body(Body::ClaimLength(100_000_001))
            .text(413, "Request Entity Too Large"),
        // ---- section 4: device selection and /devices
        row(
            "several devices, no id",
            GET,
            "/user/avatar?phone=6281000000001",
        )
        .dev(None)
        .json(400, "DEVICE_ID_REQUIRED", REQUIRED_MSG)
        .results(Absent),
        row("unknown id", GET, "/user/avatar?phone=6281000000001")
            .dev(Some("nope"))
            .json(404, "DEVICE_NOT_FOUND", NOT_FOUND_MSG)
            .results(Eq(r#"{"device_id":"nope"}"#)),
        row(
            "unknown id with one device",
            GET,
            "/user/avatar?phone=6281000000001",
        )
        .srv(Srv::Single)
        .dev(Some("nope"))
        .json(404, "DEVICE_NOT_FOUND", NOT_FOUND_MSG),
        row(
            "one device is the default",
            GET,
            "/user/avatar?phone=6281000000001",
        )
        .srv(Srv::Single)
        .dev(None),
        row("no devices", GET, "/user/avatar?phone=6281000000001")
            .srv(Srv::Empty)
            .dev(None)
            .json(400, "DEVICE_ID_REQUIRED", REQUIRED_MSG),
        row("device errors before validation", POST, "/user/avatar")
            .dev(None)
            .json(400, "DEVICE_ID_REQUIRED", REQUIRED_MSG),
        row("select by AD JID", GET, "/user/avatar?phone=6281000000001")
            .dev(Some("6281234500001:1@s.whatsapp.net")),
        row(
            "select by bare JID",
            GET,
            "/user/avatar?phone=6281000000001",
        )
        .dev(Some("6281234500001@s.whatsapp.net")),
        row(
            "select by query",
            GET,
            "/user/avatar?phone=6281000000001&device_id=dev1",
        )
        .dev(None),
        row(
            "header is URL-decoded",
            GET,
            "/user/avatar?phone=6281000000001",
        )
        .dev(Some("my+dev")),
        row(
            "header is URL-decoded (%20)",
            GET,
            "/user/avatar?phone=6281000000001",
        )
        .dev(Some("my%20dev")),
        row(
            "header wins over query",
            GET,
            "/user/avatar?phone=6281000000001&device_id=nope",
        ),
        row("GET /devices", GET, "/devices").json(200, "SUCCESS", "List devices"),
        row("GET /devices empty", GET, "/devices")
            .srv(Srv::Empty)
            .json(200, "SUCCESS", "List devices")
            .results(Absent),
        row("POST /devices no body", POST, "/devices").json(
            400,
            "BAD_REQUEST",
            "Invalid request body",
        ),
        row("POST /devices", POST, "/devices")
            .body(Body::Raw("application/json", br#"{"device_id":"added"}"#))
            .json(200, "SUCCESS", "Device added")
            .results(Field("id", "added")),
        row("POST /devices duplicate", POST, "/devices")
            .body(Body::Raw("application/json", br#"{"device_id":"dev1"}"#))
            .json(500, "INTERNAL_SERVER_ERROR", "device dev1 already exists"),
        row("status", GET, "/devices/dev1/status")
            .json(200, "SUCCESS", "Device status")
            .results(Eq(
                r#"{"device_id":"dev1","is_connected":true,"is_logged_in":true}"#,
            )),
        row("status unknown", GET, "/devices/zzz/status").json(
            500,
            "INTERNAL_SERVER_ERROR",
            "device zzz not found",
        ),
        row("delete unknown is idempotent", DELETE, "/devices/zzz").json(
            200,
            "SUCCESS",
            "Device removed",
        ),
        // ---- section 5: Basic auth
        row("no credentials", GET, "/user/avatar?phone=6281000000001")
            .auth(Auth::None)
            .text(401, "Unauthorized"),
        row("auth before device selection", GET, "/user/avatar")
            .dev(None)
            .auth(Auth::None)
            .text(401, "Unauthorized"),
        row("wrong password", GET, "/user/avatar?phone=6281000000001")
            .auth(Auth::Header("Basic dXNlcm5hbWU6d3Jvbmc="))
            .text(401, "Unauthorized"),
        row("unknown user", GET, "/user/avatar?phone=6281000000001")
            .auth(Auth::Header("Basic bm9ib2R5OnBhc3N3b3Jk"))
            .text(401, "Unauthorized"),
        row("not basic", GET, "/user/avatar?phone=6281000000001")
            .auth(Auth::Header("Bearer abc"))
            .text(401, "Unauthorized"),
        row("second pair", GET, "/user/avatar?phone=6281000000001").auth(Auth::Other),
        row(
            "scheme is case-insensitive",
            GET,
            "/user/avatar?phone=6281000000001",
        )
        .auth(Auth::Header("basic dXNlcm5hbWU6cGFzc3dvcmQ=")),
        row("bad base64", GET, "/user/avatar?phone=6281000000001")
            .auth(Auth::Header("Basic !!!"))
            .text(400, "Bad Request"),
        row("no colon", GET, "/user/avatar?phone=6281000000001")
            .auth(Auth::Header("Basic dXNlcm5hbWU="))
            .text(400, "Bad Request"),
        row("stray whitespace", GET, "/user/avatar?phone=6281000000001")
            .auth(Auth::Header("Basic  dXNlcm5hbWU6cGFzc3dvcmQ="))
            .text(400, "Bad Request"),
        row("header too long", GET, "/user/avatar?phone=6281000000001")
            .auth(Auth::Long)
            .text(431, "Request Header Fields Too Large"),
        row("health skips auth", GET, "/health")
            .auth(Auth::None)
            .dev(None)
            .json(200, "", ""),
        row("control API needs auth", GET, "/_mock/faults")
            .auth(Auth::None)
            .text(401, "Unauthorized"),
        row("devices need auth", GET, "/devices")
            .auth(Auth::None)
            .text(401, "Unauthorized"),
        row(
            "no auth configured",
            GET,
            "/user/avatar?phone=6281000000001",
        )
        .srv(Srv::Open)
        .auth(Auth::None)
        .dev(None),
    ]
}

async fn setup_multi(s: &MockServer) {
    for (id, state) in [
        ("dev-disc", "disconnected"),
        ("dev-nologin", "not_logged_in"),
        ("dev-noclient", "no_client"),
        ("my dev", "logged_in"),
    ] {
        let path = format!("/_mock/devices/{}", id.replace(' ', "%20"));
        control(s, Method::PUT, &path, Some(json!({ "state": state }))).await;
    }
    common_contacts(s).await;
}

async fn common_contacts(s: &MockServer) {
    for (jid, body) in [
        (
            "6281000000001",
            json!({"picture": "set", "id": "1635239861"}),
        ),
        ("6281000000002", json!({"picture": "none"})),
        ("6281000000003", json!({"picture": "hidden"})),
        ("6281000000004", json!({"picture": "not_on_whatsapp"})),
        (
            "1203630000000001@g.us",
            json!({"picture": "set", "id": "1700000001"}),
        ),
        (
            "120363000000099@g.us",
            json!({"picture": "not_on_whatsapp"}),
        ),
        ("99887766@lid", json!({"picture": "not_on_whatsapp"})),
        (
            "120363111@newsletter",
            json!({"picture": "set", "id": "1700000002"}),
        ),
    ] {
        control(
            s,
            Method::PUT,
            &format!("/_mock/contacts/{jid}"),
            Some(body),
        )
        .await;
    }
}

async fn common_contacts_open(s: &MockServer) {
    let resp = client()
        .put(format!("{}/_mock/contacts/6281000000001", s.base_url()))
        .json(&json!({"picture": "set", "id": "1635239861"}))
        .send()
        .await
        .expect("put contact");
    assert_eq!(resp.status(), 200);
}

/// Sends headers only, with a Content-Length the server must refuse.
async fn raw_claim(s: &MockServer, path: &str, len: u64, auth: &str) -> (u16, String, String) {
    let mut sock = tokio::net::TcpStream::connect(s.addr())
        .await
        .expect("connect");
    let req = format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\nX-Device-Id: dev1\r\nContent-Type: multipart/form-data; boundary=b\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n"
    );
    sock.write_all(req.as_bytes()).await.expect("write");
    let mut buf = Vec::new();
    let _ = sock.read_to_end(&mut buf).await;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let ctype = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-type: ")
                .map(str::to_string)
        })
        .unwrap_or_default();
    (status, ctype, body.to_string())
}

fn results_match(expected: &str, actual: &Value) -> bool {
    let Ok(exp) = serde_json::from_str::<Value>(expected) else {
        return false;
    };
    match (exp, actual) {
        (Value::Object(e), Value::Object(a)) => {
            e.len() == a.len() && e.iter().all(|(k, v)| v == "*" || a.get(k) == Some(v))
        }
        (e, a) => &e == a,
    }
}

#[tokio::test]
async fn gateway_behaviour_table() {
    let multi = start(&["dev1"], true).await;
    setup_multi(&multi).await;
    let single = start(&["dev1"], true).await;
    common_contacts(&single).await;
    let empty = start(&[], true).await;
    let open = start(&["dev1"], false).await;
    common_contacts_open(&open).await;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let png = png(40, 30);
    let client = client();
    let mut failures = Vec::new();

    for r in rows() {
        let server = match r.srv {
            Srv::Multi => &multi,
            Srv::Single => &single,
            Srv::Empty => &empty,
            Srv::Open => &open,
        };
        if let Some(f) = r.faults {
            let v: Value = serde_json::from_str(f).expect("faults json");
            control(server, Method::PUT, "/_mock/faults", Some(v)).await;
        }
        let auth_value = match r.auth {
            Auth::Good => Some(format!("Basic {}", b64("username:password"))),
            Auth::Other => Some(format!("Basic {}", b64("other:secret"))),
            Auth::None => None,
            Auth::Header(h) => Some(h.to_string()),
            Auth::Long => Some(format!("Basic {}", "A".repeat(9000))),
        };
        let (status, ctype, body) = if let Body::ClaimLength(len) = r.body {
            raw_claim(server, r.path, len, auth_value.as_deref().unwrap_or("")).await
        } else {
            let method = Method::from_bytes(r.method.as_bytes()).expect("method");
            let mut rb = client.request(method, format!("{}{}", server.base_url(), r.path));
            if let Some(a) = &auth_value {
                rb = rb.header("Authorization", a);
            }
            if let Some(d) = r.device {
                rb = rb.header("X-Device-Id", d);
            }
            rb = match r.body {
                Body::None | Body::ClaimLength(_) => rb,
                Body::Raw(ct, bytes) => {
                    let rb = rb.body(bytes.to_vec());
                    if ct.is_empty() {
                        rb
                    } else {
                        rb.header("Content-Type", ct)
                    }
                }
                Body::File(field, img) => {
                    let bytes = match img {
                        Img::Png => png.clone(),
                        Img::Garbage => b"definitely not an image".to_vec(),
                    };
                    let part = reqwest::multipart::Part::bytes(bytes).file_name("image.jpg");
                    rb.multipart(reqwest::multipart::Form::new().part(field, part))
                }
            };
            let resp = rb.send().await.expect("request");
            let status = resp.status().as_u16();
            let ctype = resp
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string();
            if status == 401 && r.code.is_none() {
                let h = resp.headers();
                let ok = h.get("www-authenticate").map(|v| v.as_bytes())
                    == Some(b"Basic realm=\"Restricted\", charset=\"UTF-8\"".as_slice())
                    && h.get("cache-control").map(|v| v.as_bytes()) == Some(b"no-store".as_slice())
                    && h.get("vary").map(|v| v.as_bytes()) == Some(b"Authorization".as_slice());
                if !ok {
                    failures.push(format!("{}: 401 without the three auth headers", r.name));
                }
            }
            (status, ctype, resp.text().await.expect("body"))
        };
        if r.faults.is_some() {
            control(server, Method::PUT, "/_mock/faults", Some(json!({}))).await;
        }

        let mut problems = Vec::new();
        if status != r.status {
            problems.push(format!("status {status} != {}", r.status));
        }
        if ctype != r.ctype {
            problems.push(format!("content-type {ctype:?} != {:?}", r.ctype));
        }
        match r.code {
            None => {
                if body != r.message {
                    problems.push(format!("body {body:?} != {:?}", r.message));
                }
            }
            Some(_) if r.path == "/health" => {}
            Some(code) => match serde_json::from_str::<Value>(&body) {
                Err(e) => problems.push(format!("not JSON ({e}): {body}")),
                Ok(v) => {
                    let keys: Vec<&str> = v
                        .as_object()
                        .map(|o| o.keys().map(String::as_str).collect())
                        .unwrap_or_default();
                    let order_ok =
                        keys == ["code", "message"] || keys == ["code", "message", "results"];
                    if !order_ok {
                        problems.push(format!("keys {keys:?}"));
                    }
                    if str_at(&v, "/code") != code {
                        problems.push(format!("code {:?} != {code:?}", v["code"]));
                    }
                    if str_at(&v, "/message") != r.message {
                        problems.push(format!("message {:?} != {:?}", v["message"], r.message));
                    }
                    let results = v.get("results");
                    let ok = match r.results {
                        Results::Any => true,
                        Results::Absent => results.is_none(),
                        Results::Eq(e) => results.is_some_and(|a| results_match(e, a)),
                        Results::Field(k, want) => {
                            results.and_then(|a| a.get(k)).and_then(Value::as_str) == Some(want)
                        }
                    };
                    if !ok {
                        problems.push(format!("results {results:?}"));
                    }
                    if str_at(&v, "/code") == "SUCCESS"
                        && r.path.starts_with("/user/avatar?")
                        && !body.contains("\\u0026oh=")
                    {
                        problems.push("URL not escaped like encoding/json".into());
                    }
                }
            },
        }
        if !problems.is_empty() {
            failures.push(format!(
                "{} [{} {}]: {} — body {body}",
                r.name,
                r.method,
                r.path,
                problems.join("; ")
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} rows failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    for s in [multi, single, empty, open] {
        s.shutdown().await;
    }
}
