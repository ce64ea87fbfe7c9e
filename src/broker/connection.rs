//! Connecting to one broker node out of several. A cluster is given as a list of node URLs; every
//! connection (the worker's, a producer's, a batch's) goes to the first node that answers, trying them in
//! a rotating order that starts at a random node, so replicas spread over the nodes and a reconnect after a
//! loss tries the *next* node first instead of waiting on the one that just died.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use lapin::{Connection, ConnectionProperties};
use rand::Rng;
use secrecy::{ExposeSecret, SecretString};

use crate::settings::redact_url;

/// How long one node may take to accept a connection (TCP, TLS and the AMQP handshake) by default.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The broker's node URLs (never empty) and where the next connection attempt starts. Clones share the
/// rotation.
#[derive(Clone)]
pub struct Addresses {
    urls: Arc<[SecretString]>,
    next: Arc<AtomicUsize>,
    timeout: Duration,
}

impl std::fmt::Debug for Addresses {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.redacted()).finish()
    }
}

/// A connection and the node it went to (redacted, for logs and `/readyz`).
pub struct Connected {
    pub connection: Connection,
    pub node: String,
}

impl Addresses {
    /// The nodes of one cluster, in any order; `None` when `urls` is empty.
    pub fn new(urls: impl IntoIterator<Item = SecretString>) -> Option<Self> {
        let urls: Arc<[SecretString]> = urls.into_iter().collect();
        if urls.is_empty() {
            return None;
        }
        let start = rand::rng().random_range(0..urls.len());
        Some(Self {
            urls,
            next: Arc::new(AtomicUsize::new(start)),
            timeout: DEFAULT_CONNECT_TIMEOUT,
        })
    }

    /// One node.
    pub fn one(url: &str) -> Self {
        Self {
            urls: Arc::new([SecretString::from(url)]),
            next: Arc::default(),
            timeout: DEFAULT_CONNECT_TIMEOUT,
        }
    }

    /// How long each node may take to accept a connection.
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Every node, passwords replaced by `***`.
    pub fn redacted(&self) -> Vec<String> {
        self.urls
            .iter()
            .map(|url| redact_url(url.expose_secret()))
            .collect()
    }

    /// Connects to the first node that answers, starting where the last successful connection left off
    /// plus one. The connection `name` shows in the management UI, so operators can tell clients apart.
    ///
    /// With one node its error comes back as it is; with several, one error naming each node's failure.
    pub async fn connect(&self, name: &str) -> Result<Connected, lapin::Error> {
        let count = self.urls.len();
        let start = self.next.load(Ordering::Relaxed);
        let mut failures = Vec::new();
        for offset in 0..count {
            let index = (start + offset) % count;
            let url = &self.urls[index];
            match self.connect_one(url, name).await {
                Ok(connection) => {
                    self.next.store(index + 1, Ordering::Relaxed);
                    return Ok(Connected {
                        connection,
                        node: redact_url(url.expose_secret()),
                    });
                }
                Err(error) => failures.push((redact_url(url.expose_secret()), error)),
            }
        }
        self.next.store(start + 1, Ordering::Relaxed);
        if failures.len() == 1
            && let Some((_, error)) = failures.pop()
        {
            return Err(error);
        }
        let text = failures
            .iter()
            .map(|(node, error)| format!("{node}: {error}"))
            .collect::<Vec<_>>()
            .join("; ");
        Err(std::io::Error::other(format!("no broker node answered ({text})")).into())
    }

    async fn connect_one(
        &self,
        url: &SecretString,
        name: &str,
    ) -> Result<Connection, lapin::Error> {
        let properties = ConnectionProperties::default().with_connection_name(name.into());
        let mut uri: lapin::uri::AMQPUri = url
            .expose_secret()
            .parse()
            .map_err(|err: String| std::io::Error::new(std::io::ErrorKind::InvalidInput, err))?;
        uri.query.frame_max.get_or_insert(FRAME_MAX);
        match tokio::time::timeout(self.timeout, Connection::connect_uri(uri, properties)).await {
            Ok(connected) => connected,
            Err(_) => Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!(
                    "no connection within {}",
                    crate::client::seconds(self.timeout)
                ),
            )
            .into()),
        }
    }
}

/// The largest frame the worker asks for, unless the URL names one (`?frame_max=`). lapin keeps a read and a
/// write buffer of 32 frames for each connection: at the broker's default of 128 KiB they grow to 8 MiB, most
/// of a worker's memory, for jobs and results of a few hundred bytes. A large update job only takes more frames.
const FRAME_MAX: u32 = 16 * 1024;

/// How long closing a connection may take before its owner moves on (reconnects or exits).
const CLOSE_WITHIN: Duration = Duration::from_secs(5);

/// Closes `connection` (the broker takes back every unacked delivery), giving up after a few seconds: lapin
/// never answers a close sent after its I/O loop stopped, which a lost node can cause at any moment.
pub async fn close(connection: &Connection, reason: &str) {
    if connection.status().connected() {
        let _ = tokio::time::timeout(CLOSE_WITHIN, connection.close(200, reason.into())).await;
    }
}

impl From<&str> for Addresses {
    fn from(url: &str) -> Self {
        Self::one(url)
    }
}

impl From<&String> for Addresses {
    fn from(url: &String) -> Self {
        Self::one(url)
    }
}

impl From<&Addresses> for Addresses {
    fn from(addresses: &Addresses) -> Self {
        addresses.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A port nothing listens on: bound, then released.
    fn closed_port() -> u16 {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    }

    #[tokio::test]
    async fn every_node_is_named_in_the_error_and_no_password_shows() {
        let urls = [closed_port(), closed_port()]
            .map(|port| SecretString::from(format!("amqp://bob:hunter2@127.0.0.1:{port}/%2f")));
        let addresses = Addresses::new(urls).unwrap();
        let error = addresses.connect("test").await.err().unwrap().to_string();
        assert!(error.contains("no broker node answered ("), "{error}");
        assert_eq!(
            error.matches("amqp://bob:***@127.0.0.1:").count(),
            2,
            "{error}"
        );
        assert!(!error.contains("hunter2"), "{error}");
    }

    #[tokio::test]
    async fn a_node_that_never_answers_times_out() {
        // Accepts TCP but never speaks AMQP.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let _held = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((stream, _)) = listener.accept().await {
                held.push(stream);
            }
        });
        let addresses = Addresses::one(&format!("amqp://127.0.0.1:{port}/%2f"))
            .with_connect_timeout(Duration::from_millis(200));
        let error = addresses.connect("test").await.err().unwrap().to_string();
        assert!(error.contains("no connection within 200 ms"), "{error}");
    }

    #[test]
    fn the_rotation_starts_at_a_random_node_and_clones_share_it() {
        let urls = || (0..4).map(|n| SecretString::from(format!("amqp://node{n}/")));
        let starts: std::collections::HashSet<usize> = (0..64)
            .map(|_| Addresses::new(urls()).unwrap().next.load(Ordering::Relaxed))
            .collect();
        assert!(starts.len() > 1, "{starts:?}");
        let addresses = Addresses::new(urls()).unwrap();
        addresses.clone().next.store(7, Ordering::Relaxed);
        assert_eq!(addresses.next.load(Ordering::Relaxed), 7);
        assert_eq!(Addresses::new(Vec::new()).map(|_| ()), None);
    }
}
