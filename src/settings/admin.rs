use std::net::SocketAddr;

use serde::Deserialize;

/// The admin HTTP server of `avatar-worker run`: `/metrics`, `/healthz`, `/readyz`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdminSettings {
    /// false: no admin port (no metrics, no probes).
    pub enabled: bool,
    /// `address:port` to listen on; all interfaces by default so probes reach it from outside a container.
    pub bind: SocketAddr,
}

impl Default for AdminSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            bind: SocketAddr::from(([0, 0, 0, 0], 9090)),
        }
    }
}
