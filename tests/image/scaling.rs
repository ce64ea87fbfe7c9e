//! The whole picture is scaled into the square: nothing a person would miss is cut off.

use avatar_worker::image::{ImageSettings, normalize_bytes};
use image::{DynamicImage, ImageFormat};
use test_support::pictures::{banded_photo, gateway_crop, mean_abs_diff, scaled_reference};

use crate::helpers::*;

#[test]
fn large_photo_is_scaled_whole_not_centre_cropped() {
    let photo = banded_photo();
    let reference = scaled_reference(&photo);
    let gateway_crop = gateway_crop(&photo);
    for (name, data) in [
        ("jpeg", jpeg(&photo, 90)),
        (
            "png",
            encode(&DynamicImage::ImageRgb8(photo.clone()), ImageFormat::Png),
        ),
    ] {
        let large = ImageSettings {
            max_bytes: 64 * 1024 * 1024,
            ..settings()
        };
        let out = decode_output(&normalize_bytes(&data, &large).expect("normalize"));
        assert_eq!((out.width(), out.height()), (640, 640));
        let to_reference = mean_abs_diff(&out, &reference);
        let to_crop = mean_abs_diff(&out, &gateway_crop);
        assert!(
            to_reference < 4.0,
            "{name}: differs from the scaled reference by {to_reference}"
        );
        assert!(
            to_crop > 40.0,
            "{name}: looks like the centre crop ({to_crop})"
        );
    }
}
