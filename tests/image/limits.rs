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

/// A JPEG's frame header and scans, without pixels: what the decode budget judges.
fn jpeg_headers(width: u16, height: u16, progressive: bool, sampling: u8, scans: usize) -> Vec<u8> {
    let mut data = vec![0xFF, 0xD8];
    data.extend_from_slice(&[0xFF, if progressive { 0xC2 } else { 0xC0 }, 0, 17, 8]);
    data.extend_from_slice(&height.to_be_bytes());
    data.extend_from_slice(&width.to_be_bytes());
    data.extend_from_slice(&[3, 1, sampling, 0, 2, 0x11, 1, 3, 0x11, 1]);
    for _ in 0..scans {
        data.extend_from_slice(&[0xFF, 0xDA, 0, 8, 1, 1, 0, 0, 63, 0, 0x12, 0x34]);
    }
    data.extend_from_slice(&[0xFF, 0xD9]);
    data
}

#[test]
fn progressive_jpegs_are_judged_by_their_coefficients_and_scans() {
    // 7000×7000 progressive: about 150 MiB of coefficients at 4:2:0, 290 MiB at 4:4:4, though its pixel
    // count is within image.max_pixels.
    for sampling in [0x22, 0x11] {
        let message = too_large(normalize_bytes(
            &jpeg_headers(7000, 7000, true, sampling, 1),
            &settings(),
        ));
        assert!(message.contains("image.decode_memory_bytes"), "{message}");
    }
    // The same size, baseline, is decoded at 1/8 scale and fits: refused only later, as pixel-less.
    let baseline = normalize_bytes(&jpeg_headers(7000, 7000, false, 0x22, 1), &settings());
    assert!(
        !matches!(
            &baseline,
            Err(avatar_worker::image::ImageError::TooLarge(_))
        ),
        "{:?}",
        baseline.map(|p| p.width)
    );
    let message = too_large(normalize_bytes(
        &jpeg_headers(1000, 1000, true, 0x22, 101),
        &settings(),
    ));
    assert!(message.contains("100 scans"), "{message}");
}

#[tokio::test]
async fn a_decode_past_its_deadline_is_answered_too_large() {
    use avatar_worker::image::{ImageSource, prepare};
    use base64::Engine;
    let data = encode(
        &DynamicImage::ImageRgb8(gradient(1500, 1500)),
        ImageFormat::Png,
    );
    let source = ImageSource::Base64(base64::engine::general_purpose::STANDARD.encode(&data));
    let hurried = ImageSettings {
        decode_timeout: Duration::from_millis(1),
        max_bytes: 64 * 1024 * 1024,
        ..settings()
    };
    let message = too_large(prepare(&source, true, &hurried).await);
    assert!(message.contains("image.decode_timeout_ms"), "{message}");
    // Unoptimised test builds decode slowly: the relaxed deadline leaves room for that.
    let relaxed = ImageSettings {
        max_bytes: 64 * 1024 * 1024,
        decode_timeout: Duration::from_secs(120),
        ..settings()
    };
    let prepared = prepare(&source, true, &relaxed).await;
    assert!(prepared.is_ok(), "{:?}", prepared.map(|p| p.width));
}
