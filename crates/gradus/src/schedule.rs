//! Learning-rate schedules.
//!
//! A [`Schedule`] is a plain function of the step, in the style of optax: [`Schedule::lr`]`(t)` is
//! the learning rate after the schedule has been advanced `t` times (so `lr(0)` is the rate of the
//! first optimizer step). Being functions, schedules hold no mutable state: saving one means
//! saving its step count ([`ScheduleState`]), and a restored run continues exactly.
//!
//! The kinds, with `torch.optim.lr_scheduler`'s option names and defaults:
//!
//! | name | PyTorch | options |
//! |---|---|---|
//! | `fixed` | (no scheduler) | |
//! | `constant` | `ConstantLR` | `factor`, `total_iters` |
//! | `step` | `StepLR` | `step_size`, `gamma` |
//! | `multi_step` | `MultiStepLR` | `milestones`, `gamma` |
//! | `exponential` | `ExponentialLR` | `gamma` |
//! | `inverse_time` | scikit-learn's `invscaling` | `decay`, `power` |
//! | `polynomial` | `PolynomialLR` | `total_iters`, `power` |
//! | `linear` | `LinearLR` | `start_factor`, `end_factor`, `total_iters` |
//! | `cosine` | `CosineAnnealingLR` | `T_max`, `eta_min` |
//! | `cosine_warm_restarts` | `CosineAnnealingWarmRestarts` | `T_0`, `T_mult`, `eta_min` |
//! | `one_cycle` | `OneCycleLR` | `max_lr`, `total_steps`, `pct_start`, `anneal_strategy`, ... |
//! | `cyclic` | `CyclicLR` | `base_lr`, `max_lr`, `step_size_up`, `step_size_down`, `mode`, `gamma`, ... |
//! | `sequential` | `SequentialLR` | `schedules`, `milestones` |
//! | `reduce_on_plateau` | `ReduceLROnPlateau` | `mode`, `factor`, `patience`, `threshold`, ... |
//!
//! Reduce-on-plateau is not a function of the step but a controller fed a metric
//! ([`ReduceOnPlateau::observe`]); [`LrSchedule`] holds either kind and [`Scheduler`] drives either
//! one through a training run. [`from_options`] builds any of them from a name and a JSON object
//! of options, as reference cases, configuration files and the command line name them.
//!
//! Values agree with PyTorch 2.x's schedulers advanced by `scheduler.step()` to within rounding
//! (PyTorch computes most of them recursively, gradus in closed form).

use std::fmt::Debug;

use serde::{Deserialize, Serialize};

use crate::error::{non_negative, ConfigError, StateError};

mod cosine;
mod cyclic;
mod decay;
mod plateau;
mod sequential;

pub use cosine::{Cosine, CosineConfig, CosineWarmRestarts, CosineWarmRestartsConfig};
pub use cyclic::{AnnealStrategy, CyclicConfig, CyclicLr, CyclicMode, OneCycle, OneCycleConfig};
pub use decay::{
    Constant, ConstantConfig, Exponential, ExponentialConfig, Fixed, FixedConfig, InverseTime, InverseTimeConfig,
    Linear, LinearConfig, MultiStep, MultiStepConfig, Polynomial, PolynomialConfig, StepConfig, StepDecay,
};
pub use plateau::{PlateauConfig, PlateauMode, PlateauState, ReduceOnPlateau, ThresholdMode};
pub use sequential::{Sequential, SequentialConfig};

/// A learning rate as a function of the step.
pub trait Schedule: Send + Sync + Debug {
    /// The schedule's name, as [`from_options`] spells it (`cosine`, `one_cycle`, ...).
    fn name(&self) -> &'static str;

    /// The learning rate after the schedule has been advanced `step` times from its start;
    /// `lr(0)` is the rate before any advance.
    fn lr(&self, step: u64) -> f64;

    /// The momentum (SGD's `momentum`, or β₁ of Adam-like optimizers) the schedule sets at
    /// `step`, for the schedules that cycle it (`one_cycle` and `cyclic` with
    /// `cycle_momentum: true`, PyTorch's default); `None` for every other schedule.
    fn momentum(&self, step: u64) -> Option<f64> {
        let _ = step;
        None
    }
}

/// A schedule's configuration: its name (`schedule`) and options (`options`), as the reference
/// cases and `sequential`'s `schedules` write it: `{"schedule": "cosine", "options": {"T_max": 25}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "schedule", content = "options", rename_all = "snake_case")]
pub enum ScheduleSpec {
    /// The base learning rate at every step.
    #[serde(alias = "none")]
    Fixed(FixedConfig),
    /// `ConstantLR`.
    Constant(ConstantConfig),
    /// `StepLR`.
    Step(StepConfig),
    /// `MultiStepLR`.
    #[serde(alias = "multistep")]
    MultiStep(MultiStepConfig),
    /// `ExponentialLR`.
    Exponential(ExponentialConfig),
    /// scikit-learn's `invscaling`.
    #[serde(alias = "invscaling")]
    InverseTime(InverseTimeConfig),
    /// `PolynomialLR`.
    Polynomial(PolynomialConfig),
    /// `LinearLR`.
    Linear(LinearConfig),
    /// `CosineAnnealingLR`.
    #[serde(alias = "cosine_annealing")]
    Cosine(CosineConfig),
    /// `CosineAnnealingWarmRestarts`.
    #[serde(alias = "cosine_restarts")]
    CosineWarmRestarts(CosineWarmRestartsConfig),
    /// `OneCycleLR`.
    #[serde(alias = "onecycle")]
    OneCycle(OneCycleConfig),
    /// `CyclicLR`.
    Cyclic(CyclicConfig),
    /// `SequentialLR`.
    Sequential(SequentialConfig),
    /// `ReduceLROnPlateau`.
    #[serde(alias = "plateau")]
    ReduceOnPlateau(PlateauConfig),
}

/// Every name [`from_options`] accepts, aliases included.
pub const SCHEDULE_NAMES: &[&str] = &[
    "fixed",
    "none",
    "constant",
    "step",
    "multi_step",
    "multistep",
    "exponential",
    "inverse_time",
    "invscaling",
    "polynomial",
    "linear",
    "cosine",
    "cosine_annealing",
    "cosine_warm_restarts",
    "cosine_restarts",
    "one_cycle",
    "onecycle",
    "cyclic",
    "sequential",
    "reduce_on_plateau",
    "plateau",
];

impl ScheduleSpec {
    /// Parses a schedule named `name` with PyTorch-style `options` (a JSON object, or `null` for
    /// none). Unknown names and unknown or mistyped options are errors; absent options take
    /// PyTorch's defaults. Values are checked later, by [`ScheduleSpec::build`].
    pub fn from_options(name: &str, options: &serde_json::Value) -> Result<Self, ConfigError> {
        if !SCHEDULE_NAMES.contains(&name) {
            return Err(ConfigError::new("schedule", name, "one of the schedules gradus knows"));
        }
        let options = if options.is_null() { serde_json::json!({}) } else { options.clone() };
        let tagged = serde_json::json!({ "schedule": name, "options": options });
        serde_json::from_value(tagged)
            .map_err(|e| ConfigError::new(format!("{name} options"), e, "options named as in torch.optim.lr_scheduler"))
    }

    /// The schedule's canonical name.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Fixed(_) => "fixed",
            Self::Constant(_) => "constant",
            Self::Step(_) => "step",
            Self::MultiStep(_) => "multi_step",
            Self::Exponential(_) => "exponential",
            Self::InverseTime(_) => "inverse_time",
            Self::Polynomial(_) => "polynomial",
            Self::Linear(_) => "linear",
            Self::Cosine(_) => "cosine",
            Self::CosineWarmRestarts(_) => "cosine_warm_restarts",
            Self::OneCycle(_) => "one_cycle",
            Self::Cyclic(_) => "cyclic",
            Self::Sequential(_) => "sequential",
            Self::ReduceOnPlateau(_) => "reduce_on_plateau",
        }
    }

    /// Validates the options and builds the schedule for an optimizer whose learning rate is
    /// `base_lr`.
    pub fn build(&self, base_lr: f64) -> Result<LrSchedule, ConfigError> {
        match self {
            Self::ReduceOnPlateau(config) => Ok(LrSchedule::Plateau(ReduceOnPlateau::new(base_lr, config.clone())?)),
            _ => Ok(LrSchedule::Function(self.build_function(base_lr)?)),
        }
    }

    /// Like [`ScheduleSpec::build`], for the schedules that are functions of the step; fails for
    /// `reduce_on_plateau`, which needs a metric.
    pub fn build_function(&self, base_lr: f64) -> Result<Box<dyn Schedule>, ConfigError> {
        Ok(match self {
            Self::Fixed(c) => Box::new(Fixed::new(base_lr, c.clone())?),
            Self::Constant(c) => Box::new(Constant::new(base_lr, c.clone())?),
            Self::Step(c) => Box::new(StepDecay::new(base_lr, c.clone())?),
            Self::MultiStep(c) => Box::new(MultiStep::new(base_lr, c.clone())?),
            Self::Exponential(c) => Box::new(Exponential::new(base_lr, c.clone())?),
            Self::InverseTime(c) => Box::new(InverseTime::new(base_lr, c.clone())?),
            Self::Polynomial(c) => Box::new(Polynomial::new(base_lr, c.clone())?),
            Self::Linear(c) => Box::new(Linear::new(base_lr, c.clone())?),
            Self::Cosine(c) => Box::new(Cosine::new(base_lr, c.clone())?),
            Self::CosineWarmRestarts(c) => Box::new(CosineWarmRestarts::new(base_lr, c.clone())?),
            Self::OneCycle(c) => Box::new(OneCycle::new(c.clone())?),
            Self::Cyclic(c) => Box::new(CyclicLr::new(base_lr, c.clone())?),
            Self::Sequential(c) => Box::new(Sequential::new(base_lr, c.clone())?),
            Self::ReduceOnPlateau(_) => {
                return Err(ConfigError::new(
                    "schedule",
                    "reduce_on_plateau",
                    "a schedule that is a function of the step (reduce_on_plateau is driven by a metric)",
                ))
            }
        })
    }
}

/// A built schedule: a function of the step, or the metric-driven plateau controller.
#[derive(Debug)]
pub enum LrSchedule {
    /// A [`Schedule`]: the learning rate is a function of the step.
    Function(Box<dyn Schedule>),
    /// [`ReduceOnPlateau`]: the learning rate follows a metric.
    Plateau(ReduceOnPlateau),
}

/// Builds the schedule named `name` with PyTorch-style `options` for an optimizer whose
/// learning rate is `base_lr`: parses them ([`ScheduleSpec::from_options`]), then validates them
/// ([`ScheduleSpec::build`]). Options that only concern momentum (`cycle_momentum`,
/// `base_momentum`, `max_momentum`) are accepted; see [`Schedule::momentum`].
pub fn from_options(name: &str, options: &serde_json::Value, base_lr: f64) -> Result<LrSchedule, ConfigError> {
    ScheduleSpec::from_options(name, options)?.build(base_lr)
}

/// A schedule's saved progress.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ScheduleState {
    /// A function of the step: the step count is all there is.
    Function {
        /// The schedule's name ([`Schedule::name`]).
        schedule: String,
        /// How many times it has been advanced.
        step: u64,
    },
    /// The plateau controller's counters and current learning rate.
    Plateau(PlateauState),
}

/// Drives an [`LrSchedule`] through a run: call [`Scheduler::advance`] after every optimizer
/// step and [`Scheduler::observe`] with each evaluated metric; set the optimizer's learning rate
/// to [`Scheduler::lr`] before each step.
///
/// Step schedules ignore metrics and the plateau controller ignores steps, so a training loop
/// can call both whatever the schedule is.
#[derive(Debug)]
pub struct Scheduler {
    schedule: LrSchedule,
    step: u64,
}

impl Scheduler {
    /// Starts `schedule` at step 0.
    pub fn new(schedule: LrSchedule) -> Self {
        Self { schedule, step: 0 }
    }

    /// Builds the schedule with [`from_options`] and starts it.
    pub fn from_options(name: &str, options: &serde_json::Value, base_lr: f64) -> Result<Self, ConfigError> {
        Ok(Self::new(from_options(name, options, base_lr)?))
    }

    /// The schedule being driven.
    pub fn schedule(&self) -> &LrSchedule {
        &self.schedule
    }

    /// The learning rate for the next optimizer step.
    pub fn lr(&self) -> f64 {
        match &self.schedule {
            LrSchedule::Function(s) => s.lr(self.step),
            LrSchedule::Plateau(p) => p.lr(),
        }
    }

    /// The momentum for the next optimizer step, for schedules that cycle it.
    pub fn momentum(&self) -> Option<f64> {
        match &self.schedule {
            LrSchedule::Function(s) => s.momentum(self.step),
            LrSchedule::Plateau(_) => None,
        }
    }

    /// Advances a step schedule by one step and returns the new learning rate (the plateau
    /// controller is left as it is).
    pub fn advance(&mut self) -> f64 {
        if let LrSchedule::Function(_) = self.schedule {
            self.step = self.step.saturating_add(1);
        }
        self.lr()
    }

    /// Feeds a metric to the plateau controller and returns the new learning rate (step
    /// schedules are left as they are).
    pub fn observe(&mut self, metric: f64) -> f64 {
        if let LrSchedule::Plateau(p) = &mut self.schedule {
            p.observe(metric);
        }
        self.lr()
    }

    /// How many times a step schedule has been advanced (0 for the plateau controller; see
    /// [`ReduceOnPlateau::epochs`]).
    pub fn steps(&self) -> u64 {
        self.step
    }

    /// A snapshot of the progress.
    pub fn state(&self) -> ScheduleState {
        match &self.schedule {
            LrSchedule::Function(s) => ScheduleState::Function { schedule: s.name().to_string(), step: self.step },
            LrSchedule::Plateau(p) => ScheduleState::Plateau(p.state()),
        }
    }

    /// Restores a snapshot taken by [`Scheduler::state`] of a schedule of the same kind.
    pub fn load_state(&mut self, state: &ScheduleState) -> Result<(), StateError> {
        match (&mut self.schedule, state) {
            (LrSchedule::Function(s), ScheduleState::Function { schedule, step }) => {
                if schedule != s.name() {
                    return Err(StateError::WrongKind { expected: s.name().to_string(), found: schedule.clone() });
                }
                self.step = *step;
                Ok(())
            }
            (LrSchedule::Plateau(p), ScheduleState::Plateau(saved)) => p.load_state(saved),
            (LrSchedule::Function(s), ScheduleState::Plateau(_)) => {
                Err(StateError::WrongKind { expected: s.name().to_string(), found: "reduce_on_plateau".to_string() })
            }
            (LrSchedule::Plateau(_), ScheduleState::Function { schedule, .. }) => {
                Err(StateError::WrongKind { expected: "reduce_on_plateau".to_string(), found: schedule.clone() })
            }
        }
    }
}

/// The optimizer's learning rate every schedule starts from must be finite and `>= 0`.
fn check_base_lr(base_lr: f64) -> Result<(), ConfigError> {
    non_negative("lr", base_lr)
}

/// `value` must be at least 1 (step counts and periods).
fn at_least_one(option: &'static str, value: u64) -> Result<(), ConfigError> {
    if value >= 1 {
        Ok(())
    } else {
        Err(ConfigError::new(option, value, "an integer >= 1"))
    }
}

/// Non-finite `f64` values (a plateau controller's initial `best` is ±∞) written as the strings
/// `"inf"`, `"-inf"` and `"nan"`, since JSON has no such numbers.
pub(crate) mod non_finite_f64 {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(value: &f64, serializer: S) -> Result<S::Ok, S::Error> {
        if value.is_finite() {
            value.serialize(serializer)
        } else if value.is_nan() {
            "nan".serialize(serializer)
        } else if *value > 0.0 {
            "inf".serialize(serializer)
        } else {
            "-inf".serialize(serializer)
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<f64, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Repr {
            Number(f64),
            Text(String),
        }
        match Repr::deserialize(deserializer)? {
            Repr::Number(v) => Ok(v),
            Repr::Text(t) => match t.as_str() {
                "inf" => Ok(f64::INFINITY),
                "-inf" => Ok(f64::NEG_INFINITY),
                "nan" => Ok(f64::NAN),
                other => Err(serde::de::Error::custom(format!(
                    "expected a number, \"inf\", \"-inf\" or \"nan\", got {other:?}"
                ))),
            },
        }
    }
}
