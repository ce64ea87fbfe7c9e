//! The end-of-run table: how many rows got which answer, so an operator sees at a glance whether a
//! night's sync was a success or hit a broken device.

use std::collections::HashMap;

use super::record::Record;
use super::store::Stored;
use crate::protocol::{ErrorCode, Status};

const STATUSES: [Status; 5] = [
    Status::Ok,
    Status::Unchanged,
    Status::NotSet,
    Status::Hidden,
    Status::Error,
];

/// Counts of one run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    /// Rows in the input, malformed ones included.
    pub input_rows: usize,
    /// Rows left out as malformed.
    pub malformed: usize,
    /// Rows skipped because `--resume` found them in the results file.
    pub already_done: usize,
    /// Rows answered in this run, per status.
    pub by_status: HashMap<Status, usize>,
    /// `error` rows of this run, per error code.
    pub by_error: HashMap<ErrorCode, usize>,
    /// Pictures written to the download directory.
    pub files_written: usize,
    /// Downloaded pictures whose file was already there.
    pub files_present: usize,
    /// Downloaded pictures that could not be stored (see the row's message).
    pub not_stored: usize,
}

impl Summary {
    /// Rows answered in this run.
    pub fn answered(&self) -> usize {
        self.by_status.values().sum()
    }

    /// Rows of this run with `status`.
    pub fn count(&self, status: Status) -> usize {
        self.by_status.get(&status).copied().unwrap_or(0)
    }

    pub(super) fn add(&mut self, record: &Record, stored: Option<&Stored>, store_failed: bool) {
        *self.by_status.entry(record.status).or_default() += 1;
        if let Some(code) = record.error_code {
            *self.by_error.entry(code).or_default() += 1;
        }
        match stored {
            Some(Stored { written: true, .. }) => self.files_written += 1,
            Some(Stored { written: false, .. }) => self.files_present += 1,
            None => {}
        }
        if store_failed {
            self.not_stored += 1;
        }
    }
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let row = |f: &mut std::fmt::Formatter<'_>, label: &str, n: usize| {
            writeln!(f, "  {label:<28}{n:>8}")
        };
        writeln!(f, "sync summary")?;
        row(f, "input rows", self.input_rows)?;
        row(f, "malformed (skipped)", self.malformed)?;
        row(f, "already done (--resume)", self.already_done)?;
        row(f, "answered in this run", self.answered())?;
        writeln!(f, "  {:<28}{:>8}", "status", "rows")?;
        for status in STATUSES {
            row(f, &format!("  {}", status.as_str()), self.count(status))?;
            if status == Status::Error {
                for &code in ErrorCode::ALL {
                    if let Some(n) = self.by_error.get(&code) {
                        row(f, &format!("    {code}"), *n)?;
                    }
                }
            }
        }
        if self.files_written + self.files_present + self.not_stored > 0 {
            row(f, "pictures written", self.files_written)?;
            row(f, "pictures already stored", self.files_present)?;
            row(f, "pictures not stored", self.not_stored)?;
        }
        Ok(())
    }
}
