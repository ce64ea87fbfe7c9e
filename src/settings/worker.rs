use std::time::Duration;

use serde::Deserialize;

use super::{SettingsError, invalid};

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WorkerSettings {
    /// Deliveries the broker may push ahead of acks, per job queue.
    pub prefetch: u16,
    /// Jobs processed at once across all devices.
    pub max_in_flight: usize,
    /// On SIGTERM, how long in-flight jobs may take to finish before the rest go back to their queue.
    /// Fits inside docker's 10 s stop timeout.
    #[serde(rename = "shutdown_grace_ms", with = "super::millis")]
    pub shutdown_grace: Duration,
    /// Bodies above this are refused as `invalid_job` (an update job carries its image inline).
    pub max_job_bytes: usize,
    /// Largest picture a fetch with `download: true` accepts.
    pub download_max_bytes: usize,
    #[serde(rename = "download_timeout_ms", with = "super::millis")]
    pub download_timeout: Duration,
    /// Hosts the picture URL of a `download: true` fetch (and every redirect from it) may name: `*.domain`
    /// (any name under it), `host`, `host:port`, or `*` (any host). WhatsApp's CDN by default: the URL
    /// comes from the gateway, which the worker does not take on trust.
    pub download_hosts: Vec<String>,
    /// `host` or `host:port` entries downloaded from even though they resolve to a loopback or private
    /// address (the mock server in tests and docker compose), as `image.allow_hosts` for image URLs.
    pub download_allow_hosts: Vec<String>,
    /// Queues a job's `reply_to` may name, by prefix (besides the results queue): server-named queues and
    /// RabbitMQ's direct reply-to by default. A job naming another queue is refused (`invalid_job`), so a
    /// producer cannot write into someone else's queue with the worker's rights.
    pub reply_to_prefixes: Vec<String>,
}

impl Default for WorkerSettings {
    fn default() -> Self {
        Self {
            prefetch: 100,
            max_in_flight: 64,
            shutdown_grace: Duration::from_secs(8),
            max_job_bytes: 16 * 1024 * 1024,
            download_max_bytes: 5 * 1024 * 1024,
            download_timeout: Duration::from_secs(10),
            download_hosts: vec!["*.whatsapp.net".into(), "*.fbcdn.net".into()],
            download_allow_hosts: Vec::new(),
            reply_to_prefixes: vec!["amq.gen-".into(), "amq.rabbitmq.reply-to".into()],
        }
    }
}

impl WorkerSettings {
    pub(super) fn validate(&self) -> Result<(), SettingsError> {
        if self.prefetch == 0 {
            return Err(invalid("worker.prefetch", "must be at least 1"));
        }
        if self.max_in_flight == 0 {
            return Err(invalid("worker.max_in_flight", "must be at least 1"));
        }
        if self.max_job_bytes < 1024 {
            return Err(invalid("worker.max_job_bytes", "must be at least 1024"));
        }
        if self.download_max_bytes == 0 || self.download_timeout.is_zero() {
            return Err(invalid(
                "worker.download_max_bytes",
                "worker.download_max_bytes and worker.download_timeout_ms must be at least 1",
            ));
        }
        if self
            .download_hosts
            .iter()
            .any(|host| host.trim().is_empty())
        {
            return Err(invalid(
                "worker.download_hosts",
                "an empty entry names no host; `*` allows every host",
            ));
        }
        if self.reply_to_prefixes.iter().any(String::is_empty) {
            return Err(invalid(
                "worker.reply_to_prefixes",
                "an empty prefix would allow every queue; list the prefixes of your reply queues",
            ));
        }
        Ok(())
    }
}
