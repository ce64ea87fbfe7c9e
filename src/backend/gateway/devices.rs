//! What a gateway lists (`GET /devices`): whether it accepts the configured credentials, and which devices
//! it has. An update for a device the gateway does not have is answered before any image work, and while a
//! gateway refuses the credentials the worker takes no jobs for its devices (they wait in the broker): it
//! checks again every few seconds, says why in `/readyz` and in one ERROR line a minute, and resumes by
//! itself once the check passes. A wrong password must not turn a whole queue into `gateway_unauthorized`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use reqwest::header::AUTHORIZATION;
use serde::Deserialize;
use tokio::sync::watch;

use super::Target;
use crate::http::read_capped;

/// How long a listing is trusted.
const FRESH: Duration = Duration::from_secs(5);
/// How often a refusing gateway is asked again.
const RECHECK: Duration = Duration::from_secs(3);
/// How often the refusal is logged while it lasts.
const REPEAT_ERROR: Duration = Duration::from_secs(60);

/// A gateway's answer to `GET /devices`.
#[derive(Debug, Clone)]
pub(super) enum Listed {
    /// The devices: their ids and (when paired) their JIDs.
    Devices(Vec<(String, Option<String>)>),
    /// 401: the credentials are refused.
    Refused,
    /// No usable answer (down, slow, unexpected): nothing is concluded from it.
    Unavailable,
}

impl Listed {
    /// Whether the gateway resolves `device` (as GOWA does: by id, else by the JID of a paired device,
    /// a `:N` device suffix ignored). Unknown when there is no listing.
    pub fn has(&self, device: &str) -> Option<bool> {
        let Listed::Devices(devices) = self else {
            return None;
        };
        let bare = match device.split_once('@') {
            Some((user, server)) => format!("{}@{server}", user.split(':').next().unwrap_or(user)),
            None => device.to_string(),
        };
        Some(devices.iter().any(|(id, jid)| {
            id == device
                || jid
                    .as_deref()
                    .is_some_and(|jid| jid == device || jid == bare)
        }))
    }
}

#[derive(Deserialize)]
struct Reply {
    #[serde(default)]
    results: Option<Vec<Entry>>,
}

#[derive(Deserialize)]
struct Entry {
    id: String,
    #[serde(default)]
    jid: Option<String>,
}

/// Per gateway (by base URL): the last listing and whether the credentials are refused now.
#[derive(Clone, Default)]
pub(super) struct Directory {
    inner: Arc<Mutex<HashMap<String, Gateway>>>,
}

struct Gateway {
    listed: Option<(Instant, Listed)>,
    /// `Some(reason)` while the gateway refuses the credentials.
    refused: watch::Sender<Option<String>>,
}

impl Gateway {
    fn new() -> Self {
        Self {
            listed: None,
            refused: watch::channel(None).0,
        }
    }
}

impl Directory {
    /// The gateway's devices, from a listing at most [`FRESH`] old.
    pub async fn listed(&self, client: &reqwest::Client, target: &Target) -> Listed {
        if let Some(listed) = self.fresh(target) {
            return listed;
        }
        let listed = list(client, target).await;
        self.record(client, target, &listed);
        listed
    }

    /// The credentials were refused by a call (`gateway_unauthorized`): stop taking jobs until they work.
    pub fn refused(&self, client: &reqwest::Client, target: &Target) {
        self.record(client, target, &Listed::Refused);
    }

    /// Waits while `target` refuses the credentials.
    pub async fn until_accepted(&self, target: &Target) {
        let mut refused = self.with(target, |g| g.refused.subscribe());
        let _ = refused.wait_for(Option::is_none).await;
    }

    /// Why some gateway refuses the credentials, if one does (for `/readyz`).
    pub fn problem(&self) -> Option<String> {
        let gateways = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        gateways.values().find_map(|g| g.refused.borrow().clone())
    }

    fn fresh(&self, target: &Target) -> Option<Listed> {
        self.with(target, |g| {
            g.listed
                .as_ref()
                .filter(|(at, _)| at.elapsed() < FRESH)
                .map(|(_, listed)| listed.clone())
        })
    }

    /// Keeps a listing, and on a refusal starts checking again until the gateway accepts.
    fn record(&self, client: &reqwest::Client, target: &Target, listed: &Listed) {
        let started_refusal = self.with(target, |g| {
            if !matches!(listed, Listed::Unavailable) {
                g.listed = Some((Instant::now(), listed.clone()));
            }
            let refused = matches!(listed, Listed::Refused);
            let was = g.refused.borrow().is_some();
            if refused && !was {
                let reason = format!(
                    "gateway {} refuses the configured credentials (HTTP 401): check gateway.username and gateway.password",
                    target.base_url
                );
                g.refused.send_replace(Some(reason));
            } else if matches!(listed, Listed::Devices(_)) && was {
                g.refused.send_replace(None);
                tracing::info!(gateway = %target.base_url, "the gateway accepts the credentials again; taking jobs");
            }
            refused && !was
        });
        if started_refusal {
            let (directory, client, target) = (self.clone(), client.clone(), target.clone());
            tokio::spawn(async move { directory.recheck(client, target).await });
        }
    }

    /// Asks a refusing gateway again until it accepts, logging the refusal once a minute.
    async fn recheck(self, client: reqwest::Client, target: Target) {
        let mut logged: Option<Instant> = None;
        loop {
            let reason = self.with(&target, |g| g.refused.borrow().clone());
            let Some(reason) = reason else {
                return;
            };
            if logged.is_none_or(|at| at.elapsed() >= REPEAT_ERROR) {
                tracing::error!(gateway = %target.base_url, "{reason}; jobs wait in the broker until it accepts them");
                logged = Some(Instant::now());
            }
            tokio::time::sleep(RECHECK).await;
            let listed = list(&client, &target).await;
            self.record(&client, &target, &listed);
        }
    }

    fn with<T>(&self, target: &Target, f: impl FnOnce(&mut Gateway) -> T) -> T {
        let mut gateways = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        f(gateways
            .entry(target.base_url.clone())
            .or_insert_with(Gateway::new))
    }
}

async fn list(client: &reqwest::Client, target: &Target) -> Listed {
    let mut request = client
        .get(format!("{}/devices", target.base_url))
        .timeout(target.timeout);
    if let Some(auth) = &target.authorization {
        request = request.header(AUTHORIZATION, auth.clone());
    }
    let Ok(response) = request.send().await else {
        return Listed::Unavailable;
    };
    match response.status().as_u16() {
        401 => Listed::Refused,
        200 => match read_capped(response, super::MAX_ANSWER_BYTES)
            .await
            .ok()
            .and_then(|body| serde_json::from_slice::<Reply>(&body).ok())
        {
            Some(reply) => Listed::Devices(
                reply
                    .results
                    .unwrap_or_default()
                    .into_iter()
                    .map(|entry| (entry.id, entry.jid))
                    .collect(),
            ),
            None => Listed::Unavailable,
        },
        _ => Listed::Unavailable,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_resolve_by_id_or_jid_as_gowa_does() {
        let listed = Listed::Devices(vec![
            (
                "sales-1".into(),
                Some("6281234500001@s.whatsapp.net".into()),
            ),
            ("new".into(), None),
        ]);
        assert_eq!(listed.has("sales-1"), Some(true));
        assert_eq!(listed.has("6281234500001@s.whatsapp.net"), Some(true));
        assert_eq!(listed.has("6281234500001:12@s.whatsapp.net"), Some(true));
        assert_eq!(listed.has("new"), Some(true));
        assert_eq!(listed.has("made-up"), Some(false));
        assert_eq!(Listed::Unavailable.has("sales-1"), None);
    }
}
