//! One table: each row is a behaviour of GOWA v9.2.0 (commit 51f7b199), named with the source
//! file and function it comes from (paths under GOWA's `src/` unless a library is named), sent
//! as a real HTTP request over TCP and checked for status, `code`, `message`, content type,
//! `results` and headers. Rows tagged `[audit N]` are the rows of
//! `shared/reference/gowa-source-audit.md`'s table of differences.

mod common;

use std::time::Instant;

use base64::Engine;
use common::*;
use mock_server::{Config, MockServer};
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
    /// auth on; only dev1; `WHATSAPP_ACCOUNT_VALIDATION=false`
    NoValidation,
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
    Null,
    /// Same keys, same values (`"*"` matches anything).
    Eq(&'static str),
    /// A string at a JSON pointer inside `results`.
    At(&'static str, &'static str),
    /// Exactly these keys, in this order.
    Keys(&'static [&'static str]),
}

const JSON: &str = "application/json; charset=utf-8";
const TEXT: &str = "text/plain; charset=utf-8";
/// Any (or no) content type.
const ANY: &str = "*";

struct Row {
    name: &'static str,
    /// GOWA source file and function (or the library's) the row follows.
    gowa: &'static str,
    srv: Srv,
    method: &'static str,
    path: &'static str,
    device: Option<&'static str>,
    auth: Auth,
    headers: &'static [(&'static str, &'static str)],
    body: Body,
    faults: Option<&'static str>,
    status: u16,
    /// `code` for JSON answers; `None` for text/plain.
    code: Option<&'static str>,
    /// `message` for JSON answers, the whole body for text/plain.
    message: &'static str,
    /// Other acceptable messages (GOWA picks one at random).
    alternatives: &'static [&'static str],
    ctype: &'static str,
    results: Results,
    /// Response headers: `Some(value)` must be present with that value, `None` absent.
    expect: &'static [(&'static str, Option<&'static str>)],
    /// The answer must take at least this long.
    min_ms: u128,
}

const fn row(name: &'static str, method: &'static str, path: &'static str) -> Row {
    Row {
        name,
        gowa: "",
        srv: Srv::Multi,
        method,
        path,
        device: Some("dev1"),
        auth: Auth::Good,
        headers: &[],
        body: Body::None,
        faults: None,
        status: 200,
        code: Some("SUCCESS"),
        message: "Success get avatar",
        alternatives: &[],
        ctype: JSON,
        results: Results::Any,
        expect: &[],
        min_ms: 0,
    }
}

impl Row {
    const fn gowa(mut self, source: &'static str) -> Self {
        self.gowa = source;
        self
    }
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
    const fn headers(mut self, h: &'static [(&'static str, &'static str)]) -> Self {
        self.headers = h;
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
    const fn ctype(mut self, c: &'static str) -> Self {
        self.ctype = c;
        self
    }
    const fn or(mut self, alternatives: &'static [&'static str]) -> Self {
        self.alternatives = alternatives;
        self
    }
    const fn results(mut self, r: Results) -> Self {
        self.results = r;
        self
    }
    const fn expect(mut self, e: &'static [(&'static str, Option<&'static str>)]) -> Self {
        self.expect = e;
        self
    }
    const fn min_ms(mut self, ms: u128) -> Self {
        self.min_ms = ms;
        self
    }
}

const GET: &str = "GET";
const POST: &str = "POST";
const PUT: &str = "PUT";
const DELETE: &str = "DELETE";
const OPTIONS: &str = "OPTIONS";
const NOT_CONNECTED: &str = "you are not connect to services server, please reconnect";
const NOT_FOUND_MSG: &str =
    "device not found; create a device first from /api/devices or provide a valid X-Device-Id";
const REQUIRED_MSG: &str = "device_id is required via X-Device-Id header or device_id query";
const NO_PICTURE: &str = "that user or group does not have a profile picture";
const HIDDEN: &str = "the user has hidden their profile picture from you";
const RATE: &str = "info query returned status 429: rate-overlimit";
const NO_MULTIPART: &str = "request Content-Type has bad boundary or is not multipart/form-data";
const SET_NOT_ON_WA: &str = "Phone 6281000000001@s.whatsapp.net is not on whatsapp";

// GOWA sources, as named in the rows.
const AVATAR: &str = "usecase/user.go serviceUser.Avatar";
const HANDLER_GET: &str = "ui/rest/user.go UserAvatar";
const HANDLER_POST: &str = "ui/rest/user.go UserChangeAvatar";
const CHANGE_AVATAR: &str = "usecase/user.go serviceUser.ChangeAvatar";
const SANITIZE: &str = "pkg/utils/whatsapp.go SanitizePhone";
const PARSE_JID: &str = "pkg/utils/whatsapp.go ParseJID + whatsmeow types/jid.go ParseJID";
const VALIDATE_JID: &str = "pkg/utils/whatsapp.go ValidateJidWithLogin";
const IS_ON_WA: &str = "pkg/utils/whatsapp.go IsOnWhatsapp";
const MUST_LOGIN: &str = "pkg/utils/whatsapp.go MustLogin";
const PICTURE: &str = "whatsmeow user.go GetProfilePictureInfo";
const SCHEMA_BOOL: &str = "gofiber/schema converter.go convertBool";
const SCHEMA_DECODE: &str = "gofiber/schema decoder.go Decode + cache.go structInfo.get";
const BIND_ERROR: &str = "fiber bind.go BindError.Error + gofiber/schema decoder.go MultiError";
const BIND_BODY: &str = "fiber bind.go Bind.Body";
const BIND_FORM: &str =
    "fiber binder/form.go bindMultipart + fasthttp http.go MultipartFormWithLimit";
const FORM_FILE: &str = "fasthttp server.go RequestCtx.FormFile";
const DEVICE_MW: &str = "ui/rest/middleware/device.go DeviceMiddleware";
const RESOLVE: &str = "infrastructure/whatsapp/device_manager.go ResolveDevice";
const BASIC_AUTH: &str = "fiber middleware/basicauth/basicauth.go New";
const REST: &str = "cmd/rest.go restServer";
const ROUTER: &str = "fiber router.go App.next + app.go DefaultErrorHandler";
const CORS: &str = "cmd/rest.go newCORSMiddleware + fiber middleware/cors/cors.go New";
const DEVICE_REST: &str = "ui/rest/device.go";
const DEVICE_USECASE: &str = "usecase/device.go convertInstance";
const REQUEST_TIMEOUT: &str = "ui/rest/middleware/timeout.go RequestTimeout + recovery.go Recovery";

fn rows() -> Vec<Row> {
    use Results::*;
    vec![
        // ---- GET /user/avatar
        row("success image", GET, "/user/avatar?phone=6281000000001")
            .gowa(AVATAR)
            .results(Eq(r#"{"url":"*","id":"1635239861","type":"image"}"#)),
        row(
            "success preview",
            GET,
            "/user/avatar?phone=6281000000001&is_preview=true",
        )
        .gowa(AVATAR)
        .results(At("/type", "preview")),
        row(
            "bool on",
            GET,
            "/user/avatar?phone=6281000000001&is_preview=on",
        )
        .gowa(SCHEMA_BOOL)
        .results(At("/type", "preview")),
        row(
            "bool T",
            GET,
            "/user/avatar?phone=6281000000001&is_preview=T",
        )
        .gowa(SCHEMA_BOOL)
        .results(At("/type", "preview")),
        row(
            "bool empty is false",
            GET,
            "/user/avatar?phone=6281000000001&is_preview=",
        )
        .gowa("gofiber/schema decoder.go decode (ZeroEmpty)")
        .results(At("/type", "image")),
        row(
            "bool 0",
            GET,
            "/user/avatar?phone=6281000000001&is_preview=0",
        )
        .gowa(SCHEMA_BOOL)
        .results(At("/type", "image")),
        row(
            "[audit 9] bool off is a bind error",
            GET,
            "/user/avatar?phone=6281000000001&is_preview=off",
        )
        .gowa(SCHEMA_BOOL)
        .json(
            500,
            "INTERNAL_SERVER_ERROR",
            "bind \"is_preview\" from query: schema: error converting value for \"is_preview\"",
        ),
        row(
            "[audit 10] keys are case-insensitive",
            GET,
            "/user/avatar?Phone=6281000000001&IS_PREVIEW=true",
        )
        .gowa(SCHEMA_DECODE)
        .results(At("/type", "preview")),
        row(
            "[audit 10] the key as sent names a bind error",
            GET,
            "/user/avatar?phone=6281000000001&IS_PREVIEW=yes",
        )
        .gowa(SCHEMA_DECODE)
        .json(
            500,
            "INTERNAL_SERVER_ERROR",
            "bind \"IS_PREVIEW\" from query: schema: error converting value for \"IS_PREVIEW\"",
        ),
        row(
            "[audit 11] two bad booleans",
            GET,
            "/user/avatar?phone=6281000000001&is_preview=x&is_community=y",
        )
        .gowa(BIND_ERROR)
        .json(
            500,
            "INTERNAL_SERVER_ERROR",
            "bind \"is_preview\" from query: schema: error converting value for \"is_preview\" (and 1 other error)",
        )
        .or(&[
            "bind \"is_preview\" from query: schema: error converting value for \"is_community\" (and 1 other error)",
            "bind \"is_community\" from query: schema: error converting value for \"is_preview\" (and 1 other error)",
            "bind \"is_community\" from query: schema: error converting value for \"is_community\" (and 1 other error)",
        ]),
        row(
            "full JID",
            GET,
            "/user/avatar?phone=6281000000001%40s.whatsapp.net",
        )
        .gowa(SANITIZE)
        .results(At("/id", "1635239861")),
        row("leading plus", GET, "/user/avatar?phone=%2B6281000000001")
            .gowa(PARSE_JID)
            .results(At("/id", "1635239861")),
        row(
            "[audit 2] raw + in the query is a space",
            GET,
            "/user/avatar?phone=+6281000000001",
        )
        .gowa(IS_ON_WA)
        .json(
            400,
            "INVALID_JID",
            "Phone  6281000000001@s.whatsapp.net is not on whatsapp",
        ),
        row(
            "[audit 3] a device suffix is looked up as sent",
            GET,
            "/user/avatar?phone=6281000000001%3A12%40s.whatsapp.net",
        )
        .gowa(IS_ON_WA)
        .json(
            400,
            "INVALID_JID",
            "Phone 6281000000001:12@s.whatsapp.net is not on whatsapp",
        ),
        row(
            "[audit 3] without validation the suffix reaches the picture query",
            GET,
            "/user/avatar?phone=6281000000001%3A12%40s.whatsapp.net",
        )
        .gowa(VALIDATE_JID)
        .srv(Srv::NoValidation)
        .results(At("/id", "1635239861")),
        row(
            "is_community ignored for users",
            GET,
            "/user/avatar?phone=6281000000001&is_community=true",
        )
        .gowa(AVATAR)
        .results(At("/id", "1635239861")),
        row(
            "unknown keys ignored",
            GET,
            "/user/avatar?phone=6281000000001&foo=bar",
        )
        .gowa("fiber binder/mapping.go decoderBuilder (IgnoreUnknownKeys)")
        .results(At("/id", "1635239861")),
        row(
            "last value wins",
            GET,
            "/user/avatar?phone=6281000000003&phone=6281000000001",
        )
        .gowa("gofiber/schema decoder.go decode")
        .results(At("/id", "1635239861")),
        row(
            "bad bool",
            GET,
            "/user/avatar?phone=6281000000001&is_preview=yes",
        )
        .gowa(BIND_ERROR)
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
        .gowa(BIND_ERROR)
        .json(
            500,
            "INTERNAL_SERVER_ERROR",
            "bind \"is_community\" from query: schema: error converting value for \"is_community\"",
        ),
        row("blank phone", GET, "/user/avatar?phone=")
            .gowa("validations/user_validation.go ValidateUserAvatar")
            .json(400, "VALIDATION_ERROR", "phone: cannot be blank.")
            .results(Absent),
        row("missing phone", GET, "/user/avatar")
            .gowa("validations/user_validation.go ValidateUserAvatar")
            .json(400, "VALIDATION_ERROR", "phone: cannot be blank."),
        row("client check before validation", GET, "/user/avatar")
            .gowa(AVATAR)
            .dev(Some("dev-noclient"))
            .json(
                500,
                "INVALID_WA_CLI",
                "your WhatsApp CLI is invalid or empty",
            ),
        row("disconnected", GET, "/user/avatar?phone=6281000000001")
            .gowa(MUST_LOGIN)
            .dev(Some("dev-disc"))
            .json(401, "AUTHENTICATION_ERROR", NOT_CONNECTED),
        row("not logged in", GET, "/user/avatar?phone=6281000000001")
            .gowa(MUST_LOGIN)
            .dev(Some("dev-nologin"))
            .json(401, "AUTHENTICATION_ERROR", "you are not logged in"),
        row("validation before login", GET, "/user/avatar?phone=")
            .gowa(AVATAR)
            .dev(Some("dev-disc"))
            .json(400, "VALIDATION_ERROR", "phone: cannot be blank."),
        row("not on whatsapp", GET, "/user/avatar?phone=6281000000004")
            .gowa(VALIDATE_JID)
            .json(
                400,
                "INVALID_JID",
                "Phone 6281000000004@s.whatsapp.net is not on whatsapp",
            ),
        row(
            "not on whatsapp shows sanitised",
            GET,
            "/user/avatar?phone=%2B6281000000004",
        )
        .gowa(VALIDATE_JID)
        .json(
            400,
            "INVALID_JID",
            "Phone +6281000000004@s.whatsapp.net is not on whatsapp",
        ),
        row("no picture", GET, "/user/avatar?phone=6281000000002")
            .gowa(PICTURE)
            .json(500, "INTERNAL_SERVER_ERROR", NO_PICTURE),
        row("hidden", GET, "/user/avatar?phone=6281000000003")
            .gowa(PICTURE)
            .json(500, "INTERNAL_SERVER_ERROR", HIDDEN),
        row(
            "16 chars become a group",
            GET,
            "/user/avatar?phone=1203630000000001",
        )
        .gowa(SANITIZE)
        .results(At("/id", "1700000001")),
        row(
            "groups skip the on-whatsapp check",
            GET,
            "/user/avatar?phone=120363000000099%40g.us",
        )
        .gowa(IS_ON_WA)
        .json(500, "INTERNAL_SERVER_ERROR", NO_PICTURE),
        row(
            "LIDs skip the on-whatsapp check",
            GET,
            "/user/avatar?phone=99887766%40lid",
        )
        .gowa(VALIDATE_JID)
        .json(500, "INTERNAL_SERVER_ERROR", NO_PICTURE),
        row(
            "newsletters pass through",
            GET,
            "/user/avatar?phone=120363111%40newsletter",
        )
        .gowa(IS_ON_WA)
        .results(At("/id", "1700000002")),
        row("empty user", GET, "/user/avatar?phone=%40s.whatsapp.net")
            .gowa(PARSE_JID)
            .json(
                500,
                "INTERNAL_SERVER_ERROR",
                "invalid JID @s.whatsapp.net: no server specified",
            ),
        row(
            "too many dots",
            GET,
            "/user/avatar?phone=x.y.z%40s.whatsapp.net",
        )
        .gowa(PARSE_JID)
        .json(
            500,
            "INTERNAL_SERVER_ERROR",
            "invalid JID x.y.z@s.whatsapp.net: unexpected number of dots in JID",
        ),
        row(
            "a bad agent is a device error",
            GET,
            "/user/avatar?phone=62.x%40s.whatsapp.net",
        )
        .gowa(PARSE_JID)
        .json(
            500,
            "INTERNAL_SERVER_ERROR",
            "invalid JID 62.x@s.whatsapp.net: failed to parse device from JID: strconv.Atoi: parsing \"x\": invalid syntax",
        ),
        row("timeout", GET, "/user/avatar?phone=6281000000001")
            .gowa(AVATAR)
            .faults(r#"{"timeout":1,"timeout_ms":20}"#)
            .json(408, "CONTEXT_ERROR", "Error timeout get avatar!")
            .min_ms(20),
        // ---- [audit 1] the on-WhatsApp lookup
        row(
            "[audit 1] a failed lookup is 'not on whatsapp'",
            GET,
            "/user/avatar?phone=6281000000001",
        )
        .gowa(IS_ON_WA)
        .faults(r#"{"lookup_error":1}"#)
        .json(400, "INVALID_JID", SET_NOT_ON_WA),
        row(
            "[audit 1] a throttled lookup is 'not on whatsapp'",
            GET,
            "/user/avatar?phone=6281000000001",
        )
        .gowa(IS_ON_WA)
        .faults(r#"{"rate_overlimit":1}"#)
        .json(400, "INVALID_JID", SET_NOT_ON_WA),
        row(
            "[audit 1] groups are not looked up: throttled picture query",
            GET,
            "/user/avatar?phone=1203630000000001",
        )
        .gowa(PICTURE)
        .faults(r#"{"rate_overlimit":1}"#)
        .json(500, "INTERNAL_SERVER_ERROR", RATE),
        row(
            "[audit 1] groups are not looked up: no lookup error",
            GET,
            "/user/avatar?phone=1203630000000001",
        )
        .gowa(IS_ON_WA)
        .faults(r#"{"lookup_error":1}"#)
        .results(At("/id", "1700000001")),
        row(
            "[audit 1] LIDs are not looked up",
            GET,
            "/user/avatar?phone=99887766%40lid",
        )
        .gowa(VALIDATE_JID)
        .faults(r#"{"lookup_error":1}"#)
        .json(500, "INTERNAL_SERVER_ERROR", NO_PICTURE),
        row(
            "[audit 1] without validation no lookup fails",
            GET,
            "/user/avatar?phone=6281000000001",
        )
        .gowa(VALIDATE_JID)
        .srv(Srv::NoValidation)
        .faults(r#"{"lookup_error":1}"#)
        .results(At("/id", "1635239861")),
        row(
            "[audit 1] without validation throttling hits the picture query",
            GET,
            "/user/avatar?phone=6281000000001",
        )
        .gowa(PICTURE)
        .srv(Srv::NoValidation)
        .faults(r#"{"rate_overlimit":1}"#)
        .json(500, "INTERNAL_SERVER_ERROR", RATE),
        row(
            "without validation an unregistered number has no picture",
            GET,
            "/user/avatar?phone=6281000000004",
        )
        .gowa(PICTURE)
        .srv(Srv::NoValidation)
        .json(500, "INTERNAL_SERVER_ERROR", NO_PICTURE),
        row(
            "without validation letters have no picture",
            GET,
            "/user/avatar?phone=letters",
        )
        .gowa(PICTURE)
        .srv(Srv::NoValidation)
        .json(500, "INTERNAL_SERVER_ERROR", NO_PICTURE),
        // ---- [audit 18] is_community
        row(
            "[audit 18] a community query that times out is not retried",
            GET,
            "/user/avatar?phone=1203630000000001&is_community=true",
        )
        .gowa(AVATAR)
        .faults(r#"{"timeout":1,"timeout_ms":20}"#)
        .json(408, "CONTEXT_ERROR", "Error timeout get avatar!")
        .min_ms(20),
        row(
            "[audit 18] a community query fails twice",
            GET,
            "/user/avatar?phone=1203630000000001&is_community=true",
        )
        .gowa(AVATAR)
        .faults(r#"{"rate_overlimit":1}"#)
        .json(500, "INTERNAL_SERVER_ERROR", RATE),
        // ---- POST /user/avatar
        row("post without content type", POST, "/user/avatar")
            .gowa(BIND_BODY)
            .body(Body::Raw("", b"abc"))
            .json(500, "INTERNAL_SERVER_ERROR", "Unprocessable Entity"),
        row("post image/jpeg body", POST, "/user/avatar")
            .gowa(BIND_BODY)
            .body(Body::Raw("image/jpeg", b"\xff\xd8abc"))
            .json(500, "INTERNAL_SERVER_ERROR", "Unprocessable Entity"),
        row("[audit 7] post urlencoded", POST, "/user/avatar")
            .gowa(FORM_FILE)
            .body(Body::Raw("application/x-www-form-urlencoded", b"avatar=x"))
            .json(500, "INTERNAL_SERVER_ERROR", NO_MULTIPART),
        row("[audit 7] post a JSON object", POST, "/user/avatar")
            .gowa(FORM_FILE)
            .body(Body::Raw("application/json", b"{}"))
            .json(500, "INTERNAL_SERVER_ERROR", NO_MULTIPART),
        row("[audit 7] post empty JSON", POST, "/user/avatar")
            .gowa(BIND_BODY)
            .body(Body::Raw("application/json", b""))
            .json(
                500,
                "INTERNAL_SERVER_ERROR",
                "bind from body: unexpected end of JSON input",
            ),
        row("[audit 7] post multipart without boundary", POST, "/user/avatar")
            .gowa(BIND_FORM)
            .body(Body::Raw("multipart/form-data", b"x"))
            .json(
                500,
                "INTERNAL_SERVER_ERROR",
                "bind from body: request Content-Type has bad boundary or is not multipart/form-data",
            ),
        row("post multipart, empty body", POST, "/user/avatar")
            .gowa("fasthttp http.go readMultipartForm")
            .body(Body::Raw("multipart/form-data; boundary=b", b""))
            .json(
                500,
                "INTERNAL_SERVER_ERROR",
                "bind from body: form size must be greater than 0. Given 0",
            ),
        row("post multipart, not multipart", POST, "/user/avatar")
            .gowa("fasthttp http.go readMultipartForm + Go mime/multipart NextPart")
            .body(Body::Raw("multipart/form-data; boundary=b", b"garbage"))
            .json(
                500,
                "INTERNAL_SERVER_ERROR",
                "bind from body: cannot read multipart/form-data body: multipart: NextPart: EOF",
            ),
        row("post without avatar field", POST, "/user/avatar")
            .gowa(FORM_FILE)
            .body(Body::File("photo", Img::Png))
            .json(
                500,
                "INTERNAL_SERVER_ERROR",
                "there is no uploaded file associated with the given key",
            ),
        row("missing file before client check", POST, "/user/avatar")
            .gowa(HANDLER_POST)
            .dev(Some("dev-noclient"))
            .body(Body::File("photo", Img::Png))
            .json(
                500,
                "INTERNAL_SERVER_ERROR",
                "there is no uploaded file associated with the given key",
            ),
        row("post no client", POST, "/user/avatar")
            .gowa(CHANGE_AVATAR)
            .dev(Some("dev-noclient"))
            .body(Body::File("avatar", Img::Png))
            .json(
                500,
                "INVALID_WA_CLI",
                "your WhatsApp CLI is invalid or empty",
            ),
        row("post disconnected", POST, "/user/avatar")
            .gowa(MUST_LOGIN)
            .dev(Some("dev-disc"))
            .body(Body::File("avatar", Img::Png))
            .json(401, "AUTHENTICATION_ERROR", NOT_CONNECTED),
        row("post not logged in", POST, "/user/avatar")
            .gowa(MUST_LOGIN)
            .dev(Some("dev-nologin"))
            .body(Body::File("avatar", Img::Garbage))
            .json(401, "AUTHENTICATION_ERROR", "you are not logged in"),
        row("post undecodable", POST, "/user/avatar")
            .gowa(CHANGE_AVATAR)
            .body(Body::File("avatar", Img::Garbage))
            .json(
                500,
                "INTERNAL_SERVER_ERROR",
                "failed to decode image: image: unknown format",
            ),
        row("post success", POST, "/user/avatar")
            .gowa(HANDLER_POST)
            .body(Body::File("avatar", Img::Png))
            .json(200, "SUCCESS", "Success change avatar")
            .results(Absent),
        row("post throttled", POST, "/user/avatar")
            .gowa("whatsmeow group.go SetGroupPhoto")
            .body(Body::File("avatar", Img::Png))
            .faults(r#"{"rate_overlimit":1}"#)
            .json(500, "INTERNAL_SERVER_ERROR", RATE),
        row(
            "[audit 8] post timeout waits for the request deadline",
            POST,
            "/user/avatar",
        )
        .gowa(REQUEST_TIMEOUT)
        .body(Body::File("avatar", Img::Png))
        .faults(r#"{"timeout":1,"timeout_ms":1,"upload_timeout_ms":300}"#)
        .json(
            504,
            "GATEWAY_TIMEOUT",
            "Request timed out waiting for WhatsApp server response",
        )
        .min_ms(300),
        row("post body over 100 MB", POST, "/user/avatar")
            .gowa("cmd/rest.go restServer (BodyLimit)")
            .body(Body::ClaimLength(100_000_001))
            .text(413, "Request Entity Too Large"),
        // ---- device selection
        row(
            "several devices, no id",
            GET,
            "/user/avatar?phone=6281000000001",
        )
        .gowa(DEVICE_MW)
        .dev(None)
        .json(400, "DEVICE_ID_REQUIRED", REQUIRED_MSG)
        .results(Absent),
        row("unknown id", GET, "/user/avatar?phone=6281000000001")
            .gowa(DEVICE_MW)
            .dev(Some("nope"))
            .json(404, "DEVICE_NOT_FOUND", NOT_FOUND_MSG)
            .results(Eq(r#"{"device_id":"nope"}"#)),
        row(
            "unknown id with one device",
            GET,
            "/user/avatar?phone=6281000000001",
        )
        .gowa(RESOLVE)
        .srv(Srv::Single)
        .dev(Some("nope"))
        .json(404, "DEVICE_NOT_FOUND", NOT_FOUND_MSG),
        row(
            "one device is the default",
            GET,
            "/user/avatar?phone=6281000000001",
        )
        .gowa("infrastructure/whatsapp/device_manager.go DefaultDevice")
        .srv(Srv::Single)
        .dev(None),
        row("no devices", GET, "/user/avatar?phone=6281000000001")
            .gowa(RESOLVE)
            .srv(Srv::Empty)
            .dev(None)
            .json(400, "DEVICE_ID_REQUIRED", REQUIRED_MSG),
        row("device errors before validation", POST, "/user/avatar")
            .gowa(REST)
            .dev(None)
            .json(400, "DEVICE_ID_REQUIRED", REQUIRED_MSG),
        row("select by AD JID", GET, "/user/avatar?phone=6281000000001")
            .gowa("infrastructure/whatsapp/device_manager.go getDeviceByJID")
            .dev(Some("6281234500001:1@s.whatsapp.net")),
        row(
            "select by bare JID",
            GET,
            "/user/avatar?phone=6281000000001",
        )
        .gowa("infrastructure/whatsapp/device_manager.go getDeviceByJID")
        .dev(Some("6281234500001@s.whatsapp.net")),
        row(
            "select by query",
            GET,
            "/user/avatar?phone=6281000000001&device_id=dev1",
        )
        .gowa(DEVICE_MW)
        .dev(None),
        row(
            "the first device_id counts",
            GET,
            "/user/avatar?phone=6281000000001&device_id=dev1&device_id=nope",
        )
        .gowa("fasthttp args.go Args.Peek")
        .dev(None),
        row(
            "header is URL-decoded",
            GET,
            "/user/avatar?phone=6281000000001",
        )
        .gowa(DEVICE_MW)
        .dev(Some("my+dev")),
        row(
            "header is URL-decoded (%20)",
            GET,
            "/user/avatar?phone=6281000000001",
        )
        .gowa(DEVICE_MW)
        .dev(Some("my%20dev")),
        row(
            "[audit 14] decoded, then trimmed",
            GET,
            "/user/avatar?phone=6281000000001",
        )
        .gowa(RESOLVE)
        .dev(Some("dev1%20")),
        row(
            "[audit 14] a blank decoded id is no id",
            GET,
            "/user/avatar?phone=6281000000001&device_id=dev1",
        )
        .gowa(RESOLVE)
        .dev(Some("%20"))
        .json(400, "DEVICE_ID_REQUIRED", REQUIRED_MSG),
        row(
            "[audit 14] a blank decoded id takes the only device",
            GET,
            "/user/avatar?phone=6281000000001",
        )
        .gowa(RESOLVE)
        .srv(Srv::Single)
        .dev(Some("%20")),
        row(
            "header wins over query",
            GET,
            "/user/avatar?phone=6281000000001&device_id=nope",
        )
        .gowa(DEVICE_MW),
        // ---- routing
        row("[audit 4] health", GET, "/health")
            .gowa(REST)
            .auth(Auth::None)
            .dev(None)
            .text(200, "OK"),
        row("[audit 4] health is GET only, behind auth", POST, "/health")
            .gowa(REST)
            .auth(Auth::None)
            .text(401, "Unauthorized"),
        row("health is GET only", POST, "/health")
            .gowa(ROUTER)
            .text(405, "Method Not Allowed")
            .expect(&[("allow", Some("GET, HEAD"))]),
        row("[audit 5] unknown route", GET, "/foo")
            .gowa(ROUTER)
            .text(404, "Not Found"),
        row(
            "[audit 5] unknown route passes the device middleware",
            GET,
            "/foo",
        )
        .gowa(DEVICE_MW)
        .dev(None)
        .json(400, "DEVICE_ID_REQUIRED", REQUIRED_MSG),
        row("[audit 5] unknown route needs auth", GET, "/foo")
            .gowa(REST)
            .auth(Auth::None)
            .text(401, "Unauthorized"),
        row("[audit 6] PUT /user/avatar", PUT, "/user/avatar")
            .gowa(ROUTER)
            .text(405, "Method Not Allowed")
            .expect(&[("allow", Some("GET, HEAD, POST"))]),
        row(
            "[audit 6] DELETE /user/avatar without a device",
            DELETE,
            "/user/avatar",
        )
        .gowa(DEVICE_MW)
        .dev(None)
        .json(400, "DEVICE_ID_REQUIRED", REQUIRED_MSG)
        .expect(&[("allow", None)]),
        row("wrong method on /devices", DELETE, "/devices")
            .gowa(ROUTER)
            .text(405, "Method Not Allowed")
            .expect(&[("allow", Some("GET, HEAD, POST"))]),
        row(
            "routes are case-insensitive",
            GET,
            "/USER/Avatar/?phone=6281000000001",
        )
        .gowa("fiber app.go Config.CaseSensitive/StrictRouting (false)")
        .results(At("/id", "1635239861")),
        // ---- [audit 15] CORS
        row("[audit 15] CORS preflight", OPTIONS, "/user/avatar")
            .gowa(CORS)
            .auth(Auth::None)
            .dev(None)
            .headers(&[
                ("origin", "http://ui.example"),
                ("access-control-request-method", "GET"),
            ])
            .text(204, "")
            .ctype(ANY)
            .expect(&[
                ("access-control-allow-origin", Some("*")),
                (
                    "access-control-allow-methods",
                    Some("GET, POST, HEAD, PUT, PATCH, DELETE"),
                ),
                (
                    "access-control-allow-headers",
                    Some("Origin, Content-Type, Accept, Authorization, X-Device-Id"),
                ),
            ]),
        row(
            "[audit 15] CORS on a simple request",
            GET,
            "/user/avatar?phone=6281000000001",
        )
        .gowa(CORS)
        .headers(&[("origin", "http://ui.example")])
        .expect(&[("access-control-allow-origin", Some("*"))]),
        row(
            "[audit 15] CORS on a refused request",
            GET,
            "/user/avatar?phone=6281000000001",
        )
        .gowa(CORS)
        .auth(Auth::None)
        .headers(&[("origin", "http://ui.example")])
        .text(401, "Unauthorized")
        .expect(&[("access-control-allow-origin", Some("*"))]),
        row(
            "no Origin, no CORS headers",
            GET,
            "/user/avatar?phone=6281000000001",
        )
        .gowa(CORS)
        .expect(&[("access-control-allow-origin", None)]),
        // ---- /devices
        row("GET /devices", GET, "/devices")
            .gowa(DEVICE_USECASE)
            .json(200, "SUCCESS", "List devices")
            .results(At("/0/jid", "6281234500001@s.whatsapp.net")),
        row("[audit 17] GET /devices empty", GET, "/devices")
            .gowa("usecase/device.go ListDevices + pkg/utils/response.go ResponseData")
            .srv(Srv::Empty)
            .json(200, "SUCCESS", "List devices")
            .results(Null),
        row("POST /devices no body", POST, "/devices")
            .gowa(DEVICE_REST)
            .json(400, "BAD_REQUEST", "Invalid request body"),
        row("[audit 17] POST /devices", POST, "/devices")
            .gowa("ui/rest/device.go AddDevice")
            .body(Body::Raw("application/json", br#"{"device_id":"added"}"#))
            .json(200, "SUCCESS", "Device added")
            .results(Keys(&["created_at", "display_name", "id", "jid", "state"])),
        row("POST /devices JSON keys ignore case", POST, "/devices")
            .gowa("ui/rest/device.go AddDevice (encoding/json)")
            .body(Body::Raw("application/json", br#"{"DEVICE_ID":"upper"}"#))
            .json(200, "SUCCESS", "Device added")
            .results(At("/id", "upper")),
        row("POST /devices form body binds Go field names", POST, "/devices")
            .gowa("ui/rest/device.go AddDevice (Bind.Form)")
            .body(Body::Raw(
                "application/x-www-form-urlencoded",
                b"DeviceID=formed",
            ))
            .json(200, "SUCCESS", "Device added")
            .results(At("/id", "formed")),
        row("POST /devices duplicate", POST, "/devices")
            .gowa("infrastructure/whatsapp/device_manager.go CreateDevice")
            .body(Body::Raw("application/json", br#"{"device_id":"dev1"}"#))
            .json(500, "INTERNAL_SERVER_ERROR", "device dev1 already exists"),
        row("[audit 16] GET /devices/{id}", GET, "/devices/dev1")
            .gowa(DEVICE_USECASE)
            .json(200, "SUCCESS", "Device info")
            .results(Eq(
                r#"{"id":"dev1","state":"logged_in","jid":"6281234500001@s.whatsapp.net","created_at":"*"}"#,
            )),
        row("[audit 16] an unpaired slot has no jid", GET, "/devices/dev-nologin")
            .gowa(DEVICE_USECASE)
            .json(200, "SUCCESS", "Device info")
            .results(Eq(r#"{"id":"dev-nologin","state":"connected","created_at":"*"}"#)),
        row("GET /devices/{id} unknown", GET, "/devices/zzz")
            .gowa("usecase/device.go GetDevice")
            .json(500, "INTERNAL_SERVER_ERROR", "device zzz not found"),
        row("path ids are not unescaped", GET, "/devices/my%20dev")
            .gowa("fiber app.go Config.UnescapePath (false)")
            .json(500, "INTERNAL_SERVER_ERROR", "device my%20dev not found"),
        row("status", GET, "/devices/dev1/status")
            .gowa("usecase/device.go GetStatus")
            .json(200, "SUCCESS", "Device status")
            .results(Eq(
                r#"{"device_id":"dev1","is_connected":true,"is_logged_in":true}"#,
            )),
        row(
            "[audit 17] status of a slot never paired",
            GET,
            "/devices/dev-nologin/status",
        )
        .gowa("usecase/device.go GetStatus")
        .json(200, "SUCCESS", "Device status")
        .results(Eq(
            r#"{"device_id":"dev-nologin","is_connected":false,"is_logged_in":false}"#,
        )),
        row("status unknown", GET, "/devices/zzz/status")
            .gowa("usecase/device.go GetStatus")
            .json(500, "INTERNAL_SERVER_ERROR", "device zzz not found"),
        row("[audit 17] DELETE has no results", DELETE, "/devices/zzz")
            .gowa("ui/rest/device.go RemoveDevice")
            .json(200, "SUCCESS", "Device removed")
            .results(Absent),
        // ---- Basic auth
        row("no credentials", GET, "/user/avatar?phone=6281000000001")
            .gowa(BASIC_AUTH)
            .auth(Auth::None)
            .text(401, "Unauthorized"),
        row("auth before device selection", GET, "/user/avatar")
            .gowa(REST)
            .dev(None)
            .auth(Auth::None)
            .text(401, "Unauthorized"),
        row("wrong password", GET, "/user/avatar?phone=6281000000001")
            .gowa(BASIC_AUTH)
            .auth(Auth::Header("Basic dXNlcm5hbWU6d3Jvbmc="))
            .text(401, "Unauthorized"),
        row("unknown user", GET, "/user/avatar?phone=6281000000001")
            .gowa(BASIC_AUTH)
            .auth(Auth::Header("Basic bm9ib2R5OnBhc3N3b3Jk"))
            .text(401, "Unauthorized"),
        row("not basic", GET, "/user/avatar?phone=6281000000001")
            .gowa(BASIC_AUTH)
            .auth(Auth::Header("Bearer abc"))
            .text(401, "Unauthorized"),
        row("second pair", GET, "/user/avatar?phone=6281000000001")
            .gowa("cmd/rest.go restServer (AppBasicAuthCredential)")
            .auth(Auth::Other),
        row(
            "scheme is case-insensitive",
            GET,
            "/user/avatar?phone=6281000000001",
        )
        .gowa(BASIC_AUTH)
        .auth(Auth::Header("basic dXNlcm5hbWU6cGFzc3dvcmQ=")),
        row(
            "[audit 12] Basic without credentials",
            GET,
            "/user/avatar?phone=6281000000001",
        )
        .gowa(BASIC_AUTH)
        .auth(Auth::Header("Basic"))
        .text(400, "Bad Request"),
        row(
            "[audit 12] Basic glued to its value",
            GET,
            "/user/avatar?phone=6281000000001",
        )
        .gowa(BASIC_AUTH)
        .auth(Auth::Header("Basicxyz"))
        .text(400, "Bad Request"),
        row(
            "[audit 13] unpadded base64",
            GET,
            "/user/avatar?phone=6281000000001",
        )
        .gowa(BASIC_AUTH)
        .auth(Auth::Header("Basic dXNlcm5hbWU6cGFzc3dvcmQ")),
        row("bad base64", GET, "/user/avatar?phone=6281000000001")
            .gowa(BASIC_AUTH)
            .auth(Auth::Header("Basic !!!"))
            .text(400, "Bad Request"),
        row("no colon", GET, "/user/avatar?phone=6281000000001")
            .gowa(BASIC_AUTH)
            .auth(Auth::Header("Basic dXNlcm5hbWU="))
            .text(400, "Bad Request"),
        row("stray whitespace", GET, "/user/avatar?phone=6281000000001")
            .gowa(BASIC_AUTH)
            .auth(Auth::Header("Basic  dXNlcm5hbWU6cGFzc3dvcmQ="))
            .text(400, "Bad Request"),
        row("header too long", GET, "/user/avatar?phone=6281000000001")
            .gowa(BASIC_AUTH)
            .auth(Auth::Long)
            .text(431, "Request Header Fields Too Large"),
        row("control API needs auth", GET, "/_mock/faults")
            .gowa("(the mock's own /_mock API)")
            .auth(Auth::None)
            .text(401, "Unauthorized"),
        row("devices need auth", GET, "/devices")
            .gowa(REST)
            .auth(Auth::None)
            .text(401, "Unauthorized"),
        row(
            "no auth configured",
            GET,
            "/user/avatar?phone=6281000000001",
        )
        .gowa(REST)
        .srv(Srv::Open)
        .auth(Auth::None)
        .dev(None),
        row("handler order", GET, "/user/avatar?phone=6281000000001")
            .gowa(HANDLER_GET)
            .dev(Some("dev-noclient"))
            .json(
                500,
                "INVALID_WA_CLI",
                "your WhatsApp CLI is invalid or empty",
            ),
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

struct Servers {
    multi: MockServer,
    single: MockServer,
    empty: MockServer,
    open: MockServer,
    no_validation: MockServer,
}

impl Servers {
    async fn start() -> Self {
        let multi = start(&["dev1"], true).await;
        setup_multi(&multi).await;
        let single = start(&["dev1"], true).await;
        common_contacts(&single).await;
        let empty = start(&[], true).await;
        let open = start(&["dev1"], false).await;
        common_contacts_open(&open).await;
        let no_validation = start_with(Config {
            devices: vec!["dev1".into()],
            basic_auth: vec![(USER.into(), PASS.into())],
            account_validation: false,
            ..Config::default()
        })
        .await;
        common_contacts(&no_validation).await;
        Servers {
            multi,
            single,
            empty,
            open,
            no_validation,
        }
    }

    fn get(&self, srv: Srv) -> &MockServer {
        match srv {
            Srv::Multi => &self.multi,
            Srv::Single => &self.single,
            Srv::Empty => &self.empty,
            Srv::Open => &self.open,
            Srv::NoValidation => &self.no_validation,
        }
    }

    async fn shutdown(self) {
        for s in [
            self.multi,
            self.single,
            self.empty,
            self.open,
            self.no_validation,
        ] {
            s.shutdown().await;
        }
    }
}

/// What came back.
struct Answer {
    status: u16,
    ctype: String,
    body: String,
    headers: reqwest::header::HeaderMap,
}

async fn send(r: &Row, server: &MockServer, png: &[u8]) -> Answer {
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let auth_value = match r.auth {
        Auth::Good => Some(format!("Basic {}", b64("username:password"))),
        Auth::Other => Some(format!("Basic {}", b64("other:secret"))),
        Auth::None => None,
        Auth::Header(h) => Some(h.to_string()),
        Auth::Long => Some(format!("Basic {}", "A".repeat(9000))),
    };
    if let Body::ClaimLength(len) = r.body {
        let (status, ctype, body) =
            raw_claim(server, r.path, len, auth_value.as_deref().unwrap_or("")).await;
        return Answer {
            status,
            ctype,
            body,
            headers: reqwest::header::HeaderMap::new(),
        };
    }
    let method = Method::from_bytes(r.method.as_bytes()).expect("method");
    let mut rb = client().request(method, format!("{}{}", server.base_url(), r.path));
    if let Some(a) = &auth_value {
        rb = rb.header("Authorization", a);
    }
    if let Some(d) = r.device {
        rb = rb.header("X-Device-Id", d);
    }
    for (k, v) in r.headers {
        rb = rb.header(*k, *v);
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
                Img::Png => png.to_vec(),
                Img::Garbage => b"definitely not an image".to_vec(),
            };
            let part = reqwest::multipart::Part::bytes(bytes).file_name("image.jpg");
            rb.multipart(reqwest::multipart::Form::new().part(field, part))
        }
    };
    let resp = rb.send().await.expect("request");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let ctype = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    Answer {
        status,
        ctype,
        body: resp.text().await.expect("body"),
        headers,
    }
}

fn check_json(r: &Row, body: &str, problems: &mut Vec<String>) {
    let Some(code) = r.code else {
        if body != r.message {
            problems.push(format!("body {body:?} != {:?}", r.message));
        }
        return;
    };
    let v = match serde_json::from_str::<Value>(body) {
        Ok(v) => v,
        Err(e) => return problems.push(format!("not JSON ({e}): {body}")),
    };
    let keys: Vec<&str> = v
        .as_object()
        .map(|o| o.keys().map(String::as_str).collect())
        .unwrap_or_default();
    if keys != ["code", "message"] && keys != ["code", "message", "results"] {
        problems.push(format!("keys {keys:?}"));
    }
    if str_at(&v, "/code") != code {
        problems.push(format!("code {:?} != {code:?}", v["code"]));
    }
    let message = str_at(&v, "/message");
    if message != r.message && !r.alternatives.contains(&message) {
        problems.push(format!("message {:?} != {:?}", v["message"], r.message));
    }
    let results = v.get("results");
    let ok = match r.results {
        Results::Any => true,
        Results::Absent => results.is_none(),
        Results::Null => results == Some(&Value::Null),
        Results::Eq(e) => results.is_some_and(|a| results_match(e, a)),
        Results::At(ptr, want) => {
            results.and_then(|a| a.pointer(ptr)).and_then(Value::as_str) == Some(want)
        }
        Results::Keys(want) => results
            .and_then(Value::as_object)
            .is_some_and(|o| o.keys().map(String::as_str).eq(want.iter().copied())),
    };
    if !ok {
        problems.push(format!("results {results:?}"));
    }
    if code == "SUCCESS" && r.path.contains("/avatar?") && !body.contains("\\u0026oh=") {
        problems.push("URL not escaped like encoding/json".into());
    }
}

fn check(r: &Row, a: &Answer, elapsed_ms: u128) -> Vec<String> {
    let mut problems = Vec::new();
    if a.status != r.status {
        problems.push(format!("status {} != {}", a.status, r.status));
    }
    if r.ctype != ANY && a.ctype != r.ctype {
        problems.push(format!("content-type {:?} != {:?}", a.ctype, r.ctype));
    }
    check_json(r, &a.body, &mut problems);
    for (name, want) in r.expect {
        let got = a.headers.get(*name).and_then(|v| v.to_str().ok());
        if got != *want {
            problems.push(format!("header {name}: {got:?} != {want:?}"));
        }
    }
    if a.status == 401 && r.code.is_none() {
        let h = &a.headers;
        let ok = h.get("www-authenticate").map(|v| v.as_bytes())
            == Some(b"Basic realm=\"Restricted\", charset=\"UTF-8\"".as_slice())
            && h.get("cache-control").map(|v| v.as_bytes()) == Some(b"no-store".as_slice())
            && h.get("vary").map(|v| v.as_bytes()) == Some(b"Authorization".as_slice());
        if !ok {
            problems.push("401 without the three auth headers".into());
        }
    }
    if elapsed_ms < r.min_ms {
        problems.push(format!("answered after {elapsed_ms} ms < {} ms", r.min_ms));
    }
    problems
}

#[tokio::test]
async fn gateway_behaviour_table() {
    let servers = Servers::start().await;
    let png = png(40, 30);
    let mut failures = Vec::new();
    for r in rows() {
        assert!(!r.gowa.is_empty(), "{}: name its GOWA source", r.name);
        let server = servers.get(r.srv);
        if let Some(f) = r.faults {
            let v: Value = serde_json::from_str(f).expect("faults json");
            control(server, Method::PUT, "/_mock/faults", Some(v)).await;
        }
        let started = Instant::now();
        let answer = send(&r, server, &png).await;
        let elapsed = started.elapsed().as_millis();
        if r.faults.is_some() {
            control(server, Method::PUT, "/_mock/faults", Some(json!({}))).await;
        }
        let problems = check(&r, &answer, elapsed);
        if !problems.is_empty() {
            failures.push(format!(
                "{} [{} {}] ({}): {} — body {}",
                r.name,
                r.method,
                r.path,
                r.gowa,
                problems.join("; "),
                answer.body
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} rows failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    servers.shutdown().await;
}
