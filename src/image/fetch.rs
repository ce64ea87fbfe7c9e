//! Downloading an update job's image URL through the worker's guarded fetcher
//! ([`crate::http::guarded`]): any host, but no loopback or private address unless the host is on
//! `image.allow_hosts`, every redirect checked again.

use bytes::Bytes;
use reqwest::StatusCode;

use super::{ImageError, ImageSettings};
use crate::http::guarded::{self, FetchError, Policy};

/// Downloads `url` under the settings' guard, size limit and timeouts.
pub async fn fetch(url: &str, settings: &ImageSettings) -> Result<Bytes, ImageError> {
    let policy = Policy {
        what: "image",
        hosts: None,
        hosts_key: "",
        allow_private: &settings.allow_hosts,
        allow_key: "image.allow_hosts",
        connect_timeout: settings.connect_timeout,
        timeout: settings.timeout,
        max_redirects: settings.max_redirects,
        max_bytes: settings.max_bytes,
        accept: "image/jpeg, image/png, image/webp",
        clients: None,
    };
    match guarded::get(url, &policy).await {
        Ok(body) => Ok(Bytes::from(body)),
        Err(FetchError::Forbidden(message)) => Err(ImageError::UrlForbidden(message)),
        Err(FetchError::TooLarge { limit, .. }) => Err(ImageError::TooLarge(format!(
            "the download exceeded {limit} bytes (image.max_bytes)"
        ))),
        Err(FetchError::Status { status, message }) => Err(ImageError::Fetch {
            message,
            retryable: retryable_status(status),
        }),
        Err(FetchError::Failed { message, retryable }) => {
            Err(ImageError::Fetch { message, retryable })
        }
    }
}

fn retryable_status(status: StatusCode) -> bool {
    status.is_server_error()
        || status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::TOO_MANY_REQUESTS
}
