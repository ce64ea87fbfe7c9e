//! The image pipeline through its public API: formats, orientation, transparency, limits,
//! truncation, scaling (not cropping) and guarded URL fetching against a local server.

use std::io::Cursor;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use avatar_worker::image::{
    ImageError, ImageSettings, ImageSource, PreparedImage, normalize_bytes, prepare,
};
use axum::Router;
use axum::body::Body;
use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine;
use image::{DynamicImage, ImageFormat, Rgb, RgbImage, Rgba, RgbaImage};

#[path = "support/pictures.rs"]
mod pictures;
use pictures::{banded_photo, gateway_crop, mean_abs_diff, png_chunk, scaled_reference};

// ---------------------------------------------------------------- helpers

fn settings() -> ImageSettings {
    ImageSettings::default()
}

fn encode(img: &DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, format).expect("encode test image");
    out.into_inner()
}

fn jpeg(img: &RgbImage, quality: u8) -> Vec<u8> {
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, quality)
        .encode_image(img)
        .expect("encode jpeg");
    out
}

fn decode_output(prepared: &PreparedImage) -> RgbImage {
    assert_eq!(prepared.content_type, "image/jpeg");
    assert_eq!(&prepared.bytes[..3], &[0xFF, 0xD8, 0xFF]);
    let img = image::load_from_memory_with_format(&prepared.bytes, ImageFormat::Jpeg)
        .expect("output decodes")
        .to_rgb8();
    assert_eq!(
        (img.width(), img.height()),
        (prepared.width, prepared.height)
    );
    img
}

fn close(a: Rgb<u8>, b: [u8; 3], tolerance: i32) -> bool {
    a.0.iter()
        .zip(b.iter())
        .all(|(&x, &y)| (i32::from(x) - i32::from(y)).abs() <= tolerance)
}

fn invalid(result: Result<PreparedImage, ImageError>) -> String {
    match result {
        Err(ImageError::Invalid(m)) => m,
        other => panic!(
            "expected Invalid, got {:?}",
            other.map(|p| (p.width, p.height))
        ),
    }
}

fn too_large(result: Result<PreparedImage, ImageError>) -> String {
    match result {
        Err(ImageError::TooLarge(m)) => m,
        other => panic!(
            "expected TooLarge, got {:?}",
            other.map(|p| (p.width, p.height))
        ),
    }
}

/// A smooth, non-symmetric test picture.
fn gradient(width: u32, height: u32) -> RgbImage {
    RgbImage::from_fn(width, height, |x, y| {
        Rgb([
            (x * 255 / width) as u8,
            (y * 255 / height) as u8,
            ((x + y) * 127 / (width + height)) as u8,
        ])
    })
}

fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

// ---------------------------------------------------------------- formats

#[test]
fn each_format_becomes_a_square_jpeg() {
    let picture = DynamicImage::ImageRgb8(gradient(1000, 800));
    let inputs = [
        ("jpeg", jpeg(&picture.to_rgb8(), 90)),
        ("png", encode(&picture, ImageFormat::Png)),
        ("webp", encode(&picture, ImageFormat::WebP)),
    ];
    for (name, data) in inputs {
        let prepared =
            normalize_bytes(&data, &settings()).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!((prepared.width, prepared.height), (640, 640), "{name}");
        assert_eq!(prepared.sha256, sha256_hex(&prepared.bytes));
        let out = decode_output(&prepared);
        // Colours survive: top-left of the centre square is (100/1000 red, 0 green).
        assert!(
            close(*out.get_pixel(2, 2), [25, 0, 12], 12),
            "{name}: {:?}",
            out.get_pixel(2, 2)
        );
    }
}

#[test]
fn small_images_are_not_upscaled() {
    let data = encode(
        &DynamicImage::ImageRgb8(gradient(300, 500)),
        ImageFormat::Png,
    );
    let prepared = normalize_bytes(&data, &settings()).expect("normalize");
    assert_eq!((prepared.width, prepared.height), (300, 300));
}

#[tokio::test]
async fn without_normalize_the_original_is_uploaded() {
    let data = encode(
        &DynamicImage::ImageRgb8(gradient(400, 300)),
        ImageFormat::Png,
    );
    let b64 = base64::engine::general_purpose::STANDARD.encode(&data);
    let prepared = prepare(&ImageSource::Base64(b64), false, &settings())
        .await
        .expect("prepare");
    assert_eq!(prepared.bytes.as_ref(), data.as_slice());
    assert_eq!(prepared.content_type, "image/png");
    assert_eq!((prepared.width, prepared.height), (400, 300));
    assert_eq!(prepared.sha256, sha256_hex(&data));
}

#[tokio::test]
async fn base64_source_is_normalized_and_data_urls_accepted() {
    let data = jpeg(&gradient(700, 700), 90);
    let b64 = base64::engine::general_purpose::STANDARD.encode(&data);
    for text in [b64.clone(), format!("data:image/jpeg;base64,{b64}")] {
        let prepared = prepare(&ImageSource::Base64(text), true, &settings())
            .await
            .expect("prepare");
        assert_eq!((prepared.width, prepared.height), (640, 640));
    }
    let err = prepare(
        &ImageSource::Base64("not base64 !!".into()),
        true,
        &settings(),
    )
    .await;
    assert!(invalid(err).contains("base64"));
}

#[test]
fn other_formats_are_named_in_the_error() {
    let picture = DynamicImage::ImageRgb8(gradient(300, 300));
    let gif = encode(&picture, ImageFormat::Gif);
    let message = invalid(normalize_bytes(&gif, &settings()));
    assert_eq!(
        message,
        "GIF images are not accepted: send JPEG, PNG or WebP"
    );
    let bmp = encode(&picture, ImageFormat::Bmp);
    assert!(invalid(normalize_bytes(&bmp, &settings())).starts_with("BMP"));
    let tiff = encode(&picture, ImageFormat::Tiff);
    assert!(invalid(normalize_bytes(&tiff, &settings())).starts_with("TIFF"));
    let svg = br#"<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"/>"#;
    assert!(invalid(normalize_bytes(svg, &settings())).starts_with("SVG"));
    let heic = b"\0\0\0\x18ftypheic\0\0\0\0mif1heic";
    assert!(invalid(normalize_bytes(heic, &settings())).starts_with("HEIC"));
    assert!(invalid(normalize_bytes(b"hello", &settings())).contains("text"));
}

// ---------------------------------------------------------------- orientation

/// Upright picture: red top-left, green top-right, blue bottom-left, yellow bottom-right.
const QUADRANTS: [[u8; 3]; 4] = [[220, 30, 30], [30, 200, 30], [30, 30, 220], [230, 220, 30]];

fn quadrant_picture(width: u32, height: u32) -> RgbImage {
    RgbImage::from_fn(width, height, |x, y| {
        let q = usize::from(x >= width / 2) + 2 * usize::from(y >= height / 2);
        Rgb(QUADRANTS[q])
    })
}

/// A JPEG APP1 segment holding only an Orientation tag, written by hand (big-endian TIFF).
fn exif_app1(orientation: u16) -> Vec<u8> {
    let mut tiff = Vec::new();
    tiff.extend_from_slice(b"MM\0\x2a");
    tiff.extend_from_slice(&8u32.to_be_bytes());
    tiff.extend_from_slice(&1u16.to_be_bytes()); // one entry
    tiff.extend_from_slice(&0x0112u16.to_be_bytes()); // Orientation
    tiff.extend_from_slice(&3u16.to_be_bytes()); // SHORT
    tiff.extend_from_slice(&1u32.to_be_bytes()); // count
    tiff.extend_from_slice(&orientation.to_be_bytes());
    tiff.extend_from_slice(&[0, 0]);
    tiff.extend_from_slice(&0u32.to_be_bytes()); // no next IFD
    let mut payload = b"Exif\0\0".to_vec();
    payload.extend_from_slice(&tiff);
    let mut segment = vec![0xFF, 0xE1];
    segment.extend_from_slice(&((payload.len() + 2) as u16).to_be_bytes());
    segment.extend_from_slice(&payload);
    segment
}

#[test]
fn exif_orientations_1_to_8_end_upright() {
    use image::metadata::Orientation;
    let upright = DynamicImage::ImageRgb8(quadrant_picture(320, 256));
    for tag in 1..=8u8 {
        // How the camera stored it: the inverse of what the tag says to do on display.
        let inverse = match tag {
            6 => 8,
            8 => 6,
            t => t,
        };
        let mut stored = upright.clone();
        stored.apply_orientation(Orientation::from_exif(inverse).expect("valid tag"));
        let plain = jpeg(&stored.to_rgb8(), 95);
        let mut data = plain[..2].to_vec();
        data.extend_from_slice(&exif_app1(u16::from(tag)));
        data.extend_from_slice(&plain[2..]);

        let prepared = normalize_bytes(&data, &settings()).expect("normalize");
        assert_eq!((prepared.width, prepared.height), (256, 256), "tag {tag}");
        let out = decode_output(&prepared);
        for (q, (x, y)) in [(64, 64), (192, 64), (64, 192), (192, 192)]
            .into_iter()
            .enumerate()
        {
            let px = *out.get_pixel(x, y);
            assert!(
                close(px, QUADRANTS[q], 24),
                "tag {tag}: quadrant {q} is {px:?}, expected {:?}",
                QUADRANTS[q]
            );
        }
    }
}

// ---------------------------------------------------------------- transparency

#[test]
fn transparent_png_comes_out_on_white() {
    let img = RgbaImage::from_fn(300, 300, |x, _| {
        if x < 150 {
            Rgba([255, 0, 0, 0])
        } else {
            Rgba([0, 0, 255, 255])
        }
    });
    for format in [ImageFormat::Png, ImageFormat::WebP] {
        let data = encode(&DynamicImage::ImageRgba8(img.clone()), format);
        let out = decode_output(&normalize_bytes(&data, &settings()).expect("normalize"));
        assert!(
            close(*out.get_pixel(40, 150), [255, 255, 255], 6),
            "{format:?}"
        );
        assert!(
            close(*out.get_pixel(260, 150), [0, 0, 255], 12),
            "{format:?}"
        );
    }
}

// ---------------------------------------------------------------- limits

#[test]
fn tiny_images_are_refused() {
    let data = encode(
        &DynamicImage::ImageRgb8(gradient(500, 100)),
        ImageFormat::Png,
    );
    let message = invalid(normalize_bytes(&data, &settings()));
    assert!(
        message.contains("500×100") && message.contains("192"),
        "{message}"
    );
    let relaxed = ImageSettings {
        min_side: 16,
        ..settings()
    };
    let prepared = normalize_bytes(&data, &relaxed).expect("allowed when configured");
    assert_eq!((prepared.width, prepared.height), (100, 100));
}

#[test]
fn huge_headers_are_refused_before_decoding() {
    // PNG claiming 100000×100000 RGBA: 40 GB if anything allocated it.
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&100_000u32.to_be_bytes());
    ihdr.extend_from_slice(&100_000u32.to_be_bytes());
    ihdr.extend_from_slice(&[8, 6, 0, 0, 0]);
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    png.extend(png_chunk(b"IHDR", &ihdr));
    png.extend(png_chunk(
        b"IDAT",
        &[0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01],
    ));
    png.extend(png_chunk(b"IEND", &[]));
    let started = Instant::now();
    let message = too_large(normalize_bytes(&png, &settings()));
    assert!(started.elapsed() < Duration::from_secs(1));
    assert!(message.contains("100000×100000"), "{message}");

    // JPEG whose frame header is patched to 60000×60000.
    let mut data = jpeg(&gradient(256, 256), 80);
    let sof = data
        .windows(2)
        .position(|w| w == [0xFF, 0xC0])
        .expect("baseline SOF0");
    data[sof + 5..sof + 9].copy_from_slice(&[0xEA, 0x60, 0xEA, 0x60]);
    let started = Instant::now();
    let message = too_large(normalize_bytes(&data, &settings()));
    assert!(started.elapsed() < Duration::from_secs(1));
    assert!(message.contains("60000×60000"), "{message}");

    // Byte limit.
    let small = ImageSettings {
        max_bytes: 1000,
        ..settings()
    };
    let data = encode(
        &DynamicImage::ImageRgb8(gradient(300, 300)),
        ImageFormat::Png,
    );
    assert!(too_large(normalize_bytes(&data, &small)).contains("max_bytes"));
}

#[test]
fn truncated_files_are_refused() {
    let picture = DynamicImage::ImageRgb8(gradient(400, 400));
    let inputs = [
        ("jpeg", jpeg(&picture.to_rgb8(), 90)),
        ("png", encode(&picture, ImageFormat::Png)),
        ("webp", encode(&picture, ImageFormat::WebP)),
    ];
    for (name, data) in inputs {
        for cut in [data.len() * 2 / 3, data.len() - 4] {
            let message = invalid(normalize_bytes(&data[..cut], &settings()));
            assert!(
                message.contains("truncated") || message.contains("corrupt"),
                "{name}: {message}"
            );
        }
    }
}

// ---------------------------------------------------------------- scaling, not cropping

#[test]
fn large_photo_is_scaled_whole_not_centre_cropped() {
    let photo = banded_photo();
    let reference = scaled_reference(&photo);
    let gateway_crop = gateway_crop(&photo);
    for (name, data) in [
        ("jpeg", jpeg(&photo, 90)),
        (
            "png",
            encode(&DynamicImage::ImageRgb8(photo.clone()), ImageFormat::Png),
        ),
    ] {
        let large = ImageSettings {
            max_bytes: 64 * 1024 * 1024,
            ..settings()
        };
        let out = decode_output(&normalize_bytes(&data, &large).expect("normalize"));
        assert_eq!((out.width(), out.height()), (640, 640));
        let to_reference = mean_abs_diff(&out, &reference);
        let to_crop = mean_abs_diff(&out, &gateway_crop);
        assert!(
            to_reference < 4.0,
            "{name}: differs from the scaled reference by {to_reference}"
        );
        assert!(
            to_crop > 40.0,
            "{name}: looks like the centre crop ({to_crop})"
        );
    }
}

// ---------------------------------------------------------------- URL sources

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
        timeout_ms: 300,
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
