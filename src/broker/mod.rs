//! RabbitMQ plumbing: connecting (with backoff), queue names and the topology, the retry policy of the
//! delay queues, the `x-avatar-*` headers, and publishing with confirms.

mod backoff;
mod connection;
mod dead_letter;
pub mod headers;
mod names;
mod publisher;
mod retry;
mod topology;

pub use backoff::Backoff;
pub use connection::connect;
pub use dead_letter::{DeadLetter, DeadReason};
pub use headers::JobHeaders;
pub use names::QueueNames;
pub use publisher::{PublishError, Publisher, header_str};
pub use retry::{Delay, RetryPolicy};
pub use topology::{all_queues, declare};
