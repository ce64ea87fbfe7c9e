//! RabbitMQ plumbing: connecting (with backoff), declaring the topology, and publishing with confirms.

mod backoff;
mod connection;
pub mod headers;
mod publisher;
mod topology;

pub use backoff::Backoff;
pub use connection::connect;
pub use headers::JobHeaders;
pub use publisher::{DeadLetter, PublishError, Publisher, header_str};
pub use topology::declare;
