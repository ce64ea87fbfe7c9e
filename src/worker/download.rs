//! Fetching the picture bytes of a `download: true` fetch from the URL the gateway answered, before it
//! expires. The URL is the gateway's word, not ours: it goes through the guarded fetcher
//! ([`crate::http::guarded`]) with the hosts of `worker.download_hosts` only, no loopback or private
//! address (unless on `worker.download_allow_hosts`), every redirect checked again, no proxy, and the
//! body capped.

use std::time::Duration;

use crate::http::guarded::{self, ClientCache, FetchError, Policy};
use crate::protocol::{ErrorCode, JobError};
use crate::settings::WorkerSettings;

/// Redirects a picture download follows, each checked again.
const MAX_REDIRECTS: u32 = 3;

/// Fetches picture bytes under the worker's download settings.
pub(crate) struct Downloader {
    hosts: Vec<String>,
    allow_private: Vec<String>,
    max_bytes: usize,
    timeout: Duration,
    /// One client per picture host and checked address, so CDN connections are reused.
    clients: ClientCache,
}

impl Downloader {
    pub fn new(settings: &WorkerSettings) -> Self {
        Self {
            hosts: settings.download_hosts.clone(),
            allow_private: settings.download_allow_hosts.clone(),
            max_bytes: settings.download_max_bytes,
            timeout: settings.download_timeout,
            clients: ClientCache::default(),
        }
    }

    pub async fn get(&self, url: &str) -> Result<Vec<u8>, JobError> {
        let policy = Policy {
            what: "picture",
            hosts: Some(&self.hosts),
            hosts_key: "worker.download_hosts",
            allow_private: &self.allow_private,
            allow_key: "worker.download_allow_hosts",
            connect_timeout: self.timeout.min(Duration::from_secs(3)),
            timeout: self.timeout,
            max_redirects: MAX_REDIRECTS,
            max_bytes: self.max_bytes,
            accept: "image/jpeg, image/*",
            clients: Some(&self.clients),
        };
        let failed = |retryable: bool, message: String| {
            JobError::new(ErrorCode::DownloadFailed, message).with_retryable(retryable)
        };
        guarded::get(url, &policy).await.map_err(|err| match err {
            FetchError::Forbidden(message) => JobError::new(
                ErrorCode::DownloadForbidden,
                format!("picture download refused: {message}"),
            ),
            FetchError::TooLarge { limit, .. } => failed(
                false,
                format!("picture is larger than {limit} bytes (worker.download_max_bytes)"),
            ),
            // 403 is the CDN's answer for an expired `oe=`: fetching again gets a fresh URL.
            FetchError::Status { status, message } => failed(
                status.is_server_error() || status.as_u16() == 403 || status.as_u16() == 429,
                format!("picture {message}"),
            ),
            FetchError::Failed { message, retryable } => {
                failed(retryable, format!("picture download failed: {message}"))
            }
        })
    }
}
