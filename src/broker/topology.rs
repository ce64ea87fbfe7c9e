use lapin::Channel;
use lapin::options::QueueDeclareOptions;
use lapin::types::{AMQPValue, FieldTable};

use crate::settings::{QueueNames, QueueType};

/// Declares the job, result and dead-letter queues, and per job queue one delay queue per retry tier:
/// a queue with a TTL whose expired messages dead-letter back into the job queue. Idempotent: every worker
/// does it at every (re)connect.
pub async fn declare(
    channel: &Channel,
    names: &QueueNames,
    queue_type: QueueType,
    delays_ms: &[u64],
) -> Result<(), lapin::Error> {
    let mut arguments = FieldTable::default();
    if queue_type == QueueType::Quorum {
        arguments.insert(
            "x-queue-type".into(),
            AMQPValue::LongString("quorum".into()),
        );
    }
    for queue in [&names.fetch, &names.update, &names.results, &names.dead] {
        declare_one(channel, queue, arguments.clone()).await?;
    }
    for job_queue in [&names.fetch, &names.update] {
        for delay in delays_ms {
            let mut delay_arguments = arguments.clone();
            delay_arguments.insert(
                "x-message-ttl".into(),
                AMQPValue::LongLongInt(*delay as i64),
            );
            delay_arguments.insert(
                "x-dead-letter-exchange".into(),
                AMQPValue::LongString("".into()),
            );
            delay_arguments.insert(
                "x-dead-letter-routing-key".into(),
                AMQPValue::LongString(job_queue.as_str().into()),
            );
            declare_one(
                channel,
                &QueueNames::delay_queue(job_queue, *delay),
                delay_arguments,
            )
            .await?;
        }
    }
    Ok(())
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
