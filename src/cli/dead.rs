use clap::Subcommand;

use crate::client::{ReplayOptions, ReplayReport};
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
    }
    Ok(())
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
