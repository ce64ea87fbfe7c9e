//! Phone/JID handling as the gateway does it: `utils.SanitizePhone`, `utils.ParseJID`
//! (with whatsmeow's `types.ParseJID` errors) and the canonical key of the mock world.

/// User server (`s.whatsapp.net`).
pub const USER_SERVER: &str = "s.whatsapp.net";
/// Group server (`g.us`).
pub const GROUP_SERVER: &str = "g.us";
/// Hidden-user server (`lid`).
pub const LID_SERVER: &str = "lid";

/// GOWA `utils.SanitizePhone`: a non-empty value without `@` gets `@s.whatsapp.net` when it is at
/// most 15 bytes long (a `+` counts), `@g.us` when longer. Anything else is returned unchanged;
/// no other cleaning happens (spaces and dashes are kept).
pub fn sanitize_phone(phone: &str) -> String {
    if phone.is_empty() || phone.contains('@') {
        return phone.to_string();
    }
    if phone.len() <= 15 {
        format!("{phone}@{USER_SERVER}")
    } else {
        format!("{phone}@{GROUP_SERVER}")
    }
}

/// A parsed JID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Jid {
    pub user: String,
    pub server: String,
    pub device: Option<String>,
}

impl Jid {
    /// `user@server` without agent/device parts.
    pub fn bare(&self) -> String {
        format!("{}@{}", self.user, self.server)
    }
}

fn go_atoi(s: &str) -> Result<i64, String> {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("strconv.Atoi: parsing {s:?}: invalid syntax"));
    }
    s.parse::<i64>()
        .map_err(|_| format!("strconv.Atoi: parsing {s:?}: value out of range"))
}

/// GOWA `utils.ParseJID` on an already sanitised value: strips one leading `+`; a value without
/// `@` becomes a user JID; whatsmeow parse errors and an empty user are reported as
/// `invalid JID <value>: <reason>`.
pub fn parse_jid(arg: &str) -> Result<Jid, String> {
    let arg = arg.strip_prefix('+').unwrap_or(arg);
    if !arg.contains('@') {
        return Ok(Jid {
            user: arg.to_string(),
            server: USER_SERVER.to_string(),
            device: None,
        });
    }
    let mut parts = arg.split('@');
    let user = parts.next().unwrap_or_default();
    let server = parts.next().unwrap_or_default();
    let mut jid = Jid {
        user: user.to_string(),
        server: server.to_string(),
        device: None,
    };
    let fail = |reason: String| Err(format!("invalid JID {arg}: {reason}"));
    if user.contains('.') {
        let dots: Vec<&str> = user.split('.').collect();
        if dots.len() != 2 {
            return fail("unexpected number of dots in JID".into());
        }
        jid.user = dots[0].to_string();
        let colons: Vec<&str> = dots[1].split(':').collect();
        if colons.len() > 2 {
            return fail("unexpected number of colons in JID".into());
        }
        // whatsmeow's types.ParseJID says "device" for the agent too.
        if let Err(e) = go_atoi(colons[0]) {
            return fail(format!("failed to parse device from JID: {e}"));
        }
        if colons.len() == 2 {
            if let Err(e) = go_atoi(colons[1]) {
                return fail(format!("failed to parse device from JID: {e}"));
            }
            jid.device = Some(colons[1].to_string());
        }
    } else if user.contains(':') {
        let colons: Vec<&str> = user.split(':').collect();
        if colons.len() != 2 {
            return fail("unexpected number of colons in JID".into());
        }
        jid.user = colons[0].to_string();
        if let Err(e) = go_atoi(colons[1]) {
            return fail(format!("failed to parse device from JID: {e}"));
        }
        jid.device = Some(colons[1].to_string());
    }
    if jid.user.is_empty() {
        return fail("no server specified".into());
    }
    Ok(jid)
}

/// The key under which the mock world stores a target: the sanitised value with one leading `+`
/// removed and, for user/LID JIDs, any agent/device suffix (`.0`, `:12`) dropped, so
/// `+6281@s.whatsapp.net`, `6281` and `6281:3@s.whatsapp.net` are the same contact. Nothing is
/// trimmed: ` 6281` (a raw `+` in a query) is another, unregistrable, user.
pub fn world_key(phone_or_jid: &str) -> String {
    let s = sanitize_phone(phone_or_jid);
    let s = s.strip_prefix('+').unwrap_or(&s);
    match s.split_once('@') {
        Some((user, server)) if server == USER_SERVER || server == LID_SERVER => {
            let user = user.split([':', '.']).next().unwrap_or(user);
            format!("{user}@{server}")
        }
        _ => s.to_string(),
    }
}

/// Whether the mock considers this user part a registrable phone number (digits only).
pub fn is_phone_number(user: &str) -> bool {
    !user.is_empty() && user.len() <= 20 && user.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitize() {
        assert_eq!(sanitize_phone(""), "");
        assert_eq!(sanitize_phone("6281"), "6281@s.whatsapp.net");
        assert_eq!(
            sanitize_phone("+62812345678901"),
            "+62812345678901@s.whatsapp.net"
        );
        assert_eq!(sanitize_phone("6281234567890123"), "6281234567890123@g.us");
        assert_eq!(sanitize_phone("1@lid"), "1@lid");
    }

    #[test]
    fn parse_errors() {
        assert_eq!(
            parse_jid("@s.whatsapp.net").unwrap_err(),
            "invalid JID @s.whatsapp.net: no server specified"
        );
        assert_eq!(
            parse_jid("x.y.z@s.whatsapp.net").unwrap_err(),
            "invalid JID x.y.z@s.whatsapp.net: unexpected number of dots in JID"
        );
        assert_eq!(
            parse_jid("62.x@s.whatsapp.net").unwrap_err(),
            "invalid JID 62.x@s.whatsapp.net: failed to parse device from JID: strconv.Atoi: parsing \"x\": invalid syntax"
        );
        assert_eq!(parse_jid("+62@s.whatsapp.net").unwrap().user, "62");
        assert_eq!(
            parse_jid("62:12@s.whatsapp.net").unwrap().device.as_deref(),
            Some("12")
        );
    }

    #[test]
    fn keys() {
        assert_eq!(world_key("+6281"), "6281@s.whatsapp.net");
        assert_eq!(world_key("6281:3@s.whatsapp.net"), "6281@s.whatsapp.net");
        assert_eq!(world_key("123-456@g.us"), "123-456@g.us");
        assert_eq!(world_key(" 6281"), " 6281@s.whatsapp.net", "no trimming");
    }
}
