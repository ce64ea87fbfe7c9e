//! Which group serves a device, and the names of the queues that hold a group's and a device's jobs.
//!
//! - `<prefix>.claim.<group>`: the group's claim (single active consumer): its token and one marker per lane.
//! - `<prefix>.inbox.<group>`: jobs on their way to the group's lanes.
//! - `<prefix>.lane.<device>.fetch`, `.fetch.now` (interactive), `.update`: a device's jobs, in order.
//! - `<prefix>.claim.update-intake`: who reads the update job queue (one reader keeps updates in order).

use sha2::{Digest, Sha256};

use crate::protocol::{DeviceId, JobKind};

/// AMQP's limit on a queue name.
const MAX_QUEUE_NAME: usize = 255;
/// Longest lane suffix: `.fetch.now`.
const LONGEST_SUFFIX: usize = 10;
/// The name part standing for jobs without a `device_id` (the gateway's default device).
const DEFAULT_DEVICE: &str = "~default";

/// A set of devices served together by one replica at a time. Gateway devices are spread over a fixed
/// number of shards; each native device is a group of its own, so its session goes where its jobs go.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Group {
    Shard(u16),
    Native(DeviceId),
}

impl Group {
    /// The shard of a gateway device: a stable hash, so every replica agrees.
    pub fn shard_of(device: Option<&DeviceId>, shards: u16) -> Self {
        let key = device.map_or(DEFAULT_DEVICE, DeviceId::as_str);
        let digest = Sha256::digest(key.as_bytes());
        let n = u16::from_be_bytes([digest[0], digest[1]]);
        Group::Shard(n % shards.max(1))
    }
}

/// One of a device's lanes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LaneKind {
    Fetch,
    /// Interactive fetches: they overtake the device's bulk backlog at its next turn.
    FetchNow,
    Update,
}

impl LaneKind {
    pub fn job_kind(self) -> JobKind {
        match self {
            LaneKind::Fetch | LaneKind::FetchNow => JobKind::Fetch,
            LaneKind::Update => JobKind::Update,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            LaneKind::Fetch => "fetch",
            LaneKind::FetchNow => "fetch.now",
            LaneKind::Update => "update",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "fetch" => Some(LaneKind::Fetch),
            "fetch.now" => Some(LaneKind::FetchNow),
            "update" => Some(LaneKind::Update),
            _ => None,
        }
    }

    /// The lanes a device's jobs of `kind` may arrive in; each is created by the first job that needs it.
    pub fn of(kind: JobKind) -> &'static [LaneKind] {
        match kind {
            JobKind::Fetch => &[LaneKind::Fetch, LaneKind::FetchNow],
            JobKind::Update => &[LaneKind::Update],
        }
    }
}

/// The lane queue names of one topology.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaneNames {
    prefix: String,
}

impl LaneNames {
    pub fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.to_string(),
        }
    }

    pub fn claim(&self, group: &Group) -> String {
        format!("{}.claim.{}", self.prefix, self.group_part(group))
    }

    pub fn inbox(&self, group: &Group) -> String {
        format!("{}.inbox.{}", self.prefix, self.group_part(group))
    }

    pub fn update_intake_claim(&self) -> String {
        format!("{}.claim.update-intake", self.prefix)
    }

    pub fn lane(&self, device: Option<&DeviceId>, kind: LaneKind) -> String {
        format!(
            "{}.lane.{}.{}",
            self.prefix,
            self.device_part(device, ".lane."),
            kind.as_str()
        )
    }

    fn group_part(&self, group: &Group) -> String {
        match group {
            Group::Shard(n) => format!("shard-{n}"),
            Group::Native(device) => format!(
                "native.{}",
                self.device_part(Some(device), ".inbox.native.")
            ),
        }
    }

    /// A device id as a queue-name part: readable where it can be (letters, digits, `-_@:+`), escaped
    /// otherwise (`%XX`), and cut with a hash of the whole id when the name would exceed AMQP's limit.
    fn device_part(&self, device: Option<&DeviceId>, infix: &str) -> String {
        let Some(device) = device else {
            return DEFAULT_DEVICE.to_string();
        };
        let mut part = String::with_capacity(device.as_str().len());
        for byte in device.as_str().bytes() {
            match byte {
                b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'@' | b':' | b'+' => {
                    part.push(char::from(byte))
                }
                other => part.push_str(&format!("%{other:02X}")),
            }
        }
        let room =
            MAX_QUEUE_NAME.saturating_sub(self.prefix.len() + infix.len() + LONGEST_SUFFIX + 1);
        if part.len() <= room {
            return part;
        }
        let digest = Sha256::digest(device.as_str().as_bytes());
        let hash: String = digest[..4].iter().map(|b| format!("{b:02x}")).collect();
        let keep = room.saturating_sub(hash.len() + 1);
        format!("{}~{hash}", &part[..keep])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn device(id: &str) -> DeviceId {
        DeviceId::parse(id).unwrap()
    }

    #[test]
    fn names_are_readable_escaped_and_within_the_limit() {
        let names = LaneNames::new("avatar");
        assert_eq!(
            names.lane(
                Some(&device("6281234567890:12@s.whatsapp.net")),
                LaneKind::FetchNow
            ),
            // Dots are escaped: a device named `x.fetch` must not meet the lanes of `x`.
            "avatar.lane.6281234567890:12@s%2Ewhatsapp%2Enet.fetch.now"
        );
        assert_eq!(
            names.lane(None, LaneKind::Update),
            "avatar.lane.~default.update"
        );
        assert_eq!(
            names.lane(Some(&device("sales 1/a.b")), LaneKind::Fetch),
            "avatar.lane.sales%201%2Fa%2Eb.fetch"
        );
        let long = LaneNames::new(&"p".repeat(200));
        let a = long.lane(Some(&device(&"x".repeat(128))), LaneKind::FetchNow);
        let b = long.lane(
            Some(&device(&format!("{}y", "x".repeat(127)))),
            LaneKind::FetchNow,
        );
        assert!(a.len() <= 255 && b.len() <= 255, "{}", a.len());
        assert_ne!(a, b, "cut names keep a hash of the whole id");
        assert!(long.claim(&Group::Native(device(&"z".repeat(128)))).len() <= 255);
    }

    #[test]
    fn every_replica_puts_a_device_in_the_same_shard() {
        let d = device("dev-a");
        let first = Group::shard_of(Some(&d), 16);
        assert_eq!(first, Group::shard_of(Some(&d), 16));
        let Group::Shard(n) = first else { panic!() };
        assert!(n < 16);
        let spread: std::collections::HashSet<_> = (0..200)
            .map(|i| Group::shard_of(Some(&device(&format!("dev-{i}"))), 16))
            .collect();
        assert_eq!(spread.len(), 16, "devices spread over every shard");
        assert_eq!(Group::shard_of(None, 1), Group::Shard(0));
    }
}
