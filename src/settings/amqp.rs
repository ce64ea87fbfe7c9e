use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::{SettingsError, invalid};
use crate::broker::Addresses;

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AmqpSettings {
    /// `amqp://user:password@host:port/vhost`; secret because it holds the password.
    pub url: SecretString,
    /// The nodes of a cluster, each a URL like `url`; when given, `url` is not used. Connections go to
    /// the first node that answers, in a rotating order from a random start, and move on when one is lost.
    #[serde(deserialize_with = "one_or_many")]
    pub urls: Vec<SecretString>,
    /// How long one node may take to accept a connection before the next is tried.
    #[serde(rename = "connect_timeout_ms", with = "super::millis")]
    pub connect_timeout: Duration,
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
            urls: Vec::new(),
            connect_timeout: crate::broker::DEFAULT_CONNECT_TIMEOUT,
            reconnect_min: Duration::from_millis(200),
            reconnect_max: Duration::from_secs(10),
        }
    }
}

impl AmqpSettings {
    pub(super) fn validate(&self) -> Result<(), SettingsError> {
        let (key, urls) = match self.urls.is_empty() {
            true => ("amqp.url", std::slice::from_ref(&self.url)),
            false => ("amqp.urls", self.urls.as_slice()),
        };
        for url in urls.iter().map(ExposeSecret::expose_secret) {
            if !(url.starts_with("amqp://") || url.starts_with("amqps://")) {
                return Err(invalid(
                    key,
                    format!(
                        "must start with amqp:// or amqps:// (got {})",
                        redact_url(url)
                    ),
                ));
            }
        }
        if self.connect_timeout.is_zero() || self.connect_timeout > Duration::from_secs(120) {
            return Err(invalid(
                "amqp.connect_timeout_ms",
                "must be between 1 and 120000",
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

    /// The broker's nodes: `urls`, or `url` alone.
    pub fn addresses(&self) -> Addresses {
        let addresses = Addresses::new(self.urls.iter().cloned())
            .unwrap_or_else(|| Addresses::one(self.url.expose_secret()));
        addresses.with_connect_timeout(self.connect_timeout)
    }

    /// The nodes, comma-separated, passwords replaced: for logs and errors.
    pub fn redacted_url(&self) -> String {
        self.addresses().redacted().join(",")
    }
}

/// A list, or one URL alone (the form a single-element environment variable may take).
fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<SecretString>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    let urls = match OneOrMany::deserialize(d)? {
        OneOrMany::One(url) => vec![url],
        OneOrMany::Many(urls) => urls,
    };
    Ok(urls
        .into_iter()
        .map(|url| url.trim().to_owned())
        .filter(|url| !url.is_empty())
        .map(SecretString::from)
        .collect())
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
