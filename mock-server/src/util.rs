//! Small helpers: Go-style URL decoding, query lookup, boolean parsing and timestamps.

use std::time::{SystemTime, UNIX_EPOCH};

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Go's `url.QueryUnescape`: `+` becomes a space, `%XX` a byte; a bad escape is an error.
pub fn query_unescape(s: &str) -> Option<String> {
    String::from_utf8(unescape(s, true)?).ok()
}

/// fasthttp's lenient query decoding: like [`query_unescape`] but a bad escape stays literal.
pub fn decode_lenient(s: &str) -> String {
    if !s.bytes().any(|b| b == b'+' || b == b'%') {
        return s.to_string();
    }
    let bytes = unescape(s, false).unwrap_or_default();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// `+` → space and `%XX` → byte; a bad escape fails when `strict`, else stays literal.
fn unescape(s: &str, strict: bool) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' => match (
                b.get(i + 1).copied().and_then(hex_val),
                b.get(i + 2).copied().and_then(hex_val),
            ) {
                (Some(hi), Some(lo)) => {
                    out.push(hi << 4 | lo);
                    i += 2;
                }
                _ if strict => return None,
                _ => out.push(b'%'),
            },
            c => out.push(c),
        }
        i += 1;
    }
    Some(out)
}

/// The decoded value of the last occurrence of `key` in a raw query string.
pub fn query_last(raw: &str, key: &str) -> Option<String> {
    let mut found = None;
    for pair in raw.split('&') {
        if pair.is_empty() {
            continue;
        }
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        if k == key || (k.contains(['%', '+']) && decode_lenient(k) == key) {
            found = Some(v);
        }
    }
    found.map(decode_lenient)
}

/// gofiber/schema boolean conversion; `None` means "error converting value".
pub fn go_bool(v: &str) -> Option<bool> {
    match v {
        "" => Some(false),
        "on" | "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "off" | "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// RFC 3339 UTC timestamp with milliseconds, e.g. `2026-01-02T03:04:05.678Z`.
pub fn rfc3339_now() -> String {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    rfc3339(d.as_secs(), d.subsec_millis())
}

/// Formats a Unix time (civil-from-days algorithm).
pub fn rfc3339(secs: u64, millis: u32) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoding() {
        assert_eq!(query_unescape("a+b%2Bc").as_deref(), Some("a b+c"));
        assert_eq!(query_unescape("%zz"), None);
        assert_eq!(decode_lenient("%zz+1"), "%zz 1");
        assert_eq!(
            query_last("phone=1&phone=2&x", "phone").as_deref(),
            Some("2")
        );
        assert_eq!(query_last("x", "phone"), None);
    }

    #[test]
    fn dates() {
        assert_eq!(rfc3339(0, 0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(1_709_251_200, 5), "2024-03-01T00:00:00.005Z");
    }
}
