//! A TCP proxy in front of the broker, shared by the tests that cut the worker's connection.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// A TCP proxy in front of the broker whose connections the test can cut at will.
pub struct Proxy {
    pub port: u16,
    links: Arc<Mutex<Vec<JoinHandle<()>>>>,
    refusing: Arc<AtomicBool>,
    accept: JoinHandle<()>,
}

impl Proxy {
    /// A proxy in front of the broker at `amqp_url`, and the URL that reaches the broker through it.
    pub async fn in_front_of(amqp_url: &str) -> (Self, String) {
        let (userinfo, upstream) = authority(amqp_url);
        let proxy = Self::start(upstream).await;
        let via_proxy = format!("amqp://{userinfo}@127.0.0.1:{}/%2f", proxy.port);
        (proxy, via_proxy)
    }

    pub async fn start(upstream: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let links: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let registry = links.clone();
        let refusing = Arc::new(AtomicBool::new(false));
        let refuse = refusing.clone();
        let accept = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if refuse.load(Ordering::SeqCst) {
                    drop(inbound);
                    continue;
                }
                let upstream = upstream.clone();
                let link = tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                registry.lock().unwrap().push(link);
            }
        });
        Self {
            port,
            links,
            refusing,
            accept,
        }
    }

    /// Drops every open connection and closes new ones at once, until [`Proxy::resume`]: the broker looks
    /// down for as long as the test needs.
    pub fn pause(&self) {
        self.refusing.store(true, Ordering::SeqCst);
        self.cut();
    }

    pub fn resume(&self) {
        self.refusing.store(false, Ordering::SeqCst);
    }

    /// Drops every open connection; new ones are still accepted.
    pub fn cut(&self) {
        for link in self.links.lock().unwrap().drain(..) {
            link.abort();
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.cut();
        self.accept.abort();
    }
}

/// `host:port` of an `amqp://user:pass@host:port/vhost` URL.
pub fn authority(url: &str) -> (String, String) {
    let rest = url.split_once("://").unwrap().1;
    let (userinfo, rest) = rest.split_once('@').unwrap_or(("", rest));
    let host = rest.split('/').next().unwrap().to_string();
    (userinfo.to_string(), host)
}
