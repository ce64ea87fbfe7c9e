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

/// Replaces the password of `scheme://user:password@host` with `***`.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "<unparseable url>".into();
    };
    match rest.split_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{scheme}://{user}:***@{host}")
        }
        None => url.to_string(),
    }
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
}
