//! L-BFGS against PyTorch's reference runs, and the test surfaces' gradients, minima and f32
//! bridge.

use gradus::optim::lbfgs::{CostGradient, FnProblem, Lbfgs, LbfgsConfig, LbfgsState, LineSearch, Termination};
use gradus::optim::{Optimizer, Sgd, SgdConfig};
use gradus::surfaces::{by_name, Booth, Himmelblau, Rosenbrock, Saddle, Sphere, Surface, NAMES};
use gradus::StateError;
use proptest::prelude::*;

/// Every surface in a few dimensions (the fixed 2-D ones once).
fn all_surfaces() -> Vec<Box<dyn Surface>> {
    let mut surfaces = Vec::new();
    for name in NAMES {
        for dim in 1..=5 {
            if let Some(surface) = by_name(name, dim) {
                surfaces.push(surface);
            }
        }
    }
    surfaces
}

/// A point inside the surface's plot bounds from unit-interval coordinates `u`.
fn point_in_bounds(surface: &dyn Surface, u: &[f64]) -> Vec<f64> {
    let [bx, by] = surface.plot_bounds();
    (0..surface.dim())
        .map(|i| {
            let (lo, hi) = if i % 2 == 0 { bx } else { by };
            lo + (hi - lo) * u[i]
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn analytic_gradients_match_central_differences(u in prop::collection::vec(0.0f64..1.0, 5)) {
        for surface in all_surfaces() {
            let x = point_in_bounds(&*surface, &u);
            // The Ackley cone is not differentiable at the origin; stay clear of it.
            if surface.name() == "ackley" && x.iter().map(|v| v * v).sum::<f64>().sqrt() < 1e-3 {
                continue;
            }
            let mut grad = vec![0.0; x.len()];
            let value = surface.value_and_gradient(&x, &mut grad);
            prop_assert_eq!(value, surface.value(&x));
            for i in 0..x.len() {
                let h = 1e-6 * x[i].abs().max(1.0);
                let (mut up, mut down) = (x.clone(), x.clone());
                up[i] += h;
                down[i] -= h;
                let numeric = (surface.value(&up) - surface.value(&down)) / (up[i] - down[i]);
                let tolerance = 1e-6 * (1.0 + grad[i].abs()) + 1e-14 * (1.0 + value.abs()) / h;
                prop_assert!(
                    (numeric - grad[i]).abs() <= tolerance,
                    "{} (dim {}) at {:?}: d/dx{} analytic {} numeric {}",
                    surface.name(), surface.dim(), x, i, grad[i], numeric
                );
            }
        }
    }

    #[test]
    fn f32_bridge_matches_the_f64_surface(u in prop::collection::vec(0.0f64..1.0, 5)) {
        for surface in all_surfaces() {
            let x: Vec<f32> = point_in_bounds(&*surface, &u).iter().map(|&v| v as f32).collect();
            let x64: Vec<f64> = x.iter().map(|&v| f64::from(v)).collect();
            let mut grad = vec![0.0f32; x.len()];
            surface.gradient_f32(&x, &mut grad);
            let mut grad64 = vec![0.0; x.len()];
            surface.gradient(&x64, &mut grad64);
            let rounded: Vec<f32> = grad64.iter().map(|&g| g as f32).collect();
            prop_assert_eq!(grad, rounded);
            prop_assert_eq!(surface.value_f32(&x), surface.value(&x64) as f32);
        }
    }

    /// Saving the state mid-run, restoring it (through JSON) into a fresh optimizer and going on
    /// gives exactly the uninterrupted run.
    #[test]
    fn state_round_trip_continues_bit_for_bit(
        start in prop::collection::vec(-2.0f64..2.0, 4),
        before in 1usize..4,
        after in 1usize..4,
        history_size in 1usize..8,
        strong_wolfe in any::<bool>(),
    ) {
        let config = LbfgsConfig {
            history_size,
            max_iter: 5,
            tolerance_grad: 0.0,
            tolerance_change: 0.0,
            line_search_fn: strong_wolfe.then_some(LineSearch::StrongWolfe),
            lr: if strong_wolfe { 1.0 } else { 0.1 },
            ..LbfgsConfig::default()
        };
        let mut problem = Rosenbrock(4);

        let mut whole = Lbfgs::new(config.clone()).unwrap();
        let mut x_whole = start.clone();
        let whole_steps: Vec<_> = (0..before + after).map(|_| whole.step(&mut x_whole, &mut problem)).collect();

        let mut first = Lbfgs::new(config.clone()).unwrap();
        let mut x = start.clone();
        for _ in 0..before {
            first.step(&mut x, &mut problem);
        }
        let saved = serde_json::to_string(&first.state()).unwrap();
        let mut second = Lbfgs::new(config).unwrap();
        second.load_state(serde_json::from_str::<LbfgsState>(&saved).unwrap()).unwrap();
        prop_assert_eq!(second.state(), first.state());
        let resumed: Vec<_> = (0..after).map(|_| second.step(&mut x, &mut problem)).collect();

        prop_assert_eq!(&x, &x_whole);
        prop_assert_eq!(&resumed[..], &whole_steps[before..]);
        prop_assert_eq!(second.state(), whole.state());
    }
}

#[test]
fn values_at_the_minima_are_the_minimum_with_zero_gradient() {
    for surface in all_surfaces() {
        let minima = surface.minima();
        if surface.name() == "saddle" {
            assert!(minima.is_empty());
            assert_eq!(surface.min_value(), f64::NEG_INFINITY);
            continue;
        }
        assert!(!minima.is_empty(), "{}", surface.name());
        let want = surface.min_value();
        for minimum in minima {
            assert_eq!(minimum.len(), surface.dim());
            let mut grad = vec![f64::NAN; surface.dim()];
            let value = surface.value_and_gradient(&minimum, &mut grad);
            assert!((value - want).abs() <= 1e-12 * (1.0 + want.abs()), "{}: {value} != {want}", surface.name());
            assert!(grad.iter().all(|g| g.abs() <= 1e-10), "{} at {minimum:?}: gradient {grad:?}", surface.name());
            // And it is a minimum: nearby points are no lower.
            for i in 0..minimum.len() {
                for delta in [-1e-4, 1e-4] {
                    let mut near = minimum.clone();
                    near[i] += delta;
                    assert!(surface.value(&near) >= value, "{} rises from {minimum:?}", surface.name());
                }
            }
        }
        let start = surface.default_start();
        assert_eq!(start.len(), surface.dim());
        assert!(surface.value(&start) > want, "{} starts at its minimum", surface.name());
    }
}

#[test]
fn the_saddle_point_is_stationary_but_not_a_minimum() {
    let point = Saddle.saddle_point();
    let mut grad = [1.0; 2];
    Saddle.gradient(&point, &mut grad);
    assert_eq!(grad, [0.0, 0.0]);
    assert!(Saddle.value(&[0.0, 0.1]) < Saddle.value(&point));
    assert!(Saddle.value(&[0.1, 0.0]) > Saddle.value(&point));
}

#[test]
fn config_defaults_are_pytorchs() {
    let config = LbfgsConfig::from_options(&serde_json::json!({})).unwrap();
    assert_eq!(config, LbfgsConfig::default());
    assert_eq!(
        (config.lr, config.max_iter, config.effective_max_eval(), config.tolerance_grad, config.tolerance_change),
        (1.0, 20, 25, 1e-7, 1e-9)
    );
    assert_eq!((config.history_size, config.line_search_fn), (100, None));
    let config =
        LbfgsConfig::from_options(&serde_json::json!({"max_iter": 7, "line_search_fn": "strong_wolfe"})).unwrap();
    assert_eq!((config.effective_max_eval(), config.line_search_fn), (8, Some(LineSearch::StrongWolfe)));
    let config = LbfgsConfig::from_options(&serde_json::json!({"max_eval": 3, "line_search_fn": null})).unwrap();
    assert_eq!((config.effective_max_eval(), config.line_search_fn), (3, None));
}

#[test]
fn invalid_configs_name_the_option() {
    let bad = [
        (serde_json::json!({"lr": 0.0}), "lr"),
        (serde_json::json!({"lr": -1.0}), "lr"),
        (serde_json::json!({"max_iter": 0}), "max_iter"),
        (serde_json::json!({"max_eval": 0}), "max_eval"),
        (serde_json::json!({"tolerance_grad": -1e-7}), "tolerance_grad"),
        (serde_json::json!({"tolerance_change": -1.0}), "tolerance_change"),
        (serde_json::json!({"history_size": 0}), "history_size"),
        (serde_json::json!({"line_search_fn": "backtracking"}), "lbfgs options"),
        (serde_json::json!({"momentum": 0.9}), "lbfgs options"),
    ];
    for (options, option) in bad {
        let error = LbfgsConfig::from_options(&options).unwrap_err();
        assert_eq!(error.option, option, "{options}");
    }
    let config = LbfgsConfig { lr: f64::NAN, ..LbfgsConfig::default() };
    assert_eq!(Lbfgs::new(config).unwrap_err().option, "lr");
    let config = LbfgsConfig { tolerance_change: f64::INFINITY, ..LbfgsConfig::default() };
    assert_eq!(Lbfgs::new(config).unwrap_err().option, "tolerance_change");
}

#[test]
fn inconsistent_state_is_rejected() {
    let config = LbfgsConfig { history_size: 3, line_search_fn: Some(LineSearch::StrongWolfe), ..Default::default() };
    let mut lbfgs = Lbfgs::new(config.clone()).unwrap();
    let mut x = Rosenbrock(3).default_start();
    lbfgs.step(&mut x, &mut Rosenbrock(3));
    let good = lbfgs.state();
    assert_eq!(good.ro.len(), 3);

    let mut fresh = Lbfgs::new(config).unwrap();
    let mut state = good.clone();
    state.ro.pop();
    assert!(matches!(fresh.load_state(state), Err(StateError::BadBuffer { .. })));
    let mut state = good.clone();
    state.old_stps[1].push(0.0);
    assert!(matches!(fresh.load_state(state), Err(StateError::BadBuffer { .. })));
    let mut state = good.clone();
    state.direction.pop();
    assert!(matches!(fresh.load_state(state), Err(StateError::BadBuffer { .. })));
    let mut state = good.clone();
    state.step_length = None;
    assert!(matches!(fresh.load_state(state), Err(StateError::BadBuffer { .. })));
    // More pairs than history_size holds.
    let mut small = Lbfgs::new(LbfgsConfig { history_size: 2, ..Default::default() }).unwrap();
    assert!(matches!(small.load_state(good.clone()), Err(StateError::BadBuffer { .. })));
    fresh.load_state(good).unwrap();
}

#[test]
fn minimize_reaches_the_minimum_of_every_smooth_surface() {
    let config = LbfgsConfig {
        line_search_fn: Some(LineSearch::StrongWolfe),
        tolerance_grad: 1e-10,
        tolerance_change: 1e-14,
        ..Default::default()
    };
    for name in ["sphere", "ill_conditioned_quadratic", "rosenbrock", "beale", "booth", "himmelblau"] {
        let mut surface = by_name(name, 2).unwrap();
        let mut x = surface.default_start();
        let mut lbfgs = Lbfgs::new(config.clone()).unwrap();
        let outcome = lbfgs.minimize(&mut x, &mut *surface, 50);
        let last = outcome.last.unwrap();
        assert!(last.termination.is_converged(), "{name}: {last:?}");
        let nearest = surface
            .minima()
            .iter()
            .map(|m| m.iter().zip(&x).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max))
            .fold(f64::INFINITY, f64::min);
        assert!(surface.value(&x) < 1e-12 && nearest < 1e-5, "{name}: ended at {x:?} ({last:?})");
        assert_eq!(last.final_loss, Some(surface.value(&x)));
    }
}

#[test]
fn fixed_steps_without_line_search_converge_on_a_quadratic() {
    let config = LbfgsConfig { tolerance_grad: 1e-9, ..Default::default() };
    let mut lbfgs = Lbfgs::new(config).unwrap();
    let mut x = Booth.default_start();
    let outcome = lbfgs.minimize(&mut x, &mut Booth, 10);
    assert!(Booth.value(&x) < 1e-12, "{x:?} {outcome:?}");
}

#[test]
fn step_reports_termination_and_counts_evaluations() {
    // Already optimal: one evaluation, no iteration.
    let mut lbfgs = Lbfgs::new(LbfgsConfig::default()).unwrap();
    let mut x = vec![3.0, 2.0];
    let step = lbfgs.step(&mut x, &mut Himmelblau);
    assert_eq!((step.iterations, step.evaluations, step.termination), (0, 1, Termination::GradientTolerance));
    assert_eq!(x, vec![3.0, 2.0]);

    // A closure problem that counts its own evaluations agrees with the optimizer's count.
    let mut calls = 0u64;
    let mut problem = FnProblem(|x: &[f64], grad: &mut [f64]| {
        calls += 1;
        Rosenbrock(2).value_and_gradient(x, grad)
    });
    let config = LbfgsConfig { max_iter: 4, line_search_fn: Some(LineSearch::StrongWolfe), ..Default::default() };
    let mut lbfgs = Lbfgs::new(config).unwrap();
    let mut x = vec![-1.5, 2.0];
    let mut previous = f64::INFINITY;
    for _ in 0..3 {
        let step = lbfgs.step(&mut x, &mut problem);
        assert!(step.loss < previous);
        previous = step.loss;
        assert!(matches!(step.termination, Termination::MaxIterations | Termination::MaxEvaluations));
        assert!(step.iterations <= 4);
    }
    assert_eq!(calls, lbfgs.evaluations());

    // The evaluation budget ends a step: max_eval 2 leaves room for a single line search.
    let config = LbfgsConfig { max_eval: Some(2), line_search_fn: Some(LineSearch::StrongWolfe), ..Default::default() };
    let mut lbfgs = Lbfgs::new(config).unwrap();
    let mut x = vec![-1.5, 2.0];
    let step = lbfgs.step(&mut x, &mut Rosenbrock(2));
    assert_eq!((step.iterations, step.termination), (1, Termination::MaxEvaluations));
}

/// The f32 bridge lets the first-order optimizers run on a surface.
#[test]
fn sgd_descends_a_surface_through_the_f32_bridge() {
    let mut sgd = Sgd::new(SgdConfig { lr: 0.05, momentum: 0.5, ..Default::default() }).unwrap();
    let mut x: Vec<f32> = Booth.default_start().iter().map(|&v| v as f32).collect();
    let mut grad = vec![0.0f32; 2];
    for _ in 0..300 {
        Booth.gradient_f32(&x, &mut grad);
        sgd.step(&mut x, &grad);
    }
    assert!((x[0] - 1.0).abs() < 1e-4 && (x[1] - 3.0).abs() < 1e-4, "{x:?}");
    assert!(Booth.value_f32(&x) < 1e-6);
    let _: &dyn CostGradient = &Sphere(3);
}
