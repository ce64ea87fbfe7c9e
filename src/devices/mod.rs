//! Per-device state: pacing (rate and burst), concurrency caps, and the order of profile-picture updates.
//! Keys are `(device, kind)`; jobs without a device share the key of the gateway's default device.

mod gate;
mod order;
mod pacer;

pub use gate::DeviceGate;
pub use order::UpdateOrder;
pub use pacer::{Admission, Pacer, now_ms};

use crate::protocol::{DeviceId, JobKind};

/// Pacing and caps are kept per device and kind; `None` is the gateway's default device.
type DeviceKey = (Option<DeviceId>, JobKind);
