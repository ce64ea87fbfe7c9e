//! The monitoring files against the real tools of the ecosystem:
//!
//! - every metric the Grafana dashboard's queries and the Prometheus alerts name is one the worker exposes;
//! - a real `prometheus` (Debian's package; `bash scripts/check-contracts` installs it) scrapes a worker started
//!   by the test helpers and evaluates deploy/prometheus/alerts.yml: while the worker answers jobs normally
//!   `AvatarWorkerDeviceNotLoggedIn` stays quiet, and once a job of a logged-out device is answered
//!   `device_not_logged_in` it fires.
//!
//! The alerts are loaded as they are but for their `for:` durations (minutes in alerts.yml), cut to 2 s so the
//! test waits seconds: the expressions, labels and annotations are the deployed ones. Prometheus scrapes and
//! evaluates every second. Without a `prometheus` binary the test fails, saying how to install one.

#[allow(dead_code)]
#[path = "api/helpers.rs"]
mod helpers;
#[allow(dead_code)]
#[path = "api/schemas.rs"]
mod schemas;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use avatar_worker::protocol::{ErrorCode, JobKind};
use serde_json::{Value, json};

use helpers::spawn_app;

const ALERT: &str = "AvatarWorkerDeviceNotLoggedIn";
/// How long Prometheus may take to start, scrape, evaluate and fire.
const DEADLINE: Duration = Duration::from_secs(60);
const POLL: Duration = Duration::from_millis(200);

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// Every series name the worker's registry exposes: a counter as `<name>_total`, a histogram as
/// `<name>_bucket`, `_sum`, `_count`, a gauge as `<name>` (from the `# TYPE` lines of its exposition). A
/// family without a series is not exposed at all, so each family gets one first.
fn exposed_series() -> BTreeSet<String> {
    use avatar_worker::ops::metrics::GatewayOp;
    let metrics = avatar_worker::ops::Metrics::new();
    metrics.gateway_request(GatewayOp::Get, "200");
    metrics.set_native_session("phone-1", "connected", &["connected", "logged_out"]);
    let _claim = metrics.claim_owned("shard");
    let _lane = metrics.lane_running();
    metrics.published("hop");
    let text = metrics.render();
    let mut out = BTreeSet::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("# TYPE ") else {
            continue;
        };
        let (name, kind) = rest.split_once(' ').expect("# TYPE name type");
        match kind {
            "counter" => {
                out.insert(format!("{name}_total"));
            }
            "histogram" => {
                for suffix in ["_bucket", "_sum", "_count"] {
                    out.insert(format!("{name}{suffix}"));
                }
            }
            _ => {
                out.insert(name.to_string());
            }
        }
    }
    out
}

/// The `avatar_worker_*` names in a PromQL expression.
fn names_in(expr: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = expr;
    while let Some(start) = rest.find("avatar_worker_") {
        let tail = &rest[start..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        out.insert(tail[..end].to_string());
        rest = &tail[end..];
    }
    out
}

fn alert_rules() -> Vec<serde_norway::Value> {
    let text = std::fs::read_to_string(repo("deploy/prometheus/alerts.yml")).expect("alerts.yml");
    let rules: serde_norway::Value = serde_norway::from_str(&text).expect("alerts.yml parses");
    rules["groups"]
        .as_sequence()
        .expect("groups")
        .iter()
        .flat_map(|group| group["rules"].as_sequence().expect("rules").clone())
        .collect()
}

#[test]
fn the_dashboard_and_the_alerts_name_only_metrics_the_worker_exposes() {
    let exposed = exposed_series();
    assert!(exposed.contains("avatar_worker_jobs_total"), "{exposed:?}");

    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(repo("deploy/grafana/avatar-worker.json")).expect("dashboard"),
    )
    .expect("the dashboard is JSON");
    let mut queries = 0;
    for panel in dashboard["panels"].as_array().expect("panels") {
        if panel["type"] == "row" {
            continue;
        }
        let title = panel["title"].as_str().unwrap_or_default();
        let targets = panel["targets"].as_array().expect("each panel queries");
        assert!(!targets.is_empty(), "panel {title:?} has no query");
        for target in targets {
            let expr = target["expr"].as_str().expect("a PromQL expression");
            let names = names_in(expr);
            assert!(
                !names.is_empty() || expr.contains("up{job=\"avatar-worker\""),
                "panel {title:?}: {expr} names no metric of the worker"
            );
            for name in names {
                assert!(
                    exposed.contains(&name),
                    "panel {title:?}: {name} is not exposed"
                );
            }
            queries += 1;
        }
    }
    assert!(queries >= 15, "{queries} queries");

    let rules = alert_rules();
    assert!(rules.len() >= 10);
    for rule in &rules {
        let name = rule["alert"].as_str().expect("alerting rules only");
        let expr = rule["expr"].as_str().expect("an expression");
        for metric in names_in(expr) {
            assert!(exposed.contains(&metric), "{name}: {metric} is not exposed");
        }
        assert!(rule["for"].as_str().is_some(), "{name} has a for:");
        assert!(
            matches!(
                rule["labels"]["severity"].as_str(),
                Some("critical" | "warning")
            ),
            "{name} has a severity"
        );
        for annotation in ["summary", "description"] {
            assert!(
                rule["annotations"][annotation].as_str().is_some(),
                "{name} has a {annotation}"
            );
        }
        assert!(
            rule["annotations"]["description"]
                .as_str()
                .is_some_and(|d| d.contains("Runbook")),
            "{name}'s description names the runbook action"
        );
    }
}

/// A `prometheus` server on a free port of 127.0.0.1 with a data folder of its own, killed when dropped.
struct Prometheus {
    child: Child,
    url: String,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Prometheus {
    /// Starts Prometheus scraping `target` (`host:port`) every second under the job name the alerts select on,
    /// with `rules` as its rule file, and waits until it is ready. A free port is found by binding port 0 and
    /// letting it go; should another process take it first, the start is tried again on another.
    async fn start(target: &str, rules: &str) -> Self {
        let installed = Command::new("prometheus")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        assert!(
            installed.is_ok_and(|s| s.success()),
            "no `prometheus` binary on PATH: install Debian's package (`apt-get install -y prometheus`, as \
             `bash scripts/check-contracts` does) to run this test"
        );
        let mut last_log = String::new();
        for _ in 0..3 {
            let dir = tempfile::tempdir().expect("a temporary folder");
            std::fs::write(dir.path().join("alerts.yml"), rules).expect("rules written");
            let config = format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
                 rule_files:\n  - alerts.yml\n\
                 scrape_configs:\n  - job_name: avatar-worker\n    static_configs:\n      - targets: [\"{target}\"]\n"
            );
            let config_path = dir.path().join("prometheus.yml");
            std::fs::write(&config_path, config).expect("config written");
            let port = free_port();
            let log = dir.path().join("prometheus.log");
            let output = std::fs::File::create(&log).expect("log file");
            let child = Command::new("prometheus")
                .arg(format!("--config.file={}", config_path.display()))
                .arg(format!(
                    "--storage.tsdb.path={}",
                    dir.path().join("data").display()
                ))
                .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                .stdin(Stdio::null())
                .stdout(output.try_clone().expect("log file"))
                .stderr(output)
                .spawn()
                .expect("prometheus starts");
            let mut server = Prometheus {
                child,
                url: format!("http://127.0.0.1:{port}"),
                log,
                _dir: dir,
            };
            match server.ready().await {
                Ok(()) => return server,
                Err(log) => last_log = log,
            }
        }
        panic!("prometheus did not start:\n{last_log}");
    }

    /// Waits for `/-/ready`; on failure, the server's log.
    async fn ready(&mut self) -> Result<(), String> {
        let http = reqwest::Client::new();
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("exited with {status}\n{}", self.log_text()));
            }
            let ready = http.get(format!("{}/-/ready", self.url)).send().await;
            if ready.is_ok_and(|r| r.status().is_success()) {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "not ready within {DEADLINE:?}\n{}",
                    self.log_text()
                ));
            }
            tokio::time::sleep(POLL).await;
        }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    async fn api(&self, path: &str) -> Value {
        let response = reqwest::get(format!("{}/api/v1/{path}", self.url))
            .await
            .unwrap_or_else(|err| panic!("{path}: {err}"));
        let body: Value = response.json().await.expect("a JSON answer");
        assert_eq!(body["status"], "success", "{path}: {body}");
        body["data"].clone()
    }

    /// The rule `name` as `/api/v1/rules` shows it, once an evaluation of it began after `after`.
    async fn rule_evaluated_after(&self, name: &str, after: time::OffsetDateTime) -> Value {
        let evaluated = |data: &Value| -> Option<Value> {
            let rule = data["groups"]
                .as_array()?
                .iter()
                .flat_map(|group| group["rules"].as_array().into_iter().flatten())
                .find(|rule| rule["name"] == name)?;
            let at = time::OffsetDateTime::parse(
                rule["lastEvaluation"].as_str()?,
                &time::format_description::well_known::Rfc3339,
            )
            .ok()?;
            (at > after).then(|| rule.clone())
        };
        let data = self
            .until(&format!("an evaluation of {name}"), "rules", |data| {
                evaluated(data).is_some()
            })
            .await;
        evaluated(&data).expect("evaluated")
    }

    /// Polls `path` until `done` holds for its data, or fails with the last answer and the server's log.
    async fn until(&self, what: &str, path: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let data = self.api(path).await;
            if done(&data) {
                return data;
            }
            assert!(
                Instant::now() < deadline,
                "{what} did not happen within {DEADLINE:?}; last /api/v1/{path}: {data}\n{}",
                self.log_text()
            );
            tokio::time::sleep(POLL).await;
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("a free port")
}

/// alerts.yml with every `for:` cut to 2 s (see the module's comment).
fn rules_with_short_for() -> String {
    let text = std::fs::read_to_string(repo("deploy/prometheus/alerts.yml")).expect("alerts.yml");
    let mut rules: serde_norway::Value = serde_norway::from_str(&text).expect("alerts.yml parses");
    for group in rules["groups"].as_sequence_mut().expect("groups") {
        for rule in group["rules"].as_sequence_mut().expect("rules") {
            rule["for"] = serde_norway::Value::String("2s".into());
        }
    }
    serde_norway::to_string(&rules).expect("rules serialise")
}

/// The alerts named `name` in an `/api/v1/alerts` answer.
fn alerts_named<'a>(data: &'a Value, name: &str) -> Vec<&'a Value> {
    data["alerts"]
        .as_array()
        .expect("alerts")
        .iter()
        .filter(|alert| alert["labels"]["alertname"] == name)
        .collect()
}

#[tokio::test]
async fn prometheus_fires_the_device_alert_when_a_device_is_logged_out() {
    let mut app = spawn_app().await;
    app.readyz_becomes(200).await;
    let admin = app.observed.as_ref().expect("a started worker").admin;
    let prometheus = Prometheus::start(&admin.to_string(), &rules_with_short_for()).await;

    // Prometheus scrapes the worker, and loaded every alert of alerts.yml.
    prometheus
        .until("the worker's target up", "targets", |data| {
            data["activeTargets"][0]["health"] == "up"
        })
        .await;
    let groups = prometheus.api("rules").await;
    let loaded: BTreeSet<&str> = groups["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .flat_map(|group| group["rules"].as_array().expect("rules"))
        .filter_map(|rule| rule["name"].as_str())
        .collect();
    let deployed: BTreeSet<String> = alert_rules()
        .iter()
        .filter_map(|rule| rule["alert"].as_str().map(str::to_string))
        .collect();
    assert_eq!(
        loaded,
        deployed.iter().map(String::as_str).collect(),
        "every alert of alerts.yml is loaded"
    );

    // A job answered normally is counted, and the alert stays quiet: the series it watches is at 0 (exposed
    // from the worker's start), scraped and evaluated.
    app.publish_json(
        JobKind::Fetch,
        &json!({"job_id": "fine", "device_id": "dev-a", "phone": "6281300009000"}),
    )
    .await;
    assert!(app.next_result().await.error.is_none());
    let watched = "avatar_worker_jobs_total{kind=\"fetch\",status=\"device_not_logged_in\"}";
    prometheus
        .until("the watched series scraped at 0", &query(watched), |data| {
            data["result"][0]["value"][1] == "0"
        })
        .await;
    let answered = "sum(avatar_worker_jobs_total{kind=\"fetch\"})";
    prometheus
        .until("the normal job scraped", &query(answered), |data| {
            data["result"][0]["value"][1] == "1"
        })
        .await;
    // An evaluation that began after that scrape was stored has seen it, and left the alert inactive.
    let seen = time::OffsetDateTime::now_utc();
    let rule = prometheus.rule_evaluated_after(ALERT, seen).await;
    assert_eq!(
        rule["state"], "inactive",
        "{ALERT} is quiet while jobs succeed: {rule}"
    );
    assert!(alerts_named(&prometheus.api("alerts").await, ALERT).is_empty());

    // The device is logged out: its next job is answered device_not_logged_in, and the alert fires.
    app.put("/_mock/devices/dev-a", json!({"state": "not_logged_in"}))
        .await;
    app.publish_json(
        JobKind::Fetch,
        &json!({"job_id": "logged-out", "device_id": "dev-a", "phone": "6281300009001"}),
    )
    .await;
    let result = app.next_result().await;
    assert_eq!(
        result.error.as_ref().map(|e| e.code),
        Some(ErrorCode::DeviceNotLoggedIn),
        "{result:?}"
    );
    let data = prometheus
        .until(&format!("{ALERT} firing"), "alerts", |data| {
            alerts_named(data, ALERT)
                .iter()
                .any(|alert| alert["state"] == "firing")
        })
        .await;
    let alert = alerts_named(&data, ALERT)[0];
    assert_eq!(alert["labels"]["kind"], "fetch", "{alert}");
    assert_eq!(alert["labels"]["severity"], "critical", "{alert}");
    let description = alert["annotations"]["description"].as_str().unwrap();
    assert!(
        description.contains("fetch job(s) were answered `device_not_logged_in`"),
        "{description}"
    );
    assert!(description.contains("avatar-worker pair --device ID"));
}

/// `query?query=…` for the API.
fn query(promql: &str) -> String {
    let encoded: String = form_urlencoded::byte_serialize(promql.as_bytes()).collect();
    format!("query?query={encoded}")
}
