//! The admin HTTP server: `/metrics` (Prometheus text), `/healthz` (liveness: the process answers) and
//! `/readyz` (readiness: connected to the broker and consuming; native sessions listed below the verdict).
//! Kept apart from any job traffic, on its own port (`admin.bind`), so probes keep answering while the
//! worker is busy.

use std::net::SocketAddr;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use super::{Metrics, Readiness};
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

/// Binds `bind` (port 0 picks a free port) and serves until `stop` triggers. Returns the bound address.
pub async fn serve(
    bind: SocketAddr,
    metrics: Metrics,
    readiness: Readiness,
    stop: Shutdown,
) -> std::io::Result<AdminServer> {
    let listener = TcpListener::bind(bind).await?;
    let addr = listener.local_addr()?;
    let app = router(metrics, readiness);
    let task = tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async move { stop.wait().await })
            .await;
        if let Err(err) = served {
            tracing::error!(%err, "admin server failed");
        }
    });
    tracing::info!(%addr, "admin server listening (/metrics, /healthz, /readyz)");
    Ok(AdminServer { addr, task })
}

async fn metrics_text(State(state): State<AdminState>) -> Response {
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
