use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{DeviceId, ErrorCode, JobError, JobId, Phone};

/// Which queue a job came from; the queue, not the body, decides how the body is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobKind {
    Fetch,
    Update,
}

impl JobKind {
    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::Fetch => "fetch",
            JobKind::Update => "update",
        }
    }
}

impl std::fmt::Display for JobKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// avatar-fetch: the profile picture of a user or group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FetchJob {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<JobId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_id: Option<DeviceId>,
    #[serde(deserialize_with = "phone_from_text_or_number")]
    pub phone: Phone,
    #[serde(default)]
    pub is_preview: bool,
    #[serde(default)]
    pub is_community: bool,
    /// The picture id the producer already has: an equal current id answers `unchanged`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub known_id: Option<String>,
    /// Ask the worker to fetch the picture bytes before the CDN URL expires.
    #[serde(default)]
    pub download: bool,
    /// A person waits for this answer: it overtakes the device's bulk backlog at the device's next turn.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub interactive: bool,
}

/// avatar-update: set the device's own profile picture.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateJob {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<JobId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_id: Option<DeviceId>,
    pub image: ImageSpec,
    /// `false` uploads the validated original instead of the square 640 px JPEG.
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub normalize: bool,
}

fn yes() -> bool {
    true
}

fn is_true(value: &bool) -> bool {
    *value
}

/// Where an update's picture comes from: `{"base64": "…"}` or `{"url": "https://…"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum ImageSpec {
    Base64(String),
    Url(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Job {
    Fetch(FetchJob),
    Update(UpdateJob),
}

/// A delivery read once: who it is for (always known, even for a bad body) and the job or why it is refused.
#[derive(Debug, Clone)]
pub struct ParsedJob {
    pub kind: JobKind,
    pub job_id: JobId,
    pub device_id: Option<DeviceId>,
    pub job: Result<Job, JobError>,
}

fn phone_from_text_or_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Phone, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Text(String),
        Number(u64),
    }
    let raw = match Raw::deserialize(d)? {
        Raw::Text(text) => text,
        Raw::Number(number) => number.to_string(),
    };
    Phone::parse(&raw).map_err(serde::de::Error::custom)
}

/// Reads a job body. `message_id` is the AMQP property, used as job id when the body has none.
pub fn parse_job(
    kind: JobKind,
    body: &[u8],
    message_id: Option<&str>,
    max_bytes: usize,
) -> ParsedJob {
    let fallback_id = || {
        message_id
            .and_then(|id| JobId::parse(id).ok())
            .unwrap_or_else(JobId::generate)
    };
    if body.len() > max_bytes {
        return ParsedJob {
            kind,
            job_id: fallback_id(),
            device_id: None,
            job: Err(JobError::invalid_job(format!(
                "job body is {} bytes; the limit is {max_bytes}",
                body.len()
            ))),
        };
    }
    if let Some(parsed) = well_formed(kind, body, fallback_id) {
        return parsed;
    }
    let value: Value = match serde_json::from_slice(body) {
        Ok(value) => value,
        Err(err) => {
            return ParsedJob {
                kind,
                job_id: fallback_id(),
                device_id: None,
                job: Err(JobError::invalid_job(format!(
                    "job body is not valid JSON: {err}"
                ))),
            };
        }
    };
    let Value::Object(fields) = &value else {
        return ParsedJob {
            kind,
            job_id: fallback_id(),
            device_id: None,
            job: Err(JobError::invalid_job(format!(
                "a job must be a JSON object, found {}",
                json_type(&value)
            ))),
        };
    };
    let lenient = |key: &str| fields.get(key).and_then(Value::as_str);
    let job_id = lenient("job_id")
        .and_then(|id| JobId::parse(id).ok())
        .unwrap_or_else(fallback_id);
    let device_id = lenient("device_id").and_then(|id| DeviceId::parse(id).ok());
    let job = match kind {
        JobKind::Fetch => check_phone(fields.get("phone"))
            .and_then(|()| typed::<FetchJob>(value.clone()))
            .map(Job::Fetch),
        JobKind::Update => typed::<UpdateJob>(value.clone()).map(Job::Update),
    };
    ParsedJob {
        kind,
        job_id,
        device_id,
        job,
    }
}

/// The common case, a valid job, read straight into its type. Anything else is read again through a
/// `Value`, which names what is wrong and still finds the job's id and device.
fn well_formed(
    kind: JobKind,
    body: &[u8],
    fallback_id: impl FnOnce() -> JobId,
) -> Option<ParsedJob> {
    let (job_id, device_id, job) = match kind {
        JobKind::Fetch => {
            let job: FetchJob = serde_json::from_slice(body).ok()?;
            (job.job_id.clone(), job.device_id.clone(), Job::Fetch(job))
        }
        JobKind::Update => {
            let job: UpdateJob = serde_json::from_slice(body).ok()?;
            (job.job_id.clone(), job.device_id.clone(), Job::Update(job))
        }
    };
    Some(ParsedJob {
        kind,
        job_id: job_id.unwrap_or_else(fallback_id),
        device_id,
        job: Ok(job),
    })
}

/// A present phone string that does not parse is `invalid_phone`; a missing or mistyped one is `invalid_job`.
fn check_phone(phone: Option<&Value>) -> Result<(), JobError> {
    match phone {
        Some(Value::String(text)) => Phone::parse(text)
            .map(drop)
            .map_err(|reason| JobError::new(ErrorCode::InvalidPhone, reason)),
        _ => Ok(()),
    }
}

fn typed<T: serde::de::DeserializeOwned>(value: Value) -> Result<T, JobError> {
    serde_path_to_error::deserialize(value).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        if path == "." {
            JobError::invalid_job(inner.to_string())
        } else {
            JobError::invalid_job(format!("{path}: {inner}"))
        }
    })
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: usize = 1 << 20;

    fn fetch(body: &str) -> ParsedJob {
        parse_job(JobKind::Fetch, body.as_bytes(), Some("msg-1"), LIMIT)
    }

    fn code(parsed: &ParsedJob) -> Option<ErrorCode> {
        parsed.job.as_ref().err().map(|e| e.code)
    }

    #[test]
    fn reads_a_full_fetch_job() {
        let parsed = fetch(
            r#"{"job_id":"j1","device_id":"d1","phone":"+62 812 3456 7890","is_preview":true,"known_id":"42","download":true,"future_field":1}"#,
        );
        assert_eq!(parsed.job_id.as_str(), "j1");
        let Ok(Job::Fetch(job)) = parsed.job else {
            panic!("{:?}", parsed.job)
        };
        assert_eq!(job.phone.as_jid(), "6281234567890@s.whatsapp.net");
        assert!(job.is_preview && job.download && !job.is_community);
        assert_eq!(job.known_id.as_deref(), Some("42"));
    }

    #[test]
    fn phone_may_be_a_number_and_job_id_falls_back_to_message_id() {
        let parsed = fetch(r#"{"phone":6281234567890}"#);
        assert_eq!(parsed.job_id.as_str(), "msg-1");
        assert!(parsed.job.is_ok());
        let parsed = parse_job(JobKind::Fetch, br#"{"phone":"62812345"}"#, None, LIMIT);
        assert_eq!(parsed.job_id.as_str().len(), 36, "a generated uuid");
    }

    #[test]
    fn names_what_is_wrong() {
        let cases = [
            ("not json", ErrorCode::InvalidJob, "not valid JSON"),
            ("[1,2]", ErrorCode::InvalidJob, "found an array"),
            ("{}", ErrorCode::InvalidJob, "missing field `phone`"),
            (r#"{"phone":true}"#, ErrorCode::InvalidJob, "phone"),
            (
                r#"{"phone":"62abc"}"#,
                ErrorCode::InvalidPhone,
                "not a number",
            ),
            (
                r#"{"phone":"6281234","is_preview":"yes"}"#,
                ErrorCode::InvalidJob,
                "is_preview",
            ),
            (
                r#"{"phone":"6281234","device_id":""}"#,
                ErrorCode::InvalidJob,
                "device_id",
            ),
        ];
        for (body, expected, fragment) in cases {
            let parsed = fetch(body);
            assert_eq!(code(&parsed), Some(expected), "{body}");
            let message = &parsed.job.as_ref().unwrap_err().message;
            assert!(message.contains(fragment), "{body}: {message}");
        }
    }

    #[test]
    fn reads_update_jobs() {
        let parsed = parse_job(
            JobKind::Update,
            br#"{"image":{"base64":"AAAA"}}"#,
            None,
            LIMIT,
        );
        let Ok(Job::Update(job)) = parsed.job else {
            panic!()
        };
        assert_eq!(job.image, ImageSpec::Base64("AAAA".into()));
        assert!(job.normalize);
        let parsed = parse_job(JobKind::Update, br#"{"image":{}}"#, None, LIMIT);
        assert_eq!(code(&parsed), Some(ErrorCode::InvalidJob));
        let parsed = parse_job(JobKind::Update, br#"{"device_id":"d"}"#, None, LIMIT);
        assert_eq!(parsed.device_id.as_ref().unwrap().as_str(), "d");
        assert_eq!(code(&parsed), Some(ErrorCode::InvalidJob));
    }

    #[test]
    fn refuses_oversized_bodies_before_parsing() {
        let parsed = parse_job(JobKind::Fetch, &[b' '; 100], None, 10);
        assert!(parsed.job.unwrap_err().message.contains("limit is 10"));
    }
}
