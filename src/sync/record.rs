//! One line of a results file, and reading such files back for `--resume` and `--previous`.

use std::io::BufRead;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::SyncError;
use crate::protocol::{DeviceId, ErrorCode, Phone, Status};

/// The answer for one input row, as written to `--output` (one JSON object per line).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// The row's line in the input file.
    pub line: u64,
    /// The contact, as a canonical JID.
    pub phone: Phone,
    /// The device that answered, when one was named.
    pub device: Option<DeviceId>,
    /// What the worker answered.
    pub status: Status,
    /// The current picture id (`ok`, `unchanged`).
    pub picture_id: Option<String>,
    /// Why the row is an `error`.
    pub error_code: Option<ErrorCode>,
    /// The stored picture (`<sha256>.jpg` in the download directory): just stored, already there, or
    /// carried over from `--previous` for an `unchanged` row.
    pub file: Option<String>,
    /// The worker's error message, or why a downloaded picture could not be stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl Record {
    /// Identifies the row across runs over the same input.
    pub fn key(&self) -> RowKey {
        RowKey {
            line: self.line,
            phone: self.phone.clone(),
            device: self.device.clone(),
        }
    }
}

/// A row of the input as it is recognised in a results file.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RowKey {
    /// Line in the input file.
    pub line: u64,
    /// The contact.
    pub phone: Phone,
    /// The device it is asked on.
    pub device: Option<DeviceId>,
}

/// The records of a results file, and the length of its complete lines.
pub struct Records {
    /// Every complete record.
    pub records: Vec<Record>,
    /// Bytes up to the end of the last complete line: what a resumed run keeps of the file.
    pub complete_len: u64,
}

/// Reads a results file. A last line without its newline is the mark of a run killed mid-write and is
/// dropped (that row is asked again); any other unreadable line means this is not a results file.
pub fn read_records(path: &Path) -> Result<Records, SyncError> {
    let file = std::fs::File::open(path).map_err(|source| SyncError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let mut reader = std::io::BufReader::new(file);
    let mut out = Records {
        records: Vec::new(),
        complete_len: 0,
    };
    let mut buffer = Vec::new();
    let mut number = 0u64;
    loop {
        buffer.clear();
        let read = reader
            .read_until(b'\n', &mut buffer)
            .map_err(|source| SyncError::Read {
                path: path.to_path_buf(),
                source,
            })?;
        if read == 0 || !buffer.ends_with(b"\n") {
            return Ok(out);
        }
        number += 1;
        out.complete_len += read as u64;
        if buffer.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let record = serde_json::from_slice(&buffer).map_err(|e| SyncError::Unusable {
            path: path.to_path_buf(),
            reason: format!("line {number} is not a sync result: {e}"),
        })?;
        out.records.push(record);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_a_torn_last_line_and_refuses_garbage() {
        let dir = std::env::temp_dir().join(format!("records-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("out.jsonl");
        let good = r#"{"line":2,"phone":"6281100000001@s.whatsapp.net","device":"dev-a","status":"ok","picture_id":"1234567890","error_code":null,"file":null}"#;
        std::fs::write(&path, format!("{good}\n{{\"line\":3,\"pho")).unwrap();
        let records = read_records(&path).unwrap();
        assert_eq!(records.records.len(), 1);
        assert_eq!(records.complete_len, good.len() as u64 + 1);
        std::fs::write(&path, "garbage\n").unwrap();
        assert!(read_records(&path).is_err());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
