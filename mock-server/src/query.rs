//! `c.Bind().Query(&request)` for GOWA's `AvatarRequest` (src/domains/user/account.go), as Fiber
//! v3.4 (`binder/query.go`, `binder/mapping.go`) and gofiber/schema v1.8 (`decoder.go`,
//! `cache.go`, `converter.go`) do it:
//!
//! * the query is split by fasthttp (`+` is a space, lenient `%XX`), a key with `[` goes through
//!   `parseParamSquareBrackets` (`a[]` → `a`, `a[b]` → `a.b`, unmatched → `unmatched brackets`);
//! * values are grouped by the exact key; a key matches a field **case-insensitively** (`Phone`,
//!   `IS_PREVIEW`); for one key the **last** value counts; an empty value sets the zero value
//!   (`ZeroEmpty(true)`); unknown keys are ignored;
//! * several spellings of one field are applied in Go map order, which is random;
//! * a boolean is `on` or a `strconv.ParseBool` value, anything else (`off`, `yes`) is a
//!   `ConversionError`; all errors form a `MultiError` whose text and field are each taken from
//!   a random key of the map: `bind "<key>" from query: schema: error converting value for
//!   "<key>"`, plus ` (and 1 other error)` or ` (and N other errors)`.

use rand::seq::SliceRandom;

use crate::util::{decode_arg, parse_bool};

/// The bound request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AvatarQuery {
    pub phone: String,
    pub is_preview: bool,
    pub is_community: bool,
}

/// Fiber's `parseParamSquareBrackets`.
fn square_brackets(key: &str) -> Result<String, &'static str> {
    let b = key.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut open = 0i32;
    for (i, &c) in b.iter().enumerate() {
        match c {
            b'[' => {
                open += 1;
                if i + 1 < b.len() && b[i + 1] != b']' {
                    out.push(b'.');
                }
            }
            b']' => {
                open -= 1;
                if open < 0 {
                    return Err("unmatched brackets");
                }
            }
            _ => out.push(c),
        }
    }
    if open > 0 {
        return Err("unmatched brackets");
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// gofiber/schema's `convertBool`.
fn schema_bool(v: &str) -> Option<bool> {
    if v == "on" { Some(true) } else { parse_bool(v) }
}

/// The `src` map of the decoder: keys in first-seen order, each with its values.
fn data_map(raw: &str) -> Result<Vec<(String, Vec<String>)>, String> {
    let mut data: Vec<(String, Vec<String>)> = Vec::new();
    for pair in raw.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let mut key = decode_arg(k);
        if key.contains('[') {
            key = square_brackets(&key).map_err(|e| format!("bind from query: {e}"))?;
        }
        let value = decode_arg(v);
        match data.iter_mut().find(|(existing, _)| *existing == key) {
            Some((_, values)) => values.push(value),
            None => data.push((key, vec![value])),
        }
    }
    Ok(data)
}

fn multi_error(keys: &[String]) -> String {
    let pick = || &keys[rand::random_range(0..keys.len())];
    let (field, first) = (pick(), pick());
    let mut message =
        format!("bind \"{field}\" from query: schema: error converting value for \"{first}\"");
    match keys.len() {
        1 => {}
        2 => message.push_str(" (and 1 other error)"),
        n => message.push_str(&format!(" (and {} other errors)", n - 1)),
    }
    message
}

/// Binds a raw query string; the error is the message of GOWA's 500 answer.
pub fn bind_avatar(raw: &str) -> Result<AvatarQuery, String> {
    let mut data = data_map(raw)?;
    data.shuffle(&mut rand::rng());
    let mut out = AvatarQuery::default();
    let mut errors = Vec::new();
    for (key, values) in data {
        let value = values.last().map(String::as_str).unwrap_or("");
        let target = match key.to_ascii_lowercase().as_str() {
            "phone" => {
                out.phone = value.to_string();
                continue;
            }
            "is_preview" => &mut out.is_preview,
            "is_community" => &mut out.is_community,
            _ => continue,
        };
        if value.is_empty() {
            *target = false;
        } else if let Some(b) = schema_bool(value) {
            *target = b;
        } else {
            errors.push(key);
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(multi_error(&errors))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binds_like_fiber() {
        let q = bind_avatar("Phone=62%2B1&IS_PREVIEW=on&is_community=").expect("bind");
        assert_eq!(q.phone, "62+1");
        assert!(q.is_preview && !q.is_community);
        assert_eq!(bind_avatar("phone=1&phone=2").expect("bind").phone, "2");
        assert_eq!(bind_avatar("phone[]=7").expect("bind").phone, "7");
        assert_eq!(
            bind_avatar("phone[=7").unwrap_err(),
            "bind from query: unmatched brackets"
        );
        assert_eq!(
            bind_avatar("is_preview=off").unwrap_err(),
            "bind \"is_preview\" from query: schema: error converting value for \"is_preview\""
        );
        let two = bind_avatar("is_preview=x&is_community=y").unwrap_err();
        assert!(two.ends_with(" (and 1 other error)"), "{two}");
    }
}
