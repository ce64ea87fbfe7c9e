//! From decoded pixels to the uploaded JPEG: scale the centre square to the target side with
//! Lanczos3 (SIMD), turn it upright, encode.

use fast_image_resize as fr;
use image::ExtendedColorType;
use image::codecs::jpeg::JpegEncoder;

use super::decode::Decoded;
use super::orient;
use super::{ImageError, ImageSettings};

/// A square opaque RGB picture.
pub struct Square {
    pub side: u32,
    pub rgb: Vec<u8>,
}

/// Scales the decoded centre square down to at most the target side (never up) and applies
/// the orientation.
pub fn square(decoded: Decoded, settings: &ImageSettings) -> Result<Square, ImageError> {
    let (left, top, crop_side) = decoded.crop;
    let target = settings.target_side;
    let whole = crop_side.floor() as u32;
    let side = whole.min(target);
    let rgb = if side == whole {
        copy_crop(
            &decoded,
            left.floor() as usize,
            top.floor() as usize,
            side as usize,
        )
    } else {
        resize(&decoded, side)?
    };
    Ok(Square {
        side,
        rgb: orient::apply(rgb, side, decoded.orientation),
    })
}

fn copy_crop(decoded: &Decoded, left: usize, top: usize, side: usize) -> Vec<u8> {
    let stride = decoded.width as usize * 3;
    if left == 0 && top == 0 && side == decoded.width as usize && side == decoded.height as usize {
        return decoded.rgb.clone();
    }
    let mut out = Vec::with_capacity(side * side * 3);
    for row in decoded.rgb.chunks_exact(stride).skip(top).take(side) {
        out.extend_from_slice(&row[left * 3..(left + side) * 3]);
    }
    out
}

fn resize(decoded: &Decoded, side: u32) -> Result<Vec<u8>, ImageError> {
    let internal = |e: &dyn std::fmt::Display| ImageError::Invalid(format!("resizing failed: {e}"));
    let src = fr::images::ImageRef::new(
        decoded.width,
        decoded.height,
        &decoded.rgb,
        fr::PixelType::U8x3,
    )
    .map_err(|e| internal(&e))?;
    let mut dst = fr::images::Image::new(side, side, fr::PixelType::U8x3);
    let (left, top, crop_side) = decoded.crop;
    let options = fr::ResizeOptions::new()
        .resize_alg(fr::ResizeAlg::Convolution(fr::FilterType::Lanczos3))
        .crop(left, top, crop_side, crop_side);
    fr::Resizer::new()
        .resize(&src, &mut dst, &options)
        .map_err(|e| internal(&e))?;
    Ok(dst.into_vec())
}

/// Baseline JPEG at the configured quality: what WhatsApp stores for profile pictures.
pub fn encode_jpeg(square: &Square, settings: &ImageSettings) -> Result<Vec<u8>, ImageError> {
    let mut out = Vec::with_capacity(square.rgb.len() / 8);
    JpegEncoder::new_with_quality(&mut out, settings.jpeg_quality)
        .encode(
            &square.rgb,
            square.side,
            square.side,
            ExtendedColorType::Rgb8,
        )
        .map_err(|e| ImageError::Invalid(format!("encoding the JPEG failed: {e}")))?;
    Ok(out)
}
