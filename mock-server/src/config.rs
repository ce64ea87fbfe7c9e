//! Runtime configuration: the library [`Config`], the world's [`Shares`], and the
//! binary's command line ([`Cli`]) with gateway-style `APP_*` environment variables.

use std::net::{IpAddr, Ipv4Addr};

use clap::Parser;

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

/// Command line of the `mock-server` binary. Every flag has an environment equivalent.
#[derive(Debug, Parser)]
#[command(
    name = "mock-server",
    version,
    about = "Emulates the GOWA (go-whatsapp-web-multidevice v9.2.0) avatar API"
)]
pub struct Cli {
    /// Address to listen on.
    #[arg(long, env = "APP_HOST", default_value = "0.0.0.0")]
    pub host: IpAddr,
    /// Port to listen on.
    #[arg(long, env = "APP_PORT", default_value_t = 3000)]
    pub port: u16,
    /// Basic-auth credentials `user:pass`, comma separated or repeated; none means no auth.
    #[arg(
        short = 'b',
        long = "basic-auth",
        env = "APP_BASIC_AUTH",
        value_delimiter = ','
    )]
    pub basic_auth: Vec<String>,
    /// Device ids registered and logged in at start, comma separated.
    #[arg(long, env = "APP_DEVICES", value_delimiter = ',')]
    pub devices: Vec<String>,
    /// Public base URL put into picture URLs (default: http://<bound address>).
    #[arg(long = "public-url", env = "APP_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Seed of the deterministic world.
    #[arg(long, env = "APP_SEED", default_value_t = 0)]
    pub seed: u64,
    /// Share of JIDs with a profile picture.
    #[arg(long = "share-set", env = "APP_SHARE_SET", default_value_t = Shares::default().set)]
    pub share_set: f64,
    /// Share of JIDs without a profile picture.
    #[arg(long = "share-not-set", env = "APP_SHARE_NOT_SET", default_value_t = Shares::default().not_set)]
    pub share_not_set: f64,
    /// Share of JIDs whose picture is hidden by privacy settings.
    #[arg(long = "share-hidden", env = "APP_SHARE_HIDDEN", default_value_t = Shares::default().hidden)]
    pub share_hidden: f64,
    /// Share of numbers that are not on WhatsApp.
    #[arg(
        long = "share-not-on-whatsapp",
        env = "APP_SHARE_NOT_ON_WHATSAPP",
        default_value_t = Shares::default().not_on_whatsapp
    )]
    pub share_not_on_whatsapp: f64,
}

impl Cli {
    /// Turns the command line into a [`Config`]; errors name the offending value.
    pub fn into_config(self) -> Result<Config, String> {
        let mut basic_auth = Vec::new();
        for pair in self.basic_auth.iter().filter(|p| !p.is_empty()) {
            basic_auth.push(parse_basic_auth_pair(pair)?);
        }
        let shares = Shares {
            set: self.share_set,
            not_set: self.share_not_set,
            hidden: self.share_hidden,
            not_on_whatsapp: self.share_not_on_whatsapp,
        };
        shares.validate()?;
        Ok(Config {
            host: self.host,
            port: self.port,
            basic_auth,
            devices: self
                .devices
                .into_iter()
                .map(|d| d.trim().to_string())
                .filter(|d| !d.is_empty())
                .collect(),
            public_url: self.public_url.map(|u| u.trim_end_matches('/').to_string()),
            seed: self.seed,
            shares,
        })
    }
}
