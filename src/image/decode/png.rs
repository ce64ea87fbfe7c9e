//! PNG: rows are decoded one at a time, cropped to the centre square and box-shrunk on the fly,
//! so memory stays at a few rows plus the shrunk square whatever the image size.

use std::io::Cursor;

use super::super::pixels::{Layout, to_rgb};
use super::super::sniff::Format;
use super::{Decoded, Header, check_header, corrupt, orientation_of};
use crate::image::{ImageError, ImageSettings};

pub fn decode(data: &[u8], settings: &ImageSettings) -> Result<Decoded, ImageError> {
    let mut decoder = png::Decoder::new(Cursor::new(data));
    decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    decoder.set_ignore_text_chunk(true);
    let header = decoder
        .read_header_info()
        .map_err(|e| corrupt(Format::Png, e))?;
    let (width, height, interlaced) = (header.width, header.height, header.interlaced);
    check_header(
        Header {
            format: Format::Png,
            width,
            height,
        },
        settings,
    )?;
    let mut reader = decoder.read_info().map_err(|e| corrupt(Format::Png, e))?;
    let layout = match reader.output_color_type().0 {
        png::ColorType::Grayscale => Layout::Gray,
        png::ColorType::GrayscaleAlpha => Layout::GrayAlpha,
        png::ColorType::Rgb => Layout::Rgb,
        png::ColorType::Rgba => Layout::Rgba,
        png::ColorType::Indexed => {
            return Err(corrupt(Format::Png, "palette was not expanded"));
        }
    };
    let mut shrinker = BoxShrinker::new(width, height, settings.target_side, layout);
    if interlaced {
        // Adam7 delivers the rows in passes: the whole frame is needed before any row is final.
        let size = reader
            .output_buffer_size()
            .ok_or_else(|| corrupt(Format::Png, "frame too large"))?;
        let mut frame = vec![0u8; size];
        let out = reader
            .next_frame(&mut frame)
            .map_err(|e| corrupt(Format::Png, e))?;
        for (y, row) in frame.chunks_exact(out.line_size).enumerate() {
            shrinker.push_row(y as u32, row);
        }
    } else {
        let mut y = 0u32;
        while let Some(row) = reader.next_row().map_err(|e| corrupt(Format::Png, e))? {
            shrinker.push_row(y, row.data());
            y += 1;
        }
        if y != height {
            return Err(corrupt(Format::Png, format!("{y} of {height} rows")));
        }
    }
    reader.finish().map_err(|e| corrupt(Format::Png, e))?;
    let orientation = orientation_of(reader.info().exif_metadata.as_deref());
    let side = shrinker.out_side;
    if shrinker.out.len() != side as usize * side as usize * 3 {
        return Err(corrupt(
            Format::Png,
            "rows are shorter than the header says",
        ));
    }
    Ok(Decoded {
        source_width: width,
        source_height: height,
        width: side,
        height: side,
        rgb: shrinker.out,
        crop: (0.0, 0.0, f64::from(side)),
        orientation,
    })
}

/// Crops rows to the centre square and averages `factor`×`factor` blocks as they stream by.
///
/// The factor leaves at least twice the target side, so the Lanczos pass that follows still
/// decides the final look and the box average only removes what it would discard anyway.
struct BoxShrinker {
    factor: u32,
    out_side: u32,
    x0: usize,
    y0: u32,
    layout: Layout,
    rgb_row: Vec<u8>,
    sums: Vec<u32>,
    rows_summed: u32,
    out: Vec<u8>,
}

impl BoxShrinker {
    fn new(width: u32, height: u32, target: u32, layout: Layout) -> Self {
        let side = width.min(height);
        let factor = if side > 2 * target {
            side / (2 * target)
        } else {
            1
        };
        let out_side = side / factor;
        let used = out_side * factor;
        Self {
            factor,
            out_side,
            x0: ((width - used) / 2) as usize,
            y0: (height - used) / 2,
            layout,
            rgb_row: vec![0; used as usize * 3],
            sums: vec![0; out_side as usize * 3],
            rows_summed: 0,
            out: Vec::with_capacity(out_side as usize * out_side as usize * 3),
        }
    }

    fn push_row(&mut self, y: u32, row: &[u8]) {
        let used = self.out_side * self.factor;
        if y < self.y0 || y >= self.y0 + used {
            return;
        }
        let channels = self.layout.channels();
        let start = self.x0 * channels;
        let end = start + used as usize * channels;
        let Some(src) = row.get(start..end) else {
            return;
        };
        to_rgb(src, self.layout, &mut self.rgb_row);
        if self.factor == 1 {
            self.out.extend_from_slice(&self.rgb_row);
            return;
        }
        let f = self.factor as usize;
        for (sum, block) in self
            .sums
            .chunks_exact_mut(3)
            .zip(self.rgb_row.chunks_exact(3 * f))
        {
            for px in block.chunks_exact(3) {
                sum[0] += u32::from(px[0]);
                sum[1] += u32::from(px[1]);
                sum[2] += u32::from(px[2]);
            }
        }
        self.rows_summed += 1;
        if self.rows_summed == self.factor {
            let n = self.factor * self.factor;
            self.out
                .extend(self.sums.iter().map(|&s| ((s + n / 2) / n) as u8));
            self.sums.fill(0);
            self.rows_summed = 0;
        }
    }
}
