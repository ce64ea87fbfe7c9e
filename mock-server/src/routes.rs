//! GOWA's routing (src/cmd/rest.go `restServer`) for the routes the mock serves: Fiber v3.4
//! routes case-insensitively and ignores a trailing slash; path parameters stay as sent.
//!
//! Order: `GET /health` (no auth) → Basic auth → the device routes (`/devices…`, no device
//! middleware) → the device middleware, which runs for `/user/*` **and for every request no
//! earlier route handled**, so a wrong method or an unknown path answers 400
//! `DEVICE_ID_REQUIRED` / 404 `DEVICE_NOT_FOUND` before Fiber's 405 (`Allow: GET, HEAD, POST`,
//! methods in Fiber's order) or 404 (text/plain `Not Found`). `HEAD` is served by every `GET`
//! route. The mock's own paths (`/_mock/…`, `/v/…`) skip all of this.

use std::sync::Arc;
use std::time::Instant;

use axum::body::{Body, HttpBody};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use bytes::Bytes;

use crate::avatar_get::get_avatar;
use crate::avatar_post::post_avatar;
use crate::devices_api;
use crate::envelope::text;
use crate::select::select;
use crate::state::AppState;

/// Fiber's global body limit (`WhatsappSettingMaxVideoSize`, not configurable in GOWA).
pub const BODY_LIMIT: usize = 100_000_000;

/// A gateway route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    Health,
    UserAvatar,
    Devices,
    Device(String),
    DeviceStatus(String),
    Unknown,
}

impl Route {
    /// The route of a request path.
    pub fn of(path: &str) -> Route {
        let path = path.trim_end_matches('/');
        let segments: Vec<&str> = path.split('/').skip(1).collect();
        let lower: Vec<String> = segments.iter().map(|s| s.to_ascii_lowercase()).collect();
        let lower: Vec<&str> = lower.iter().map(String::as_str).collect();
        match lower.as_slice() {
            ["health"] => Route::Health,
            ["user", "avatar"] => Route::UserAvatar,
            ["devices"] => Route::Devices,
            ["devices", id] if !id.is_empty() => Route::Device(segments[1].to_string()),
            ["devices", id, "status"] if !id.is_empty() => {
                Route::DeviceStatus(segments[1].to_string())
            }
            _ => Route::Unknown,
        }
    }

    /// The methods of the route, in Fiber's `DefaultMethods` order (the `Allow` header).
    pub fn methods(&self) -> &'static [&'static str] {
        match self {
            Route::Health | Route::DeviceStatus(_) => &["GET", "HEAD"],
            Route::UserAvatar | Route::Devices => &["GET", "HEAD", "POST"],
            Route::Device(_) => &["GET", "HEAD", "DELETE"],
            Route::Unknown => &[],
        }
    }
}

/// The mock's own paths: the control API and the picture CDN.
pub fn mock_own(path: &str) -> bool {
    path.starts_with("/_mock/") || path.starts_with("/v/")
}

/// Whether a request skips Basic auth: `GET`/`HEAD /health` and the CDN.
pub fn is_public(method: &Method, path: &str) -> bool {
    let get = *method == Method::GET || *method == Method::HEAD;
    path.starts_with("/v/") || (get && Route::of(path) == Route::Health)
}

fn unmatched(route: &Route) -> Response {
    let methods = route.methods();
    if methods.is_empty() {
        return text(StatusCode::NOT_FOUND, "Not Found");
    }
    let mut r = text(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed");
    if let Ok(allow) = HeaderValue::from_str(&methods.join(", ")) {
        r.headers_mut().insert(header::ALLOW, allow);
    }
    r
}

async fn read_body(body: Body) -> Result<Bytes, Response> {
    axum::body::to_bytes(body, BODY_LIMIT)
        .await
        .map_err(|_| text(StatusCode::PAYLOAD_TOO_LARGE, "Request Entity Too Large"))
}

async fn dispatch(state: &AppState, req: Request, started: Instant) -> Result<Response, Response> {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path();
    if mock_own(path) {
        return Err(text(StatusCode::NOT_FOUND, "Not Found"));
    }
    let route = Route::of(path);
    let query = parts.uri.query().unwrap_or("");
    let get = parts.method == Method::GET || parts.method == Method::HEAD;
    match &route {
        Route::Health if get => return Ok(text(StatusCode::OK, "OK")),
        Route::Devices if get => return Ok(devices_api::list(state)),
        Route::Devices if parts.method == Method::POST => {
            let body = read_body(body).await?;
            return Ok(devices_api::add(state, &parts.headers, &body));
        }
        Route::Device(id) if get => return Ok(devices_api::get_info(state, id)),
        Route::Device(id) if parts.method == Method::DELETE => {
            return Ok(devices_api::remove(state, id));
        }
        Route::DeviceStatus(id) if get => return Ok(devices_api::get_status(state, id)),
        _ => {}
    }
    let dev = select(state, &parts.headers, query)?;
    match route {
        Route::UserAvatar if get => get_avatar(state, &dev, query).await,
        Route::UserAvatar if parts.method == Method::POST => {
            let body = read_body(body).await?;
            post_avatar(state, &dev, &parts.headers, body, started).await
        }
        other => Err(unmatched(&other)),
    }
}

/// The router's fallback: every gateway request.
pub async fn gateway(State(state): State<Arc<AppState>>, req: Request) -> Response {
    let started = Instant::now();
    let head = req.method() == Method::HEAD;
    let mut resp = dispatch(&state, req, started).await.unwrap_or_else(|r| r);
    if head {
        // As axum does for its own HEAD routes: keep the length, drop the body.
        if let Some(len) = resp.body().size_hint().exact()
            && !resp.headers().contains_key(header::CONTENT_LENGTH)
        {
            resp.headers_mut()
                .insert(header::CONTENT_LENGTH, HeaderValue::from(len));
        }
        *resp.body_mut() = Body::empty();
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_like_fiber() {
        assert_eq!(Route::of("/USER/Avatar/"), Route::UserAvatar);
        assert_eq!(
            Route::of("/devices/My%20Dev"),
            Route::Device("My%20Dev".into())
        );
        assert_eq!(
            Route::of("/Devices/a/STATUS"),
            Route::DeviceStatus("a".into())
        );
        assert_eq!(Route::of("/devices//status"), Route::Unknown);
        assert_eq!(Route::of("/"), Route::Unknown);
        assert!(is_public(&Method::HEAD, "/health/"));
        assert!(!is_public(&Method::POST, "/health"));
    }
}
