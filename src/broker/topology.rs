use lapin::Channel;
use lapin::options::QueueDeclareOptions;
use lapin::types::{AMQPValue, FieldTable};
use lapin::types::{LongString, ShortString};

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
    for queue in names.main_queues() {
        declare_queue(channel, queue, queue_type, FieldTable::default()).await?;
    }
    for (_, job_queue) in names.job_queues() {
        for (tier, delay_queue) in retry.delay_queues(job_queue) {
            let mut delay_arguments = FieldTable::default();
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
            declare_queue(channel, &delay_queue, queue_type, delay_arguments).await?;
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

/// Declares a durable queue of `queue_type` with `arguments`; idempotent while the arguments agree.
pub async fn declare_queue(
    channel: &Channel,
    queue: &str,
    queue_type: QueueType,
    mut arguments: FieldTable,
) -> Result<(), lapin::Error> {
    if queue_type == QueueType::Quorum {
        arguments.insert(
            ShortString::from("x-queue-type"),
            AMQPValue::LongString(LongString::from("quorum")),
        );
    }
    channel
        .queue_declare(queue.into(), QueueDeclareOptions::durable(), arguments)
        .await
        .map(drop)
}

/// A queue's ready messages and consumers (a passive declare: a missing queue closes the channel).
pub async fn queue_counts(channel: &Channel, queue: &str) -> Result<(u32, u32), lapin::Error> {
    let options = QueueDeclareOptions {
        passive: true,
        ..QueueDeclareOptions::default()
    };
    let declared = channel
        .queue_declare(queue.into(), options, FieldTable::default())
        .await?;
    Ok((declared.message_count(), declared.consumer_count()))
}

/// A queue's ready messages (see [`queue_counts`]).
pub async fn message_count(channel: &Channel, queue: &str) -> Result<u32, lapin::Error> {
    queue_counts(channel, queue)
        .await
        .map(|(messages, _)| messages)
}
