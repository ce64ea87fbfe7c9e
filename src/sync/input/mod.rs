//! Contact lists in: CSV (header `phone`, optional `device_id`, `known_id`) or JSON Lines with the same
//! fields. A malformed row is reported with its line number and left out, so one typo in a list of
//! thousands does not stop a night's sync; only an unreadable file does.

mod csv_file;
mod jsonl_file;

use std::path::{Path, PathBuf};

use crate::protocol::{DeviceId, Phone};

use super::SyncError;

/// How the input file is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum InputFormat {
    /// Comma-separated with a header row.
    Csv,
    /// One JSON object per line.
    Jsonl,
}

impl InputFormat {
    /// `.jsonl`, `.ndjson` and `.json` files are JSON Lines; anything else is CSV.
    pub fn guess(path: &Path) -> Self {
        let extension = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        match extension.as_deref() {
            Some("jsonl" | "ndjson" | "json") => InputFormat::Jsonl,
            _ => InputFormat::Csv,
        }
    }
}

/// One contact to look up, as the input gave it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// 1-based line of the input file where the row starts; identifies the row across resumed runs.
    pub line: u64,
    /// The contact, canonicalised.
    pub phone: Phone,
    /// The row's own device; `None` falls back to `--device`.
    pub device: Option<DeviceId>,
    /// The picture id the caller already has.
    pub known_id: Option<String>,
}

/// A row that was left out, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Malformed {
    /// 1-based line of the input file.
    pub line: u64,
    /// What is wrong with it.
    pub reason: String,
}

impl std::fmt::Display for Malformed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}", self.line, self.reason)
    }
}

/// Everything read from an input file.
#[derive(Debug, Default)]
pub struct Input {
    /// The usable rows, in file order.
    pub rows: Vec<Row>,
    /// The rows left out.
    pub malformed: Vec<Malformed>,
}

impl Input {
    fn push(&mut self, line: u64, row: Result<Row, String>) {
        match row {
            Ok(row) => self.rows.push(row),
            Err(reason) => self.malformed.push(Malformed { line, reason }),
        }
    }
}

/// Reads a whole contact list; errors only when the file itself is unusable.
pub fn read_input(path: &Path, format: InputFormat) -> Result<Input, SyncError> {
    let file = std::fs::File::open(path).map_err(|source| SyncError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let reader = std::io::BufReader::new(file);
    match format {
        InputFormat::Csv => csv_file::read(reader, path),
        InputFormat::Jsonl => jsonl_file::read(reader, path),
    }
}

/// The checks both formats share: the fields of one row, as text.
fn parse_row(
    line: u64,
    phone: Option<&str>,
    device: Option<&str>,
    known_id: Option<&str>,
) -> Result<Row, String> {
    let phone = present(phone).ok_or("phone: missing or empty")?;
    let phone = Phone::parse(phone)?;
    let device = present(device).map(DeviceId::parse).transpose()?;
    Ok(Row {
        line,
        phone,
        device,
        known_id: present(known_id).map(str::to_string),
    })
}

/// A field with something in it, trimmed.
fn present(value: Option<&str>) -> Option<&str> {
    value.map(str::trim).filter(|v| !v.is_empty())
}

fn unusable(path: &Path, reason: impl Into<String>) -> SyncError {
    SyncError::Unusable {
        path: PathBuf::from(path),
        reason: reason.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guesses_the_format_from_the_extension() {
        assert_eq!(InputFormat::guess(Path::new("a.JSONL")), InputFormat::Jsonl);
        assert_eq!(InputFormat::guess(Path::new("a.csv")), InputFormat::Csv);
        assert_eq!(InputFormat::guess(Path::new("contacts")), InputFormat::Csv);
    }

    #[test]
    fn empty_optional_fields_are_absent() {
        let row = parse_row(3, Some(" +62 811 2345 678 "), Some(""), Some(" ")).unwrap();
        assert_eq!(row.phone.as_jid(), "628112345678@s.whatsapp.net");
        assert_eq!((row.device, row.known_id), (None, None));
        assert!(parse_row(4, Some(""), None, None).is_err());
        assert!(parse_row(5, Some("62abc"), None, None).is_err());
    }
}
