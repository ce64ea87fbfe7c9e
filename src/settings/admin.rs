use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;

use super::{SettingsError, invalid};

/// The admin HTTP server of `avatar-worker run`: `/metrics`, `/healthz`, `/readyz`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdminSettings {
    /// false: no admin port (no metrics, no probes).
    pub enabled: bool,
    /// `address:port` to listen on; all interfaces by default so probes reach it from outside a container.
    /// In a pod, bind the pod's address (`$(POD_IP):9090`) so nothing else on the node's other interfaces
    /// reaches it.
    pub bind: SocketAddr,
    /// Connections served at once; further ones wait in the kernel's accept queue (costing the worker no
    /// file descriptor) until one ends.
    pub max_connections: usize,
    /// A connection that sends no complete request header for this long (idle between requests
    /// included) is closed, so idle or trickling clients cannot hold the connection slots.
    #[serde(rename = "idle_timeout_ms", with = "super::millis")]
    pub idle_timeout: Duration,
}

impl Default for AdminSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            bind: SocketAddr::from(([0, 0, 0, 0], 9090)),
            max_connections: 64,
            idle_timeout: Duration::from_secs(10),
        }
    }
}

impl AdminSettings {
    pub(super) fn validate(&self) -> Result<(), SettingsError> {
        if self.max_connections == 0 {
            return Err(invalid("admin.max_connections", "must be at least 1"));
        }
        if self.idle_timeout.is_zero() || self.idle_timeout > Duration::from_secs(300) {
            return Err(invalid(
                "admin.idle_timeout_ms",
                "must be between 1 and 300000",
            ));
        }
        Ok(())
    }
}
