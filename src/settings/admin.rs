use std::net::SocketAddr;

use serde::Deserialize;

use super::{SettingsError, invalid};

/// The admin HTTP server of `avatar-worker run`: `/metrics`, `/healthz`, `/readyz`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdminSettings {
    /// false: no admin port (no metrics, no probes).
    pub enabled: bool,
    /// `address:port` to listen on; all interfaces by default so probes reach it from outside a container.
    pub bind: String,
}

impl Default for AdminSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            bind: "0.0.0.0:9090".into(),
        }
    }
}

impl AdminSettings {
    pub(super) fn validate(&self) -> Result<(), SettingsError> {
        if self.bind.parse::<SocketAddr>().is_err() {
            return Err(invalid(
                "admin.bind",
                format!(
                    "expected address:port such as 0.0.0.0:9090 (got {:?})",
                    self.bind
                ),
            ));
        }
        Ok(())
    }
}
