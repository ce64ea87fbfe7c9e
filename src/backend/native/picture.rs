//! The picture query, sent by this backend itself rather than through the library's
//! `get_profile_picture`: whatsapp-rust 0.7.0 folds WhatsApp's 404 ("no picture") and 401 ("hidden from
//! you") into one `Ok(None)`, and a producer told `not_set` may clear an avatar it holds. So the query is
//! built by the library's own `ProfilePictureSpec` (with the privacy token attached, as the library
//! does), sent with `Client::send_iq`, and the answer read here:
//!
//! | WhatsApp answers | outcome |
//! |---|---|
//! | `<picture id=… url=…/>` | `ok` |
//! | error 404, nested in `<picture>` or as the IQ's own error | `not_set` |
//! | error 401 or 403 | `hidden` |
//! | error 429 | `rate_limited`, waiting at least the server's `backoff` |
//! | anything else | a named error ([`super::answer`]) |
//!
//! Building the query and reading the answer are pure functions, tested from nodes the library builds
//! and parses; only [`privacy_token`] needs a client.

use std::time::Duration;

use whatsapp_rust::wacore::iq::contacts::{ProfilePictureSpec, ProfilePictureType};
use whatsapp_rust::wacore::iq::spec::IqSpec;
use whatsapp_rust::wacore::iq::tctoken::{TcTokenConfig, is_tc_token_expired_with_at};
use whatsapp_rust::wacore::xml::DisplayableNodeRef;
use whatsapp_rust::wacore_binary::{JidExt, NodeRef};
use whatsapp_rust::{Client, IqError, Jid};

use super::library_errors::{self, Op};
use crate::backend::Lookup;
use crate::protocol::{AvatarInfo, ErrorCode, JobError};

/// The query for `jid`'s picture: `<picture type="preview"|"image" query="url">`, with the privacy token
/// as a `<tctoken>` child when there is one, answered within `timeout` (the library's default is 75 s).
pub fn query(
    jid: &Jid,
    preview: bool,
    timeout: Duration,
    tc_token: Option<Vec<u8>>,
) -> ProfilePictureSpec {
    let kind = if preview {
        ProfilePictureType::Preview
    } else {
        ProfilePictureType::Full
    };
    let spec = ProfilePictureSpec::new(jid, kind).with_timeout(timeout);
    match tc_token {
        Some(token) => spec.with_tc_token(token),
        None => spec,
    }
}

/// The picture `type` of the result: the one asked for, as the library returns none of its own.
pub fn picture_type(spec: &ProfilePictureSpec) -> &'static str {
    spec.picture_type.as_str()
}

/// What WhatsApp's answer to `spec` means for the job. `response` is what `Client::send_iq` returned:
/// the answer node, or the library's error (an IQ of `type="error"` arrives as `IqError::ServerError`).
pub fn answer(
    spec: &ProfilePictureSpec,
    response: Result<&NodeRef<'_>, &IqError>,
) -> Result<Lookup, JobError> {
    let node = match response {
        Ok(node) => node,
        Err(IqError::ServerError {
            code,
            text,
            backoff,
            ..
        }) => return refused(*code, text, *backoff),
        Err(err) => return Err(library_errors::iq_error(err, Op::Fetch)),
    };
    if let Some(error) = node
        .get_optional_child("picture")
        .and_then(|picture| picture.get_optional_child("error"))
    {
        let mut attrs = error.attrs();
        let code = attrs
            .optional_u64("code")
            .and_then(|code| u16::try_from(code).ok())
            .unwrap_or(0);
        let text = attrs
            .optional_string("text")
            .map(|text| text.into_owned())
            .unwrap_or_default();
        let backoff = attrs
            .optional_u64("backoff")
            .and_then(|seconds| u32::try_from(seconds).ok());
        return refused(code, &text, backoff);
    }
    // No error: the library's own parser reads the picture.
    match spec.parse_response(node) {
        Ok(Some(picture)) => Ok(Lookup::Picture(AvatarInfo {
            url: picture.url,
            id: picture.id,
            kind: picture_type(spec).to_string(),
        })),
        Ok(None) => Err(JobError::new(
            ErrorCode::GatewayError,
            format!(
                "WhatsApp answered the picture query with neither a picture nor an error: {}",
                shown(node)
            ),
        )
        .with_retryable(false)),
        Err(err) => Err(JobError::new(
            ErrorCode::GatewayError,
            format!("WhatsApp's answer to the picture query could not be read: {err}"),
        )),
    }
}

/// An error code from WhatsApp, nested in `<picture>` or on the IQ itself.
fn refused(code: u16, text: &str, backoff: Option<u32>) -> Result<Lookup, JobError> {
    match code {
        404 => Ok(Lookup::NotSet),
        401 | 403 => Ok(Lookup::Hidden),
        _ => Err(library_errors::server_error(code, text, backoff, Op::Fetch)),
    }
}

/// An answer node as XML, cut short for an error message.
fn shown(node: &NodeRef<'_>) -> String {
    let xml = DisplayableNodeRef(node).to_string();
    match xml.char_indices().nth(300) {
        Some((end, _)) => format!("{}…", &xml[..end]),
        None => xml,
    }
}

/// The privacy token ("tctoken") the library would attach to this query: the contact's stored token,
/// looked up under its LID when one is known, and only while it has not expired. None for groups, for
/// the account itself (WhatsApp never answers that query with a token) and when none is stored.
///
/// The library's own lookup is crate-private in 0.7.0, so this follows it through public calls. One
/// difference: the expiry window is the library's default (four weekly buckets), because the server's
/// A/B overrides of that window are crate-private too.
pub async fn privacy_token(client: &Client, jid: &Jid) -> Option<Vec<u8>> {
    if !(jid.is_pn() || jid.is_lid()) {
        return None;
    }
    let own = [client.pn(), client.lid()]
        .into_iter()
        .flatten()
        .any(|own| own.is_same_user_as(jid));
    if own {
        return None;
    }
    let key = if jid.is_lid() {
        jid.user.to_string()
    } else {
        match client.get_lid_pn_entry(jid).await {
            Ok(Some(entry)) => entry.lid.to_string(),
            _ => jid.user.to_string(),
        }
    };
    let entry = client.tc_token().get(&key).await.ok().flatten()?;
    usable_token(entry.token, entry.token_timestamp, unix_now())
}

/// A stored token, if it is still worth sending at `now` (Unix seconds).
pub fn usable_token(token: Vec<u8>, received_at: i64, now: i64) -> Option<Vec<u8>> {
    let expired = is_tc_token_expired_with_at(received_at, &TcTokenConfig::default(), now);
    (!token.is_empty() && !expired).then_some(token)
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| {
            i64::try_from(since.as_secs()).unwrap_or(i64::MAX)
        })
}
