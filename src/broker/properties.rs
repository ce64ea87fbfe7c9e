//! The AMQP properties of a message the worker republishes (a hop to a device's lane, a retry, a dead
//! letter), built fresh from an allow-list of the producer's: never `user_id` (the broker checks it against
//! the worker's own user and closes the channel on a mismatch), never the producer's `expiration` (a
//! deadline travels as [`super::headers::EXPIRES_AT`]), never headers beyond a budget.

use std::time::Duration;

use lapin::BasicProperties;
use lapin::types::FieldTable;

use super::headers::{self, JobHeaders};

/// A job the worker sends on (to an inbox, a lane, a delay queue): the producer's allowed properties and
/// headers, the worker's job headers, `extra` string headers, and `expiration` as the message's TTL.
pub fn republished(
    from: &BasicProperties,
    job: &JobHeaders,
    extra: &[(&str, &str)],
    expiration: Option<Duration>,
) -> BasicProperties {
    let mut table = job.write(headers::producer_headers(from.headers().as_ref()));
    for (key, value) in extra {
        headers::put_str(&mut table, key, value);
    }
    let out = carried(from, table);
    match expiration {
        Some(ttl) => out.with_expiration(ttl.as_millis().max(1).to_string().into()),
        None => out,
    }
}

/// The producer's properties worth carrying, with `headers` as the message's headers.
pub fn carried(from: &BasicProperties, headers: FieldTable) -> BasicProperties {
    let out = carried_but_reply_to(from, headers);
    match from.reply_to() {
        Some(value) => out.with_reply_to(value.clone()),
        None => out,
    }
}

/// As [`carried`] without `reply_to`: the result goes to the results queue (a replayed dead letter whose
/// reply queue is gone).
pub fn carried_but_reply_to(from: &BasicProperties, headers: FieldTable) -> BasicProperties {
    let mut out = BasicProperties::default().with_headers(headers);
    if let Some(value) = from.content_type() {
        out = out.with_content_type(value.clone());
    }
    if let Some(value) = from.content_encoding() {
        out = out.with_content_encoding(value.clone());
    }
    if let Some(value) = from.correlation_id() {
        out = out.with_correlation_id(value.clone());
    }
    if let Some(value) = from.message_id() {
        out = out.with_message_id(value.clone());
    }
    if let Some(value) = from.timestamp() {
        out = out.with_timestamp(*value);
    }
    if let Some(value) = from.kind() {
        out = out.with_type(value.clone());
    }
    if let Some(value) = from.app_id() {
        out = out.with_app_id(value.clone());
    }
    if let Some(value) = from.priority() {
        out = out.with_priority(*value);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_id_and_expiration_never_travel() {
        let producer = BasicProperties::default()
            .with_user_id("producer".into())
            .with_expiration("60000".into())
            .with_reply_to("amq.gen-1".into())
            .with_correlation_id("c1".into())
            .with_priority(7);
        let out = carried(&producer, FieldTable::default());
        assert_eq!(out.user_id(), &None);
        assert_eq!(out.expiration(), &None);
        assert_eq!(
            out.reply_to().as_ref().map(|q| q.as_str()),
            Some("amq.gen-1")
        );
        assert_eq!(
            out.correlation_id().as_ref().map(|c| c.as_str()),
            Some("c1")
        );
        assert_eq!(out.priority(), &Some(7));
    }
}
