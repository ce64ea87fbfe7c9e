//! Device lanes: a device's backlog waits in the broker at two publishes a job (an unpaced fetch needs no
//! lane and takes none), updates keep their order
//! across replicas, interactive jobs overtake, lanes are found again after every replica restarted, idle
//! ones are removed and busy ones never are, another replica takes a killed owner's lanes. The pace itself
//! is measured in `pacing.rs`, a binary of its own.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use avatar_worker::lanes::names::{Group, LaneKind, LaneNames};
use avatar_worker::protocol::{DeviceId, JobKind};
use lapin::BasicProperties;
use serde_json::{Value, json};

use crate::helpers::{
    AppOptions, TestApp, WAIT, answers, busiest_window, fetches, limit, paced, spawn_app_with,
};

fn lane(app: &TestApp, device: &str, kind: LaneKind) -> String {
    let device = DeviceId::parse(device).unwrap();
    LaneNames::new(&app.settings.topology.prefix).lane(Some(&device), kind)
}

#[tokio::test]
async fn a_backlog_waits_in_its_lane_at_two_publishes_a_job() {
    const JOBS: usize = 1000;
    let mut app = spawn_app_with(AppOptions {
        configure: paced(limit(200.0, 1, 2)),
        ..AppOptions::default()
    })
    .await;
    app.publish_all(
        JobKind::Fetch,
        &fetches("b", "dev-a", JOBS),
        BasicProperties::default(),
    )
    .await;
    let lane = lane(&app, "dev-a", LaneKind::Fetch);
    let mut deepest = 0;
    let deadline = Instant::now() + WAIT;
    while deepest < JOBS as u32 / 2 && Instant::now() < deadline {
        if let Ok(depth) = app.try_queue_depth(&lane).await {
            deepest = deepest.max(depth);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        deepest >= JOBS as u32 / 2,
        "the backlog waits in the broker: {deepest}"
    );
    answers(&mut app, JOBS).await;
    let publishes = app.metric("avatar_worker_job_publishes_total").await;
    eprintln!(
        "{JOBS} jobs for one device: {publishes} publishes besides the results, {:.2} a job",
        publishes / JOBS as f64
    );
    assert!(
        publishes / JOBS as f64 <= 2.0,
        "two hops a job at most: {publishes}"
    );
}

#[tokio::test]
async fn unpaced_fetches_run_where_they_are_read_without_a_lane() {
    const JOBS: usize = 300;
    // The test app runs with pacing off.
    let mut app = spawn_app_with(AppOptions::default()).await;
    app.publish_all(
        JobKind::Fetch,
        &fetches("u", "dev-a", JOBS),
        BasicProperties::default(),
    )
    .await;
    let (answered, _) = answers(&mut app, JOBS).await;
    assert_eq!(answered.len(), JOBS);
    let publishes = app.metric("avatar_worker_job_publishes_total").await;
    assert_eq!(
        publishes, 0.0,
        "no hop: each fetch was run where it was read"
    );
    assert_eq!(app.metric("avatar_worker_lanes_running").await, 0.0);
    let lane = lane(&app, "dev-a", LaneKind::Fetch);
    assert!(
        app.try_queue_depth(&lane).await.is_err(),
        "no lane was declared"
    );
}

#[tokio::test]
async fn an_interactive_job_overtakes_its_devices_backlog() {
    const BULK: usize = 5000;
    let mut app = spawn_app_with(AppOptions {
        configure: paced(limit(2.0, 1, 1)),
        ..AppOptions::default()
    })
    .await;
    app.publish_all(
        JobKind::Fetch,
        &fetches("bulk", "dev-a", BULK),
        BasicProperties::default(),
    )
    .await;
    let lane = lane(&app, "dev-a", LaneKind::Fetch);
    let device = DeviceId::parse("dev-a").unwrap();
    let group = Group::shard_of(Some(&device), app.settings.lanes.groups);
    let inbox = LaneNames::new(&app.settings.topology.prefix).inbox(&group);
    // Setting up: the 5,000 jobs move to their lane (slower when the machine is busy), where the device
    // takes two a second meanwhile.
    let deadline = Instant::now() + 3 * WAIT;
    loop {
        let waiting = app.try_queue_depth(&app.names.fetch).await.unwrap_or(1)
            + app.try_queue_depth(&inbox).await.unwrap_or(1);
        if waiting == 0 && app.try_queue_depth(&lane).await.unwrap_or(0) > 0 {
            break;
        }
        assert!(Instant::now() < deadline, "the backlog reaches its lane");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let interactive_lane =
        LaneNames::new(&app.settings.topology.prefix).lane(Some(&device), LaneKind::FetchNow);
    assert!(
        app.try_queue_depth(&interactive_lane).await.is_err(),
        "a device's interactive lane is created by its first interactive job"
    );
    let asked = Instant::now();
    let job = json!({"job_id": "now", "device_id": "dev-a", "phone": "6281499999999", "interactive": true});
    app.publish_json(JobKind::Fetch, &job).await;
    loop {
        let result = app.next_result().await;
        if result.job_id.as_str() == "now" {
            break;
        }
    }
    let waited = asked.elapsed();
    eprintln!("interactive job behind {BULK} bulk jobs at 2/s: answered in {waited:?}");
    assert!(waited < Duration::from_secs(2), "{waited:?}");
    // The AMQP priority marks a job interactive too.
    let urgent = BasicProperties::default().with_priority(9);
    let job = json!({"job_id": "urgent", "device_id": "dev-a", "phone": "6281499999998"});
    let asked = Instant::now();
    app.publish_all(JobKind::Fetch, &[job], urgent).await;
    while app.next_result().await.job_id.as_str() != "urgent" {}
    assert!(
        asked.elapsed() < Duration::from_secs(2),
        "{:?}",
        asked.elapsed()
    );
    assert!(
        app.try_queue_depth(&lane).await.unwrap_or(0) > BULK as u32 / 2,
        "the bulk backlog is still there: the interactive jobs overtook it"
    );
}

#[tokio::test]
async fn updates_apply_in_publish_order_across_replicas() {
    const UPDATES: usize = 8;
    let mut app = spawn_app_with(AppOptions {
        configure: Box::new(|s| {
            s.pacing.enabled = true;
            s.pacing.update = limit(50.0, 1, 1);
        }),
        start_worker: false,
        ..AppOptions::default()
    })
    .await;
    for _ in 0..3 {
        app.start_replica().await;
    }
    let jobs: Vec<Value> = (0..UPDATES)
        .map(|i| {
            use base64::Engine;
            let image = crate::update::encoded(400 + i as u32 * 10, 400, image::ImageFormat::Png);
            let b64 = base64::engine::general_purpose::STANDARD.encode(image);
            json!({"job_id": format!("u{i}"), "device_id": "dev-a", "image": {"base64": b64}})
        })
        .collect();
    app.publish_all(JobKind::Update, &jobs, BasicProperties::default())
        .await;
    let results = app.results(UPDATES).await;
    let order: Vec<&str> = results.iter().map(|r| r.job_id.as_str()).collect();
    let expected: Vec<String> = (0..UPDATES).map(|i| format!("u{i}")).collect();
    assert_eq!(order, expected, "applied in publish order");
    let last = results[UPDATES - 1].image.as_ref().unwrap();
    let stored = app.get("/_mock/devices/dev-a/avatar").await["results"].clone();
    assert_eq!(
        stored["uploaded_sha256"],
        json!(last.sha256),
        "the last one wins"
    );
}

#[tokio::test]
async fn lanes_with_jobs_are_served_again_after_every_replica_restarts() {
    const JOBS: usize = 30;
    let mut app = spawn_app_with(AppOptions {
        configure: paced(limit(10.0, 1, 1)),
        ..AppOptions::default()
    })
    .await;
    app.publish_all(
        JobKind::Fetch,
        &fetches("r", "dev-a", JOBS),
        BasicProperties::default(),
    )
    .await;
    let mut seen = HashSet::new();
    while seen.len() < 3 {
        seen.insert(app.next_result().await.job_id.to_string());
    }
    app.stop_worker().await;
    let lane = lane(&app, "dev-a", LaneKind::Fetch);
    let waiting = app
        .try_queue_depth(&lane)
        .await
        .expect("the lane is still there");
    assert!(waiting > 0, "jobs wait in the lane while no worker runs");
    // A worker that never saw these jobs finds the lane in its group's claim.
    app.start_worker().await;
    while seen.len() < JOBS {
        seen.insert(app.next_result().await.job_id.to_string());
    }
}

/// Claims written before interactive lanes were created on demand hold one marker for a device's fetch
/// lanes, both of them; a worker of this release still serves both and rewrites the marker.
#[tokio::test]
async fn lanes_recorded_by_an_older_release_are_served() {
    use lapin::options::BasicPublishOptions;
    use lapin::types::{AMQPValue, FieldTable, ShortString};
    let mut app = spawn_app_with(AppOptions {
        configure: paced(limit(10.0, 1, 1)),
        start_worker: false,
        ..AppOptions::default()
    })
    .await;
    let names = LaneNames::new(&app.settings.topology.prefix);
    let device = DeviceId::parse("dev-a").unwrap();
    let claim = names.claim(&Group::shard_of(Some(&device), app.settings.lanes.groups));
    let queue_type = app.settings.topology.queue_type;
    let mut single_active = FieldTable::default();
    single_active.insert("x-single-active-consumer".into(), AMQPValue::Boolean(true));
    avatar_worker::broker::declare_queue(&app.channel, &claim, queue_type, single_active)
        .await
        .unwrap();
    let mut marker = FieldTable::default();
    for (key, value) in [
        ("x-avatar-claim", "lane"),
        ("x-avatar-kind", "fetch"),
        ("x-avatar-device", "dev-a"),
    ] {
        marker.insert(ShortString::from(key), AMQPValue::LongString(value.into()));
    }
    let mut messages = vec![(
        claim,
        Vec::new(),
        BasicProperties::default().with_headers(marker),
    )];
    for (kind, job_id) in [(LaneKind::Fetch, "bulk"), (LaneKind::FetchNow, "now")] {
        let queue = lane(&app, "dev-a", kind);
        avatar_worker::broker::declare_queue(
            &app.channel,
            &queue,
            queue_type,
            FieldTable::default(),
        )
        .await
        .unwrap();
        let job = json!({"job_id": job_id, "device_id": "dev-a", "phone": "6281400000001"});
        app.note_device(job.to_string().as_bytes());
        messages.push((
            queue,
            job.to_string().into_bytes(),
            BasicProperties::default(),
        ));
    }
    for (queue, body, properties) in messages {
        let confirm = app
            .channel
            .basic_publish(
                "".into(),
                queue.as_str().into(),
                BasicPublishOptions::default(),
                &body,
                properties.with_delivery_mode(2),
            )
            .await
            .unwrap()
            .await
            .unwrap();
        assert!(confirm.is_ack());
    }
    app.start_worker().await;
    let answered: HashSet<String> = app
        .results(2)
        .await
        .into_iter()
        .map(|result| result.job_id.to_string())
        .collect();
    assert_eq!(answered, HashSet::from(["bulk".into(), "now".into()]));
}

#[tokio::test]
async fn idle_lanes_are_removed_and_a_lane_with_jobs_never_is() {
    let mut app = spawn_app_with(AppOptions {
        devices: vec!["dev-a".into(), "dev-b".into()],
        configure: Box::new(|s| {
            s.pacing.enabled = true;
            s.pacing.fetch = limit(0.0, 1, 4);
            // dev-b's turns are 100 s apart: its lane pauses with its jobs in the broker.
            s.pacing.devices = vec![avatar_worker::settings::DevicePacing {
                devices: vec![DeviceId::parse("dev-b").unwrap()],
                fetch: Some(limit(0.01, 1, 1)),
                update: None,
            }];
            s.lanes.idle = Duration::from_millis(300);
            s.lanes.max_hold = Duration::from_millis(500);
        }),
        ..AppOptions::default()
    })
    .await;
    app.publish_all(
        JobKind::Fetch,
        &fetches("b", "dev-b", 4),
        BasicProperties::default(),
    )
    .await;
    app.publish_all(
        JobKind::Fetch,
        &fetches("a", "dev-a", 3),
        BasicProperties::default(),
    )
    .await;
    answers(&mut app, 4).await; // dev-a's three and dev-b's first
    // dev-b's lane pauses once its first job is settled: it stops consuming, its other three jobs in it.
    let b_lane = lane(&app, "dev-b", LaneKind::Fetch);
    let deadline = Instant::now() + WAIT;
    while app.try_queue_counts(&b_lane).await.ok() != Some((3, 0)) {
        assert!(
            Instant::now() < deadline,
            "dev-b's lane pauses, its jobs in it"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A job for dev-a after that pause: its lane, idle again afterwards, is removed by a sweep that also
    // saw dev-b's lane paused with jobs.
    app.publish_all(
        JobKind::Fetch,
        &fetches("late", "dev-a", 1),
        BasicProperties::default(),
    )
    .await;
    answers(&mut app, 1).await;
    let a_lane = lane(&app, "dev-a", LaneKind::Fetch);
    let deadline = Instant::now() + WAIT;
    while app.try_queue_depth(&a_lane).await.is_ok() {
        assert!(Instant::now() < deadline, "an idle lane is removed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        app.try_queue_depth(&b_lane).await.ok(),
        Some(3),
        "a lane with jobs stays, its jobs with it"
    );
}

/// A free TCP port on loopback, for a worker process's admin server.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("a free port")
}

async fn lanes_running(http: &reqwest::Client, port: u16) -> f64 {
    let Ok(response) = http
        .get(format!("http://127.0.0.1:{port}/metrics"))
        .send()
        .await
    else {
        return 0.0;
    };
    let text = response.text().await.unwrap_or_default();
    text.lines()
        .find_map(|line| line.strip_prefix("avatar_worker_lanes_running "))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test]
async fn another_replica_takes_over_a_killed_owners_lane_within_seconds() {
    const JOBS: usize = 200;
    let (rate, burst, concurrency) = (10.0, 2, 2);
    let mut app = spawn_app_with(AppOptions {
        configure: paced(limit(rate, burst, concurrency)),
        start_worker: false,
        ..AppOptions::default()
    })
    .await;
    let pacing = [
        ("AVATAR_WORKER__PACING__FETCH__RATE_PER_S", rate.to_string()),
        ("AVATAR_WORKER__PACING__FETCH__BURST", burst.to_string()),
        (
            "AVATAR_WORKER__PACING__FETCH__CONCURRENCY",
            concurrency.to_string(),
        ),
        ("AVATAR_WORKER__PACING__ENABLED", "true".to_string()),
    ];
    let ports = [free_port(), free_port()];
    let mut replicas: Vec<_> = ports
        .iter()
        .map(|port| {
            let mut env = pacing.to_vec();
            env.push(("AVATAR_WORKER__ADMIN__BIND", format!("127.0.0.1:{port}")));
            crate::process::WorkerProcess::start(&app, &env)
        })
        .collect();
    app.publish_all(
        JobKind::Fetch,
        &fetches("k", "dev-a", JOBS),
        BasicProperties::default(),
    )
    .await;
    let mut seen = HashSet::new();
    let mut total = 0;
    while seen.len() < 40 {
        seen.insert(app.next_result().await.job_id.to_string());
        total += 1;
    }
    let http = reqwest::Client::new();
    let mut owner = None;
    for (i, port) in ports.iter().enumerate() {
        if lanes_running(&http, *port).await >= 1.0 {
            owner = Some(i);
        }
    }
    let owner = owner.expect("one replica serves the device's lane");
    replicas[owner].kill_hard();
    let killed = Instant::now();
    let before = seen.len();
    let mut first_after = None;
    while seen.len() < JOBS {
        let result = app.next_result().await;
        assert!(result.error.is_none(), "{result:?}");
        if seen.insert(result.job_id.to_string())
            && first_after.is_none()
            && seen.len() > before + 2
        {
            first_after = Some(killed.elapsed());
        }
        total += 1;
    }
    let handover = first_after.unwrap_or_default();
    let duplicates = total - JOBS;
    let starts = app.gateway_starts().await;
    let most = busiest_window(&starts["dev-a"], 0.9);
    eprintln!(
        "owner killed after {before} answers: the other replica answered again after {handover:?}; \
         {duplicates} answered twice; at most {most} calls within a second"
    );
    assert!(
        handover < Duration::from_secs(5),
        "taken over within seconds: {handover:?}"
    );
    assert!(
        duplicates <= concurrency,
        "only the jobs in flight at the kill: {duplicates}"
    );
    assert!(
        most <= burst as usize + rate as usize,
        "the limit holds across the hand-over: {most}"
    );
    drop(replicas);
}
