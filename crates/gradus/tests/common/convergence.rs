//! Documented settings with which every first-order optimizer converges on the sphere and on the
//! 2-D Rosenbrock function from (−1.5, 2), shared by `tests/convergence.rs` and
//! `examples/rosenbrock.rs`.

#![allow(dead_code)]

use gradus::surfaces::Surface;

/// One optimizer with its options (PyTorch names, JSON) and a step budget.
pub struct Setting {
    /// Optimizer name for `gradus::optim::from_options`.
    pub name: &'static str,
    /// Options, as JSON.
    pub options: &'static str,
    /// Step budget.
    pub max_steps: usize,
}

/// Rosenbrock counts as solved when every coordinate is within this of 1.
pub const ROSENBROCK_TOL: f64 = 1e-3;

/// Settings for the 2-D Rosenbrock function from (−1.5, 2), the same for the sphere. Notes: RAdam's
/// first, unrectified steps are plain momentum steps of size lr·m̂, which blow up at lr 0.02 on
/// Rosenbrock's steep walls; Adadelta oscillates across the valley unless lr ≤ 0.01; Lion's steps
/// have a fixed size lr, so it ends within about lr of the minimum.
pub const ROSENBROCK: &[Setting] = &[
    Setting { name: "sgd", options: r#"{"lr": 1e-3}"#, max_steps: 100_000 },
    Setting { name: "sgd", options: r#"{"lr": 2e-4, "momentum": 0.9}"#, max_steps: 100_000 },
    Setting { name: "sgd", options: r#"{"lr": 2e-4, "momentum": 0.9, "nesterov": true}"#, max_steps: 100_000 },
    Setting { name: "adagrad", options: r#"{"lr": 0.5}"#, max_steps: 100_000 },
    Setting { name: "rmsprop", options: r#"{"lr": 5e-4}"#, max_steps: 100_000 },
    Setting { name: "adadelta", options: r#"{"lr": 0.01}"#, max_steps: 100_000 },
    Setting { name: "adam", options: r#"{"lr": 0.02}"#, max_steps: 100_000 },
    Setting { name: "adamw", options: r#"{"lr": 0.02, "weight_decay": 0.0}"#, max_steps: 100_000 },
    Setting { name: "nadam", options: r#"{"lr": 0.005}"#, max_steps: 100_000 },
    Setting { name: "radam", options: r#"{"lr": 5e-3}"#, max_steps: 100_000 },
    Setting { name: "adamax", options: r#"{"lr": 0.05}"#, max_steps: 100_000 },
    Setting { name: "lion", options: r#"{"lr": 5e-4}"#, max_steps: 100_000 },
    // Dense parameters: Adam's update.
    Setting { name: "sparse_adam", options: r#"{"lr": 0.02}"#, max_steps: 100_000 },
];

/// The result of a run.
pub struct Run {
    /// First step after which the criterion held (and kept holding to the end), if any.
    pub converged_at: Option<usize>,
    /// Where the run ended.
    pub end: Vec<f64>,
    /// The loss there.
    pub loss: f64,
}

/// Runs `setting` on `surface` from `start`; converged means every coordinate within `tol` of the
/// surface's first minimum.
pub fn run(surface: &dyn Surface, start: &[f64], setting: &Setting, tol: f64) -> Run {
    let options: serde_json::Value = serde_json::from_str(setting.options).expect("valid JSON");
    let mut optimizer = gradus::optim::from_options(setting.name, &options).expect("valid settings");
    let target = surface.minima()[0].clone();
    let mut x: Vec<f32> = start.iter().map(|&v| v as f32).collect();
    let mut grad = vec![0.0f32; x.len()];
    let mut converged_at = None;
    for step in 1..=setting.max_steps {
        surface.gradient_f32(&x, &mut grad);
        optimizer.step(&mut x, &grad);
        let close = x.iter().zip(&target).all(|(&a, &b)| (a as f64 - b).abs() <= tol);
        match (close, converged_at) {
            (true, None) => converged_at = Some(step),
            (false, Some(_)) => converged_at = None,
            _ => {}
        }
        if converged_at.is_some_and(|s| step >= s + 200) {
            break;
        }
    }
    let end: Vec<f64> = x.iter().map(|&v| v as f64).collect();
    Run { converged_at, loss: surface.value(&end), end }
}
