//! The router, the global body limit, and [`spawn`].

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post, put};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::config::Config;
use crate::envelope::text;
use crate::routes::{self, BODY_LIMIT};
use crate::state::AppState;
use crate::{auth, cdn, control, cors, requests_log};

/// How long [`MockServer::shutdown`] lets requests in flight (e.g. an injected timeout) finish.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// Errors of [`spawn`].
#[derive(Debug, thiserror::Error)]
pub enum MockError {
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("cannot bind {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// A running mock server. Dropping it stops the server too.
pub struct MockServer {
    addr: SocketAddr,
    state: Arc<AppState>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl MockServer {
    /// `http://IP:PORT` of the bound socket (loopback when bound to a wildcard address).
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The bound socket address (loopback when bound to a wildcard address).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Base of the picture URLs (`public_url` or [`Self::base_url`]).
    pub fn public_url(&self) -> &str {
        &self.state.public_base
    }

    /// Stops accepting connections and waits (at most [`SHUTDOWN_GRACE`]) for requests in flight,
    /// then stops the server task.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(mut task) = self.task.take()
            && tokio::time::timeout(SHUTDOWN_GRACE, &mut task)
                .await
                .is_err()
        {
            task.abort();
            let _ = task.await;
        }
    }
}

impl Drop for MockServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// fasthttp refuses a body over the limit before any handler runs (even before auth).
async fn body_limit(req: Request, next: Next) -> Response {
    let too_big = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .is_some_and(|n| n > BODY_LIMIT as u64);
    if too_big {
        return text(StatusCode::PAYLOAD_TOO_LARGE, "Request Entity Too Large");
    }
    next.run(req).await
}

async fn method_not_allowed() -> Response {
    text(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed")
}

/// The mock's own routes: the control API and the picture CDN.
fn mock_routes() -> Router<Arc<AppState>> {
    Router::new()
        .route(&format!("{}{{file}}", cdn::PATH_PREFIX), get(cdn::serve))
        .route("/_mock/reset", post(control::reset))
        .route("/_mock/basic-auth", put(control::put_basic_auth))
        .route("/_mock/devices", get(control::list_devices))
        .route(
            "/_mock/devices/{id}",
            put(control::put_device).delete(control::delete_device),
        )
        .route("/_mock/devices/{id}/avatar", get(control::device_avatar))
        .route(
            "/_mock/contacts/{jid}",
            get(control::get_contact)
                .put(control::put_contact)
                .delete(control::delete_contact),
        )
        .route(
            "/_mock/faults",
            get(control::get_faults).put(control::put_faults),
        )
        .route(
            "/_mock/requests",
            get(control::get_requests).delete(control::clear_requests),
        )
        .method_not_allowed_fallback(method_not_allowed)
}

/// The full router over a state (exposed for embedding; [`spawn`] is the usual entry point).
/// Layers, outermost first: request log, body limit, CORS, Basic auth; every path that is not
/// the mock's own goes to [`routes::gateway`].
pub fn router(state: Arc<AppState>) -> Router {
    mock_routes()
        .fallback(routes::gateway)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            auth::basic_auth,
        ))
        .layer(middleware::from_fn(cors::cors))
        .layer(middleware::from_fn(body_limit))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            requests_log::record,
        ))
        .with_state(state)
}

/// Binds `config.host:config.port` (port 0 = ephemeral) and serves in a background task.
pub async fn spawn(config: Config) -> Result<MockServer, MockError> {
    config.shares.validate().map_err(MockError::Config)?;
    config.faults.validate().map_err(MockError::Config)?;
    for (user, _) in &config.basic_auth {
        if user.contains(':') {
            return Err(MockError::Config(format!(
                "invalid basic auth user {user:?}"
            )));
        }
    }
    let addr = SocketAddr::new(config.host, config.port);
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| MockError::Bind { addr, source })?;
    let mut addr = listener
        .local_addr()
        .map_err(|source| MockError::Bind { addr, source })?;
    let bound = addr;
    // A wildcard bind (0.0.0.0 / ::) is reached through loopback.
    if addr.ip().is_unspecified() {
        let loopback = if addr.is_ipv4() {
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        } else {
            IpAddr::V6(Ipv6Addr::LOCALHOST)
        };
        addr.set_ip(loopback);
    }
    let public_base = config
        .public_url
        .as_deref()
        .map(|u| u.trim_end_matches('/').to_string())
        .unwrap_or_else(|| format!("http://{addr}"));
    let state = Arc::new(AppState::new(&config, public_base));
    let app = router(state.clone());
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let serve = axum::serve(listener, app).with_graceful_shutdown(async move {
            let _ = rx.await;
        });
        if let Err(e) = serve.await {
            tracing::error!(error = %e, "mock server stopped");
        }
    });
    tracing::info!(%bound, url = %format!("http://{addr}"), "mock server listening");
    Ok(MockServer {
        addr,
        state,
        shutdown: Some(tx),
        task: Some(task),
    })
}
