//! Per-device state, held by the replica that owns the device's lanes: pacing (rate and burst), the order
//! of profile-picture updates, and how far its "not on whatsapp" answers can be believed.

mod lookups;
mod order;
mod pacer;

pub use lookups::{Lookup, LookupHealth, Verdict};
pub use order::UpdateOrder;
pub use pacer::{Pacer, Start, now_ms};
