//! `avatar-worker status`: every queue of the topology with its depth and consumers, the dead letters by
//! reason; fails when no worker consumes a job queue.

use anyhow::bail;

use crate::broker::RetryPolicy;
use crate::lanes::{self, names::LaneNames};
use crate::settings::Settings;

pub async fn status(settings: &Settings) -> anyhow::Result<()> {
    let client = super::connect_client(settings).await?;
    let names = client.names().clone();
    let retry = RetryPolicy::new(&settings.retry);
    let mut queues: Vec<String> = vec![names.fetch.clone(), names.update.clone()];
    for (_, job_queue) in names.job_queues() {
        queues.extend(retry.delay_queues(job_queue).into_iter().map(|(_, q)| q));
    }
    let mut lanes_note = None;
    match client.connection().create_channel().await {
        Ok(channel) => {
            let lane_names = LaneNames::new(&settings.topology.prefix);
            let native: Vec<_> = settings
                .backend
                .devices
                .iter()
                .flat_map(|entry| entry.devices.iter().cloned())
                .collect();
            match lanes::queues(&channel, &lane_names, settings.lanes.groups, &native).await {
                Ok(found) => {
                    queues.extend(found.into_iter().filter(|q| !q.contains(".claim")));
                    let _ = channel.close(200, "listed".into()).await;
                }
                Err(error) if crate::client::is_not_found(&error) => {
                    lanes_note = Some("no lanes: no worker has declared them yet".into())
                }
                Err(error) => lanes_note = Some(format!("lanes not listed: {error}")),
            }
        }
        Err(error) => lanes_note = Some(format!("lanes not listed: {error}")),
    }
    queues.push(names.results.clone());
    queues.push(names.dead.clone());

    println!("{:<48} {:>9} {:>9}", "queue", "ready", "consumers");
    let mut idle_job_queues = Vec::new();
    let mut dead_letters = 0;
    for queue in &queues {
        let counts = client.queue_counts(queue).await?;
        let is_job_queue = *queue == names.fetch || *queue == names.update;
        match counts {
            Some(counts) => {
                if *queue == names.dead {
                    dead_letters = counts.messages;
                }
                println!("{queue:<48} {:>9} {:>9}", counts.messages, counts.consumers);
                if is_job_queue && counts.consumers == 0 {
                    idle_job_queues.push(queue.clone());
                }
            }
            None => {
                println!("{queue:<48} {:>9} {:>9}", "missing", "-");
                if is_job_queue {
                    idle_job_queues.push(queue.clone());
                }
            }
        }
    }
    if let Some(note) = lanes_note {
        println!("({note})");
    }
    if dead_letters > 0 {
        let reasons = client.dead_reasons().await?;
        println!("dead letters by reason");
        for (reason, count) in reasons {
            println!("  {reason:<46} {count:>9}");
        }
    }
    if !idle_job_queues.is_empty() {
        bail!(
            "no worker consumes {}: jobs wait until one starts (`avatar-worker run`)",
            idle_job_queues.join(" and ")
        );
    }
    Ok(())
}
