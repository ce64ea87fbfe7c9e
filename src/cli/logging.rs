use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::settings::{LogFormat, LogSettings};

/// lapin's lines the worker says better itself, left out unless `log.level` names lapin:
/// - every message the broker returns (a mandatory publish nobody could take, such as a result for a reply
///   queue that is gone) at WARN, body and all as a decimal byte array, one entry of many lines per job;
///   the worker logs it once, with the job_id;
/// - a lost connection, at ERROR from its I/O loop and again from its channel registry, before the worker's
///   own WARN that names the cause and says it reconnects: an ordinary broker restart would read as three
///   errors.
const LAPIN_SAID_BY_THE_WORKER: &str =
    "lapin::returned_messages=error,lapin::io_loop=off,lapin::channels=off";

/// `log.level` with lapin's duplicates left out, unless the level says something of lapin.
pub(crate) fn filter_directives(level: &str) -> String {
    if level.contains("lapin") {
        level.to_string()
    } else {
        format!("{level},{LAPIN_SAID_BY_THE_WORKER}")
    }
}

/// Text on a terminal, JSON for shippers. `RUST_LOG` overrides `log.level`.
pub fn init(settings: &LogSettings) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(filter_directives(&settings.level)))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        // Colour only for a person at a terminal, and never under NO_COLOR (https://no-color.org).
        .with_ansi(std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none())
        .with_writer(std::io::stderr);
    let _ = match settings.format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            // A job's lines carry its span's fields (job_id, kind, device_id) under "span" and "spans",
            // so a shipper can search by job.
            .with_current_span(true)
            .with_span_list(true)
            .try_init(),
    };
}

/// For one-shot commands whose stdout is the output: only warnings, on stderr. lapin is silent: it logs
/// an ERROR for every channel a missing queue closes (which `status` and `enqueue` ask about on purpose),
/// and the command reports its own failures once.
pub fn init_quiet(settings: &LogSettings) {
    init(&LogSettings {
        level: "warn,lapin=off".into(),
        ..settings.clone()
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn returned_messages_are_quiet_unless_lapin_is_asked_for() {
        assert_eq!(
            filter_directives("info"),
            "info,lapin::returned_messages=error,lapin::io_loop=off,lapin::channels=off"
        );
        assert_eq!(filter_directives("lapin=debug"), "lapin=debug");
        assert!(EnvFilter::try_new(filter_directives("avatar_worker=debug,warn")).is_ok());
    }
}
