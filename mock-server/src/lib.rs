//! A mock of the GOWA (go-whatsapp-web-multidevice v9.2.0) avatar HTTP API.
//!
//! Module map:
//! * [`config`] — [`Config`], [`Shares`] and the binary's command line;
//! * [`envelope`] — the `{code, message, results?}` body, Go-style JSON escaping, plain-text answers;
//! * [`auth`] — Basic auth like Fiber's middleware;
//! * [`devices`] — device slots, states, selection, `/devices` routes;
//! * [`jid`] — `SanitizePhone`, `ParseJID`, world keys;
//! * [`world`] — the deterministic outcome of any JID;
//! * [`avatar`] — `GET`/`POST /user/avatar`;
//! * [`cdn`] — picture URLs and JPEG bytes;
//! * [`control`] — `/_mock/*`;
//! * [`faults`] — injected latency and errors;
//! * [`requests_log`] — the request log;
//! * [`server`] — the router and [`spawn`].

// Helpers return an early `Response` as their error, the usual axum pattern; it is moved once per
// request, so boxing it would only add an allocation.
#![allow(clippy::result_large_err)]

pub mod auth;
pub mod avatar;
pub mod cdn;
pub mod config;
pub mod control;
pub mod devices;
pub mod envelope;
pub mod faults;
pub mod jid;
pub mod requests_log;
pub mod server;
pub mod state;
pub mod util;
pub mod world;

pub use config::{Config, Shares};
pub use faults::Faults;
pub use jid::sanitize_phone;
pub use server::{MockError, MockServer, router, spawn};
