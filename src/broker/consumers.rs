//! A channel for consumers that each take their own prefetch.
//!
//! The broker keeps one list of unacked deliveries per channel and looks up each ack in it; lanes ack
//! in their devices' order, not in delivery order, so a list shared by a thousand lanes made every ack a
//! long search (the broker's busiest process, measured in `bench --many-only`). Each group owner
//! therefore consumes on a channel of its own.

use std::sync::atomic::{AtomicU64, Ordering};

use lapin::options::{BasicCancelOptions, BasicConsumeOptions, BasicQosOptions};
use lapin::types::FieldTable;
use lapin::{Channel, Connection, Consumer};
use tokio::sync::Mutex;

/// Consumer tags unique within this process.
static TAGS: AtomicU64 = AtomicU64::new(0);

pub struct Consumers {
    channel: Channel,
    /// `basic.qos` applies to the consumers started after it on a channel: one at a time, and the last
    /// prefetch set, so a thousand consumers of the same prefetch cost one `basic.qos`.
    qos: Mutex<Option<u16>>,
}

impl Consumers {
    pub async fn open(connection: &Connection) -> Result<Self, lapin::Error> {
        Ok(Self {
            channel: connection.create_channel().await?,
            qos: Mutex::new(None),
        })
    }

    /// Starts a consumer on `queue` taking at most `prefetch` unacked deliveries; returns its tag.
    pub async fn consume(
        &self,
        queue: &str,
        prefetch: u16,
    ) -> Result<(String, Consumer), lapin::Error> {
        let mut qos = self.qos.lock().await;
        if *qos != Some(prefetch) {
            *qos = None;
            self.channel
                .basic_qos(prefetch, BasicQosOptions::default())
                .await?;
            *qos = Some(prefetch);
        }
        let tag = format!(
            "avatar-worker-{}-{}",
            std::process::id(),
            TAGS.fetch_add(1, Ordering::Relaxed)
        );
        let consumer = self
            .channel
            .basic_consume(
                queue.into(),
                tag.as_str().into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        Ok((tag, consumer))
    }

    /// Stops a consumer; deliveries already sent stay with it until they are settled or the channel closes.
    pub async fn cancel(&self, tag: &str) {
        let _ = self
            .channel
            .basic_cancel(tag.into(), BasicCancelOptions::default())
            .await;
    }

    /// Closes the channel: what it still holds goes back to its queues.
    pub async fn close(&self, reason: &str) {
        let _ = self.channel.close(200, reason.into()).await;
    }
}
