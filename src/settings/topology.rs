use serde::Deserialize;

use super::{SettingsError, invalid};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum QueueType {
    #[default]
    Classic,
    /// Replicated; survives the loss of a broker node in a cluster.
    Quorum,
}

/// Queue names. Each derives from `prefix` unless set explicitly.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TopologySettings {
    pub prefix: String,
    pub queue_type: QueueType,
    pub fetch_queue: Option<String>,
    pub update_queue: Option<String>,
    pub results_queue: Option<String>,
    pub dead_queue: Option<String>,
}

impl Default for TopologySettings {
    fn default() -> Self {
        Self {
            prefix: "avatar".into(),
            queue_type: QueueType::Classic,
            fetch_queue: None,
            update_queue: None,
            results_queue: None,
            dead_queue: None,
        }
    }
}

impl TopologySettings {
    /// Settings for a given prefix with every other name derived (tests give each run its own prefix).
    pub fn with_prefix(prefix: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
            ..Self::default()
        }
    }

    pub(super) fn validate(&self) -> Result<(), SettingsError> {
        let check = |key: &'static str, value: &str| {
            if value.is_empty() || value.len() > 200 || value.starts_with("amq.") {
                Err(invalid(
                    key,
                    "a queue name must be 1 to 200 bytes and must not start with `amq.`",
                ))
            } else {
                Ok(())
            }
        };
        let names = crate::broker::QueueNames::new(self);
        check("topology.prefix", &self.prefix)?;
        check("topology.fetch_queue", &names.fetch)?;
        check("topology.update_queue", &names.update)?;
        check("topology.results_queue", &names.results)?;
        check("topology.dead_queue", &names.dead)
    }
}
