//! EXIF orientation is applied before squaring, so portraits stay upright.

use avatar_worker::image::normalize_bytes;
use image::{DynamicImage, Rgb, RgbImage};

use crate::helpers::*;

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
