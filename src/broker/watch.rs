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

    /// Runs `work` unless the session is lost first. lapin never answers a request made after its I/O loop
    /// has stopped (a lost connection): its future waits forever. Every wait on the broker that can outlive the
    /// connection goes through here, so a lost connection ends it.
    pub async fn bound<F: std::future::Future>(&self, work: F) -> Option<F::Output> {
        // Pinned where it is: a job's future is kilobytes, and `select!` would move it once more.
        tokio::pin!(work);
        tokio::select! {
            biased;
            out = &mut work => Some(out),
            _ = self.wait() => None,
        }
    }

    /// A broker request bounded like [`Watch::bound`]; cut short, it fails as a lost connection.
    pub async fn request<T, F>(&self, request: F) -> Result<T, lapin::Error>
    where
        F: std::future::Future<Output = Result<T, lapin::Error>>,
    {
        self.bound(request).await.unwrap_or_else(|| {
            Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionAborted,
                "the connection was lost",
            )
            .into())
        })
    }

    /// `work`, ended when the session is lost wherever it waits: the body of a task.
    pub fn ending<F>(&self, work: F) -> impl std::future::Future<Output = ()> + use<F>
    where
        F: std::future::Future<Output = ()>,
    {
        let watch = self.clone();
        async move {
            let _ = watch.bound(work).await;
        }
    }

    /// Runs `work` as a task that ends when the session is lost, wherever it waits.
    pub fn spawn<F>(&self, work: F) -> tokio::task::JoinHandle<()>
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        tokio::spawn(self.ending(work))
    }

    /// Ends the session when `connection` fails, even while nothing else is waiting on the broker. (A
    /// channel's error is reported as the same event; the connection's state tells them apart.)
    pub fn follow(&self, connection: &lapin::Connection) {
        use futures_util::StreamExt;
        let mut events = connection.events_listener();
        let status = connection.status().clone();
        if !status.connected() {
            // Failed before anyone listened: its error event is gone.
            return self.lost("connection: not connected");
        }
        let watch = self.clone();
        tokio::spawn(async move {
            while let Some(Some(event)) = watch.bound(events.next()).await {
                if let lapin::Event::Error(err) = event
                    && !status.connected()
                {
                    watch.lost(format!("connection: {err}"));
                }
            }
        });
    }

    pub fn reason(&self) -> String {
        self.reason
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .unwrap_or_else(|| "the connection was lost".into())
    }
}
