//! Test pictures shared by the image pipeline tests and the end-to-end tests.

use image::{Rgb, RgbImage};

/// 4000×3000 with 400 px colour bands across and a dark-to-light ramp down: the centre
/// 640×640 pixels (the gateway's crop) shows under two bands, the whole square shows 7.5.
pub fn banded_photo() -> RgbImage {
    const BANDS: [[u8; 3]; 10] = [
        [200, 40, 40],
        [40, 200, 40],
        [40, 40, 200],
        [200, 200, 40],
        [40, 200, 200],
        [200, 40, 200],
        [240, 240, 240],
        [20, 20, 20],
        [240, 140, 20],
        [120, 60, 180],
    ];
    RgbImage::from_fn(4000, 3000, |x, y| {
        let band = BANDS[(x / 400) as usize];
        let ramp = 0.6 + 0.4 * f64::from(y) / 3000.0;
        Rgb(band.map(|c| (f64::from(c) * ramp) as u8))
    })
}

pub fn mean_abs_diff(a: &RgbImage, b: &RgbImage) -> f64 {
    let total: u64 = a
        .as_raw()
        .iter()
        .zip(b.as_raw())
        .map(|(&x, &y)| u64::from(x.abs_diff(y)))
        .sum();
    total as f64 / a.as_raw().len() as f64
}

/// The 640×640 the pipeline should produce from [`banded_photo`]: the centred square, scaled whole.
pub fn scaled_reference(photo: &RgbImage) -> RgbImage {
    let side = photo.width().min(photo.height());
    let (x, y) = ((photo.width() - side) / 2, (photo.height() - side) / 2);
    image::imageops::resize(
        &image::imageops::crop_imm(photo, x, y, side, side).to_image(),
        640,
        640,
        image::imageops::FilterType::Lanczos3,
    )
}

/// What the gateway itself would keep: the central 640×640 pixels.
pub fn gateway_crop(photo: &RgbImage) -> RgbImage {
    let (x, y) = ((photo.width() - 640) / 2, (photo.height() - 640) / 2);
    image::imageops::crop_imm(photo, x, y, 640, 640).to_image()
}

/// A PNG whose header claims `width × height` RGB pixels, with no pixel data behind it.
pub fn png_claiming(width: u32, height: u32) -> Vec<u8> {
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&width.to_be_bytes());
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    png.extend_from_slice(&png_chunk(b"IHDR", &ihdr));
    png
}

/// CRC-32 as PNG chunks use it.
pub fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// One PNG chunk: length, kind, data, CRC.
pub fn png_chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
    let mut chunk = (data.len() as u32).to_be_bytes().to_vec();
    let mut body = kind.to_vec();
    body.extend_from_slice(data);
    chunk.extend_from_slice(&body);
    chunk.extend_from_slice(&crc32(&body).to_be_bytes());
    chunk
}
