//! EXIF orientation applied to the final square.
//!
//! Cropping the centre square and scaling commute with every EXIF transform on it, so the
//! transform runs last on 640×640 pixels instead of on the full frame.

/// Returns the square `side`×`side` RGB image `src` turned upright for EXIF `orientation`.
pub fn apply(src: Vec<u8>, side: u32, orientation: u8) -> Vec<u8> {
    if !(2..=8).contains(&orientation) {
        return src;
    }
    let n = side as usize;
    let last = n.saturating_sub(1);
    let mut dst = vec![0u8; src.len()];
    for y in 0..n {
        for x in 0..n {
            // Where the displayed pixel (x, y) is stored.
            let (sx, sy) = match orientation {
                2 => (last - x, y),
                3 => (last - x, last - y),
                4 => (x, last - y),
                5 => (y, x),
                6 => (y, last - x),
                7 => (last - y, last - x),
                _ => (last - y, x),
            };
            let d = (y * n + x) * 3;
            let s = (sy * n + sx) * 3;
            dst[d..d + 3].copy_from_slice(&src[s..s + 3]);
        }
    }
    dst
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2×2 image with pixels 1..4 in the first channel, row-major.
    fn grid(values: [u8; 4]) -> Vec<u8> {
        values.iter().flat_map(|&v| [v, 0, 0]).collect()
    }

    fn firsts(img: &[u8]) -> Vec<u8> {
        img.chunks(3).map(|p| p[0]).collect()
    }

    #[test]
    fn rotations() {
        // stored:  1 2 / 3 4
        let s = grid([1, 2, 3, 4]);
        assert_eq!(firsts(&apply(s.clone(), 2, 1)), vec![1, 2, 3, 4]);
        assert_eq!(firsts(&apply(s.clone(), 2, 2)), vec![2, 1, 4, 3]);
        assert_eq!(firsts(&apply(s.clone(), 2, 3)), vec![4, 3, 2, 1]);
        assert_eq!(firsts(&apply(s.clone(), 2, 4)), vec![3, 4, 1, 2]);
        assert_eq!(firsts(&apply(s.clone(), 2, 5)), vec![1, 3, 2, 4]);
        // 6: rotate 90° clockwise
        assert_eq!(firsts(&apply(s.clone(), 2, 6)), vec![3, 1, 4, 2]);
        assert_eq!(firsts(&apply(s.clone(), 2, 7)), vec![4, 2, 3, 1]);
        assert_eq!(firsts(&apply(s, 2, 8)), vec![2, 4, 1, 3]);
    }
}
