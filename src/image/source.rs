//! Turning a job's image source into raw bytes, under the byte limit.

use base64::Engine;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};

use super::ImageError;

/// Job authors paste base64 from many tools: accept missing padding and either alphabet.
const STANDARD: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);
const URL_SAFE: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Decodes base64 (optionally a `data:` URL), refusing it from its length alone when the result
/// would exceed `max_bytes`, so an oversized job costs no decoding.
pub fn decode_base64(text: &str, max_bytes: usize) -> Result<Vec<u8>, ImageError> {
    let payload = match text.trim_start().strip_prefix("data:") {
        Some(rest) => match rest.split_once(',') {
            Some((meta, data)) if meta.ends_with(";base64") => data,
            _ => {
                return Err(ImageError::Invalid(
                    "the image data URL is not base64-encoded".into(),
                ));
            }
        },
        None => text,
    };
    let compact: Vec<u8> = payload
        .bytes()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    let estimated = compact.len() / 4 * 3 + (compact.len() % 4).saturating_sub(1);
    let padding = compact.iter().rev().take_while(|&&b| b == b'=').count();
    if estimated.saturating_sub(padding) > max_bytes {
        return Err(ImageError::TooLarge(format!(
            "the base64 image decodes to about {} bytes; the limit is {max_bytes} (image.max_bytes)",
            estimated.saturating_sub(padding)
        )));
    }
    STANDARD
        .decode(&compact)
        .or_else(|_| URL_SAFE.decode(&compact))
        .map_err(|e| ImageError::Invalid(format!("the image is not valid base64: {e}")))
}
