//! Byte, pixel and side limits are checked from the header, before any pixel is decoded.

use std::time::{Duration, Instant};

use avatar_worker::image::{ImageSettings, normalize_bytes};
use image::{DynamicImage, ImageFormat};
use test_support::pictures::png_chunk;

use crate::helpers::*;

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
