//! The request log behind `GET /_mock/requests`, and the middleware that fills it.
//!
//! Every request except those to `/_mock/*` is recorded after it was answered, newest last;
//! only the last [`CAPACITY`] entries are kept. The Basic-auth user is recorded only when
//! authentication succeeded; passwords are never recorded.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use serde::Serialize;

use crate::auth::AuthUser;
use crate::state::AppState;
use crate::util::rfc3339_now;

/// Maximum number of entries kept.
pub const CAPACITY: usize = 100_000;

/// One answered request.
#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    pub method: String,
    pub path: String,
    /// Raw query string, `null` when there was none.
    pub query: Option<String>,
    /// Raw `X-Device-Id` header, `null` when absent.
    pub device_id: Option<String>,
    /// Authenticated Basic-auth user, `null` when auth is off or failed.
    pub user: Option<String>,
    pub status: u16,
    /// When the answer was ready (RFC 3339, UTC).
    pub time: String,
    pub duration_ms: f64,
}

/// Bounded in-memory log.
#[derive(Default)]
pub struct RequestLog {
    entries: Mutex<VecDeque<Entry>>,
}

impl RequestLog {
    pub fn push(&self, entry: Entry) {
        let mut e = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if e.len() >= CAPACITY {
            e.pop_front();
        }
        e.push_back(entry);
    }

    /// The last `limit` entries (all when `None`), oldest first.
    pub fn snapshot(&self, limit: Option<usize>) -> Vec<Entry> {
        let e = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let skip = limit.map_or(0, |l| e.len().saturating_sub(l));
        e.iter().skip(skip).cloned().collect()
    }

    pub fn clear(&self) {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }
}

/// Outermost middleware: debug-logs and records every request with the status it got.
pub async fn record(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().as_str().to_string();
    let path = req.uri().path().to_string();
    let query = req.uri().query().map(str::to_string);
    let device_id = req
        .headers()
        .get("x-device-id")
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let resp = next.run(req).await;
    let status = resp.status().as_u16();
    let duration_ms = (started.elapsed().as_secs_f64() * 1_000_000.0).round() / 1000.0;
    tracing::debug!(%method, %path, query = ?query, device = ?device_id, status, duration_ms, "request");
    if !path.starts_with("/_mock/") {
        state.log.push(Entry {
            method,
            path,
            query,
            device_id,
            user: resp.extensions().get::<AuthUser>().map(|u| u.0.clone()),
            status,
            time: rfc3339_now(),
            duration_ms,
        });
    }
    resp
}
