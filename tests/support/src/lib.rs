//! What the test binaries of avatar-worker share: which RabbitMQ they use ([`broker`]), pictures with known
//! content ([`pictures`]), loopback ports that refuse connections ([`ports`]), and session stores that look paired ([`accounts`], feature `native`).

#[cfg(feature = "native")]
pub mod accounts;
pub mod broker;
pub mod pictures;
pub mod ports;
