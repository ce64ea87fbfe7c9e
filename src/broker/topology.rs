use lapin::Channel;
use lapin::options::QueueDeclareOptions;
use lapin::types::{AMQPValue, FieldTable};

use crate::settings::{QueueNames, QueueType};

/// Declares the job, result and dead-letter queues. Idempotent: every worker does it at every (re)connect.
pub async fn declare(
    channel: &Channel,
    names: &QueueNames,
    queue_type: QueueType,
) -> Result<(), lapin::Error> {
    let mut arguments = FieldTable::default();
    if queue_type == QueueType::Quorum {
        arguments.insert(
            "x-queue-type".into(),
            AMQPValue::LongString("quorum".into()),
        );
    }
    for queue in [&names.fetch, &names.update, &names.results, &names.dead] {
        channel
            .queue_declare(
                queue.as_str().into(),
                QueueDeclareOptions::durable(),
                arguments.clone(),
            )
            .await?;
    }
    Ok(())
}
