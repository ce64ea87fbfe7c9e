//! The queues of one topology, by role. Every name the worker, the client and the tests use comes from here.

use crate::protocol::JobKind;
use crate::settings::TopologySettings;

/// The resolved names the worker declares and uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueNames {
    pub fetch: String,
    pub update: String,
    pub results: String,
    pub dead: String,
}

impl QueueNames {
    /// Each name as configured, or derived from the prefix: `<prefix>.fetch`, `.update`, `.results`, `.dead`.
    pub fn new(topology: &TopologySettings) -> Self {
        let name = |explicit: &Option<String>, suffix: &str| {
            explicit
                .clone()
                .unwrap_or_else(|| format!("{}.{suffix}", topology.prefix))
        };
        Self {
            fetch: name(&topology.fetch_queue, "fetch"),
            update: name(&topology.update_queue, "update"),
            results: name(&topology.results_queue, "results"),
            dead: name(&topology.dead_queue, "dead"),
        }
    }

    /// Every name derived from `prefix` (tests give each run its own prefix).
    pub fn with_prefix(prefix: &str) -> Self {
        Self::new(&TopologySettings::with_prefix(prefix))
    }

    /// The queue producers publish jobs of `kind` to.
    pub fn job_queue(&self, kind: JobKind) -> &str {
        match kind {
            JobKind::Fetch => &self.fetch,
            JobKind::Update => &self.update,
        }
    }

    /// Both job queues with their kind.
    pub fn job_queues(&self) -> [(JobKind, &str); 2] {
        [JobKind::Fetch, JobKind::Update].map(|kind| (kind, self.job_queue(kind)))
    }

    /// The job, result and dead-letter queues (delay queues: [`super::RetryPolicy::delay_queues`]).
    pub fn main_queues(&self) -> [&str; 4] {
        [&self.fetch, &self.update, &self.results, &self.dead]
    }
}
