use base64::Engine;

use super::Services;
use crate::backend::{AvatarRequest, Lookup};
use crate::image::{self, ImageSource};
use crate::protocol::{
    AvatarInfo, FetchJob, ImageInfo, ImageSpec, Job, JobError, Status, UpdateJob,
};

/// What a job produced, before it becomes a result.
#[derive(Debug)]
pub(crate) struct Outcome {
    pub status: Status,
    pub avatar: Option<AvatarInfo>,
    pub image: Option<ImageInfo>,
}

pub(crate) async fn execute(services: &Services, job: &Job) -> Result<Outcome, JobError> {
    match job {
        Job::Fetch(job) => fetch(services, job).await,
        Job::Update(job) => update(services, job).await,
    }
}

async fn fetch(services: &Services, job: &FetchJob) -> Result<Outcome, JobError> {
    let request = AvatarRequest {
        target: job.phone.clone(),
        preview: job.is_preview,
        community: job.is_community,
    };
    let avatar = match services
        .backend
        .get_avatar(job.device_id.as_ref(), &request)
        .await?
    {
        Lookup::NotSet => return Ok(Outcome::with_status(Status::NotSet)),
        Lookup::Hidden => return Ok(Outcome::with_status(Status::Hidden)),
        Lookup::Picture(avatar) => avatar,
    };
    if job.known_id.as_deref() == Some(avatar.id.as_str()) {
        return Ok(Outcome {
            status: Status::Unchanged,
            avatar: Some(avatar),
            image: None,
        });
    }
    let image = if job.download {
        let bytes = services.downloader.get(&avatar.url).await?;
        Some(describe(&bytes, true))
    } else {
        None
    };
    Ok(Outcome {
        status: Status::Ok,
        avatar: Some(avatar),
        image,
    })
}

async fn update(services: &Services, job: &UpdateJob) -> Result<Outcome, JobError> {
    let source = match &job.image {
        ImageSpec::Base64(data) => ImageSource::Base64(data.clone()),
        ImageSpec::Url(url) => ImageSource::Url(url.clone()),
    };
    // A device the backend does not have costs no image work.
    services
        .backend
        .check_device(job.device_id.as_ref())
        .await?;
    let prepared = image::prepare_within(
        &source,
        job.normalize,
        &services.settings.image,
        &services.decodes,
    )
    .await?;
    services
        .backend
        .set_avatar(job.device_id.as_ref(), &prepared)
        .await?;
    Ok(Outcome {
        status: Status::Ok,
        avatar: None,
        image: Some(ImageInfo {
            sha256: prepared.sha256.clone(),
            size: prepared.bytes.len() as u64,
            content_type: prepared.content_type.to_string(),
            width: Some(prepared.width),
            height: Some(prepared.height),
            base64: None,
        }),
    })
}

impl Outcome {
    /// An answer about the picture that carries no picture (`not_set`, `hidden`).
    pub fn with_status(status: Status) -> Self {
        Self {
            status,
            avatar: None,
            image: None,
        }
    }
}

/// Hash, size, type and (when `inline`) the bytes of a downloaded picture.
fn describe(bytes: &[u8], inline: bool) -> ImageInfo {
    let reader = ::image::ImageReader::new(std::io::Cursor::new(bytes)).with_guessed_format();
    let format = reader.as_ref().ok().and_then(|r| r.format());
    let dimensions = reader.ok().and_then(|r| r.into_dimensions().ok());
    ImageInfo {
        sha256: image::sha256_hex(bytes),
        size: bytes.len() as u64,
        content_type: format
            .map(|f| f.to_mime_type().to_string())
            .unwrap_or_else(|| "application/octet-stream".into()),
        width: dimensions.map(|d| d.0),
        height: dimensions.map(|d| d.1),
        base64: inline.then(|| base64::engine::general_purpose::STANDARD.encode(bytes)),
    }
}
