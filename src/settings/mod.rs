//! Typed settings, layered: built-in defaults, then an optional TOML file (`--config`), then environment
//! variables `AVATAR_WORKER__SECTION__KEY`. Every value is checked once here, so the rest of the worker
//! never sees a bad one; an error names the key.

mod admin;
mod amqp;
mod backend;
mod effective;
mod gateway;
mod lanes;
pub(crate) mod millis;
mod not_on_whatsapp;
mod pacing;
mod retry;
mod topology;
mod worker;

use std::path::Path;

use serde::Deserialize;

pub use admin::AdminSettings;
pub use amqp::{AmqpSettings, redact_url};
pub use backend::{BackendKind, BackendSettings, DeviceBackend, NativeSettings};
pub use effective::{effective, to_text as effective_text, unread_env_vars};
pub use gateway::{GatewayProfile, GatewayRoute, GatewaySettings};
pub use lanes::LanesSettings;
pub use not_on_whatsapp::NotOnWhatsappSettings;
pub use pacing::{DevicePacing, Limit, PacingSettings};
pub use retry::RetrySettings;
pub use topology::{QueueType, TopologySettings};
pub use worker::WorkerSettings;

use crate::image::ImageSettings;

/// Prefix of environment overrides: `AVATAR_WORKER__AMQP__URL` sets `amqp.url`.
pub const ENV_PREFIX: &str = "AVATAR_WORKER";

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    pub amqp: AmqpSettings,
    pub topology: TopologySettings,
    pub worker: WorkerSettings,
    pub backend: BackendSettings,
    pub gateway: GatewaySettings,
    pub native: NativeSettings,
    pub retry: RetrySettings,
    pub pacing: PacingSettings,
    pub lanes: LanesSettings,
    pub not_on_whatsapp: NotOnWhatsappSettings,
    pub image: ImageSettings,
    pub log: LogSettings,
    pub admin: AdminSettings,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Readable lines for a terminal.
    #[default]
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogSettings {
    pub format: LogFormat,
    /// A `tracing` filter such as `info` or `avatar_worker=debug,lapin=warn`; `RUST_LOG` wins when set.
    pub level: String,
}

impl Default for LogSettings {
    fn default() -> Self {
        Self {
            format: LogFormat::Text,
            level: "info".into(),
        }
    }
}

impl LogSettings {
    /// A filter whose every directive names a level: `info`, or `target=level` pairs. A bare word that is
    /// not a level (a typo such as `verbose`) is a valid `tracing` target filter that silences the worker,
    /// so it is refused.
    fn validate(&self) -> Result<(), SettingsError> {
        const LEVELS: [&str; 6] = ["off", "error", "warn", "info", "debug", "trace"];
        let directives = self.level.split(',').map(str::trim);
        let bad = directives.clone().find(|directive| {
            let level = directive
                .rsplit_once('=')
                .map_or(*directive, |(_, level)| level);
            !LEVELS.contains(&level.to_ascii_lowercase().as_str())
        });
        let parsed = tracing_subscriber::EnvFilter::builder()
            .with_regex(false)
            .parse(&self.level);
        match (bad, parsed) {
            (None, Ok(_)) => Ok(()),
            (Some(directive), _) => Err(invalid(
                "log.level",
                format!(
                    "{directive:?} names no level; use error, warn, info, debug or trace, \
                     optionally per target: avatar_worker=debug,lapin=warn"
                ),
            )),
            (None, Err(err)) => Err(invalid("log.level", format!("{:?}: {err}", self.level))),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// Not a `#[source]`: the message already holds it, and `{:#}` would print it twice.
    #[error("configuration: {0}")]
    Load(config::ConfigError),
    #[error("configuration key `{key}`: {reason}")]
    Invalid { key: &'static str, reason: String },
}

impl Settings {
    /// Defaults, then `file` when given, then the process environment.
    pub fn load(file: Option<&Path>) -> Result<Self, SettingsError> {
        Self::load_from(file, std::env::vars())
    }

    /// As [`Settings::load`], with the environment given explicitly (tests, the compose check).
    pub fn load_from(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, SettingsError> {
        let builder = config::Config::builder().add_source(builder(file, env));
        let settings: Settings = builder.build()?.try_deserialize()?;
        settings.validate()?;
        Ok(settings)
    }

    pub fn validate(&self) -> Result<(), SettingsError> {
        self.amqp.validate()?;
        self.topology.validate()?;
        self.worker.validate()?;
        self.backend.validate()?;
        self.gateway.validate()?;
        self.native.validate()?;
        self.retry.validate()?;
        self.pacing.validate()?;
        self.lanes.validate()?;
        self.not_on_whatsapp.validate()?;
        self.image.validate()?;
        self.log.validate()?;
        self.admin.validate()?;
        Ok(())
    }
}

/// The layers over the built-in defaults: `file` when given, then the `AVATAR_WORKER__*` variables of `env`.
fn builder(
    file: Option<&Path>,
    env: impl IntoIterator<Item = (String, String)>,
) -> Vec<Box<dyn config::Source + Send + Sync>> {
    let env: config::Map<String, String> = env
        .into_iter()
        .filter(|(key, _)| key.starts_with(ENV_PREFIX))
        .collect();
    let mut sources: Vec<Box<dyn config::Source + Send + Sync>> = Vec::new();
    if let Some(file) = file {
        sources.push(Box::new(config::File::from(file).required(true)));
    }
    sources.push(Box::new(
        config::Environment::with_prefix(ENV_PREFIX)
            .prefix_separator("__")
            .separator("__")
            .try_parsing(true)
            .list_separator(",")
            .with_list_parse_key("amqp.urls")
            .with_list_parse_key("retry.delays_ms")
            .with_list_parse_key("image.allow_hosts")
            .with_list_parse_key("worker.reply_to_prefixes")
            .with_list_parse_key("worker.download_hosts")
            .with_list_parse_key("worker.download_allow_hosts")
            .source(Some(env)),
    ));
    sources
}

impl From<config::ConfigError> for SettingsError {
    fn from(err: config::ConfigError) -> Self {
        SettingsError::Load(err)
    }
}

/// A list of devices in the configuration names at least one (each id was checked as it was read).
fn check_devices(
    key: &'static str,
    devices: &[crate::protocol::DeviceId],
) -> Result<(), SettingsError> {
    if devices.is_empty() {
        return Err(invalid(key, "must name at least one device"));
    }
    Ok(())
}

/// A deadline of a call to WhatsApp: long enough to happen, short enough never to hold a job for minutes.
fn check_deadline(key: &'static str, deadline: std::time::Duration) -> Result<(), SettingsError> {
    if deadline.is_zero() || deadline > std::time::Duration::from_secs(120) {
        return Err(invalid(key, "must be between 1 and 120000"));
    }
    Ok(())
}

pub(crate) fn invalid(key: &'static str, reason: impl Into<String>) -> SettingsError {
    SettingsError::Invalid {
        key,
        reason: reason.into(),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use secrecy::ExposeSecret;

    use super::*;

    fn load(env: &[(&str, &str)]) -> Result<Settings, SettingsError> {
        Settings::load_from(
            None,
            env.iter().map(|(k, v)| (k.to_string(), v.to_string())),
        )
    }

    #[test]
    fn the_documented_file_equals_the_built_in_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/default.toml");
        let from_file = Settings::load_from(Some(&path), []).unwrap();
        assert_eq!(
            format!("{from_file:?}"),
            format!("{:?}", Settings::default())
        );
        assert_eq!(
            from_file.amqp.url.expose_secret(),
            Settings::default().amqp.url.expose_secret()
        );
    }

    #[test]
    fn environment_overrides_by_section_and_key() {
        let settings = load(&[
            ("AVATAR_WORKER__AMQP__URL", "amqp://u:p@rabbit:5672/%2f"),
            ("AVATAR_WORKER__GATEWAY__BASE_URL", "http://gowa:3000"),
            ("AVATAR_WORKER__GATEWAY__USERNAME", "admin"),
            ("AVATAR_WORKER__GATEWAY__PASSWORD", "s3cret"),
            ("AVATAR_WORKER__WORKER__PREFETCH", "50"),
            ("AVATAR_WORKER__TOPOLOGY__QUEUE_TYPE", "quorum"),
            ("AVATAR_WORKER__TOPOLOGY__PREFIX", "crm"),
            ("AVATAR_WORKER__LOG__FORMAT", "json"),
            ("AVATAR_WORKER__RETRY__DELAYS_MS", "100,200,400"),
            (
                "AVATAR_WORKER__IMAGE__ALLOW_HOSTS",
                "mock-server:3000,127.0.0.1",
            ),
            ("AVATAR_WORKER__BACKEND__DEFAULT", "native"),
            (
                "AVATAR_WORKER__NATIVE__SESSIONS_DIR",
                "/var/lib/avatar/sessions",
            ),
            ("UNRELATED", "x"),
        ])
        .unwrap();
        assert_eq!(settings.backend.default, BackendKind::Native);
        assert!(settings.backend.uses_native());
        assert_eq!(
            settings.native.sessions_dir,
            Path::new("/var/lib/avatar/sessions")
        );
        assert_eq!(settings.amqp.redacted_url(), "amqp://u:***@rabbit:5672/%2f");
        assert_eq!(settings.gateway.base_url, "http://gowa:3000");
        assert_eq!(settings.worker.prefetch, 50);
        assert_eq!(settings.topology.queue_type, QueueType::Quorum);
        assert_eq!(
            crate::broker::QueueNames::new(&settings.topology).fetch,
            "crm.fetch"
        );
        assert_eq!(settings.log.format, LogFormat::Json);
        assert_eq!(
            settings.retry.delays,
            [100, 200, 400].map(std::time::Duration::from_millis)
        );
        assert_eq!(
            settings.image.allow_hosts,
            vec!["mock-server:3000", "127.0.0.1"]
        );
        assert!(
            !format!("{settings:?}").contains("s3cret"),
            "secrets never print"
        );
    }

    #[test]
    fn a_cluster_is_a_comma_separated_list_of_nodes_that_replaces_url() {
        let two = load(&[(
            "AVATAR_WORKER__AMQP__URLS",
            "amqp://u:p1@rabbit-1:5672/%2f, amqp://u:p2@rabbit-2:5672/%2f",
        )])
        .unwrap();
        assert_eq!(
            two.amqp.addresses().redacted(),
            [
                "amqp://u:***@rabbit-1:5672/%2f",
                "amqp://u:***@rabbit-2:5672/%2f"
            ]
        );
        assert_eq!(
            two.amqp.redacted_url(),
            "amqp://u:***@rabbit-1:5672/%2f,amqp://u:***@rabbit-2:5672/%2f"
        );
        let one = load(&[("AVATAR_WORKER__AMQP__URLS", "amqp://rabbit-9/")]).unwrap();
        assert_eq!(one.amqp.addresses().redacted(), ["amqp://rabbit-9/"]);
        let none = load(&[]).unwrap();
        assert_eq!(
            none.amqp.addresses().redacted(),
            ["amqp://guest:***@127.0.0.1:5672/%2f"]
        );
        let bad = load(&[("AVATAR_WORKER__AMQP__URLS", "amqp://rabbit-1/,rabbit-2")]);
        let err = bad.unwrap_err().to_string();
        assert!(err.contains("amqp.urls"), "{err}");
    }

    #[test]
    fn an_invalid_value_names_its_key() {
        let cases = [
            ("AVATAR_WORKER__WORKER__PREFETCH", "lots", "prefetch"),
            ("AVATAR_WORKER__WORKER__PREFETCH", "0", "worker.prefetch"),
            ("AVATAR_WORKER__AMQP__URL", "http://x", "amqp.url"),
            (
                "AVATAR_WORKER__GATEWAY__BASE_URL",
                "gowa:3000",
                "gateway.base_url",
            ),
            (
                "AVATAR_WORKER__GATEWAY__TIMEOUT_MS",
                "0",
                "gateway.timeout_ms",
            ),
            (
                "AVATAR_WORKER__TOPOLOGY__QUEUE_TYPE",
                "stream",
                "queue_type",
            ),
            ("AVATAR_WORKER__WORKER__NO_SUCH_KEY", "1", "no_such_key"),
            ("AVATAR_WORKER__BACKEND__DEFAULT", "grpc", "grpc"),
            (
                "AVATAR_WORKER__NATIVE__FETCH_TIMEOUT_MS",
                "0",
                "native.fetch_timeout_ms",
            ),
            ("AVATAR_WORKER__LOG__LEVEL", "verbose", "log.level"),
            (
                "AVATAR_WORKER__LOG__LEVEL",
                "avatar_worker=loud",
                "log.level",
            ),
            ("AVATAR_WORKER__ADMIN__BIND", "nonsense", "admin.bind"),
            (
                "AVATAR_WORKER__IMAGE__JPEG_QUALITY",
                "0",
                "image.jpeg_quality",
            ),
        ];
        for (key, value, named) in cases {
            let err = load(&[(key, value)]).unwrap_err().to_string();
            assert!(err.contains(named), "{key}={value}: {err}");
        }
    }
}
