use serde::{Deserialize, Serialize};

/// WhatsApp servers a target JID may name.
const SERVERS: [&str; 5] = ["s.whatsapp.net", "g.us", "lid", "newsletter", "c.us"];

/// The target of a fetch job, canonicalised to a full JID before it reaches the gateway.
///
/// A `+` or a space in a JID makes WhatsApp drop the query silently (a 75 s hang in some gateways), so
/// numbers are reduced to digits here: `+62 812-3456-7890` becomes `6281234567890@s.whatsapp.net`.
/// Formatting characters (`+` first, spaces, `-`, `.`, `(`, `)`) are removed; letters or anything else
/// make the phone invalid. Bare numbers follow the gateway's rule: up to 15 digits are a user, longer a group.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Phone(String);

impl Phone {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let raw = raw.trim();
        if raw.is_empty() {
            return Err("phone: must not be empty".into());
        }
        if raw.len() > 64 {
            return Err(format!("phone: {} bytes long; the limit is 64", raw.len()));
        }
        match raw.split_once('@') {
            Some((user, server)) => Self::parse_jid(user, server),
            None => Self::parse_number(raw),
        }
    }

    fn parse_number(raw: &str) -> Result<Self, String> {
        let body = raw.strip_prefix('+').unwrap_or(raw);
        let mut digits = String::with_capacity(body.len());
        for c in body.chars() {
            match c {
                '0'..='9' => digits.push(c),
                ' ' | '-' | '.' | '(' | ')' => {}
                other => {
                    return Err(format!(
                        "phone: {raw:?} is not a number or JID (unexpected {other:?})"
                    ));
                }
            }
        }
        if digits.len() < 5 {
            return Err(format!("phone: {raw:?} has too few digits"));
        }
        let server = if digits.len() <= 15 {
            "s.whatsapp.net"
        } else {
            "g.us"
        };
        Ok(Self(format!("{digits}@{server}")))
    }

    fn parse_jid(user: &str, server: &str) -> Result<Self, String> {
        if !SERVERS.contains(&server) {
            return Err(format!("phone: unknown WhatsApp server {server:?}"));
        }
        let user = user.strip_prefix('+').unwrap_or(user);
        let (base, device) = match user.split_once(':') {
            Some((base, device)) => (base, Some(device)),
            None => (user, None),
        };
        let numeric = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        let base_ok = match server {
            // Old-style group ids are `<creator>-<timestamp>`.
            "g.us" => base.split('-').all(numeric) && base.split('-').count() <= 2,
            _ => numeric(base),
        };
        if !base_ok || !device.is_none_or(numeric) {
            return Err(format!(
                "phone: {user:?} is not a valid user part for @{server}"
            ));
        }
        // `c.us` is the legacy name of the user server.
        let server = if server == "c.us" {
            "s.whatsapp.net"
        } else {
            server
        };
        Ok(Self(format!("{user}@{server}")))
    }

    pub fn as_jid(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Phone {
    type Error = String;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<Phone> for String {
    fn from(phone: Phone) -> Self {
        phone.0
    }
}

#[cfg(test)]
mod tests {
    use super::Phone;

    #[test]
    fn canonicalises_numbers_and_jids() {
        let cases = [
            ("6281234567890", "6281234567890@s.whatsapp.net"),
            ("+62 812-3456-7890", "6281234567890@s.whatsapp.net"),
            ("(0812) 3456.7890", "081234567890@s.whatsapp.net"),
            ("120363025246125888", "120363025246125888@g.us"),
            (
                "6281234567890@s.whatsapp.net",
                "6281234567890@s.whatsapp.net",
            ),
            (
                "+6281234567890@s.whatsapp.net",
                "6281234567890@s.whatsapp.net",
            ),
            ("6281234567890@c.us", "6281234567890@s.whatsapp.net"),
            (
                "6281234567890-1600000000@g.us",
                "6281234567890-1600000000@g.us",
            ),
            ("123456789012345@lid", "123456789012345@lid"),
            (
                "6281234567890:12@s.whatsapp.net",
                "6281234567890:12@s.whatsapp.net",
            ),
        ];
        for (raw, jid) in cases {
            assert_eq!(Phone::parse(raw).unwrap().as_jid(), jid, "{raw}");
        }
    }

    #[test]
    fn refuses_letters_unknown_servers_and_junk() {
        for raw in [
            "",
            "   ",
            "62abc123",
            "call me",
            "1234",
            "62812@example.com",
            "x.y.z@s.whatsapp.net",
            "@s.whatsapp.net",
            "62812\u{0}@s.whatsapp.net",
            "++6281234567",
        ] {
            assert!(Phone::parse(raw).is_err(), "{raw:?} should be refused");
        }
    }
}
