//! Durations are written in milliseconds in the file and the environment (the `*_ms` keys users know);
//! the worker only ever sees [`Duration`].

use std::time::Duration;

use serde::{Deserialize, Deserializer};

pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    u64::deserialize(d).map(Duration::from_millis)
}

pub mod option {
    use super::*;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        Option::<u64>::deserialize(d).map(|ms| ms.map(Duration::from_millis))
    }
}

/// A list; one value alone (`AVATAR_WORKER__RETRY__DELAYS_MS=1000`, which the environment source reads
/// as a number, not a list) is a list of one.
pub mod list {
    use super::*;

    /// Buffered (untagged) values lose the config source's own number parsing: take text as well.
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Ms {
        Number(u64),
        Text(String),
    }

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(Ms),
        Many(Vec<Ms>),
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Duration>, D::Error> {
        let list = match OneOrMany::deserialize(d)? {
            OneOrMany::One(ms) => vec![ms],
            OneOrMany::Many(list) => list,
        };
        list.into_iter()
            .map(|ms| match ms {
                Ms::Number(ms) => Ok(Duration::from_millis(ms)),
                Ms::Text(text) => text.trim().parse().map(Duration::from_millis).map_err(|_| {
                    serde::de::Error::custom(format!("{text:?} is not a number of milliseconds"))
                }),
            })
            .collect()
    }
}
