//! Whether a number has a WhatsApp account. The picture query cannot tell: for a number without an
//! account WhatsApp answers it like a picture that is not set (or hidden). So when a query about a
//! phone-number user ends in `not_set` or `hidden`, the number is checked with a usync `is_on_whatsapp`
//! query, and the answer is kept for `native.on_whatsapp_cache_ms`. Only a successful check that says
//! "not registered" becomes `not_on_whatsapp`; a check that fails is retryable, never a verdict.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use whatsapp_rust::{ContactError, IqError, IsOnWhatsAppResult, Jid};

use super::library_errors::{self, Op};
use crate::protocol::{ErrorCode, JobError};

/// Past this many numbers the cache first drops what has expired, then starts over.
const MAX_ENTRIES: usize = 100_000;

/// Whether the outcome of a picture query about `jid` needs a registration check: only phone-number
/// users (a group's or a LID's existence is not in question when the query reached it).
pub fn applies(jid: &Jid) -> bool {
    jid.is_pn()
}

/// The answers of successful checks, by number, for a while.
#[derive(Debug)]
pub struct Registrations {
    ttl: Duration,
    known: Mutex<HashMap<String, (bool, Instant)>>,
}

impl Registrations {
    /// `ttl` zero keeps nothing: every `not_set`/`hidden` answer is checked again.
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            known: Mutex::new(HashMap::new()),
        }
    }

    /// What a check still fresh said about `number`.
    pub fn known(&self, number: &str) -> Option<bool> {
        self.known_at(number, Instant::now())
    }

    pub fn remember(&self, number: &str, registered: bool) {
        self.remember_at(number, registered, Instant::now());
    }

    fn known_at(&self, number: &str, now: Instant) -> Option<bool> {
        let known = self.known.lock().unwrap_or_else(PoisonError::into_inner);
        let (registered, at) = known.get(number)?;
        (now.saturating_duration_since(*at) < self.ttl).then_some(*registered)
    }

    fn remember_at(&self, number: &str, registered: bool, now: Instant) {
        if self.ttl.is_zero() {
            return;
        }
        let mut known = self.known.lock().unwrap_or_else(PoisonError::into_inner);
        if known.len() >= MAX_ENTRIES {
            known.retain(|_, (_, at)| now.saturating_duration_since(*at) < self.ttl);
            if known.len() >= MAX_ENTRIES {
                known.clear();
            }
        }
        known.insert(number.to_string(), (registered, now));
    }
}

/// What `is_on_whatsapp(&[jid])` answered, as a verdict or a retryable error.
pub fn registered(
    jid: &Jid,
    answer: Result<Vec<IsOnWhatsAppResult>, ContactError>,
) -> Result<bool, JobError> {
    let number = &jid.user;
    let results = answer.map_err(|err| check_failed(number, &err))?;
    let Some(result) = results.iter().find(|result| {
        result.jid.user == *number || result.pn_jid.as_ref().is_some_and(|pn| pn.user == *number)
    }) else {
        return Err(JobError::new(
            ErrorCode::GatewayError,
            format!("could not check whether +{number} is on WhatsApp: the answer did not name it"),
        )
        .with_retryable(true));
    };
    if let Some(error) = &result.contact_error {
        let code = error.code.unwrap_or(0);
        let text = error.text.clone().unwrap_or_default();
        let mut failed = JobError::new(
            if code == 429 {
                ErrorCode::RateLimited
            } else {
                ErrorCode::GatewayError
            },
            format!("could not check whether +{number} is on WhatsApp: WhatsApp answered {code} {text:?}"),
        )
        .with_retryable(true);
        if let Some(seconds) = error.backoff {
            failed = failed.with_retry_after(Duration::from_secs(u64::from(seconds)));
        }
        return Err(failed);
    }
    Ok(result.is_registered)
}

/// The job error for a number the check found without an account: a successful check, so confirmed.
pub fn not_on_whatsapp(jid: &Jid) -> JobError {
    JobError::new(
        ErrorCode::NotOnWhatsapp,
        format!("+{} has no WhatsApp account", jid.user),
    )
    .confirmed()
}

/// The check's own deadline passed.
pub fn check_timed_out(jid: &Jid, after: Duration) -> JobError {
    JobError::new(
        ErrorCode::Timeout,
        format!(
            "could not check whether +{} is on WhatsApp: no answer within {} ms",
            jid.user,
            after.as_millis()
        ),
    )
}

/// A failed check: retryable whatever the cause, and never `not_on_whatsapp`.
fn check_failed(number: &str, err: &ContactError) -> JobError {
    let mapped = match err {
        ContactError::Iq(iq) => library_errors::iq_error(iq, Op::Fetch),
        other => JobError::new(ErrorCode::GatewayError, other.to_string()),
    };
    let code = match mapped.code {
        ErrorCode::DeviceDisconnected | ErrorCode::Timeout | ErrorCode::RateLimited => mapped.code,
        _ => ErrorCode::GatewayError,
    };
    let said = match err {
        ContactError::Iq(IqError::ServerError { code, text, .. }) => {
            format!("WhatsApp answered {code} {text:?}")
        }
        other => other.to_string(),
    };
    let failed = JobError::new(
        code,
        format!("could not check whether +{number} is on WhatsApp: {said}"),
    )
    .with_retryable(true);
    match mapped.retry_after {
        Some(wait) => failed.with_retry_after(wait),
        None => failed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_keeps_answers_for_its_time_only() {
        let cache = Registrations::new(Duration::from_secs(60));
        let start = Instant::now();
        cache.remember_at("15550001", false, start);
        cache.remember_at("15550002", true, start);
        assert_eq!(cache.known_at("15550001", start), Some(false));
        assert_eq!(cache.known_at("15550002", start), Some(true));
        assert_eq!(cache.known_at("15550003", start), None);
        let later = start + Duration::from_secs(61);
        assert_eq!(cache.known_at("15550001", later), None);

        let off = Registrations::new(Duration::ZERO);
        off.remember_at("15550001", false, start);
        assert_eq!(off.known_at("15550001", start), None);
    }

    #[test]
    fn a_failed_check_is_retryable_and_never_a_verdict() {
        let jid: Jid = "15551234567@s.whatsapp.net".parse().unwrap();
        let server = |code, backoff| IqError::ServerError {
            code,
            text: "x".into(),
            error_type: None,
            backoff,
        };
        let cases: Vec<(ContactError, ErrorCode)> = vec![
            (IqError::NotConnected.into(), ErrorCode::DeviceDisconnected),
            (IqError::Timeout.into(), ErrorCode::Timeout),
            (server(429, Some(20)).into(), ErrorCode::RateLimited),
            (server(400, None).into(), ErrorCode::GatewayError),
            (server(500, None).into(), ErrorCode::GatewayError),
            (
                IqError::ParseError(anyhow::anyhow!("usync contact error 429")).into(),
                ErrorCode::GatewayError,
            ),
            (
                ContactError::InvalidJid("x".into()),
                ErrorCode::GatewayError,
            ),
        ];
        for (err, code) in cases {
            let shown = format!("{err:?}");
            let failed = registered(&jid, Err(err)).unwrap_err();
            assert_eq!((failed.code, failed.retryable), (code, true), "{shown}");
            assert!(failed.message.contains("could not check"), "{failed:?}");
        }
        let limited = registered(&jid, Err(server(429, Some(20)).into())).unwrap_err();
        assert_eq!(limited.retry_after, Some(Duration::from_secs(20)));
        // An answer that does not name the number is no verdict either.
        let silent = registered(&jid, Ok(Vec::new())).unwrap_err();
        assert!(silent.retryable, "{silent:?}");
    }
}
