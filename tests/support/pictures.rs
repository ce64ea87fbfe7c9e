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
