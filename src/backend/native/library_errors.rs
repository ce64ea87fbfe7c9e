//! What whatsapp-rust's answers mean for a job: the library's typed errors mapped to the worker's error
//! codes (the picture query's own answers are read in `picture`). Pure functions, so every row is tested from constructed values.

use std::time::Duration;

use whatsapp_rust::{ContactError, IqError, Jid, ProfileError};

use crate::protocol::{ErrorCode, JobError, Phone};

/// The library's JID for a canonical phone (`Phone` has already applied the gateway's user/group rule),
/// without a `:device` suffix: a picture belongs to the account, not to one of its devices.
pub fn jid(phone: &Phone) -> Result<Jid, JobError> {
    phone
        .as_jid()
        .parse::<Jid>()
        .map(|jid| jid.to_non_ad())
        .map_err(|err| {
            JobError::new(
                ErrorCode::InvalidPhone,
                format!(
                    "phone: {:?} is not a JID WhatsApp accepts: {err}",
                    phone.as_jid()
                ),
            )
        })
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
pub(super) enum Op {
    Fetch,
    Update,
}

pub(super) fn iq_error(err: &IqError, op: Op) -> JobError {
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
pub(super) fn server_error(code: u16, text: &str, backoff: Option<u32>, op: Op) -> JobError {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn server(code: u16, text: &str, backoff: Option<u32>) -> IqError {
        IqError::ServerError {
            code,
            text: text.into(),
            error_type: None,
            backoff,
        }
    }

    /// Every library error a fetch can meet, as constructed values, and the outcome it becomes.
    #[test]
    fn fetch_errors_map_to_named_codes() {
        let cases: Vec<(ContactError, ErrorCode, bool)> = vec![
            (
                IqError::NotConnected.into(),
                ErrorCode::DeviceDisconnected,
                true,
            ),
            (
                IqError::InternalChannelClosed.into(),
                ErrorCode::DeviceDisconnected,
                true,
            ),
            (IqError::Timeout.into(), ErrorCode::Timeout, true),
            (
                server(429, "rate-overlimit", Some(30)).into(),
                ErrorCode::RateLimited,
                true,
            ),
            (
                server(429, "rate-overlimit", None).into(),
                ErrorCode::RateLimited,
                true,
            ),
            (
                server(400, "bad-request", None).into(),
                ErrorCode::InvalidPhone,
                false,
            ),
            (
                server(500, "internal-server-error", None).into(),
                ErrorCode::GatewayError,
                true,
            ),
            (
                server(503, "service-unavailable", None).into(),
                ErrorCode::GatewayError,
                true,
            ),
            (
                server(409, "conflict", None).into(),
                ErrorCode::GatewayError,
                false,
            ),
            (
                IqError::ParseError(anyhow::anyhow!("Profile picture error 500: x")).into(),
                ErrorCode::GatewayError,
                true,
            ),
            (
                ContactError::InvalidJid("x@broadcast".into()),
                ErrorCode::InvalidPhone,
                false,
            ),
        ];
        for (err, code, retryable) in cases {
            let mapped = fetch_error(&err);
            assert_eq!(
                (mapped.code, mapped.retryable),
                (code, retryable),
                "{err:?} → {mapped:?}"
            );
        }
    }

    #[test]
    fn a_rate_limit_carries_the_servers_backoff() {
        let mapped = fetch_error(&server(429, "rate-overlimit", Some(30)).into());
        assert_eq!(mapped.retry_after, Some(Duration::from_secs(30)));
        assert_eq!(
            fetch_error(&server(429, "rate-overlimit", None).into()).retry_after,
            None
        );
    }

    #[test]
    fn update_errors_map_to_named_codes() {
        let cases: Vec<(ProfileError, ErrorCode)> = vec![
            (IqError::NotConnected.into(), ErrorCode::DeviceDisconnected),
            (IqError::Timeout.into(), ErrorCode::Timeout),
            (
                server(406, "not-acceptable", None).into(),
                ErrorCode::InvalidImage,
            ),
            (
                server(429, "rate-overlimit", Some(60)).into(),
                ErrorCode::RateLimited,
            ),
            (
                server(401, "not-authorized", None).into(),
                ErrorCode::DeviceNotLoggedIn,
            ),
            (
                server(500, "internal-server-error", None).into(),
                ErrorCode::GatewayError,
            ),
            (
                ProfileError::InvalidArgument("empty".into()),
                ErrorCode::InvalidImage,
            ),
        ];
        for (err, code) in cases {
            assert_eq!(update_error(&err).code, code, "{err:?}");
        }
        assert_eq!(
            update_timeout(Duration::from_secs(30)).code,
            ErrorCode::Timeout
        );
    }

    #[test]
    fn phones_become_the_libraries_jids() {
        for (phone, user, group) in [
            ("+62 812-3456-7890", "6281234567890", false),
            ("120363025246125486@g.us", "120363025246125486", true),
            ("1234567890123456789", "1234567890123456789", true),
            // A device suffix names one of the account's devices; the picture is the account's.
            ("6281234567890:12@s.whatsapp.net", "6281234567890", false),
        ] {
            let jid = jid(&Phone::parse(phone).unwrap()).unwrap();
            assert_eq!(jid.user.as_str(), user, "{phone}");
            assert_eq!(jid.server == whatsapp_rust::Server::Group, group, "{phone}");
            assert_eq!(jid.device, 0, "{phone}");
        }
    }
}
