//! Whether the worker should receive traffic: ready only while it holds a broker connection AND its
//! consumers run. The worker loop reports each transition; `/readyz` reads the latest one. It also keeps
//! the `avatar_worker_amqp_connected` gauge in step, so the two never disagree.

use std::sync::{Arc, Mutex, PoisonError};

use super::Metrics;
use crate::backend::{AvatarBackend, SessionReport};
use crate::shutdown::Shutdown;

/// The last transition the worker loop reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadyState {
    /// Not connected yet (first connection attempt under way).
    Starting,
    /// Connected, declaring topology and starting consumers.
    Connected,
    /// Connected and consuming: ready.
    Consuming,
    /// The broker could not be reached or the connection was lost; the loop is reconnecting.
    Disconnected(String),
    /// Shutdown was requested: draining, then stopping.
    Stopping,
}

#[derive(Clone)]
pub struct Readiness {
    state: Arc<Mutex<ReadyState>>,
    /// The node of the current or last connection (redacted), shown under the verdict.
    node: Arc<Mutex<Option<String>>>,
    shutdown: Arc<Mutex<Option<Shutdown>>>,
    metrics: Metrics,
    sessions: Option<Arc<dyn AvatarBackend>>,
}

impl std::fmt::Debug for Readiness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Readiness")
            .field("state", &self.state())
            .finish()
    }
}

impl Readiness {
    pub fn new(metrics: &Metrics) -> Self {
        Self {
            state: Arc::new(Mutex::new(ReadyState::Starting)),
            node: Arc::default(),
            shutdown: Arc::default(),
            metrics: metrics.clone(),
            sessions: None,
        }
    }

    /// Also reports the sessions `backend` holds (native devices), one line each in `/readyz`.
    pub fn with_sessions(mut self, backend: Arc<dyn AvatarBackend>) -> Self {
        self.sessions = Some(backend);
        self
    }

    /// The state of every session the backend holds in this process. They do not decide readiness: a
    /// worker with a disconnected device still answers that device's jobs (`device_disconnected`).
    pub fn sessions(&self) -> Vec<SessionReport> {
        self.sessions
            .as_ref()
            .map(|backend| backend.sessions())
            .unwrap_or_default()
    }

    /// Reports `Stopping` as soon as `shutdown` triggers, before in-flight jobs have drained, so a load
    /// balancer or orchestrator stops counting on this worker at once.
    pub fn watch(&self, shutdown: &Shutdown) {
        *self.shutdown.lock().unwrap_or_else(PoisonError::into_inner) = Some(shutdown.clone());
    }

    /// Connected to `node` (a redacted URL).
    pub fn connected(&self, node: impl Into<String>) {
        *self.node.lock().unwrap_or_else(PoisonError::into_inner) = Some(node.into());
        self.metrics.set_connected(true);
        self.set(ReadyState::Connected);
    }

    pub fn consuming(&self) {
        self.set(ReadyState::Consuming);
    }

    /// The connection failed or was lost; `reason` is shown by `/readyz` (never holds a password: callers
    /// pass the broker's error text, and the URL only in redacted form).
    pub fn disconnected(&self, reason: impl Into<String>) {
        self.metrics.set_connected(false);
        self.set(ReadyState::Disconnected(reason.into()));
    }

    pub fn stopping(&self) {
        self.metrics.set_connected(false);
        self.set(ReadyState::Stopping);
    }

    /// The broker node of the current connection; `None` while there is none.
    pub fn node(&self) -> Option<String> {
        if !matches!(self.state(), ReadyState::Connected | ReadyState::Consuming) {
            return None;
        }
        self.node
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub fn state(&self) -> ReadyState {
        let stopping = self
            .shutdown
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .is_some_and(Shutdown::is_triggered);
        if stopping {
            return ReadyState::Stopping;
        }
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// `Ok(())` when ready, else a short reason for the 503 body.
    pub fn check(&self) -> Result<(), String> {
        match self.state() {
            ReadyState::Consuming => match self.sessions.as_ref().and_then(|b| b.problem()) {
                Some(problem) => Err(problem),
                None => Ok(()),
            },
            ReadyState::Starting => Err("not connected to the broker yet".into()),
            ReadyState::Connected => Err("connected; consumers not started yet".into()),
            ReadyState::Disconnected(reason) => {
                Err(format!("not connected to the broker: {reason}"))
            }
            ReadyState::Stopping => Err("shutting down".into()),
        }
    }

    fn set(&self, state: ReadyState) {
        *self.state.lock().unwrap_or_else(PoisonError::into_inner) = state;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_only_while_consuming_and_not_stopping() {
        let metrics = Metrics::new();
        let readiness = Readiness::new(&metrics);
        let shutdown = Shutdown::new();
        readiness.watch(&shutdown);
        assert!(readiness.check().is_err());
        readiness.connected("amqp://rabbit-1/");
        assert!(readiness.check().is_err());
        assert_eq!(readiness.node().as_deref(), Some("amqp://rabbit-1/"));
        assert!(metrics.render().contains("avatar_worker_amqp_connected 1"));
        readiness.consuming();
        assert!(readiness.check().is_ok());
        readiness.disconnected("connection reset");
        assert!(readiness.check().unwrap_err().contains("connection reset"));
        assert_eq!(readiness.node(), None);
        assert!(metrics.render().contains("avatar_worker_amqp_connected 0"));
        readiness.connected("amqp://rabbit-2/");
        readiness.consuming();
        assert_eq!(readiness.node().as_deref(), Some("amqp://rabbit-2/"));
        shutdown.trigger();
        assert_eq!(readiness.check().unwrap_err(), "shutting down");
    }
}
