//! The `x-avatar-*` headers a job carries while it travels through the worker's queues, and the ones the
//! worker sets on dead letters. Operators and producers read them; the names are part of the contract.
//!
//! Producers can set any header, ours included, so every value read back is clamped to what the worker
//! itself could have written: a forged header changes at most the job that carries it.

use lapin::types::{AMQPValue, FieldArray, FieldTable, LongString, ShortString};

pub const REASON: &str = "x-avatar-reason";
pub const ERROR_CODE: &str = "x-avatar-error-code";
pub const ERROR_MESSAGE: &str = "x-avatar-error-message";
pub const SOURCE_QUEUE: &str = "x-avatar-source-queue";
pub const JOB_ID: &str = "x-avatar-job-id";
/// When the job was dead-lettered (unix ms).
pub const DEAD_AT: &str = "x-avatar-dead-at";
/// Attempts already made (0 on a fresh job).
pub const ATTEMPTS: &str = "x-avatar-attempts";
/// One line per failed attempt: `<n> <code>: <message>`.
pub const HISTORY: &str = "x-avatar-history";
/// The order stamp of an update, for last-writer-wins.
pub const STAMP: &str = "x-avatar-stamp";
/// How often the job came back without having finished.
pub const REDELIVERIES: &str = "x-avatar-redeliveries";
/// "Not on whatsapp" answers in a row so far for this job's number (docs/protocol.md).
pub const CHECKS: &str = "x-avatar-checks";
/// When nobody waits for the answer any more (unix ms), from the producer's `expiration`.
pub const EXPIRES_AT: &str = "x-avatar-expires-at";
/// On a dead letter whose job was over the size limit: the original size; the body kept is a prefix.
pub const BODY_TRUNCATED: &str = "x-avatar-body-truncated";
/// On a republished job whose producer headers were over the budget: how many were left out.
pub const HEADERS_DROPPED: &str = "x-avatar-headers-dropped";

/// Longest text the worker writes into a header or a result message.
pub const MAX_TEXT: usize = 1024;
/// The producer's own headers are carried along only up to this encoded size.
const PRODUCER_HEADERS_BUDGET: usize = 8 * 1024;
/// History lines kept (the most recent); each is already at most [`MAX_TEXT`].
const MAX_HISTORY: usize = 20;

/// What the worker remembers about a job between deliveries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobHeaders {
    pub attempts: u32,
    pub history: Vec<String>,
    pub stamp: Option<u64>,
    pub redeliveries: u32,
    pub checks: u32,
    pub expires_at_ms: Option<u64>,
}

impl JobHeaders {
    pub fn read(table: Option<&FieldTable>) -> Self {
        let Some(table) = table else {
            return Self::default();
        };
        let number = |key: &str| table.inner().get(key).and_then(as_u64);
        let small = |key: &str| number(key).unwrap_or(0).min(u64::from(u16::MAX)) as u32;
        let history = match table.inner().get(HISTORY) {
            Some(AMQPValue::FieldArray(items)) => items
                .as_slice()
                .iter()
                .rev()
                .take(MAX_HISTORY)
                .rev()
                .filter_map(|item| match item {
                    AMQPValue::LongString(s) => Some(bounded(&s.to_string(), MAX_TEXT)),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        };
        Self {
            attempts: small(ATTEMPTS),
            history,
            stamp: number(STAMP).filter(|stamp| *stamp <= i64::MAX as u64),
            redeliveries: small(REDELIVERIES),
            checks: small(CHECKS),
            expires_at_ms: number(EXPIRES_AT),
        }
    }

    /// `table` with these values written over it.
    pub fn write(&self, mut table: FieldTable) -> FieldTable {
        let int = |value: u64| AMQPValue::LongLongInt(value.min(i64::MAX as u64) as i64);
        table.insert(ATTEMPTS.into(), int(u64::from(self.attempts)));
        table.insert(REDELIVERIES.into(), int(u64::from(self.redeliveries)));
        if self.checks > 0 {
            table.insert(CHECKS.into(), int(u64::from(self.checks)));
        }
        let history: Vec<AMQPValue> = self
            .history
            .iter()
            .rev()
            .take(MAX_HISTORY)
            .rev()
            .map(|line| AMQPValue::LongString(bounded(line, MAX_TEXT).into()))
            .collect();
        table.insert(
            HISTORY.into(),
            AMQPValue::FieldArray(FieldArray::from(history)),
        );
        for (key, value) in [(STAMP, self.stamp), (EXPIRES_AT, self.expires_at_ms)] {
            if let Some(value) = value {
                table.insert(key.into(), int(value));
            }
        }
        table
    }
}

/// The producer's own headers (not the worker's `x-avatar-*`), as many as fit the budget, each text at
/// most [`MAX_TEXT`]: what a republished job or a dead letter carries of them. A header too big to carry
/// is left out and counted in [`HEADERS_DROPPED`].
pub fn producer_headers(table: Option<&FieldTable>) -> FieldTable {
    let mut out = FieldTable::default();
    let Some(table) = table else {
        return out;
    };
    let mut used = 0;
    let mut dropped = 0u32;
    for (key, value) in table.inner() {
        if key.as_str().starts_with("x-avatar-") {
            continue;
        }
        let Some(value) = small_value(value) else {
            dropped += 1;
            continue;
        };
        let size = key.as_str().len() + encoded_size(&value);
        if used + size > PRODUCER_HEADERS_BUDGET {
            dropped += 1;
            continue;
        }
        used += size;
        out.insert(key.clone(), value);
    }
    if dropped > 0 {
        out.insert(HEADERS_DROPPED.into(), AMQPValue::LongInt(dropped as i32));
    }
    out
}

/// A header value worth carrying: simple values as they are, texts cut to [`MAX_TEXT`], small arrays and
/// tables (the broker's own `x-death` among them) whole; anything else is not carried.
fn small_value(value: &AMQPValue) -> Option<AMQPValue> {
    match value {
        AMQPValue::LongString(text) => Some(AMQPValue::LongString(bounded_bytes(text, MAX_TEXT))),
        AMQPValue::ShortString(text) => Some(AMQPValue::ShortString(text.clone())),
        AMQPValue::ByteArray(_) | AMQPValue::FieldArray(_) | AMQPValue::FieldTable(_) => {
            (encoded_size(value) <= MAX_TEXT * 4).then(|| value.clone())
        }
        other => Some(other.clone()),
    }
}

/// An upper bound of a value's size on the wire.
fn encoded_size(value: &AMQPValue) -> usize {
    match value {
        AMQPValue::LongString(text) => 5 + text.as_bytes().len(),
        AMQPValue::ShortString(text) => 2 + text.as_str().len(),
        AMQPValue::ByteArray(bytes) => 5 + bytes.as_slice().len(),
        AMQPValue::FieldArray(items) => {
            5 + items.as_slice().iter().map(encoded_size).sum::<usize>()
        }
        AMQPValue::FieldTable(table) => {
            5 + table
                .inner()
                .iter()
                .map(|(key, value)| 1 + key.as_str().len() + encoded_size(value))
                .sum::<usize>()
        }
        _ => 9,
    }
}

/// `text` cut to at most `max` bytes, with a marker when cut.
pub fn bounded(text: &str, max: usize) -> String {
    crate::protocol::truncated(text, max)
}

fn bounded_bytes(text: &LongString, max: usize) -> LongString {
    let bytes = text.as_bytes();
    if bytes.len() <= max {
        return text.clone();
    }
    bounded(&String::from_utf8_lossy(bytes), max).into()
}

fn as_u64(value: &AMQPValue) -> Option<u64> {
    match value {
        AMQPValue::LongLongInt(v) => u64::try_from(*v).ok(),
        AMQPValue::LongInt(v) => u64::try_from(*v).ok(),
        AMQPValue::ShortInt(v) => u64::try_from(*v).ok(),
        AMQPValue::LongUInt(v) => Some(u64::from(*v)),
        AMQPValue::ShortUInt(v) => Some(u64::from(*v)),
        AMQPValue::Timestamp(v) => Some(*v),
        AMQPValue::LongString(s) => s.to_string().trim().parse().ok(),
        _ => None,
    }
}

/// A string header, if present.
pub fn header_str(table: Option<&FieldTable>, key: &str) -> Option<String> {
    match table?.inner().get(key)? {
        AMQPValue::LongString(value) => Some(value.to_string()),
        AMQPValue::ShortString(value) => Some(value.to_string()),
        _ => None,
    }
}

/// Sets a string header.
pub fn put_str(table: &mut FieldTable, key: &str, value: &str) {
    table.insert(ShortString::from(key), AMQPValue::LongString(value.into()));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_the_workers_own_values() {
        let headers = JobHeaders {
            attempts: 2,
            history: vec!["1 timeout: slow".into(), "2 rate_limited: 429".into()],
            stamp: Some(42),
            redeliveries: 1,
            checks: 2,
            expires_at_ms: Some(1_700_000_000_000),
        };
        let table = headers.write(FieldTable::default());
        assert_eq!(JobHeaders::read(Some(&table)), headers);
        assert_eq!(JobHeaders::read(None), JobHeaders::default());
    }

    #[test]
    fn forged_values_are_clamped() {
        let mut table = FieldTable::default();
        table.insert(ATTEMPTS.into(), AMQPValue::LongString("4294967295".into()));
        table.insert(REDELIVERIES.into(), AMQPValue::LongLongInt(-5));
        table.insert(STAMP.into(), AMQPValue::Timestamp(u64::MAX));
        let lines: Vec<AMQPValue> = (0..100)
            .map(|i| AMQPValue::LongString(format!("{i} {}", "x".repeat(5000)).into()))
            .collect();
        table.insert(HISTORY.into(), AMQPValue::FieldArray(lines.into()));
        let read = JobHeaders::read(Some(&table));
        assert_eq!(read.attempts, u32::from(u16::MAX));
        assert_eq!(read.attempts.saturating_add(1), 65_536, "no wrap to 0");
        assert_eq!(read.redeliveries, 0);
        assert_eq!(read.stamp, None);
        assert_eq!(read.history.len(), MAX_HISTORY);
        assert!(read.history[0].starts_with("80 "), "the newest are kept");
        assert!(read.history.iter().all(|line| line.len() <= MAX_TEXT));
    }

    #[test]
    fn producer_headers_are_carried_within_a_budget() {
        let mut table = FieldTable::default();
        table.insert("x-tenant".into(), AMQPValue::LongString("acme".into()));
        table.insert(ATTEMPTS.into(), AMQPValue::LongInt(3));
        table.insert(
            "x-huge".into(),
            AMQPValue::LongString("A".repeat(200_000).into()),
        );
        for i in 0..40 {
            table.insert(
                format!("x-filler-{i}").into(),
                AMQPValue::LongString("b".repeat(900).into()),
            );
        }
        let kept = producer_headers(Some(&table));
        assert!(kept.contains_key("x-tenant") || kept.inner().len() > 1);
        assert!(
            !kept.contains_key(ATTEMPTS),
            "the worker's own are not copied"
        );
        let total: usize = kept
            .inner()
            .iter()
            .map(|(k, v)| k.as_str().len() + encoded_size(v))
            .sum();
        assert!(total <= PRODUCER_HEADERS_BUDGET + 16, "{total}");
        assert!(kept.contains_key(HEADERS_DROPPED));
        if let Some(AMQPValue::LongString(huge)) = kept.inner().get("x-huge") {
            assert!(huge.as_bytes().len() <= MAX_TEXT);
        }
    }

    #[test]
    fn bounded_texts_end_on_a_character_and_say_so() {
        assert_eq!(bounded("short", 10), "short");
        let cut = bounded(&"é".repeat(1000), 100);
        assert!(cut.len() <= 100 && cut.ends_with("[truncated]"), "{cut}");
    }
}
