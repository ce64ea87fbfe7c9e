use serde::{Deserialize, Serialize};

const MAX_ID_LEN: usize = 128;

fn check_id(field: &str, value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Err(format!("{field}: must not be empty"));
    }
    if value.len() > MAX_ID_LEN {
        return Err(format!(
            "{field}: {} bytes long; the limit is {MAX_ID_LEN}",
            value.len()
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(format!("{field}: contains control characters"));
    }
    Ok(())
}

/// A string newtype checked once by `check_id`, so it is always safe to put in a header, a log line or a
/// metric label.
macro_rules! checked_id {
    ($(#[$doc:meta])* $name:ident, $field:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            pub fn parse(value: impl Into<String>) -> Result<Self, String> {
                let value = value.into();
                check_id($field, &value)?;
                Ok(Self(value))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = String;
            fn try_from(value: String) -> Result<Self, Self::Error> {
                Self::parse(value)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> Self {
                id.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

checked_id!(
    /// A WhatsApp account (gateway device slot) a job runs on: an id, an AD JID or a bare JID, as the
    /// gateway accepts in `X-Device-Id`.
    DeviceId,
    "device_id"
);

checked_id!(
    /// Identifies a job across retries and duplicates; results carry it back to the producer.
    JobId,
    "job_id"
);

impl JobId {
    /// A fresh id for a job that arrived without one.
    pub fn generate() -> Self {
        Self(uuid::Uuid::new_v4().to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_empty_long_and_control_characters() {
        assert!(DeviceId::parse("").is_err());
        assert!(DeviceId::parse("a".repeat(129)).is_err());
        assert!(DeviceId::parse("dev\r\nX-Evil: 1").is_err());
        assert!(DeviceId::parse("6281234567890:12@s.whatsapp.net").is_ok());
        assert!(JobId::parse("job-1").is_ok());
    }
}
