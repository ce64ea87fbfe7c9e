//! Small helpers: fasthttp/Go URL decoding, query arguments, Go booleans and timestamps.

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
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hi = b.get(i + 1).copied().and_then(hex_val)?;
                let lo = b.get(i + 2).copied().and_then(hex_val)?;
                out.push(hi << 4 | lo);
                i += 2;
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

/// fasthttp's `decodeArgAppend` (args.go): `+` is a space, `%XX` a byte, a `%` not followed by
/// two hex digits stays literal, and a `%` among the last two bytes ends decoding (the rest is
/// copied as is).
pub fn decode_arg(s: &str) -> String {
    if !s.bytes().any(|b| b == b'+' || b == b'%') {
        return s.to_string();
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 >= b.len() => {
                out.extend_from_slice(&b[i..]);
                break;
            }
            b'%' => match (hex_val(b[i + 1]), hex_val(b[i + 2])) {
                (Some(hi), Some(lo)) => {
                    out.push(hi << 4 | lo);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b'+' => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// fasthttp's `QueryArgs`: the decoded `(key, value)` pairs in order; a pair without `=` has an
/// empty value, empty pairs (`&&`) are skipped.
pub fn query_args(raw: &str) -> Vec<(String, String)> {
    raw.split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (decode_arg(k), decode_arg(v))
        })
        .collect()
}

/// fasthttp's `Args.Peek` (Fiber's `c.Query`): the value of the **first** `key`.
pub fn query_first(raw: &str, key: &str) -> Option<String> {
    query_args(raw)
        .into_iter()
        .find_map(|(k, v)| (k == key).then_some(v))
}

/// The value of the **last** `key` (used by the mock's own routes).
pub fn query_last(raw: &str, key: &str) -> Option<String> {
    query_args(raw)
        .into_iter()
        .rev()
        .find_map(|(k, v)| (k == key).then_some(v))
}

/// Go's `strconv.ParseBool`.
pub fn parse_bool(v: &str) -> Option<bool> {
    match v {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
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
    format!("{}.{:03}Z", civil(d.as_secs()), d.subsec_millis())
}

/// Now as Go's `time.Time` marshals to JSON in UTC (RFC 3339 with nanoseconds, trailing zeros
/// dropped, no fraction at all when it is zero), e.g. `2026-01-02T03:04:05.6789Z`.
pub fn go_time_now() -> String {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    go_time(d.as_secs(), d.subsec_nanos())
}

/// See [`go_time_now`].
pub fn go_time(secs: u64, nanos: u32) -> String {
    let frac = format!("{nanos:09}");
    let frac = frac.trim_end_matches('0');
    if frac.is_empty() {
        format!("{}Z", civil(secs))
    } else {
        format!("{}.{frac}Z", civil(secs))
    }
}

/// `YYYY-MM-DDTHH:MM:SS` of a Unix time (civil-from-days algorithm).
fn civil(secs: u64) -> String {
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
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// The longest prefix of `s` of at most `max` bytes that ends on a character boundary.
pub fn prefix(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoding() {
        assert_eq!(query_unescape("a+b%2Bc").as_deref(), Some("a b+c"));
        assert_eq!(query_unescape("%zz"), None);
        assert_eq!(decode_arg("%zz+1"), "%zz 1");
        assert_eq!(
            decode_arg("a%+"),
            "a%+",
            "fasthttp copies the tail after a short %"
        );
        assert_eq!(decode_arg("%41%4"), "A%4");
        assert_eq!(
            query_last("phone=1&phone=2&x", "phone").as_deref(),
            Some("2")
        );
        assert_eq!(query_first("d=1&d=2", "d").as_deref(), Some("1"));
        assert_eq!(query_last("x", "phone"), None);
        assert_eq!(
            query_args("a&&b=%20"),
            vec![("a".into(), "".into()), ("b".into(), " ".into())]
        );
    }

    #[test]
    fn dates() {
        assert_eq!(go_time(0, 0), "1970-01-01T00:00:00Z");
        assert_eq!(
            go_time(1_709_251_200, 5_000_000),
            "2024-03-01T00:00:00.005Z"
        );
        assert_eq!(
            go_time(1_709_251_200, 120_000_000),
            "2024-03-01T00:00:00.12Z"
        );
    }

    #[test]
    fn prefixes_end_on_char_boundaries() {
        assert_eq!(prefix("héllo", 2), "h");
        assert_eq!(prefix("abc", 10), "abc");
    }
}
