use avatar_worker::protocol::{ErrorCode, JobKind, Status};
use base64::Engine;
use serde_json::json;

use crate::helpers::spawn_app;

/// A real encoded image of the given size and format.
pub fn encoded(width: u32, height: u32, format: image::ImageFormat) -> Vec<u8> {
    let img = image::RgbImage::from_fn(width, height, |x, y| {
        image::Rgb([(x * 255 / width) as u8, (y * 255 / height) as u8, 128])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, format).expect("encode");
    out.into_inner()
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[tokio::test]
async fn an_update_changes_the_devices_own_picture() {
    let mut app = spawn_app().await;
    let png = encoded(800, 600, image::ImageFormat::Png);
    app.publish_json(
        JobKind::Update,
        &json!({"job_id": "u1", "device_id": "dev-a", "image": {"base64": b64(&png)}}),
    )
    .await;
    let result = app.next_result().await;
    assert_eq!(result.status, Status::Ok, "{result:?}");
    assert_eq!(result.kind, JobKind::Update);
    let image = result.image.expect("what was uploaded");
    assert_eq!(image.content_type, "image/jpeg");
    assert_eq!((image.width, image.height), (Some(600), Some(600)));
    let stored = app.get("/_mock/devices/dev-a/avatar").await["results"].clone();
    assert_eq!(stored["uploaded_sha256"], json!(image.sha256), "{stored}");
    assert_eq!(stored["width"], json!(600));
}

#[tokio::test]
async fn bad_pictures_are_refused_before_the_gateway() {
    let mut app = spawn_app().await;
    let gif = encoded(300, 300, image::ImageFormat::Gif);
    let cases = [
        ("gif", json!({"base64": b64(&gif)}), ErrorCode::InvalidImage),
        (
            "text",
            json!({"base64": b64(b"hello, this is not a picture")}),
            ErrorCode::InvalidImage,
        ),
        (
            "not-base64",
            json!({"base64": "***"}),
            ErrorCode::InvalidImage,
        ),
        ("empty", json!({"base64": ""}), ErrorCode::InvalidImage),
    ];
    for (id, image, _) in &cases {
        app.publish_json(JobKind::Update, &json!({"job_id": id, "image": image}))
            .await;
    }
    let results = app.results(cases.len()).await;
    for (id, _, code) in &cases {
        let result = results.iter().find(|r| r.job_id.as_str() == *id).expect(id);
        assert_eq!(
            result.error.as_ref().map(|e| e.code),
            Some(*code),
            "{id}: {result:?}"
        );
    }
    let stored = app
        .http
        .get(app.mock_url("/_mock/devices/dev-a/avatar"))
        .basic_auth(crate::helpers::USER, Some(crate::helpers::PASSWORD))
        .send()
        .await
        .unwrap();
    assert_ne!(stored.status(), 200, "nothing reached the gateway");
}

#[tokio::test]
async fn a_large_photo_reaches_the_gateway_scaled_whole_not_cropped() {
    use test_support::pictures::{banded_photo, gateway_crop, mean_abs_diff, scaled_reference};
    let mut app = spawn_app().await;
    let photo = banded_photo();
    let mut jpeg = std::io::Cursor::new(Vec::new());
    image::DynamicImage::ImageRgb8(photo.clone())
        .write_with_encoder(image::codecs::jpeg::JpegEncoder::new_with_quality(
            &mut jpeg, 90,
        ))
        .unwrap();
    app.publish_json(
        JobKind::Update,
        &json!({"device_id": "dev-a", "image": {"base64": b64(jpeg.get_ref())}}),
    )
    .await;
    let result = app.next_result().await;
    assert_eq!(result.status, Status::Ok, "{:?}", result.error);
    let stored = app.get("/_mock/devices/dev-a/avatar").await["results"].clone();
    assert_eq!(
        (stored["width"].as_u64(), stored["height"].as_u64()),
        (Some(640), Some(640))
    );
    assert_eq!(stored["format"], "jpeg");

    // Read the picture back the way a producer would: a fetch of the device's own JID, with the bytes.
    let own = app.get("/devices").await["results"][0]["jid"]
        .as_str()
        .unwrap()
        .to_string();
    let bare = format!("{}@s.whatsapp.net", own.split(['@', ':']).next().unwrap());
    app.publish_json(
        JobKind::Fetch,
        &json!({"device_id": "dev-a", "phone": bare, "download": true}),
    )
    .await;
    let fetched = app.next_result().await;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(fetched.image.expect("downloaded").base64.unwrap())
        .unwrap();
    let held = image::load_from_memory(&bytes).unwrap().to_rgb8();
    assert_eq!(held.dimensions(), (640, 640));
    let to_reference = mean_abs_diff(&held, &scaled_reference(&photo));
    let to_crop = mean_abs_diff(&held, &gateway_crop(&photo));
    assert!(
        to_reference < 6.0,
        "the whole picture, scaled: {to_reference}"
    );
    assert!(to_crop > 40.0, "not the centre crop: {to_crop}");
}
