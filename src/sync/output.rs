//! The results file: one line per row, appended and flushed as each answer arrives, so a run killed at
//! any point leaves a file that `--resume` can continue.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::SyncError;
use super::record::Record;

/// An open results file.
pub struct OutputFile {
    path: PathBuf,
    file: std::fs::File,
}

impl OutputFile {
    /// Starts the file afresh.
    pub fn create(path: &Path) -> Result<Self, SyncError> {
        let file = std::fs::File::create(path).map_err(|source| write_error(path, source))?;
        Ok(Self {
            path: path.to_path_buf(),
            file,
        })
    }

    /// Continues a file whose first `keep` bytes are complete lines; a torn line after them is cut off.
    pub fn resume(path: &Path, keep: u64) -> Result<Self, SyncError> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|source| write_error(path, source))?;
        file.set_len(keep)
            .map_err(|source| write_error(path, source))?;
        Ok(Self {
            path: path.to_path_buf(),
            file,
        })
    }

    /// Writes one record as a single line in one write, then flushes it to the OS.
    pub fn append(&mut self, record: &Record) -> Result<(), SyncError> {
        let mut line = serde_json::to_vec(record).map_err(|e| {
            write_error(
                &self.path,
                std::io::Error::new(std::io::ErrorKind::InvalidData, e),
            )
        })?;
        line.push(b'\n');
        self.file
            .write_all(&line)
            .and_then(|()| self.file.flush())
            .map_err(|source| write_error(&self.path, source))
    }
}

fn write_error(path: &Path, source: std::io::Error) -> SyncError {
    SyncError::Write {
        path: path.to_path_buf(),
        source,
    }
}
