//! `spawn_app()`: a real mock gateway on an ephemeral port, the real worker in-process, and a test
//! connection to the shared broker, all under a queue prefix of the test's own.

use std::collections::HashMap;
use std::time::Duration;

use avatar_worker::app::App;
use avatar_worker::broker::{self, QueueNames, RetryPolicy};
use avatar_worker::lanes::{self, names::Group, names::LaneKind, names::LaneNames};
use avatar_worker::ops::Readiness;
use avatar_worker::protocol::DeviceId;
use avatar_worker::protocol::{JobKind, JobResult};
use avatar_worker::settings::{Settings, TopologySettings};
use avatar_worker::shutdown::Shutdown;
use futures_util::StreamExt;
use lapin::options::{BasicConsumeOptions, BasicGetOptions, QueueDeleteOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use serde_json::Value;
use tokio::task::JoinHandle;

use test_support::broker::broker_url;

pub const USER: &str = "gateway-user";
pub const PASSWORD: &str = "gateway-pass-8f3a";
pub const WAIT: Duration = Duration::from_secs(20);

pub struct AppOptions {
    pub devices: Vec<String>,
    /// Adjusts the worker's settings before it starts (gateway URL and queue names are already set).
    pub configure: Box<dyn FnOnce(&mut Settings) + Send>,
    /// Run the worker through this AMQP URL instead of the broker's own (a proxy in reconnect tests).
    pub worker_amqp_url: Option<String>,
    pub start_worker: bool,
}

impl Default for AppOptions {
    fn default() -> Self {
        Self {
            devices: vec!["dev-a".into()],
            configure: Box::new(|_| {}),
            worker_amqp_url: None,
            start_worker: true,
        }
    }
}

pub struct TestApp {
    pub mock: mock_server::MockServer,
    /// The devices logged in on the mock.
    pub devices: Vec<String>,
    pub settings: Settings,
    pub names: QueueNames,
    pub amqp_url: String,
    pub connection: Connection,
    pub channel: Channel,
    pub http: reqwest::Client,
    results: lapin::Consumer,
    results_channel: Channel,
    shutdown: Shutdown,
    worker: Option<JoinHandle<()>>,
    /// More workers on the same settings and shutdown (`start_replica`).
    replicas: Vec<JoinHandle<()>>,
    /// The started worker's metrics, readiness and admin server.
    pub observed: Option<Observed>,
    /// Every `device_id` the test published a job for, whose lanes the cleanup deletes.
    used_devices: std::sync::Mutex<std::collections::HashSet<String>>,
}

/// What the ops tests look at in a running worker.
pub struct Observed {
    pub readiness: Readiness,
    pub admin: std::net::SocketAddr,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(AppOptions::default()).await
}

pub async fn spawn_app_with(options: AppOptions) -> TestApp {
    // RUST_LOG=avatar_worker=debug shows the worker's logs of a failing test.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let amqp_url = broker_url().await;
    let mock = mock_server::spawn(mock_config(options.devices.clone()))
        .await
        .expect("mock server starts");

    let prefix = format!("test-{}", uuid::Uuid::new_v4().simple());
    let mut settings = Settings::default();
    settings.amqp.url = options
        .worker_amqp_url
        .clone()
        .unwrap_or_else(|| amqp_url.clone())
        .into();
    settings.amqp.reconnect_min = Duration::from_millis(50);
    settings.amqp.reconnect_max = Duration::from_millis(500);
    settings.topology = TopologySettings::with_prefix(&prefix);
    settings.gateway.base_url = mock.base_url();
    // The mock serves its pictures on its own loopback address: allowed for downloads by host and port.
    let mock_host = mock_host(&mock);
    settings.worker.download_hosts = vec![mock_host.clone()];
    settings.worker.download_allow_hosts = vec![mock_host];
    settings.gateway.username = Some(USER.into());
    settings.gateway.password = Some(PASSWORD.into());
    // The default deadline: tests run many at once on two cores, and the mock shares them.
    settings.gateway.timeout = Duration::from_secs(8);
    // Tests opt in to pacing and retries; by default every job is answered on its first attempt.
    settings.pacing.enabled = false;
    settings.retry.max_attempts = 1;
    settings.retry.delays = ms(&[100, 200, 400]);
    settings.admin.bind = ([127, 0, 0, 1], 0).into();
    // Few groups: each is a claim and an inbox queue on the shared broker.
    settings.lanes.groups = 4;
    // The decode deadline guards against hostile images (tests/image/limits.rs shows it); an honest picture
    // may take a debug build longer than the default 5 s on a machine busy with other builds.
    settings.image.decode_timeout = Duration::from_secs(60);
    (options.configure)(&mut settings);
    settings.validate().expect("test settings are valid");
    let names = QueueNames::new(&settings.topology);

    let connection = Connection::connect(&amqp_url, ConnectionProperties::default())
        .await
        .expect("test connection");
    let channel = connection.create_channel().await.expect("channel");
    channel
        .confirm_select(Default::default())
        .await
        .expect("confirm mode");
    broker::declare(
        &channel,
        &names,
        settings.topology.queue_type,
        &RetryPolicy::new(&settings.retry),
    )
    .await
    .expect("declare");
    let results_channel = connection.create_channel().await.expect("channel");
    let results = results_channel
        .basic_consume(
            names.results.as_str().into(),
            "results".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .expect("consume results");

    let shutdown = Shutdown::new();
    let (worker, observed) = if options.start_worker {
        let (worker, observed) = start_worker(&settings, &shutdown).await;
        (Some(worker), Some(observed))
    } else {
        (None, None)
    };
    TestApp {
        mock,
        devices: options.devices.clone(),
        settings,
        names,
        amqp_url,
        connection,
        channel,
        http: reqwest::Client::new(),
        results,
        results_channel,
        shutdown,
        worker,
        replicas: Vec::new(),
        observed,
        used_devices: Default::default(),
    }
}

/// `host:port` of the mock's picture URLs.
pub fn mock_host(mock: &mock_server::MockServer) -> String {
    let url = reqwest::Url::parse(mock.public_url()).expect("the mock's URL");
    format!(
        "{}:{}",
        url.host_str().expect("a host"),
        url.port_or_known_default().expect("a port")
    )
}

/// The mock gateway the tests use: Basic auth on, these devices logged in, and every contact with a
/// picture unless a test says otherwise through the control API.
pub fn mock_config(devices: Vec<String>) -> mock_server::Config {
    mock_server::Config {
        basic_auth: vec![(USER.into(), PASSWORD.into())],
        devices,
        shares: mock_server::Shares::every_picture_set(),
        ..mock_server::Config::default()
    }
}

/// A worker started the way `avatar-worker run` starts it ([`App::build`]): the backend its settings
/// describe, its own metrics, and an admin server on a free port. Stops with `shutdown`.
pub async fn start_worker(settings: &Settings, shutdown: &Shutdown) -> (JoinHandle<()>, Observed) {
    let app = App::build(settings.clone())
        .await
        .expect("the worker starts");
    run_app(app, shutdown)
}

/// As [`start_worker`], on a backend the test assembled itself, counting into `metrics`.
#[cfg(feature = "native")]
pub async fn start_worker_on(
    settings: &Settings,
    shutdown: &Shutdown,
    backend: std::sync::Arc<dyn avatar_worker::backend::AvatarBackend>,
    metrics: avatar_worker::ops::Metrics,
) -> (JoinHandle<()>, Observed) {
    let app = App::build_on(settings.clone(), backend, metrics)
        .await
        .expect("the worker starts");
    run_app(app, shutdown)
}

fn run_app(app: App, shutdown: &Shutdown) -> (JoinHandle<()>, Observed) {
    let observed = Observed {
        readiness: app.readiness().clone(),
        admin: app.admin_addr().expect("an admin server"),
    };
    let handle = tokio::spawn(app.run(shutdown.clone()));
    (handle, observed)
}

/// A no-ack consumer on `queue` through its own channel.
pub async fn consume(connection: &Connection, queue: &str) -> lapin::Consumer {
    let channel = connection.create_channel().await.expect("channel");
    channel
        .basic_consume(
            queue.into(),
            "".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .expect("consume")
}

impl TestApp {
    pub fn queue(&self, kind: JobKind) -> &str {
        self.names.job_queue(kind)
    }

    /// Remembers the device a job body names, so the cleanup deletes its lanes.
    pub fn note_device(&self, body: &[u8]) {
        if let Ok(job) = serde_json::from_slice::<Value>(body)
            && let Some(device) = job["device_id"].as_str()
        {
            self.used_devices.lock().unwrap().insert(device.to_string());
        }
    }

    /// Publishes a raw body (confirmed) to a job queue.
    pub async fn publish_raw(&self, kind: JobKind, body: &[u8], properties: BasicProperties) {
        self.note_device(body);
        let confirm = self
            .channel
            .basic_publish(
                "".into(),
                self.queue(kind).into(),
                Default::default(),
                body,
                properties.with_delivery_mode(2),
            )
            .await
            .expect("publish")
            .await
            .expect("confirm");
        assert!(confirm.is_ack());
    }

    pub async fn publish_json(&self, kind: JobKind, job: &Value) {
        self.publish_raw(kind, job.to_string().as_bytes(), BasicProperties::default())
            .await;
    }

    /// Publishes many jobs at once: all sent, then every confirm awaited.
    pub async fn publish_all(&self, kind: JobKind, jobs: &[Value], properties: BasicProperties) {
        let mut confirms = Vec::with_capacity(jobs.len());
        for job in jobs {
            let body = job.to_string();
            self.note_device(body.as_bytes());
            let confirm = self
                .channel
                .basic_publish(
                    "".into(),
                    self.queue(kind).into(),
                    Default::default(),
                    body.as_bytes(),
                    properties.clone().with_delivery_mode(2),
                )
                .await
                .expect("publish");
            confirms.push(confirm);
        }
        for confirm in confirms {
            assert!(confirm.await.expect("confirm").is_ack());
        }
    }

    /// When the mock began answering each `GET /user/avatar`, by device header, in seconds.
    pub async fn gateway_starts(&self) -> HashMap<String, Vec<f64>> {
        gateway_starts(&self.get("/_mock/requests").await)
    }

    /// Publishes `n` fetch jobs with ids `<prefix>0`, `<prefix>1`, …, each for another number.
    pub async fn publish_fetches(&self, prefix: &str, n: usize) {
        for i in 0..n {
            let job = serde_json::json!({"job_id": format!("{prefix}{i}"), "phone": format!("6281{i:09}")});
            self.publish_json(JobKind::Fetch, &job).await;
        }
    }

    /// The next result on the results queue, checked against `schemas/result.schema.json`.
    pub async fn next_result(&mut self) -> JobResult {
        self.next_result_delivery().await.0
    }

    pub async fn next_result_delivery(&mut self) -> (JobResult, lapin::message::Delivery) {
        next_from(&mut self.results).await
    }

    /// Results until `n` distinct job ids have been seen.
    pub async fn results(&mut self, n: usize) -> Vec<JobResult> {
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            out.push(self.next_result().await);
        }
        out
    }

    /// Every result published so far, for a test whose worker has stopped: the consumer is cancelled and
    /// its buffer read to the end, then the queue drained.
    pub async fn remaining_results(&mut self) -> Vec<JobResult> {
        self.results_channel
            .basic_cancel("results".into(), Default::default())
            .await
            .expect("cancel");
        let mut out = Vec::new();
        while let Some(delivery) = self.results.next().await {
            let delivery = delivery.expect("delivery");
            out.push(serde_json::from_slice(&delivery.data).expect("result"));
        }
        for message in drain(&self.channel, &self.names.results).await {
            out.push(serde_json::from_slice(&message.delivery.data).expect("result"));
        }
        out
    }

    /// Waits for `n` messages on the dead-letter queue (consumed, so each test sees its own once).
    pub async fn dead_letters(&self, n: usize) -> Vec<lapin::message::Delivery> {
        let mut consumer = consume(&self.connection, &self.names.dead).await;
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            let delivery = tokio::time::timeout(WAIT, consumer.next())
                .await
                .expect("a dead letter within the deadline")
                .expect("consumer open")
                .expect("delivery");
            out.push(delivery);
        }
        out
    }

    /// GET on the worker's admin server: status and body.
    pub async fn admin_get(&self, path: &str) -> (u16, String) {
        let observed = self.observed.as_ref().expect("a started worker");
        let response = self
            .http
            .get(format!("http://{}{path}", observed.admin))
            .send()
            .await
            .expect("admin server answers");
        let status = response.status().as_u16();
        (status, response.text().await.expect("admin body"))
    }

    /// A series of the worker's `/metrics`, summed over its labels.
    pub async fn metric(&self, name: &str) -> f64 {
        let (_, text) = self.admin_get("/metrics").await;
        text.lines()
            .filter(|line| line.starts_with(name))
            .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    /// Polls `/metrics` until `series` (name and labels exactly as exposed) reads `value`: a consumer starts
    /// or ends moments after `/readyz` turns, and the update reader only once this worker won its claim.
    pub async fn metric_becomes(&self, series: &str, value: f64) {
        let deadline = std::time::Instant::now() + WAIT;
        loop {
            let (_, text) = self.admin_get("/metrics").await;
            if sample(&text, series) == Some(value) {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{series} never became {value}:\n{text}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Polls `/readyz` until it answers `status`; returns its body.
    pub async fn readyz_becomes(&self, status: u16) -> String {
        self.readyz_until(|got, _| got == status).await
    }

    /// Polls `/readyz` until its answer (status, body) satisfies `done`; returns the body.
    pub async fn readyz_until(&self, done: impl Fn(u16, &str) -> bool) -> String {
        let deadline = std::time::Instant::now() + WAIT;
        loop {
            let (got, body) = self.admin_get("/readyz").await;
            if done(got, &body) {
                return body;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "/readyz stayed {got} ({body})"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn mock_url(&self, path: &str) -> String {
        format!("{}{path}", self.mock.base_url())
    }

    /// Calls the mock's control API and returns the JSON it answered.
    pub async fn control(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut request = self
            .http
            .request(method, self.mock_url(path))
            .basic_auth(USER, Some(PASSWORD));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("mock control call");
        assert!(
            response.status().is_success(),
            "{path}: {}",
            response.status()
        );
        response.json().await.unwrap_or(Value::Null)
    }

    pub async fn put(&self, path: &str, body: Value) -> Value {
        self.control(reqwest::Method::PUT, path, Some(body)).await
    }

    pub async fn get(&self, path: &str) -> Value {
        self.control(reqwest::Method::GET, path, None).await
    }

    /// Triggers the shutdown of the worker and its replicas and waits for them to return; a worker
    /// started later gets a new one.
    pub async fn stop_worker(&mut self) {
        self.shutdown.trigger();
        if let Some(worker) = self.worker.take() {
            worker.await.expect("worker task");
        }
        for replica in self.replicas.drain(..) {
            replica.await.expect("replica task");
        }
        self.shutdown = Shutdown::new();
    }

    /// Starts one more worker (a replica) on the app's settings, stopped with the app's worker.
    pub async fn start_replica(&mut self) -> Observed {
        let (replica, observed) = start_worker(&self.settings, &self.shutdown).await;
        self.replicas.push(replica);
        observed
    }

    /// Starts the in-process worker of an app spawned with `start_worker: false`.
    pub async fn start_worker(&mut self) {
        assert!(self.worker.is_none(), "the worker already runs");
        let (worker, observed) = start_worker(&self.settings, &self.shutdown).await;
        self.worker = Some(worker);
        self.observed = Some(observed);
    }

    /// Starts the worker of an app spawned with `start_worker: false` on `backend`.
    #[cfg(feature = "native")]
    pub async fn start_worker_on(
        &mut self,
        backend: std::sync::Arc<dyn avatar_worker::backend::AvatarBackend>,
        metrics: avatar_worker::ops::Metrics,
    ) {
        assert!(self.worker.is_none(), "the worker already runs");
        let (worker, observed) =
            start_worker_on(&self.settings, &self.shutdown, backend, metrics).await;
        self.worker = Some(worker);
        self.observed = Some(observed);
    }

    pub fn shutdown_handle(&self) -> Shutdown {
        self.shutdown.clone()
    }

    /// Every job waiting in the broker, taken: in the job queues, the groups' inboxes and the devices'
    /// lanes (for a test whose worker has stopped).
    pub async fn waiting_jobs(&self) -> Vec<lapin::message::BasicGetMessage> {
        let mut queues = vec![self.names.fetch.clone(), self.names.update.clone()];
        queues.extend(self.lane_queues().await);
        let mut out = Vec::new();
        for queue in queues {
            if queue.contains(".claim.") {
                continue;
            }
            out.extend(drain(&self.channel, &queue).await);
        }
        out
    }

    /// The inbox and lane queues of this test's topology (claims included).
    pub async fn lane_queues(&self) -> Vec<String> {
        let channel = self.connection.create_channel().await.expect("channel");
        let lane_names = LaneNames::new(&self.settings.topology.prefix);
        let mut queues = lanes::queues(&channel, &lane_names, self.settings.lanes.groups, &[])
            .await
            .expect("the lanes' claims can be read");
        for device in self
            .devices
            .iter()
            .map(|d| DeviceId::parse(d.as_str()).ok())
        {
            for lane in [LaneKind::Fetch, LaneKind::FetchNow, LaneKind::Update] {
                let queue = lane_names.lane(device.as_ref(), lane);
                if !queues.contains(&queue) && self.queue_exists(&queue).await {
                    queues.push(queue);
                }
            }
        }
        let _ = channel.close(200, "listed".into()).await;
        queues
    }

    async fn queue_exists(&self, queue: &str) -> bool {
        self.try_queue_depth(queue).await.is_ok()
    }

    /// A queue's ready messages, or an error when it does not exist (asked on a channel of its own).
    pub async fn try_queue_depth(&self, queue: &str) -> Result<u32, lapin::Error> {
        self.try_queue_counts(queue)
            .await
            .map(|(messages, _)| messages)
    }

    /// A queue's ready messages and consumers, on a channel of its own (a missing queue is an error).
    pub async fn try_queue_counts(&self, queue: &str) -> Result<(u32, u32), lapin::Error> {
        let channel = self.connection.create_channel().await?;
        let counts = broker::queue_counts(&channel, queue).await;
        let _ = channel.close(200, "checked".into()).await;
        counts
    }

    pub async fn queue_depth(&self, queue: &str) -> u32 {
        self.channel
            .queue_declare(
                queue.into(),
                lapin::options::QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .expect("passive declare")
            .message_count()
    }
}

pub async fn next_from(consumer: &mut lapin::Consumer) -> (JobResult, lapin::message::Delivery) {
    let delivery = tokio::time::timeout(WAIT, consumer.next())
        .await
        .expect("a result within the deadline")
        .expect("consumer open")
        .expect("delivery");
    let value: Value = serde_json::from_slice(&delivery.data).expect("result is JSON");
    crate::schemas::assert_valid("result.schema.json", &value);
    (
        serde_json::from_value(value).expect("result matches JobResult"),
        delivery,
    )
}

pub async fn drain(channel: &Channel, queue: &str) -> Vec<lapin::message::BasicGetMessage> {
    let mut out = Vec::new();
    while let Some(message) = channel
        .basic_get(queue.into(), BasicGetOptions { no_ack: true })
        .await
        .expect("basic.get")
    {
        out.push(message);
    }
    out
}

impl Drop for TestApp {
    /// Stops the worker and deletes the test's queues, even when the test panicked.
    fn drop(&mut self) {
        self.shutdown.trigger();
        // On a multi-thread runtime the workers keep running while this cleans up: a worker still draining
        // would see its queues deleted and declare them again. (On a current-thread runtime nothing else
        // runs while this blocks, and the runtime drops the workers afterwards.)
        let workers: Vec<JoinHandle<()>> = self
            .worker
            .take()
            .into_iter()
            .chain(self.replicas.drain(..))
            .collect();
        if let Ok(runtime) = tokio::runtime::Handle::try_current()
            && runtime.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread
        {
            tokio::task::block_in_place(|| {
                runtime.block_on(async {
                    let all = futures_util::future::join_all(workers);
                    let _ = tokio::time::timeout(Duration::from_secs(20), all).await;
                })
            });
        }
        let url = self.amqp_url.clone();
        let names = self.names.clone();
        let mut queues = broker::all_queues(&names, &RetryPolicy::new(&self.settings.retry));
        let lane_names = LaneNames::new(&self.settings.topology.prefix);
        let groups = self.settings.lanes.groups;
        let native: Vec<DeviceId> = self
            .settings
            .backend
            .devices
            .iter()
            .flat_map(|entry| entry.devices.iter().cloned())
            .collect();
        // The lanes of the test's devices, in case a claim is still held while this runs.
        let used: Vec<String> = self.used_devices.lock().unwrap().iter().cloned().collect();
        let known = self
            .devices
            .iter()
            .chain(&used)
            .filter_map(|d| DeviceId::parse(d.as_str()).ok())
            .map(Some)
            .chain([None]);
        for device in known {
            for lane in [LaneKind::Fetch, LaneKind::FetchNow, LaneKind::Update] {
                queues.push(lane_names.lane(device.as_ref(), lane));
            }
        }
        let _ = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async move {
                let Ok(connection) =
                    Connection::connect(&url, ConnectionProperties::default()).await
                else {
                    return;
                };
                // Every group's claim and inbox by name, and the lanes each claim records, each claim read on
                // a channel of its own (a claim that is gone closes its channel).
                let groups = (0..groups)
                    .map(Group::Shard)
                    .chain(native.iter().cloned().map(Group::Native));
                queues.push(lane_names.update_intake_claim());
                for group in groups {
                    let claim = lane_names.claim(&group);
                    if let Ok(channel) = connection.create_channel().await
                        && let Ok(lanes) = lanes::lanes_of_claim(&channel, &claim).await
                    {
                        queues.extend(lanes.iter().map(|lane| lane.queue(&lane_names)));
                        let _ = channel.close(200, "cleanup".into()).await;
                    }
                    queues.push(claim);
                    queues.push(lane_names.inbox(&group));
                }
                if let Ok(channel) = connection.create_channel().await {
                    for queue in &queues {
                        let _ = channel
                            .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
                            .await;
                    }
                }
                let _ = connection.close(200, "cleanup".into()).await;
            });
        })
        .join();
    }
}

// Paced runs: the lane tests and the pacing binary.

/// A per-device limit for `paced`.
pub fn limit(rate_per_s: f64, burst: u32, concurrency: usize) -> avatar_worker::settings::Limit {
    avatar_worker::settings::Limit {
        rate_per_s,
        burst,
        concurrency,
    }
}

/// Pacing on, with this fetch limit.
pub fn paced(fetch: avatar_worker::settings::Limit) -> Box<dyn FnOnce(&mut Settings) + Send> {
    Box::new(move |s| {
        s.pacing.enabled = true;
        s.pacing.fetch = fetch;
    })
}

/// `n` fetch jobs for `device`, with ids `<prefix>0…` and a number each.
pub fn fetches(prefix: &str, device: &str, n: usize) -> Vec<Value> {
    (0..n)
        .map(|i| serde_json::json!({"job_id": format!("{prefix}{i}"), "device_id": device, "phone": format!("62814{i:08}")}))
        .collect()
}

/// Results until every one of `ids` has one; returns how many results came (duplicates included).
pub async fn answers(app: &mut TestApp, n: usize) -> (std::collections::HashSet<String>, usize) {
    let mut seen = std::collections::HashSet::new();
    let mut total = 0;
    while seen.len() < n {
        let result = app.next_result().await;
        assert!(result.error.is_none(), "{result:?}");
        seen.insert(result.job_id.to_string());
        total += 1;
    }
    (seen, total)
}

/// When each `GET /user/avatar` of a mock's request log began (its answer time minus its duration), by
/// device header, in seconds, in order.
pub fn gateway_starts(log: &Value) -> HashMap<String, Vec<f64>> {
    let mut out: HashMap<String, Vec<f64>> = HashMap::new();
    for entry in log["results"].as_array().into_iter().flatten() {
        if entry["path"] != "/user/avatar" || entry["method"] != "GET" {
            continue;
        }
        let Some(time) = entry["time"].as_str() else {
            continue;
        };
        let Ok(at) =
            time::OffsetDateTime::parse(time, &time::format_description::well_known::Rfc3339)
        else {
            continue;
        };
        let seconds = at.unix_timestamp_nanos() as f64 / 1e9;
        let start = seconds - entry["duration_ms"].as_f64().unwrap_or(0.0) / 1000.0;
        let device = entry["device_id"].as_str().unwrap_or("-").to_string();
        out.entry(device).or_default().push(start);
    }
    for starts in out.values_mut() {
        starts.sort_by(f64::total_cmp);
    }
    out
}

/// The value of the sample whose line starts with `series` (name and labels exactly as exposed).
pub fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|value| value.split_whitespace().next()?.parse().ok())
}

/// The most starts within any window of `window` seconds. A call reaches the mock a few milliseconds after
/// its turn, more on a busy machine, so callers checking a one-second limit pass a window of 0.9 s: one
/// late call may shorten the interval after it by that much.
pub fn busiest_window(starts: &[f64], window: f64) -> usize {
    let mut most = 0;
    let mut first = 0;
    for (last, at) in starts.iter().enumerate() {
        while at - starts[first] > window {
            first += 1;
        }
        most = most.max(last + 1 - first);
    }
    most
}

/// Delay tiers (or any list of durations) written in milliseconds.
pub fn ms(list: &[u64]) -> Vec<Duration> {
    list.iter().copied().map(Duration::from_millis).collect()
}

/// A header as a string.
pub fn header(properties: &BasicProperties, key: &str) -> Option<String> {
    avatar_worker::broker::header_str(properties.headers().as_ref(), key)
}
