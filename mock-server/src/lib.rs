//! A mock of the GOWA (go-whatsapp-web-multidevice v9.2.0) avatar HTTP API.
//!
//! Module map (each module names the GOWA/Fiber/whatsmeow source it follows):
//! * configuration: [`config`] ([`Config`], [`Shares`]), [`cli`] (the binary's flags), [`logging`];
//! * HTTP layers, outermost first: [`requests_log`], the body limit in [`server`], [`cors`],
//!   [`auth`]; then [`routes`] (Fiber's routing, 404/405) and [`select`] (device middleware);
//! * gateway handlers: [`avatar_get`] with [`query`] (query binding), [`lookup`] (on-WhatsApp
//!   check) and [`picture`] (picture query); [`avatar_post`] with [`bind`] and [`form`] (body
//!   binding, `FormFile`) and [`upload`] (bounded decode and conversion); [`devices_api`];
//! * shared pieces: [`envelope`] (JSON body), [`errors`] (GOWA's error answers), [`jid`],
//!   [`devices`] (slots), [`faults`], [`state`], [`util`];
//! * the mock's own inventions: [`world`] (who has what), [`cdn`] and [`uploads`] (picture
//!   URLs and bytes), [`control`] (`/_mock/*`).

// Handlers return an early `Response` as their error, the usual axum pattern; it is moved once per
// request, so boxing it would only add an allocation.
#![allow(clippy::result_large_err)]

pub mod auth;
pub mod avatar_get;
pub mod avatar_post;
pub mod bind;
pub mod cdn;
pub mod cli;
pub mod config;
pub mod control;
pub mod cors;
pub mod devices;
pub mod devices_api;
pub mod envelope;
pub mod errors;
pub mod faults;
pub mod form;
pub mod jid;
pub mod logging;
pub mod lookup;
pub mod picture;
pub mod query;
pub mod requests_log;
pub mod routes;
pub mod select;
pub mod server;
pub mod state;
pub mod upload;
pub mod uploads;
pub mod util;
pub mod world;

pub use config::{Config, Shares};
pub use faults::Faults;
pub use jid::sanitize_phone;
pub use server::{MockError, MockServer, router, spawn};
