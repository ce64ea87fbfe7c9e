//! End-to-end tests: real RabbitMQ, the mock gateway over HTTP, the worker in-process.

mod cli;
mod crash;
mod dead;
mod fetch;
mod helpers;
mod hostile;
mod lanes;
mod logs;
mod malformed;
#[cfg(feature = "native")]
mod native;
mod ops;
mod process;
mod proxy;
mod reconnect;
mod reliability;
mod routing;
mod scale;
mod schemas;
mod secrets;
mod shutdown;
mod sync;
mod truth;
mod update;
