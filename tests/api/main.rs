//! End-to-end tests: real RabbitMQ, the mock gateway over HTTP, the worker in-process.

mod broker;
mod fetch;
mod helpers;
mod malformed;
mod ops;
mod proxy;
mod reconnect;
mod reliability;
mod routing;
mod schemas;
mod secrets;
mod shutdown;
mod update;
