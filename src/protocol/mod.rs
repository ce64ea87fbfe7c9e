//! The wire contract: what producers put on the job queues and what the worker answers.
//!
//! One definition serves the worker, the client library and the tests; `docs/protocol.md` and the JSON
//! Schemas in `schemas/` describe the same shapes for producers in other languages.

mod error_code;
mod ids;
mod job;
mod phone;
mod result;

pub use error_code::{ErrorCode, JobError, Then};
pub use ids::{DeviceId, JobId};
pub use job::{FetchJob, ImageSpec, Job, JobKind, ParsedJob, UpdateJob, parse_job};
pub use phone::Phone;
pub use result::{AvatarInfo, ImageInfo, JobResult, Status};

/// `text` cut to at most `max` bytes on a character boundary, with a marker when cut: what the worker writes
/// back (messages that quote a producer's input, headers) stays small.
pub fn truncated(text: &str, max: usize) -> String {
    const MARKER: &str = "… [truncated]";
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max.saturating_sub(MARKER.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{MARKER}", &text[..end])
}
