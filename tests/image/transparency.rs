//! Transparent pixels land on white, not black.

use avatar_worker::image::normalize_bytes;
use image::{DynamicImage, ImageFormat, Rgba, RgbaImage};

use crate::helpers::*;

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
