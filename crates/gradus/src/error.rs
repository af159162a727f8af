//! Typed errors. Each kind names what was wrong and what was expected, so that the command line can
//! print it as it is.

use thiserror::Error;

/// An invalid hyperparameter, found once when an optimizer, schedule or transform is built.
///
/// The message names the option (PyTorch's name for it), the value given and what was expected,
/// e.g. ``invalid value -0.1 for `lr`: expected a finite number >= 0``.
#[derive(Debug, Clone, PartialEq, Error)]
#[error("invalid value {value} for `{option}`: expected {expected}")]
pub struct ConfigError {
    /// The option's name, as PyTorch spells it (`lr`, `betas`, `momentum`, ...).
    pub option: String,
    /// The value that was given, printed.
    pub value: String,
    /// What the option accepts.
    pub expected: &'static str,
}

impl ConfigError {
    /// Builds an error for `option` holding `value`, which should have been `expected`.
    pub fn new(option: impl Into<String>, value: impl std::fmt::Display, expected: &'static str) -> Self {
        Self { option: option.into(), value: value.to_string(), expected }
    }
}

/// Restoring saved optimizer or schedule state failed: the state does not belong to this
/// optimizer or does not fit the parameters.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum StateError {
    /// The state was saved by another kind of optimizer or schedule.
    #[error("state was saved by `{found}`, cannot load it into `{expected}`")]
    WrongKind {
        /// The kind being restored.
        expected: String,
        /// The kind named in the saved state.
        found: String,
    },
    /// A buffer is missing or has the wrong length.
    #[error("state buffer `{name}` {problem}")]
    BadBuffer {
        /// The buffer's name (`exp_avg`, `momentum_buffer`, ...).
        name: String,
        /// What is wrong with it.
        problem: String,
    },
}

/// Checks shared by every configuration: `value` must be finite and `>= 0`.
pub(crate) fn non_negative(option: &'static str, value: f64) -> Result<(), ConfigError> {
    if value.is_finite() && value >= 0.0 {
        Ok(())
    } else {
        Err(ConfigError::new(option, value, "a finite number >= 0"))
    }
}

/// `value` must be finite and `> 0`.
pub(crate) fn positive(option: &'static str, value: f64) -> Result<(), ConfigError> {
    if value.is_finite() && value > 0.0 {
        Ok(())
    } else {
        Err(ConfigError::new(option, value, "a finite number > 0"))
    }
}

/// `value` must lie in `[0, 1)`, as every decay rate (`betas`, `alpha`, `rho`, `momentum`) must.
pub(crate) fn unit_interval(option: &'static str, value: f64) -> Result<(), ConfigError> {
    if (0.0..1.0).contains(&value) {
        Ok(())
    } else {
        Err(ConfigError::new(option, value, "a number in [0, 1)"))
    }
}

/// `value` must lie in `[0, 1]`.
pub(crate) fn closed_unit_interval(option: &'static str, value: f64) -> Result<(), ConfigError> {
    if (0.0..=1.0).contains(&value) {
        Ok(())
    } else {
        Err(ConfigError::new(option, value, "a number in [0, 1]"))
    }
}
