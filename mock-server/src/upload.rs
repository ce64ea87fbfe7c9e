//! The conversion of an uploaded avatar, as GOWA's `serviceUser.ChangeAvatar`
//! (src/usecase/user.go) does it, under the mock's own resource bounds.
//!
//! GOWA: `imaging.Decode` (format sniffed from magic bytes: JPEG, PNG, GIF, BMP, TIFF, WebP),
//! `size = min(w, h)` capped at 640, centre crop `size×size` (its resize branch is dead code, so
//! nothing is scaled), JPEG quality 80. Go's JPEG encoder premultiplies alpha onto black.
//!
//! The mock's bounds (GOWA has none; a real profile picture never reaches them):
//! [`MAX_SIDE`] pixels per side, [`MAX_PIXELS`] pixels and [`MAX_DECODE_BYTES`] of decoded
//! pixels, all checked from the header before the pixel buffer is allocated, and at most
//! [`DECODES_AT_ONCE`] decodes at a time ([`DecodeGate`]): at most about
//! `DECODES_AT_ONCE × MAX_DECODE_BYTES` (400 MB) of pixels at any time, whatever the uploads.

use std::io::Cursor;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use image::{
    GenericImageView, ImageDecoder, ImageError, ImageFormat, ImageReader, Limits, RgbImage,
};
use tokio::sync::Semaphore;

use crate::cdn::encode_jpeg;

/// Largest accepted width or height of an upload (the mock's bound).
pub const MAX_SIDE: u32 = 16_384;
/// Most pixels of an accepted upload (the mock's bound): 50 MP, a full-resolution photo of a
/// 50 MP phone camera.
pub const MAX_PIXELS: u64 = 50_000_000;
/// Largest decoded pixel buffer of an upload (the mock's bound): 50 MP of 8-bit RGBA.
pub const MAX_DECODE_BYTES: u64 = 200_000_000;
/// How many uploads are decoded at once; the others wait their turn.
pub const DECODES_AT_ONCE: usize = 2;

const UNKNOWN_FORMAT: &str = "failed to decode image: image: unknown format";

/// Sniffs the formats the gateway's binary registers with `image.Decode`.
pub fn sniff(data: &[u8]) -> Option<ImageFormat> {
    let starts = |m: &[u8]| data.starts_with(m);
    if starts(b"\xff\xd8") {
        Some(ImageFormat::Jpeg)
    } else if starts(b"\x89PNG\r\n\x1a\n") {
        Some(ImageFormat::Png)
    } else if starts(b"GIF87a") || starts(b"GIF89a") {
        Some(ImageFormat::Gif)
    } else if data.len() >= 10 && starts(b"BM") && data[6..10] == [0, 0, 0, 0] {
        Some(ImageFormat::Bmp)
    } else if starts(b"II\x2a\x00") || starts(b"MM\x00\x2a") {
        Some(ImageFormat::Tiff)
    } else if data.len() >= 15 && starts(b"RIFF") && &data[8..15] == b"WEBPVP8" {
        Some(ImageFormat::WebP)
    } else {
        None
    }
}

fn format_name(f: ImageFormat) -> &'static str {
    match f {
        ImageFormat::Jpeg => "jpeg",
        ImageFormat::Png => "png",
        ImageFormat::Gif => "gif",
        ImageFormat::Bmp => "bmp",
        ImageFormat::Tiff => "tiff",
        ImageFormat::WebP => "webp",
        _ => "unknown",
    }
}

/// Approximates the Go decoders' error text for data that has the right magic but is corrupt:
/// truncated input gives Go's `unexpected EOF`, anything else the package's "invalid format" error.
fn go_decode_error(format: ImageFormat, e: &ImageError) -> &'static str {
    let text = e.to_string().to_ascii_lowercase();
    let truncated = matches!(e, ImageError::IoError(_))
        || [
            "eof",
            "enough bytes",
            "end of",
            "truncated",
            "unexpected end",
        ]
        .iter()
        .any(|w| text.contains(w));
    if truncated {
        return "unexpected EOF";
    }
    match format {
        ImageFormat::Jpeg => "invalid JPEG format: bad data",
        ImageFormat::Png => "png: invalid format: invalid data",
        ImageFormat::Gif => "gif: invalid format",
        ImageFormat::Bmp => "bmp: invalid format",
        ImageFormat::Tiff => "tiff: invalid format: malformed data",
        _ => "riff: invalid format",
    }
}

/// The mock's answer to an upload over its decode bounds (GOWA would decode it).
pub fn too_large() -> String {
    format!(
        "failed to decode image: mock-server: image over the mock's decode limits \
         ({MAX_SIDE} px per side, {} MP, {} MB of pixels)",
        MAX_PIXELS / 1_000_000,
        MAX_DECODE_BYTES / 1_000_000
    )
}

/// The result of the gateway's conversion of an upload.
#[derive(Debug)]
pub struct Processed {
    pub jpeg: Vec<u8>,
    pub preview: Vec<u8>,
    pub edge: u32,
    pub uploaded_format: &'static str,
    pub uploaded_width: u32,
    pub uploaded_height: u32,
}

fn decode(data: &[u8], format: ImageFormat) -> Result<image::DynamicImage, String> {
    let failed = |e: ImageError| match e {
        ImageError::Limits(_) => too_large(),
        e => format!("failed to decode image: {}", go_decode_error(format, &e)),
    };
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(MAX_DECODE_BYTES);
    let mut reader = ImageReader::with_format(Cursor::new(data), format);
    reader.limits(limits);
    // The decoder has read the header only: refuse before the pixel buffer exists.
    let decoder = reader.into_decoder().map_err(failed)?;
    let (w, h) = decoder.dimensions();
    if w as u64 * h as u64 > MAX_PIXELS || decoder.total_bytes() > MAX_DECODE_BYTES {
        return Err(too_large());
    }
    image::DynamicImage::from_decoder(decoder).map_err(failed)
}

/// Decode and convert (blocking; see [`DecodeGate::process`]). Also makes a 96×96 preview for
/// the CDN.
pub fn process(data: &[u8]) -> Result<Processed, String> {
    let format = sniff(data).ok_or(UNKNOWN_FORMAT)?;
    let img = decode(data, format)?;
    let (w, h) = img.dimensions();
    let size = w.min(h).min(640);
    if size == 0 {
        return Err("failed to encode image: empty image".into());
    }
    let rgba = img
        .crop_imm((w - size) / 2, (h - size) / 2, size, size)
        .to_rgba8();
    drop(img);
    let rgb = RgbImage::from_fn(size, size, |x, y| {
        let p = rgba.get_pixel(x, y).0;
        let a = p[3] as u32;
        let m = |c: u8| ((c as u32 * a + 127) / 255) as u8;
        image::Rgb([m(p[0]), m(p[1]), m(p[2])])
    });
    let jpeg = encode_jpeg(&rgb, 80)?;
    let small = image::imageops::resize(&rgb, 96, 96, image::imageops::FilterType::Triangle);
    let preview = encode_jpeg(&small, 80)?;
    Ok(Processed {
        jpeg,
        preview,
        edge: size,
        uploaded_format: format_name(format),
        uploaded_width: w,
        uploaded_height: h,
    })
}

/// Lets at most [`DECODES_AT_ONCE`] uploads decode at the same time.
pub struct DecodeGate {
    permits: Semaphore,
    running: AtomicUsize,
    peak: AtomicUsize,
}

impl Default for DecodeGate {
    fn default() -> Self {
        DecodeGate {
            permits: Semaphore::new(DECODES_AT_ONCE),
            running: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
        }
    }
}

impl DecodeGate {
    /// Waits for a slot, then runs [`process`] on a blocking thread.
    pub async fn process(&self, data: Bytes) -> Result<Processed, String> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| "failed to process image".to_string())?;
        let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(now, Ordering::SeqCst);
        let result = tokio::task::spawn_blocking(move || process(&data)).await;
        self.running.fetch_sub(1, Ordering::SeqCst);
        result.unwrap_or_else(|_| Err("failed to process image".into()))
    }

    /// The most decodes that ran at the same time so far.
    pub fn peak(&self) -> usize {
        self.peak.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use image::{DynamicImage, Rgba, RgbaImage};

    use super::*;

    fn encode(img: &DynamicImage, f: ImageFormat) -> Vec<u8> {
        let mut out = Cursor::new(Vec::new());
        img.write_to(&mut out, f).expect("encode");
        out.into_inner()
    }

    /// A PNG whose header declares `w×h` but which carries almost no data.
    pub fn png_header_only(w: u32, h: u32) -> Vec<u8> {
        let small = encode(
            &DynamicImage::ImageRgba8(RgbaImage::new(1, 1)),
            ImageFormat::Png,
        );
        let mut out = small.clone();
        // IHDR data starts at byte 16: width, height (big endian); then fix the CRC.
        out[16..20].copy_from_slice(&w.to_be_bytes());
        out[20..24].copy_from_slice(&h.to_be_bytes());
        let crc = crc32(&out[12..29]);
        out[29..33].copy_from_slice(&crc.to_be_bytes());
        out
    }

    fn crc32(data: &[u8]) -> u32 {
        let mut crc = 0xFFFF_FFFFu32;
        for &b in data {
            crc ^= b as u32;
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

    #[test]
    fn every_gateway_format_is_sniffed_decoded_and_cropped() {
        let img = DynamicImage::ImageRgba8(RgbaImage::from_pixel(50, 70, Rgba([200, 10, 10, 255])));
        for (f, name) in [
            (ImageFormat::Jpeg, "jpeg"),
            (ImageFormat::Png, "png"),
            (ImageFormat::Gif, "gif"),
            (ImageFormat::Bmp, "bmp"),
            (ImageFormat::Tiff, "tiff"),
            (ImageFormat::WebP, "webp"),
        ] {
            let input = if f == ImageFormat::Jpeg {
                encode(&DynamicImage::ImageRgb8(img.to_rgb8()), f)
            } else {
                encode(&img, f)
            };
            assert_eq!(sniff(&input), Some(f), "{name}");
            let p = process(&input).expect(name);
            assert_eq!((p.edge, p.uploaded_format), (50, name));
            assert_eq!((p.uploaded_width, p.uploaded_height), (50, 70));
            let out =
                image::load_from_memory_with_format(&p.jpeg, ImageFormat::Jpeg).expect("jpeg");
            assert_eq!((out.width(), out.height()), (50, 50));
        }
    }

    #[test]
    fn transparent_pixels_become_black_and_garbage_is_unknown() {
        let img = DynamicImage::ImageRgba8(RgbaImage::from_pixel(8, 8, Rgba([255, 255, 255, 0])));
        let p = process(&encode(&img, ImageFormat::Png)).expect("png");
        let out = image::load_from_memory(&p.jpeg).expect("jpeg").to_rgb8();
        assert!(out.get_pixel(4, 4).0.iter().all(|c| *c < 10));
        assert_eq!(process(b"GIF").unwrap_err(), UNKNOWN_FORMAT);
        assert_eq!(sniff(b"RIFF\0\0\0\0WEBPVP8 "), Some(ImageFormat::WebP));
        assert_eq!(
            process(b"\xff\xd8\xff\xe0garbage").unwrap_err(),
            "failed to decode image: unexpected EOF"
        );
    }

    #[test]
    fn oversized_headers_are_refused_before_decoding() {
        // 13000×13000 would be 169 MP; the file is a few dozen bytes.
        let started = std::time::Instant::now();
        assert_eq!(
            process(&png_header_only(13_000, 13_000)).unwrap_err(),
            too_large()
        );
        assert_eq!(
            process(&png_header_only(20_000, 10)).unwrap_err(),
            too_large()
        );
        assert!(started.elapsed().as_secs() < 2);
        // Within the bounds the (lying) file goes to the decoder, which finds too little data.
        let within = process(&png_header_only(64, 64)).unwrap_err();
        assert_ne!(within, too_large());
        assert!(within.starts_with("failed to decode image: "), "{within}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn no_more_than_two_decodes_at_once() {
        let gate = Arc::new(DecodeGate::default());
        let img = DynamicImage::ImageRgba8(RgbaImage::from_pixel(900, 900, Rgba([1, 2, 3, 255])));
        let png = Bytes::from(encode(&img, ImageFormat::Png));
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let (gate, png) = (gate.clone(), png.clone());
                tokio::spawn(async move { gate.process(png).await.map(|p| p.edge) })
            })
            .collect();
        for t in tasks {
            assert_eq!(t.await.expect("task"), Ok(640));
        }
        assert!(
            gate.peak() >= 1 && gate.peak() <= DECODES_AT_ONCE,
            "{}",
            gate.peak()
        );
    }
}
