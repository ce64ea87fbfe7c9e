//! Pixel layouts coming out of the decoders, and turning them into opaque RGB.

/// Channel layout of a decoded row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    Gray,
    GrayAlpha,
    Rgb,
    Rgba,
    /// Ink amounts (0 = no ink), as `jpeg-decoder` reports them after undoing Adobe's inversion.
    Cmyk,
}

impl Layout {
    pub fn channels(self) -> usize {
        match self {
            Self::Gray => 1,
            Self::GrayAlpha => 2,
            Self::Rgb => 3,
            Self::Rgba | Self::Cmyk => 4,
        }
    }
}

/// Composites a channel over white: WhatsApp shows transparency as black, which ruins logos.
#[inline]
fn over_white(c: u8, a: u8) -> u8 {
    let (c, a) = (u32::from(c), u32::from(a));
    ((c * a + 255 * (255 - a) + 127) / 255) as u8
}

#[inline]
fn mul255(a: u8, b: u8) -> u8 {
    ((u32::from(a) * u32::from(b) + 127) / 255) as u8
}

/// Converts `src` (pixels in `layout`) into opaque RGB in `dst` (3 bytes a pixel).
pub fn to_rgb(src: &[u8], layout: Layout, dst: &mut [u8]) {
    let dst = dst.chunks_exact_mut(3);
    match layout {
        Layout::Rgb => {
            let n = dst.len() * 3;
            for (d, s) in dst.zip(src[..n].chunks_exact(3)) {
                d.copy_from_slice(s);
            }
        }
        Layout::Rgba => {
            for (d, s) in dst.zip(src.chunks_exact(4)) {
                let a = s[3];
                if a == 255 {
                    d.copy_from_slice(&s[..3]);
                } else {
                    d[0] = over_white(s[0], a);
                    d[1] = over_white(s[1], a);
                    d[2] = over_white(s[2], a);
                }
            }
        }
        Layout::Gray => {
            for (d, &g) in dst.zip(src.iter()) {
                d.fill(g);
            }
        }
        Layout::GrayAlpha => {
            for (d, s) in dst.zip(src.chunks_exact(2)) {
                d.fill(over_white(s[0], s[1]));
            }
        }
        Layout::Cmyk => {
            for (d, s) in dst.zip(src.chunks_exact(4)) {
                let paper = 255 - s[3];
                d[0] = mul255(255 - s[0], paper);
                d[1] = mul255(255 - s[1], paper);
                d[2] = mul255(255 - s[2], paper);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transparent_becomes_white() {
        let mut out = [0u8; 6];
        to_rgb(&[10, 20, 30, 0, 0, 0, 0, 255], Layout::Rgba, &mut out);
        assert_eq!(out, [255, 255, 255, 0, 0, 0]);
        to_rgb(&[0, 128, 7, 7], Layout::GrayAlpha, &mut out);
        assert_eq!(&out[..3], &[127, 127, 127]);
        to_rgb(&[0, 0, 0, 0, 255, 0, 0, 0], Layout::Cmyk, &mut out);
        assert_eq!(out, [255, 255, 255, 0, 255, 255]);
    }
}
