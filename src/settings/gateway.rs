use std::time::Duration;

use secrecy::SecretString;
use serde::Deserialize;

use super::{SettingsError, check_deadline, check_devices, invalid};
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
    #[serde(rename = "timeout_ms", with = "super::millis")]
    pub timeout: Duration,
    #[serde(rename = "connect_timeout_ms", with = "super::millis")]
    pub connect_timeout: Duration,
    pub routes: Vec<GatewayRoute>,
}

/// Devices served by another gateway instance. Unset fields fall back to the top-level gateway settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayRoute {
    pub devices: Vec<DeviceId>,
    pub base_url: Option<String>,
    pub username: Option<String>,
    pub password: Option<SecretString>,
    #[serde(default, rename = "timeout_ms", with = "super::millis::option")]
    pub timeout: Option<Duration>,
}

impl Default for GatewaySettings {
    fn default() -> Self {
        Self {
            base_url: "http://127.0.0.1:3000".into(),
            username: None,
            password: None,
            timeout: Duration::from_secs(8),
            connect_timeout: Duration::from_secs(2),
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
            timeout: self.timeout,
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
                timeout: route.timeout.unwrap_or(base.timeout),
            };
            for device in &route.devices {
                out.push((device.clone(), profile.clone()));
            }
        }
        out
    }

    pub(super) fn validate(&self) -> Result<(), SettingsError> {
        check_url("gateway.base_url", &self.base_url)?;
        check_deadline("gateway.timeout_ms", self.timeout)?;
        if self.connect_timeout.is_zero() {
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
            if let Some(timeout) = route.timeout {
                check_deadline("gateway.routes.timeout_ms", timeout)?;
            }
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
