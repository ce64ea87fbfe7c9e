//! Pictures uploaded through `POST /user/avatar`, served by the CDN. Bounded: beyond
//! [`KEEP`] pictures the oldest one that is no device's current avatar is dropped (its URLs
//! then answer 404, like an expired WhatsApp picture).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use bytes::Bytes;

/// How many uploaded pictures are kept.
pub const KEEP: usize = 256;

/// A picture uploaded through `POST /user/avatar`, as stored (both JPEG).
#[derive(Debug)]
pub struct StoredPicture {
    pub full: Bytes,
    pub preview: Bytes,
}

/// The stored pictures by picture id, oldest first.
#[derive(Default)]
pub struct Uploads {
    by_id: HashMap<String, Arc<StoredPicture>>,
    order: VecDeque<String>,
}

impl Uploads {
    pub fn get(&self, id: &str) -> Option<Arc<StoredPicture>> {
        self.by_id.get(id).cloned()
    }

    /// Stores a picture; `current` tells which ids are some device's avatar (never dropped).
    pub fn insert(&mut self, id: String, picture: StoredPicture, current: impl Fn(&str) -> bool) {
        self.by_id.insert(id.clone(), Arc::new(picture));
        self.order.push_back(id);
        while self.order.len() > KEEP {
            let Some(at) = self.order.iter().position(|old| !current(old)) else {
                break;
            };
            if let Some(old) = self.order.remove(at) {
                self.by_id.remove(&old);
            }
        }
    }

    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    pub fn clear(&mut self) {
        self.by_id.clear();
        self.order.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pic() -> StoredPicture {
        StoredPicture {
            full: Bytes::new(),
            preview: Bytes::new(),
        }
    }

    #[test]
    fn keeps_current_avatars_and_a_bounded_history() {
        let mut u = Uploads::default();
        for n in 0..(KEEP + 50) {
            u.insert(n.to_string(), pic(), |id| id == "0");
        }
        assert_eq!(u.len(), KEEP);
        assert!(u.get("0").is_some(), "a current avatar is never dropped");
        assert!(u.get("1").is_none());
        assert!(u.get(&(KEEP + 49).to_string()).is_some());
    }
}
