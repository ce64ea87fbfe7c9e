//! `GET /user/avatar`: GOWA's `UserAvatar` (src/ui/rest/user.go) and `serviceUser.Avatar`
//! (src/usecase/user.go), in their order: bind the query (500), `SanitizePhone`, no client
//! (500 `INVALID_WA_CLI`), blank phone (400 `VALIDATION_ERROR`), `MustLogin` (401), JID checks
//! and the on-WhatsApp lookup ([`crate::lookup`]), the picture query ([`crate::picture`]).

use axum::response::Response;
use serde::Serialize;

use crate::devices::DeviceState;
use crate::envelope::success;
use crate::errors::{NOT_CONNECTED, NOT_LOGGED_IN, auth, internal, no_client, validation};
use crate::faults::Faults;
use crate::jid::sanitize_phone;
use crate::query::bind_avatar;
use crate::select::Selected;
use crate::state::{AppState, read};
use crate::{lookup, picture};

#[derive(Serialize)]
struct AvatarResponse<'a> {
    url: &'a str,
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
}

/// `MustLogin` (plus the `not_connected` fault).
pub fn must_login(dev: &Selected, faults: &Faults) -> Result<(), Response> {
    match dev.state {
        DeviceState::Disconnected => Err(auth(NOT_CONNECTED)),
        DeviceState::NotLoggedIn => Err(auth(NOT_LOGGED_IN)),
        _ if faults.draw_not_connected() => Err(auth(NOT_CONNECTED)),
        _ => Ok(()),
    }
}

/// The handler, after the device middleware chose `dev`.
pub async fn get_avatar(
    state: &AppState,
    dev: &Selected,
    raw_query: &str,
) -> Result<Response, Response> {
    let faults = state.faults();
    faults.delay().await;
    let request = bind_avatar(raw_query).map_err(|e| internal(&e))?;
    let phone = sanitize_phone(&request.phone);
    if dev.state == DeviceState::NoClient {
        return Err(no_client());
    }
    if phone.is_empty() {
        return Err(validation("phone: cannot be blank."));
    }
    must_login(dev, &faults)?;
    let jid = lookup::validate_jid(state, &phone, &faults)?;
    let (id, key) = picture::get(state, &jid, request.is_community, &faults).await?;
    let url = read(&state.contact_urls)
        .get(&key)
        .cloned()
        .unwrap_or_else(|| {
            state
                .cdn
                .url(&state.public_base, &id, request.is_preview, &key)
        });
    let kind = if request.is_preview {
        "preview"
    } else {
        "image"
    };
    let results = AvatarResponse {
        url: &url,
        id: &id,
        kind,
    };
    Ok(success("Success get avatar", Some(&results)))
}
