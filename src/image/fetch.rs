//! Downloading an image URL without letting the job reach places it should not.
//!
//! DNS is resolved here, every address is checked, and the connection is pinned to the checked
//! address so a rebinding resolver cannot swap it between the check and the connect. Redirects
//! are followed by hand so each hop goes through the same checks.

use std::net::{IpAddr, SocketAddr};

use bytes::{Bytes, BytesMut};
use reqwest::{StatusCode, Url, redirect};

use super::guard::{forbidden_reason, is_allowed};
use super::{ImageError, ImageSettings};

/// Downloads `url` under the settings' guard, size limit and timeouts.
pub async fn fetch(url: &str, settings: &ImageSettings) -> Result<Bytes, ImageError> {
    let total = settings.timeout;
    match tokio::time::timeout(total, fetch_following(url, settings)).await {
        Ok(result) => result,
        Err(_) => Err(ImageError::Fetch {
            message: format!(
                "downloading the image took longer than {} ms",
                settings.timeout.as_millis()
            ),
            retryable: true,
        }),
    }
}

async fn fetch_following(url: &str, settings: &ImageSettings) -> Result<Bytes, ImageError> {
    let mut current = parse(url)?;
    let mut redirects = 0u32;
    loop {
        match fetch_once(&current, settings).await? {
            Hop::Body(bytes) => return Ok(bytes),
            Hop::Redirect(next) => {
                if redirects >= settings.max_redirects {
                    return Err(ImageError::Fetch {
                        message: format!(
                            "too many redirects: more than {} (last one to {})",
                            settings.max_redirects,
                            redact(&next)
                        ),
                        retryable: false,
                    });
                }
                redirects += 1;
                current = next;
            }
        }
    }
}

enum Hop {
    Body(Bytes),
    Redirect(Url),
}

fn parse(url: &str) -> Result<Url, ImageError> {
    let parsed = Url::parse(url.trim())
        .map_err(|e| ImageError::UrlForbidden(format!("the image URL is not a valid URL: {e}")))?;
    check_scheme(&parsed)?;
    Ok(parsed)
}

fn check_scheme(url: &Url) -> Result<(), ImageError> {
    match url.scheme() {
        "http" | "https" => Ok(()),
        other => Err(ImageError::UrlForbidden(format!(
            "URL scheme '{other}' is not allowed: use http or https"
        ))),
    }
}

/// Hides credentials and query strings, which may hold secrets, from error messages.
fn redact(url: &Url) -> String {
    let mut shown = url.clone();
    let _ = shown.set_username("");
    let _ = shown.set_password(None);
    shown.set_query(None);
    shown.set_fragment(None);
    shown.to_string()
}

/// The address to connect to for `url`, after the guard.
async fn checked_address(url: &Url, settings: &ImageSettings) -> Result<SocketAddr, ImageError> {
    let host = url
        .host_str()
        .ok_or_else(|| ImageError::UrlForbidden("the image URL has no host".into()))?;
    let port = url
        .port_or_known_default()
        .ok_or_else(|| ImageError::UrlForbidden("the image URL has no port".into()))?;
    let allowed = is_allowed(&settings.allow_hosts, host, port);
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let addresses: Vec<SocketAddr> = if let Ok(ip) = bare.parse::<IpAddr>() {
        vec![SocketAddr::new(ip, port)]
    } else {
        let connect = settings.connect_timeout;
        let lookup = tokio::time::timeout(connect, tokio::net::lookup_host((bare, port)));
        match lookup.await {
            Ok(Ok(found)) => found.collect(),
            Ok(Err(e)) => {
                return Err(ImageError::Fetch {
                    message: format!("could not resolve image host {host}: {e}"),
                    retryable: true,
                });
            }
            Err(_) => {
                return Err(ImageError::Fetch {
                    message: format!("resolving image host {host} timed out"),
                    retryable: true,
                });
            }
        }
    };
    let first = *addresses.first().ok_or_else(|| ImageError::Fetch {
        message: format!("image host {host} has no address"),
        retryable: true,
    })?;
    if !allowed {
        // One bad address refuses the host: a resolver mixing public and private answers is
        // exactly what a rebinding attack looks like.
        for address in &addresses {
            if let Some(reason) = forbidden_reason(address.ip()) {
                return Err(ImageError::UrlForbidden(format!(
                    "image host {host} resolves to {}, {reason}; it is not on image.allow_hosts",
                    address.ip()
                )));
            }
        }
    }
    Ok(first)
}

async fn fetch_once(url: &Url, settings: &ImageSettings) -> Result<Hop, ImageError> {
    check_scheme(url)?;
    let address = checked_address(url, settings).await?;
    let mut builder = reqwest::Client::builder()
        .redirect(redirect::Policy::none())
        .no_proxy()
        .connect_timeout(settings.connect_timeout)
        .user_agent(concat!("avatar-worker/", env!("CARGO_PKG_VERSION")));
    if let Some(domain) = url.domain() {
        builder = builder.resolve(domain, address);
    }
    let client = builder.build().map_err(|e| ImageError::Fetch {
        message: format!("could not set up the HTTP client: {e}"),
        retryable: true,
    })?;
    let mut response = client
        .get(url.clone())
        .header(reqwest::header::ACCEPT, "image/jpeg, image/png, image/webp")
        .send()
        .await
        .map_err(|e| transport_error(url, &e))?;

    let status = response.status();
    if status.is_redirection() {
        let location = response
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| ImageError::Fetch {
                message: format!("{} answered {status} without a Location", redact(url)),
                retryable: false,
            })?;
        let next = url.join(location).map_err(|e| {
            ImageError::UrlForbidden(format!("redirect to an invalid URL '{location}': {e}"))
        })?;
        check_scheme(&next)?;
        return Ok(Hop::Redirect(next));
    }
    if !status.is_success() {
        return Err(ImageError::Fetch {
            message: format!("downloading {} failed: HTTP {status}", redact(url)),
            retryable: retryable_status(status),
        });
    }
    if let Some(length) = response
        .content_length()
        .filter(|&length| length > settings.max_bytes as u64)
    {
        return Err(too_large(length, settings.max_bytes));
    }
    let capacity = response.content_length().unwrap_or(64 * 1024) as usize;
    let mut body = BytesMut::with_capacity(capacity.min(settings.max_bytes));
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| transport_error(url, &e))?
    {
        if body.len() + chunk.len() > settings.max_bytes {
            return Err(too_large_streamed(settings.max_bytes));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Hop::Body(body.freeze()))
}

fn too_large(length: u64, limit: usize) -> ImageError {
    ImageError::TooLarge(format!(
        "the image URL announces {length} bytes; the limit is {limit} (image.max_bytes)"
    ))
}

fn too_large_streamed(limit: usize) -> ImageError {
    ImageError::TooLarge(format!(
        "the download exceeded {limit} bytes (image.max_bytes)"
    ))
}

fn retryable_status(status: StatusCode) -> bool {
    status.is_server_error()
        || status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::TOO_MANY_REQUESTS
}

fn transport_error(url: &Url, e: &reqwest::Error) -> ImageError {
    let what = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else {
        "failed"
    };
    ImageError::Fetch {
        message: format!("downloading {} {what}: {e}", redact(url)),
        retryable: true,
    }
}
