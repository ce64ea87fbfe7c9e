use std::path::PathBuf;

use crate::client::ClientError;

/// Why a sync stopped. Per-row problems (a malformed row, a contact not on WhatsApp) never end up here:
/// they are reported per row and the sync goes on.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// A file could not be opened or read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O failure.
        source: std::io::Error,
    },
    /// A file was read but is not what it should be (no `phone` column, a corrupt results file).
    #[error("{path}: {reason}")]
    Unusable {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The results file or the download directory could not be written.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file or directory.
        path: PathBuf,
        /// The I/O failure.
        source: std::io::Error,
    },
    /// The broker could not be reached (after the batch's retries) or refused the jobs.
    #[error(transparent)]
    Broker(#[from] ClientError),
    /// The batch ended without answering every row; should not happen, and says so rather than exit 0.
    #[error("the batch ended with {0} rows unanswered")]
    Unanswered(usize),
    /// Stopped on request (Ctrl-C) before every row was answered.
    #[error("interrupted with {unanswered} rows unanswered")]
    Interrupted {
        /// Rows published and not answered, and rows not published yet.
        unanswered: usize,
        /// What this run answered until then.
        summary: Box<super::Summary>,
    },
}
