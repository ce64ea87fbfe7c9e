//! Every accepted format decodes and comes out as the same square JPEG; anything else is refused by name.

use avatar_worker::image::{ImageSource, normalize_bytes, prepare};
use base64::Engine;
use image::{DynamicImage, ImageFormat};

use crate::helpers::*;

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
