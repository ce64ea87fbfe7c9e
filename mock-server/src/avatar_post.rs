//! `POST /user/avatar`: GOWA's `UserChangeAvatar` (src/ui/rest/user.go) and
//! `serviceUser.ChangeAvatar` (src/usecase/user.go), in their order: bind the body and find the
//! `avatar` file ([`crate::form`]), no client (500 `INVALID_WA_CLI`), `MustLogin` (401), decode
//! and convert ([`crate::upload`]), then `SetGroupPhoto`: a timeout there is a 504 once the
//! request's 45 s deadline has passed (`middleware.RequestTimeout`).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use axum::http::HeaderMap;
use axum::response::Response;
use bytes::Bytes;

use crate::avatar_get::must_login;
use crate::cdn::{OwnAvatar, sha256_hex};
use crate::devices::{DeviceState, bare};
use crate::envelope::success;
use crate::errors::{gateway_timeout, internal, no_client};
use crate::faults::Injected;
use crate::form::avatar_file;
use crate::jid::world_key;
use crate::select::Selected;
use crate::state::{AppState, read, write};
use crate::upload::Processed;
use crate::uploads::StoredPicture;
use crate::world::Outcome;

/// The handler, after the device middleware chose `dev`; `started` is when the request arrived.
pub async fn post_avatar(
    state: &AppState,
    dev: &Selected,
    headers: &HeaderMap,
    body: Bytes,
    started: Instant,
) -> Result<Response, Response> {
    let faults = state.faults();
    faults.delay().await;
    let upload = avatar_file(headers, body).await?;
    if dev.state == DeviceState::NoClient {
        return Err(no_client());
    }
    must_login(dev, &faults)?;
    let processed = state
        .decodes
        .process(upload.clone())
        .await
        .map_err(|e| internal(&e))?;
    match faults.draw_upload() {
        Some(Injected::Timeout(deadline)) => {
            tokio::time::sleep_until((started + deadline).into()).await;
            return Err(gateway_timeout());
        }
        Some(other) => return Err(internal(other.iq_error().unwrap_or(""))),
        None => {}
    }
    store(state, dev, &upload, processed);
    Ok(success::<()>("Success change avatar", None))
}

fn new_picture_id(previous: Option<&str>) -> String {
    loop {
        let id = rand::random_range(1_000_000_000u64..2_000_000_000).to_string();
        if Some(id.as_str()) != previous {
            return id;
        }
    }
}

/// Makes the upload the device's own picture: new id, stored JPEGs, world entry of its JID.
fn store(state: &AppState, dev: &Selected, upload: &[u8], p: Processed) {
    let mut devices = write(&state.devices);
    let previous = devices
        .get(&dev.id)
        .and_then(|d| d.avatar.as_ref().map(|a| a.id.clone()));
    let id = new_picture_id(previous.as_deref());
    let avatar = OwnAvatar {
        id: id.clone(),
        width: p.edge,
        height: p.edge,
        format: "jpeg",
        size: p.jpeg.len(),
        sha256: sha256_hex(&p.jpeg),
        uploaded_format: p.uploaded_format,
        uploaded_width: p.uploaded_width,
        uploaded_height: p.uploaded_height,
        uploaded_size: upload.len(),
        uploaded_sha256: sha256_hex(upload),
    };
    let jid = devices
        .get_mut(&dev.id)
        .map(|d| {
            d.avatar = Some(Arc::new(avatar));
            d.jid.clone()
        })
        .unwrap_or_else(|| dev.jid.clone());
    drop(devices);
    let picture = StoredPicture {
        full: Bytes::from(p.jpeg),
        preview: Bytes::from(p.preview),
    };
    let current: HashSet<String> = read(&state.devices)
        .list
        .iter()
        .filter_map(|d| d.avatar.as_ref().map(|a| a.id.clone()))
        .collect();
    write(&state.uploads).insert(id.clone(), picture, |old| current.contains(old));
    write(&state.contacts).insert(world_key(&bare(&jid)), Outcome::Set { id });
}
