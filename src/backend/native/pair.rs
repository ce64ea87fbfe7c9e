//! Linking a new device: the session store is created, the phone scans a QR code (or types a pair code),
//! and the paired session is kept in the store for the worker to open.
//!
//! `PairSuccess` is the success: from then on the keys are in the store and the device is linked. The
//! first app-state sync that follows gets a bounded wait of its own, and a slow one does not make the
//! pairing a failure (the worker finishes it on its next connection). Which event leads where is
//! [`PairFlow`], a pure state machine tested from constructed events.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use whatsapp_rust::Client;
use whatsapp_rust::bot::Bot;
use whatsapp_rust::pair_code::{PairCodeOptions, PairCodeRejection};
use whatsapp_rust::types::events::{Event, EventHandler, EventInterest, EventKind};
use whatsapp_rust::wacore::store::DevicePropsOverride;

use super::NativeError;
use super::session::ClientOptions;
use super::store::{StoreLock, StorePath, is_paired};
use crate::protocol::DeviceId;

/// What the person pairing should see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// Scan this QR payload in WhatsApp → Linked devices; it rotates every `valid_for`.
    Qr { code: String, valid_for: Duration },
    /// Type this code in WhatsApp → Linked devices → Link with phone number (a new one replaces it when
    /// WhatsApp asks for a refresh).
    Code { code: String, valid_for: Duration },
    /// `--force`: the old linked device was logged out before its keys were deleted.
    OldDeviceLoggedOut { account: String },
    /// `--force`: the old linked device could not be logged out; it stays on the phone's list.
    OldDeviceNotLoggedOut { account: String, why: String },
    /// The phone linked the device; the keys are saved. The first sync follows.
    Linked {
        account: String,
        sync_wait: Duration,
    },
}

#[derive(Debug, Clone)]
pub struct PairOptions {
    pub device: DeviceId,
    /// Digits with country code: pair by code instead of by QR.
    pub phone: Option<String>,
    /// Replace a session that is already paired (logging its device out first).
    pub force: bool,
    /// How long the person has to scan the code or type it.
    pub timeout: Duration,
    /// How long to wait, once linked, for the first sync to finish.
    pub sync_timeout: Duration,
    /// With `force`: how long to try to connect the old session to log it out.
    pub logout_timeout: Duration,
    /// The name the linked device shows on the phone (`native.device_name`).
    pub device_name: String,
    /// How the client reaches WhatsApp (the real network unless a test says otherwise).
    pub client: ClientOptions,
}

impl PairOptions {
    pub fn new(device: DeviceId) -> Self {
        Self {
            device,
            phone: None,
            force: false,
            timeout: Duration::from_secs(300),
            sync_timeout: Duration::from_secs(120),
            logout_timeout: Duration::from_secs(30),
            device_name: "avatar-worker".into(),
            client: ClientOptions::default(),
        }
    }
}

/// The account a device was linked to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paired {
    pub account: String,
    /// `None`: the first sync finished. Otherwise why it did not (it did not finish in time, or failed);
    /// the device is paired either way.
    pub sync: Option<String>,
}

/// What to do after an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Nothing to do.
    Wait,
    Show(Notice),
    /// WhatsApp wants a new pair code: ask for one (`Client::pair_with_code`).
    RequestCode,
    /// The phone linked the device (`PairSuccess`).
    Linked(String),
    /// The first sync after linking ended: `None` when it finished, else why not.
    Synced(Option<String>),
    Fail(String),
}

/// Which event leads where while pairing.
#[derive(Debug, Clone)]
pub struct PairFlow {
    by_code: bool,
    linked: bool,
    sync_wait: Duration,
}

impl PairFlow {
    pub fn new(by_code: bool, sync_wait: Duration) -> Self {
        Self {
            by_code,
            linked: false,
            sync_wait,
        }
    }

    pub fn on_event(&mut self, event: &Event) -> Step {
        match event {
            // In code mode the QR codes keep rotating on the same connection; nobody scans them.
            Event::PairingQrCode(qr) if !self.by_code && !self.linked => Step::Show(Notice::Qr {
                code: qr.code.clone(),
                valid_for: qr.timeout,
            }),
            Event::PairingCode(code) if !self.linked => Step::Show(Notice::Code {
                code: code.code.clone(),
                valid_for: code.timeout,
            }),
            Event::PairingCodeRefresh(_) if self.by_code && !self.linked => Step::RequestCode,
            Event::PairingCodeError(err) if self.by_code && !self.linked => {
                Step::Fail(code_refused(err.rejection, err.backoff, &err.error))
            }
            Event::PairingQrCodesExhausted(exhausted) if !self.linked => {
                match (self.by_code, exhausted.disconnected) {
                    // The pair code stays valid after the QR codes run out: keep waiting for it.
                    (true, false) => Step::Wait,
                    (true, true) => Step::Fail(
                        "WhatsApp closed the connection before the pair code was entered; run pair again".into(),
                    ),
                    (false, _) => Step::Fail("every QR code expired unscanned; run pair again".into()),
                }
            }
            Event::PairSuccess(success) => {
                self.linked = true;
                Step::Linked(success.id.to_string())
            }
            Event::PairError(err) => Step::Fail(format!("pairing failed: {}", err.error)),
            Event::Connected(_) if self.linked => Step::Synced(None),
            Event::AppStateSyncFailed(failed) if self.linked && !failed.connected => {
                Step::Synced(Some(format!(
                    "the first sync failed (fatal: {}; retryable: {}); the worker retries it when it connects",
                    failed.fatal.join(", "),
                    failed.retryable.join(", ")
                )))
            }
            Event::LoggedOut(out) => Step::Fail(if self.linked {
                format!(
                    "the device was linked, then logged out ({:?}): run pair again with --force",
                    out.reason
                )
            } else {
                format!(
                    "WhatsApp logged the new device out while pairing: {:?}",
                    out.reason
                )
            }),
            Event::StreamReplaced(_) => Step::Fail(
                "another client opened this session while pairing (conflict: replaced)".into(),
            ),
            Event::ClientOutdated(_) => {
                Step::Fail("WhatsApp refused this client as outdated: upgrade avatar-worker".into())
            }
            Event::TemporaryBan(ban) => Step::Fail(format!(
                "WhatsApp has banned this account for now: {}",
                ban.code
            )),
            Event::ConnectFailure(failure) if !failure.reason.should_reconnect() => Step::Fail(
                format!("WhatsApp refused the connection: {:?}", failure.reason),
            ),
            _ => Step::Wait,
        }
    }

    /// The message when the first sync did not end within its wait.
    pub fn sync_timed_out(&self) -> String {
        format!(
            "the first sync did not finish within {} s; the worker finishes it when it connects",
            self.sync_wait.as_secs()
        )
    }
}

/// A refused pair code, with the server's backoff when it throttles.
fn code_refused(
    rejection: Option<PairCodeRejection>,
    backoff: Option<Duration>,
    error: &str,
) -> String {
    match rejection {
        Some(rejection) if rejection.is_throttled() => format!(
            "WhatsApp is throttling pair-code requests for this number ({}): wait {} before running pair again, or pair by QR code (without --phone)",
            rejection.text().unwrap_or("refused"),
            match backoff {
                Some(wait) => format!("{} s, as WhatsApp asked,", wait.as_secs()),
                None => "a few minutes".into(),
            }
        ),
        Some(PairCodeRejection::FeatureNotAvailable) => {
            "linking by phone number is not available for this account: pair by QR code (without --phone)".into()
        }
        _ => format!("the pair code request failed: {error}"),
    }
}

/// The events pairing listens to.
const EVENTS: [EventKind; 14] = [
    EventKind::PairingQrCode,
    EventKind::PairingCode,
    EventKind::PairingCodeRefresh,
    EventKind::PairingCodeError,
    EventKind::PairingQrCodesExhausted,
    EventKind::PairSuccess,
    EventKind::PairError,
    EventKind::Connected,
    EventKind::AppStateSyncFailed,
    EventKind::LoggedOut,
    EventKind::ClientOutdated,
    EventKind::TemporaryBan,
    EventKind::ConnectFailure,
    EventKind::StreamReplaced,
];

/// Hands each event to the pairing loop, in the order the library dispatches them.
struct Forward(mpsc::UnboundedSender<Arc<Event>>);

impl EventHandler for Forward {
    fn handle_event(&self, event: Arc<Event>) {
        let _ = self.0.send(event);
    }

    fn interest(&self) -> EventInterest {
        EventInterest::of(&EVENTS)
    }
}

/// Pairs `options.device` under `sessions_dir`, calling `notify` with each code and step.
pub async fn pair(
    sessions_dir: &std::path::Path,
    options: PairOptions,
    notify: impl Fn(Notice) + Send + Sync + 'static,
) -> Result<Paired, NativeError> {
    let path = StorePath::new(sessions_dir, &options.device);
    let lock = StoreLock::acquire(&path)?;
    let store = path.open(&lock).await?;
    if let Some(account) = paired_account(&store).await? {
        if !options.force {
            return Err(NativeError::Pairing(format!(
                "device {} is already paired (store {}); pass --force to replace it",
                options.device.as_str(),
                path.database().display()
            )));
        }
        notify(log_out_old(store, &account, &options).await);
        path.remove(&lock)?;
    } else {
        drop(store);
    }
    let store = path.open(&lock).await?;

    let (tx, mut rx) = mpsc::unbounded_channel();
    let by_code = options.phone.clone().map(|phone| PairCodeOptions {
        phone_number: phone,
        ..PairCodeOptions::default()
    });
    let mut builder = client_builder(store, &options.client)
        .with_device_props(DevicePropsOverride::new().with_os(options.device_name.clone()))
        .with_event_handler(Forward(tx));
    if let Some(code) = &by_code {
        builder = builder.with_pair_code(code.clone());
    }
    let bot = builder.build().await.map_err(|err| NativeError::Client {
        device: options.device.clone(),
        message: err.to_string(),
    })?;
    let client = bot.client();
    let handle = bot.spawn();
    let mut flow = PairFlow::new(by_code.is_some(), options.sync_timeout);

    // Until the phone links the device: the time a person has to scan or type.
    let linked = tokio::time::timeout(options.timeout, async {
        while let Some(event) = rx.recv().await {
            match flow.on_event(&event) {
                Step::Wait | Step::Synced(_) => {}
                Step::Show(notice) => notify(notice),
                Step::RequestCode => {
                    if let Some(code) = by_code.clone() {
                        request_code(client.clone(), code);
                    }
                }
                Step::Linked(account) => return Ok(account),
                Step::Fail(reason) => return Err(NativeError::Pairing(reason)),
            }
        }
        Err(NativeError::Pairing(
            "the WhatsApp client stopped before pairing finished".into(),
        ))
    })
    .await
    .unwrap_or_else(|_| {
        Err(NativeError::Pairing(format!(
            "not linked within {} s: nobody scanned the code (or typed it) in time; run pair again",
            options.timeout.as_secs()
        )))
    });

    let outcome = match linked {
        Err(err) => Err(err),
        Ok(account) => {
            notify(Notice::Linked {
                account: account.clone(),
                sync_wait: options.sync_timeout,
            });
            // The device is paired now; the first sync only gets a bounded wait.
            let synced = tokio::time::timeout(options.sync_timeout, async {
                while let Some(event) = rx.recv().await {
                    match flow.on_event(&event) {
                        Step::Synced(sync) => return Ok(sync),
                        Step::Fail(reason) => return Err(NativeError::Pairing(reason)),
                        _ => {}
                    }
                }
                Ok(Some(
                    "the client stopped before the first sync finished".into(),
                ))
            })
            .await
            .unwrap_or_else(|_| Ok(Some(flow.sync_timed_out())));
            synced.map(|sync| Paired { account, sync })
        }
    };
    // Flushes the new keys to the store before the lock is released.
    handle.shutdown().await;
    drop(lock);
    outcome
}

fn client_builder(
    store: whatsapp_rust::store::SqliteStore,
    options: &ClientOptions,
) -> whatsapp_rust::bot::BotBuilder<
    whatsapp_rust::bot::Provided,
    whatsapp_rust::bot::Provided,
    whatsapp_rust::bot::Provided,
    whatsapp_rust::bot::Provided,
> {
    let mut builder = Bot::builder().with_backend(store).skip_history_sync();
    if let Some(transport) = &options.transport {
        builder =
            builder.with_transport_factory(super::session::SharedTransport(transport.clone()));
    }
    if let Some(version) = options.version {
        builder = builder.with_version(version);
    }
    builder
}

/// Asks for a new pair code. Success arrives as a `PairingCode` event, and most failures as a
/// `PairingCodeError`; the two that do not (a code still outstanding, a cancelled request) are logged.
fn request_code(client: Arc<Client>, options: PairCodeOptions) {
    tokio::spawn(async move {
        if let Err(err) = client.pair_with_code(options).await {
            tracing::warn!(%err, "a new pair code was asked for and not given");
        }
    });
}

/// The account a store is paired with, if any.
async fn paired_account(
    store: &whatsapp_rust::store::SqliteStore,
) -> Result<Option<String>, NativeError> {
    use whatsapp_rust::wacore::store::traits::DeviceStore;
    if !is_paired(store).await? {
        return Ok(None);
    }
    let device = store
        .load()
        .await
        .map_err(|err| NativeError::Load(err.to_string()))?;
    Ok(device.and_then(|device| device.pn).map(|pn| pn.to_string()))
}

/// `--force`: connects the old session and logs its device out, so it leaves the phone's list of linked
/// devices, before its keys are deleted. Offline (or refused) it cannot: that is said, and pairing goes on.
async fn log_out_old(
    store: whatsapp_rust::store::SqliteStore,
    account: &str,
    options: &PairOptions,
) -> Notice {
    let not_logged_out = |why: String| Notice::OldDeviceNotLoggedOut {
        account: account.to_string(),
        why,
    };
    let bot = match client_builder(store, &options.client).build().await {
        Ok(bot) => bot,
        Err(err) => return not_logged_out(format!("its client could not be built: {err}")),
    };
    let client = bot.client();
    let handle = bot.spawn();
    let ready = tokio::time::timeout(options.logout_timeout, async {
        while !(client.is_connected() && client.is_logged_in()) {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .is_ok();
    let notice = if ready {
        client.logout().await;
        Notice::OldDeviceLoggedOut {
            account: account.to_string(),
        }
    } else {
        not_logged_out(format!(
            "it did not connect to WhatsApp within {} s",
            options.logout_timeout.as_secs()
        ))
    };
    if tokio::time::timeout(Duration::from_secs(10), handle.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("the old session did not stop within 10 s");
    }
    notice
}

#[cfg(test)]
mod tests {
    use whatsapp_rust::types::events::{
        AppStateSyncFailed, Connected, PairSuccess, PairingCode, PairingCodeError,
        PairingCodeRefresh, PairingQrCode, PairingQrCodesExhausted,
    };

    use super::*;

    fn qr() -> Event {
        Event::PairingQrCode(
            PairingQrCode::builder()
                .code("2@abc,def,ghi,jkl".to_string())
                .timeout(Duration::from_secs(20))
                .build(),
        )
    }

    fn code() -> Event {
        Event::PairingCode(
            PairingCode::builder()
                .code("ABCD-EFGH".to_string())
                .timeout(Duration::from_secs(180))
                .build(),
        )
    }

    fn exhausted(disconnected: bool) -> Event {
        Event::PairingQrCodesExhausted(
            PairingQrCodesExhausted::builder()
                .disconnected(disconnected)
                .build(),
        )
    }

    fn success() -> Event {
        Event::PairSuccess(
            PairSuccess::builder()
                .id("15550000001:3@s.whatsapp.net".parse().unwrap())
                .lid("100000001:3@lid".parse().unwrap())
                .business_name(String::new())
                .platform("android".to_string())
                .build(),
        )
    }

    fn connected() -> Event {
        Event::Connected(Connected::builder().build())
    }

    #[test]
    fn by_qr_code_every_code_is_shown_and_running_out_of_them_ends_it() {
        let mut flow = PairFlow::new(false, Duration::from_secs(120));
        assert!(matches!(
            flow.on_event(&qr()),
            Step::Show(Notice::Qr { .. })
        ));
        assert!(
            matches!(flow.on_event(&exhausted(true)), Step::Fail(why) if why.contains("expired unscanned"))
        );
    }

    #[test]
    fn by_phone_only_the_code_is_shown_and_it_outlives_the_qr_codes() {
        let mut flow = PairFlow::new(true, Duration::from_secs(120));
        assert_eq!(flow.on_event(&qr()), Step::Wait, "no QR code in code mode");
        assert_eq!(
            flow.on_event(&code()),
            Step::Show(Notice::Code {
                code: "ABCD-EFGH".into(),
                valid_for: Duration::from_secs(180)
            })
        );
        // At 160 s the QR refs run out while the 180 s code is still valid.
        assert_eq!(flow.on_event(&exhausted(false)), Step::Wait);
        // A mistyped or superseded code: a new one is asked for.
        let refresh =
            Event::PairingCodeRefresh(PairingCodeRefresh::builder().force_manual(true).build());
        assert_eq!(flow.on_event(&refresh), Step::RequestCode);
        assert!(matches!(flow.on_event(&exhausted(true)), Step::Fail(_)));
    }

    #[test]
    fn a_throttled_pair_code_says_how_long_to_wait() {
        let refused = |rejection, backoff| {
            Event::PairingCodeError(
                PairingCodeError::builder()
                    .maybe_rejection(rejection)
                    .maybe_backoff(backoff)
                    .error("server said no".to_string())
                    .build(),
            )
        };
        let mut flow = PairFlow::new(true, Duration::from_secs(120));
        let Step::Fail(why) = flow.on_event(&refused(
            Some(PairCodeRejection::RateOverlimit),
            Some(Duration::from_secs(90)),
        )) else {
            panic!("a refused code ends the attempt");
        };
        assert!(
            why.contains("throttling") && why.contains("rate-overlimit") && why.contains("90 s"),
            "{why}"
        );
        let Step::Fail(why) = flow.on_event(&refused(Some(PairCodeRejection::BadRequest), None))
        else {
            panic!()
        };
        assert!(
            why.contains("throttling") && why.contains("a few minutes"),
            "{why}"
        );
        let Step::Fail(why) =
            flow.on_event(&refused(Some(PairCodeRejection::FeatureNotAvailable), None))
        else {
            panic!()
        };
        assert!(why.contains("pair by QR code"), "{why}");
        let Step::Fail(why) = flow.on_event(&refused(None, None)) else {
            panic!()
        };
        assert!(why.contains("server said no"), "{why}");
    }

    #[test]
    fn pair_success_is_success_and_the_first_sync_only_reports_how_it_ended() {
        let mut flow = PairFlow::new(false, Duration::from_secs(120));
        assert_eq!(flow.on_event(&connected()), Step::Wait, "not linked yet");
        assert_eq!(
            flow.on_event(&success()),
            Step::Linked("15550000001:3@s.whatsapp.net".into())
        );
        // Codes that were still rotating are no longer shown.
        assert_eq!(flow.on_event(&qr()), Step::Wait);
        assert_eq!(flow.on_event(&connected()), Step::Synced(None));

        let mut flow = PairFlow::new(false, Duration::from_secs(120));
        flow.on_event(&success());
        let failed = Event::AppStateSyncFailed(
            AppStateSyncFailed::builder()
                .fatal(Vec::new())
                .retryable(vec!["critical_block".into()])
                .skipped(Vec::new())
                .connected(false)
                .build(),
        );
        assert!(
            matches!(flow.on_event(&failed), Step::Synced(Some(why)) if why.contains("critical_block"))
        );
        assert!(flow.sync_timed_out().contains("120 s"));
    }
}
