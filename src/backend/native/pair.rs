//! Linking a new device: the session store is created, the phone scans a QR code (or types a pair code),
//! and the paired session is kept in the store for the worker to open.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use whatsapp_rust::bot::Bot;
use whatsapp_rust::pair_code::PairCodeOptions;
use whatsapp_rust::types::events::{Event, EventKind};

use super::NativeError;
use super::store::{StoreLock, StorePath, is_paired};
use crate::protocol::DeviceId;

/// What the person pairing must do next.
#[derive(Debug, Clone)]
pub enum PairPrompt {
    /// Scan this QR payload in WhatsApp → Linked devices; it rotates every `valid_for`.
    Qr { code: String, valid_for: Duration },
    /// Type this code in WhatsApp → Linked devices → Link with phone number.
    Code { code: String, valid_for: Duration },
}

#[derive(Debug, Clone)]
pub struct PairOptions {
    pub device: DeviceId,
    /// Digits with country code: pair by code instead of by QR.
    pub phone: Option<String>,
    /// Replace a session that is already paired.
    pub force: bool,
    /// Give up after this long.
    pub timeout: Duration,
}

/// The account a device was linked to.
#[derive(Debug, Clone)]
pub struct Paired {
    pub account: String,
}

enum Progress {
    Prompt(PairPrompt),
    Linked(String),
    Connected,
    Failed(String),
}

/// Pairs `options.device` under `sessions_dir`, calling `prompt` with each QR code or pair code.
pub async fn pair(
    sessions_dir: &std::path::Path,
    options: PairOptions,
    prompt: impl Fn(PairPrompt) + Send + Sync + 'static,
) -> Result<Paired, NativeError> {
    let path = StorePath::new(sessions_dir, &options.device);
    let lock = StoreLock::acquire(&path)?;
    if options.force {
        path.remove(&lock)?;
    }
    let store = path.open(&lock).await?;
    if is_paired(&store).await? {
        return Err(NativeError::Pairing(format!(
            "device {} is already paired (store {}); pass --force to replace it",
            options.device.as_str(),
            path.database().display()
        )));
    }

    let (tx, mut rx) = mpsc::unbounded_channel();
    let events = tx.clone();
    let mut builder = Bot::builder()
        .with_backend(store)
        .skip_history_sync()
        .on_event_for(
            &[
                EventKind::PairingQrCode,
                EventKind::PairingCode,
                EventKind::PairSuccess,
                EventKind::PairError,
                EventKind::PairingQrCodesExhausted,
                EventKind::PairingCodeError,
                EventKind::Connected,
                EventKind::LoggedOut,
            ],
            move |event, _client| {
                if let Some(progress) = progress(&event) {
                    let _ = events.send(progress);
                }
                async {}
            },
        );
    if let Some(phone) = &options.phone {
        builder = builder.with_pair_code(PairCodeOptions {
            phone_number: phone.clone(),
            ..PairCodeOptions::default()
        });
    }
    let bot = builder.build().await.map_err(|err| NativeError::Client {
        device: options.device.clone(),
        message: err.to_string(),
    })?;
    drop(tx);
    let handle = bot.spawn();
    let prompt = Arc::new(prompt);
    let outcome = tokio::time::timeout(options.timeout, async {
        let mut account = None;
        while let Some(progress) = rx.recv().await {
            match progress {
                Progress::Prompt(next) => prompt(next),
                Progress::Linked(jid) => account = Some(jid),
                Progress::Connected => {
                    if let Some(account) = account.take() {
                        return Ok(Paired { account });
                    }
                }
                Progress::Failed(reason) => return Err(NativeError::Pairing(reason)),
            }
        }
        Err(NativeError::Pairing(
            "the WhatsApp client stopped before pairing finished".into(),
        ))
    })
    .await
    .unwrap_or_else(|_| {
        Err(NativeError::Pairing(format!(
            "not paired within {} s",
            options.timeout.as_secs()
        )))
    });
    // Flushes the new keys to the store before the lock is released.
    handle.shutdown().await;
    drop(lock);
    outcome
}

fn progress(event: &Event) -> Option<Progress> {
    Some(match event {
        Event::PairingQrCode(qr) => Progress::Prompt(PairPrompt::Qr {
            code: qr.code.clone(),
            valid_for: qr.timeout,
        }),
        Event::PairingCode(code) => Progress::Prompt(PairPrompt::Code {
            code: code.code.clone(),
            valid_for: code.timeout,
        }),
        Event::PairSuccess(success) => Progress::Linked(success.id.to_string()),
        Event::Connected(_) => Progress::Connected,
        Event::PairError(err) => Progress::Failed(format!("pairing failed: {}", err.error)),
        Event::PairingQrCodesExhausted(_) => {
            Progress::Failed("every QR code expired unscanned; run pair again".into())
        }
        Event::PairingCodeError(err) => {
            Progress::Failed(format!("the pair code was refused: {err:?}"))
        }
        Event::LoggedOut(out) => {
            Progress::Failed(format!("logged out while pairing: {:?}", out.reason))
        }
        _ => return None,
    })
}
