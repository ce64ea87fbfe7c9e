//! Answers that are true: GOWA says "not on whatsapp" when its lookup fails (throttled, timed out), and the
//! worker must not pass that on as final. Against the mock's world, with and without lookup faults.

use std::collections::HashMap;

use avatar_worker::protocol::{ErrorCode, JobKind, JobResult, Phone, Status};
use mock_server::world::{Outcome, outcome};
use serde_json::json;

use crate::helpers::{AppOptions, TestApp, mock_config, spawn_app_with};

const JOBS: usize = 1000;
const DEVICES: [&str; 2] = ["dev-a", "dev-b"];

fn phone(i: usize) -> String {
    format!("62813{i:08}")
}

/// A worker in front of a mock with the default world's mix of answers (kept alive by the caller).
async fn world_app() -> (TestApp, mock_server::MockServer) {
    let world = mock_server::spawn(mock_server::Config {
        shares: mock_server::Shares::default(),
        ..mock_config(DEVICES.iter().map(|d| d.to_string()).collect())
    })
    .await
    .expect("mock");
    let url = world.base_url();
    let app = spawn_app_with(AppOptions {
        devices: DEVICES.iter().map(|d| d.to_string()).collect(),
        configure: Box::new(move |s| {
            s.gateway.base_url = url;
            s.retry.max_attempts = 5;
            // A final answer's chance of being a failed lookup is at most `max_false_rate` per number: at
            // the default 1e-4, some 950 numbers on WhatsApp behind 30 % failing lookups would make one
            // false final in about 16 runs. At 1e-7 (14 answers in a row at most) that is one in 20,000,
            // so a false final here means the worker trusted an answer it should not have.
            s.not_on_whatsapp.max_false_rate = 1e-7;
            s.not_on_whatsapp.max_checks = 14;
        }),
        ..AppOptions::default()
    })
    .await;
    (app, world)
}

struct Run {
    results: HashMap<String, JobResult>,
    gateway_calls: usize,
}

async fn run(app: &mut TestApp, faults: serde_json::Value, world_url: &str) -> Run {
    let http = reqwest::Client::new();
    let put = http
        .put(format!("{world_url}/_mock/faults"))
        .basic_auth(crate::helpers::USER, Some(crate::helpers::PASSWORD))
        .json(&faults)
        .send()
        .await
        .expect("faults set");
    assert!(put.status().is_success());
    for i in 0..JOBS {
        let device = DEVICES[i % DEVICES.len()];
        let job = json!({"job_id": format!("t{i}"), "device_id": device, "phone": phone(i)});
        app.publish_json(JobKind::Fetch, &job).await;
    }
    let mut results = HashMap::new();
    while results.len() < JOBS {
        let result = app.next_result().await;
        results.insert(result.job_id.to_string(), result);
    }
    let log: serde_json::Value = http
        .get(format!("{world_url}/_mock/requests"))
        .basic_auth(crate::helpers::USER, Some(crate::helpers::PASSWORD))
        .send()
        .await
        .expect("request log")
        .json()
        .await
        .expect("JSON");
    let gateway_calls = log["results"].as_array().map_or(0, |all| {
        all.iter().filter(|r| r["path"] == "/user/avatar").count()
    });
    Run {
        results,
        gateway_calls,
    }
}

fn world(i: usize) -> Outcome {
    let jid = Phone::parse(&phone(i)).unwrap();
    outcome(
        mock_server::Config::default().seed,
        &mock_server::Shares::default(),
        jid.as_jid(),
    )
}

fn is_not_on_whatsapp(result: &JobResult) -> bool {
    result.error.as_ref().map(|e| e.code) == Some(ErrorCode::NotOnWhatsapp)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttled_lookups_never_make_a_final_not_on_whatsapp() {
    let (mut app, world_mock) = world_app().await;
    let url = world_mock.base_url();
    let faulty = run(&mut app, json!({"lookup_error": 0.3}), &url).await;
    let mut finals = 0;
    let mut true_finals = 0;
    let mut unconfirmed = 0;
    for i in 0..JOBS {
        let result = &faulty.results[&format!("t{i}")];
        let truth = world(i);
        match result.error.as_ref() {
            Some(err) if err.code == ErrorCode::NotOnWhatsapp => match err.confirmed {
                Some(true) => {
                    assert!(!err.retryable, "a confirmed answer is final");
                    finals += 1;
                    true_finals += usize::from(truth == Outcome::NotOnWhatsapp);
                }
                Some(false) => {
                    assert!(err.retryable, "an unconfirmed answer says to try again");
                    unconfirmed += 1;
                }
                None => panic!("a not_on_whatsapp answer always says whether it is confirmed"),
            },
            Some(err) => panic!("job {i}: unexpected error {err:?}"),
            None => assert_eq!(
                result.status,
                truth_status(&truth),
                "job {i}: a definite answer is the world's"
            ),
        }
    }
    let precision = true_finals as f64 / finals.max(1) as f64;
    eprintln!(
        "30 % lookup_error over {JOBS} jobs: {finals} final not_on_whatsapp ({true_finals} true, {:.1} %), \
         {unconfirmed} unconfirmed, {} gateway calls",
        precision * 100.0,
        faulty.gateway_calls
    );
    assert!(finals > 0, "true answers are still confirmed");
    assert!(precision >= 0.99, "at least 99 % of final answers are true");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_faults_every_answer_is_the_worlds() {
    let (mut app, world_mock) = world_app().await;
    let url = world_mock.base_url();
    let clean = run(&mut app, json!({}), &url).await;
    let mut not_on_whatsapp = 0;
    for i in 0..JOBS {
        let result = &clean.results[&format!("t{i}")];
        let truth = world(i);
        if truth == Outcome::NotOnWhatsapp {
            not_on_whatsapp += 1;
            assert!(is_not_on_whatsapp(result), "job {i}: {result:?}");
            let err = result.error.as_ref().unwrap();
            assert_eq!((err.confirmed, err.retryable), (Some(true), false));
        } else {
            assert!(result.error.is_none(), "job {i}: {result:?}");
            assert_eq!(result.status, truth_status(&truth), "job {i}");
        }
    }
    let extra = clean.gateway_calls - JOBS;
    eprintln!(
        "no faults, {JOBS} jobs: {not_on_whatsapp} not on WhatsApp, {} gateway calls ({extra} extra: {:.1} %)",
        clean.gateway_calls,
        extra as f64 * 100.0 / JOBS as f64
    );
    assert!(not_on_whatsapp > 0);
    assert!(
        extra <= not_on_whatsapp * 8,
        "each not-on-WhatsApp number is asked at most max_checks times"
    );
}

fn truth_status(truth: &Outcome) -> Status {
    match truth {
        Outcome::Set { .. } => Status::Ok,
        Outcome::NotSet => Status::NotSet,
        Outcome::Hidden => Status::Hidden,
        Outcome::NotOnWhatsapp => Status::Error,
    }
}
