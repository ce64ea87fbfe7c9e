//! Encoders, decoders and checks the sections share.

use std::io::Cursor;

use avatar_worker::image::{ImageError, ImageSettings, PreparedImage};
use image::{DynamicImage, ImageFormat, Rgb, RgbImage};

pub fn settings() -> ImageSettings {
    ImageSettings::default()
}

pub fn encode(img: &DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, format).expect("encode test image");
    out.into_inner()
}

pub fn jpeg(img: &RgbImage, quality: u8) -> Vec<u8> {
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, quality)
        .encode_image(img)
        .expect("encode jpeg");
    out
}

pub fn decode_output(prepared: &PreparedImage) -> RgbImage {
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

pub fn close(a: Rgb<u8>, b: [u8; 3], tolerance: i32) -> bool {
    a.0.iter()
        .zip(b.iter())
        .all(|(&x, &y)| (i32::from(x) - i32::from(y)).abs() <= tolerance)
}

pub fn invalid(result: Result<PreparedImage, ImageError>) -> String {
    match result {
        Err(ImageError::Invalid(m)) => m,
        other => panic!(
            "expected Invalid, got {:?}",
            other.map(|p| (p.width, p.height))
        ),
    }
}

pub fn too_large(result: Result<PreparedImage, ImageError>) -> String {
    match result {
        Err(ImageError::TooLarge(m)) => m,
        other => panic!(
            "expected TooLarge, got {:?}",
            other.map(|p| (p.width, p.height))
        ),
    }
}

/// A smooth, non-symmetric test picture.
pub fn gradient(width: u32, height: u32) -> RgbImage {
    RgbImage::from_fn(width, height, |x, y| {
        Rgb([
            (x * 255 / width) as u8,
            (y * 255 / height) as u8,
            ((x + y) * 127 / (width + height)) as u8,
        ])
    })
}

pub fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
