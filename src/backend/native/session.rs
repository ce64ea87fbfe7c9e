//! One device's in-process WhatsApp session: its client, the bot task that keeps it connected, and its
//! state as the library's events report it.

use std::sync::{Arc, Mutex, PoisonError};

use whatsapp_rust::Client;
use whatsapp_rust::bot::{Bot, BotHandle};
use whatsapp_rust::types::events::{Event, EventKind};
use whatsapp_rust::wacore::store::traits::Backend;

use super::NativeError;
use super::store::{StoreLock, is_paired};
use crate::ops::Metrics;
use crate::protocol::{DeviceId, ErrorCode, JobError};

/// A session's state, from its store at start and then from the library's events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionState {
    /// The store holds no account: `avatar-worker pair` has not run for this device.
    NotPaired,
    /// Opened, not connected (before the first connection, or a session started without connecting).
    Idle,
    Connecting,
    Connected,
    /// The connection dropped; the library reconnects on its own.
    Disconnected,
    /// The phone unlinked this device, or the server refused the account: pairing again is needed.
    LoggedOut(String),
    /// Another client opened the same session; the library stops reconnecting.
    Replaced,
    /// WhatsApp banned the account for a while.
    Banned(String),
}

impl SessionState {
    pub const NAMES: [&'static str; 8] = [
        "not_paired",
        "idle",
        "connecting",
        "connected",
        "disconnected",
        "logged_out",
        "replaced",
        "banned",
    ];

    pub fn name(&self) -> &'static str {
        match self {
            SessionState::NotPaired => "not_paired",
            SessionState::Idle => "idle",
            SessionState::Connecting => "connecting",
            SessionState::Connected => "connected",
            SessionState::Disconnected => "disconnected",
            SessionState::LoggedOut(_) => "logged_out",
            SessionState::Replaced => "replaced",
            SessionState::Banned(_) => "banned",
        }
    }

    /// The job error of a state in which asking WhatsApp cannot work; `None` lets the call go ahead
    /// (the library itself answers `NotConnected` at once when the socket is down).
    pub fn refusal(&self, device: &DeviceId) -> Option<JobError> {
        let device = device.as_str();
        match self {
            SessionState::NotPaired => Some(JobError::new(
                ErrorCode::DeviceNotLoggedIn,
                format!("device {device} is not paired: run `avatar-worker pair --device {device}`"),
            )),
            SessionState::LoggedOut(reason) => Some(JobError::new(
                ErrorCode::DeviceNotLoggedIn,
                format!("device {device} was logged out ({reason}): pair it again"),
            )),
            SessionState::Replaced => Some(
                JobError::new(
                    ErrorCode::DeviceDisconnected,
                    format!(
                        "device {device}'s session was opened by another client; restart this worker after closing it"
                    ),
                )
                .with_retryable(false),
            ),
            SessionState::Banned(reason) => Some(
                JobError::new(ErrorCode::DeviceDisconnected, format!("device {device} is banned for now ({reason})"))
                    .with_retryable(false),
            ),
            _ => None,
        }
    }
}

/// The state, shared with the event handlers, mirrored into the metrics on every change.
#[derive(Clone)]
struct StateCell {
    device: DeviceId,
    state: Arc<Mutex<SessionState>>,
    metrics: Option<Metrics>,
}

impl StateCell {
    fn set(&self, state: SessionState) {
        let name = state.name();
        let previous = std::mem::replace(
            &mut *self.state.lock().unwrap_or_else(PoisonError::into_inner),
            state,
        );
        if previous.name() != name {
            tracing::info!(device_id = %self.device.as_str(), from = previous.name(), to = name, "native session state");
        }
        if let Some(metrics) = &self.metrics {
            metrics.set_native_session(self.device.as_str(), name, &SessionState::NAMES);
        }
    }

    fn get(&self) -> SessionState {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn on_event(&self, event: &Event) {
        let next = match event {
            Event::Connected(_) => SessionState::Connected,
            Event::Disconnected(_) => {
                // A logout or replacement is followed by a disconnect; keep the more telling state.
                if matches!(
                    self.get(),
                    SessionState::LoggedOut(_) | SessionState::Replaced | SessionState::Banned(_)
                ) {
                    return;
                }
                SessionState::Disconnected
            }
            Event::LoggedOut(logged_out) => {
                SessionState::LoggedOut(format!("{:?}", logged_out.reason))
            }
            Event::StreamReplaced(_) => SessionState::Replaced,
            Event::TemporaryBan(ban) => SessionState::Banned(format!("{:?}", ban.code)),
            _ => return,
        };
        self.set(next);
    }
}

pub struct Session {
    device: DeviceId,
    client: Arc<Client>,
    state: StateCell,
    bot: Mutex<Option<Bot>>,
    handle: tokio::sync::Mutex<Option<BotHandle>>,
    _lock: Option<StoreLock>,
}

impl Session {
    /// Builds the session's client on `store`, `not_paired` when the store holds no account; no network
    /// I/O until [`Session::start`].
    pub async fn build(
        device: DeviceId,
        store: Arc<dyn Backend>,
        lock: Option<StoreLock>,
        metrics: Option<Metrics>,
    ) -> Result<Self, NativeError> {
        let paired = is_paired(store.as_ref()).await?;
        let state = StateCell {
            device: device.clone(),
            state: Arc::new(Mutex::new(SessionState::Idle)),
            metrics,
        };
        state.set(if paired {
            SessionState::Idle
        } else {
            SessionState::NotPaired
        });
        let events = state.clone();
        let bot = Bot::builder()
            .with_backend_arc(store)
            .skip_history_sync()
            .on_event_for(
                &[
                    EventKind::Connected,
                    EventKind::Disconnected,
                    EventKind::LoggedOut,
                    EventKind::StreamReplaced,
                    EventKind::TemporaryBan,
                ],
                move |event, _client| {
                    events.on_event(&event);
                    async {}
                },
            )
            .build()
            .await
            .map_err(|err| NativeError::Client {
                device: device.clone(),
                message: err.to_string(),
            })?;
        Ok(Self {
            client: bot.client(),
            device,
            state,
            bot: Mutex::new(Some(bot)),
            handle: tokio::sync::Mutex::new(None),
            _lock: lock,
        })
    }

    /// Connects and keeps the session connected (the library reconnects with its own backoff). A session
    /// that is not paired is never started: connecting it would begin a pairing nobody watches.
    pub async fn start(&self) {
        if self.state.get() == SessionState::NotPaired {
            return;
        }
        let bot = self
            .bot
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(bot) = bot {
            self.state.set(SessionState::Connecting);
            *self.handle.lock().await = Some(bot.spawn());
        }
    }

    /// Disconnects cleanly, flushing the store.
    pub async fn stop(&self) {
        if let Some(handle) = self.handle.lock().await.take() {
            handle.shutdown().await;
        }
    }

    pub fn device(&self) -> &DeviceId {
        &self.device
    }

    pub fn client(&self) -> &Arc<Client> {
        &self.client
    }

    pub fn state(&self) -> SessionState {
        self.state.get()
    }
}

#[cfg(test)]
mod tests {
    use whatsapp_rust::types::events::{
        ConnectFailureReason, Connected, Disconnected, LoggedOut, StreamReplaced,
    };
    use whatsapp_rust::wacore::net::DisconnectReason;

    use super::*;

    #[test]
    fn the_state_follows_the_librarys_events_and_the_gauge_follows_the_state() {
        let metrics = Metrics::new();
        let cell = StateCell {
            device: DeviceId::parse("phone-1").unwrap(),
            state: Arc::new(Mutex::new(SessionState::Idle)),
            metrics: Some(metrics.clone()),
        };
        let disconnected = || {
            Event::Disconnected(
                Disconnected::builder()
                    .reason(DisconnectReason::StreamEnded)
                    .build(),
            )
        };
        let steps = [
            (Event::Connected(Connected::builder().build()), "connected"),
            (disconnected(), "disconnected"),
            (Event::Connected(Connected::builder().build()), "connected"),
            (
                Event::StreamReplaced(StreamReplaced::builder().build()),
                "replaced",
            ),
            // The disconnect that follows a replacement does not hide it.
            (disconnected(), "replaced"),
            (
                Event::LoggedOut(
                    LoggedOut::builder()
                        .on_connect(true)
                        .reason(ConnectFailureReason::LoggedOut)
                        .build(),
                ),
                "logged_out",
            ),
            (disconnected(), "logged_out"),
        ];
        for (event, expected) in steps {
            cell.on_event(&event);
            assert_eq!(cell.get().name(), expected, "after {event:?}");
            let text = metrics.render();
            for state in SessionState::NAMES {
                let series =
                    format!(r#"avatar_worker_native_session{{device="phone-1",state="{state}"}} "#);
                let value = if state == expected { "1" } else { "0" };
                assert!(
                    text.contains(&format!("{series}{value}")),
                    "{series}: {text}"
                );
            }
        }
        assert!(
            cell.get()
                .refusal(&DeviceId::parse("phone-1").unwrap())
                .is_some_and(|err| err.code == ErrorCode::DeviceNotLoggedIn)
        );
    }
}
