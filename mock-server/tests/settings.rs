//! Account validation and faults as settings: flags, environment names, start values, reset;
//! and how faults are drawn per WhatsApp query (lookup, picture query, community retry).

mod common;

use clap::{CommandFactory, Parser};
use common::*;
use mock_server::config::Cli;
use mock_server::{Config, Faults};
use reqwest::Method;
use serde_json::json;

fn parse(args: &[&str]) -> Result<Config, String> {
    let mut all = vec!["mock-server"];
    all.extend_from_slice(args);
    Cli::try_parse_from(all)
        .map_err(|e| e.to_string())?
        .into_config()
}

#[test]
fn account_validation_is_gowas_flag_and_variable() {
    assert!(
        parse(&[]).expect("defaults").account_validation,
        "on by default"
    );
    assert!(
        !parse(&["--account-validation=false"])
            .expect("=false")
            .account_validation
    );
    assert!(
        !parse(&["--account-validation", "0"])
            .expect("0")
            .account_validation
    );
    assert!(
        parse(&["--account-validation"])
            .expect("bare")
            .account_validation
    );
    assert!(
        parse(&["--account-validation=yes"]).is_err(),
        "not a Go boolean"
    );
    let env = |id: &str| {
        Cli::command()
            .get_arguments()
            .find(|a| a.get_id() == id)
            .and_then(|a| a.get_env())
            .map(|e| e.to_string_lossy().into_owned())
    };
    assert_eq!(
        env("account_validation").as_deref(),
        Some("WHATSAPP_ACCOUNT_VALIDATION")
    );
    assert_eq!(
        env("fault_lookup_error").as_deref(),
        Some("APP_FAULT_LOOKUP_ERROR")
    );
}

#[test]
fn faults_can_be_set_at_start() {
    let c = parse(&[
        "--fault-lookup-error",
        "0.25",
        "--fault-rate-overlimit",
        "0.5",
        "--fault-upload-timeout-ms",
        "100",
    ])
    .expect("faults");
    assert_eq!(c.faults.lookup_error, 0.25);
    assert_eq!(c.faults.rate_overlimit, 0.5);
    assert_eq!(c.faults.upload_timeout_ms, 100);
    assert_eq!(c.faults.timeout_ms, 5000);
    assert!(parse(&["--fault-lookup-error", "2"]).is_err());
}

#[tokio::test]
async fn start_faults_apply_and_come_back_on_reset() {
    let s = start_with(Config {
        devices: vec!["dev1".into()],
        basic_auth: vec![(USER.into(), PASS.into())],
        faults: Faults {
            lookup_error: 1.0,
            ..Faults::default()
        },
        ..Config::default()
    })
    .await;
    control(
        &s,
        Method::PUT,
        "/_mock/contacts/6281300000001",
        Some(json!({"picture": "set"})),
    )
    .await;
    let (status, v) = get_avatar(&s, "phone=6281300000001", None).await;
    assert_eq!((status, str_at(&v, "/code")), (400, "INVALID_JID"), "{v}");
    let f = control(&s, Method::GET, "/_mock/faults", None).await;
    assert_eq!(f["results"]["lookup_error"], 1.0);
    control(&s, Method::PUT, "/_mock/faults", Some(json!({}))).await;
    let (status, _) = get_avatar(&s, "phone=6281300000001", None).await;
    assert_eq!(status, 200);
    control(&s, Method::POST, "/_mock/reset", None).await;
    let f = control(&s, Method::GET, "/_mock/faults", None).await;
    assert_eq!(
        f["results"]["lookup_error"], 1.0,
        "reset restores the start faults"
    );
    s.shutdown().await;
}

/// Sends `n` GETs and counts (ok, INVALID_JID, 429) answers.
async fn tally(s: &mock_server::MockServer, query: &str, n: usize) -> (usize, usize, usize) {
    let mut counts = (0, 0, 0);
    for _ in 0..n {
        let (status, v) = get_avatar(s, query, None).await;
        match (status, str_at(&v, "/code"), str_at(&v, "/message")) {
            (200, _, _) => counts.0 += 1,
            (400, "INVALID_JID", _) => counts.1 += 1,
            (500, _, "info query returned status 429: rate-overlimit") => counts.2 += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    counts
}

#[tokio::test]
async fn each_whatsapp_query_draws_its_own_faults() {
    let s = start(&["dev1"], true).await;
    for jid in ["6281300000002", "120363000000777@g.us"] {
        control(
            &s,
            Method::PUT,
            &format!("/_mock/contacts/{jid}"),
            Some(json!({"picture": "set"})),
        )
        .await;
    }
    control(
        &s,
        Method::PUT,
        "/_mock/faults",
        Some(json!({"rate_overlimit": 0.5})),
    )
    .await;
    const N: usize = 300;

    // A user: the lookup fails half the time (400), the picture query half of the rest (500).
    let (ok, invalid, throttled) = tally(&s, "phone=6281300000002", N).await;
    assert!((105..195).contains(&invalid), "lookup failures {invalid}");
    assert!(
        (40..115).contains(&throttled),
        "picture failures {throttled}"
    );
    assert!(ok > 30, "{ok}");

    // A group: no lookup; one picture query fails half the time.
    let (_, invalid, plain) = tally(&s, "phone=120363000000777%40g.us", N).await;
    assert_eq!(invalid, 0);
    // A community query that fails is retried once: both must fail, a quarter of the time.
    let (_, _, community) = tally(&s, "phone=120363000000777%40g.us&is_community=true", N).await;
    assert!(plain > 112, "one query fails about half the time: {plain}");
    assert!(
        community < 112,
        "retried community queries fail about a quarter: {community}"
    );
    s.shutdown().await;
}
