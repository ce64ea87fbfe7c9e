//! What decoding a picture costs, known from its headers before any pixel is decoded, and the one budget
//! every decode of the worker shares.
//!
//! The pixel caps of [`super::ImageSettings`] bound width × height, but a decoder's real buffers depend on
//! more than that: a progressive JPEG keeps every DCT coefficient of the whole image (2 bytes × 64 per 8×8
//! block of each component: 6 bytes a pixel at 4:4:4, whatever scale it is decoded at), CMYK and 4:4:4
//! carry more components, an interlaced PNG and a WebP are decoded whole. [`cost`] adds those buffers up
//! per format; a picture costing more than `image.decode_memory_bytes` is refused, and [`DecodeBudget`]
//! makes concurrent decodes wait until their share of that memory is free, so the whole worker never
//! holds more than the budget in decoders at once.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::sniff::Format;
use super::{ImageError, ImageSettings};

/// Scans a progressive JPEG may have (libjpeg-turbo's tools stop at 100 too): each scan walks every block
/// of its components, so thousands of tiny scans would cost minutes of CPU on an image of legal size.
pub const MAX_JPEG_SCANS: u32 = 100;

/// Bytes counted for what every decode holds besides the pixel buffers (decoder state, tables, the
/// encoder of the result).
const OVERHEAD: u64 = 1024 * 1024;

/// The memory a decode will hold at its peak, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cost {
    pub bytes: u64,
}

/// The decode memory all of a worker's update jobs share (`image.decode_memory_bytes`), counted in KiB.
#[derive(Clone)]
pub struct DecodeBudget {
    kib: Arc<Semaphore>,
    total: u64,
}

impl DecodeBudget {
    pub fn new(settings: &ImageSettings) -> Self {
        let total = settings.decode_memory_bytes;
        Self {
            kib: Arc::new(Semaphore::new(kib(total) as usize)),
            total,
        }
    }

    /// Waits until `cost` fits in what the other decodes leave free; the memory is given back when the
    /// permit drops (when the decode has ended, even one whose job gave up waiting for it).
    pub async fn reserve(&self, cost: Cost) -> Result<OwnedSemaphorePermit, ImageError> {
        check(cost, self.total)?;
        let permits = u32::try_from(kib(cost.bytes)).unwrap_or(u32::MAX);
        self.kib
            .clone()
            .acquire_many_owned(permits)
            .await
            .map_err(|_| ImageError::Invalid("the decode budget is closed".into()))
    }
}

fn kib(bytes: u64) -> u64 {
    bytes.div_ceil(1024).max(1)
}

/// Refuses a decode that alone costs more than the budget.
pub fn check(cost: Cost, budget: u64) -> Result<(), ImageError> {
    if cost.bytes > budget {
        return Err(ImageError::TooLarge(format!(
            "decoding this image needs about {} MiB; the limit is {} MiB (image.decode_memory_bytes)",
            cost.bytes.div_ceil(1024 * 1024),
            budget / (1024 * 1024)
        )));
    }
    Ok(())
}

/// What decoding `data` (already sniffed as `format`) and normalising it will hold, from its headers.
/// Headers that cannot be read cost nothing here: the decoder refuses them at once.
pub fn cost(data: &[u8], format: Format, settings: &ImageSettings) -> Result<Cost, ImageError> {
    let bytes = match format {
        Format::Jpeg => match jpeg_layout(data)? {
            Some(layout) => {
                header_limits(format, layout.width, layout.height, settings)?;
                layout.cost(settings.target_side)
            }
            None => 0,
        },
        Format::Png => png_cost(data, settings)?,
        Format::WebP => webp_cost(data, settings)?,
    };
    Ok(Cost {
        bytes: bytes + OVERHEAD,
    })
}

/// What the frame header and the scan count of a JPEG say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JpegLayout {
    pub width: u32,
    pub height: u32,
    pub progressive: bool,
    /// Sampling factors (horizontal, vertical) per component.
    pub components: Vec<(u8, u8)>,
    pub scans: u32,
}

impl JpegLayout {
    /// jpeg-decoder's buffers: the coefficients of every block when progressive; one plane per component
    /// at the DCT-scaled size; the interleaved output and its RGB copy; the resizer's intermediate rows.
    fn cost(&self, target: u32) -> u64 {
        let (w, h) = (u64::from(self.width), u64::from(self.height));
        let hmax = u64::from(
            self.components
                .iter()
                .map(|c| c.0)
                .max()
                .unwrap_or(1)
                .max(1),
        );
        let vmax = u64::from(
            self.components
                .iter()
                .map(|c| c.1)
                .max()
                .unwrap_or(1)
                .max(1),
        );
        let mcus_x = w.div_ceil(8 * hmax);
        let mcus_y = h.div_ceil(8 * vmax);
        let divisor = u64::from(super::decode::scale_divisor(
            self.width.min(self.height),
            target,
        ));
        let block_side = 8 / divisor.min(8);
        let mut total = 0u64;
        for &(hs, vs) in &self.components {
            let blocks = mcus_x * u64::from(hs) * mcus_y * u64::from(vs);
            if self.progressive {
                total += blocks * 64 * 2;
            }
            total += blocks * block_side * block_side;
        }
        let (out_w, out_h) = (w.div_ceil(divisor), h.div_ceil(divisor));
        let components = self.components.len() as u64;
        total += out_w * out_h * components;
        if components != 3 {
            total += out_w * out_h * 3;
        }
        total + resize_cost(out_h, target)
    }
}

/// The resizer's intermediate (the target width by the source's height) and the square, oriented and
/// encoded.
fn resize_cost(source_height: u64, target: u32) -> u64 {
    let target = u64::from(target);
    target * source_height * 3 + 4 * target * target * 3
}

/// Walks a JPEG's segments up to its end: the frame header, and how many scans follow. `None` when there
/// is no frame header (the decoder says why).
pub fn jpeg_layout(data: &[u8]) -> Result<Option<JpegLayout>, ImageError> {
    let mut layout: Option<JpegLayout> = None;
    let mut pos = 2usize;
    while pos + 4 <= data.len() {
        if data[pos] != 0xFF {
            break;
        }
        let marker = data[pos + 1];
        if marker == 0xFF {
            pos += 1;
            continue;
        }
        if marker == 0xD9 {
            break;
        }
        if (0xD0..=0xD7).contains(&marker) || marker == 0x01 {
            pos += 2;
            continue;
        }
        let length = usize::from(u16::from_be_bytes([data[pos + 2], data[pos + 3]]));
        let end = (pos + 2 + length).min(data.len());
        let segment = &data[(pos + 4).min(end)..end];
        match marker {
            // Start of frame: every SOFn but DHT (C4), JPG (C8) and DAC (CC).
            0xC0..=0xCF
                if !matches!(marker, 0xC4 | 0xC8 | 0xCC)
                    && layout.is_none()
                    && segment.len() >= 6 =>
            {
                let height = u32::from(u16::from_be_bytes([segment[1], segment[2]]));
                let width = u32::from(u16::from_be_bytes([segment[3], segment[4]]));
                let count = usize::from(segment[5]);
                let components = segment[6..]
                    .chunks_exact(3)
                    .take(count)
                    .map(|c| (c[1] >> 4, c[1] & 0x0F))
                    .collect();
                layout = Some(JpegLayout {
                    width,
                    height,
                    progressive: matches!(marker, 0xC2 | 0xC6 | 0xCA | 0xCE),
                    components,
                    scans: 0,
                });
            }
            0xDA => {
                if let Some(layout) = layout.as_mut() {
                    layout.scans += 1;
                    if layout.scans > MAX_JPEG_SCANS {
                        return Err(ImageError::TooLarge(format!(
                            "the JPEG image has more than {MAX_JPEG_SCANS} scans"
                        )));
                    }
                }
                // The entropy-coded data runs to the next marker that is not a stuffed 0xFF or a restart.
                let mut next = pos + 2 + length;
                while next + 1 < data.len() {
                    if data[next] == 0xFF && !matches!(data[next + 1], 0x00 | 0xD0..=0xD7 | 0xFF) {
                        break;
                    }
                    next += 1;
                }
                pos = next;
                continue;
            }
            _ => {}
        }
        pos += 2 + length;
    }
    Ok(layout)
}

/// The header limits (pixels, sides) come first: their message says more than a cost would.
fn header_limits(
    format: Format,
    width: u32,
    height: u32,
    settings: &ImageSettings,
) -> Result<(), ImageError> {
    super::decode::check_header(
        super::decode::Header {
            format,
            width,
            height,
        },
        settings,
    )
}

fn png_cost(data: &[u8], settings: &ImageSettings) -> Result<u64, ImageError> {
    let target = settings.target_side;
    let mut decoder = png::Decoder::new(std::io::Cursor::new(data));
    decoder.set_ignore_text_chunk(true);
    let Ok(info) = decoder.read_header_info() else {
        return Ok(0);
    };
    header_limits(Format::Png, info.width, info.height, settings)?;
    let (w, h) = (u64::from(info.width), u64::from(info.height));
    // Up to 4 channels of 8 bits once expanded and stripped to 8 bits; rows (current and previous) as
    // stored, up to 8 bytes a pixel.
    let rows = 2 * w * 8;
    let frame = if info.interlaced { w * h * 4 } else { 0 };
    let target_side = u64::from(target);
    // The box shrinker's accumulators (u32 a channel) and its output, both at most twice the target.
    let shrunk = (2 * target_side) * (2 * target_side) * (4 * 4 + 3);
    Ok(rows + frame + shrunk + resize_cost(2 * target_side, target))
}

fn webp_cost(data: &[u8], settings: &ImageSettings) -> Result<u64, ImageError> {
    let Ok(decoder) = image::codecs::webp::WebPDecoder::new(std::io::Cursor::new(data)) else {
        return Ok(0);
    };
    use image::ImageDecoder;
    let (w, h) = decoder.dimensions();
    header_limits(Format::WebP, w, h, settings)?;
    let (w, h) = (u64::from(w), u64::from(h));
    // The frame (RGB or RGBA), its RGB copy when it has alpha, and the lossy decoder's YUV planes.
    let frame = decoder.total_bytes();
    let rgb_copy = if decoder.color_type().has_alpha() {
        w * h * 3
    } else {
        0
    };
    let yuv = w * h * 3 / 2;
    Ok(frame + rgb_copy + yuv + resize_cost(h, settings.target_side))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jpeg_with_scans(scans: usize, progressive: bool) -> Vec<u8> {
        let mut data = vec![0xFF, 0xD8];
        // SOF: 8-bit, 4000 high, 6000 wide, 3 components 4:4:4.
        data.extend_from_slice(&[0xFF, if progressive { 0xC2 } else { 0xC0 }, 0, 17, 8]);
        data.extend_from_slice(&4000u16.to_be_bytes());
        data.extend_from_slice(&6000u16.to_be_bytes());
        data.extend_from_slice(&[3, 1, 0x11, 0, 2, 0x11, 1, 3, 0x11, 1]);
        for _ in 0..scans {
            data.extend_from_slice(&[0xFF, 0xDA, 0, 8, 1, 1, 0, 0, 63, 0]);
            // Entropy-coded bytes with a stuffed 0xFF and a restart marker.
            data.extend_from_slice(&[0x12, 0xFF, 0x00, 0x34, 0xFF, 0xD0, 0x56]);
        }
        data.extend_from_slice(&[0xFF, 0xD9]);
        data
    }

    #[test]
    fn scans_are_counted_and_capped() {
        let layout = jpeg_layout(&jpeg_with_scans(10, true)).unwrap().unwrap();
        assert_eq!(
            (layout.width, layout.height, layout.scans),
            (6000, 4000, 10)
        );
        assert!(layout.progressive);
        assert_eq!(layout.components, vec![(1, 1); 3]);
        assert!(jpeg_layout(&jpeg_with_scans(100, true)).is_ok());
        let err = jpeg_layout(&jpeg_with_scans(101, true)).unwrap_err();
        assert!(
            matches!(err, ImageError::TooLarge(ref m) if m.contains("100 scans")),
            "{err}"
        );
    }

    #[test]
    fn broken_segments_never_panic() {
        for tail in [
            &[0xFF, 0xC2, 0, 0][..],
            &[0xFF, 0xC2, 0, 1, 8],
            &[0xFF, 0xDA, 0, 0, 0xFF],
            &[0xFF, 0xC0, 0xFF, 0xFF, 0, 3, 1, 2, 3],
            &[0xFF, 0xE1, 0xFF, 0xFF],
            &[0xFF],
        ] {
            let mut data = vec![0xFF, 0xD8];
            data.extend_from_slice(tail);
            let _ = jpeg_layout(&data);
            let _ = cost(&data, Format::Jpeg, &ImageSettings::default());
        }
    }

    #[test]
    fn progressive_jpeg_costs_its_coefficients() {
        let settings = ImageSettings::default();
        let baseline = cost(&jpeg_with_scans(1, false), Format::Jpeg, &settings).unwrap();
        let progressive = cost(&jpeg_with_scans(3, true), Format::Jpeg, &settings).unwrap();
        // 24 Mpx at 4:4:4: 6 bytes a pixel of coefficients.
        assert!(progressive.bytes > 6 * 24_000_000, "{progressive:?}");
        assert!(baseline.bytes < 24 * 1024 * 1024, "{baseline:?}");
        assert!(check(progressive, settings.decode_memory_bytes).is_err());
        assert!(check(baseline, settings.decode_memory_bytes).is_ok());
    }

    #[tokio::test]
    async fn the_budget_is_shared() {
        let settings = ImageSettings {
            decode_memory_bytes: 10 * 1024 * 1024,
            ..ImageSettings::default()
        };
        let budget = DecodeBudget::new(&settings);
        let six = Cost {
            bytes: 6 * 1024 * 1024,
        };
        let first = budget.reserve(six).await.unwrap();
        let second =
            tokio::time::timeout(std::time::Duration::from_millis(50), budget.reserve(six));
        assert!(
            second.await.is_err(),
            "the second waits while the first holds"
        );
        drop(first);
        assert!(budget.reserve(six).await.is_ok());
        let huge = Cost {
            bytes: 11 * 1024 * 1024,
        };
        assert!(budget.reserve(huge).await.is_err());
    }
}
