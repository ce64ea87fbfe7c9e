//! Which RabbitMQ the tests use: `AMQP_URL` if set, else 127.0.0.1:5672 if it answers, else a container
//! through testcontainers. With none of them the test fails and says what to start; it never skips.

use std::time::Duration;

use tokio::sync::OnceCell;

static BROKER: OnceCell<String> = OnceCell::const_new();

pub async fn broker_url() -> String {
    BROKER.get_or_init(find_broker).await.clone()
}

async fn find_broker() -> String {
    if let Ok(url) = std::env::var("AMQP_URL") {
        if answers(&url).await {
            return url;
        }
        panic!("AMQP_URL={url} is set but no AMQP broker answers there");
    }
    let local = "amqp://guest:guest@127.0.0.1:5672/%2f".to_string();
    if answers(&local).await {
        return local;
    }
    match container().await {
        Ok(url) => url,
        Err(err) => panic!(
            "no RabbitMQ for the tests: AMQP_URL is unset, nothing answers on 127.0.0.1:5672, and a \
             container could not be started ({err}). Start one with `rabbitmq-server -detached` \
             (or `apt-get install -y rabbitmq-server`), or set AMQP_URL."
        ),
    }
}

async fn answers(url: &str) -> bool {
    let connect = lapin::Connection::connect(url, lapin::ConnectionProperties::default());
    match tokio::time::timeout(Duration::from_secs(5), connect).await {
        Ok(Ok(connection)) => {
            let _ = connection.close(200, "probe".into()).await;
            true
        }
        _ => false,
    }
}

async fn container() -> Result<String, Box<dyn std::error::Error + Send + Sync>> {
    use testcontainers::core::{IntoContainerPort, WaitFor};
    use testcontainers::runners::AsyncRunner;
    let container = testcontainers::GenericImage::new("rabbitmq", "3.13-management")
        .with_exposed_port(5672.tcp())
        .with_wait_for(WaitFor::message_on_stdout("Server startup complete"))
        .start()
        .await?;
    let port = container.get_host_port_ipv4(5672).await?;
    // The container lives as long as the test binary.
    std::mem::forget(container);
    Ok(format!("amqp://guest:guest@127.0.0.1:{port}/%2f"))
}
