//! The configuration as the worker sees it, for `avatar-worker config`: every key after layering, secrets
//! redacted, and the environment variables that look meant for the worker but are never read.

use std::path::Path;

use serde_json::Value;

use super::{ENV_PREFIX, SettingsError, amqp::redact_url};

/// The built-in defaults, as documented (a test checks they agree with `Settings::default()`).
const DEFAULTS: &str = include_str!("../../config/default.toml");

/// Keys whose values are never shown.
fn is_secret(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    ["password", "secret", "token"]
        .iter()
        .any(|word| key.contains(word))
}

/// Every key with its effective value (defaults, then `file`, then `env`), secrets replaced by `***` and
/// passwords in URLs by `user:***`. The values are checked as [`super::Settings::load_from`] checks them.
pub fn effective(
    file: Option<&Path>,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<Value, SettingsError> {
    let env: Vec<(String, String)> = env.into_iter().collect();
    super::Settings::load_from(file, env.clone())?;
    let defaults = config::File::from_str(DEFAULTS, config::FileFormat::Toml);
    let mut value: Value = config::Config::builder()
        .add_source(defaults)
        .add_source(super::builder(file, env))
        .build()?
        .try_deserialize()?;
    redact(&mut value);
    Ok(value)
}

/// Secret keys become `***`; any URL with a user part (`amqp.url`, each of `amqp.urls`) loses its password.
fn redact(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, value) in map.iter_mut() {
                if is_secret(key) && !value.is_null() {
                    *value = Value::String("***".into());
                } else {
                    redact(value);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact),
        Value::String(text) if text.contains("://") && text.contains('@') => {
            *text = redact_url(text);
        }
        _ => {}
    }
}

/// Environment variables that look meant for the worker but are never read, each with why: the worker
/// reads `AVATAR_WORKER__SECTION__KEY` (two underscores each, upper case) and `AVATAR_WORKER_CONFIG`.
pub fn unread_env_vars(env: impl IntoIterator<Item = (String, String)>) -> Vec<String> {
    let read_prefix = format!("{ENV_PREFIX}__");
    let mut out: Vec<String> = env
        .into_iter()
        .map(|(key, _)| key)
        .filter(|key| key.to_ascii_uppercase().starts_with(ENV_PREFIX))
        .filter(|key| key != "AVATAR_WORKER_CONFIG")
        .filter_map(|key| {
            if let Some(rest) = key.strip_prefix(&read_prefix) {
                return rest.split("__").any(str::is_empty).then(|| {
                    format!("{key} is not read: an empty part between its double underscores")
                });
            }
            let upper = key.to_ascii_uppercase();
            let rest = upper[ENV_PREFIX.len()..].trim_start_matches('_');
            let meant = match rest.split_once("__") {
                Some((section, rest)) => format!("{read_prefix}{section}__{rest}"),
                None => match rest.split_once('_') {
                    Some((section, key)) => format!("{read_prefix}{section}__{key}"),
                    None => format!("{read_prefix}{rest}"),
                },
            };
            Some(format!(
                "{key} is not read: variables are {read_prefix}SECTION__KEY (two underscores after \
                 AVATAR_WORKER and between section and key); did you mean {meant}?"
            ))
        })
        .collect();
    out.sort();
    out
}

/// The effective configuration as TOML-like text: one `[section]` per table, values as JSON literals
/// (valid TOML for strings, numbers, booleans and arrays of them).
pub fn to_text(value: &Value) -> String {
    let mut out = String::new();
    if let Value::Object(sections) = value {
        for (name, section) in sorted(sections) {
            write_table(&mut out, name, section);
        }
    }
    out
}

/// A table's entries by key (the layered configuration keeps no order).
fn sorted(map: &serde_json::Map<String, Value>) -> Vec<(&String, &Value)> {
    let mut entries: Vec<_> = map.iter().collect();
    entries.sort_by(|a, b| a.0.cmp(b.0));
    entries
}

fn write_table(out: &mut String, path: &str, table: &Value) {
    let Value::Object(map) = table else {
        out.push_str(&format!("{path} = {table}\n"));
        return;
    };
    out.push_str(&format!("[{path}]\n"));
    let mut nested = Vec::new();
    for (key, value) in sorted(map) {
        match value {
            Value::Object(_) => nested.push((key, value)),
            Value::Array(items) if items.iter().any(Value::is_object) => nested.push((key, value)),
            Value::Null => {}
            other => out.push_str(&format!("{key} = {other}\n")),
        }
    }
    out.push('\n');
    for (key, value) in nested {
        let path = format!("{path}.{key}");
        match value {
            Value::Array(items) => {
                for item in items {
                    out.push_str(&format!("[[{path}]]\n"));
                    if let Value::Object(map) = item {
                        for (key, value) in sorted(map) {
                            out.push_str(&format!("{key} = {value}\n"));
                        }
                    }
                    out.push('\n');
                }
            }
            table => write_table(out, &path, table),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_single_underscore_is_named_with_the_meant_variable() {
        let unread = unread_env_vars(env(&[
            ("AVATAR_WORKER_GATEWAY__BASE_URL", "http://x"),
            ("AVATAR_WORKER__GATEWAY__BASE_URL", "http://y"),
            ("AVATAR_WORKER_CONFIG", "/etc/a.toml"),
            ("avatar_worker__amqp__url", "amqp://x"),
            ("PATH", "/bin"),
        ]));
        assert_eq!(unread.len(), 2, "{unread:?}");
        assert!(
            unread[0].contains("did you mean AVATAR_WORKER__GATEWAY__BASE_URL"),
            "{unread:?}"
        );
        assert!(
            unread[1].starts_with("avatar_worker__amqp__url"),
            "{unread:?}"
        );
    }

    #[test]
    fn secrets_are_redacted_and_overrides_shown() {
        let value = effective(
            None,
            env(&[
                ("AVATAR_WORKER__GATEWAY__PASSWORD", "s3cret"),
                ("AVATAR_WORKER__GATEWAY__USERNAME", "admin"),
                (
                    "AVATAR_WORKER__AMQP__URL",
                    "amqp://u:hunter2@rabbit:5672/%2f",
                ),
                (
                    "AVATAR_WORKER__AMQP__URLS",
                    "amqp://u:hunter3@rabbit-1/%2f,amqp://u:hunter4@rabbit-2/%2f",
                ),
                ("AVATAR_WORKER__WORKER__PREFETCH", "50"),
            ]),
        )
        .unwrap();
        let text = to_text(&value);
        for secret in ["s3cret", "hunter2", "hunter3", "hunter4"] {
            assert!(!text.contains(secret), "{text}");
        }
        assert!(
            text.contains("amqp://u:***@rabbit-1/%2f")
                && text.contains("amqp://u:***@rabbit-2/%2f"),
            "{text}"
        );
        assert!(text.contains("password = \"***\""), "{text}");
        assert!(
            text.contains("url = \"amqp://u:***@rabbit:5672/%2f\""),
            "{text}"
        );
        assert!(text.contains("prefetch = 50"), "{text}");
        assert!(
            text.contains("[topology]\nprefix = \"avatar\"\nqueue_type = \"classic\""),
            "{text}"
        );
    }
}
