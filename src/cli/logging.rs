use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::settings::{LogFormat, LogSettings};

/// Text on a terminal, JSON for shippers. `RUST_LOG` overrides `log.level`.
pub fn init(settings: &LogSettings) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&settings.level).map(quiet_returns))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
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

/// lapin logs every message the broker returns (a fetch sent to a lane not created yet, a result for a
/// `reply_to` gone) at WARN with its whole body as bytes; the worker says what happened in one line itself.
fn quiet_returns(filter: EnvFilter) -> EnvFilter {
    match "lapin::returned_messages=error".parse() {
        Ok(directive) => filter.add_directive(directive),
        Err(_) => filter,
    }
}

/// For one-shot commands whose stdout is the output: only warnings, on stderr.
pub fn init_quiet(settings: &LogSettings) {
    init(&LogSettings {
        level: "warn".into(),
        ..settings.clone()
    });
}
