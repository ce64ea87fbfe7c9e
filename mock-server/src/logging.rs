//! The binary's logs: `RUST_LOG` filter (default `info`), written to stdout, with ANSI colours
//! only when stdout is a terminal and `NO_COLOR` is not set (no escape codes in files, pipes or
//! container logs).

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// Whether log lines get ANSI colours.
pub fn use_colour(stdout_is_terminal: bool, no_color: Option<&str>) -> bool {
    stdout_is_terminal && no_color.is_none_or(str::is_empty)
}

/// Installs the global subscriber.
pub fn init() {
    let no_color = std::env::var("NO_COLOR").ok();
    let colour = use_colour(std::io::stdout().is_terminal(), no_color.as_deref());
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_ansi(colour)
        .with_writer(std::io::stdout)
        .init();
}

#[cfg(test)]
mod tests {
    use super::use_colour;

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        assert!(use_colour(true, None));
        assert!(use_colour(true, Some("")));
        assert!(!use_colour(true, Some("1")));
        assert!(!use_colour(false, None));
    }
}
