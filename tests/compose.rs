//! docker-compose.yml, checked without a Docker engine: it parses; every `AVATAR_WORKER__*` variable is a
//! real configuration key with a valid value; ports and healthchecks agree; the `monitoring` profile mounts
//! files that exist, scrapes the worker's admin port and feeds Grafana from that Prometheus; and the same three programs,
//! started natively with the same environment (hostnames pointed at 127.0.0.1, a queue prefix and ports of
//! the test's own), answer a job and report ready.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use avatar_worker::broker::{self, QueueNames, RetryPolicy};
use avatar_worker::client::Client;
use avatar_worker::lanes;
use avatar_worker::lanes::names::LaneNames;
use avatar_worker::protocol::{FetchJob, Status};
use avatar_worker::settings::Settings;
use clap::Parser;
use lapin::options::QueueDeleteOptions;
use serde_norway::Value;

fn compose() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docker-compose.yml");
    let text = std::fs::read_to_string(path).expect("docker-compose.yml is readable");
    serde_norway::from_str(&text).expect("docker-compose.yml parses")
}

fn service<'a>(compose: &'a Value, name: &str) -> &'a Value {
    compose["services"]
        .get(name)
        .unwrap_or_else(|| panic!("service {name} is defined"))
}

/// A service's `environment`, as a map of strings (compose allows a map or a `KEY=VALUE` list).
fn environment(service: &Value) -> BTreeMap<String, String> {
    match service.get("environment") {
        Some(Value::Mapping(map)) => map
            .iter()
            .map(|(k, v)| {
                let value = match v {
                    Value::String(s) => s.clone(),
                    other => serde_norway::to_string(other).unwrap().trim().to_string(),
                };
                (k.as_str().expect("string keys").to_string(), value)
            })
            .collect(),
        Some(Value::Sequence(items)) => items
            .iter()
            .map(|item| {
                let (k, v) = item.as_str().unwrap().split_once('=').expect("KEY=VALUE");
                (k.to_string(), v.to_string())
            })
            .collect(),
        _ => BTreeMap::new(),
    }
}

/// The healthcheck command as one string.
fn healthcheck(service: &Value) -> String {
    match &service["healthcheck"]["test"] {
        Value::Sequence(parts) => parts
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(" "),
        Value::String(s) => s.clone(),
        other => panic!("no healthcheck test: {other:?}"),
    }
}

/// Container ports a service publishes (`"host:container"` or a bare port).
fn published(service: &Value) -> Vec<u16> {
    service["ports"]
        .as_sequence()
        .map(|ports| {
            ports
                .iter()
                .filter_map(Value::as_str)
                .filter_map(|p| p.rsplit(':').next()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Every published port's host side is `${VARIABLE:-port}`, so a host that already runs RabbitMQ (or
/// anything on these ports) can move them.
fn host_ports_are_overridable(service: &Value) {
    for port in service["ports"].as_sequence().into_iter().flatten() {
        let port = port.as_str().expect("ports as strings");
        let (host, container) = port.rsplit_once(':').expect("host:container");
        let default = host
            .strip_prefix("${")
            .and_then(|rest| rest.strip_suffix('}'))
            .and_then(|rest| rest.split_once(":-"))
            .map(|(_, default)| default);
        assert_eq!(
            default,
            Some(container),
            "{port}: host port is not ${{VAR:-{container}}}"
        );
    }
}

/// A service's `./host/path:/container/path[:ro]` volumes as (host path, container path, read-only).
fn mounts(service: &Value) -> Vec<(String, String, bool)> {
    service["volumes"]
        .as_sequence()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(|volume| {
            let mut parts = volume.split(':');
            let host = parts.next().unwrap_or_default().to_string();
            let container = parts.next().expect("host:container").to_string();
            (host, container, parts.next() == Some("ro"))
        })
        .collect()
}

/// The value of a `--flag=value` argument in a service's `command`.
fn flag<'a>(service: &'a Value, name: &str) -> &'a str {
    service["command"]
        .as_sequence()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .find_map(|arg| arg.strip_prefix(name)?.strip_prefix('='))
        .unwrap_or_else(|| panic!("the command sets {name}"))
}

/// The YAML file in the checkout that a service sees at `container_path` (mounted itself, or inside a mounted
/// folder).
fn mounted_file(service: &Value, container_path: &str) -> std::path::PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    mounts(service)
        .into_iter()
        .find_map(|(host, container, _)| {
            let rest = container_path.strip_prefix(container.as_str())?;
            match rest.strip_prefix('/') {
                _ if rest.is_empty() => Some(root.join(host)),
                Some(inside) => Some(root.join(host).join(inside)),
                None => None,
            }
        })
        .unwrap_or_else(|| panic!("{container_path} is not mounted"))
}

fn read_yaml(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|err| panic!("{path:?}: {err}"));
    serde_norway::from_str(&text).unwrap_or_else(|err| panic!("{path:?}: {err}"))
}

/// `host` and `port` of `scheme://[userinfo@]host:port[/path]`.
fn host_port(url: &str) -> (String, u16) {
    let rest = url.split_once("://").expect("a URL").1;
    let rest = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
    let authority = rest.split('/').next().unwrap();
    let (host, port) = authority.rsplit_once(':').expect("an explicit port");
    (host.to_string(), port.parse().expect("a numeric port"))
}

fn worker_settings(env: &BTreeMap<String, String>) -> Settings {
    Settings::load_from(None, env.clone())
        .unwrap_or_else(|err| panic!("compose environment: {err}"))
}

#[test]
fn every_worker_variable_is_a_real_key_with_a_valid_value() {
    let compose = compose();
    for name in ["worker", "e2e"] {
        let env = environment(service(&compose, name));
        assert!(
            !env.is_empty(),
            "{name} is configured through its environment"
        );
        for key in env.keys() {
            assert!(
                key.starts_with("AVATAR_WORKER__"),
                "{name}: {key} is not an AVATAR_WORKER__<SECTION>__<KEY> variable"
            );
        }
        // deny_unknown_fields turns a misspelt key into an error; values are parsed and validated.
        worker_settings(&env);
    }
    // A misspelt key is caught: the check above is not vacuous.
    let mut bad = environment(service(&compose, "worker"));
    bad.insert("AVATAR_WORKER__GATEWAY__PASSWRD".into(), "x".into());
    assert!(Settings::load_from(None, bad).is_err());
}

#[test]
fn ports_healthchecks_and_dependencies_agree() {
    let compose = compose();
    let rabbitmq = service(&compose, "rabbitmq");
    let mock = service(&compose, "mock");
    let worker = service(&compose, "worker");

    assert!(
        rabbitmq["image"]
            .as_str()
            .unwrap()
            .starts_with("rabbitmq:3-management")
    );
    // `ping` passes before AMQP listens; the worker's first connection must not be refused.
    assert!(healthcheck(rabbitmq).contains("rabbitmq-diagnostics -q check_port_connectivity"));

    let mock_env = environment(mock);
    let mock_port: u16 = mock_env["APP_PORT"].parse().expect("APP_PORT is a port");
    let check = healthcheck(mock);
    assert!(
        check.contains(&format!(":{mock_port}/health")),
        "the mock's healthcheck {check:?} probes /health on APP_PORT {mock_port}"
    );
    assert!(published(mock).contains(&mock_port));
    // Every APP_* variable is one the mock reads (its command line maps each to a flag).
    for key in mock_env.keys() {
        assert!(mock_flag(key).is_some(), "the mock has no variable {key}");
    }

    let settings = worker_settings(&environment(worker));
    let (gateway_host, gateway_port) = host_port(&settings.gateway.base_url);
    assert_eq!((gateway_host.as_str(), gateway_port), ("mock", mock_port));
    let (amqp_host, amqp_port) = host_port(&settings.amqp.redacted_url());
    assert_eq!(amqp_host, "rabbitmq");
    assert!(published(rabbitmq).contains(&amqp_port));
    assert!(settings.admin.enabled);
    let admin_port = host_port(&format!("tcp://{}", settings.admin.bind)).1;
    assert!(
        published(worker).contains(&admin_port),
        "the admin port {admin_port} is published"
    );
    assert!(healthcheck(worker).contains(&format!(":{admin_port}/readyz")));
    for dependency in ["rabbitmq", "mock"] {
        assert_eq!(
            worker["depends_on"][dependency]["condition"].as_str(),
            Some("service_healthy"),
            "the worker waits for {dependency}"
        );
    }
    let (mock_user, mock_password) = mock_env["APP_BASIC_AUTH"].split_once(':').unwrap();
    assert_eq!(settings.gateway.username.as_deref(), Some(mock_user));
    let password = settings
        .gateway
        .password
        .as_ref()
        .map(secrecy::ExposeSecret::expose_secret);
    assert_eq!(password, Some(mock_password));

    for published in [rabbitmq, mock, worker] {
        host_ports_are_overridable(published);
    }

    let e2e = service(&compose, "e2e");
    assert_eq!(e2e["profiles"][0].as_str(), Some("e2e"));
    let command: Vec<&str> = e2e["command"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(command[..2], ["sync", "/examples/contacts.csv"]);
    // The command line is one the real CLI accepts.
    let argv = std::iter::once("avatar-worker").chain(command.iter().copied());
    if let Err(err) = <avatar_worker::cli::Cli as clap::Parser>::try_parse_from(argv) {
        panic!("the e2e command does not parse: {err}");
    }
    let device = &mock_env["APP_DEVICES"];
    assert!(
        command
            .windows(2)
            .any(|w| w == ["--device", device.as_str()])
    );
    let volumes: Vec<&str> = e2e["volumes"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(volumes.contains(&"./examples:/examples:ro"));
    // The results file outlives `run --rm`: it is written to a mounted folder that exists in the checkout.
    let output = command
        .windows(2)
        .find(|w| w[0] == "--output")
        .map(|w| w[1])
        .expect("the e2e sync writes a results file");
    let mounted = volumes.iter().find_map(|v| {
        let (host, container) = v.split_once(':')?;
        let inside = output.strip_prefix(container)?.strip_prefix('/')?;
        Some((host, inside))
    });
    let (host_dir, _) = mounted.unwrap_or_else(|| panic!("{output} is not in a mounted folder"));
    assert!(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join(host_dir)
            .is_dir(),
        "{host_dir} exists in the checkout, so Docker does not create it owned by root"
    );
    let e2e_settings = worker_settings(&environment(e2e));
    assert_eq!(e2e_settings.topology.prefix, settings.topology.prefix);
}

#[test]
fn the_monitoring_profile_mounts_files_that_exist_and_scrapes_the_worker() {
    let compose = compose();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let settings = worker_settings(&environment(service(&compose, "worker")));
    let admin_port = host_port(&format!("tcp://{}", settings.admin.bind)).1;
    let mut host_ports = Vec::new();
    for name in ["prometheus", "grafana"] {
        let monitor = service(&compose, name);
        assert_eq!(
            monitor["profiles"][0].as_str(),
            Some("monitoring"),
            "{name} starts only with --profile monitoring"
        );
        host_ports_are_overridable(monitor);
        let ports = published(monitor);
        assert_eq!(ports.len(), 1, "{name} publishes its one port");
        let check = healthcheck(monitor);
        assert!(
            check.contains(&format!("127.0.0.1:{}/", ports[0])),
            "{name}'s healthcheck {check:?} probes its port {}",
            ports[0]
        );
        host_ports.extend(ports);
        let volumes = mounts(monitor);
        assert!(!volumes.is_empty(), "{name} mounts its configuration");
        for (host, container, read_only) in volumes {
            assert!(
                host.starts_with("./deploy/"),
                "{name} mounts {host} from deploy/"
            );
            assert!(
                root.join(&host).exists(),
                "{name} mounts {host} (at {container}), which does not exist"
            );
            assert!(read_only, "{name} mounts {host} read-only");
        }
    }
    // The defaults stay clear of the ports the rest of the stack publishes on the host.
    for other in ["rabbitmq", "mock", "worker"] {
        for port in published(service(&compose, other)) {
            assert!(!host_ports.contains(&port), "{other} publishes {port} too");
        }
    }

    // Prometheus: the mounted prometheus.yml scrapes the worker's admin port and loads the mounted alerts.
    let prometheus = service(&compose, "prometheus");
    let listen: u16 = flag(prometheus, "--web.listen-address")
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("a listen port");
    assert_eq!(published(prometheus), [listen]);
    let config_path = flag(prometheus, "--config.file");
    let config = read_yaml(&mounted_file(prometheus, config_path));
    let job = config["scrape_configs"]
        .as_sequence()
        .and_then(|jobs| {
            jobs.iter()
                .find(|job| job["job_name"].as_str() == Some("avatar-worker"))
        })
        .expect("a scrape job avatar-worker (the alerts select on it)");
    let targets: Vec<&str> = job["static_configs"][0]["targets"]
        .as_sequence()
        .expect("static targets")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(targets, [format!("worker:{admin_port}")]);
    let config_dir = Path::new(config_path).parent().expect("a folder");
    let rules = config["rule_files"].as_sequence().expect("rule_files");
    assert!(!rules.is_empty());
    for rule in rules {
        let inside = config_dir.join(rule.as_str().expect("a path"));
        let file = mounted_file(prometheus, inside.to_str().unwrap());
        assert!(
            file.is_file(),
            "rule file {inside:?} is {file:?}, which does not exist"
        );
        assert!(read_yaml(&file)["groups"].is_sequence());
    }

    // Grafana: its data source is that Prometheus, its dashboard the mounted JSON, its admin password from the
    // environment, and anonymous visitors may only look.
    let grafana = service(&compose, "grafana");
    let env = environment(grafana);
    let port: u16 = env["GF_SERVER_HTTP_PORT"].parse().expect("a port");
    assert_eq!(published(grafana), [port]);
    assert!(
        env["GF_SECURITY_ADMIN_PASSWORD"].starts_with("${GRAFANA_ADMIN_PASSWORD:-"),
        "the admin password comes from the environment"
    );
    assert_eq!(env["GF_AUTH_ANONYMOUS_ORG_ROLE"], "Viewer");
    let sources = read_yaml(&mounted_file(
        grafana,
        "/etc/grafana/provisioning/datasources/prometheus.yml",
    ));
    let url = sources["datasources"][0]["url"].as_str().expect("a URL");
    assert_eq!(url, format!("http://prometheus:{listen}"));
    let providers = read_yaml(&mounted_file(
        grafana,
        "/etc/grafana/provisioning/dashboards/avatar-worker.yml",
    ));
    let folder = providers["providers"][0]["options"]["path"]
        .as_str()
        .expect("a dashboards folder");
    let home = &env["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"];
    assert_eq!(Path::new(home).parent(), Some(Path::new(folder)));
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(mounted_file(grafana, home)).unwrap())
            .expect("the dashboard is JSON");
    assert_eq!(dashboard["uid"], "avatar-worker");
}

/// The mock-server flag an `APP_*` variable stands for.
fn mock_flag(variable: &str) -> Option<&'static str> {
    Some(match variable {
        "APP_HOST" => "--host",
        "APP_PORT" => "--port",
        "APP_BASIC_AUTH" => "--basic-auth",
        "APP_DEVICES" => "--devices",
        "APP_PUBLIC_URL" => "--public-url",
        "APP_SEED" => "--seed",
        _ => return None,
    })
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

#[tokio::test]
async fn the_compose_stack_runs_natively_with_the_same_environment() {
    let compose = compose();
    let broker = test_support::broker::broker_url().await;
    let (_, broker_port) = host_port(&broker);

    // The mock, from its compose variables: bound to 127.0.0.1 on a free port, picture URLs on it too.
    let mock_env = environment(service(&compose, "mock"));
    let mut args = vec!["mock-server".to_string()];
    for (key, value) in &mock_env {
        let flag = mock_flag(key).expect("known variable");
        let value = match key.as_str() {
            "APP_HOST" => "127.0.0.1".to_string(),
            "APP_PORT" => "0".to_string(),
            "APP_PUBLIC_URL" => continue,
            _ => value.clone(),
        };
        args.extend([flag.to_string(), value]);
    }
    let config = mock_server::config::Cli::try_parse_from(&args)
        .expect("the mock accepts its compose variables")
        .into_config()
        .expect("valid mock config");
    let mock = mock_server::spawn(config).await.expect("mock starts");
    let mock_port = host_port(&mock.base_url()).1;

    // The worker binary, from its compose variables, hostnames and ports pointed at the native programs.
    let prefix = format!("compose-{}", uuid::Uuid::new_v4().simple());
    let admin_port = free_port();
    let mut env = environment(service(&compose, "worker"));
    for value in env.values_mut() {
        *value = value
            .replace("@rabbitmq:5672", &format!("@127.0.0.1:{broker_port}"))
            .replace(
                &format!("//mock:{}", mock_env["APP_PORT"]),
                &format!("//127.0.0.1:{mock_port}"),
            );
    }
    env.insert("AVATAR_WORKER__TOPOLOGY__PREFIX".into(), prefix.clone());
    env.insert(
        "AVATAR_WORKER__ADMIN__BIND".into(),
        format!("127.0.0.1:{admin_port}"),
    );
    let mut worker = tokio::process::Command::new(env!("CARGO_BIN_EXE_avatar-worker"))
        .arg("run")
        .env_clear()
        .envs(&env)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("the worker starts");

    let http = reqwest::Client::new();
    let admin = format!("http://127.0.0.1:{admin_port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ready = http.get(format!("{admin}/readyz")).send().await;
        if ready.as_ref().is_ok_and(|r| r.status().is_success()) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the worker never became ready: {ready:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let client = Client::connect(&broker, &prefix)
        .await
        .expect("client connects");
    let job: FetchJob = serde_json::from_value(serde_json::json!({
        "phone": "6281234567892",
        "device_id": mock_env["APP_DEVICES"],
    }))
    .unwrap();
    let result = client
        .fetch_and_wait(&job, Duration::from_secs(20))
        .await
        .expect("a result");
    assert!(result.error.is_none(), "{result:?}");
    assert!(matches!(
        result.status,
        Status::Ok | Status::NotSet | Status::Hidden
    ));

    let metrics = http
        .get(format!("{admin}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    // Every status of every kind is exposed from the start at 0: the fetch answered is counted once.
    let fetches: f64 = metrics
        .lines()
        .filter(|line| line.starts_with("avatar_worker_jobs_total{kind=\"fetch\""))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert_eq!(fetches, 1.0, "{metrics}");
    assert!(
        metrics.contains("avatar_worker_amqp_connected 1"),
        "{metrics}"
    );
    assert!(metrics.contains("avatar_worker_gateway_requests_total{op=\"get\",code=\"200\"} 1"));

    let _ = worker.kill().await;
    delete_queues(&broker, &prefix).await;
}

async fn delete_queues(url: &str, prefix: &str) {
    let names = &QueueNames::with_prefix(prefix);
    let Ok(connection) = lapin::Connection::connect(url, Default::default()).await else {
        return;
    };
    let Ok(channel) = connection.create_channel().await else {
        return;
    };
    // The lanes first, read from the claims on a channel of their own (a missing claim closes it).
    let mut queues = match connection.create_channel().await {
        Ok(claims) => lanes::queues(
            &claims,
            &LaneNames::new(prefix),
            Settings::default().lanes.groups,
            &[],
        )
        .await
        .unwrap_or_default(),
        Err(_) => Vec::new(),
    };
    queues.extend(broker::all_queues(
        names,
        &RetryPolicy::new(&Settings::default().retry),
    ));
    for queue in queues {
        let _ = channel
            .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
            .await;
    }
    let _ = connection.close(200, "cleanup".into()).await;
}
