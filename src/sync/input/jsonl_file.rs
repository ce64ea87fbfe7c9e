use std::io::BufRead;
use std::path::Path;

use serde_json::Value;

use super::{Input, Row, SyncError, parse_row};

/// Reads one JSON object per line; blank lines are skipped. Numbers are accepted for `phone` and
/// `known_id`, as producers often store them as integers.
pub(super) fn read(reader: impl BufRead, path: &Path) -> Result<Input, SyncError> {
    let mut input = Input::default();
    for (index, bytes) in reader.split(b'\n').enumerate() {
        let bytes = bytes.map_err(|source| SyncError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let line = index as u64 + 1;
        let Ok(text) = std::str::from_utf8(&bytes) else {
            input.push(line, Err("not valid UTF-8".into()));
            continue;
        };
        if text.trim().is_empty() {
            continue;
        }
        input.push(line, row(line, text));
    }
    Ok(input)
}

fn row(line: u64, text: &str) -> Result<Row, String> {
    let value: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let Value::Object(fields) = value else {
        return Err("not a JSON object".into());
    };
    let text = |key: &str| -> Result<Option<String>, String> {
        match fields.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(Value::Number(n)) if key != "device_id" => Ok(Some(n.to_string())),
            Some(_) => Err(format!("{key}: must be a string")),
        }
    };
    let (phone, device, known_id) = (text("phone")?, text("device_id")?, text("known_id")?);
    parse_row(
        line,
        phone.as_deref(),
        device.as_deref(),
        known_id.as_deref(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_objects_and_reports_bad_lines() {
        let text = "{\"phone\":\"6281100000001\",\"device_id\":\"dev-a\"}\n\
                    \n\
                    {\"phone\":6281100000003,\"known_id\":1234567890}\n\
                    {\"phone\":\n\
                    [1]\n\
                    {\"device_id\":\"dev-a\"}\n";
        let input = read(text.as_bytes(), Path::new("t.jsonl")).unwrap();
        let lines: Vec<u64> = input.rows.iter().map(|r| r.line).collect();
        assert_eq!(lines, [1, 3]);
        assert_eq!(input.rows[1].known_id.as_deref(), Some("1234567890"));
        let bad: Vec<u64> = input.malformed.iter().map(|m| m.line).collect();
        assert_eq!(bad, [4, 5, 6]);
    }
}
