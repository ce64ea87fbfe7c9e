//! avatar-worker: consumes avatar-fetch and avatar-update jobs from RabbitMQ, runs each against its
//! WhatsApp device, and publishes a result envelope.
//!
//! Where things are:
//! - [`protocol`]: the wire contract (jobs in, results out), parsed and validated once.
//! - [`worker`]: the job loop. A job enters in `worker::session`, is routed (redelivery guard, pacing,
//!   retries) in `worker::delivery`, executed in `worker::execute`, and its result leaves (publish,
//!   confirm, dead letter, ack) in `worker::reply`.
//! - [`broker`]: RabbitMQ connection, topology and confirmed publishing.
//! - [`backend`]: where WhatsApp work happens; [`backend::GatewayBackend`] talks to a GOWA gateway, and
//!   with feature `native`, `backend::native` holds sessions in-process; [`backend::build`] picks per device.
//! - [`devices`]: per-device pacing, concurrency caps and update order.
//! - [`image`]: preparing update pictures.
//! - [`settings`]: layered configuration.
//! - [`shutdown`]: the one signal every part stops on.
//! - [`client`]: the producer side: publish jobs, wait for results.
//! - [`ops`]: metrics, readiness and the admin HTTP server (`/metrics`, `/healthz`, `/readyz`).
//! - [`sync`]: bulk avatar sync of a contact list (`avatar-worker sync`).
//! - [`cli`]: the `avatar-worker` command line.

pub mod app;
pub mod backend;
pub mod broker;
pub mod cli;
pub mod client;
pub mod devices;
pub mod image;
pub mod ops;
pub mod protocol;
pub mod settings;
pub mod shutdown;
pub mod sync;
pub mod worker;
