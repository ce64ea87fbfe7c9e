use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::{SettingsError, invalid};

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AmqpSettings {
    /// `amqp://user:password@host:port/vhost`; secret because it holds the password.
    pub url: SecretString,
    /// First reconnect delay; it doubles up to `reconnect_max`, with jitter.
    #[serde(rename = "reconnect_min_ms", with = "super::millis")]
    pub reconnect_min: Duration,
    #[serde(rename = "reconnect_max_ms", with = "super::millis")]
    pub reconnect_max: Duration,
}

impl Default for AmqpSettings {
    fn default() -> Self {
        Self {
            url: SecretString::from("amqp://guest:guest@127.0.0.1:5672/%2f"),
            reconnect_min: Duration::from_millis(200),
            reconnect_max: Duration::from_secs(10),
        }
    }
}

impl AmqpSettings {
    pub(super) fn validate(&self) -> Result<(), SettingsError> {
        let url = self.url.expose_secret();
        if !(url.starts_with("amqp://") || url.starts_with("amqps://")) {
            return Err(invalid(
                "amqp.url",
                format!(
                    "must start with amqp:// or amqps:// (got {})",
                    redact_url(url)
                ),
            ));
        }
        if self.reconnect_min.is_zero() || self.reconnect_min > self.reconnect_max {
            return Err(invalid(
                "amqp.reconnect_min_ms",
                "must be at least 1 and at most amqp.reconnect_max_ms",
            ));
        }
        Ok(())
    }

    /// The URL with its password replaced, for logs and errors.
    pub fn redacted_url(&self) -> String {
        redact_url(self.url.expose_secret())
    }
}

/// Replaces the password of `scheme://user:password@host` with `***`. The URL is parsed as the broker
/// client parses it (the `url` crate: the userinfo ends at the **last** `@`, so a password holding `@`
/// is hidden whole); what does not parse is not shown at all, nor is a URL with an `@` after its host (a
/// password holding an unencoded `/`, `?` or `#` ends the userinfo early and its tail would show).
pub fn redact_url(url: &str) -> String {
    let Ok(mut parsed) = reqwest::Url::parse(url.trim()) else {
        return "<unparseable url>".into();
    };
    let after_host = [
        parsed.path(),
        parsed.query().unwrap_or(""),
        parsed.fragment().unwrap_or(""),
    ];
    if after_host.iter().any(|part| part.contains('@')) {
        return "<unparseable url>".into();
    }
    if parsed.password().is_some() && parsed.set_password(Some("***")).is_err() {
        return "<unparseable url>".into();
    }
    parsed.set_fragment(None);
    parsed.to_string()
}

#[cfg(test)]
mod tests {
    #[test]
    fn redacts_passwords() {
        assert_eq!(
            super::redact_url("amqp://bob:s3cret@rabbit:5672/%2f"),
            "amqp://bob:***@rabbit:5672/%2f"
        );
        assert_eq!(super::redact_url("amqp://rabbit"), "amqp://rabbit");
    }

    #[test]
    fn passwords_holding_delimiters_are_hidden_whole() {
        for (url, shown) in [
            (
                "amqp://bob:p@ss@rabbit:5672/%2f",
                "amqp://bob:***@rabbit:5672/%2f",
            ),
            ("amqp://bob:a@b@c@rabbit/", "amqp://bob:***@rabbit/"),
            ("amqps://bob:p:ss@rabbit/v", "amqps://bob:***@rabbit/v"),
            ("amqp://bob:p%40ss@rabbit/", "amqp://bob:***@rabbit/"),
            ("amqp://bob:p@ss/word@rabbit/", "<unparseable url>"),
            ("amqp://bob:p#ss@rabbit/", "<unparseable url>"),
        ] {
            let redacted = super::redact_url(url);
            assert_eq!(redacted, shown, "{url}");
            for secret in ["ss", "a@b", "word"] {
                assert!(!redacted.contains(secret), "{url}: {redacted}");
            }
        }
    }
}
