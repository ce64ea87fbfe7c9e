//! RabbitMQ plumbing: connecting (with backoff), declaring the topology, and publishing with confirms.

mod backoff;
mod connection;
mod publisher;
mod topology;

pub use backoff::Backoff;
pub use connection::connect;
pub use publisher::{DeadLetter, PublishError, Publisher, header_str};
pub use topology::declare;

/// Header names the worker sets on dead letters. Producers and operators read them.
pub mod headers {
    pub const REASON: &str = "x-avatar-reason";
    pub const ERROR_CODE: &str = "x-avatar-error-code";
    pub const ERROR_MESSAGE: &str = "x-avatar-error-message";
    pub const SOURCE_QUEUE: &str = "x-avatar-source-queue";
    pub const JOB_ID: &str = "x-avatar-job-id";
}
