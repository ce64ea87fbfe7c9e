//! The three-node cluster of `scripts/cluster.sh`, driven from the tests: started (or healed) before each
//! scenario, one scenario at a time, nodes killed and restarted by number.

use std::path::PathBuf;
use std::sync::LazyLock;

use tokio::process::Command;
use tokio::sync::{Mutex, MutexGuard};

/// One scenario at a time: they kill nodes. (nextest runs each test in a process of its own and the
/// `cluster` test group in `.config/nextest.toml` runs them one after another.)
static ONE_AT_A_TIME: LazyLock<Mutex<()>> = LazyLock::new(|| Mutex::new(()));

pub struct Cluster {
    _turn: MutexGuard<'static, ()>,
    pub urls: Vec<String>,
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/cluster.sh")
}

/// Runs the script; its failure fails the test with what it printed.
async fn run(args: &[&str]) -> String {
    let out = Command::new(script())
        .args(args)
        .output()
        .await
        .unwrap_or_else(|err| panic!("scripts/cluster.sh {args:?} cannot run: {err}"));
    assert!(
        out.status.success(),
        "scripts/cluster.sh {args:?} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The cluster with all three nodes running and joined, for this test alone.
pub async fn cluster() -> Cluster {
    let turn = ONE_AT_A_TIME.lock().await;
    run(&["start"]).await;
    let urls = run(&["urls"]).await;
    Cluster {
        _turn: turn,
        urls: urls.split(',').map(str::to_string).collect(),
    }
}

impl Cluster {
    /// `kill -9` of node `n`'s Erlang VM; returns once its port no longer answers.
    pub async fn kill(&self, n: u8) {
        run(&["kill", &n.to_string()]).await;
    }

    pub async fn stop_node(&self, n: u8) {
        run(&["stop-node", &n.to_string()]).await;
    }

    /// Starts node `n` again and waits until the three nodes see each other.
    pub async fn start_node(&self, n: u8) {
        run(&["start-node", &n.to_string()]).await;
        run(&["wait-synced"]).await;
    }

    /// The node leading quorum queue `queue`.
    pub async fn leader(&self, queue: &str) -> u8 {
        let out = run(&["leader", queue]).await;
        out.parse()
            .unwrap_or_else(|_| panic!("leader of {queue}: {out:?}"))
    }

    /// The node of each client connection named `name`.
    pub async fn nodes_of(&self, name: &str) -> Vec<u8> {
        Self::connection_nodes(name).await
    }

    /// As [`Cluster::nodes_of`], for a task that does not hold the cluster.
    pub async fn connection_nodes(name: &str) -> Vec<u8> {
        run(&["connections"])
            .await
            .lines()
            .filter_map(|line| line.split_once(' '))
            .filter(|(_, connection)| *connection == name)
            .filter_map(|(node, _)| node.parse().ok())
            .collect()
    }

    /// `name=messages` of every queue whose name starts with `prefix` and holds messages.
    pub async fn queue_depths(prefix: &str) -> String {
        run(&["queues"])
            .await
            .lines()
            .filter(|line| line.starts_with(prefix) && !line.ends_with(" 0"))
            .map(|line| line.replacen(' ', "=", 1))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Every queue whose name starts with `prefix`.
    pub async fn queues(&self, prefix: &str) -> Vec<String> {
        run(&["queues"])
            .await
            .lines()
            .filter_map(|line| line.split_once(' '))
            .filter(|(queue, _)| queue.starts_with(prefix))
            .map(|(queue, _)| queue.to_string())
            .collect()
    }

    /// The URLs of every node but `n`.
    pub fn urls_except(&self, n: u8) -> Vec<String> {
        self.urls
            .iter()
            .filter(|url| node_of(url) != Some(n))
            .cloned()
            .collect()
    }

    /// The URL of node `n`.
    pub fn url(&self, n: u8) -> &str {
        self.urls
            .iter()
            .find(|url| node_of(url) == Some(n))
            .expect("nodes are 1, 2 and 3")
    }
}

/// The node number of a (redacted or not) URL: its port is `568N`.
pub fn node_of(url: &str) -> Option<u8> {
    let port = url.rsplit(':').next()?.split('/').next()?;
    port.strip_prefix("568")?.parse().ok()
}
