use std::future::Future;

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::ShortString;
use lapin::{BasicProperties, Channel, Confirmation};

use super::Watch;
use super::failure::ConnectionLost;

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

impl ConnectionLost for PublishError {
    fn connection_lost(&self) -> bool {
        matches!(self, Self::Amqp(err) if err.connection_lost())
    }
}

/// A confirm-mode channel. Every publish is persistent and mandatory, and is done only once the broker has
/// confirmed it, so a caller may ack the job it answers. A channel error or a refused publish ends the
/// session ([`Watch`]).
#[derive(Clone)]
pub struct Publisher {
    channel: Channel,
    watch: Watch,
}

impl Publisher {
    pub async fn new(channel: Channel, watch: Watch) -> Result<Self, lapin::Error> {
        watch
            .request(channel.confirm_select(ConfirmSelectOptions::default()))
            .await?;
        Ok(Self { channel, watch })
    }

    /// A publisher on a new channel of `connection`, whose waits end with the connection (see [`Watch`]).
    pub async fn open(connection: &lapin::Connection) -> Result<Self, lapin::Error> {
        let watch = Watch::new();
        watch.follow(connection);
        let channel = watch.request(connection.create_channel()).await?;
        Self::new(channel, watch).await
    }

    pub fn channel(&self) -> &Channel {
        &self.channel
    }

    /// Publishes to a queue through the default exchange and waits for the broker's confirm.
    pub async fn publish(
        &self,
        queue: &str,
        body: &[u8],
        properties: BasicProperties,
    ) -> Result<(), PublishError> {
        self.send(queue, body, properties).await.await
    }

    /// Sends a message and returns the wait for its confirm, which also carries a failed send. Messages sent
    /// on one publisher reach a queue in the order they were sent, whenever their confirms are awaited.
    pub async fn send(
        &self,
        queue: &str,
        body: &[u8],
        properties: BasicProperties,
    ) -> impl Future<Output = Result<(), PublishError>> + Send + use<> {
        let sent = self.watch.request(self.channel.basic_publish(
            ShortString::from(""),
            queue.into(),
            BasicPublishOptions {
                mandatory: true,
                ..BasicPublishOptions::default()
            },
            body,
            properties.with_delivery_mode(2),
        ));
        let confirm = sent.await.map_err(|err| self.broken(err));
        let queue = queue.to_string();
        let watch = self.watch.clone();
        async move {
            match watch.request(confirm?).await {
                Ok(Confirmation::Ack(None)) => Ok(()),
                Ok(Confirmation::Ack(Some(returned)))
                    if returned.delivery.routing_key.as_str() == queue =>
                {
                    Err(PublishError::Unroutable(queue))
                }
                // lapin hands a returned message to the next confirm it completes, which on a busy channel
                // can be another publish's. Ours was routed; the one returned was not (its own confirm may
                // have said otherwise).
                Ok(Confirmation::Ack(Some(returned))) => {
                    tracing::warn!(
                        returned_to = returned.delivery.routing_key.as_str(),
                        "the broker returned a message for a queue that does not exist"
                    );
                    Ok(())
                }
                // RabbitMQ 3.10 can nack every later publish on a channel after a quorum queue's leader
                // changed (seen here when a node was killed): only a new channel is sure to be heard.
                Ok(Confirmation::Nack(_)) => {
                    watch.lost("the broker refused a publish (nack); opening new channels");
                    Err(PublishError::Nacked)
                }
                // Confirm mode is enabled in `new`; a channel without it would be a programming error.
                Ok(Confirmation::NotRequested) => Err(PublishError::Nacked),
                Err(err) => {
                    watch.lost(format!("publishing channel: {err}"));
                    Err(PublishError::Amqp(err))
                }
            }
        }
    }

    fn broken(&self, err: lapin::Error) -> PublishError {
        self.watch.lost(format!("publishing channel: {err}"));
        PublishError::Amqp(err)
    }
}
