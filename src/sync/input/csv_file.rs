use std::io::Read;
use std::path::Path;

use super::{Input, SyncError, parse_row, unusable};

/// Reads CSV with a header naming the columns (any order, any case; unknown columns are ignored).
pub(super) fn read(reader: impl Read, path: &Path) -> Result<Input, SyncError> {
    let mut csv = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(reader);
    let headers = csv
        .headers()
        .map_err(|e| unusable(path, format!("no readable CSV header: {e}")))?
        .clone();
    let column = |name: &str| headers.iter().position(|h| h.eq_ignore_ascii_case(name));
    let phone = column("phone").ok_or_else(|| {
        unusable(
            path,
            format!(
                "no `phone` column in the header ({:?})",
                headers.iter().collect::<Vec<_>>()
            ),
        )
    })?;
    let (device, known_id) = (column("device_id"), column("known_id"));
    let mut input = Input::default();
    let mut last_line = 1;
    for record in csv.records() {
        match record {
            Ok(record) => {
                let line = record.position().map_or(last_line + 1, |p| p.line());
                last_line = line;
                let field = |index: Option<usize>| index.and_then(|i| record.get(i));
                input.push(
                    line,
                    parse_row(line, field(Some(phone)), field(device), field(known_id)),
                );
            }
            Err(error) => {
                let line = error.position().map_or(last_line + 1, |p| p.line());
                last_line = line;
                let reason = match error.kind() {
                    csv::ErrorKind::UnequalLengths {
                        expected_len, len, ..
                    } => format!("{len} fields where the header has {expected_len}"),
                    csv::ErrorKind::Utf8 { .. } => "not valid UTF-8".to_string(),
                    csv::ErrorKind::Io(e) => {
                        return Err(SyncError::Read {
                            path: path.to_path_buf(),
                            source: std::io::Error::new(e.kind(), e.to_string()),
                        });
                    }
                    _ => error.to_string(),
                };
                input.malformed.push(super::Malformed { line, reason });
            }
        }
    }
    Ok(input)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_rows_and_reports_bad_ones_by_line() {
        let text = "Phone,device_id,known_id,note\n\
                    6281100000001,dev-a,,x\n\
                    6281100000002,,1234567890,y\n\
                    not-a-phone,dev-a,,z\n\
                    6281100000004,dev-b\n\
                    6281100000005,dev-b,,w\n";
        let input = read(text.as_bytes(), Path::new("t.csv")).unwrap();
        let lines: Vec<u64> = input.rows.iter().map(|r| r.line).collect();
        assert_eq!(lines, [2, 3, 6]);
        assert_eq!(input.rows[1].known_id.as_deref(), Some("1234567890"));
        assert_eq!(input.rows[0].device.as_ref().unwrap().as_str(), "dev-a");
        let bad: Vec<String> = input.malformed.iter().map(ToString::to_string).collect();
        assert_eq!(bad.len(), 2, "{bad:?}");
        assert!(bad[0].starts_with("line 4: phone"), "{bad:?}");
        assert!(bad[1].starts_with("line 5: 2 fields"), "{bad:?}");
    }

    #[test]
    fn a_missing_phone_column_is_fatal() {
        let err = read("number\n1\n".as_bytes(), Path::new("t.csv")).unwrap_err();
        assert!(err.to_string().contains("no `phone` column"), "{err}");
    }
}
