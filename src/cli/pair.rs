use clap::Args;

use crate::settings::Settings;

#[derive(Debug, Args)]
pub struct PairArgs {
    /// The device id jobs will name; its session is stored as `<native.sessions_dir>/<device>.db`.
    #[arg(long)]
    device: String,
    /// Pair by an 8-character code typed on the phone instead of a QR code: the account's number with
    /// country code, digits only (e.g. 15551234567).
    #[arg(long)]
    phone: Option<String>,
    /// Replace a session that is already paired: its device is logged out (when WhatsApp can be
    /// reached), then its keys are deleted.
    #[arg(long)]
    force: bool,
    /// Time to scan the QR code or type the pair code, in seconds.
    #[arg(long, default_value_t = 300)]
    timeout_s: u64,
    /// Once linked, how long to wait for the first sync, in seconds. The device is paired either way.
    #[arg(long, default_value_t = 120)]
    sync_timeout_s: u64,
}

#[cfg(feature = "native")]
pub async fn pair(settings: &Settings, args: PairArgs) -> anyhow::Result<()> {
    use crate::backend::native::pair::{self, PairOptions};
    use crate::protocol::DeviceId;

    let device = DeviceId::parse(args.device.as_str()).map_err(anyhow::Error::msg)?;
    let phone = args.phone.as_deref().map(phone_digits).transpose()?;
    let options = PairOptions {
        phone,
        force: args.force,
        timeout: std::time::Duration::from_secs(args.timeout_s),
        sync_timeout: std::time::Duration::from_secs(args.sync_timeout_s),
        device_name: settings.native.device_name.clone(),
        ..PairOptions::new(device.clone())
    };
    eprintln!(
        "pairing device {} (store under {}) as \"{}\"; WhatsApp on the phone → Settings → Linked devices",
        device.as_str(),
        settings.native.sessions_dir.display(),
        settings.native.device_name
    );
    let paired = pair::pair(&settings.native.sessions_dir, options, |notice| {
        for line in describe(&notice) {
            match line {
                Line::Out(text) => println!("{text}"),
                Line::Err(text) => eprintln!("{text}"),
            }
        }
    })
    .await?;
    match &paired.sync {
        None => println!(
            "paired device {} with account {}",
            device.as_str(),
            paired.account
        ),
        Some(why) => println!(
            "paired device {} with account {} ({why})",
            device.as_str(),
            paired.account
        ),
    }
    eprintln!(
        "a running worker picks the session up when it receives SIGHUP (or at its next start)"
    );
    Ok(())
}

/// One line for the person pairing: codes on stdout, guidance on stderr.
#[cfg(feature = "native")]
#[derive(Debug, PartialEq, Eq)]
enum Line {
    Out(String),
    Err(String),
}

#[cfg(feature = "native")]
fn describe(notice: &crate::backend::native::pair::Notice) -> Vec<Line> {
    use crate::backend::native::pair::Notice;
    match notice {
        Notice::Qr { code, valid_for } => vec![
            Line::Out(render_qr(code)),
            Line::Err(format!(
                "scan this code within {} s (a new one follows)",
                valid_for.as_secs()
            )),
        ],
        Notice::Code { code, valid_for } => vec![
            Line::Out(format!("pair code: {code}")),
            Line::Err(format!(
                "→ Link a device → Link with phone number instead; enter the code within {} s",
                valid_for.as_secs()
            )),
        ],
        Notice::OldDeviceLoggedOut { account } => vec![Line::Err(format!(
            "logged the old device of account {account} out; deleting its keys"
        ))],
        Notice::OldDeviceNotLoggedOut { account, why } => vec![Line::Err(format!(
            "could not log the old device of account {account} out ({why}); deleting its keys anyway. \
             It may stay listed on the phone: remove it there under Linked devices"
        ))],
        Notice::Linked { account, sync_wait } => vec![Line::Err(format!(
            "linked to account {account}; the keys are saved. Waiting up to {} s for the first sync",
            sync_wait.as_secs()
        ))],
    }
}

#[cfg(not(feature = "native"))]
pub async fn pair(_: &Settings, _: PairArgs) -> anyhow::Result<()> {
    anyhow::bail!(
        "this build has no native backend: rebuild with `cargo build --release --features native` (docs/native.md)"
    )
}

/// The pair-code flow wants bare digits with the country code.
#[cfg(feature = "native")]
fn phone_digits(raw: &str) -> anyhow::Result<String> {
    let digits: String = raw
        .chars()
        .filter(|c| !matches!(c, '+' | ' ' | '-' | '(' | ')'))
        .collect();
    if digits.len() < 7 || digits.len() > 15 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        anyhow::bail!("--phone {raw:?}: expected the number with country code, e.g. 15551234567");
    }
    Ok(digits)
}

/// Two QR modules per character cell, so the code fits an 80-column terminal.
#[cfg(feature = "native")]
fn render_qr(payload: &str) -> String {
    use qrcode::QrCode;
    use qrcode::render::unicode::Dense1x2;
    match QrCode::new(payload.as_bytes()) {
        Ok(code) => code
            .render::<Dense1x2>()
            .dark_color(Dense1x2::Light)
            .light_color(Dense1x2::Dark)
            .quiet_zone(true)
            .build(),
        Err(err) => format!("(cannot draw the QR code: {err}; its payload is {payload})"),
    }
}

#[cfg(all(test, feature = "native"))]
mod tests {
    use super::*;

    #[test]
    fn a_pairing_payload_is_drawn_as_a_terminal_qr_code() {
        let payload = "2@Jm8b7R0k3hG1b9yq2T3x,JYpX8s0v+Yh0n7Q2eXbYv1a2b3c4d5e6f7g8h9i0jk=,5cT3v2Q1lA==,aGVsbG8=";
        let drawn = render_qr(payload);
        let rows: Vec<&str> = drawn.lines().collect();
        // Two modules per row: a version-5+ code with its quiet zone is at least 20 rows of half blocks.
        assert!(rows.len() >= 20, "{drawn}");
        assert!(
            rows.iter()
                .all(|row| row.chars().count() == rows[0].chars().count())
        );
        assert!(drawn.contains('▀') || drawn.contains('▄'), "{drawn}");
    }

    #[test]
    fn code_mode_shows_the_code_and_every_step_says_what_happens() {
        use crate::backend::native::pair::Notice;
        use std::time::Duration;
        let code = describe(&Notice::Code {
            code: "ABCD-EFGH".into(),
            valid_for: Duration::from_secs(180),
        });
        assert_eq!(code[0], Line::Out("pair code: ABCD-EFGH".into()));
        let offline = describe(&Notice::OldDeviceNotLoggedOut {
            account: "15550000001@s.whatsapp.net".into(),
            why: "it did not connect to WhatsApp within 30 s".into(),
        });
        assert!(
            matches!(&offline[0], Line::Err(text) if text.contains("remove it there under Linked devices")),
            "{offline:?}"
        );
    }

    #[test]
    fn a_pair_code_phone_is_reduced_to_digits() {
        assert_eq!(phone_digits("+1 (555) 123-4567").unwrap(), "15551234567");
        assert!(phone_digits("555-CALL-NOW").is_err());
        assert!(phone_digits("123").is_err());
    }
}
