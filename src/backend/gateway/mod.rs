//! The GOWA (go-whatsapp-web-multidevice) HTTP gateway: `GET/POST /user/avatar`, Basic auth, `X-Device-Id`.

mod classify;
mod devices;

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine;
use reqwest::header::{AUTHORIZATION, HeaderValue};
use secrecy::ExposeSecret;

use super::{AvatarBackend, AvatarRequest, Lookup};
use crate::http::{BodyError, read_capped};
use crate::image::PreparedImage;
use crate::ops::Metrics;
use crate::ops::metrics::GatewayOp;
use crate::protocol::{DeviceId, ErrorCode, JobError, Then};
use crate::settings::{GatewayProfile, GatewaySettings};

pub use classify::{classify_get, classify_set};

/// GOWA's answers are JSON envelopes of a few hundred bytes; anything far larger is not one.
const MAX_ANSWER_BYTES: usize = 1024 * 1024;

/// One gateway instance, with its Authorization header built once and marked sensitive so it never
/// shows up in debug output.
#[derive(Clone)]
struct Target {
    base_url: String,
    authorization: Option<HeaderValue>,
    timeout: Duration,
}

impl Target {
    fn new(profile: &GatewayProfile) -> Result<Self, JobError> {
        let authorization = match &profile.credentials {
            Some((user, password)) => {
                let token = base64::engine::general_purpose::STANDARD
                    .encode(format!("{user}:{}", password.expose_secret()));
                let mut value = HeaderValue::from_str(&format!("Basic {token}")).map_err(|_| {
                    JobError::new(
                        ErrorCode::Internal,
                        "gateway credentials are not header-safe",
                    )
                })?;
                value.set_sensitive(true);
                Some(value)
            }
            None => None,
        };
        Ok(Self {
            base_url: profile.base_url.clone(),
            authorization,
            timeout: profile.timeout,
        })
    }
}

pub struct GatewayBackend {
    client: reqwest::Client,
    fallback: Target,
    routed: HashMap<DeviceId, Target>,
    directory: devices::Directory,
    /// Counts every call by operation and HTTP status; `None` counts nothing.
    metrics: Option<Metrics>,
}

impl GatewayBackend {
    pub fn new(settings: &GatewaySettings) -> Result<Self, JobError> {
        let client = reqwest::Client::builder()
            .connect_timeout(settings.connect_timeout)
            .pool_max_idle_per_host(64)
            .redirect(reqwest::redirect::Policy::none())
            // HTTP(S)_PROXY in the environment would send the Basic credentials through a host nobody
            // configured for this.
            .no_proxy()
            .build()
            .map_err(|err| {
                JobError::new(
                    ErrorCode::Internal,
                    format!("http client: {}", crate::http::error_text(&err)),
                )
            })?;
        let fallback = Target::new(&settings.fallback())?;
        let routed = settings
            .routed()
            .iter()
            .map(|(device, profile)| Ok((device.clone(), Target::new(profile)?)))
            .collect::<Result<_, JobError>>()?;
        Ok(Self {
            client,
            fallback,
            routed,
            directory: devices::Directory::default(),
            metrics: None,
        })
    }

    /// Counts gateway calls into `metrics` (`avatar_worker_gateway_requests_total{op,code}`).
    pub fn with_metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    fn count(&self, op: GatewayOp, code: &str) {
        if let Some(metrics) = &self.metrics {
            metrics.gateway_request(op, code);
        }
    }

    fn target(&self, device: Option<&DeviceId>) -> &Target {
        device
            .and_then(|device| self.routed.get(device))
            .unwrap_or(&self.fallback)
    }

    /// The request with what every gateway call carries: auth, the device header, the deadline.
    fn request(
        &self,
        method: reqwest::Method,
        device: Option<&DeviceId>,
    ) -> reqwest::RequestBuilder {
        let target = self.target(device);
        let mut request = self
            .client
            .request(method, format!("{}/user/avatar", target.base_url))
            .timeout(target.timeout);
        if let Some(auth) = &target.authorization {
            request = request.header(AUTHORIZATION, auth.clone());
        }
        if let Some(device) = device {
            // The gateway query-unescapes the header, so encode it the same way to round-trip `+` and `%`.
            let encoded: String =
                form_urlencoded::byte_serialize(device.as_str().as_bytes()).collect();
            request = request.header("X-Device-Id", encoded);
        }
        request
    }

    async fn send(
        &self,
        op: GatewayOp,
        request: reqwest::RequestBuilder,
    ) -> Result<(u16, String, Vec<u8>), JobError> {
        let response = match request.send().await {
            Ok(response) => response,
            Err(err) => {
                self.count(
                    op,
                    if err.is_timeout() {
                        "timeout"
                    } else {
                        "transport"
                    },
                );
                return Err(transport_error(err));
            }
        };
        let status = response.status().as_u16();
        self.count(op, &status.to_string());
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let body = read_capped(response, MAX_ANSWER_BYTES)
            .await
            .map_err(|err| match err {
                BodyError::Transport(err) => transport_error(err),
                too_large @ BodyError::TooLarge { .. } => JobError::new(
                    ErrorCode::GatewayError,
                    format!("the gateway's answer was refused: {too_large}"),
                ),
            })?;
        Ok((status, content_type, body))
    }
}

impl GatewayBackend {
    /// A refused credential stops the device's jobs (they wait) instead of failing each of them.
    fn on_error(&self, device: Option<&DeviceId>, mut err: JobError) -> JobError {
        if err.code == ErrorCode::GatewayUnauthorized {
            self.directory.refused(&self.client, self.target(device));
            err.then = Then::Requeue;
        }
        err
    }

    /// Every gateway instance this backend calls.
    fn targets(&self) -> Vec<&Target> {
        let mut targets = vec![&self.fallback];
        for target in self.routed.values() {
            if !targets.iter().any(|t| t.base_url == target.base_url) {
                targets.push(target);
            }
        }
        targets
    }
}

fn transport_error(err: reqwest::Error) -> JobError {
    // reqwest's Display includes the whole URL (the phone is in its query), never the Authorization
    // header: the URL is shown without query, fragment or credentials.
    let text = crate::http::error_text(&err);
    if err.is_timeout() {
        JobError::new(
            ErrorCode::Timeout,
            format!("gateway did not answer in time: {text}"),
        )
    } else {
        JobError::new(
            ErrorCode::GatewayUnreachable,
            format!("gateway unreachable: {text}"),
        )
    }
}

#[async_trait]
impl AvatarBackend for GatewayBackend {
    async fn get_avatar(
        &self,
        device: Option<&DeviceId>,
        request: &AvatarRequest,
    ) -> Result<Lookup, JobError> {
        let call = self.request(reqwest::Method::GET, device).query(&[
            ("phone", request.target.as_jid()),
            ("is_preview", if request.preview { "true" } else { "false" }),
            (
                "is_community",
                if request.community { "true" } else { "false" },
            ),
        ]);
        let (status, content_type, body) = self.send(GatewayOp::Get, call).await?;
        classify_get(status, &content_type, &body).map_err(|err| self.on_error(device, err))
    }

    async fn set_avatar(
        &self,
        device: Option<&DeviceId>,
        image: &PreparedImage,
    ) -> Result<(), JobError> {
        let extension = image.content_type.rsplit('/').next().unwrap_or("jpg");
        let part = reqwest::multipart::Part::stream(image.bytes.clone())
            .file_name(format!("avatar.{extension}"))
            .mime_str(image.content_type)
            .map_err(|err| JobError::new(ErrorCode::Internal, err.to_string()))?;
        let form = reqwest::multipart::Form::new().part("avatar", part);
        let call = self.request(reqwest::Method::POST, device).multipart(form);
        let (status, content_type, body) = self.send(GatewayOp::Set, call).await?;
        classify_set(status, &content_type, &body).map_err(|err| self.on_error(device, err))
    }

    async fn check_device(&self, device: Option<&DeviceId>) -> Result<(), JobError> {
        let Some(device) = device else {
            return Ok(());
        };
        let target = self.target(Some(device));
        let listed = self.directory.listed(&self.client, target).await;
        if let devices::Listed::Refused = listed {
            return Err(self.on_error(
                Some(device),
                JobError::new(
                    ErrorCode::GatewayUnauthorized,
                    "gateway refused the credentials (HTTP 401): check gateway.username and gateway.password",
                ),
            ));
        }
        match listed.has(device.as_str()) {
            Some(false) => Err(JobError::new(
                ErrorCode::DeviceNotFound,
                format!(
                    "the gateway at {} lists no device {:?} (GET /devices)",
                    target.base_url,
                    device.as_str()
                ),
            )),
            _ => Ok(()),
        }
    }

    async fn until_usable(&self, device: Option<&DeviceId>) {
        self.directory.until_accepted(self.target(device)).await;
    }

    fn problem(&self) -> Option<String> {
        self.directory.problem()
    }

    async fn check_at_start(&self) {
        for target in self.targets() {
            if let devices::Listed::Unavailable = self.directory.listed(&self.client, target).await
            {
                tracing::warn!(gateway = %target.base_url, "the gateway does not answer GET /devices yet");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Phone;

    /// A gateway that cannot be reached: the error names it, but neither the phone (in the query) nor
    /// credentials in its URL.
    #[tokio::test]
    async fn transport_errors_show_no_query_or_credentials() {
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = closed.local_addr().unwrap().port();
        drop(closed);
        let settings = GatewaySettings {
            base_url: format!("http://admin:hunter2@127.0.0.1:{port}"),
            ..GatewaySettings::default()
        };
        let backend = GatewayBackend::new(&settings).unwrap();
        let request = AvatarRequest {
            target: Phone::parse("6281234567890").unwrap(),
            preview: false,
            community: false,
        };
        let err = backend.get_avatar(None, &request).await.unwrap_err();
        assert_eq!(err.code, ErrorCode::GatewayUnreachable, "{err:?}");
        for secret in ["6281234567890", "phone=", "hunter2"] {
            assert!(!err.message.contains(secret), "{secret}: {}", err.message);
        }
        assert!(
            err.message
                .contains(&format!("127.0.0.1:{port}/user/avatar")),
            "{}",
            err.message
        );
    }
}
