//! Decoding with limits checked from the header before any pixel memory is allocated.
//!
//! Each decoder only produces what the normaliser needs: the centre square, shrunk as far as
//! it can be for free (JPEG DCT scaling) or cheaply while streaming (PNG rows), never below
//! the target side, so a 12 MP photo never sits in memory at full size.

mod jpeg;
mod png;
mod webp;

pub(super) use jpeg::scale_divisor;

use super::sniff::Format;
use super::{ImageError, ImageSettings};

/// Opaque RGB pixels and the part of them that becomes the picture.
pub struct Decoded {
    /// Dimensions of the image as stored in the file (before orientation).
    pub source_width: u32,
    pub source_height: u32,
    /// Dimensions of `rgb`.
    pub width: u32,
    pub height: u32,
    /// 3 bytes a pixel, rows packed.
    pub rgb: Vec<u8>,
    /// The centre square inside `rgb`: left, top, side (fractional after DCT scaling).
    pub crop: (f64, f64, f64),
    /// EXIF orientation (1–8) to apply to the final square.
    pub orientation: u8,
}

/// Header facts checked before decoding.
#[derive(Debug, Clone, Copy)]
pub struct Header {
    pub format: Format,
    pub width: u32,
    pub height: u32,
}

/// Decodes `data` as `format` into its centre square, at least `target` px on a side when the
/// source allows.
pub fn decode(
    data: &[u8],
    format: Format,
    settings: &ImageSettings,
) -> Result<Decoded, ImageError> {
    match format {
        Format::Jpeg => jpeg::decode(data, settings),
        Format::Png => png::decode(data, settings),
        Format::WebP => webp::decode(data, settings),
    }
}

/// Refuses dimensions over the limits (or under the minimum) before pixels are allocated.
pub fn check_header(header: Header, settings: &ImageSettings) -> Result<(), ImageError> {
    let Header {
        format,
        width,
        height,
    } = header;
    let name = format.name();
    if width == 0 || height == 0 {
        return Err(ImageError::Invalid(format!(
            "the {name} image claims to be {width}×{height} pixels"
        )));
    }
    let pixels = u64::from(width) * u64::from(height);
    if width > settings.max_width || height > settings.max_height || pixels > settings.max_pixels {
        return Err(ImageError::TooLarge(format!(
            "the {name} image is {width}×{height} pixels; the limit is {}×{} and {} pixels in all \
             (image.max_width, image.max_height, image.max_pixels)",
            settings.max_width, settings.max_height, settings.max_pixels
        )));
    }
    let short = width.min(height);
    if short < settings.min_side {
        return Err(ImageError::Invalid(format!(
            "the {name} image is {width}×{height} pixels; WhatsApp needs at least {} px on the \
             short side (image.min_side)",
            settings.min_side
        )));
    }
    Ok(())
}

/// A decoder error as the job author should see it.
fn corrupt(format: Format, e: impl std::fmt::Display) -> ImageError {
    ImageError::Invalid(format!(
        "the {} image is corrupt or truncated: {e}",
        format.name()
    ))
}

/// Centre square of a `width`×`height` frame.
fn centre_square(width: u32, height: u32) -> (f64, f64, f64) {
    let side = width.min(height);
    (
        f64::from(width - side) / 2.0,
        f64::from(height - side) / 2.0,
        f64::from(side),
    )
}

/// EXIF orientation from a TIFF-headed EXIF block, 1 when absent or unreadable.
fn orientation_of(exif: Option<&[u8]>) -> u8 {
    exif.and_then(image::metadata::Orientation::from_exif_chunk)
        .map_or(1, image::metadata::Orientation::to_exif)
}
