//! The command line's one error type: a message (one or two lines naming the file, line, column,
//! option or value at fault and what was expected), an optional hint, and the exit code.

use std::fmt;

use gradus::data::DataError;
use gradus::saved::SavedModelError;
use gradus::train::TrainError;
use gradus::ConfigError;

/// Exit code of bad usage or bad input.
pub const EXIT_USAGE: i32 = 2;
/// Exit code of a training failure (divergence).
pub const EXIT_TRAINING: i32 = 1;

/// A failure reported to the user.
#[derive(Debug)]
pub struct CliError {
    /// The process exit code.
    pub code: i32,
    /// What went wrong.
    pub message: String,
    /// What to try, printed on a second line.
    pub hint: Option<String>,
}

impl CliError {
    /// Bad usage or bad input (exit code 2).
    pub fn usage(message: impl Into<String>) -> Self {
        Self { code: EXIT_USAGE, message: message.into(), hint: None }
    }

    /// A training failure (exit code 1).
    pub fn training(message: impl Into<String>) -> Self {
        Self { code: EXIT_TRAINING, message: message.into(), hint: None }
    }

    /// Adds a hint line.
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// An invalid value for command-line option `flag`.
    pub fn flag(flag: &str, value: impl fmt::Display, expected: &str) -> Self {
        let shown = gradus::data::quote_cell(&value.to_string());
        let shown = if shown.is_empty() { "''".to_string() } else { shown };
        Self::usage(format!("invalid value {shown} for {flag}: expected {expected}"))
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, "\nhint: {hint}")?;
        }
        Ok(())
    }
}

/// `text` made safe to print: control characters but line breaks escaped, and each line cut at
/// [`MAX_LINE`] characters (`…` and its length follow). The last guard of every message, whatever
/// user text a message quotes without [`gradus::data::quote_cell`].
pub fn printable(text: &str) -> String {
    text.split('\n')
        .map(|line| {
            let mut out = String::new();
            for (i, c) in line.chars().enumerate() {
                if i >= MAX_LINE {
                    out.push_str(&format!("… ({} bytes)", line.len()));
                    break;
                }
                if c.is_control() {
                    out.extend(c.escape_debug());
                } else {
                    out.push(c);
                }
            }
            out
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The longest line of a message, in characters.
pub const MAX_LINE: usize = 2000;

/// The command-line flag for a library option name (`weight_decay` → `--weight-decay`).
pub fn flag_for(option: &str) -> String {
    let flag = match option {
        "betas" => "--beta1/--beta2",
        "T_max" => "--epochs (the cosine period)",
        "T_0" => "--epochs (the restart period)",
        "patience" => "--plateau-patience",
        "factor" => "--gamma",
        "early_stopping.patience" => "--early-stop",
        "test_fraction" => "--val-fraction",
        "k" => "--folds",
        "step_size_up" => "--batch-size (the cyclic half period)",
        "total_steps" | "total_iters" => "--epochs",
        // A layer's option, e.g. `conv2d.kernel_size`.
        other if other.contains('.') => return format!("--layers ({other})"),
        other => return format!("--{}", other.replace('_', "-")),
    };
    flag.to_string()
}

impl From<ConfigError> for CliError {
    fn from(e: ConfigError) -> Self {
        // Options of `from_options` come back as "<name> options" with a serde message.
        if e.option.ends_with(" options") {
            return Self::usage(format!("{}: {}", e.option, e.value));
        }
        Self::usage(format!("invalid value {} for {}: expected {}", e.value, flag_for(&e.option), e.expected))
    }
}

impl From<DataError> for CliError {
    fn from(e: DataError) -> Self {
        match e {
            DataError::Config(c) => c.into(),
            other => Self::usage(other.to_string()),
        }
    }
}

impl From<SavedModelError> for CliError {
    fn from(e: SavedModelError) -> Self {
        Self::usage(e.to_string())
    }
}

impl From<TrainError> for CliError {
    fn from(e: TrainError) -> Self {
        match e {
            TrainError::Diverged { epoch, step, loss_before, loss_after, hint } => Self::training(format!(
                "training diverged at epoch {epoch}, step {step}: the loss went from {loss_before:.6} to {loss_after}"
            ))
            .hint(hint.replace("gradient clipping (clip_norm)", "gradient clipping (--clip-norm)")),
            TrainError::Config(c) => c.into(),
            TrainError::Data(message) => Self::usage(message),
            TrainError::Checkpoint { path, message } => Self::usage(format!("checkpoint `{path}`: {message}")),
            TrainError::Memory(e) => Self::usage(e.to_string()),
        }
    }
}
