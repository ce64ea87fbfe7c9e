//! The image pipeline through its public API: formats, orientation, transparency, limits,
//! truncation, scaling (not cropping) and guarded URL fetching against a local server.

mod formats;
mod helpers;
mod limits;
mod orientation;
mod scaling;
mod transparency;
mod url_source;
