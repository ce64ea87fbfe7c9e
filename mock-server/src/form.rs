//! The first two steps of GOWA's `UserChangeAvatar` (src/ui/rest/user.go):
//! `c.Bind().Body(&request)` then `c.FormFile("avatar")`, with Fiber v3.4 (`bind.go`,
//! `binder/form.go`) and fasthttp v1.72 (`http.go` `MultipartFormWithLimit`,
//! `server.go` `FormFile`) error texts. Every failure is a 500 `INTERNAL_SERVER_ERROR`.
//!
//! * no binder for the Content-Type → `Unprocessable Entity`;
//! * JSON: a body that is not JSON → `bind from body: unexpected end of JSON input` (or Go's
//!   `invalid character …`), a JSON value that is not an object → `bind from body: json: cannot
//!   unmarshal …`; XML: an empty body → `bind from body: failed to unmarshal xml: EOF`;
//! * `multipart/form-data` (exactly, in the raw header): the boundary must follow fasthttp's
//!   rules (`multipart/form-data;`, then a `boundary=` parameter), else `bind from body: request
//!   Content-Type has bad boundary or is not multipart/form-data`; an empty body is `bind from
//!   body: form size must be greater than 0. Given 0`; a body that is not multipart is `bind from
//!   body: cannot read multipart/form-data body: multipart: NextPart: EOF` (the mock's text for
//!   any parse error);
//! * every other bound body (urlencoded, JSON object, …) then fails in `FormFile`: `request
//!   Content-Type has bad boundary or is not multipart/form-data`;
//! * a form without a file part named `avatar` (a part with an empty `filename` is a value, as in
//!   Go's `mime/multipart`) → `there is no uploaded file associated with the given key`.

use axum::body::Body;
use axum::extract::{FromRequest, Multipart, Request};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::Response;
use bytes::Bytes;

use crate::bind::{BodyKind, body_kind, content_type, filter_flags, json_syntax_error};
use crate::errors::internal;

const NO_MULTIPART: &str = "request Content-Type has bad boundary or is not multipart/form-data";
const MISSING_FILE: &str = "there is no uploaded file associated with the given key";

/// fasthttp's `RequestHeader.MultipartFormBoundary` on the raw Content-Type.
pub fn multipart_boundary(ct: &str) -> Option<&str> {
    let mut rest = ct.strip_prefix("multipart/form-data")?;
    if !rest.starts_with(';') {
        return None;
    }
    loop {
        rest = rest[1..].trim_start_matches(' ');
        let Some(after) = rest.strip_prefix("boundary") else {
            let next = rest.find(';')?;
            rest = &rest[next..];
            continue;
        };
        let value = after.strip_prefix('=')?;
        let value = value.split(';').next().unwrap_or("");
        let value = if value.len() > 1 && value.starts_with('"') && value.ends_with('"') {
            &value[1..value.len() - 1]
        } else {
            value
        };
        return Some(value).filter(|v| !v.is_empty());
    }
}

fn bind_error(message: &str) -> Response {
    internal(&format!("bind from body: {message}"))
}

/// Go's name of a JSON value's kind in an `UnmarshalTypeError`.
fn json_kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "bool",
        serde_json::Value::Number(_) => "number",
        serde_json::Value::String(_) => "string",
        serde_json::Value::Array(_) => "array",
        serde_json::Value::Object(_) => "object",
    }
}

/// `Bind.JSON` into `ChangeAvatarRequest{Avatar *multipart.FileHeader json:"avatar"}`.
fn bind_json(body: &[u8]) -> Result<(), Response> {
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|_| bind_error(&json_syntax_error(body)))?;
    let object = match &value {
        serde_json::Value::Null => return Ok(()),
        serde_json::Value::Object(o) => o,
        other => {
            return Err(bind_error(&format!(
                "json: cannot unmarshal {} into Go value of type user.ChangeAvatarRequest",
                json_kind(other)
            )));
        }
    };
    // encoding/json matches keys case-insensitively; an object (or null) fits a FileHeader.
    let avatar = object
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("avatar"))
        .map(|(_, v)| v);
    match avatar {
        Some(
            v @ (serde_json::Value::Bool(_)
            | serde_json::Value::Number(_)
            | serde_json::Value::String(_)
            | serde_json::Value::Array(_)),
        ) => Err(internal(&format!(
            "bind \"avatar\" from body: json: cannot unmarshal {} into Go struct field \
             ChangeAvatarRequest.avatar of type multipart.FileHeader",
            json_kind(v)
        ))),
        _ => Ok(()),
    }
}

/// The first file part named `avatar` of a multipart body (`bindMultipart`, then `FormFile`).
async fn multipart_file(boundary: &str, body: Bytes) -> Result<Bytes, Response> {
    if body.is_empty() {
        return Err(bind_error("form size must be greater than 0. Given 0"));
    }
    let unreadable =
        || bind_error("cannot read multipart/form-data body: multipart: NextPart: EOF");
    let mut req = Request::new(Body::from(body));
    let ct = HeaderValue::from_str(&format!("multipart/form-data; boundary=\"{boundary}\""))
        .map_err(|_| unreadable())?;
    req.headers_mut().insert(header::CONTENT_TYPE, ct);
    let mut form = Multipart::from_request(req, &())
        .await
        .map_err(|_| unreadable())?;
    let mut avatar = None;
    // Go's ReadForm reads the whole form before FormFile looks at it.
    while let Some(field) = form.next_field().await.map_err(|_| unreadable())? {
        let is_avatar = field.name() == Some("avatar")
            && field.file_name().is_some_and(|f| !f.is_empty())
            && avatar.is_none();
        let bytes = field.bytes().await.map_err(|_| unreadable())?;
        if is_avatar {
            avatar = Some(bytes);
        }
    }
    avatar.ok_or_else(|| internal(MISSING_FILE))
}

/// Binds the body and returns the bytes of the `avatar` file, or GOWA's 500 answer.
pub async fn avatar_file(headers: &HeaderMap, body: Bytes) -> Result<Bytes, Response> {
    let raw_ct = content_type(headers);
    match body_kind(headers) {
        BodyKind::Unsupported => return Err(internal("Unprocessable Entity")),
        BodyKind::Json => bind_json(&body)?,
        BodyKind::Xml if body.is_empty() => {
            return Err(bind_error("failed to unmarshal xml: EOF"));
        }
        BodyKind::Form if filter_flags(&raw_ct) == "multipart/form-data" => {
            let boundary = multipart_boundary(&raw_ct).ok_or_else(|| bind_error(NO_MULTIPART))?;
            return multipart_file(boundary, body).await;
        }
        BodyKind::Xml | BodyKind::Cbor | BodyKind::MsgPack | BodyKind::Form => {}
    }
    // FormFile → MultipartForm on a request that is not multipart.
    Err(internal(NO_MULTIPART))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boundaries_like_fasthttp() {
        assert_eq!(
            multipart_boundary("multipart/form-data; boundary=abc"),
            Some("abc")
        );
        assert_eq!(
            multipart_boundary("multipart/form-data; charset=x; boundary=\"a b\""),
            Some("a b")
        );
        assert_eq!(multipart_boundary("multipart/form-data"), None);
        assert_eq!(multipart_boundary("multipart/form-data ; boundary=x"), None);
        assert_eq!(multipart_boundary("Multipart/form-data; boundary=x"), None);
        assert_eq!(multipart_boundary("multipart/form-data; Boundary=x"), None);
    }
}
