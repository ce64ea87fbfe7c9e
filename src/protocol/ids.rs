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

/// A WhatsApp account (gateway device slot) a job runs on: an id, an AD JID or a bare JID, as the gateway
/// accepts in `X-Device-Id`. Validated once so it is always safe to put in a header, a log line or a metric label.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DeviceId(String);

impl DeviceId {
    pub fn parse(value: impl Into<String>) -> Result<Self, String> {
        let value = value.into();
        check_id("device_id", &value)?;
        Ok(Self(value))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for DeviceId {
    type Error = String;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(value)
    }
}

impl From<DeviceId> for String {
    fn from(id: DeviceId) -> Self {
        id.0
    }
}

impl std::fmt::Display for DeviceId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Identifies a job across retries and duplicates; results carry it back to the producer.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct JobId(String);

impl JobId {
    pub fn parse(value: impl Into<String>) -> Result<Self, String> {
        let value = value.into();
        check_id("job_id", &value)?;
        Ok(Self(value))
    }

    /// A fresh id for a job that arrived without one.
    pub fn generate() -> Self {
        Self(uuid::Uuid::new_v4().to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for JobId {
    type Error = String;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(value)
    }
}

impl From<JobId> for String {
    fn from(id: JobId) -> Self {
        id.0
    }
}

impl std::fmt::Display for JobId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
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
