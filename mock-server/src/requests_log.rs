//! The request log behind `GET /_mock/requests`, and the middleware that fills it.
//!
//! Every request except those to `/_mock/*` is recorded after it was answered, newest last,
//! failed authentications included. The log is bounded twice: at most [`CAPACITY`] entries and
//! at most [`BYTE_BUDGET`] bytes, each entry counted as [`ENTRY_OVERHEAD`] plus its text; the
//! oldest entries go first. Long texts are cut to a prefix ([`MAX_PATH`], [`MAX_QUERY`],
//! [`MAX_HEADER`]) and the entry says `"truncated": true`, so a flood of large requests,
//! authenticated or not, cannot grow it beyond the budget. The Basic-auth user is recorded only
//! when authentication succeeded; passwords and bodies are never recorded.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use serde::Serialize;

use crate::auth::AuthUser;
use crate::state::AppState;
use crate::util::{prefix, rfc3339_now};

/// Maximum number of entries kept.
pub const CAPACITY: usize = 100_000;
/// Maximum bytes the kept entries may take (as counted by [`Entry::cost`]).
pub const BYTE_BUDGET: usize = 32 * 1024 * 1024;
/// What an entry costs besides its texts (struct, allocations, deque slot).
pub const ENTRY_OVERHEAD: usize = 256;
/// Longest recorded method.
pub const MAX_METHOD: usize = 32;
/// Longest recorded path.
pub const MAX_PATH: usize = 2048;
/// Longest recorded query string.
pub const MAX_QUERY: usize = 4096;
/// Longest recorded `X-Device-Id` header or user name.
pub const MAX_HEADER: usize = 512;

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
    /// Present (and true) when a text was cut to its prefix.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
}

impl Entry {
    /// The bytes this entry is charged against [`BYTE_BUDGET`].
    pub fn cost(&self) -> usize {
        let opt = |s: &Option<String>| s.as_ref().map_or(0, String::len);
        ENTRY_OVERHEAD
            + self.method.len()
            + self.path.len()
            + opt(&self.query)
            + opt(&self.device_id)
            + opt(&self.user)
            + self.time.len()
    }

    /// Cuts every text to its maximum length.
    fn bound(mut self) -> Self {
        let mut cut = |s: &mut String, max: usize| {
            if s.len() > max {
                *s = prefix(s, max).to_string();
                self.truncated = true;
            }
        };
        cut(&mut self.method, MAX_METHOD);
        cut(&mut self.path, MAX_PATH);
        if let Some(q) = self.query.as_mut() {
            cut(q, MAX_QUERY);
        }
        if let Some(d) = self.device_id.as_mut() {
            cut(d, MAX_HEADER);
        }
        if let Some(u) = self.user.as_mut() {
            cut(u, MAX_HEADER);
        }
        self
    }
}

#[derive(Default)]
struct Inner {
    entries: VecDeque<Entry>,
    bytes: usize,
}

/// Bounded in-memory log.
#[derive(Default)]
pub struct RequestLog {
    inner: Mutex<Inner>,
}

impl RequestLog {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records an entry (cut to its bounds), dropping the oldest ones beyond the limits.
    pub fn push(&self, entry: Entry) {
        let entry = entry.bound();
        let cost = entry.cost();
        let mut log = self.lock();
        while !log.entries.is_empty()
            && (log.entries.len() >= CAPACITY || log.bytes + cost > BYTE_BUDGET)
        {
            if let Some(old) = log.entries.pop_front() {
                log.bytes -= old.cost();
            }
        }
        log.bytes += cost;
        log.entries.push_back(entry);
    }

    /// The last `limit` entries (all when `None`), oldest first.
    pub fn snapshot(&self, limit: Option<usize>) -> Vec<Entry> {
        let log = self.lock();
        let skip = limit.map_or(0, |l| log.entries.len().saturating_sub(l));
        log.entries.iter().skip(skip).cloned().collect()
    }

    /// How many entries are kept.
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    /// Whether the log is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bytes the kept entries are charged (at most [`BYTE_BUDGET`]).
    pub fn bytes(&self) -> usize {
        self.lock().bytes
    }

    pub fn clear(&self) {
        let mut log = self.lock();
        log.entries.clear();
        log.bytes = 0;
    }
}

/// Outermost middleware: debug-logs and records every request with the status it got.
pub async fn record(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = prefix(req.method().as_str(), MAX_METHOD + 1).to_string();
    let path = prefix(req.uri().path(), MAX_PATH + 1).to_string();
    let query = req
        .uri()
        .query()
        .map(|q| prefix(q, MAX_QUERY + 1).to_string());
    let device_id = req.headers().get("x-device-id").map(|v| {
        let v = &v.as_bytes()[..v.len().min(MAX_HEADER + 1)];
        String::from_utf8_lossy(v).into_owned()
    });
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
            truncated: false,
        });
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(device_id: String) -> Entry {
        Entry {
            method: "GET".into(),
            path: "/user/avatar".into(),
            query: Some("phone=1".into()),
            device_id: Some(device_id),
            user: None,
            status: 401,
            time: rfc3339_now(),
            duration_ms: 0.1,
            truncated: false,
        }
    }

    #[test]
    fn large_requests_are_cut_and_the_total_is_bounded() {
        let log = RequestLog::default();
        // The security review's flood: 2,000 requests of 360 KB each.
        for _ in 0..2000 {
            log.push(entry("x".repeat(360 * 1024)));
        }
        assert_eq!(log.len(), 2000, "2,000 cut entries fit the budget");
        let kept = log.snapshot(Some(1));
        assert_eq!(
            kept[0].device_id.as_ref().map(String::len),
            Some(MAX_HEADER)
        );
        assert!(kept[0].truncated);
        assert!(log.bytes() <= 2000 * (ENTRY_OVERHEAD + 600));
        // Far more than the budget holds: the oldest go, the total stays under it.
        let big = entry("y".repeat(MAX_HEADER + 1)).bound().cost();
        let fits = BYTE_BUDGET / big;
        for _ in 0..(fits + 5000) {
            log.push(entry("y".repeat(MAX_HEADER + 1)));
        }
        assert!(log.bytes() <= BYTE_BUDGET, "{}", log.bytes());
        assert!(log.len() <= fits + 1, "{} > {fits}", log.len());
        assert_eq!(
            log.snapshot(None).iter().map(Entry::cost).sum::<usize>(),
            log.bytes()
        );
    }

    #[test]
    fn small_entries_are_capped_by_count() {
        let log = RequestLog::default();
        for _ in 0..(CAPACITY + 10) {
            log.push(entry("d".into()));
        }
        assert_eq!(log.len(), CAPACITY);
        assert!(!log.snapshot(Some(1))[0].truncated);
    }
}
