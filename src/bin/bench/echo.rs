//! The broker baseline: a consumer that does nothing but answer each job with a result of the worker's
//! size, with the same prefetch, publisher confirms and ack-after-confirm as the worker.

use anyhow::Context;
use avatar_worker::broker::QueueNames;
use avatar_worker::broker::{self, Publisher, Watch};
use avatar_worker::settings::QueueType;
use futures_util::StreamExt;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicQosOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties};
use serde::Deserialize;
use tokio::task::JoinHandle;

pub struct Echo {
    connection: Connection,
    task: JoinHandle<()>,
}

#[derive(Deserialize)]
struct Job {
    job_id: String,
    device_id: Option<String>,
}

impl Echo {
    pub async fn start(
        url: &str,
        prefix: &str,
        prefetch: u16,
        result_bytes: usize,
    ) -> anyhow::Result<Self> {
        let names = QueueNames::with_prefix(prefix);
        let connection = Connection::connect(
            url,
            ConnectionProperties::default().with_connection_name("bench-echo".into()),
        )
        .await
        .context("connecting the echo consumer")?;
        let publisher = Publisher::new(connection.create_channel().await?, Watch::new()).await?;
        let tiers = super::load::delay_tiers();
        broker::declare(publisher.channel(), &names, QueueType::Classic, &tiers).await?;
        let channel = connection.create_channel().await?;
        channel
            .basic_qos(prefetch, BasicQosOptions::default())
            .await?;
        let mut consumer = channel
            .basic_consume(
                names.fetch.as_str().into(),
                "bench-echo".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        let task = tokio::spawn(async move {
            let _keep = channel;
            while let Some(Ok(delivery)) = consumer.next().await {
                let publisher = publisher.clone();
                let results = names.results.clone();
                tokio::spawn(async move {
                    let Ok(job) = serde_json::from_slice::<Job>(&delivery.data) else {
                        return;
                    };
                    let mut body = serde_json::json!({"job_id": job.job_id, "device_id": job.device_id, "pad": ""});
                    let pad = result_bytes.saturating_sub(body.to_string().len());
                    body["pad"] = serde_json::Value::String("x".repeat(pad));
                    let properties =
                        BasicProperties::default().with_content_type("application/json".into());
                    if publisher
                        .publish(&results, body.to_string().as_bytes(), properties)
                        .await
                        .is_ok()
                    {
                        let _ = delivery.acker.ack(BasicAckOptions::default()).await;
                    }
                });
            }
        });
        Ok(Self { connection, task })
    }

    pub async fn stop(self) {
        self.task.abort();
        let _ = self.connection.close(200, "bench done".into()).await;
    }
}
