//! End-to-end tests: real RabbitMQ, the mock gateway over HTTP, the worker in-process.

mod broker;
mod crash;
mod fetch;
mod helpers;
mod hostile;
mod malformed;
#[path = "../support/pictures.rs"]
mod pictures;
mod process;
mod reconnect;
mod reliability;
mod routing;
mod scale;
mod schemas;
mod shutdown;
mod update;
