//! WebP: the decoder has no scaled or row-by-row mode, so the frame is decoded whole (bounded by
//! the header check) and flattened to RGB.

use std::io::Cursor;

use image::ImageDecoder;
use image::codecs::webp::WebPDecoder;

use super::super::pixels::{Layout, to_rgb};
use super::super::sniff::Format;
use super::{Decoded, Header, centre_square, check_header, corrupt};
use crate::image::{ImageError, ImageSettings};

pub fn decode(data: &[u8], settings: &ImageSettings) -> Result<Decoded, ImageError> {
    let mut decoder = WebPDecoder::new(Cursor::new(data)).map_err(|e| corrupt(Format::WebP, e))?;
    let (width, height) = decoder.dimensions();
    check_header(
        Header {
            format: Format::WebP,
            width,
            height,
        },
        settings,
    )?;
    let orientation = decoder.orientation().map_or(1, |o| o.to_exif());
    let layout = match decoder.color_type() {
        image::ColorType::Rgb8 => Layout::Rgb,
        image::ColorType::Rgba8 => Layout::Rgba,
        other => {
            return Err(corrupt(
                Format::WebP,
                format!("unexpected colour type {other:?}"),
            ));
        }
    };
    let size = usize::try_from(decoder.total_bytes())
        .map_err(|_| corrupt(Format::WebP, "frame too large"))?;
    let mut pixels = vec![0u8; size];
    decoder
        .read_image(&mut pixels)
        .map_err(|e| corrupt(Format::WebP, e))?;
    let rgb = if layout == Layout::Rgb {
        pixels
    } else {
        let mut rgb = vec![0u8; width as usize * height as usize * 3];
        to_rgb(&pixels, layout, &mut rgb);
        rgb
    };
    Ok(Decoded {
        source_width: width,
        source_height: height,
        width,
        height,
        rgb,
        crop: centre_square(width, height),
        orientation,
    })
}
