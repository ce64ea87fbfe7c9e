use avatar_worker::protocol::{JobKind, Status};
use lapin::BasicProperties;
use lapin::options::QueueDeclareOptions;
use lapin::types::FieldTable;
use serde_json::{Value, json};

use crate::helpers::{AppOptions, consume, next_from, spawn_app, spawn_app_with};

/// The device header of every `GET /user/avatar` the mock saw.
async fn device_headers(app: &crate::helpers::TestApp) -> Vec<Option<String>> {
    let log = app.get("/_mock/requests").await;
    let entries = log["results"].as_array().cloned().unwrap_or_default();
    entries
        .iter()
        .filter(|e| e["path"] == "/user/avatar")
        .map(|e| e["device_id"].as_str().map(str::to_string))
        .collect()
}

#[tokio::test]
async fn each_job_reaches_the_gateway_with_its_device() {
    let mut app = spawn_app_with(AppOptions {
        devices: vec!["dev-a".into(), "dev-b".into()],
        ..AppOptions::default()
    })
    .await;
    for (i, device) in ["dev-a", "dev-b", "dev-a", "dev-b"].iter().enumerate() {
        app.publish_json(
            JobKind::Fetch,
            &json!({"job_id": format!("j{i}"), "device_id": device, "phone": "6281200000001"}),
        )
        .await;
    }
    let results = app.results(4).await;
    assert!(results.iter().all(|r| r.error.is_none()), "{results:?}");
    let mut headers = device_headers(&app).await;
    headers.sort();
    assert_eq!(
        headers,
        vec![
            Some("dev-a".into()),
            Some("dev-a".into()),
            Some("dev-b".into()),
            Some("dev-b".into())
        ]
    );
    for result in &results {
        let expected = if result.job_id.as_str() == "j0" || result.job_id.as_str() == "j2" {
            "dev-a"
        } else {
            "dev-b"
        };
        assert_eq!(result.device_id.as_ref().unwrap().as_str(), expected);
    }
}

#[tokio::test]
async fn without_a_device_the_gateway_default_applies() {
    let mut app = spawn_app().await;
    app.publish_json(JobKind::Fetch, &json!({"phone": "6281200000002"}))
        .await;
    let result = app.next_result().await;
    assert!(result.error.is_none(), "{result:?}");
    assert!(result.device_id.is_none());
    assert_eq!(device_headers(&app).await, vec![None]);
}

#[tokio::test]
async fn reply_to_correlation_id_and_message_id_are_honoured() {
    let mut app = spawn_app().await;
    let channel = app.connection.create_channel().await.unwrap();
    let reply = channel
        .queue_declare(
            "".into(),
            QueueDeclareOptions {
                exclusive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    let mut replies = consume(&app.connection, reply.name().as_str()).await;

    let properties = BasicProperties::default()
        .with_reply_to(reply.name().clone())
        .with_correlation_id("corr-42".into())
        .with_message_id("msg-7".into());
    app.publish_raw(JobKind::Fetch, br#"{"phone":"6281200000003"}"#, properties)
        .await;
    let (result, delivery) = next_from(&mut replies).await;
    assert_eq!(
        result.job_id.as_str(),
        "msg-7",
        "message_id is the job id when the body has none"
    );
    assert_eq!(
        delivery
            .properties
            .correlation_id()
            .as_ref()
            .unwrap()
            .as_str(),
        "corr-42"
    );
    assert_eq!(
        delivery.properties.delivery_mode(),
        &Some(2),
        "results are persistent"
    );

    // Without correlation_id the result carries the job id; without reply_to it goes to the results queue.
    app.publish_json(
        JobKind::Fetch,
        &json!({"job_id": "body-id", "phone": "6281200000003"}),
    )
    .await;
    let (result, delivery) = app.next_result_delivery().await;
    assert_eq!(result.job_id.as_str(), "body-id");
    assert_eq!(
        delivery
            .properties
            .correlation_id()
            .as_ref()
            .unwrap()
            .as_str(),
        "body-id"
    );
    assert_ne!(result.status, Status::Error);
    let _: Value = serde_json::from_slice(&delivery.data).unwrap();
}

#[tokio::test]
async fn routed_devices_go_to_their_own_gateway() {
    let second = mock_server::spawn(crate::helpers::mock_config(vec!["dev-b".into()]))
        .await
        .unwrap();
    let second_url = second.base_url();
    let mut app = spawn_app_with(AppOptions {
        configure: Box::new(move |s| {
            s.gateway.routes = vec![avatar_worker::settings::GatewayRoute {
                devices: vec![avatar_worker::protocol::DeviceId::parse("dev-b").unwrap()],
                base_url: Some(second_url),
                username: None,
                password: None,
                timeout: None,
            }];
        }),
        ..AppOptions::default()
    })
    .await;
    for device in ["dev-a", "dev-b"] {
        app.publish_json(
            JobKind::Fetch,
            &json!({"job_id": device, "device_id": device, "phone": "6281200000004"}),
        )
        .await;
    }
    let results = app.results(2).await;
    assert!(results.iter().all(|r| r.error.is_none()), "{results:?}");
    assert_eq!(device_headers(&app).await, vec![Some("dev-a".into())]);
    let log: Value = app
        .http
        .get(format!("{}/_mock/requests", second.base_url()))
        .basic_auth(crate::helpers::USER, Some(crate::helpers::PASSWORD))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let seen: Vec<&str> = log["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["device_id"].as_str())
        .collect();
    assert_eq!(
        seen,
        ["dev-b"],
        "the second gateway served dev-b, with the shared credentials"
    );
}
