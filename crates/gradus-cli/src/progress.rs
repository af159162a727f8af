//! What a run shows while it trains: a progress bar on stderr (only when stderr is a terminal
//! and not `--quiet`), one JSON object per epoch on stdout with `--json`, and the engine's
//! warnings.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use gradus::train::{EpochRecord, Observer, StepInfo, Warning};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Whether progress bars may be drawn: stderr is a terminal and output is not quieted.
pub fn bars_enabled(quiet: bool) -> bool {
    !quiet && std::io::stderr().is_terminal()
}

/// A progress bar over `len` units (epochs), hidden unless `enabled`.
pub fn bar(len: u64, enabled: bool) -> ProgressBar {
    if !enabled {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
    let style = ProgressStyle::with_template(
        "{prefix}[{elapsed_precise}] {bar:30.cyan/blue} {pos}/{len} epochs {msg} (ETA {eta})",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .progress_chars("=> ");
    bar.set_style(style);
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

/// A progress bar over `len` mini-batches (the learning-rate range test), hidden unless `enabled`.
pub fn step_bar(len: u64, enabled: bool) -> ProgressBar {
    if !enabled {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
    let style = ProgressStyle::with_template(
        "[{elapsed_precise}] {bar:30.cyan/blue} {pos}/{len} mini-batches {msg} ({per_sec}, ETA {eta})",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .progress_chars("=> ");
    bar.set_style(style);
    bar
}

/// Observes one training run.
pub struct RunObserver<'a> {
    /// The bar (shared across runs in a comparison).
    pub bar: &'a ProgressBar,
    /// Print each epoch as JSON on stdout.
    pub json: bool,
    /// Extra fields for each JSON line (`fold`, `run`).
    pub tags: serde_json::Map<String, serde_json::Value>,
    /// Print warnings on stderr.
    pub warnings: bool,
    /// The primary metric shown on the bar.
    pub metric: &'static str,
}

impl Observer for RunObserver<'_> {
    fn on_step(&mut self, info: &StepInfo) -> bool {
        if !self.bar.is_hidden() && (info.step.is_multiple_of(8) || info.steps_per_epoch < 8) {
            self.bar.set_message(format!("epoch {} loss {:.4}", info.epoch, info.loss));
        }
        true
    }

    fn on_epoch(&mut self, record: &EpochRecord) -> bool {
        self.bar.inc(1);
        let metric = record.validation.get(self.metric).or_else(|| record.train.get(self.metric));
        let loss = record.train.get("loss").copied().unwrap_or(f64::NAN);
        self.bar.set_message(match metric {
            Some(m) => format!("loss {loss:.4} {} {m:.4}", self.metric),
            None => format!("loss {loss:.4}"),
        });
        if self.json {
            let mut value = serde_json::to_value(record).unwrap_or_default();
            if let Some(object) = value.as_object_mut() {
                for (k, v) in &self.tags {
                    object.insert(k.clone(), v.clone());
                }
            }
            let line = serde_json::to_string(&value).unwrap_or_default();
            self.bar.suspend(|| {
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "{line}");
                let _ = out.flush();
            });
        }
        true
    }

    fn on_warning(&mut self, warning: &Warning) {
        if self.warnings {
            self.bar.suspend(|| eprintln!("warning: epoch {}: {}", warning.epoch, warning.message));
        }
    }
}
