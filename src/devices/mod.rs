//! Per-device state, held by the replica that owns the device's lanes: pacing (rate and burst) and the
//! order of profile-picture updates.

mod order;
mod pacer;

pub use order::UpdateOrder;
pub use pacer::{Pacer, Start, now_ms};
