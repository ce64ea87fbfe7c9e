//! Native sessions: the worker itself holds each device's WhatsApp session through `whatsapp-rust`
//! (build feature `native`), so no gateway is needed. Set-up, pairing and what differs from the
//! gateway are in docs/native.md.
//!
//! - `store`: the SQLite file of each device and the lock that gives it one owner process.
//! - `session`: one device's client, the task that runs it, and its state from the library's events.
//! - `registry`: the sessions of this process, by device, opened, closed and rebuilt at runtime.
//! - `picture`: the picture query this backend sends itself, and what each answer means.
//! - `registration`: whether a number is on WhatsApp, checked and kept for a while.
//! - `library_errors`: the library's errors as job outcomes.
//! - `pair`: linking a new device to a phone (`avatar-worker pair`).

pub mod library_errors;
pub mod pair;
pub mod picture;
pub mod registration;
mod registry;
mod session;
mod store;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use whatsapp_rust::wacore::iq::spec::IqSpec;
use whatsapp_rust::{Client, Jid};

pub use registry::{Connect, SessionRegistry, Stores};
pub use session::{ClientOptions, EVENTS, Session, SessionState};
pub use store::{StoreLock, StorePath};

use self::registration::Registrations;
use super::{AvatarBackend, AvatarRequest, Lookup, Placement, SessionReport};
use crate::image::PreparedImage;
use crate::protocol::{DeviceId, ErrorCode, JobError};
use crate::settings::NativeSettings;

#[derive(Debug, thiserror::Error)]
pub enum NativeError {
    #[error(
        "session store {path} is in use by another process (pid {owner}); a session has one owner"
    )]
    InUse { path: PathBuf, owner: String },
    #[error("session store {}: {message}", path.display())]
    Store { path: PathBuf, message: String },
    #[error("cannot read the account from a session store: {0}")]
    Load(String),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("WhatsApp client of device {device}: {message}")]
    Client { device: DeviceId, message: String },
    #[error("{0}")]
    Pairing(String),
}

/// The [`AvatarBackend`] over this process's sessions.
pub struct NativeBackend {
    registry: SessionRegistry,
    /// The devices this process may serve: configured native, or stored with `backend.default = "native"`.
    candidates: Vec<DeviceId>,
    fetch_timeout: Duration,
    update_timeout: Duration,
    registrations: Registrations,
}

/// What WhatsApp takes as a profile picture: a square JPEG, at most this many pixels a side...
pub const MAX_SIDE: u32 = 640;
/// ...and at least this many.
pub const MIN_SIDE: u32 = 192;

impl NativeBackend {
    pub fn new(registry: SessionRegistry, settings: &NativeSettings) -> Self {
        Self {
            registry,
            candidates: Vec::new(),
            fetch_timeout: settings.fetch_timeout,
            update_timeout: settings.update_timeout,
            registrations: Registrations::new(settings.on_whatsapp_cache),
        }
    }

    pub fn registry(&self) -> &SessionRegistry {
        &self.registry
    }

    /// The devices this backend may serve, for placing them over replicas ([`AvatarBackend::placements`]).
    pub fn with_candidates(mut self, devices: Vec<DeviceId>) -> Self {
        self.candidates = devices;
        self
    }

    /// The connected client a job runs on, or the answer for why there is none: no such session, a
    /// session that has ended (naming what to do), or one not connected right now. The last is
    /// answered at once, not after the deadline.
    fn client(&self, device: Option<&DeviceId>) -> Result<Arc<Client>, JobError> {
        let session = match device {
            Some(device) => self.registry.get(device).ok_or_else(|| {
                JobError::new(
                    ErrorCode::DeviceNotFound,
                    format!("no native session for device {}", device.as_str()),
                )
            })?,
            None => match (self.registry.only(), self.registry.sessions().is_empty()) {
                (Some(only), _) => only,
                (None, false) => {
                    return Err(JobError::new(
                        ErrorCode::DeviceRequired,
                        "this worker holds several native sessions: name one in device_id",
                    ));
                }
                (None, true) => {
                    return Err(JobError::new(
                        ErrorCode::DeviceNotFound,
                        "this worker holds no native session: pair one with `avatar-worker pair --device ID`",
                    ));
                }
            },
        };
        let state = session.state();
        if let Some(refused) = state.refusal(session.device()) {
            return Err(refused);
        }
        match session.client() {
            Some(client) if client.is_connected() && client.is_logged_in() => Ok(client.clone()),
            _ => Err(JobError::new(
                ErrorCode::DeviceDisconnected,
                format!(
                    "device {} is not connected to WhatsApp right now (session {})",
                    session.device().as_str(),
                    state.name()
                ),
            )),
        }
    }

    /// Whether `jid` has a WhatsApp account: from the cache, or asked now (within the fetch deadline).
    async fn registered(&self, client: &Client, jid: &Jid) -> Result<bool, JobError> {
        if let Some(known) = self.registrations.known(&jid.user) {
            return Ok(known);
        }
        let contacts = client.contacts();
        let check = contacts.is_on_whatsapp(std::slice::from_ref(jid));
        let answer = tokio::time::timeout(self.fetch_timeout, check)
            .await
            .map_err(|_| registration::check_timed_out(jid, self.fetch_timeout))?;
        let registered = registration::registered(jid, answer)?;
        self.registrations.remember(&jid.user, registered);
        Ok(registered)
    }
}

/// Refuses an upload WhatsApp would not take as it is. The library sends the bytes unchanged, and the
/// worker never changes them behind the job's back (the result describes what was uploaded), so a job
/// with `normalize: false` whose picture is not already a square JPEG of 192–640 px is refused.
pub fn check_upload(image: &PreparedImage) -> Result<(), JobError> {
    // Empty bytes would not be refused by the library: they REMOVE the picture.
    if image.bytes.is_empty() {
        return Err(JobError::new(
            ErrorCode::InvalidImage,
            "the picture is empty; an empty upload would remove the profile picture",
        ));
    }
    let fits = image.content_type == "image/jpeg"
        && image.width == image.height
        && (MIN_SIDE..=MAX_SIDE).contains(&image.width);
    if !fits {
        return Err(JobError::new(
            ErrorCode::InvalidImage,
            format!(
                "native devices upload square JPEG pictures of {MIN_SIDE} to {MAX_SIDE} px, and this one is {}, {}×{} px: send the job with normalize: true (the default), which makes one",
                image.content_type, image.width, image.height
            ),
        ));
    }
    Ok(())
}

#[async_trait]
impl AvatarBackend for NativeBackend {
    async fn get_avatar(
        &self,
        device: Option<&DeviceId>,
        request: &AvatarRequest,
    ) -> Result<Lookup, JobError> {
        let client = self.client(device)?;
        let jid = library_errors::jid(&request.target)?;
        let check = registration::applies(&jid);
        if check && self.registrations.known(&jid.user) == Some(false) {
            return Err(registration::not_on_whatsapp(&jid));
        }
        let token = picture::privacy_token(&client, &jid).await;
        let query = picture::query(&jid, request.preview, self.fetch_timeout, token);
        let response = client.send_iq(query.build_iq()).await;
        let lookup = picture::answer(&query, response.as_deref().map(|node| node.get()))?;
        match lookup {
            Lookup::NotSet | Lookup::Hidden if check => {
                if self.registered(&client, &jid).await? {
                    Ok(lookup)
                } else {
                    Err(registration::not_on_whatsapp(&jid))
                }
            }
            other => Ok(other),
        }
    }

    async fn set_avatar(
        &self,
        device: Option<&DeviceId>,
        image: &PreparedImage,
    ) -> Result<(), JobError> {
        check_upload(image)?;
        let client = self.client(device)?;
        let profile = client.profile();
        let upload = profile.set_profile_picture(image.bytes.to_vec());
        match tokio::time::timeout(self.update_timeout, upload).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(err)) => Err(library_errors::update_error(&err)),
            Err(_) => Err(library_errors::update_timeout(self.update_timeout)),
        }
    }

    fn sessions(&self) -> Vec<SessionReport> {
        self.registry
            .sessions()
            .into_iter()
            .map(|session| {
                let state = session.state();
                SessionReport {
                    device: session.device().clone(),
                    state: state.name(),
                    reason: state.reason(),
                }
            })
            .collect()
    }

    async fn close(&self) {
        self.registry.stop().await;
    }

    fn placements(&self) -> Vec<Placement> {
        self.candidates
            .iter()
            .map(|device| {
                let session = self.registry.get(device);
                let unpaired = session
                    .as_ref()
                    .is_some_and(|s| s.state() == SessionState::NotPaired);
                Placement {
                    device: device.clone(),
                    held: unpaired || session.is_some_and(|s| s.holds_store()),
                    paired: !unpaired,
                }
            })
            .collect()
    }

    async fn acquire(&self, device: &DeviceId) -> bool {
        match self.registry.open(device).await {
            Ok(state) => state != SessionState::Closed,
            Err(NativeError::InUse { .. }) => false,
            Err(err) => {
                tracing::warn!(device = device.as_str(), %err, "cannot open the session");
                false
            }
        }
    }

    async fn release(&self, device: &DeviceId) {
        self.registry.close(device).await;
    }
}
