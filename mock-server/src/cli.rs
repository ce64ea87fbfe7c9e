//! Command line of the `mock-server` binary. Every flag has an environment equivalent: GOWA's
//! own names where GOWA has the setting (`APP_HOST`, `APP_PORT`, `APP_BASIC_AUTH`,
//! `WHATSAPP_ACCOUNT_VALIDATION`), `APP_*` for the mock's own settings.

use std::net::IpAddr;

use clap::{ArgAction, Parser};

use crate::config::{Config, Shares, parse_basic_auth_pair};
use crate::faults::Faults;
use crate::util::parse_bool;

/// GOWA reads its booleans with `strconv.ParseBool` (through viper and cobra); the mock refuses
/// anything else instead of reading it as false.
fn go_bool(v: &str) -> Result<bool, String> {
    parse_bool(v).ok_or_else(|| {
        format!("{v:?} is not a Go boolean (1, t, true, TRUE, True, 0, f, false, FALSE, False)")
    })
}

/// Command line of the `mock-server` binary.
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
    /// GOWA's account validation: look numbers up on WhatsApp before the picture query
    /// (`--account-validation=false` to turn it off, as in GOWA).
    #[arg(
        long = "account-validation",
        env = "WHATSAPP_ACCOUNT_VALIDATION",
        default_value = "true",
        default_missing_value = "true",
        num_args = 0..=1,
        action = ArgAction::Set,
        value_parser = go_bool
    )]
    pub account_validation: bool,
    /// Fault at start: fixed delay of every /user/avatar request, in ms.
    #[arg(long = "fault-latency-ms", env = "APP_FAULT_LATENCY_MS", default_value_t = Faults::default().latency_ms)]
    pub fault_latency_ms: u64,
    /// Fault at start: extra random delay up to this many ms.
    #[arg(long = "fault-jitter-ms", env = "APP_FAULT_JITTER_MS", default_value_t = Faults::default().jitter_ms)]
    pub fault_jitter_ms: u64,
    /// Fault at start: probability that a WhatsApp query is throttled (429 rate-overlimit).
    #[arg(
        long = "fault-rate-overlimit",
        env = "APP_FAULT_RATE_OVERLIMIT",
        default_value_t = 0.0
    )]
    pub fault_rate_overlimit: f64,
    /// Fault at start: probability of a picture-query or upload timeout.
    #[arg(
        long = "fault-timeout",
        env = "APP_FAULT_TIMEOUT",
        default_value_t = 0.0
    )]
    pub fault_timeout: f64,
    /// Fault at start: probability of an internal-server-error IQ answer.
    #[arg(
        long = "fault-internal-error",
        env = "APP_FAULT_INTERNAL_ERROR",
        default_value_t = 0.0
    )]
    pub fault_internal_error: f64,
    /// Fault at start: probability of 401 "you are not connect to services server".
    #[arg(
        long = "fault-not-connected",
        env = "APP_FAULT_NOT_CONNECTED",
        default_value_t = 0.0
    )]
    pub fault_not_connected: f64,
    /// Fault at start: probability that the on-WhatsApp lookup fails (400 INVALID_JID).
    #[arg(
        long = "fault-lookup-error",
        env = "APP_FAULT_LOOKUP_ERROR",
        default_value_t = 0.0
    )]
    pub fault_lookup_error: f64,
    /// Fault at start: length of an injected GET timeout, in ms.
    #[arg(long = "fault-timeout-ms", env = "APP_FAULT_TIMEOUT_MS", default_value_t = Faults::default().timeout_ms)]
    pub fault_timeout_ms: u64,
    /// Fault at start: length of an injected POST timeout from the request's start, in ms.
    #[arg(
        long = "fault-upload-timeout-ms",
        env = "APP_FAULT_UPLOAD_TIMEOUT_MS",
        default_value_t = Faults::default().upload_timeout_ms
    )]
    pub fault_upload_timeout_ms: u64,
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
        let faults = Faults {
            latency_ms: self.fault_latency_ms,
            jitter_ms: self.fault_jitter_ms,
            rate_overlimit: self.fault_rate_overlimit,
            timeout: self.fault_timeout,
            internal_error: self.fault_internal_error,
            not_connected: self.fault_not_connected,
            lookup_error: self.fault_lookup_error,
            timeout_ms: self.fault_timeout_ms,
            upload_timeout_ms: self.fault_upload_timeout_ms,
        };
        faults.validate()?;
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
            account_validation: self.account_validation,
            faults,
        })
    }
}
