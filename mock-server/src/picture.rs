//! The picture query of GOWA's `serviceUser.Avatar` (src/usecase/user.go): whatsmeow's
//! `GetProfilePictureInfo` (user.go) under a 5 s deadline, over the mock's world.
//!
//! * `is_community` is forced false for `@s.whatsapp.net` targets; otherwise a failed first
//!   query (anything but a timeout) is retried once with `IsCommunity: false`, and the second
//!   answer counts. Each query draws its own faults.
//! * timeout → 408 `CONTEXT_ERROR` "Error timeout get avatar!" (no retry);
//! * IQ 404 `item-not-found` → whatsmeow `ErrProfilePictureNotSet` → 500 "that user or group
//!   does not have a profile picture"; IQ 401 → `ErrProfilePictureUnauthorized` → 500 "the user
//!   has hidden their profile picture from you"; any other IQ error → 500 `info query returned
//!   status N: text` (`Recovery` turns the untyped error into `INTERNAL_SERVER_ERROR`).
//! * A number that is not on WhatsApp reaches this step only with account validation off, or
//!   for servers that are not looked up. What WhatsApp answers then is not in any source: the
//!   mock answers IQ 404, i.e. "that user or group does not have a profile picture" (the one
//!   public trace, mgp25/Chat-API#1287, shows `404 item-not-found` for a number that does not
//!   exist).

use axum::response::Response;

use crate::errors::{HIDDEN, NO_PICTURE, avatar_timeout, internal};
use crate::faults::{Faults, Injected};
use crate::jid::{Jid, USER_SERVER, world_key};
use crate::state::AppState;
use crate::world::Outcome;

/// How one query failed.
enum Failure {
    Timeout,
    Error(&'static str),
}

/// One `GetProfilePictureInfo` call: the picture id, or how it failed.
async fn query(state: &AppState, key: &str, faults: &Faults) -> Result<String, Failure> {
    match faults.draw_query() {
        Some(Injected::Timeout(d)) => {
            tokio::time::sleep(d).await;
            return Err(Failure::Timeout);
        }
        Some(other) => return Err(Failure::Error(other.iq_error().unwrap_or(""))),
        None => {}
    }
    match state.lookup(key) {
        Outcome::Set { id } => Ok(id),
        Outcome::Hidden => Err(Failure::Error(HIDDEN)),
        Outcome::NotSet | Outcome::NotOnWhatsapp => Err(Failure::Error(NO_PICTURE)),
    }
}

fn answer(failure: Failure) -> Response {
    match failure {
        Failure::Timeout => avatar_timeout(),
        Failure::Error(text) => internal(text),
    }
}

/// The picture id of `jid`, or GOWA's answer; also returns the world key it was found under.
pub async fn get(
    state: &AppState,
    jid: &Jid,
    is_community: bool,
    faults: &Faults,
) -> Result<(String, String), Response> {
    let key = world_key(&jid.bare());
    let community = is_community && jid.server != USER_SERVER;
    let first = query(state, &key, faults).await;
    let result = match first {
        Err(Failure::Error(_)) if community => query(state, &key, faults).await,
        other => other,
    };
    result.map(|id| (id, key)).map_err(answer)
}
