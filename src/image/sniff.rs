//! Telling formats apart by their magic bytes: the declared content type of a download or the
//! job author's word is not trusted.

use super::ImageError;

/// The formats the pipeline decodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Jpeg,
    Png,
    WebP,
}

impl Format {
    /// MIME type used when the original is uploaded as is.
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Jpeg => "image/jpeg",
            Self::Png => "image/png",
            Self::WebP => "image/webp",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Jpeg => "JPEG",
            Self::Png => "PNG",
            Self::WebP => "WebP",
        }
    }
}

const ACCEPTED: &str = "send JPEG, PNG or WebP";

/// Identifies an accepted format, or says what the data looks like instead.
pub fn sniff(data: &[u8]) -> Result<Format, ImageError> {
    if data.starts_with(&[0xFF, 0xD8, 0xFF]) {
        return Ok(Format::Jpeg);
    }
    if data.starts_with(b"\x89PNG\r\n\x1a\n") {
        return Ok(Format::Png);
    }
    if data.len() >= 12 && &data[..4] == b"RIFF" && &data[8..12] == b"WEBP" {
        return Ok(Format::WebP);
    }
    let found = describe(data);
    Err(ImageError::Invalid(match found {
        Found::Empty => "the image is empty".to_string(),
        Found::Named(name) => format!("{name} images are not accepted: {ACCEPTED}"),
        Found::Other(what) => format!("the data is not an image ({what}): {ACCEPTED}"),
    }))
}

enum Found {
    Empty,
    Named(&'static str),
    Other(String),
}

/// Names common formats that are refused, so the error tells the author what they actually sent.
fn describe(data: &[u8]) -> Found {
    if data.is_empty() {
        return Found::Empty;
    }
    let starts = |magic: &[u8]| data.starts_with(magic);
    if starts(b"GIF87a") || starts(b"GIF89a") {
        return Found::Named("GIF");
    }
    if starts(b"BM") && data.len() >= 14 {
        return Found::Named("BMP");
    }
    if starts(b"II*\0") || starts(b"MM\0*") {
        return Found::Named("TIFF");
    }
    if starts(&[0, 0, 1, 0]) && data.len() >= 6 {
        return Found::Named("ICO");
    }
    if starts(&[0xFF, 0x0A]) || starts(b"\0\0\0\x0cJXL \r\n\x87\n") {
        return Found::Named("JPEG XL");
    }
    if data.len() >= 12 && &data[4..8] == b"ftyp" {
        let brand = &data[8..12];
        return match brand {
            b"avif" | b"avis" => Found::Named("AVIF"),
            b"heic" | b"heix" | b"hevc" | b"heim" | b"heis" | b"mif1" | b"msf1" => {
                Found::Named("HEIC")
            }
            _ => Found::Other(format!(
                "an ISO media file of brand '{}'",
                String::from_utf8_lossy(brand)
            )),
        };
    }
    if data.len() >= 12 && &data[..4] == b"RIFF" {
        return Found::Other(format!(
            "a RIFF file of type '{}'",
            String::from_utf8_lossy(&data[8..12])
        ));
    }
    if starts(b"%PDF") {
        return Found::Named("PDF");
    }
    let head = &data[..data.len().min(512)];
    let text = String::from_utf8_lossy(head);
    let trimmed = text
        .trim_start_matches('\u{feff}')
        .trim_start()
        .to_ascii_lowercase();
    if trimmed.starts_with("<svg") || (trimmed.starts_with("<?xml") && trimmed.contains("<svg")) {
        return Found::Named("SVG");
    }
    if trimmed.starts_with("<!doctype html") || trimmed.starts_with("<html") {
        return Found::Other("an HTML page".into());
    }
    if trimmed.starts_with("<?xml") {
        return Found::Other("an XML document".into());
    }
    if trimmed.starts_with('{') || trimmed.starts_with('[') {
        return Found::Other("JSON or other text".into());
    }
    if std::str::from_utf8(head).is_ok()
        && head
            .iter()
            .all(|b| !b.is_ascii_control() || b.is_ascii_whitespace())
    {
        return Found::Other("text".into());
    }
    let hex: Vec<String> = data.iter().take(8).map(|b| format!("{b:02x}")).collect();
    Found::Other(format!("unrecognised data starting {}", hex.join(" ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(data: &[u8]) -> String {
        match sniff(data) {
            Err(ImageError::Invalid(m)) => m,
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    #[test]
    fn names_refused_formats() {
        assert!(message(b"GIF89a\x01\x00\x01\x00").starts_with("GIF images are not accepted"));
        assert!(message(b"BM\0\0\0\0\0\0\0\0\0\0\0\0\0\0").starts_with("BMP"));
        assert!(message(b"II*\0\x08\0\0\0").starts_with("TIFF"));
        assert!(message(b"\0\0\0\x18ftypheic\0\0\0\0").starts_with("HEIC"));
        assert!(message(b"<?xml version=\"1.0\"?><svg></svg>").starts_with("SVG"));
        assert!(message(b"hello world").contains("(text)"));
        assert!(message(b"").contains("empty"));
    }

    #[test]
    fn accepts_magic() {
        assert_eq!(sniff(&[0xFF, 0xD8, 0xFF, 0xE0]).ok(), Some(Format::Jpeg));
        assert_eq!(sniff(b"RIFF\0\0\0\0WEBPVP8 ").ok(), Some(Format::WebP));
    }
}
