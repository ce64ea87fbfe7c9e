//! The pacing tests (`pacing.rs`), apart from the rest of `tests/api/` so they run alone.

#[allow(dead_code)]
mod helpers;
mod pacing;
#[allow(dead_code)]
mod schemas;
