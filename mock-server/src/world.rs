//! The deterministic world: what `GET /user/avatar` finds for a JID nobody configured.
//!
//! The outcome comes from `sha256(seed as 8 little-endian bytes ‖ world_key(jid))`: the first
//! 8 bytes pick the bucket in proportion to [`Shares`], the next 8 the picture id
//! (`1000000000 + n % 1000000000`, a 10-digit numeric string that never changes for the same
//! seed and JID). Rules on top of the hash:
//! * user JIDs (`@s.whatsapp.net`) whose user part is not all digits are `NotOnWhatsapp`;
//! * groups, LIDs, newsletters and other servers skip the not-on-WhatsApp check like the gateway,
//!   so the `not_on_whatsapp` bucket gives them `NotSet` (no picture) instead.
//!
//! Contacts set through `PUT /_mock/contacts/{jid}` and the devices' own uploaded pictures
//! override this inside the server.

use sha2::{Digest, Sha256};

use crate::config::Shares;
use crate::jid::{USER_SERVER, is_phone_number, world_key};

/// What the world holds for one JID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A profile picture with this numeric id.
    Set { id: String },
    /// No profile picture.
    NotSet,
    /// Picture hidden by privacy settings.
    Hidden,
    /// The number is not registered on WhatsApp.
    NotOnWhatsapp,
}

fn digest(seed: u64, key: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(seed.to_le_bytes());
    h.update(key.as_bytes());
    h.finalize().into()
}

fn u64_at(d: &[u8; 32], at: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&d[at..at + 8]);
    u64::from_le_bytes(b)
}

/// The stable picture id the world gives `jid` when its picture is set.
pub fn picture_id(seed: u64, jid: &str) -> String {
    let d = digest(seed, &world_key(jid));
    (1_000_000_000 + u64_at(&d, 8) % 1_000_000_000).to_string()
}

/// The outcome of `jid` (any phone or JID form the gateway accepts) for this seed and shares.
pub fn outcome(seed: u64, shares: &Shares, jid: &str) -> Outcome {
    let key = world_key(jid);
    let (user, server) = key.split_once('@').unwrap_or((key.as_str(), ""));
    let is_user = server == USER_SERVER;
    if is_user && !is_phone_number(user) {
        return Outcome::NotOnWhatsapp;
    }
    let d = digest(seed, &key);
    let total = shares.set + shares.not_set + shares.hidden + shares.not_on_whatsapp;
    if !(total.is_finite() && total > 0.0) {
        return Outcome::NotSet;
    }
    let u = (u64_at(&d, 0) >> 11) as f64 / (1u64 << 53) as f64 * total;
    if u < shares.set {
        Outcome::Set {
            id: (1_000_000_000 + u64_at(&d, 8) % 1_000_000_000).to_string(),
        }
    } else if u < shares.set + shares.not_set {
        Outcome::NotSet
    } else if u < shares.set + shares.not_set + shares.hidden {
        Outcome::Hidden
    } else if is_user {
        Outcome::NotOnWhatsapp
    } else {
        Outcome::NotSet
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_and_roughly_proportional() {
        let shares = Shares::default();
        let mut counts = [0usize; 4];
        for n in 0..10_000u64 {
            let jid = format!("62811{n:07}");
            let o = outcome(7, &shares, &jid);
            assert_eq!(o, outcome(7, &shares, &format!("+{jid}@s.whatsapp.net")));
            counts[match o {
                Outcome::Set { id } => {
                    assert_eq!(id, picture_id(7, &jid));
                    0
                }
                Outcome::NotSet => 1,
                Outcome::Hidden => 2,
                Outcome::NotOnWhatsapp => 3,
            }] += 1;
        }
        assert!((6700..7300).contains(&counts[0]), "{counts:?}");
        assert!((300..700).contains(&counts[3]), "{counts:?}");
    }

    #[test]
    fn groups_never_not_on_whatsapp() {
        let shares = Shares {
            set: 0.0,
            not_set: 0.0,
            hidden: 0.0,
            not_on_whatsapp: 1.0,
        };
        assert_eq!(outcome(1, &shares, "120363@g.us"), Outcome::NotSet);
        assert_eq!(outcome(1, &shares, "6281"), Outcome::NotOnWhatsapp);
    }
}
