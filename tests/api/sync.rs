//! `avatar-worker sync` and the client's batches, end to end: the real broker, the worker in-process and
//! the mock gateway, whose deterministic world predicts every contact's answer.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use avatar_worker::client::{Batch, BatchOptions};
use avatar_worker::protocol::{DeviceId, ErrorCode, FetchJob, Phone, Status};
use avatar_worker::sync::{self, Progress, Record, Summary, SyncOptions};
use futures_util::StreamExt;
use mock_server::world::{Outcome, outcome};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::helpers::{AppOptions, TestApp, mock_config, spawn_app, spawn_app_with};
use crate::proxy::Proxy;

/// A directory of the test's own, removed at the end.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("sync-test-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn phone(n: usize) -> String {
    format!("62811{n:07}")
}

/// `n` contacts; even rows name dev-a, rows 1 mod 4 name dev-b, rows 3 mod 4 name none (for `--device dev-b`).
fn contacts_csv(n: usize) -> String {
    let mut csv = String::from("phone,device_id\n");
    for i in 0..n {
        let device = match i % 4 {
            0 | 2 => "dev-a",
            1 => "dev-b",
            _ => "",
        };
        csv.push_str(&format!("{},{device}\n", phone(i)));
    }
    csv
}

fn options(input: PathBuf, output: PathBuf) -> SyncOptions {
    SyncOptions {
        input,
        format: None,
        device: Some(DeviceId::parse("dev-b").unwrap()),
        output,
        download_dir: None,
        previous: None,
        resume: false,
    }
}

async fn run_sync(app: &TestApp, options: &SyncOptions) -> Summary {
    let plan = sync::prepare(options).expect("plan");
    let total = plan.to_do() as u64;
    let batch = Batch::new(
        &app.amqp_url,
        app.names.clone(),
        BatchOptions {
            in_flight: 64,
            idle_timeout: Some(Duration::from_secs(60)),
            ..BatchOptions::default()
        },
    );
    sync::execute(plan, batch, Progress::hidden(total))
        .await
        .expect("sync")
}

fn records(path: &Path) -> Vec<Record> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).expect("a result line"))
        .collect()
}

fn expected_status(seed: u64, jid: &str) -> (Status, Option<ErrorCode>) {
    match outcome(seed, &mock_server::Shares::default(), jid) {
        Outcome::Set { .. } => (Status::Ok, None),
        Outcome::NotSet => (Status::NotSet, None),
        Outcome::Hidden => (Status::Hidden, None),
        Outcome::NotOnWhatsapp => (Status::Error, Some(ErrorCode::NotOnWhatsapp)),
    }
}

/// The stored files by name, with their modification times.
fn listing(dir: &Path) -> BTreeMap<String, std::time::SystemTime> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| {
            let entry = entry.unwrap();
            let modified = entry.metadata().unwrap().modified().unwrap();
            (entry.file_name().to_string_lossy().into_owned(), modified)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_contacts_match_the_world_and_a_rerun_changes_nothing() {
    const ROWS: usize = 2000;
    let devices = vec!["dev-a".to_string(), "dev-b".to_string()];
    // The harness's mock gives everybody a picture; this one has the default world's mix.
    let world = mock_server::spawn(mock_server::Config {
        shares: mock_server::Shares::default(),
        ..mock_config(devices.clone())
    })
    .await
    .expect("mock");
    let world_url = world.base_url();
    // Pictures are downloaded from this mock's CDN, not the harness's.
    let world_host = crate::helpers::mock_host(&world);
    let app = spawn_app_with(AppOptions {
        devices,
        configure: Box::new(move |settings| {
            settings.gateway.base_url = world_url;
            settings.worker.download_hosts = vec![world_host.clone()];
            settings.worker.download_allow_hosts = vec![world_host];
        }),
        ..AppOptions::default()
    })
    .await;
    let seed = mock_server::Config::default().seed;
    let dir = TempDir::new();
    std::fs::write(dir.path("contacts.csv"), contacts_csv(ROWS)).unwrap();
    let pictures = dir.path("pictures");

    let mut first = options(dir.path("contacts.csv"), dir.path("first.jsonl"));
    first.download_dir = Some(pictures.clone());
    let started = Instant::now();
    let summary = run_sync(&app, &first).await;
    eprintln!("first run of {ROWS} rows: {:?}", started.elapsed());

    let mut predicted: HashMap<Status, usize> = HashMap::new();
    for i in 0..ROWS {
        let jid = Phone::parse(&phone(i)).unwrap();
        *predicted
            .entry(expected_status(seed, jid.as_jid()).0)
            .or_default() += 1;
    }
    assert_eq!(summary.by_status, predicted, "{summary}");
    assert_eq!(summary.answered(), ROWS);
    assert!(summary.count(Status::Ok) > ROWS / 2, "{summary}");

    let rows = records(&first.output);
    assert_eq!(rows.len(), ROWS);
    let lines: HashSet<u64> = rows.iter().map(|r| r.line).collect();
    assert_eq!(lines.len(), ROWS, "one line per row");
    for row in &rows {
        let i = (row.line - 2) as usize;
        assert_eq!(row.phone, Phone::parse(&phone(i)).unwrap());
        let device = if i % 4 == 1 || i % 4 == 3 {
            "dev-b"
        } else {
            "dev-a"
        };
        assert_eq!(row.device.as_ref().map(DeviceId::as_str), Some(device));
        assert_eq!(
            (row.status, row.error_code),
            expected_status(seed, row.phone.as_jid()),
            "{row:?}"
        );
        if row.status == Status::Ok {
            let Outcome::Set { id } =
                outcome(seed, &mock_server::Shares::default(), row.phone.as_jid())
            else {
                unreachable!()
            };
            assert_eq!(row.picture_id.as_deref(), Some(id.as_str()));
            assert!(row.file.is_some(), "an ok row names its file: {row:?}");
        } else {
            assert!(row.file.is_none(), "{row:?}");
        }
    }

    let stored = listing(&pictures);
    let named: HashSet<&str> = rows.iter().filter_map(|r| r.file.as_deref()).collect();
    assert_eq!(
        stored.keys().map(String::as_str).collect::<HashSet<_>>(),
        named
    );
    assert_eq!(summary.files_written, stored.len());
    for name in stored.keys() {
        let bytes = std::fs::read(pictures.join(name)).unwrap();
        let sha: String = Sha256::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(format!("{sha}.jpg"), *name);
        // Start and end markers plus a readable frame header; a full decode of 1,400 pictures in a
        // debug build would dominate the test's time.
        assert!(
            bytes.starts_with(&[0xFF, 0xD8, 0xFF]) && bytes.ends_with(&[0xFF, 0xD9]),
            "{name}"
        );
        let reader =
            image::ImageReader::with_format(std::io::Cursor::new(&bytes), image::ImageFormat::Jpeg);
        let (width, height) = reader.into_dimensions().expect("a JPEG frame header");
        assert!(width > 0 && height > 0, "{name}");
    }

    let mut second = options(dir.path("contacts.csv"), dir.path("second.jsonl"));
    second.download_dir = Some(pictures.clone());
    second.previous = Some(first.output.clone());
    let started = Instant::now();
    let again = run_sync(&app, &second).await;
    eprintln!("second run with --previous: {:?}", started.elapsed());
    assert_eq!(
        again.count(Status::Unchanged),
        summary.count(Status::Ok),
        "{again}"
    );
    assert_eq!(again.count(Status::Ok), 0, "{again}");
    assert_eq!(again.files_written, 0);
    assert_eq!(listing(&pictures), stored, "no file written or rewritten");
    let before: HashMap<u64, &Record> = rows.iter().map(|r| (r.line, r)).collect();
    for row in records(&second.output) {
        let earlier = before[&row.line];
        if earlier.status == Status::Ok {
            assert_eq!(row.status, Status::Unchanged);
            assert_eq!(
                (&row.picture_id, &row.file),
                (&earlier.picture_id, &earlier.file)
            );
        } else {
            assert_eq!(row.status, earlier.status);
        }
    }
    world.shutdown().await;
}

/// Runs the binary against the test's broker and queues.
fn command(app: &TestApp, args: &[&str]) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_avatar-worker"));
    command
        .arg("sync")
        .args(args)
        .env("AVATAR_WORKER__AMQP__URL", &app.amqp_url)
        .env(
            "AVATAR_WORKER__TOPOLOGY__PREFIX",
            &app.settings.topology.prefix,
        )
        .env_remove("AVATAR_WORKER_CONFIG")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    command
}

fn line_count(path: &Path) -> usize {
    std::fs::read(path)
        .map(|bytes| bytes.iter().filter(|b| **b == b'\n').count())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_killed_halfway_then_resumed_has_every_row_once() {
    const ROWS: usize = 600;
    let app = spawn_app_with(AppOptions {
        devices: vec!["dev-a".into(), "dev-b".into()],
        ..AppOptions::default()
    })
    .await;
    // Slow enough that the kill lands mid-run: about 4 answers per 10 ms.
    app.put("/_mock/faults", json!({"latency_ms": 10})).await;
    let dir = TempDir::new();
    let input = dir.path("contacts.csv");
    let output = dir.path("results.jsonl");
    std::fs::write(&input, contacts_csv(ROWS)).unwrap();
    let (input_arg, output_arg) = (input.to_str().unwrap(), output.to_str().unwrap());
    let args = [
        "--device",
        "dev-b",
        "--in-flight",
        "4",
        "--output",
        output_arg,
        input_arg,
    ];

    let mut child = command(&app, &args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("sync starts");
    let deadline = Instant::now() + Duration::from_secs(60);
    while line_count(&output) < ROWS / 2 {
        assert!(Instant::now() < deadline, "the sync made no progress");
        assert!(child.try_wait().unwrap().is_none(), "the sync ended early");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    child.kill().await.expect("SIGKILL");
    let done_before = line_count(&output);
    assert!(done_before < ROWS, "killed too late to test anything");

    let mut resumed_args = args.to_vec();
    resumed_args.push("--resume");
    let resumed = command(&app, &resumed_args)
        .output()
        .await
        .expect("resumed sync runs");
    let stdout = String::from_utf8_lossy(&resumed.stdout);
    assert!(
        resumed.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&resumed.stderr)
    );
    let rows = records(&output);
    let mut lines: Vec<u64> = rows.iter().map(|r| r.line).collect();
    lines.sort_unstable();
    let expected: Vec<u64> = (2..ROWS as u64 + 2).collect();
    assert_eq!(lines, expected, "every row exactly once");
    assert!(rows.iter().all(|r| r.status == Status::Ok));
    let already_done = stdout
        .lines()
        .find(|l| l.contains("already done"))
        .and_then(|l| l.split_whitespace().last())
        .expect("the summary counts the resumed rows");
    assert_eq!(already_done, done_before.to_string(), "{stdout}");
}

#[tokio::test]
async fn malformed_rows_are_reported_by_line_and_skipped() {
    let app = spawn_app().await;
    let dir = TempDir::new();
    let input = dir.path("contacts.csv");
    let output = dir.path("results.jsonl");
    std::fs::write(
        &input,
        "phone,device_id,known_id\n\
         6281100000001,dev-a,\n\
         not-a-phone,dev-a,\n\
         6281100000003,dev-a\n\
         ,dev-a,\n\
         6281100000005,,\n",
    )
    .unwrap();
    let out = command(
        &app,
        &[
            "--device",
            "dev-a",
            "--output",
            output.to_str().unwrap(),
            input.to_str().unwrap(),
        ],
    )
    .output()
    .await
    .expect("sync runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stderr}{stdout}");
    for line in [3, 4, 5] {
        assert!(stderr.contains(&format!("line {line}: ")), "{stderr}");
    }
    assert!(
        !stderr.contains("line 2:") && !stderr.contains("line 6:"),
        "{stderr}"
    );
    let mut lines: Vec<u64> = records(&output).iter().map(|r| r.line).collect();
    lines.sort_unstable();
    assert_eq!(lines, [2, 6]);
    assert!(stdout.contains("malformed (skipped)"), "{stdout}");
}

#[tokio::test]
async fn an_unreachable_broker_fails_with_a_clear_message() {
    let dir = TempDir::new();
    let input = dir.path("contacts.csv");
    std::fs::write(&input, "phone\n6281100000001\n").unwrap();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_avatar-worker"))
        .args(["sync", "--connect-attempts", "2", "--output"])
        .arg(dir.path("results.jsonl"))
        .arg(&input)
        .env(
            "AVATAR_WORKER__AMQP__URL",
            "amqp://guest:guest@127.0.0.1:1/%2f",
        )
        .env("AVATAR_WORKER__AMQP__RECONNECT_MIN_MS", "10")
        .env("AVATAR_WORKER__AMQP__RECONNECT_MAX_MS", "20")
        .env_remove("AVATAR_WORKER_CONFIG")
        .output()
        .await
        .expect("sync runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("broker is unreachable"), "{stderr}");
    assert!(stderr.contains("after 2 connection attempts"), "{stderr}");

    let missing = tokio::process::Command::new(env!("CARGO_BIN_EXE_avatar-worker"))
        .args(["sync", "--output"])
        .arg(dir.path("results.jsonl"))
        .arg(dir.path("no-such-file.csv"))
        .output()
        .await
        .expect("sync runs");
    assert!(!missing.status.success());
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("cannot read"),
        "{}",
        String::from_utf8_lossy(&missing.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_loses_no_job_when_its_connection_drops() {
    const JOBS: usize = 300;
    let app = spawn_app().await;
    app.put("/_mock/faults", json!({"latency_ms": 5})).await;
    let (proxy, via_proxy) = Proxy::in_front_of(&app.amqp_url).await;
    let jobs: Vec<FetchJob> = (0..JOBS)
        .map(|i| FetchJob {
            job_id: None,
            device_id: Some(DeviceId::parse("dev-a").unwrap()),
            phone: Phone::parse(&phone(i)).unwrap(),
            is_preview: false,
            is_community: false,
            known_id: None,
            download: false,
            interactive: false,
        })
        .collect();
    let mut results = Batch::new(
        &via_proxy,
        app.names.clone(),
        BatchOptions {
            in_flight: 16,
            reconnect_min: Duration::from_millis(20),
            reconnect_max: Duration::from_millis(100),
            idle_timeout: Some(Duration::from_secs(30)),
            ..BatchOptions::default()
        },
    )
    .run(jobs);
    let mut seen = HashSet::new();
    while let Some(result) = results.next().await {
        let result = result.expect("no batch error");
        assert!(seen.insert(result.job_id.clone()), "a job answered twice");
        assert_eq!(result.status, Status::Ok);
        if seen.len() == JOBS / 3 {
            proxy.cut();
        }
    }
    assert_eq!(seen.len(), JOBS);
}
