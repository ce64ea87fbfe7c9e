//! One device's in-process WhatsApp session: its client, the task that runs it, and its state as the
//! library's events report it.
//!
//! Events reach the state through a handler the library calls inline, as it dispatches, so they are
//! seen in the order they happen and none is dropped. The run loop is watched too: whatsapp-rust ends it
//! for good after a logout, a replacement, a ban, an outdated client or a refused login, and a session
//! whose loop has ended is terminal until it is rebuilt ([`super::SessionRegistry::rebuild`]). A
//! terminal session releases its store's lock at once, so `avatar-worker pair` can run beside the worker.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use whatsapp_rust::Client;
use whatsapp_rust::bot::{Bot, BotHandle};
use whatsapp_rust::transport::{Transport, TransportEvent, TransportFactory};
use whatsapp_rust::types::events::{
    ConnectFailure, Event, EventHandler, EventInterest, EventKind, LoggedOut,
};
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
    /// Opened, not started (a session opened without connecting).
    Idle,
    /// Started, not connected yet.
    Connecting,
    Connected,
    /// The connection dropped; the library reconnects on its own (why, as the library said it).
    Disconnected(String),
    /// Logged in, but the app-state sync after login failed and the library did not announce the
    /// connection. Picture queries do not depend on that sync, so jobs still run.
    SyncFailed(String),
    /// The phone unlinked this device, or the server refused the account: pairing again is needed.
    LoggedOut(String),
    /// Another client opened the same session (`conflict: replaced`).
    Replaced,
    /// WhatsApp banned the account for a while; the registry rebuilds the session when it ends.
    Banned {
        reason: String,
        until: Option<SystemTime>,
    },
    /// WhatsApp refused this client version (405).
    Outdated,
    /// WhatsApp refused the connection and the library will not retry (bad user agent, expired or
    /// invalid credentials, unknown client, ...).
    Failed(String),
    /// The client's run loop ended without any of the above: the session is rebuilt to run again.
    Stopped(String),
    /// Closed on this worker ([`super::SessionRegistry::close`]).
    Closed,
}

impl SessionState {
    pub const NAMES: [&'static str; 13] = [
        "not_paired",
        "idle",
        "connecting",
        "connected",
        "disconnected",
        "sync_failed",
        "logged_out",
        "replaced",
        "banned",
        "outdated",
        "failed",
        "stopped",
        "closed",
    ];

    pub fn name(&self) -> &'static str {
        match self {
            SessionState::NotPaired => "not_paired",
            SessionState::Idle => "idle",
            SessionState::Connecting => "connecting",
            SessionState::Connected => "connected",
            SessionState::Disconnected(_) => "disconnected",
            SessionState::SyncFailed(_) => "sync_failed",
            SessionState::LoggedOut(_) => "logged_out",
            SessionState::Replaced => "replaced",
            SessionState::Banned { .. } => "banned",
            SessionState::Outdated => "outdated",
            SessionState::Failed(_) => "failed",
            SessionState::Stopped(_) => "stopped",
            SessionState::Closed => "closed",
        }
    }

    /// Why the session is in this state, for `/readyz` and the logs.
    pub fn reason(&self) -> Option<String> {
        match self {
            SessionState::NotPaired => Some("the store holds no pairing".into()),
            SessionState::Disconnected(why)
            | SessionState::SyncFailed(why)
            | SessionState::LoggedOut(why)
            | SessionState::Failed(why)
            | SessionState::Stopped(why) => Some(why.clone()),
            SessionState::Replaced => {
                Some("another client opened this session (conflict: replaced)".into())
            }
            SessionState::Banned { reason, until } => Some(match until {
                Some(until) => format!("{reason}; until {}", timestamp(*until)),
                None => reason.clone(),
            }),
            SessionState::Outdated => Some("WhatsApp refused this client version (405)".into()),
            SessionState::Idle
            | SessionState::Connecting
            | SessionState::Connected
            | SessionState::Closed => None,
        }
    }

    /// Whether the session's client runs (or may run): everything else is terminal until a rebuild.
    pub fn is_live(&self) -> bool {
        matches!(
            self,
            SessionState::Idle
                | SessionState::Connecting
                | SessionState::Connected
                | SessionState::Disconnected(_)
                | SessionState::SyncFailed(_)
        )
    }

    /// The job error of a state in which asking WhatsApp cannot work; `None` lets the job go on to the
    /// connection check. Each names what a person must do.
    pub fn refusal(&self, device: &DeviceId) -> Option<JobError> {
        let device = device.as_str();
        let rebuild = "then send the worker SIGHUP (or restart it) to open the session again";
        let stopped = |message: String| {
            Some(JobError::new(ErrorCode::DeviceDisconnected, message).with_retryable(false))
        };
        match self {
            SessionState::NotPaired => Some(JobError::new(
                ErrorCode::DeviceNotLoggedIn,
                format!(
                    "device {device} is not paired: run `avatar-worker pair --device {device}`, {rebuild}"
                ),
            )),
            SessionState::LoggedOut(reason) => Some(JobError::new(
                ErrorCode::DeviceNotLoggedIn,
                format!(
                    "device {device} was logged out ({reason}): run `avatar-worker pair --device {device} --force`, {rebuild}"
                ),
            )),
            SessionState::Replaced => stopped(format!(
                "device {device}'s session was opened by another client (conflict: replaced): stop that client, {rebuild}"
            )),
            SessionState::Banned { reason, until } => stopped(format!(
                "device {device} is banned by WhatsApp for now ({reason}); this worker reconnects it {}",
                match until {
                    Some(until) => format!("by itself after {}", timestamp(*until)),
                    None => "when it receives SIGHUP".into(),
                }
            )),
            SessionState::Outdated => stopped(format!(
                "WhatsApp refused device {device}'s client as outdated: upgrade avatar-worker (its whatsapp-rust), then restart it"
            )),
            SessionState::Failed(reason) => stopped(format!(
                "WhatsApp refused device {device}'s connection ({reason}): send the worker SIGHUP to try again; if this repeats, pair again with `avatar-worker pair --device {device} --force`"
            )),
            SessionState::Stopped(reason) => stopped(format!(
                "device {device}'s WhatsApp client stopped ({reason}): send the worker SIGHUP to start it again"
            )),
            SessionState::Closed => Some(JobError::new(
                ErrorCode::DeviceDisconnected,
                format!("device {device}'s session is closed on this worker"),
            )),
            SessionState::Idle
            | SessionState::Connecting
            | SessionState::Connected
            | SessionState::Disconnected(_)
            | SessionState::SyncFailed(_) => None,
        }
    }

    /// The state after `event`, or `None` when the event changes nothing. A terminal state stays until
    /// the session is rebuilt: the library reconnects no more once it is reached.
    pub fn after(&self, event: &Event) -> Option<SessionState> {
        if !self.is_live() {
            return None;
        }
        Some(match event {
            Event::Connected(_) => SessionState::Connected,
            Event::Disconnected(disconnected) => {
                SessionState::Disconnected(format!("{:?}", disconnected.reason))
            }
            Event::LoggedOut(logged_out) => SessionState::LoggedOut(logged_out_reason(logged_out)),
            Event::StreamReplaced(_) => SessionState::Replaced,
            Event::TemporaryBan(ban) => SessionState::Banned {
                reason: match &ban.message {
                    Some(message) => format!("{}; {message}", ban.code),
                    None => ban.code.to_string(),
                },
                until: ban
                    .expire
                    .to_std()
                    .ok()
                    .and_then(|expire| SystemTime::now().checked_add(expire)),
            },
            Event::ClientOutdated(_) => SessionState::Outdated,
            Event::ConnectFailure(failure) => connect_failure(failure),
            Event::AppStateSyncFailed(failed) if !failed.connected => {
                SessionState::SyncFailed(format!(
                    "app-state sync failed (fatal: {}; retryable: {})",
                    list(&failed.fatal),
                    list(&failed.retryable)
                ))
            }
            _ => return None,
        })
    }
}

/// The events that move a session's state.
pub const EVENTS: [EventKind; 8] = [
    EventKind::Connected,
    EventKind::Disconnected,
    EventKind::LoggedOut,
    EventKind::StreamReplaced,
    EventKind::TemporaryBan,
    EventKind::ClientOutdated,
    EventKind::ConnectFailure,
    EventKind::AppStateSyncFailed,
];

fn list(names: &[String]) -> String {
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}

fn timestamp(at: SystemTime) -> String {
    time::OffsetDateTime::from(at)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| format!("{at:?}"))
}

/// Why the library logged the session out, from the stanza that said so.
fn logged_out_reason(logged_out: &LoggedOut) -> String {
    let reason = &logged_out.reason;
    let Some(raw) = &logged_out.raw else {
        return "logged out by this process".into();
    };
    if raw.tag == "failure" {
        let mut said = format!("WhatsApp refused the login: {reason:?} ({})", reason.code());
        if let Some(header) = logged_out
            .logout_message
            .as_ref()
            .and_then(|message| message.header.as_ref())
        {
            said.push_str(&format!(": {header}"));
        }
        return said;
    }
    let conflict = raw
        .children()
        .into_iter()
        .flatten()
        .find(|child| child.tag == "conflict")
        .and_then(|conflict| {
            conflict
                .attrs()
                .optional_string("type")
                .map(|t| t.into_owned())
        });
    match (conflict, raw.attrs().optional_string("code").as_deref()) {
        (Some(kind), _) => format!("the device was removed (conflict: {kind})"),
        (None, Some("516")) => "the device was removed from the phone (516)".into(),
        (None, Some("401")) => "WhatsApp no longer accepts this device (401)".into(),
        (None, code) => format!("{reason:?} (stream error {})", code.unwrap_or("?")),
    }
}

/// A refused connection: terminal unless the library retries it itself (500, 503).
fn connect_failure(failure: &ConnectFailure) -> SessionState {
    let mut said = format!("{:?} ({})", failure.reason, failure.reason.code());
    if let Some(message) = &failure.message {
        said.push_str(&format!(": {message}"));
    }
    if failure.reason.should_reconnect() {
        SessionState::Disconnected(format!("WhatsApp refused the connection for now: {said}"))
    } else {
        SessionState::Failed(said)
    }
}

/// The state, shared with the event handler and the task that runs the client, mirrored into the
/// metrics on every change until the session is retired (closed or rebuilt).
#[derive(Clone)]
pub(super) struct StateCell {
    inner: Arc<CellInner>,
}

struct CellInner {
    device: DeviceId,
    state: Mutex<SessionState>,
    metrics: Option<Metrics>,
    retired: AtomicBool,
}

impl StateCell {
    pub(super) fn new(device: DeviceId, state: SessionState, metrics: Option<Metrics>) -> Self {
        let cell = Self {
            inner: Arc::new(CellInner {
                device,
                state: Mutex::new(SessionState::Idle),
                metrics,
                retired: AtomicBool::new(false),
            }),
        };
        cell.set(state);
        cell
    }

    fn set(&self, state: SessionState) {
        self.update(|_| Some(state));
    }

    /// Moves to `next(current)` atomically; `None` keeps the current state.
    fn update(&self, next: impl FnOnce(&SessionState) -> Option<SessionState>) {
        let inner = &self.inner;
        let mut current = inner.state.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(state) = next(&current) else {
            return;
        };
        let previous = std::mem::replace(&mut *current, state);
        if inner.retired.load(Ordering::SeqCst) {
            return;
        }
        let name = current.name();
        if previous != *current {
            let reason = current.reason().unwrap_or_default();
            if current.is_live() {
                tracing::info!(device_id = %inner.device.as_str(), from = previous.name(), to = name, %reason, "native session state");
            } else {
                tracing::warn!(device_id = %inner.device.as_str(), from = previous.name(), to = name, %reason, "native session state");
            }
        }
        if let Some(metrics) = &inner.metrics {
            metrics.set_native_session(inner.device.as_str(), name, &SessionState::NAMES);
        }
    }

    pub(super) fn get(&self) -> SessionState {
        self.inner
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub(super) fn on_event(&self, event: &Event) {
        self.update(|current| current.after(event));
    }

    /// The run loop ended: a session not already terminal is `stopped`.
    fn loop_ended(&self) {
        self.update(|current| {
            current.is_live().then(|| {
                SessionState::Stopped("the client's run loop ended without a reason".into())
            })
        });
    }

    /// From now on this cell no longer speaks for the device (a newer session does).
    fn retire(&self) {
        self.inner.retired.store(true, Ordering::SeqCst);
    }
}

/// The handler the library calls inline for each event it dispatches.
struct Events(StateCell);

impl EventHandler for Events {
    fn handle_event(&self, event: Arc<Event>) {
        self.0.on_event(&event);
    }

    fn interest(&self) -> EventInterest {
        EventInterest::of(&EVENTS)
    }
}

/// How session clients reach WhatsApp. The default is the real network (the library's WebSocket
/// transport, and the current web version fetched at connect). Tests plug in a transport that never
/// connects, so a started session runs its real loop without reaching WhatsApp.
#[derive(Clone, Default)]
pub struct ClientOptions {
    pub transport: Option<Arc<dyn TransportFactory>>,
    /// The web client version to announce instead of fetching the current one.
    pub version: Option<(u32, u32, u32)>,
}

impl std::fmt::Debug for ClientOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientOptions")
            .field("transport", &self.transport.as_ref().map(|_| "custom"))
            .field("version", &self.version)
            .finish()
    }
}

/// An injected transport factory, handed to the builder by value.
pub(super) struct SharedTransport(pub(super) Arc<dyn TransportFactory>);

#[async_trait::async_trait]
impl TransportFactory for SharedTransport {
    async fn create_transport(
        &self,
    ) -> Result<
        (
            Arc<dyn Transport>,
            whatsapp_rust::async_channel::Receiver<TransportEvent>,
        ),
        anyhow::Error,
    > {
        self.0.create_transport().await
    }
}

/// Called once when a session's run loop has ended by itself, with the state it ended in.
pub(super) type OnEnd = Box<dyn FnOnce(SessionState) + Send>;

enum Run {
    /// Built, not started.
    Ready(Bot),
    Running {
        stop: tokio::sync::oneshot::Sender<()>,
        task: tokio::task::JoinHandle<()>,
    },
    Done,
}

static GENERATIONS: AtomicU64 = AtomicU64::new(1);

pub struct Session {
    device: DeviceId,
    generation: u64,
    state: StateCell,
    /// None when no client was built: the store is not paired, or the session is closed.
    client: Option<Arc<Client>>,
    run: tokio::sync::Mutex<Run>,
    /// Held while the client may run; released once it has stopped.
    lock: Arc<Mutex<Option<StoreLock>>>,
}

impl Session {
    /// Builds the session's client on `store`; no network I/O until [`Session::start`]. A store that holds
    /// no pairing gets no client at all, and its lock is released at once: nothing here will write to
    /// it, and `avatar-worker pair` may take it while the worker runs.
    pub(super) async fn build(
        device: DeviceId,
        store: Arc<dyn Backend>,
        lock: Option<StoreLock>,
        metrics: Option<Metrics>,
        options: &ClientOptions,
    ) -> Result<Self, NativeError> {
        if !is_paired(store.as_ref()).await? {
            drop(lock);
            return Ok(Self::without_client(
                device,
                SessionState::NotPaired,
                metrics,
            ));
        }
        let state = StateCell::new(device.clone(), SessionState::Idle, metrics);
        let mut builder = Bot::builder()
            .with_backend_arc(store)
            .skip_history_sync()
            .with_event_handler(Events(state.clone()));
        if let Some(transport) = &options.transport {
            builder = builder.with_transport_factory(SharedTransport(transport.clone()));
        }
        if let Some(version) = options.version {
            builder = builder.with_version(version);
        }
        let bot = builder.build().await.map_err(|err| NativeError::Client {
            device: device.clone(),
            message: err.to_string(),
        })?;
        Ok(Self {
            client: Some(bot.client()),
            device,
            generation: GENERATIONS.fetch_add(1, Ordering::Relaxed),
            state,
            run: tokio::sync::Mutex::new(Run::Ready(bot)),
            lock: Arc::new(Mutex::new(lock)),
        })
    }

    /// A session with no client: not paired, or closed.
    pub(super) fn without_client(
        device: DeviceId,
        state: SessionState,
        metrics: Option<Metrics>,
    ) -> Self {
        Self {
            state: StateCell::new(device.clone(), state, metrics),
            device,
            generation: GENERATIONS.fetch_add(1, Ordering::Relaxed),
            client: None,
            run: tokio::sync::Mutex::new(Run::Done),
            lock: Arc::new(Mutex::new(None)),
        }
    }

    /// Connects and keeps the session connected (the library reconnects with its own backoff). When the
    /// run loop ends by itself the state becomes terminal, the store's lock is released and `on_end`
    /// is called. A session without a client is never started.
    pub(super) async fn start(&self, on_end: Option<OnEnd>) {
        let mut run = self.run.lock().await;
        let Run::Ready(_) = &*run else {
            return;
        };
        let Run::Ready(bot) = std::mem::replace(&mut *run, Run::Done) else {
            unreachable!("checked above");
        };
        self.state.set(SessionState::Connecting);
        let handle = bot.spawn();
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(supervise(
            handle,
            stopped,
            self.state.clone(),
            self.lock.clone(),
            on_end,
        ));
        *run = Run::Running { stop, task };
    }

    /// Disconnects cleanly (flushing the store), then releases the store's lock.
    pub(super) async fn stop(&self) {
        let mut run = self.run.lock().await;
        if let Run::Running { stop, task } = std::mem::replace(&mut *run, Run::Done) {
            let _ = stop.send(());
            let _ = task.await;
        }
        self.lock
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
    }

    /// Stops the session and hands the device's state over to a successor.
    pub(super) async fn retire(&self) {
        self.stop().await;
        self.state.retire();
    }

    pub fn device(&self) -> &DeviceId {
        &self.device
    }

    pub(super) fn generation(&self) -> u64 {
        self.generation
    }

    /// The session's client; `None` when the store is not paired or the session is closed.
    pub fn client(&self) -> Option<&Arc<Client>> {
        self.client.as_ref()
    }

    pub fn state(&self) -> SessionState {
        self.state.get()
    }

    /// Whether this process holds the session's store lock (false once the session has ended).
    pub fn holds_store(&self) -> bool {
        self.lock
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some()
    }
}

/// Runs the bot until it is asked to stop or its run loop ends by itself.
async fn supervise(
    mut handle: BotHandle,
    stopped: tokio::sync::oneshot::Receiver<()>,
    state: StateCell,
    lock: Arc<Mutex<Option<StoreLock>>>,
    on_end: Option<OnEnd>,
) {
    tokio::select! {
        () = &mut handle => {
            state.loop_ended();
            // Nothing runs on the store any more: let `pair` (or a rebuild) take it.
            lock.lock().unwrap_or_else(PoisonError::into_inner).take();
            if let Some(on_end) = on_end {
                on_end(state.get());
            }
        }
        // Asked to stop, or the session was dropped.
        _ = stopped => handle.shutdown().await,
    }
}

/// How long after a ban's end the session is rebuilt (a margin for clocks that disagree).
pub(super) const AFTER_BAN: Duration = Duration::from_secs(5);

#[cfg(test)]
mod tests {
    use whatsapp_rust::types::events::{
        AppStateSyncFailed, ClientOutdated, ConnectFailureReason, Connected, Disconnected,
        StreamReplaced, TempBanReason, TemporaryBan,
    };
    use whatsapp_rust::wacore::net::DisconnectReason;
    use whatsapp_rust::{NodeBuilder, chrono};

    use super::*;

    fn disconnected() -> Event {
        Event::Disconnected(
            Disconnected::builder()
                .reason(DisconnectReason::StreamEnded)
                .build(),
        )
    }

    fn connected() -> Event {
        Event::Connected(Connected::builder().build())
    }

    fn failure(reason: ConnectFailureReason) -> Event {
        Event::ConnectFailure(
            ConnectFailure::builder()
                .reason(reason)
                .message("from the server".to_string())
                .build(),
        )
    }

    /// Feeds events to a cell through the handler the library calls, and checks state, reason and gauge.
    fn run(steps: Vec<(Event, &str)>) -> (StateCell, Metrics) {
        let metrics = Metrics::new();
        let cell = StateCell::new(
            DeviceId::parse("phone-1").unwrap(),
            SessionState::Connecting,
            Some(metrics.clone()),
        );
        let handler = Events(cell.clone());
        for (event, expected) in steps {
            assert!(
                handler.interest().wants(event.kind()),
                "{:?} is not subscribed",
                event.kind()
            );
            let shown = format!("{event:?}");
            handler.handle_event(Arc::new(event));
            assert_eq!(cell.get().name(), expected, "after {shown}");
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
        (cell, metrics)
    }

    #[test]
    fn the_state_follows_the_librarys_events_and_the_gauge_follows_the_state() {
        let device = DeviceId::parse("phone-1").unwrap();
        let (cell, _) = run(vec![
            (connected(), "connected"),
            (disconnected(), "disconnected"),
            // 503 is retried by the library: not terminal.
            (
                failure(ConnectFailureReason::ServiceUnavailable),
                "disconnected",
            ),
            (connected(), "connected"),
            (
                Event::StreamReplaced(StreamReplaced::builder().build()),
                "replaced",
            ),
            // Terminal: the disconnect that follows, or anything else, does not hide it.
            (disconnected(), "replaced"),
            (connected(), "replaced"),
        ]);
        let refused = cell.get().refusal(&device).unwrap();
        assert_eq!(
            (refused.code, refused.retryable),
            (ErrorCode::DeviceDisconnected, false)
        );
        assert!(refused.message.contains("SIGHUP"), "{refused:?}");
    }

    #[test]
    fn each_terminal_event_names_its_reason_and_what_to_do() {
        let device = DeviceId::parse("phone-1").unwrap();
        let device_removed = NodeBuilder::new("stream:error")
            .children([NodeBuilder::new("conflict")
                .attr("type", "device_removed")
                .build()])
            .build();
        let locked = NodeBuilder::new("failure").attr("reason", "403").build();
        let cases: Vec<(Event, &str, &str, ErrorCode, &str)> = vec![
            (
                Event::LoggedOut(
                    LoggedOut::builder()
                        .on_connect(false)
                        .reason(ConnectFailureReason::LoggedOut)
                        .raw(device_removed)
                        .build(),
                ),
                "logged_out",
                "conflict: device_removed",
                ErrorCode::DeviceNotLoggedIn,
                "avatar-worker pair --device phone-1 --force",
            ),
            (
                Event::LoggedOut(
                    LoggedOut::builder()
                        .on_connect(true)
                        .reason(ConnectFailureReason::AccountLocked)
                        .raw(locked)
                        .build(),
                ),
                "logged_out",
                "AccountLocked (403)",
                ErrorCode::DeviceNotLoggedIn,
                "--force",
            ),
            (
                Event::TemporaryBan(
                    TemporaryBan::builder()
                        .code(TempBanReason::BlockedByUsers)
                        .expire(chrono::Duration::seconds(3600))
                        .build(),
                ),
                "banned",
                "too many people blocked you",
                ErrorCode::DeviceDisconnected,
                "by itself after",
            ),
            (
                Event::ClientOutdated(ClientOutdated::builder().build()),
                "outdated",
                "405",
                ErrorCode::DeviceDisconnected,
                "upgrade avatar-worker",
            ),
            (
                failure(ConnectFailureReason::CatExpired),
                "failed",
                "CatExpired (413): from the server",
                ErrorCode::DeviceDisconnected,
                "SIGHUP",
            ),
        ];
        for (event, name, reason, code, todo) in cases {
            let (cell, _) = run(vec![(event, name)]);
            let state = cell.get();
            assert!(!state.is_live(), "{state:?}");
            let said = state.reason().unwrap();
            assert!(said.contains(reason), "{said}");
            let refused = state.refusal(&device).unwrap();
            assert_eq!(
                (refused.code, refused.retryable),
                (code, false),
                "{state:?}"
            );
            assert!(refused.message.contains(todo), "{refused:?}");
        }
    }

    #[test]
    fn a_failed_app_state_sync_is_named_but_jobs_still_run() {
        let failed = |connected| {
            Event::AppStateSyncFailed(
                AppStateSyncFailed::builder()
                    .fatal(vec!["critical_block".into()])
                    .retryable(vec!["regular_high".into()])
                    .skipped(Vec::new())
                    .connected(connected)
                    .build(),
            )
        };
        // Announced as connected anyway: nothing to change.
        run(vec![
            (connected(), "connected"),
            (failed(true), "connected"),
        ]);
        let (cell, _) = run(vec![(failed(false), "sync_failed")]);
        let state = cell.get();
        assert!(state.is_live());
        assert_eq!(
            state.reason().unwrap(),
            "app-state sync failed (fatal: critical_block; retryable: regular_high)"
        );
        assert!(
            state
                .refusal(&DeviceId::parse("phone-1").unwrap())
                .is_none()
        );
        // The connection the library announces later supersedes it.
        let (cell, _) = run(vec![
            (failed(false), "sync_failed"),
            (connected(), "connected"),
        ]);
        assert_eq!(cell.get(), SessionState::Connected);
    }

    #[test]
    fn a_run_loop_that_ends_makes_a_live_session_stopped_and_leaves_a_terminal_one() {
        let (cell, _) = run(vec![(connected(), "connected")]);
        cell.loop_ended();
        assert_eq!(cell.get().name(), "stopped");
        let (cell, _) = run(vec![(
            Event::ClientOutdated(ClientOutdated::builder().build()),
            "outdated",
        )]);
        cell.loop_ended();
        assert_eq!(cell.get(), SessionState::Outdated);
    }

    #[test]
    fn a_retired_cell_no_longer_moves_the_gauge() {
        let (cell, metrics) = run(vec![(connected(), "connected")]);
        cell.retire();
        cell.on_event(&disconnected());
        assert!(
            metrics
                .render()
                .contains(r#"avatar_worker_native_session{device="phone-1",state="connected"} 1"#)
        );
    }
}
