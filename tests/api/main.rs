//! End-to-end tests: real RabbitMQ, the mock gateway over HTTP, the worker in-process.

mod broker;
mod fetch;
mod helpers;
mod malformed;
mod reconnect;
mod reliability;
mod routing;
mod schemas;
mod shutdown;
mod sync;
mod update;
