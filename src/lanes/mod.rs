//! Device lanes: each device's jobs wait in queues of their own, in the broker, and exactly one replica at a
//! time serves them, at the device's pace (docs/scaling.md).
//!
//! A job read from a job queue (`worker::intake`) goes to its group's inbox; the replica that owns the group
//! moves it into the device's lane (`group`) and runs it at the device's turn (`lane`). A fetch read by that
//! replica goes straight into its lane once the lane exists (`local`). Who owns what is decided by the
//! broker through claims (`claims`); `manager` starts and stops this replica's share.
//!
//! - `names`: groups, lane kinds and queue names.
//! - `claims`: single-active-consumer claims with a token and one marker per lane.
//! - `manager`: the claims this replica subscribes to, the owners it runs, its fair share.
//! - `group`: an owned group: inbox → lanes, lanes removed when idle.
//! - `local`: the lanes owned here, which the intake sends fetches straight into.
//! - `lane`: one lane's runner: pacing, concurrency, interactive first.

mod claims;
mod group;
mod lane;
mod local;
mod manager;
pub mod names;

use lapin::BasicProperties;
use lapin::types::FieldTable;

pub(crate) use crate::worker::SessionCtx;
pub use claims::lanes_of_claim;
pub(crate) use local::{Hop, LocalLanes};
pub(crate) use manager::Manager;

use crate::broker::headers::{self, JobHeaders};
use crate::broker::properties;
use crate::protocol::{DeviceId, JobKind};
use names::LaneKind;

/// A device's jobs of one kind: the unit a lane runner serves (fetch covers its interactive lane too).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LaneKey {
    pub device: Option<DeviceId>,
    pub kind: JobKind,
}

/// One lane queue: a device's jobs of one lane kind. Each exists only once a job came for it (the
/// interactive lane of most devices never does), and its group's claim records it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Lane {
    pub device: Option<DeviceId>,
    pub kind: LaneKind,
}

impl Lane {
    pub fn key(&self) -> LaneKey {
        LaneKey {
            device: self.device.clone(),
            kind: self.kind.job_kind(),
        }
    }

    pub fn queue(&self, names: &names::LaneNames) -> String {
        names.lane(self.device.as_ref(), self.kind)
    }

    /// The lane a job is routed to, as the intake wrote it for the group's owner.
    pub fn read(table: Option<&FieldTable>) -> Option<Self> {
        let kind = LaneKind::parse(&headers::header_str(table, LANE)?)?;
        let device = match headers::header_str(table, DEVICE) {
            Some(id) => Some(DeviceId::parse(id).ok()?),
            None => None,
        };
        Some(Self { device, kind })
    }

    /// The routing as string headers.
    pub fn headers(&self) -> Vec<(&'static str, &str)> {
        let mut out = vec![(LANE, self.kind.as_str())];
        if let Some(device) = &self.device {
            out.push((DEVICE, device.as_str()));
        }
        out
    }
}

const DEVICE: &str = "x-avatar-device";
const LANE: &str = "x-avatar-lane";

/// The properties of a job's next hop (a group's inbox, a lane): what [`properties::republished`] keeps,
/// with the routing, and what is left of the job's deadline as its TTL. `None` when the deadline has passed:
/// nobody waits for the answer any more.
pub(crate) fn hop_properties(
    from: &BasicProperties,
    routing: &Lane,
    now_ms: u64,
) -> Option<BasicProperties> {
    let job = JobHeaders::read(from.headers().as_ref());
    let ttl = match job.expires_at_ms {
        Some(deadline) if deadline <= now_ms => return None,
        Some(deadline) => Some(std::time::Duration::from_millis(deadline - now_ms)),
        None => None,
    };
    Some(properties::republished(from, &job, &routing.headers(), ttl))
}

/// Every lane-related queue of a topology that exists now: each shard's claim and inbox, the update-intake
/// claim, and every lane a claim records (read without taking anything). With `native`, the claims and
/// inboxes of those native devices too. For `status`, cleanups and tests.
pub async fn queues(
    channel: &lapin::Channel,
    names: &names::LaneNames,
    shards: u16,
    native: &[DeviceId],
) -> Result<Vec<String>, lapin::Error> {
    let mut groups: Vec<names::Group> = (0..shards).map(names::Group::Shard).collect();
    groups.extend(native.iter().cloned().map(names::Group::Native));
    let mut out = vec![names.update_intake_claim()];
    for group in &groups {
        let claim = names.claim(group);
        for lane in lanes_of_claim(channel, &claim).await? {
            out.push(lane.queue(names));
        }
        out.push(claim);
        out.push(names.inbox(group));
    }
    Ok(out)
}

/// Settles a message the lanes hold (a job moved on, a marker no longer needed); a failure means the
/// channel is gone, and the broker then returns the message to its queue anyway.
async fn ack(delivery: &lapin::message::Delivery) {
    let _ = delivery
        .acker
        .ack(lapin::options::BasicAckOptions::default())
        .await;
}

/// Returns a held message to its queue (for a classic queue, to where it was).
async fn requeue(delivery: &lapin::message::Delivery) {
    let options = lapin::options::BasicNackOptions {
        requeue: true,
        ..lapin::options::BasicNackOptions::default()
    };
    let _ = delivery.acker.nack(options).await;
}
