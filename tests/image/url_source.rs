//! `image.url` downloads through the address guard, the size cap, the deadline and checked redirects.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use avatar_worker::image::{ImageError, ImageSettings, ImageSource, PreparedImage, prepare};
use axum::Router;
use axum::body::Body;
use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::helpers::*;

struct Server {
    addr: SocketAddr,
    photo: Vec<u8>,
}

impl Server {
    fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    fn settings(&self) -> ImageSettings {
        ImageSettings {
            allow_hosts: vec![self.addr.to_string()],
            ..settings()
        }
    }
}

async fn serve() -> Server {
    let photo = jpeg(&gradient(800, 600), 90);
    let body = photo.clone();
    let big = vec![0u8; 2 * 1024 * 1024];
    let app = Router::new()
        .route(
            "/photo",
            get(move || {
                let body = body.clone();
                // The declared type is wrong on purpose: the magic bytes decide.
                async move { ([(header::CONTENT_TYPE, "text/html")], body) }
            }),
        )
        .route(
            "/redirect/{n}",
            get(|Path(n): Path<u32>| async move {
                let to = if n == 0 {
                    "/photo".to_string()
                } else {
                    format!("/redirect/{}", n - 1)
                };
                (StatusCode::FOUND, [(header::LOCATION, to)])
            }),
        )
        .route(
            "/to-metadata",
            get(|| async {
                (
                    StatusCode::MOVED_PERMANENTLY,
                    [(header::LOCATION, "http://169.254.169.254/latest/meta-data/")],
                )
            }),
        )
        .route(
            "/to-file",
            get(|| async {
                (
                    StatusCode::FOUND,
                    [(header::LOCATION, "file:///etc/passwd")],
                )
            }),
        )
        .route(
            "/big",
            get(move || {
                let big = big.clone();
                async move { big }
            }),
        )
        .route(
            "/big-stream",
            get(|| async {
                let chunks = (0..64).map(|_| Ok::<_, std::io::Error>(vec![0u8; 64 * 1024]));
                Response::new(Body::from_stream(futures_util::stream::iter(chunks)))
            }),
        )
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(10)).await;
                "late"
            }),
        )
        .route(
            "/missing",
            get(|| async { StatusCode::NOT_FOUND.into_response() }),
        )
        .route(
            "/unavailable",
            get(|| async { StatusCode::SERVICE_UNAVAILABLE.into_response() }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Server { addr, photo }
}

fn forbidden(result: Result<PreparedImage, ImageError>) -> String {
    match result {
        Err(ImageError::UrlForbidden(m)) => m,
        other => panic!("expected UrlForbidden, got {:?}", other.map(|p| p.width)),
    }
}

fn fetch_failed(result: Result<PreparedImage, ImageError>) -> (String, bool) {
    match result {
        Err(ImageError::Fetch { message, retryable }) => (message, retryable),
        other => panic!("expected Fetch, got {:?}", other.map(|p| p.width)),
    }
}

#[tokio::test]
async fn url_on_the_allow_list_is_fetched_and_sniffed() {
    let server = serve().await;
    let source = ImageSource::Url(server.url("/photo"));
    let prepared = prepare(&source, true, &server.settings())
        .await
        .expect("fetch");
    assert_eq!((prepared.width, prepared.height), (600, 600));
    let original = prepare(&source, false, &server.settings())
        .await
        .expect("fetch");
    assert_eq!(original.bytes.as_ref(), server.photo.as_slice());
    assert_eq!(original.content_type, "image/jpeg");
}

#[tokio::test]
async fn private_addresses_are_refused_without_the_allow_list() {
    let server = serve().await;
    let source = ImageSource::Url(server.url("/photo"));
    let message = forbidden(prepare(&source, true, &settings()).await);
    assert!(message.contains("loopback"), "{message}");

    let localhost = ImageSource::Url(format!("http://localhost:{}/photo", server.addr.port()));
    assert!(forbidden(prepare(&localhost, true, &settings()).await).contains("localhost"));

    for url in [
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.1/a.jpg",
        "http://[::1]/a.jpg",
        "http://[::ffff:127.0.0.1]/a.jpg",
        "http://[fd00::1]/a.jpg",
        "http://0.0.0.0/a.jpg",
    ] {
        let source = ImageSource::Url(url.into());
        forbidden(prepare(&source, true, &settings()).await);
    }
}

#[tokio::test]
async fn only_http_and_https_are_fetched() {
    for url in [
        "file:///etc/passwd",
        "ftp://example.com/a.jpg",
        "gopher://x/",
        "not a url",
    ] {
        let message = forbidden(prepare(&ImageSource::Url(url.into()), true, &settings()).await);
        assert!(
            message.contains("http") || message.contains("URL"),
            "{url}: {message}"
        );
    }
}

#[tokio::test]
async fn redirects_are_checked_and_limited() {
    let server = serve().await;
    let ok = prepare(
        &ImageSource::Url(server.url("/redirect/2")),
        true,
        &server.settings(),
    )
    .await;
    assert_eq!(ok.expect("three redirects are allowed").width, 600);

    let (message, retryable) = fetch_failed(
        prepare(
            &ImageSource::Url(server.url("/redirect/3")),
            true,
            &server.settings(),
        )
        .await,
    );
    assert!(
        message.contains("too many redirects") && !retryable,
        "{message}"
    );

    let message = forbidden(
        prepare(
            &ImageSource::Url(server.url("/to-metadata")),
            true,
            &server.settings(),
        )
        .await,
    );
    assert!(message.contains("169.254.169.254"), "{message}");
    forbidden(
        prepare(
            &ImageSource::Url(server.url("/to-file")),
            true,
            &server.settings(),
        )
        .await,
    );
}

#[tokio::test]
async fn size_limit_is_enforced_while_downloading() {
    let server = serve().await;
    let small = ImageSettings {
        max_bytes: 1024 * 1024,
        ..server.settings()
    };
    for path in ["/big", "/big-stream"] {
        let message = too_large(prepare(&ImageSource::Url(server.url(path)), true, &small).await);
        assert!(message.contains("1048576"), "{path}: {message}");
    }
}

#[tokio::test]
async fn slow_servers_time_out_and_statuses_are_classified() {
    let server = serve().await;
    let quick = ImageSettings {
        timeout: Duration::from_millis(300),
        ..server.settings()
    };
    let started = Instant::now();
    let (message, retryable) =
        fetch_failed(prepare(&ImageSource::Url(server.url("/slow")), true, &quick).await);
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(retryable && message.contains("300 ms"), "{message}");

    let (message, retryable) = fetch_failed(
        prepare(
            &ImageSource::Url(server.url("/missing")),
            true,
            &server.settings(),
        )
        .await,
    );
    assert!(!retryable && message.contains("404"), "{message}");
    let (message, retryable) = fetch_failed(
        prepare(
            &ImageSource::Url(server.url("/unavailable")),
            true,
            &server.settings(),
        )
        .await,
    );
    assert!(retryable && message.contains("503"), "{message}");
}

#[tokio::test]
async fn failures_show_no_query_string() {
    let refusing = test_support::ports::RefusingPort::new();
    let addr = refusing.addr();
    let allowed = ImageSettings {
        allow_hosts: vec![addr.to_string()],
        ..settings()
    };
    let url = format!("http://{addr}/bucket/a.jpg?X-Amz-Signature=deadbeef&X-Amz-Credential=AKIA1");
    let (message, retryable) = fetch_failed(prepare(&ImageSource::Url(url), true, &allowed).await);
    assert!(retryable, "{message}");
    assert!(message.contains("/bucket/a.jpg"), "{message}");
    for secret in ["deadbeef", "AKIA1", "X-Amz"] {
        assert!(!message.contains(secret), "{secret}: {message}");
    }
}
