//! Native sessions: the worker itself holds each device's WhatsApp session through `whatsapp-rust`
//! (build feature `native`), so no gateway is needed. Set-up, pairing and what differs from the
//! gateway are in docs/native.md.
//!
//! - `store`: the SQLite file of each device and the lock that gives it one owner process.
//! - `session`: one device's client and its state from the library's events.
//! - `registry`: the sessions of this process, by device.
//! - `answer`: the library's errors and pictures as job outcomes.
//! - `pair`: linking a new device to a phone (`avatar-worker pair`).

pub mod answer;
pub mod pair;
mod registry;
mod session;
mod store;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

pub use registry::{Connect, SessionRegistry};
pub use session::{Session, SessionState};
pub use store::{StoreLock, StorePath};

use super::{AvatarBackend, AvatarRequest, Lookup, SessionReport};
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
    registry: Arc<SessionRegistry>,
    fetch_timeout: Duration,
    update_timeout: Duration,
}

impl NativeBackend {
    pub fn new(registry: Arc<SessionRegistry>, settings: &NativeSettings) -> Self {
        Self {
            registry,
            fetch_timeout: Duration::from_millis(settings.fetch_timeout_ms),
            update_timeout: Duration::from_millis(settings.update_timeout_ms),
        }
    }

    pub fn registry(&self) -> &SessionRegistry {
        &self.registry
    }

    /// The session a job runs on, if WhatsApp can be asked at all.
    fn session(&self, device: Option<&DeviceId>) -> Result<&Session, JobError> {
        let session = match device {
            Some(device) => self.registry.get(device).ok_or_else(|| {
                JobError::new(
                    ErrorCode::DeviceNotFound,
                    format!("no native session for device {}", device.as_str()),
                )
            })?,
            None => match (self.registry.only(), self.registry.sessions().next()) {
                (Some(only), _) => only,
                (None, Some(_)) => {
                    return Err(JobError::new(
                        ErrorCode::DeviceRequired,
                        "this worker holds several native sessions: name one in device_id",
                    ));
                }
                (None, None) => {
                    return Err(JobError::new(
                        ErrorCode::DeviceNotFound,
                        "this worker holds no native session: pair one with `avatar-worker pair --device ID`",
                    ));
                }
            },
        };
        match session.state().refusal(session.device()) {
            Some(refused) => Err(refused),
            None => Ok(session),
        }
    }
}

#[async_trait]
impl AvatarBackend for NativeBackend {
    async fn get_avatar(
        &self,
        device: Option<&DeviceId>,
        request: &AvatarRequest,
    ) -> Result<Lookup, JobError> {
        let session = self.session(device)?;
        let jid = answer::jid(&request.target)?;
        let picture = session
            .client()
            .contacts()
            .get_profile_picture_with_timeout(&jid, request.preview, Some(self.fetch_timeout))
            .await
            .map_err(|err| answer::fetch_error(&err))?;
        Ok(answer::lookup(picture, request.preview))
    }

    async fn set_avatar(
        &self,
        device: Option<&DeviceId>,
        image: &PreparedImage,
    ) -> Result<(), JobError> {
        // Empty bytes would not be refused by the library: they REMOVE the picture.
        if image.bytes.is_empty() {
            return Err(JobError::new(
                ErrorCode::InvalidImage,
                "the picture is empty; an empty upload would remove the profile picture",
            ));
        }
        // The library sends the bytes as they are, and WhatsApp takes JPEG only.
        if image.content_type != "image/jpeg" {
            return Err(JobError::new(
                ErrorCode::InvalidImage,
                format!(
                    "native sessions upload JPEG only, got {}: send the job with normalize: true",
                    image.content_type
                ),
            ));
        }
        let session = self.session(device)?;
        let profile = session.client().profile();
        let upload = profile.set_profile_picture(image.bytes.to_vec());
        match tokio::time::timeout(self.update_timeout, upload).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(err)) => Err(answer::update_error(&err)),
            Err(_) => Err(answer::update_timeout(self.update_timeout)),
        }
    }

    fn sessions(&self) -> Vec<SessionReport> {
        self.registry
            .sessions()
            .map(|session| SessionReport {
                device: session.device().clone(),
                state: session.state().name(),
            })
            .collect()
    }

    async fn close(&self) {
        self.registry.stop().await;
    }
}
