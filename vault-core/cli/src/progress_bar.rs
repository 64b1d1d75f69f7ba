//! A progress bar on standard error for long backup operations, shown only on a terminal and
//! never with `--json` (the output stays machine-readable).

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Draws a [`vault_core::Progress`] as a bar (known total) or a byte counter (unknown total).
pub(crate) struct TerminalProgress {
    bar: ProgressBar,
}

impl TerminalProgress {
    /// A bar labelled `what`, or `None` when standard error is not a terminal or `json` is set.
    pub(crate) fn new(what: &'static str, json: bool) -> Option<Self> {
        if json || !std::io::stderr().is_terminal() {
            return None;
        }
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        bar.set_message(what);
        Some(Self { bar })
    }

    fn style(&self, total: Option<u64>) {
        let template = match total {
            Some(_) => "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
            None => "{spinner} {msg} {bytes} {bytes_per_sec}",
        };
        if let Ok(style) = ProgressStyle::with_template(template) {
            self.bar.set_style(style.progress_chars("=> "));
        }
    }
}

impl vault_core::Progress for TerminalProgress {
    fn advance(&self, done: u64, total: Option<u64>) -> bool {
        if self.bar.length() != total {
            self.style(total);
            match total {
                Some(total) => self.bar.set_length(total),
                None => self.bar.unset_length(),
            }
        }
        self.bar.set_position(done);
        true
    }
}

impl Drop for TerminalProgress {
    fn drop(&mut self) {
        self.bar.finish_and_clear();
    }
}
