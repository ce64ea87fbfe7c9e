use clap::Subcommand;

use crate::client::{DeadLetterInfo, ReplayOptions, ReplayReport};
use crate::settings::Settings;

#[derive(Debug, Subcommand)]
pub enum DeadCommand {
    /// Move dead letters back to the job queue they came from, attempts reset. Looks at no more than
    /// the queue held when it started, so letters that fail again at once are not replayed twice.
    Replay {
        /// Look at this many dead letters at most.
        #[arg(long)]
        limit: Option<usize>,
        /// Replay malformed jobs too (reason invalid_job or invalid_phone), which can never succeed.
        #[arg(long)]
        include_invalid: bool,
        /// Print the report as one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Show the dead letters, oldest first: job_id, kind, device, reason, last error, attempts, age.
    /// They stay in the queue, in their order.
    List {
        /// Show this many at most.
        #[arg(long)]
        limit: Option<usize>,
        /// One JSON object per letter instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Delete dead letters for good: all of them, or those of one reason.
    Purge {
        /// Only letters with this x-avatar-reason (invalid_job, invalid_phone, retries_exhausted,
        /// redelivery_limit, result_unroutable).
        #[arg(long)]
        reason: Option<String>,
        /// Confirm the deletion; without it nothing is deleted.
        #[arg(long)]
        yes: bool,
    },
}

pub async fn dead(settings: &Settings, command: DeadCommand) -> anyhow::Result<()> {
    let client = super::connect_client(settings).await?;
    match command {
        DeadCommand::Replay {
            limit,
            include_invalid,
            json,
        } => {
            let report = client
                .replay_dead(ReplayOptions {
                    limit,
                    include_invalid,
                })
                .await?;
            if json {
                println!("{}", serde_json::to_string(&report)?);
            } else {
                print!("{}", replay_text(&report, &client.names().results));
            }
        }
        DeadCommand::List { limit, json } => {
            let letters = client.dead_letters(limit).await?;
            if json {
                for letter in &letters {
                    println!("{}", serde_json::to_string(letter)?);
                }
            } else {
                print!("{}", list_text(&letters, now_ms()));
            }
        }
        DeadCommand::Purge { reason, yes } => {
            let what = reason
                .as_deref()
                .map_or("every dead letter".to_string(), |r| {
                    format!("the dead letters with reason {r}")
                });
            if !yes {
                anyhow::bail!(
                    "this deletes {what} in {} for good; add --yes to confirm",
                    client.names().dead
                );
            }
            let report = client.purge_dead(reason.as_deref()).await?;
            println!(
                "purged {} dead letter(s) from {}; {} kept",
                report.purged_total(),
                client.names().dead,
                report.kept
            );
        }
    }
    Ok(())
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// `12 s`, `5 min`, `3 h`, `2 d`.
fn age(ms: u64) -> String {
    let s = ms / 1000;
    match s {
        0..120 => format!("{s} s"),
        120..7_200 => format!("{} min", s / 60),
        7_200..172_800 => format!("{} h", s / 3600),
        _ => format!("{} d", s / 86_400),
    }
}

/// At most `width` characters, with `…` when cut.
fn cut(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_string();
    }
    let mut out: String = text.chars().take(width.saturating_sub(1)).collect();
    out.push('…');
    out
}

fn list_text(letters: &[DeadLetterInfo], now_ms: u64) -> String {
    let mut out = format!(
        "{:<36} {:<6} {:<16} {:<18} {:>8} {:>7}  {}\n",
        "job_id", "kind", "device", "reason", "attempts", "age", "last error"
    );
    for letter in letters {
        let error = match (&letter.error_code, &letter.error_message) {
            (Some(code), Some(message)) => format!("{code}: {message}"),
            (Some(code), None) => code.clone(),
            (None, Some(message)) => message.clone(),
            (None, None) => "-".into(),
        };
        out += &format!(
            "{:<36} {:<6} {:<16} {:<18} {:>8} {:>7}  {}\n",
            cut(&letter.job_id, 36),
            letter.kind.map_or("-", |k| k.as_str()),
            cut(letter.device.as_deref().unwrap_or("-"), 16),
            letter.reason.as_deref().unwrap_or("-"),
            letter.attempts,
            letter
                .dead_at_ms
                .map_or("-".into(), |at| age(now_ms.saturating_sub(at))),
            cut(&error, 80),
        );
    }
    out += &format!("{} dead letter(s)\n", letters.len());
    out
}

/// The report for a person: what was replayed, what was left and why.
fn replay_text(report: &ReplayReport, results: &str) -> String {
    let mut out = format!(
        "replayed {} of {} dead letters ({} were in the queue at the start)\n",
        report.replayed, report.examined, report.found
    );
    if report.to_results > 0 {
        out += &format!(
            "  {} of them answer on {results}: their reply_to queue is gone\n",
            report.to_results
        );
    }
    for (reason, count) in &report.skipped {
        let why = match reason.as_str() {
            "no_source_queue" => "not from a job queue of this topology",
            _ => "a malformed job can never succeed; --include-invalid replays it",
        };
        out += &format!("skipped {count} {reason}: {why}\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_and_cut_errors_read_well() {
        assert_eq!(age(59_000), "59 s");
        assert_eq!(age(600_000), "10 min");
        assert_eq!(age(3 * 86_400_000), "3 d");
        assert_eq!(cut("abcdef", 4), "abc…");
        let letter = DeadLetterInfo {
            job_id: "j1".into(),
            kind: Some(crate::protocol::JobKind::Fetch),
            device: Some("dev-a".into()),
            reason: Some("retries_exhausted".into()),
            error_code: Some("rate_limited".into()),
            error_message: Some("slow down".into()),
            attempts: 3,
            dead_at_ms: Some(1_000),
        };
        let text = list_text(&[letter], 61_000);
        assert!(text.contains("j1"), "{text}");
        assert!(text.contains("rate_limited: slow down"), "{text}");
        assert!(text.contains("60 s"), "{text}");
        assert!(text.ends_with("1 dead letter(s)\n"), "{text}");
    }

    #[test]
    fn the_report_says_what_was_left_and_why() {
        let report = ReplayReport {
            found: 5,
            examined: 5,
            replayed: 2,
            to_results: 1,
            skipped: [("invalid_job".to_string(), 3)].into_iter().collect(),
        };
        let text = replay_text(&report, "avatar.results");
        assert!(text.contains("replayed 2 of 5"), "{text}");
        assert!(
            text.contains("1 of them answer on avatar.results"),
            "{text}"
        );
        assert!(text.contains("skipped 3 invalid_job"), "{text}");
        assert!(text.contains("--include-invalid"), "{text}");
    }
}
