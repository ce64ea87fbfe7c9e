//! What every cluster scenario needs: a worker on the cluster (quorum queues) in front of a mock gateway,
//! a producer and a results reader that both survive the loss of their node, and a watch on `/readyz`.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use avatar_worker::app::App;
use avatar_worker::broker::{Addresses, Publisher, QueueNames, Watch};
use avatar_worker::client::Client;
use avatar_worker::protocol::{DeviceId, FetchJob, JobId, JobResult, Phone};
use avatar_worker::settings::{QueueType, Settings, TopologySettings};
use avatar_worker::shutdown::Shutdown;
use futures_util::StreamExt;
use lapin::BasicProperties;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicQosOptions, QueueDeleteOptions};
use lapin::types::FieldTable;
use secrecy::SecretString;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::nodes::{Cluster, node_of};

pub const USER: &str = "gateway-user";
pub const PASSWORD: &str = "gateway-pass-cluster";

/// A worker of the cluster's own topology, named by a random prefix.
pub struct Scenario {
    pub mock: mock_server::MockServer,
    pub settings: Settings,
    pub names: QueueNames,
    shutdown: Shutdown,
    worker: Option<JoinHandle<()>>,
    pub admin: Option<SocketAddr>,
    /// The job ids of [`Scenario::jobs`], in order: a failure names the ones never answered.
    created: Mutex<Vec<String>>,
}

pub fn addresses(urls: &[String]) -> Addresses {
    Addresses::new(urls.iter().map(|url| SecretString::from(url.clone())))
        .expect("at least one node")
        .with_connect_timeout(Duration::from_secs(2))
}

impl Scenario {
    /// The mock gateway and the worker's settings for `urls`; the worker is not started yet.
    pub async fn new(urls: &[String]) -> Self {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
        let mock = mock_server::spawn(mock_server::Config {
            basic_auth: vec![(USER.into(), PASSWORD.into())],
            devices: vec!["dev-a".into()],
            shares: mock_server::Shares::every_picture_set(),
            ..mock_server::Config::default()
        })
        .await
        .expect("mock server starts");
        let prefix = format!("cluster-{}", uuid::Uuid::new_v4().simple());
        let mut settings = Settings::default();
        settings.amqp.urls = urls.iter().cloned().map(SecretString::from).collect();
        settings.amqp.connect_timeout = Duration::from_secs(2);
        settings.amqp.reconnect_min = Duration::from_millis(50);
        settings.amqp.reconnect_max = Duration::from_millis(500);
        settings.topology = TopologySettings::with_prefix(&prefix);
        settings.topology.queue_type = QueueType::Quorum;
        settings.gateway.base_url = mock.base_url();
        settings.gateway.username = Some(USER.into());
        settings.gateway.password = Some(PASSWORD.into());
        settings.gateway.timeout = Duration::from_secs(8);
        settings.pacing.enabled = false;
        settings.retry.max_attempts = 1;
        settings.retry.delays = vec![Duration::from_millis(200)];
        settings.admin.bind = ([127, 0, 0, 1], 0).into();
        settings.lanes.groups = 2;
        settings.validate().expect("valid settings");
        let names = QueueNames::new(&settings.topology);
        Self {
            mock,
            settings,
            names,
            shutdown: Shutdown::new(),
            worker: None,
            admin: None,
            created: Mutex::default(),
        }
    }

    /// Makes the mock gateway take `ms` per answer, so a run lasts long enough to lose a node in.
    pub async fn mock_latency(&self, ms: u64) {
        let response = reqwest::Client::new()
            .put(format!("{}/_mock/faults", self.mock.base_url()))
            .basic_auth(USER, Some(PASSWORD))
            .json(&serde_json::json!({ "latency_ms": ms }))
            .send()
            .await
            .expect("mock control call");
        assert!(response.status().is_success(), "{}", response.status());
    }

    /// The mock's request log, as text.
    pub async fn gateway_log(&self) -> String {
        let response = reqwest::Client::new()
            .get(format!("{}/_mock/requests", self.mock.base_url()))
            .basic_auth(USER, Some(PASSWORD))
            .send()
            .await;
        match response {
            Ok(response) => response.text().await.unwrap_or_default(),
            Err(err) => err.to_string(),
        }
    }

    /// Starts the worker the way `avatar-worker run` does.
    pub async fn start_worker(&mut self) {
        let app = App::build(self.settings.clone())
            .await
            .expect("the worker starts");
        self.admin = app.admin_addr();
        self.worker = Some(tokio::spawn(app.run(self.shutdown.clone())));
    }

    pub fn prefix(&self) -> &str {
        &self.settings.topology.prefix
    }

    /// `/readyz`: status and body.
    pub async fn readyz(&self) -> (u16, String) {
        let admin = self.admin.expect("the worker runs");
        match reqwest::get(format!("http://{admin}/readyz")).await {
            Ok(response) => {
                let status = response.status().as_u16();
                (status, response.text().await.unwrap_or_default())
            }
            Err(err) => (0, err.to_string()),
        }
    }

    /// Waits until `/readyz` says 200 and returns the node the worker is connected to.
    pub async fn ready_node(&self) -> u8 {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let (status, body) = self.readyz().await;
            if status == 200
                && let Some(node) = broker_node(&body)
            {
                return node;
            }
            assert!(
                Instant::now() < deadline,
                "the worker never became ready: {status} {body}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Fetch jobs `<tag>0` … for distinct numbers.
    pub fn jobs(&self, tag: &str, range: std::ops::Range<usize>) -> Vec<FetchJob> {
        let jobs: Vec<FetchJob> = range
            .map(|i| FetchJob {
                job_id: Some(JobId::parse(format!("{tag}{i}")).expect("a job id")),
                device_id: Some(DeviceId::parse("dev-a").expect("a device id")),
                phone: Phone::parse(&phone_number(i)).expect("a phone"),
                is_preview: false,
                is_community: false,
                known_id: None,
                download: false,
                interactive: false,
            })
            .collect();
        let mut created = self.created.lock().unwrap();
        created.extend(
            jobs.iter()
                .filter_map(|job| job.job_id.as_ref())
                .map(|id| id.as_str().to_string()),
        );
        jobs
    }

    /// Stops the worker, then deletes every queue of this scenario (lanes included) through `urls`.
    pub async fn finish(mut self, cluster: &Cluster) {
        self.shutdown.trigger();
        if let Some(worker) = self.worker.take() {
            let _ = tokio::time::timeout(Duration::from_secs(30), worker).await;
        }
        let queues = cluster.queues(self.prefix()).await;
        if let Ok(connected) = addresses(&cluster.urls).connect("cluster-cleanup").await
            && let Ok(channel) = connected.connection.create_channel().await
        {
            for queue in queues {
                let _ = channel
                    .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
                    .await;
            }
            let _ = connected.connection.close(200, "done".into()).await;
        }
    }
}

/// The number of job `i` (any tag).
fn phone_number(i: usize) -> String {
    format!("6281{i:09}")
}

/// The number of the job with id `<tag><i>`.
fn phone_of(job_id: &str) -> String {
    let i = job_id.trim_start_matches(|c: char| !c.is_ascii_digit());
    phone_number(i.parse().unwrap_or(usize::MAX))
}

/// The node number on `/readyz`'s `broker …` line.
pub fn broker_node(body: &str) -> Option<u8> {
    body.lines()
        .find_map(|line| line.strip_prefix("broker "))
        .and_then(node_of)
}

/// Publishes confirmed jobs through any node, moving to another when its node is lost and publishing
/// again what was not confirmed.
pub struct Producer {
    addresses: Addresses,
    names: QueueNames,
    client: Option<Client>,
    /// Publishes that failed (no confirm, or a nack) and were made again.
    pub repeated: usize,
}

impl Producer {
    pub fn new(urls: &[String], names: &QueueNames) -> Self {
        Self {
            addresses: addresses(urls),
            names: names.clone(),
            client: None,
            repeated: 0,
        }
    }

    pub async fn send(&mut self, job: &FetchJob) {
        loop {
            if self.client.is_none() {
                self.client = Client::connect_with(&self.addresses, self.names.clone())
                    .await
                    .ok();
            }
            let Some(client) = &self.client else {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            };
            match client.publish_fetch(job, None).await {
                Ok(_) => return,
                Err(_) => {
                    self.repeated += 1;
                    self.client = None;
                }
            }
        }
    }

    /// Sends every job before awaiting the confirms (one at a time would take seconds on a quorum queue);
    /// what is not confirmed goes again through [`Producer::send`].
    pub async fn send_all(&mut self, jobs: &[FetchJob]) {
        let unconfirmed = match self.addresses.connect("cluster-producer").await {
            Ok(connected) => {
                let failed =
                    publish_confirmed(&connected.connection, &self.names.fetch, jobs).await;
                avatar_worker::broker::close(&connected.connection, "sent").await;
                failed
            }
            Err(_) => jobs.iter().collect(),
        };
        self.repeated += unconfirmed.len();
        for job in unconfirmed {
            self.send(job).await;
        }
    }
}

/// Publishes every job, then awaits their confirms; returns the jobs not confirmed.
async fn publish_confirmed<'a>(
    connection: &lapin::Connection,
    queue: &str,
    jobs: &'a [FetchJob],
) -> Vec<&'a FetchJob> {
    // A node stopping under a new connection can leave lapin's requests unanswered: the publisher's waits end
    // with the connection.
    let Ok(publisher) = Publisher::open(connection).await else {
        return jobs.iter().collect();
    };
    let mut confirms = Vec::with_capacity(jobs.len());
    for job in jobs {
        let body = serde_json::to_vec(job).expect("a job serialises");
        confirms.push(
            publisher
                .send(queue, &body, BasicProperties::default())
                .await,
        );
    }
    let mut failed = Vec::new();
    for (job, confirmed) in jobs.iter().zip(confirms) {
        if confirmed.await.is_err() {
            failed.push(job);
        }
    }
    failed
}

/// Every result that reached the results queue, read through any node and moving on when its node is lost.
#[derive(Default)]
pub struct Collected {
    /// Distinct result bodies per job: two mean the worker answered the job twice. The same body twice is
    /// a redelivery to this reader, not a duplicate answer.
    pub bodies: HashMap<String, HashSet<Vec<u8>>>,
    pub results: Vec<JobResult>,
    /// When each new job's first answer arrived.
    pub arrivals: Vec<Instant>,
    /// Messages on the results queue that are no result envelope.
    pub unreadable: usize,
}

impl Collected {
    pub fn answered(&self) -> usize {
        self.bodies.len()
    }

    /// Answers beyond the first, over all jobs.
    pub fn duplicates(&self) -> usize {
        self.bodies.values().map(|bodies| bodies.len() - 1).sum()
    }

    /// The longest time between two consecutive new answers.
    pub fn longest_gap(&self) -> Duration {
        self.arrivals
            .windows(2)
            .map(|pair| pair[1] - pair[0])
            .max()
            .unwrap_or_default()
    }
}

pub struct Collector {
    pub collected: Arc<Mutex<Collected>>,
    progress: Arc<Notify>,
    task: JoinHandle<()>,
}

impl Collector {
    pub fn start(urls: &[String], queue: &str) -> Self {
        let collected = Arc::new(Mutex::new(Collected::default()));
        let progress = Arc::new(Notify::new());
        let task = tokio::spawn(read_results(
            addresses(urls),
            queue.to_string(),
            collected.clone(),
            progress.clone(),
        ));
        Self {
            collected,
            progress,
            task,
        }
    }

    pub fn answered(&self) -> usize {
        self.collected.lock().unwrap().answered()
    }

    /// Waits until `n` jobs have an answer; after `within`, panics with the depth of every queue of
    /// `scenario` (where the missing jobs wait).
    pub async fn until_answered(&self, n: usize, within: Duration, scenario: &Scenario) {
        let deadline = Instant::now() + within;
        loop {
            let notified = self.progress.notified();
            if self.answered() >= n {
                return;
            }
            if tokio::time::timeout_at(deadline.into(), notified)
                .await
                .is_err()
                && self.answered() < n
            {
                let depths = crate::nodes::Cluster::queue_depths(scenario.prefix()).await;
                let missing: Vec<String> = {
                    let collected = self.collected.lock().unwrap();
                    let created = scenario.created.lock().unwrap();
                    created
                        .iter()
                        .take(n)
                        .filter(|id| !collected.bodies.contains_key(*id))
                        .take(5)
                        .cloned()
                        .collect()
                };
                // Whether the worker ran them: the mock logs each number it was asked about.
                let log = scenario.gateway_log().await;
                let asked: Vec<bool> = missing
                    .iter()
                    .map(|id| log.contains(&phone_of(id)))
                    .collect();
                panic!(
                    "{} of {n} jobs answered within {within:?}; never answered: {missing:?} \
                     (asked at the gateway: {asked:?}); unreadable results: {}; queues: {depths}",
                    self.answered(),
                    self.collected.lock().unwrap().unreadable
                );
            }
        }
    }

    pub fn stop(self) -> Collected {
        self.task.abort();
        Arc::try_unwrap(self.collected)
            .map(|m| m.into_inner().unwrap())
            .unwrap_or_else(|shared| std::mem::take(&mut *shared.lock().unwrap()))
    }
}

async fn read_results(
    addresses: Addresses,
    queue: String,
    collected: Arc<Mutex<Collected>>,
    progress: Arc<Notify>,
) {
    loop {
        let Ok(connected) = addresses.connect("cluster-results").await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        // A node stopping under a new connection can leave lapin's requests unanswered: the watch ends them.
        let watch = Watch::new();
        watch.follow(&connected.connection);
        let consumer = async {
            let channel = connected.connection.create_channel().await?;
            channel.basic_qos(500, BasicQosOptions::default()).await?;
            channel
                .basic_consume(
                    queue.as_str().into(),
                    "results".into(),
                    BasicConsumeOptions::default(),
                    FieldTable::default(),
                )
                .await
        };
        let Some(Ok(mut consumer)) = watch.bound(consumer).await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        while let Some(Some(Ok(delivery))) = watch.bound(consumer.next()).await {
            let parsed = serde_json::from_slice::<JobResult>(&delivery.data);
            if parsed.is_err() {
                collected.lock().unwrap().unreadable += 1;
            }
            if let Ok(result) = parsed {
                let mut collected = collected.lock().unwrap();
                let bodies = collected
                    .bodies
                    .entry(result.job_id.as_str().to_string())
                    .or_default();
                let new_job = bodies.is_empty();
                if bodies.insert(delivery.data.clone()) {
                    collected.results.push(result);
                }
                if new_job {
                    collected.arrivals.push(Instant::now());
                }
            }
            progress.notify_waiters();
            let _ = watch.bound(delivery.ack(BasicAckOptions::default())).await;
        }
    }
}

/// What `/readyz` said from then on: its status and the node on its `broker` line.
pub type Readyz = (Instant, u16, Option<u8>);

/// Polls `/readyz` every 50 ms and keeps each change of (status, node).
pub struct ReadyWatch {
    seen: Arc<Mutex<Vec<Readyz>>>,
    task: JoinHandle<()>,
}

impl ReadyWatch {
    pub fn start(admin: SocketAddr) -> Self {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let recorded = seen.clone();
        let task = tokio::spawn(async move {
            let http = reqwest::Client::new();
            loop {
                let (status, body) = match http.get(format!("http://{admin}/readyz")).send().await {
                    Ok(response) => (
                        response.status().as_u16(),
                        response.text().await.unwrap_or_default(),
                    ),
                    Err(_) => (0, String::new()),
                };
                let node = broker_node(&body);
                {
                    let mut seen = recorded.lock().unwrap();
                    if seen
                        .last()
                        .is_none_or(|(_, s, n): &Readyz| (*s, *n) != (status, node))
                    {
                        seen.push((Instant::now(), status, node));
                    }
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
        Self { seen, task }
    }

    /// Waits until the last answer seen is `status` (the watch polls every 50 ms).
    pub async fn until_status(&self, status: u16) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.seen.lock().unwrap().last().map(|seen| seen.1) != Some(status) {
            assert!(Instant::now() < deadline, "/readyz never answered {status}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Every change seen: when, the status, and the node.
    pub fn stop(self) -> Vec<Readyz> {
        self.task.abort();
        std::mem::take(&mut *self.seen.lock().unwrap())
    }
}
