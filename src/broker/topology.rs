use lapin::Channel;
use lapin::options::QueueDeclareOptions;
use lapin::types::{AMQPValue, FieldTable};

use super::{QueueNames, RetryPolicy};
use crate::settings::QueueType;

/// Declares the job, result and dead-letter queues, and per job queue one delay queue per retry tier:
/// a queue with a TTL whose expired messages dead-letter back into the job queue. Idempotent: every worker
/// does it at every (re)connect.
pub async fn declare(
    channel: &Channel,
    names: &QueueNames,
    queue_type: QueueType,
    retry: &RetryPolicy,
) -> Result<(), lapin::Error> {
    let mut arguments = FieldTable::default();
    if queue_type == QueueType::Quorum {
        arguments.insert(
            "x-queue-type".into(),
            AMQPValue::LongString("quorum".into()),
        );
    }
    for queue in names.main_queues() {
        declare_one(channel, queue, arguments.clone()).await?;
    }
    for (_, job_queue) in names.job_queues() {
        for (tier, delay_queue) in retry.delay_queues(job_queue) {
            let mut delay_arguments = arguments.clone();
            delay_arguments.insert(
                "x-message-ttl".into(),
                AMQPValue::LongLongInt(tier.as_millis().min(i64::MAX as u128) as i64),
            );
            delay_arguments.insert(
                "x-dead-letter-exchange".into(),
                AMQPValue::LongString("".into()),
            );
            delay_arguments.insert(
                "x-dead-letter-routing-key".into(),
                AMQPValue::LongString(job_queue.into()),
            );
            declare_one(channel, &delay_queue, delay_arguments).await?;
        }
    }
    Ok(())
}

/// Every queue of this topology, delay queues included: what a cleanup deletes.
pub fn all_queues(names: &QueueNames, retry: &RetryPolicy) -> Vec<String> {
    let mut queues: Vec<String> = names.main_queues().map(str::to_string).to_vec();
    for (_, job_queue) in names.job_queues() {
        queues.extend(
            retry
                .delay_queues(job_queue)
                .into_iter()
                .map(|(_, name)| name),
        );
    }
    queues
}

async fn declare_one(
    channel: &Channel,
    queue: &str,
    arguments: FieldTable,
) -> Result<(), lapin::Error> {
    channel
        .queue_declare(queue.into(), QueueDeclareOptions::durable(), arguments)
        .await
        .map(drop)
}
