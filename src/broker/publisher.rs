use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{BasicProperties, Channel, Confirmation};

/// Why a publish did not land.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// No queue is bound to the routing key (for results: `reply_to` names no queue).
    #[error("no queue named {0:?}")]
    Unroutable(String),
    /// The broker refused to take responsibility for the message.
    #[error("the broker refused the message (nack)")]
    Nacked,
    #[error(transparent)]
    Amqp(#[from] lapin::Error),
}

/// A confirm-mode channel. Every publish is persistent and mandatory, and returns only once the broker
/// has confirmed it, so a caller may ack the job it answers.
#[derive(Clone)]
pub struct Publisher {
    channel: Channel,
}

impl Publisher {
    pub async fn new(channel: Channel) -> Result<Self, lapin::Error> {
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        Ok(Self { channel })
    }

    pub fn channel(&self) -> &Channel {
        &self.channel
    }

    /// Publishes to a queue through the default exchange.
    pub async fn publish(
        &self,
        queue: &str,
        body: &[u8],
        properties: BasicProperties,
    ) -> Result<(), PublishError> {
        let confirm = self
            .channel
            .basic_publish(
                ShortString::from(""),
                queue.into(),
                BasicPublishOptions {
                    mandatory: true,
                    ..BasicPublishOptions::default()
                },
                body,
                properties.with_delivery_mode(2),
            )
            .await?
            .await?;
        match confirm {
            Confirmation::Ack(None) => Ok(()),
            Confirmation::Ack(Some(_)) => Err(PublishError::Unroutable(queue.to_string())),
            Confirmation::Nack(_) => Err(PublishError::Nacked),
            // Confirm mode is enabled in `new`; a channel without it would be a programming error.
            Confirmation::NotRequested => Err(PublishError::Nacked),
        }
    }
}

/// A string header, if present.
pub fn header_str(table: Option<&FieldTable>, key: &str) -> Option<String> {
    match table?.inner().get(key)? {
        AMQPValue::LongString(value) => Some(value.to_string()),
        AMQPValue::ShortString(value) => Some(value.to_string()),
        _ => None,
    }
}
