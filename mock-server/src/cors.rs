//! GOWA's CORS middleware (src/cmd/rest.go `newCORSMiddleware`, Fiber v3.4
//! `middleware/cors/cors.go`), the first middleware, before Basic auth. GOWA allows every
//! origin unless `APP_CORS_ALLOWED_ORIGINS` is set (the mock models the default only):
//!
//! * no `Origin` header → untouched;
//! * `OPTIONS` with `Origin` and `Access-Control-Request-Method` (a preflight) → 204 at once,
//!   no auth: `Access-Control-Allow-Origin: *`, the allowed methods and headers, and
//!   `Vary: Access-Control-Request-Method, Access-Control-Request-Headers, Origin`;
//! * `OPTIONS` with `Origin` only → `Vary: Origin`, then the rest of the chain;
//! * any other request with `Origin` → `Access-Control-Allow-Origin: *` on the answer.

use axum::extract::Request;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

const ALLOW_METHODS: &str = "GET, POST, HEAD, PUT, PATCH, DELETE";
const ALLOW_HEADERS: &str = "Origin, Content-Type, Accept, Authorization, X-Device-Id";
const PREFLIGHT_VARY: &str =
    "Access-Control-Request-Method, Access-Control-Request-Headers, Origin";

fn present(req: &Request, name: header::HeaderName) -> bool {
    req.headers().get(name).is_some_and(|v| !v.is_empty())
}

fn preflight() -> Response {
    let mut r = StatusCode::NO_CONTENT.into_response();
    let h = r.headers_mut();
    h.insert(header::VARY, HeaderValue::from_static(PREFLIGHT_VARY));
    h.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static(ALLOW_METHODS),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static(ALLOW_HEADERS),
    );
    r
}

/// The middleware.
pub async fn cors(req: Request, next: Next) -> Response {
    if !present(&req, header::ORIGIN) {
        return next.run(req).await;
    }
    if req.method() == Method::OPTIONS {
        if present(&req, header::ACCESS_CONTROL_REQUEST_METHOD) {
            return preflight();
        }
        let mut resp = next.run(req).await;
        // Fiber appends `Vary: Origin` first; Basic auth's 401 later replaces the header.
        if !resp.headers().contains_key(header::VARY) {
            resp.headers_mut()
                .insert(header::VARY, HeaderValue::from_static("Origin"));
        }
        return resp;
    }
    let mut resp = next.run(req).await;
    resp.headers_mut().insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    resp
}
