use std::time::Duration;

use futures_util::StreamExt;

use crate::protocol::{ErrorCode, JobError};

/// Fetches picture bytes from the CDN URL a gateway returned, before it expires.
pub(crate) struct Downloader {
    client: reqwest::Client,
    max_bytes: usize,
}

impl Downloader {
    pub fn new(max_bytes: usize, timeout: Duration) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(3)))
            .redirect(reqwest::redirect::Policy::limited(3))
            .build()?;
        Ok(Self { client, max_bytes })
    }

    pub async fn get(&self, url: &str) -> Result<Vec<u8>, JobError> {
        let failed = |retryable: bool, message: String| {
            JobError::new(ErrorCode::DownloadFailed, message).with_retryable(retryable)
        };
        let response = self
            .client
            .get(url)
            .send()
            .await
            .map_err(|err| failed(true, format!("picture download failed: {err}")))?;
        let status = response.status();
        if !status.is_success() {
            // 403 is the CDN's answer for an expired `oe=`: fetching again gets a fresh URL.
            return Err(failed(
                status.is_server_error() || status.as_u16() == 403 || status.as_u16() == 429,
                format!("picture download answered HTTP {status}"),
            ));
        }
        if response
            .content_length()
            .is_some_and(|len| len > self.max_bytes as u64)
        {
            return Err(failed(
                false,
                format!("picture is larger than {} bytes", self.max_bytes),
            ));
        }
        let mut bytes = Vec::new();
        let mut stream = response.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk =
                chunk.map_err(|err| failed(true, format!("picture download failed: {err}")))?;
            if bytes.len() + chunk.len() > self.max_bytes {
                return Err(failed(
                    false,
                    format!("picture is larger than {} bytes", self.max_bytes),
                ));
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(bytes)
    }
}
