//! Schedules one after another: warmup, then anything.

use serde::{Deserialize, Serialize};

use super::{Schedule, ScheduleSpec};
use crate::error::ConfigError;

/// Options of [`Sequential`], named as `torch.optim.lr_scheduler.SequentialLR`'s.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SequentialConfig {
    /// The schedules, in order (at least one; `reduce_on_plateau` is not allowed).
    pub schedules: Vec<ScheduleSpec>,
    /// Steps at which each schedule after the first takes over: one fewer than `schedules`,
    /// each `>= 1`, non-decreasing.
    pub milestones: Vec<u64>,
}

/// `SequentialLR`: schedule `i` runs from milestone `i − 1` (step 0 for the first) and starts
/// afresh there, from its own step 0.
///
/// With milestones `m₁ ≤ … ≤ m_k`, `i = |{j : m_j ≤ t}|` and `m₀ = 0`:
///
/// ```text
/// lr(t) = schedule_i.lr(t − m_i)
/// ```
///
/// Every schedule starts from the same base learning rate, the optimizer's, as in PyTorch (which
/// restarts schedule `i` with `step(0)` at its milestone). The usual use is a `linear` warmup
/// followed by a decay with `milestones: [warmup_steps]`.
#[derive(Debug)]
pub struct Sequential {
    schedules: Vec<Box<dyn Schedule>>,
    milestones: Vec<u64>,
}

impl Sequential {
    /// Validates `config` (and every schedule in it) and builds the schedule.
    pub fn new(base_lr: f64, config: SequentialConfig) -> Result<Self, ConfigError> {
        if config.schedules.is_empty() {
            return Err(ConfigError::new("schedules", "[]", "at least one schedule"));
        }
        if config.milestones.len() + 1 != config.schedules.len() {
            return Err(ConfigError::new(
                "milestones",
                format!("{:?}", config.milestones),
                "one milestone fewer than there are schedules",
            ));
        }
        if config.milestones.first() == Some(&0) || config.milestones.windows(2).any(|w| w[0] > w[1]) {
            return Err(ConfigError::new(
                "milestones",
                format!("{:?}", config.milestones),
                "non-decreasing steps, each >= 1",
            ));
        }
        let schedules = config
            .schedules
            .iter()
            .map(|spec| match spec {
                ScheduleSpec::ReduceOnPlateau(_) => Err(ConfigError::new(
                    "schedules",
                    "reduce_on_plateau",
                    "schedules that are functions of the step (reduce_on_plateau is driven by a metric)",
                )),
                _ => spec.build_function(base_lr),
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { schedules, milestones: config.milestones })
    }
}

impl Sequential {
    /// The schedule in charge at `step` and the step it is at.
    fn locate(&self, step: u64) -> (&dyn Schedule, u64) {
        let index = self.milestones.partition_point(|&m| m <= step);
        let start = if index == 0 { 0 } else { self.milestones[index - 1] };
        (self.schedules[index].as_ref(), step - start)
    }
}

impl Schedule for Sequential {
    fn name(&self) -> &'static str {
        "sequential"
    }

    fn lr(&self, step: u64) -> f64 {
        let (schedule, local) = self.locate(step);
        schedule.lr(local)
    }

    fn momentum(&self, step: u64) -> Option<f64> {
        let (schedule, local) = self.locate(step);
        schedule.momentum(local)
    }
}
