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
    /// Replace a session that is already paired (its keys are deleted).
    #[arg(long)]
    force: bool,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 180)]
    timeout_s: u64,
}

#[cfg(feature = "native")]
pub async fn pair(settings: &Settings, args: PairArgs) -> anyhow::Result<()> {
    use crate::backend::native::pair::{self, PairOptions, PairPrompt};
    use crate::protocol::DeviceId;

    let device = DeviceId::parse(args.device.as_str()).map_err(anyhow::Error::msg)?;
    let phone = args.phone.as_deref().map(phone_digits).transpose()?;
    let options = PairOptions {
        device: device.clone(),
        phone,
        force: args.force,
        timeout: std::time::Duration::from_secs(args.timeout_s),
    };
    eprintln!(
        "pairing device {} (store under {}); WhatsApp on the phone → Settings → Linked devices",
        device.as_str(),
        settings.native.sessions_dir.display()
    );
    let paired = pair::pair(
        &settings.native.sessions_dir,
        options,
        |prompt| match prompt {
            PairPrompt::Qr { code, valid_for } => {
                println!("{}", render_qr(&code));
                eprintln!(
                    "scan this code within {} s (a new one follows)",
                    valid_for.as_secs()
                );
            }
            PairPrompt::Code { code, valid_for } => {
                println!("pair code: {code}");
                eprintln!(
                    "→ Link a device → Link with phone number instead; enter the code within {} s",
                    valid_for.as_secs()
                );
            }
        },
    )
    .await?;
    println!(
        "paired device {} with account {}",
        device.as_str(),
        paired.account
    );
    Ok(())
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
    fn a_pair_code_phone_is_reduced_to_digits() {
        assert_eq!(phone_digits("+1 (555) 123-4567").unwrap(), "15551234567");
        assert!(phone_digits("555-CALL-NOW").is_err());
        assert!(phone_digits("123").is_err());
    }
}
