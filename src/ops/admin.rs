//! The admin HTTP server: `/metrics` (Prometheus text), `/healthz` (liveness: the process answers) and
//! `/readyz` (readiness: connected to the broker and consuming; native sessions listed below the verdict).
//! Kept apart from any job traffic, on its own port (`admin.bind`), so probes keep answering while the
//! worker is busy.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

use super::{Metrics, Readiness};
use crate::settings::AdminSettings;
use crate::shutdown::Shutdown;

#[derive(Clone)]
struct AdminState {
    metrics: Metrics,
    readiness: Readiness,
}

/// A running admin server: where it listens, and its task (ends once `stop` triggers).
pub struct AdminServer {
    pub addr: SocketAddr,
    pub task: JoinHandle<()>,
}

/// The admin routes, for embedding or testing without a socket.
pub fn router(metrics: Metrics, readiness: Readiness) -> Router {
    Router::new()
        .route("/metrics", get(metrics_text))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(AdminState { metrics, readiness })
}

/// Longest life of one connection, however busy: a client that reads its answers slowly cannot hold a slot
/// for longer (Prometheus simply reconnects).
const MAX_CONNECTION_LIFE: Duration = Duration::from_secs(60);

/// Binds `settings.bind` (port 0 picks a free port) and serves until `stop` triggers. Returns the bound
/// address.
///
/// At most `settings.max_connections` connections are served at once: the accept loop waits for a free
/// slot before accepting, so further clients wait in the kernel's accept queue and cost the worker no file
/// descriptor. A connection without a complete request header for `settings.idle_timeout` (idle between
/// requests included) is closed, and none lives longer than [`MAX_CONNECTION_LIFE`].
pub async fn serve(
    settings: &AdminSettings,
    metrics: Metrics,
    readiness: Readiness,
    stop: Shutdown,
) -> std::io::Result<AdminServer> {
    let listener = TcpListener::bind(settings.bind).await?;
    let addr = listener.local_addr()?;
    let app = router(metrics, readiness);
    let slots = Arc::new(Semaphore::new(settings.max_connections));
    let idle_timeout = settings.idle_timeout;
    let task = tokio::spawn(async move {
        loop {
            let slot = tokio::select! {
                slot = slots.clone().acquire_owned() => slot,
                _ = stop.wait() => break,
            };
            let Ok(slot) = slot else { break };
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                _ = stop.wait() => break,
            };
            match accepted {
                Ok((stream, _)) => {
                    let connection = connection(stream, app.clone(), idle_timeout);
                    let stop = stop.clone();
                    tokio::spawn(async move {
                        tokio::select! {
                            _ = tokio::time::timeout(MAX_CONNECTION_LIFE, connection) => {}
                            _ = stop.wait() => {}
                        }
                        drop(slot);
                    });
                }
                Err(err) => {
                    // Out of descriptors or a connection reset before it was accepted: pause briefly
                    // instead of spinning.
                    tracing::warn!(%err, "admin server: accept failed");
                    drop(slot);
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                        _ = stop.wait() => break,
                    }
                }
            }
        }
    });
    tracing::info!(%addr, "admin server listening (/metrics, /healthz, /readyz)");
    Ok(AdminServer { addr, task })
}

/// One HTTP/1 connection, closed when no complete request header arrives within `idle_timeout`.
async fn connection(stream: TcpStream, app: Router, idle_timeout: Duration) {
    let _ = stream.set_nodelay(true);
    let service = TowerToHyperService::new(app);
    let served = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(idle_timeout)
        .serve_connection(TokioIo::new(stream), service)
        .await;
    if let Err(err) = served {
        tracing::debug!(%err, "admin connection ended");
    }
}

async fn metrics_text(State(state): State<AdminState>) -> Response {
    state.metrics.set_ready(state.readiness.check().is_ok());
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.render(),
    )
        .into_response()
}

async fn healthz() -> &'static str {
    "ok\n"
}

/// The verdict on the first line, then one `session <device>: <state> (<reason>)` line per native session.
async fn readyz(State(state): State<AdminState>) -> Response {
    let (status, mut body) = match state.readiness.check() {
        Ok(()) => (StatusCode::OK, "ready\n".to_string()),
        Err(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {reason}\n"),
        ),
    };
    if let Some(node) = state.readiness.node() {
        body.push_str(&format!("broker {node}\n"));
    }
    for session in state.readiness.sessions() {
        body.push_str(&format!(
            "session {}: {}",
            session.device.as_str(),
            session.state
        ));
        if let Some(reason) = &session.reason {
            body.push_str(&format!(" ({reason})"));
        }
        body.push('\n');
    }
    (status, body).into_response()
}
