use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::settings::{LogFormat, LogSettings};

/// Text on a terminal, JSON for shippers. `RUST_LOG` overrides `log.level`.
pub fn init(settings: &LogSettings) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&settings.level))
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

/// For one-shot commands whose stdout is the output: only warnings, on stderr.
pub fn init_quiet(settings: &LogSettings) {
    init(&LogSettings {
        level: "warn".into(),
        ..settings.clone()
    });
}
