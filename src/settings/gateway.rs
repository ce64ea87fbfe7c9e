use std::time::Duration;

use secrecy::SecretString;
use serde::Deserialize;

use super::{SettingsError, check_devices, invalid};
use crate::protocol::DeviceId;

/// The GOWA gateway the worker talks to, with optional routes that send some devices elsewhere
/// (a deployment may spread its accounts over several gateway instances).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GatewaySettings {
    pub base_url: String,
    pub username: Option<String>,
    pub password: Option<SecretString>,
    /// Per request. WhatsApp sometimes drops a query without answering; the libraries' own 60–75 s
    /// defaults would hold the job that long.
    pub timeout_ms: u64,
    pub connect_timeout_ms: u64,
    pub routes: Vec<GatewayRoute>,
}

/// Devices served by another gateway instance. Unset fields fall back to the top-level gateway settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayRoute {
    pub devices: Vec<String>,
    pub base_url: Option<String>,
    pub username: Option<String>,
    pub password: Option<SecretString>,
    pub timeout_ms: Option<u64>,
}

impl Default for GatewaySettings {
    fn default() -> Self {
        Self {
            base_url: "http://127.0.0.1:3000".into(),
            username: None,
            password: None,
            timeout_ms: 8_000,
            connect_timeout_ms: 2_000,
            routes: Vec::new(),
        }
    }
}

/// Everything needed to call one gateway instance.
#[derive(Debug, Clone)]
pub struct GatewayProfile {
    pub base_url: String,
    pub credentials: Option<(String, SecretString)>,
    pub timeout: Duration,
}

impl GatewaySettings {
    fn default_profile(&self) -> GatewayProfile {
        GatewayProfile {
            base_url: self.base_url.trim_end_matches('/').to_string(),
            credentials: self
                .username
                .clone()
                .map(|user| (user, self.password.clone().unwrap_or_default())),
            timeout: Duration::from_millis(self.timeout_ms),
        }
    }

    /// The profile for jobs without a device, and for devices no route names.
    pub fn fallback(&self) -> GatewayProfile {
        self.default_profile()
    }

    /// `(device, profile)` for every device a route names.
    pub fn routed(&self) -> Vec<(DeviceId, GatewayProfile)> {
        let base = self.default_profile();
        let mut out = Vec::new();
        for route in &self.routes {
            let credentials = match (&route.username, &route.password) {
                (Some(user), password) => Some((
                    user.clone(),
                    password
                        .clone()
                        .or_else(|| self.password.clone())
                        .unwrap_or_default(),
                )),
                (None, _) => base.credentials.clone(),
            };
            let profile = GatewayProfile {
                base_url: route
                    .base_url
                    .as_deref()
                    .map(|url| url.trim_end_matches('/').to_string())
                    .unwrap_or_else(|| base.base_url.clone()),
                credentials,
                timeout: route
                    .timeout_ms
                    .map(Duration::from_millis)
                    .unwrap_or(base.timeout),
            };
            for device in &route.devices {
                if let Ok(device) = DeviceId::parse(device.as_str()) {
                    out.push((device, profile.clone()));
                }
            }
        }
        out
    }

    pub(super) fn validate(&self) -> Result<(), SettingsError> {
        check_url("gateway.base_url", &self.base_url)?;
        if self.timeout_ms == 0 || self.timeout_ms > 120_000 {
            return Err(invalid(
                "gateway.timeout_ms",
                "must be between 1 and 120000",
            ));
        }
        if self.connect_timeout_ms == 0 {
            return Err(invalid("gateway.connect_timeout_ms", "must be at least 1"));
        }
        if self.password.is_some() && self.username.is_none() {
            return Err(invalid(
                "gateway.username",
                "must be set when gateway.password is",
            ));
        }
        for route in &self.routes {
            if let Some(url) = &route.base_url {
                check_url("gateway.routes.base_url", url)?;
            }
            check_devices("gateway.routes.devices", &route.devices)?;
        }
        Ok(())
    }
}

fn check_url(key: &'static str, url: &str) -> Result<(), SettingsError> {
    let parsed = reqwest::Url::parse(url).map_err(|err| invalid(key, format!("{url:?}: {err}")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(invalid(key, format!("{url:?}: must be http or https")));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(invalid(
            key,
            "put credentials in gateway.username and gateway.password, not in the URL",
        ));
    }
    Ok(())
}
