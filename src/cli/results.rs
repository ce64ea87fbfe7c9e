//! `avatar-worker results`: the results waiting on `<prefix>.results`, one JSON line each.

use futures_util::StreamExt;
use lapin::options::{BasicAckOptions, BasicConsumeOptions};
use lapin::types::FieldTable;

use crate::settings::Settings;

#[derive(Debug, clap::Args)]
pub struct ResultsArgs {
    /// Then wait for new results and print each as it arrives, until Ctrl-C. This takes them off the
    /// queue (acked): use it only when no other program reads the results queue.
    #[arg(long)]
    follow: bool,
    /// Print at most this many of the waiting results.
    #[arg(long)]
    limit: Option<usize>,
}

pub async fn results(settings: &Settings, args: ResultsArgs) -> anyhow::Result<()> {
    let client = super::connect_client(settings).await?;
    let queue = client.names().results.clone();
    if !args.follow {
        let waiting = client.waiting_results(args.limit).await?;
        for body in &waiting {
            println!("{}", String::from_utf8_lossy(body));
        }
        eprintln!(
            "{} result(s) shown from {queue}; they stay in the queue",
            waiting.len()
        );
        return Ok(());
    }
    let channel = client.connection().create_channel().await?;
    let mut consumer = channel
        .basic_consume(
            queue.as_str().into(),
            "avatar-worker-results".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    eprintln!("following {queue} (results are taken off the queue); Ctrl-C stops");
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            next = consumer.next() => match next {
                Some(delivery) => {
                    let delivery = delivery?;
                    println!("{}", String::from_utf8_lossy(&delivery.data));
                    delivery.acker.ack(BasicAckOptions::default()).await?;
                }
                None => anyhow::bail!("the broker closed the results consumer"),
            },
        }
    }
    let _ = channel.close(200, "stopped".into()).await;
    Ok(())
}
