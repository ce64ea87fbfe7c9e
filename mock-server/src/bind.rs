//! Which binder Fiber v3.4's `c.Bind().Body(&out)` (`bind.go` `Body`) picks: the request
//! Content-Type, lowercased, through gofiber/utils' `ParseVendorSpecificContentType`
//! (`application/vnd.api+json` → `application/json`) and `binder.FilterFlags` (cut at the first
//! space or `;`). Anything else is `ErrUnprocessableEntity` ("Unprocessable Entity").

use axum::http::{HeaderMap, header};

/// The binder chosen for a body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    Json,
    Xml,
    Cbor,
    MsgPack,
    /// `application/x-www-form-urlencoded` or `multipart/form-data` (`Bind.Form`).
    Form,
    /// No binder: Fiber returns `ErrUnprocessableEntity`.
    Unsupported,
}

/// The raw Content-Type header (lossy UTF-8), empty when absent.
pub fn content_type(headers: &HeaderMap) -> String {
    headers
        .get(header::CONTENT_TYPE)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .unwrap_or_default()
}

/// gofiber/utils `ParseVendorSpecificContentType` on an already lowercased value.
fn vendor_specific(ct: &str) -> String {
    let Some(plus) = ct.find('+') else {
        return ct.to_string();
    };
    let parsable = match ct.find(';') {
        None => &ct[plus + 1..],
        Some(semi) if plus < semi => &ct[plus + 1..semi],
        Some(semi) => return ct[..semi].to_string(),
    };
    let Some(slash) = ct.find('/') else {
        return ct.to_string();
    };
    if ct.starts_with("application/") {
        match parsable {
            "json" => return "application/json".into(),
            "xml" => return "application/xml".into(),
            "x-www-form-urlencoded" => return "application/x-www-form-urlencoded".into(),
            _ => {}
        }
    }
    format!("{}{parsable}", &ct[..=slash])
}

/// `binder.FilterFlags`.
pub fn filter_flags(ct: &str) -> &str {
    ct.split([' ', ';']).next().unwrap_or("")
}

/// The binder `Bind().Body` uses for this request.
pub fn body_kind(headers: &HeaderMap) -> BodyKind {
    let lowered = content_type(headers).to_ascii_lowercase();
    let vendor = vendor_specific(&lowered);
    match filter_flags(&vendor) {
        "application/json" => BodyKind::Json,
        "text/xml" | "application/xml" => BodyKind::Xml,
        "application/cbor" => BodyKind::Cbor,
        "application/vnd.msgpack" => BodyKind::MsgPack,
        "application/x-www-form-urlencoded" | "multipart/form-data" => BodyKind::Form,
        _ => BodyKind::Unsupported,
    }
}

/// Go's `encoding/json` error for a body that is not valid JSON, for the cases a client meets:
/// empty or truncated input and a bad first character. Other syntax errors are approximated
/// with the same "invalid character" shape.
pub fn json_syntax_error(body: &[u8]) -> String {
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    match first {
        None => "unexpected end of JSON input".into(),
        Some(&c)
            if !matches!(
                c,
                b'{' | b'[' | b'"' | b't' | b'f' | b'n' | b'-' | b'0'..=b'9'
            ) =>
        {
            format!(
                "invalid character '{}' looking for beginning of value",
                char::from(c).escape_default()
            )
        }
        Some(_) => match serde_json::from_slice::<serde_json::Value>(body) {
            Err(e) if e.is_eof() => "unexpected end of JSON input".into(),
            Err(e) => format!("invalid character in JSON input at column {}", e.column()),
            Ok(_) => String::new(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(ct: &str) -> BodyKind {
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_TYPE, ct.parse().expect("header"));
        body_kind(&h)
    }

    #[test]
    fn picks_fibers_binder() {
        assert_eq!(kind("application/vnd.api+json; charset=x"), BodyKind::Json);
        assert_eq!(kind("Multipart/Form-Data; boundary=x"), BodyKind::Form);
        assert_eq!(kind("application/msgpack"), BodyKind::Unsupported);
        assert_eq!(kind("image/jpeg"), BodyKind::Unsupported);
        assert_eq!(body_kind(&HeaderMap::new()), BodyKind::Unsupported);
        assert_eq!(json_syntax_error(b" "), "unexpected end of JSON input");
        assert_eq!(
            json_syntax_error(b"{\"a\":"),
            "unexpected end of JSON input"
        );
        assert_eq!(
            json_syntax_error(b"abc"),
            "invalid character 'a' looking for beginning of value"
        );
    }
}
