//! Which RabbitMQ the tests use: `AMQP_URL` if set, else 127.0.0.1:5672 if it answers, else a container
//! through testcontainers. `AVATAR_TEST_BROKER=container` goes straight to the container and leaves any other
//! broker alone (`scripts/test-with-docker.sh` uses it). With none of them the test fails and says what to start;
//! it never skips.
//!
//! The container is shared, not one per test binary: one per image, named `avatar-worker-test-rabbitmq-<image>`,
//! left running when the tests end (testcontainers' `ReuseDirective::Always`) and reused by every later test
//! binary and run; when the image is rebuilt or pulled anew, the next test replaces it. Test processes that look
//! for it at the same moment (nextest runs them in parallel) take turns through a lock file, so one of them
//! creates it and the others find it running. `docker rm -f <name>` removes it.

use std::time::Duration;

use tokio::sync::OnceCell;

static BROKER: OnceCell<String> = OnceCell::const_new();

/// `auto` (the default) or `container`.
const MODE_VAR: &str = "AVATAR_TEST_BROKER";
/// The broker image, `name:tag`.
const IMAGE_VAR: &str = "AVATAR_TEST_RABBITMQ_IMAGE";
const DEFAULT_IMAGE: &str = "rabbitmq:3.13-management";
/// What RabbitMQ logs once it accepts connections: the official image prints it, and so does the image
/// `scripts/test-with-docker.sh` builds (console logging at `info`).
const READY_LINE: &str = "Server startup complete";
/// Marks the containers these tests start; its value is the image.
const LABEL: &str = "avatar-worker.test-broker";

pub async fn broker_url() -> String {
    BROKER.get_or_init(find_broker).await.clone()
}

async fn find_broker() -> String {
    match std::env::var(MODE_VAR).unwrap_or_default().as_str() {
        "" | "auto" => {}
        "container" => {
            return container().await.unwrap_or_else(|err| {
                panic!("{MODE_VAR}=container but no RabbitMQ container for the tests: {err}")
            });
        }
        other => {
            panic!("{MODE_VAR}={other} is not understood: use `auto` (the default) or `container`")
        }
    }
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
            "no RabbitMQ for the tests: AMQP_URL is unset, nothing answers on 127.0.0.1:5672, and {err}. \
             Start one with `rabbitmq-server -detached` (or `apt-get install -y rabbitmq-server`), or set AMQP_URL."
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

/// The shared broker container's URL, after starting the container if none runs. The error completes the
/// sentence "no RabbitMQ container for the tests: ...".
async fn container() -> Result<String, String> {
    use testcontainers::core::{IntoContainerPort, WaitFor};
    use testcontainers::runners::AsyncRunner;
    use testcontainers::{GenericImage, ImageExt, ReuseDirective};

    let image = std::env::var(IMAGE_VAR)
        .ok()
        .filter(|image| !image.is_empty())
        .unwrap_or_else(|| DEFAULT_IMAGE.to_string());
    let (repository, tag) = split_image(&image);
    let name = container_name(&image);

    let turn = take_turn(&name).await?;
    remove_unless_current(&name, &image).await?;
    // Finds the running container by name and labels, else creates it and waits for READY_LINE.
    let started = GenericImage::new(repository, tag)
        .with_exposed_port(5672.tcp())
        .with_wait_for(WaitFor::message_on_stdout(READY_LINE))
        .with_container_name(&name)
        .with_label(LABEL, &image)
        .with_startup_timeout(Duration::from_secs(180))
        .with_reuse(ReuseDirective::Always)
        .start()
        .await
        .map_err(|err| {
            format!(
                "container {name} from image {image} could not be started ({}). Docker must run and the \
                 image be present or pullable: `scripts/test-with-docker.sh` starts Docker and builds a local \
                 image; {IMAGE_VAR} names another image",
                shortened(&err.to_string())
            )
        })?;
    let port = started
        .get_host_port_ipv4(5672)
        .await
        .map_err(|err| format!("container {name} publishes no port for 5672 ({err}): remove it with `docker rm -f {name}`"))?;
    // Marked for reuse, the container keeps running when this handle goes.
    drop(started);
    drop(turn);

    // A container found running may have been created by a process that was stopped before RabbitMQ was up.
    let url = format!("amqp://guest:guest@127.0.0.1:{port}/%2f");
    for _ in 0..30 {
        if answers(&url).await {
            return Ok(url);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    Err(format!(
        "container {name} runs but nothing answers AMQP on {url}: remove it with `docker rm -f {name}` and run again"
    ))
}

/// A container that stops before it is ready comes back with its whole log: its first lines say why.
fn shortened(text: &str) -> String {
    const LIMIT: usize = 1500;
    match text.char_indices().nth(LIMIT) {
        Some((end, _)) => format!("{} [...]", &text[..end]),
        None => text.to_string(),
    }
}

/// `rabbitmq:3.13-management` is (`rabbitmq`, `3.13-management`); without a tag, `latest`. A registry's port
/// (`host:5000/rabbitmq`) is not a tag.
fn split_image(image: &str) -> (&str, &str) {
    match image.rsplit_once(':') {
        Some((repository, tag)) if !tag.contains('/') => (repository, tag),
        _ => (image, "latest"),
    }
}

/// One container per image: `avatar-worker-test-rabbitmq-rabbitmq-3.13-management` for the default.
fn container_name(image: &str) -> String {
    let image: String = image
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    format!("avatar-worker-test-rabbitmq-{image}")
}

/// Waits until no other test process on this machine is looking for or starting the container; the turn ends
/// when the returned file is dropped (or the process exits).
async fn take_turn(name: &str) -> Result<std::fs::File, String> {
    let path = std::env::temp_dir().join(format!("{name}.lock"));
    tokio::task::spawn_blocking(move || {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)?;
        file.lock()?;
        Ok::<_, std::io::Error>(file)
    })
    .await
    .expect("the lock task does not panic")
    .map_err(|err| {
        format!(
            "the lock file for {name} in {} cannot be taken ({err})",
            std::env::temp_dir().display()
        )
    })
}

/// Leaves the container of that name for reuse when it runs the image as it is now. Removes it when it is not
/// running (stopped with Docker, or created by a process that died before starting it), which would make
/// creating a new one fail, and when the image has been rebuilt or pulled anew since it was created.
async fn remove_unless_current(name: &str, image: &str) -> Result<(), String> {
    use testcontainers::bollard::Docker;
    use testcontainers::bollard::container::RemoveContainerOptions;
    use testcontainers::bollard::errors::Error;

    let unreachable = |err: Error| {
        format!(
            "Docker does not answer ({err}): start it (`dockerd`, or run `scripts/test-with-docker.sh`)"
        )
    };
    let docker = Docker::connect_with_defaults().map_err(unreachable)?;
    let found = match docker.inspect_container(name, None).await {
        Ok(found) => found,
        Err(Error::DockerResponseServerError {
            status_code: 404, ..
        }) => return Ok(()),
        Err(err) => return Err(unreachable(err)),
    };
    let running = found.state.as_ref().and_then(|state| state.running) == Some(true);
    // An image that is not here any more says nothing: the container is not made to wait for a pull.
    let current = match docker.inspect_image(image).await {
        Ok(now) => now.id.is_some() && now.id == found.image,
        Err(_) => true,
    };
    if running && current {
        return Ok(());
    }
    let options = RemoveContainerOptions {
        force: true,
        v: true,
        ..Default::default()
    };
    docker
        .remove_container(name, Some(options))
        .await
        .map_err(|err| {
            format!(
                "the outdated container {name} cannot be removed ({err}): `docker rm -f {name}`"
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_split_into_repository_and_tag() {
        assert_eq!(
            split_image("rabbitmq:3.13-management"),
            ("rabbitmq", "3.13-management")
        );
        assert_eq!(split_image("rabbitmq"), ("rabbitmq", "latest"));
        assert_eq!(
            split_image("registry:5000/rabbitmq"),
            ("registry:5000/rabbitmq", "latest")
        );
        assert_eq!(
            split_image("registry:5000/rabbitmq:3.13"),
            ("registry:5000/rabbitmq", "3.13")
        );
    }

    #[test]
    fn container_names_are_valid_for_docker() {
        assert_eq!(
            container_name("rabbitmq:3.13-management"),
            "avatar-worker-test-rabbitmq-rabbitmq-3.13-management"
        );
        assert_eq!(
            container_name("registry:5000/team/rabbitmq:local"),
            "avatar-worker-test-rabbitmq-registry-5000-team-rabbitmq-local"
        );
    }
}
