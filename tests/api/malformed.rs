use avatar_worker::broker::headers;
use avatar_worker::protocol::{ErrorCode, JobKind};
use lapin::BasicProperties;

use crate::helpers::{header, spawn_app};

#[tokio::test]
async fn malformed_jobs_are_answered_and_dead_lettered_never_requeued() {
    let mut app = spawn_app().await;
    let bodies: [(JobKind, &[u8]); 7] = [
        (JobKind::Fetch, b"not json at all"),
        (JobKind::Fetch, b"[1, 2, 3]"),
        (JobKind::Fetch, br#"{"phone": true}"#),
        (JobKind::Fetch, br#"{"is_preview": true}"#),
        (JobKind::Fetch, b"\xff\xfe{\"phone\":\"1\"}"),
        (JobKind::Update, br#"{"device_id": "dev-a"}"#),
        (JobKind::Update, br#"{"image": {"file": "x"}}"#),
    ];
    for (i, (kind, body)) in bodies.iter().enumerate() {
        let properties = BasicProperties::default().with_message_id(format!("bad-{i}").into());
        app.publish_raw(*kind, body, properties).await;
    }
    let results = app.results(bodies.len()).await;
    for (i, (kind, _)) in bodies.iter().enumerate() {
        let id = format!("bad-{i}");
        let result = results.iter().find(|r| r.job_id.as_str() == id).expect(&id);
        assert_eq!(result.kind, *kind);
        let error = result.error.as_ref().unwrap();
        assert_eq!(
            (error.code, error.retryable),
            (ErrorCode::InvalidJob, false),
            "{id}: {error:?}"
        );
    }
    let dead = app.dead_letters(bodies.len()).await;
    for message in &dead {
        let props = &message.properties;
        assert_eq!(
            header(props, headers::REASON).as_deref(),
            Some("invalid_job")
        );
        assert_eq!(
            header(props, headers::ERROR_CODE).as_deref(),
            Some("invalid_job")
        );
        let id = header(props, headers::JOB_ID).unwrap();
        let i: usize = id.trim_start_matches("bad-").parse().unwrap();
        assert_eq!(message.data, bodies[i].1, "the original body is kept");
        assert!(header(props, headers::ERROR_MESSAGE).is_some());
    }
    app.stop_worker().await;
    assert_eq!(
        app.queue_depth(&app.names.fetch.clone()).await,
        0,
        "nothing was requeued"
    );
    assert_eq!(
        app.queue_depth(&app.names.update.clone()).await,
        0,
        "nothing was requeued"
    );
}

#[tokio::test]
async fn a_result_with_nowhere_to_go_dead_letters_the_job() {
    let mut app = spawn_app().await;
    let properties = BasicProperties::default()
        .with_reply_to("amq.gen-no-such-queue-anywhere".into())
        .with_message_id("lost".into());
    app.publish_raw(JobKind::Fetch, br#"{"phone":"6281200000009"}"#, properties)
        .await;
    let dead = app.dead_letters(1).await;
    let props = &dead[0].properties;
    assert_eq!(
        header(props, headers::REASON).as_deref(),
        Some("result_unroutable")
    );
    assert_eq!(header(props, headers::JOB_ID).as_deref(), Some("lost"));
    let requests = app.get("/_mock/requests").await;
    let avatar_calls = requests["results"].as_array().map_or(0, |all| {
        all.iter().filter(|r| r["path"] == "/user/avatar").count()
    });
    assert_eq!(
        avatar_calls, 0,
        "no WhatsApp query is spent on an answer nobody can read"
    );
    app.stop_worker().await;
    assert_eq!(
        app.queue_depth(&app.names.fetch.clone()).await,
        0,
        "acked after dead-lettering"
    );
}
