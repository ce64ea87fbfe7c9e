//! Progress on stderr: a live bar for a person at a terminal, and plain periodic lines for logs (cron,
//! CI), where a redrawn bar would be noise.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How often the plain lines come.
const PLAIN_EVERY: Duration = Duration::from_secs(5);

/// Rows done out of rows to do.
pub struct Progress {
    bar: ProgressBar,
    plain: Option<Instant>,
}

impl Progress {
    /// A bar when stderr is a terminal, otherwise a line every few seconds.
    pub fn stderr(total: u64) -> Self {
        if std::io::stderr().is_terminal() {
            let style = ProgressStyle::with_template(
                "{bar:40.cyan/blue} {pos}/{len} rows  {per_sec}  ETA {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar());
            let bar = ProgressBar::new(total).with_style(style);
            Self { bar, plain: None }
        } else {
            let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::hidden());
            Self {
                bar,
                plain: Some(Instant::now()),
            }
        }
    }

    /// Counts without showing anything (library callers, tests).
    pub fn hidden(total: u64) -> Self {
        Self {
            bar: ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::hidden()),
            plain: None,
        }
    }

    pub(super) fn inc(&mut self) {
        self.bar.inc(1);
        if let Some(last) = self.plain
            && last.elapsed() >= PLAIN_EVERY
        {
            self.plain = Some(Instant::now());
            self.line();
        }
    }

    pub(super) fn finish(&mut self) {
        if self.plain.is_some() {
            self.line();
        }
        self.bar.finish();
    }

    fn line(&self) {
        let done = self.bar.position();
        let total = self.bar.length().unwrap_or(done).max(1);
        eprintln!(
            "sync: {done}/{total} rows ({}%), {:.1} rows/s, about {}s left",
            done * 100 / total,
            self.bar.per_sec(),
            self.bar.eta().as_secs()
        );
    }
}
