//! avatar-worker: consumes avatar-fetch and avatar-update jobs from RabbitMQ, runs each against its
//! WhatsApp device, and publishes a result envelope.
//!
//! Where things are:
//! - [`app`]: the worker assembled from its settings (backend, metrics, job loop, admin server), as
//!   `avatar-worker run` and the tests start it.
//! - [`protocol`]: the wire contract (jobs in, results out), parsed and validated once.
//! - [`worker`]: the job loop. A job **enters** in `worker::intake` (parsed and checked once, answered at
//!   once when it cannot run, else sent to its device's group), waits in its device's lane ([`lanes`]), is
//!   **routed** at its turn in `worker::delivery` by the rules of `worker::decide` (redelivery bound,
//!   deadline, retry or answer), executed in `worker::execute`, and its result **leaves** (publish, confirm,
//!   dead letter, ack) in `worker::settle`.
//! - [`lanes`]: device lanes: a device's backlog waits in the broker, one replica at a time serves a group
//!   of devices (claims), at each device's pace.
//! - [`broker`]: RabbitMQ: connection (to the first node of a cluster that answers), queue names and topology, the retry policy of the delay queues,
//!   the `x-avatar-*` headers, confirmed publishing and dead letters.
//! - [`backend`]: where WhatsApp work happens; [`backend::GatewayBackend`] talks to a GOWA gateway, and
//!   with feature `native`, `backend::native` holds sessions in-process; [`backend::build`] picks per device.
//! - [`devices`]: per-device pacing, update order and the evidence behind a "not on WhatsApp".
//! - [`image`]: preparing update pictures.
//! - [`http`]: what the worker's HTTP clients share: bodies read up to a limit, the address guard, and the
//!   guarded fetcher for URLs the worker did not write (image URLs, picture URLs a gateway answered).
//! - [`settings`]: layered configuration, checked once.
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
pub mod http;
pub mod image;
pub mod lanes;
pub mod ops;
pub mod protocol;
pub mod settings;
pub mod shutdown;
pub mod sync;
pub mod worker;
