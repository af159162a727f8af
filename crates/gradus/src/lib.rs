//! # gradus
//!
//! Gradient descent in all its forms: every classic update rule, numerically identical to
//! PyTorch where PyTorch has it, learning-rate schedules, gradient transforms, test surfaces,
//! models and a training engine.
//!
//! The pieces follow optax and argmin: an [`optim::Optimizer`] is a small update rule with
//! explicit state over a flat parameter buffer ([`params`]); schedules are plain functions of the
//! step ([`schedule`]); gradient transforms (clipping, accumulation, non-finite skipping,
//! parameter averaging) compose around any optimizer ([`transform`]).

#![warn(missing_docs)]

pub mod buffer;
pub mod data;
pub mod error;
pub mod io;
pub mod linear;
pub mod loss;
pub mod lr_find;
pub mod memory;
pub mod mf;
pub mod mlp;
pub mod model;
pub mod nn;
pub mod optim;
pub mod parallel;
pub mod params;
pub mod saved;
pub mod schedule;
pub mod surfaces;
pub mod train;
pub mod transform;

pub use error::{ConfigError, StateError};
pub use optim::{Optimizer, OptimizerState};
pub use params::{ParamGroup, ParamGroups, ParamLayout, Segment};
