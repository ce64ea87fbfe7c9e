//! The GOWA (go-whatsapp-web-multidevice) HTTP gateway: `GET/POST /user/avatar`, Basic auth, `X-Device-Id`.

mod classify;

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine;
use reqwest::header::{AUTHORIZATION, HeaderValue};
use secrecy::ExposeSecret;

use super::{AvatarBackend, AvatarRequest, Lookup};
use crate::image::PreparedImage;
use crate::ops::Metrics;
use crate::ops::metrics::GatewayOp;
use crate::protocol::{DeviceId, ErrorCode, JobError};
use crate::settings::{GatewayProfile, GatewaySettings};

pub use classify::{classify_get, classify_set};

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
    /// Counts every call by operation and HTTP status; `None` counts nothing.
    metrics: Option<Metrics>,
}

impl GatewayBackend {
    pub fn new(settings: &GatewaySettings) -> Result<Self, JobError> {
        let client = reqwest::Client::builder()
            .connect_timeout(settings.connect_timeout)
            .pool_max_idle_per_host(64)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|err| JobError::new(ErrorCode::Internal, format!("http client: {err}")))?;
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
        let body = response.bytes().await.map_err(transport_error)?;
        Ok((status, content_type, body.to_vec()))
    }
}

fn transport_error(err: reqwest::Error) -> JobError {
    // reqwest's Display includes the URL, never the Authorization header.
    if err.is_timeout() {
        JobError::new(
            ErrorCode::Timeout,
            format!("gateway did not answer in time: {err}"),
        )
    } else {
        JobError::new(
            ErrorCode::GatewayUnreachable,
            format!("gateway unreachable: {err}"),
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
        classify_get(status, &content_type, &body)
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
        classify_set(status, &content_type, &body)
    }
}
