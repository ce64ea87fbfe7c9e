use serde::{Deserialize, Serialize};

use super::{DeviceId, JobError, JobId, JobKind};

/// How a job ended. Everything but `error` is a definite answer about the picture.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Ok,
    /// The current picture id equals the job's `known_id`.
    Unchanged,
    /// The user or group has no profile picture.
    NotSet,
    /// The picture is hidden from this account by privacy settings.
    Hidden,
    Error,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Unchanged => "unchanged",
            Status::NotSet => "not_set",
            Status::Hidden => "hidden",
            Status::Error => "error",
        }
    }
}

/// A picture as the gateway describes it. `url` points at WhatsApp's CDN and expires (`oe=`, about 48 h).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AvatarInfo {
    pub url: String,
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
}

/// Picture bytes: downloaded for a fetch with `download: true`, or what an update uploaded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageInfo {
    pub sha256: String,
    pub size: u64,
    pub content_type: String,
    pub width: Option<u32>,
    pub height: Option<u32>,
    /// The bytes themselves (fetch with `download: true` only).
    pub base64: Option<String>,
}

/// The result envelope published for every job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobResult {
    pub job_id: JobId,
    pub kind: JobKind,
    pub device_id: Option<DeviceId>,
    pub status: Status,
    pub avatar: Option<AvatarInfo>,
    pub image: Option<ImageInfo>,
    pub error: Option<JobError>,
    pub attempts: u32,
    pub duration_ms: u64,
    /// RFC 3339, UTC.
    pub finished_at: String,
}
