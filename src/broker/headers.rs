//! The `x-avatar-*` headers a job carries while it travels through delay queues, and the ones the worker
//! sets on dead letters. Operators and producers read them; the names are part of the contract.

use lapin::types::{AMQPValue, FieldArray, FieldTable};

pub const REASON: &str = "x-avatar-reason";
pub const ERROR_CODE: &str = "x-avatar-error-code";
pub const ERROR_MESSAGE: &str = "x-avatar-error-message";
pub const SOURCE_QUEUE: &str = "x-avatar-source-queue";
pub const JOB_ID: &str = "x-avatar-job-id";
/// Attempts already made (0 on a fresh job).
pub const ATTEMPTS: &str = "x-avatar-attempts";
/// One line per failed attempt: `<n> <code>: <message>`.
pub const HISTORY: &str = "x-avatar-history";
/// The pacing start time (unix ms) a parked job has reserved.
pub const SLOT: &str = "x-avatar-slot";
/// The arrival stamp of an update, for last-writer-wins.
pub const STAMP: &str = "x-avatar-stamp";
/// How often the job came back without having finished.
pub const REDELIVERIES: &str = "x-avatar-redeliveries";

/// What the worker remembers about a job between deliveries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobHeaders {
    pub attempts: u32,
    pub history: Vec<String>,
    pub slot_ms: Option<u64>,
    pub stamp: Option<u64>,
    pub redeliveries: u32,
}

impl JobHeaders {
    pub fn read(table: Option<&FieldTable>) -> Self {
        let Some(table) = table else {
            return Self::default();
        };
        let number = |key: &str| table.inner().get(key).and_then(as_u64);
        let history = match table.inner().get(HISTORY) {
            Some(AMQPValue::FieldArray(items)) => items
                .as_slice()
                .iter()
                .filter_map(|item| match item {
                    AMQPValue::LongString(s) => Some(s.to_string()),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        };
        Self {
            attempts: number(ATTEMPTS).unwrap_or(0).min(u64::from(u32::MAX)) as u32,
            history,
            slot_ms: number(SLOT),
            stamp: number(STAMP),
            redeliveries: number(REDELIVERIES).unwrap_or(0).min(u64::from(u32::MAX)) as u32,
        }
    }

    /// `table` with these values written over (other headers, `x-death` included, are kept).
    pub fn write(&self, table: Option<&FieldTable>) -> FieldTable {
        let mut table = table.cloned().unwrap_or_default();
        table.insert(
            ATTEMPTS.into(),
            AMQPValue::LongLongInt(i64::from(self.attempts)),
        );
        table.insert(
            REDELIVERIES.into(),
            AMQPValue::LongLongInt(i64::from(self.redeliveries)),
        );
        let history: Vec<AMQPValue> = self
            .history
            .iter()
            .map(|line| AMQPValue::LongString(line.as_str().into()))
            .collect();
        table.insert(
            HISTORY.into(),
            AMQPValue::FieldArray(FieldArray::from(history)),
        );
        for (key, value) in [(SLOT, self.slot_ms), (STAMP, self.stamp)] {
            if let Some(value) = value {
                table.insert(
                    key.into(),
                    AMQPValue::LongLongInt(value.min(i64::MAX as u64) as i64),
                );
            }
        }
        table
    }
}

fn as_u64(value: &AMQPValue) -> Option<u64> {
    match value {
        AMQPValue::LongLongInt(v) => u64::try_from(*v).ok(),
        AMQPValue::LongInt(v) => u64::try_from(*v).ok(),
        AMQPValue::ShortInt(v) => u64::try_from(*v).ok(),
        AMQPValue::LongUInt(v) => Some(u64::from(*v)),
        AMQPValue::ShortUInt(v) => Some(u64::from(*v)),
        AMQPValue::Timestamp(v) => Some(*v),
        AMQPValue::LongString(s) => s.to_string().parse().ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_keeps_other_headers() {
        let mut other = FieldTable::default();
        other.insert("x-tenant".into(), AMQPValue::LongString("acme".into()));
        let headers = JobHeaders {
            attempts: 2,
            history: vec!["1 timeout: slow".into(), "2 rate_limited: 429".into()],
            slot_ms: Some(1_700_000_000_000),
            stamp: Some(42),
            redeliveries: 1,
        };
        let table = headers.write(Some(&other));
        assert_eq!(JobHeaders::read(Some(&table)), headers);
        assert!(table.contains_key("x-tenant"));
        assert_eq!(JobHeaders::read(None), JobHeaders::default());
    }
}
