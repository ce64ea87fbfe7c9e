//! Runtime configuration: the library [`Config`] and the world's [`Shares`]. The binary's
//! command line is [`Cli`] (module `cli`).

use std::net::{IpAddr, Ipv4Addr};

pub use crate::cli::Cli;
use crate::faults::Faults;

/// How a JID that was not configured explicitly is distributed over the four outcomes.
///
/// The values are relative weights; they are normalised by their sum, so they need not add up to 1.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Shares {
    /// Picture set: `GET /user/avatar` succeeds.
    pub set: f64,
    /// No picture: 500 "that user or group does not have a profile picture".
    pub not_set: f64,
    /// Hidden by privacy: 500 "the user has hidden their profile picture from you".
    pub hidden: f64,
    /// Not registered: 400 `INVALID_JID` (only for `@s.whatsapp.net` targets).
    pub not_on_whatsapp: f64,
}

impl Default for Shares {
    /// 0.70 set, 0.15 not set, 0.10 hidden, 0.05 not on WhatsApp.
    fn default() -> Self {
        Shares {
            set: 0.70,
            not_set: 0.15,
            hidden: 0.10,
            not_on_whatsapp: 0.05,
        }
    }
}

impl Shares {
    /// Every contact has a picture: a test's jobs all answer `ok` unless it says otherwise.
    pub fn every_picture_set() -> Self {
        Self {
            set: 1.0,
            not_set: 0.0,
            hidden: 0.0,
            not_on_whatsapp: 0.0,
        }
    }

    pub(crate) fn validate(&self) -> Result<(), String> {
        let all = [self.set, self.not_set, self.hidden, self.not_on_whatsapp];
        if all.iter().any(|v| !v.is_finite() || *v < 0.0) {
            return Err("shares must be finite and non-negative".into());
        }
        if all.iter().sum::<f64>() <= 0.0 {
            return Err("shares must not all be zero".into());
        }
        Ok(())
    }
}

/// Configuration of one mock server instance.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address to bind. Default `127.0.0.1`.
    pub host: IpAddr,
    /// Port to bind; `0` (the library default) picks an ephemeral port.
    pub port: u16,
    /// Accepted Basic-auth `(user, password)` pairs; empty means no authentication.
    /// For a repeated user the last pair wins, as in the gateway.
    pub basic_auth: Vec<(String, String)>,
    /// Device ids registered and logged in at start (and after `POST /_mock/reset`).
    /// Device number N (1-based) gets the JID `62812345000NN:1@s.whatsapp.net`
    /// i.e. `6281234500000 + N`.
    pub devices: Vec<String>,
    /// Base URL used in picture URLs instead of the bound address (e.g. `http://mock:3000`).
    pub public_url: Option<String>,
    /// Seed of the deterministic world.
    pub seed: u64,
    /// Outcome shares of the deterministic world.
    pub shares: Shares,
    /// GOWA's `WHATSAPP_ACCOUNT_VALIDATION` (default true): look user JIDs up on WhatsApp before
    /// the picture query (400 `INVALID_JID` when not registered or when the lookup fails).
    pub account_validation: bool,
    /// Faults at start and after `POST /_mock/reset`.
    pub faults: Faults,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            host: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: 0,
            basic_auth: Vec::new(),
            devices: Vec::new(),
            public_url: None,
            seed: 0,
            shares: Shares::default(),
            account_validation: true,
            faults: Faults::default(),
        }
    }
}

/// Parses `user:pass` the way the gateway does: exactly one `:`, so passwords cannot contain `:`.
pub fn parse_basic_auth_pair(pair: &str) -> Result<(String, String), String> {
    let parts: Vec<&str> = pair.split(':').collect();
    if parts.len() != 2 {
        return Err(format!(
            "invalid basic auth pair {pair:?}: expected exactly one ':' (user:pass)"
        ));
    }
    Ok((parts[0].to_string(), parts[1].to_string()))
}
