//! JPEG: decode at 1/2, 1/4 or 1/8 scale in the DCT domain, which is most of the speed win on
//! camera photos, and refuse truncated scans the decoder would silently pad.

use super::super::pixels::{Layout, to_rgb};
use super::super::sniff::Format;
use super::{Decoded, Header, centre_square, check_header, corrupt, orientation_of};
use crate::image::{ImageError, ImageSettings};

pub fn decode(data: &[u8], settings: &ImageSettings) -> Result<Decoded, ImageError> {
    let mut decoder = jpeg_decoder::Decoder::new(data);
    decoder.read_info().map_err(|e| corrupt(Format::Jpeg, e))?;
    let info = decoder
        .info()
        .ok_or_else(|| corrupt(Format::Jpeg, "no frame header"))?;
    let (width, height) = (u32::from(info.width), u32::from(info.height));
    check_header(
        Header {
            format: Format::Jpeg,
            width,
            height,
        },
        settings,
    )?;
    if !has_end_of_image(data) {
        return Err(ImageError::Invalid(
            "the JPEG image is truncated: it has no end-of-image marker after its scans".into(),
        ));
    }
    let divisor = scale_divisor(width.min(height), settings.target_side);
    if divisor > 1 {
        let want_w = width.div_ceil(divisor) as u16;
        let want_h = height.div_ceil(divisor) as u16;
        decoder
            .scale(want_w, want_h)
            .map_err(|e| corrupt(Format::Jpeg, e))?;
    }
    // Bounds the decoder's own buffers by the same pixel cap as the header check.
    decoder.set_max_decoding_buffer_size(
        usize::try_from(settings.max_pixels.saturating_mul(4)).unwrap_or(usize::MAX),
    );
    let pixels = decoder.decode().map_err(|e| corrupt(Format::Jpeg, e))?;
    // The output size after DCT scaling, as the decoder laid out `pixels`.
    let scaled = decoder
        .info()
        .ok_or_else(|| corrupt(Format::Jpeg, "no frame header"))?;
    let (out_w, out_h) = (u32::from(scaled.width), u32::from(scaled.height));
    let layout = match info.pixel_format {
        jpeg_decoder::PixelFormat::L8 => Layout::Gray,
        jpeg_decoder::PixelFormat::RGB24 => Layout::Rgb,
        jpeg_decoder::PixelFormat::CMYK32 => Layout::Cmyk,
        jpeg_decoder::PixelFormat::L16 => {
            return Err(ImageError::Invalid(
                "16-bit (lossless) JPEG images are not accepted: send an 8-bit JPEG, PNG or WebP"
                    .into(),
            ));
        }
    };
    let count = out_w as usize * out_h as usize;
    if pixels.len() < count * layout.channels() {
        return Err(corrupt(Format::Jpeg, "the decoder returned too few pixels"));
    }
    let rgb = if layout == Layout::Rgb {
        pixels
    } else {
        let mut rgb = vec![0u8; count * 3];
        to_rgb(&pixels, layout, &mut rgb);
        rgb
    };
    Ok(Decoded {
        source_width: width,
        source_height: height,
        width: out_w,
        height: out_h,
        rgb,
        crop: centre_square(out_w, out_h),
        orientation: orientation_of(decoder.exif_data()),
    })
}

/// Largest DCT scale divisor (1, 2, 4 or 8) that keeps the short side at `target` or more.
pub(in crate::image) fn scale_divisor(short: u32, target: u32) -> u32 {
    [8, 4, 2]
        .into_iter()
        .find(|&d| short.div_ceil(d) >= target)
        .unwrap_or(1)
}

/// Whether an EOI marker follows the first scan. Entropy-coded data stuffs every 0xFF, so an
/// `FF D9` after the start of scan can only be the real end (an embedded EXIF thumbnail's EOI
/// sits before it, inside APP1).
fn has_end_of_image(data: &[u8]) -> bool {
    let mut pos = 2;
    while pos + 4 <= data.len() {
        if data[pos] != 0xFF {
            return false;
        }
        let marker = data[pos + 1];
        if marker == 0xFF {
            pos += 1;
            continue;
        }
        let length = usize::from(u16::from_be_bytes([data[pos + 2], data[pos + 3]]));
        if marker == 0xDA {
            let scan = (pos + 2 + length).min(data.len());
            return data[scan..].windows(2).any(|w| w == [0xFF, 0xD9]);
        }
        pos += 2 + length;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn divisor_keeps_target() {
        assert_eq!(scale_divisor(3000, 640), 4);
        assert_eq!(scale_divisor(5120, 640), 8);
        assert_eq!(scale_divisor(1200, 640), 1);
        assert_eq!(scale_divisor(1280, 640), 2);
        assert_eq!(scale_divisor(300, 640), 1);
    }
}
