//! Where a job's WhatsApp work happens. The worker core only sees [`AvatarBackend`]; the GOWA HTTP gateway
//! is one implementation, and an in-process session (whatsapp-rust) can be another without touching the core.

mod gateway;

use async_trait::async_trait;

pub use gateway::GatewayBackend;

use crate::image::PreparedImage;
use crate::protocol::{AvatarInfo, DeviceId, JobError, Phone};

/// What a fetch asks WhatsApp for.
#[derive(Debug, Clone)]
pub struct AvatarRequest {
    pub target: Phone,
    pub preview: bool,
    pub community: bool,
}

/// The definite answers about a picture; everything else is a [`JobError`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    Picture(AvatarInfo),
    NotSet,
    Hidden,
}

#[async_trait]
pub trait AvatarBackend: Send + Sync + 'static {
    /// `device: None` lets the backend pick its default device.
    async fn get_avatar(
        &self,
        device: Option<&DeviceId>,
        request: &AvatarRequest,
    ) -> Result<Lookup, JobError>;

    /// Sets the device's own profile picture to exactly these bytes.
    async fn set_avatar(
        &self,
        device: Option<&DeviceId>,
        image: &PreparedImage,
    ) -> Result<(), JobError>;
}
