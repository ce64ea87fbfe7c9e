//! The load generator: publishes fetch jobs with pipelined confirms on its own connection and times
//! each job from its publish to its result.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use anyhow::Context;
use avatar_worker::broker;
use avatar_worker::broker::{QueueNames, RetryPolicy};
use avatar_worker::lanes;
use avatar_worker::lanes::names::{Group, LaneKind, LaneNames};
use avatar_worker::protocol::{DeviceId, JobKind};
use avatar_worker::settings::{LanesSettings, QueueType, RetrySettings};
use futures_util::StreamExt;
use lapin::options::{
    BasicConsumeOptions, BasicPublishOptions, ConfirmSelectOptions, QueueDeleteOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use serde::Deserialize;
use tokio::sync::mpsc;

use crate::stats::{RunStats, percentile};

/// Unconfirmed publishes in flight: RabbitMQ's confirm throughput rises steeply up to a few hundred.
const CONFIRM_WINDOW: usize = 500;
/// Every delay tier any worker of the benchmark declares, for cleanup.
const DELAY_TIERS: [u64; 6] = [250, 1_000, 5_000, 30_000, 120_000, 2_000];

/// Every delay tier a bench worker may use, so the bench declares and deletes all of their queues.
pub fn delay_tiers() -> RetryPolicy {
    RetryPolicy::new(&RetrySettings {
        delays: DELAY_TIERS.map(Duration::from_millis).to_vec(),
        ..RetrySettings::default()
    })
}

pub enum Offered {
    Max,
    /// Jobs per second.
    Rate(f64),
}

#[derive(Deserialize)]
struct Answer {
    job_id: String,
    device_id: Option<String>,
}

struct Received {
    job_id: String,
    device: Option<String>,
    at: Instant,
    bytes: usize,
}

/// Results of one run as they arrive; duplicates (at-least-once) are counted once.
struct Tally {
    prefix: String,
    seen: Vec<bool>,
    answered: usize,
    bytes: usize,
    last: Option<Instant>,
    latencies: Vec<Duration>,
    by_device: HashMap<String, Vec<Instant>>,
}

impl Tally {
    fn new(prefix: String, jobs: usize) -> Self {
        Self {
            prefix,
            seen: vec![false; jobs],
            answered: 0,
            bytes: 0,
            last: None,
            latencies: Vec::with_capacity(jobs),
            by_device: HashMap::new(),
        }
    }

    fn record(&mut self, received: Received, published: &[Instant]) {
        let Some(index) = received
            .job_id
            .strip_prefix(&self.prefix)
            .and_then(|i| i.parse::<usize>().ok())
            .filter(|i| *i < self.seen.len() && !self.seen[*i])
        else {
            return;
        };
        self.seen[index] = true;
        self.answered += 1;
        self.bytes += received.bytes;
        self.last = Some(received.at);
        if let Some(at) = published.get(index) {
            self.latencies.push(received.at.duration_since(*at));
        }
        if let Some(device) = received.device {
            self.by_device.entry(device).or_default().push(received.at);
        }
    }
}

/// See [`Load::watch_fill`].
pub struct FillWatch {
    last_held: std::sync::Arc<std::sync::Mutex<Option<Instant>>>,
    poller: tokio::task::JoinHandle<()>,
}

impl FillWatch {
    /// The last time a job was seen on its way to a lane.
    pub fn filled_at(&self) -> Option<Instant> {
        *self.last_held.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for FillWatch {
    fn drop(&mut self) {
        self.poller.abort();
    }
}

pub struct Load {
    prefix: String,
    connection: Connection,
    channel: Channel,
    names: QueueNames,
    devices: Vec<String>,
    results: tokio::sync::Mutex<mpsc::UnboundedReceiver<Received>>,
    runs: std::sync::atomic::AtomicUsize,
}

impl Load {
    pub async fn new(url: &str, prefix: &str, devices: &[String]) -> anyhow::Result<Self> {
        let names = QueueNames::with_prefix(prefix);
        let connection = Connection::connect(
            url,
            ConnectionProperties::default().with_connection_name("bench-load".into()),
        )
        .await
        .context("connecting the load generator")?;
        let channel = connection.create_channel().await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        broker::declare(&channel, &names, QueueType::Classic, &delay_tiers()).await?;
        let consumer_channel = connection.create_channel().await?;
        let mut consumer = consumer_channel
            .basic_consume(
                names.results.as_str().into(),
                "bench-results".into(),
                BasicConsumeOptions {
                    no_ack: true,
                    ..BasicConsumeOptions::default()
                },
                FieldTable::default(),
            )
            .await?;
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let _keep = consumer_channel;
            while let Some(Ok(delivery)) = consumer.next().await {
                let at = Instant::now();
                if let Ok(answer) = serde_json::from_slice::<Answer>(&delivery.data) {
                    let received = Received {
                        job_id: answer.job_id,
                        device: answer.device_id,
                        at,
                        bytes: delivery.data.len(),
                    };
                    if tx.send(received).is_err() {
                        break;
                    }
                }
            }
        });
        Ok(Self {
            prefix: prefix.to_string(),
            connection,
            channel,
            names,
            devices: devices.to_vec(),
            results: tokio::sync::Mutex::new(rx),
            runs: Default::default(),
        })
    }

    /// Publishes `jobs` fetch jobs at the offered rate and waits for their results.
    pub async fn run(&self, jobs: usize, offered: Offered) -> anyhow::Result<RunStats> {
        let run = self.runs.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let started = Instant::now();
        let mut published: Vec<Instant> = Vec::with_capacity(jobs);
        let mut window = VecDeque::with_capacity(CONFIRM_WINDOW);
        let mut results = self.results.lock().await;
        let mut tally = Tally::new(format!("r{run}-"), jobs);
        for i in 0..jobs {
            if let Offered::Rate(rate) = offered {
                let due = started + Duration::from_secs_f64(i as f64 / rate);
                tokio::time::sleep_until(due.into()).await;
            }
            let device = &self.devices[i % self.devices.len()];
            let body = serde_json::json!({"job_id": format!("r{run}-{i}"), "device_id": device, "phone": format!("6281{i:09}")});
            published.push(Instant::now());
            let confirm = self
                .channel
                .basic_publish(
                    "".into(),
                    self.names.fetch.as_str().into(),
                    BasicPublishOptions::default(),
                    body.to_string().as_bytes(),
                    BasicProperties::default().with_delivery_mode(2),
                )
                .await?;
            window.push_back(confirm);
            if window.len() >= CONFIRM_WINDOW
                && let Some(oldest) = window.pop_front()
            {
                oldest.await?;
            }
            while let Ok(received) = results.try_recv() {
                tally.record(received, &published);
            }
        }
        for confirm in window {
            confirm.await?;
        }
        let published_in = started.elapsed();
        let patience = Duration::from_secs(60);
        while tally.answered < jobs {
            match tokio::time::timeout(patience, results.recv()).await {
                Ok(Some(received)) => tally.record(received, &published),
                _ => break,
            }
        }
        let Tally {
            answered,
            bytes,
            last,
            mut latencies,
            by_device,
            ..
        } = tally;
        latencies.sort();
        let elapsed = last
            .map(|l| l.duration_since(started).as_secs_f64())
            .unwrap_or(0.0)
            .max(1e-9);
        Ok(RunStats {
            answered,
            throughput: answered as f64 / elapsed,
            published_in,
            p50_ms: percentile(&latencies, 0.50),
            p95_ms: percentile(&latencies, 0.95),
            p99_ms: percentile(&latencies, 0.99),
            result_bytes: bytes / answered.max(1),
            arrivals: by_device,
        })
    }

    /// Watches the queues a paced job passes before its lane (the job queue and the group inboxes) until
    /// dropped, remembering when they last held a message: from then on every device's backlog is in its lane.
    pub async fn watch_fill(&self) -> anyhow::Result<FillWatch> {
        let channel = self.connection.create_channel().await?;
        let lane_names = LaneNames::new(&self.prefix);
        let mut queues = vec![self.names.fetch.clone()];
        queues.extend(
            (0..LanesSettings::default().groups)
                .map(|shard| lane_names.inbox(&Group::Shard(shard))),
        );
        let last_held = std::sync::Arc::new(std::sync::Mutex::new(None));
        let seen = last_held.clone();
        let poller = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(100));
            loop {
                tick.tick().await;
                let mut held = 0;
                for queue in &queues {
                    held += broker::message_count(&channel, queue).await.unwrap_or(0);
                }
                if held > 0 {
                    *seen.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
                }
            }
        });
        Ok(FillWatch { last_held, poller })
    }

    /// Deletes every queue of this prefix, the lanes of its devices included (after its worker stopped).
    pub async fn cleanup(&self) {
        let lane_names = LaneNames::new(&self.prefix);
        // A channel of its own: reading a claim that was never declared (the echo run) closes it.
        let mut queues = match self.connection.create_channel().await {
            Ok(channel) => {
                lanes::queues(&channel, &lane_names, LanesSettings::default().groups, &[])
                    .await
                    .unwrap_or_default()
            }
            Err(_) => Vec::new(),
        };
        for device in &self.devices {
            let device = DeviceId::parse(device).ok();
            for &lane in LaneKind::of(JobKind::Fetch) {
                queues.push(lane_names.lane(device.as_ref(), lane));
            }
        }
        queues.extend(broker::all_queues(&self.names, &delay_tiers()));
        for queue in queues {
            let _ = self
                .channel
                .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
                .await;
        }
        let _ = self.connection.close(200, "bench done".into()).await;
    }
}
