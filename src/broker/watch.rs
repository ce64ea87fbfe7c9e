//! One connection's health, as every part using it sees it: the first channel that fails (a refused
//! publish, a consumer cancelled by the broker, a closed channel) ends the whole session, which reconnects
//! and stops saying it is ready. A channel that died quietly must never leave the worker nacking every
//! job in a loop.

use std::sync::{Arc, Mutex, PoisonError};

use tokio_util::sync::CancellationToken;

#[derive(Clone, Default)]
pub struct Watch {
    lost: CancellationToken,
    reason: Arc<Mutex<Option<String>>>,
}

impl Watch {
    pub fn new() -> Self {
        Self::default()
    }

    /// Ends the session; the first reason given is the one reported.
    pub fn lost(&self, reason: impl Into<String>) {
        let mut first = self.reason.lock().unwrap_or_else(PoisonError::into_inner);
        if first.is_none() {
            *first = Some(reason.into());
        }
        self.lost.cancel();
    }

    pub fn is_lost(&self) -> bool {
        self.lost.is_cancelled()
    }

    /// Completes once the session is lost; cancel-safe.
    pub async fn wait(&self) {
        self.lost.cancelled().await;
    }

    pub fn reason(&self) -> String {
        self.reason
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .unwrap_or_else(|| "the connection was lost".into())
    }
}
