//! GOWA's `ValidateJidWithLogin` after `MustLogin`, and `IsOnWhatsapp`
//! (src/pkg/utils/whatsapp.go), over the mock's world.
//!
//! * `ParseJID` (500 on a malformed JID);
//! * an `@lid` JID skips the lookup (the mock has no LID store, so it stays a LID);
//! * with `WHATSAPP_ACCOUNT_VALIDATION` on (the default), a value containing `@s.whatsapp.net`
//!   is looked up: the sanitised string with that suffix trimmed, `+` prepended when missing,
//!   goes to whatsmeow's `IsOnWhatsApp`. The mock's WhatsApp answers "registered" when that
//!   number, without its `+`, is all digits and the world does not say `not_on_whatsapp`; so
//!   ` 628…` (a raw `+` in the query) and `628…:12` (a device suffix) are not registered. Any
//!   error of the lookup (the `lookup_error` and `rate_overlimit` faults) makes `IsOnWhatsapp`
//!   return false, like a number that is not registered: 400 `INVALID_JID` "Phone <sanitised>
//!   is not on whatsapp". Groups, newsletters and other servers are not looked up.

use axum::response::Response;

use crate::errors::{internal, invalid_jid};
use crate::faults::Faults;
use crate::jid::{Jid, LID_SERVER, USER_SERVER, is_phone_number, parse_jid, world_key};
use crate::state::AppState;
use crate::world::Outcome;

const USER_SUFFIX: &str = "@s.whatsapp.net";

/// `IsOnWhatsapp(client, jid)` on the sanitised value.
fn is_on_whatsapp(state: &AppState, sanitised: &str, faults: &Faults) -> bool {
    if !sanitised.contains(USER_SUFFIX) {
        return true;
    }
    let phone = sanitised.strip_suffix(USER_SUFFIX).unwrap_or(sanitised);
    if phone.is_empty() {
        return false;
    }
    if faults.draw_lookup_failure() {
        return false;
    }
    let number = phone.strip_prefix('+').unwrap_or(phone);
    is_phone_number(number)
        && state.lookup(&world_key(&format!("{number}@{USER_SERVER}"))) != Outcome::NotOnWhatsapp
}

/// The JID to query, or GOWA's answer.
pub fn validate_jid(state: &AppState, sanitised: &str, faults: &Faults) -> Result<Jid, Response> {
    let jid = parse_jid(sanitised).map_err(|e| internal(&e))?;
    if jid.server == LID_SERVER {
        return Ok(jid);
    }
    if state.account_validation && !is_on_whatsapp(state, sanitised, faults) {
        return Err(invalid_jid(&format!(
            "Phone {sanitised} is not on whatsapp"
        )));
    }
    Ok(jid)
}
