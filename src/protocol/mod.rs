//! The wire contract: what producers put on the job queues and what the worker answers.
//!
//! One definition serves the worker, the client library and the tests; `docs/protocol.md` and the JSON
//! Schemas in `schemas/` describe the same shapes for producers in other languages.

mod error_code;
mod ids;
mod job;
mod phone;
mod result;

pub use error_code::{ErrorCode, JobError};
pub use ids::{DeviceId, JobId};
pub use job::{FetchJob, ImageSpec, Job, JobKind, ParsedJob, UpdateJob, parse_job};
pub use phone::Phone;
pub use result::{AvatarInfo, ImageInfo, JobResult, Status};
