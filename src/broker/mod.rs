//! RabbitMQ plumbing: connecting to the first node of a cluster that answers (with backoff), queue names and
//! the topology, the retry policy of the delay queues, the `x-avatar-*` headers, and publishing with confirms.

mod backoff;
mod connection;
mod consumers;
mod dead_letter;
mod failure;
pub mod headers;
mod names;
pub mod properties;
mod publisher;
mod retry;
mod topology;
mod watch;

pub use backoff::Backoff;
pub use connection::{Addresses, Connected, DEFAULT_CONNECT_TIMEOUT, close};
pub use consumers::Consumers;
pub use dead_letter::{DeadLetter, DeadReason};
pub use failure::ConnectionLost;
pub(crate) use failure::warn_unless_connection_lost;
pub use headers::JobHeaders;
pub use headers::header_str;
pub use names::QueueNames;
pub use publisher::{PublishError, Publisher};
pub use retry::{Delay, RetryPolicy};
pub use topology::{all_queues, declare, declare_queue, message_count, queue_counts};
pub use watch::Watch;
