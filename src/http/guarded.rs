//! Downloading a URL the worker did not write (a job's image URL, the picture URL a gateway answered)
//! without letting it reach places it should not.
//!
//! The host is checked against the policy's host patterns, DNS is resolved here, every address is
//! checked, and the connection is pinned to the checked address so a rebinding resolver cannot swap it
//! between the check and the connect. Redirects are followed by hand so each hop goes through the same
//! checks. No proxy is used (`HTTP_PROXY` and friends are ignored): a proxy would do the resolving and
//! the connecting, out of the guard's sight.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use reqwest::{StatusCode, Url, redirect};

use super::guard::{forbidden_reason, host_matches, is_allowed};
use super::{BodyError, error_text, read_capped, redact_url as redact};

/// Where a guarded download may go and how much it may take.
#[derive(Debug, Clone, Copy)]
pub struct Policy<'a> {
    /// What is downloaded, for messages: "image", "picture".
    pub what: &'static str,
    /// Host patterns a URL (and every redirect) may name, as [`host_matches`] takes them; `None`: any
    /// host.
    pub hosts: Option<&'a [String]>,
    /// The setting that holds `hosts`, named in refusals.
    pub hosts_key: &'static str,
    /// `host` or `host:port` entries fetched even though they resolve to a loopback or private address.
    pub allow_private: &'a [String],
    /// The setting that holds `allow_private`, named in refusals.
    pub allow_key: &'static str,
    pub connect_timeout: Duration,
    /// The whole download: DNS, redirects and body.
    pub timeout: Duration,
    pub max_redirects: u32,
    pub max_bytes: usize,
    /// The `Accept` header sent.
    pub accept: &'static str,
    /// Clients kept between downloads (connections reused); `None`: a client per request.
    pub clients: Option<&'a ClientCache>,
}

/// Clients of guarded downloads kept for reuse, one per host and checked address: each can reach only the
/// address its host was checked at (it follows no redirect and resolves nothing), and its connections are
/// reused by the next download from the same host. Bounded: emptied when full.
#[derive(Debug, Default)]
pub struct ClientCache {
    clients: Mutex<HashMap<(String, SocketAddr), reqwest::Client>>,
}

/// Clients a [`ClientCache`] keeps at most.
const MAX_CACHED_CLIENTS: usize = 64;

impl ClientCache {
    fn client(
        &self,
        host: &str,
        address: SocketAddr,
        build: impl FnOnce() -> Result<reqwest::Client, FetchError>,
    ) -> Result<reqwest::Client, FetchError> {
        let key = (host.to_ascii_lowercase(), address);
        let mut clients = self.clients.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(client) = clients.get(&key) {
            return Ok(client.clone());
        }
        let client = build()?;
        if clients.len() >= MAX_CACHED_CLIENTS {
            clients.clear();
        }
        clients.insert(key, client.clone());
        Ok(client)
    }
}

/// Why a guarded download failed.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The URL, a redirect or an address is not allowed: retrying cannot help.
    #[error("{0}")]
    Forbidden(String),
    /// The body is larger than the policy's `max_bytes`.
    #[error("{message}")]
    TooLarge { message: String, limit: usize },
    /// The server answered a status other than success or redirect.
    #[error("{message}")]
    Status { status: StatusCode, message: String },
    /// Network, DNS, timeout, too many redirects.
    #[error("{message}")]
    Failed { message: String, retryable: bool },
}

/// Downloads `url` under `policy`: its host patterns, the address guard, its size limit and timeouts.
pub async fn get(url: &str, policy: &Policy<'_>) -> Result<Vec<u8>, FetchError> {
    match tokio::time::timeout(policy.timeout, following(url, policy)).await {
        Ok(result) => result,
        Err(_) => Err(FetchError::Failed {
            message: format!(
                "downloading the {} took longer than {} ms",
                policy.what,
                policy.timeout.as_millis()
            ),
            retryable: true,
        }),
    }
}

async fn following(url: &str, policy: &Policy<'_>) -> Result<Vec<u8>, FetchError> {
    let mut current = parse(url, policy)?;
    let mut redirects = 0u32;
    loop {
        match once(&current, policy).await? {
            Hop::Body(bytes) => return Ok(bytes),
            Hop::Redirect(next) => {
                if redirects >= policy.max_redirects {
                    return Err(FetchError::Failed {
                        message: format!(
                            "too many redirects: more than {} (last one to {})",
                            policy.max_redirects,
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
    Body(Vec<u8>),
    Redirect(Url),
}

fn parse(url: &str, policy: &Policy<'_>) -> Result<Url, FetchError> {
    let parsed = Url::parse(url.trim()).map_err(|e| {
        FetchError::Forbidden(format!("the {} URL is not a valid URL: {e}", policy.what))
    })?;
    check_scheme(&parsed)?;
    Ok(parsed)
}

fn check_scheme(url: &Url) -> Result<(), FetchError> {
    match url.scheme() {
        "http" | "https" => Ok(()),
        other => Err(FetchError::Forbidden(format!(
            "URL scheme '{other}' is not allowed: use http or https"
        ))),
    }
}

/// The address to connect to for `url`, after the host patterns and the address guard.
async fn checked_address(url: &Url, policy: &Policy<'_>) -> Result<SocketAddr, FetchError> {
    let what = policy.what;
    let host = url
        .host_str()
        .ok_or_else(|| FetchError::Forbidden(format!("the {what} URL has no host")))?;
    let port = url
        .port_or_known_default()
        .ok_or_else(|| FetchError::Forbidden(format!("the {what} URL has no port")))?;
    if let Some(hosts) = policy.hosts
        && !host_matches(hosts, host, port)
    {
        return Err(FetchError::Forbidden(format!(
            "{what} host {host}:{port} is not on {}",
            policy.hosts_key
        )));
    }
    let allowed = is_allowed(policy.allow_private, host, port);
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let addresses: Vec<SocketAddr> = if let Ok(ip) = bare.parse::<IpAddr>() {
        vec![SocketAddr::new(ip, port)]
    } else {
        let lookup = tokio::time::timeout(
            policy.connect_timeout,
            tokio::net::lookup_host((bare, port)),
        );
        match lookup.await {
            Ok(Ok(found)) => found.collect(),
            Ok(Err(e)) => {
                return Err(FetchError::Failed {
                    message: format!("could not resolve {what} host {host}: {e}"),
                    retryable: true,
                });
            }
            Err(_) => {
                return Err(FetchError::Failed {
                    message: format!("resolving {what} host {host} timed out"),
                    retryable: true,
                });
            }
        }
    };
    let first = *addresses.first().ok_or_else(|| FetchError::Failed {
        message: format!("{what} host {host} has no address"),
        retryable: true,
    })?;
    if !allowed {
        // One bad address refuses the host: a resolver mixing public and private answers is
        // exactly what a rebinding attack looks like.
        for address in &addresses {
            if let Some(reason) = forbidden_reason(address.ip()) {
                return Err(FetchError::Forbidden(format!(
                    "{what} host {host} resolves to {}, {reason}; it is not on {}",
                    address.ip(),
                    policy.allow_key
                )));
            }
        }
    }
    Ok(first)
}

async fn once(url: &Url, policy: &Policy<'_>) -> Result<Hop, FetchError> {
    check_scheme(url)?;
    let address = checked_address(url, policy).await?;
    let build = || {
        let mut builder = reqwest::Client::builder()
            .redirect(redirect::Policy::none())
            .no_proxy()
            .connect_timeout(policy.connect_timeout)
            .user_agent(concat!("avatar-worker/", env!("CARGO_PKG_VERSION")));
        if let Some(domain) = url.domain() {
            builder = builder.resolve(domain, address);
        }
        builder.build().map_err(|e| FetchError::Failed {
            message: format!("could not set up the HTTP client: {}", error_text(&e)),
            retryable: true,
        })
    };
    let client = match policy.clients {
        Some(cache) => cache.client(url.host_str().unwrap_or_default(), address, build)?,
        None => build()?,
    };
    let response = client
        .get(url.clone())
        .header(reqwest::header::ACCEPT, policy.accept)
        .send()
        .await
        .map_err(|e| transport_error(url, &e))?;

    let status = response.status();
    if status.is_redirection() {
        let location = response
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| FetchError::Failed {
                message: format!("{} answered {status} without a Location", redact(url)),
                retryable: false,
            })?;
        let next = url
            .join(location)
            .map_err(|e| FetchError::Forbidden(format!("redirect to an invalid URL: {e}")))?;
        check_scheme(&next)?;
        return Ok(Hop::Redirect(next));
    }
    if !status.is_success() {
        return Err(FetchError::Status {
            status,
            message: format!("downloading {} failed: HTTP {status}", redact(url)),
        });
    }
    match read_capped(response, policy.max_bytes).await {
        Ok(body) => Ok(Hop::Body(body)),
        Err(BodyError::TooLarge { limit }) => Err(FetchError::TooLarge {
            message: format!("the {} is larger than {limit} bytes", policy.what),
            limit,
        }),
        Err(BodyError::Transport(e)) => Err(transport_error(url, &e)),
    }
}

fn transport_error(url: &Url, e: &reqwest::Error) -> FetchError {
    let what = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else {
        "failed"
    };
    FetchError::Failed {
        message: format!("downloading {} {what}: {}", redact(url), error_text(e)),
        retryable: true,
    }
}
