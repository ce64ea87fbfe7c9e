//! What whatsapp-rust's answers mean for a job: the library's typed errors mapped to the worker's error
//! codes, and its pictures to result fields. Pure functions, so every row is tested from constructed values.

use std::time::Duration;

use whatsapp_rust::{ContactError, IqError, Jid, ProfileError, ProfilePicture};

use crate::backend::Lookup;
use crate::protocol::{AvatarInfo, ErrorCode, JobError, Phone};

/// The IQ the job asked for, echoed as the result's `type`: this library returns no type of its own.
pub fn picture_type(preview: bool) -> &'static str {
    if preview { "preview" } else { "image" }
}

/// The library's JID for a canonical phone (`Phone` has already applied the gateway's user/group rule).
pub fn jid(phone: &Phone) -> Result<Jid, JobError> {
    phone.as_jid().parse::<Jid>().map_err(|err| {
        JobError::new(
            ErrorCode::InvalidPhone,
            format!(
                "phone: {:?} is not a JID WhatsApp accepts: {err}",
                phone.as_jid()
            ),
        )
    })
}

/// `None` covers both "no picture" and "hidden by privacy": the library folds the server's 404 and 401
/// into one answer, so this backend reports `not_set` for both (docs/native.md).
pub fn lookup(picture: Option<ProfilePicture>, preview: bool) -> Lookup {
    match picture {
        Some(picture) => Lookup::Picture(AvatarInfo {
            url: picture.url,
            id: picture.id,
            kind: picture_type(preview).to_string(),
        }),
        None => Lookup::NotSet,
    }
}

pub fn fetch_error(err: &ContactError) -> JobError {
    match err {
        ContactError::Iq(iq) => iq_error(iq, Op::Fetch),
        ContactError::InvalidJid(jid) => JobError::new(
            ErrorCode::InvalidPhone,
            format!("phone: {jid} is not supported"),
        ),
        other => JobError::new(ErrorCode::GatewayError, format!("WhatsApp: {other}")),
    }
}

pub fn update_error(err: &ProfileError) -> JobError {
    match err {
        ProfileError::Iq(iq) => iq_error(iq, Op::Update),
        ProfileError::Client(client) => JobError::new(
            ErrorCode::DeviceDisconnected,
            format!("the session could not send: {client}"),
        ),
        ProfileError::InvalidArgument(reason) => JobError::new(
            ErrorCode::InvalidImage,
            format!("WhatsApp refused the picture: {reason}"),
        ),
        other => JobError::new(ErrorCode::Internal, format!("WhatsApp client: {other}")),
    }
}

/// The update's own deadline passed (the library has none for this call).
pub fn update_timeout(after: Duration) -> JobError {
    JobError::new(
        ErrorCode::Timeout,
        format!(
            "WhatsApp did not confirm the new picture within {} ms",
            after.as_millis()
        ),
    )
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Fetch,
    Update,
}

fn iq_error(err: &IqError, op: Op) -> JobError {
    match err {
        IqError::NotConnected
        | IqError::Disconnected(_)
        | IqError::InternalChannelClosed
        | IqError::Socket(_)
        | IqError::ClientState(_) => JobError::new(
            ErrorCode::DeviceDisconnected,
            format!("the device's WhatsApp session is not connected ({err})"),
        ),
        IqError::Timeout => JobError::new(ErrorCode::Timeout, "WhatsApp did not answer in time"),
        IqError::ServerError {
            code,
            text,
            backoff,
            ..
        } => server_error(*code, text, *backoff, op),
        other => JobError::new(ErrorCode::GatewayError, format!("WhatsApp: {other}")),
    }
}

/// An error answer from WhatsApp's server. `gateway_error` here means the server, as there is no gateway.
fn server_error(code: u16, text: &str, backoff: Option<u32>, op: Op) -> JobError {
    let said = format!("WhatsApp answered {code} {text:?}");
    match code {
        429 => {
            let err = JobError::new(ErrorCode::RateLimited, said);
            match backoff {
                Some(seconds) => err.with_retry_after(Duration::from_secs(u64::from(seconds))),
                None => err,
            }
        }
        406 if op == Op::Update => JobError::new(
            ErrorCode::InvalidImage,
            format!("{said}: not a valid picture"),
        ),
        400 if op == Op::Fetch => JobError::new(
            ErrorCode::InvalidPhone,
            format!("{said}: the target JID was refused"),
        ),
        401 | 403 if op == Op::Update => JobError::new(
            ErrorCode::DeviceNotLoggedIn,
            format!("{said}: the session may not change its picture"),
        ),
        500..=599 => JobError::new(ErrorCode::GatewayError, said),
        _ => JobError::new(ErrorCode::GatewayError, said).with_retryable(false),
    }
}
