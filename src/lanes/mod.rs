//! Device lanes: each device's jobs wait in queues of their own, in the broker, and exactly one replica at a
//! time serves them, at the device's pace (docs/scaling.md).
//!
//! A job read from a job queue (`worker::intake`) goes to its group's inbox; the replica that owns the group
//! moves it into the device's lane (`group`) and runs it at the device's turn (`lane`). Who owns what is
//! decided by the broker through claims (`claims`); `manager` starts and stops this replica's share.
//!
//! - `names`: groups, lane kinds and queue names.
//! - `claims`: single-active-consumer claims with a token and one marker per lane.
//! - `manager`: the claims this replica subscribes to, the owners it runs, its fair share.
//! - `group`: an owned group: inbox → lanes, lanes removed when idle.
//! - `lane`: one lane's runner: pacing, concurrency, interactive first.

mod claims;
mod group;
mod lane;
mod manager;
pub mod names;

use lapin::BasicProperties;
use lapin::types::FieldTable;

pub(crate) use crate::worker::SessionCtx;
pub use claims::lanes_of_claim;
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

const DEVICE: &str = "x-avatar-device";
const LANE: &str = "x-avatar-lane";

/// Where a job goes, written by the intake for the group's owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Routing {
    pub device: Option<DeviceId>,
    pub lane: LaneKind,
}

impl Routing {
    pub fn read(table: Option<&FieldTable>) -> Option<Self> {
        let lane = LaneKind::parse(&headers::header_str(table, LANE)?)?;
        let device = match headers::header_str(table, DEVICE) {
            Some(id) => Some(DeviceId::parse(id).ok()?),
            None => None,
        };
        Some(Self { device, lane })
    }

    /// The routing as string headers.
    pub fn headers(&self) -> Vec<(&'static str, &str)> {
        let mut out = vec![(LANE, self.lane.as_str())];
        if let Some(device) = &self.device {
            out.push((DEVICE, device.as_str()));
        }
        out
    }
}

/// The properties of a job's next hop (a group's inbox, a lane): what [`properties::republished`] keeps,
/// with the routing, and what is left of the job's deadline as its TTL. `None` when the deadline has passed:
/// nobody waits for the answer any more.
pub(crate) fn hop_properties(
    from: &BasicProperties,
    routing: &Routing,
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
        for key in lanes_of_claim(channel, &claim).await? {
            for &lane in LaneKind::of(key.kind) {
                out.push(names.lane(key.device.as_ref(), lane));
            }
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
