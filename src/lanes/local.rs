//! The lanes this replica owns, so that a fetch read here goes straight into its lane: one broker publish
//! instead of two through its group's inbox. With one replica that is every job; at a cold start it also
//! keeps the devices whose lanes exist moving while the broker declares the others, whose jobs wait in
//! the inboxes (`bench --many-only`).
//!
//! An owner removes a lane only when nothing is on its way into it: the intake announces each hop here and
//! the owner takes a lane out of here before deleting it, both under one lock.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::Lane;
use super::lane::LaneState;

#[derive(Default)]
pub struct LocalLanes {
    lanes: Mutex<HashMap<Lane, Arc<LaneState>>>,
}

impl LocalLanes {
    /// A hop into `lane` if this replica owns it; the lane is not removed while the hop is held.
    pub fn enter(&self, lane: &Lane) -> Option<Hop> {
        let lanes = self.lanes.lock().unwrap_or_else(|p| p.into_inner());
        lanes.get(lane).map(|state| Hop::begin(state.clone()))
    }

    /// A lane that exists and is served here.
    pub fn open(&self, lane: Lane, state: Arc<LaneState>) {
        let mut lanes = self.lanes.lock().unwrap_or_else(|p| p.into_inner());
        lanes.insert(lane, state);
    }

    /// Takes a device's lanes out if they have been idle for `idle` with no hop under way; false otherwise.
    pub fn close_if_idle(&self, lanes: &[Lane], state: &LaneState, idle: Duration) -> bool {
        let mut open = self.lanes.lock().unwrap_or_else(|p| p.into_inner());
        if !state.is_idle(idle) {
            return false;
        }
        for lane in lanes {
            open.remove(lane);
        }
        true
    }

    /// Takes lanes out whatever they hold (their owner stops).
    pub fn close(&self, lanes: impl IntoIterator<Item = Lane>) {
        let mut open = self.lanes.lock().unwrap_or_else(|p| p.into_inner());
        for lane in lanes {
            open.remove(&lane);
        }
    }
}

/// A job on its way into a lane, from the inbox or straight from the intake, until the broker confirmed it.
pub struct Hop(Arc<LaneState>);

impl Hop {
    pub fn begin(state: Arc<LaneState>) -> Self {
        state.hop_begins();
        Self(state)
    }
}

impl Drop for Hop {
    fn drop(&mut self) {
        self.0.hop_ends();
    }
}
