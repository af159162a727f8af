//! Learning-rate schedules against PyTorch's reference cases, and property tests of the gradient
//! transforms.

use std::path::Path;

use gradus::optim::{Optimizer, Sgd, SgdConfig};
use gradus::schedule::{self, LrSchedule, PlateauConfig, ReduceOnPlateau, ScheduleSpec, ScheduleState, Scheduler};
use gradus::transform::{
    clip_grad_norm, clip_grad_value, grad_norm, ClipGradNorm, ClipGradValue, Ema, EmaConfig, GradAccumulator,
    NonFiniteGuard, StepOutcome,
};
use proptest::prelude::*;
use serde_json::Value;

// ---------------------------------------------------------------------------------------------
// Schedule semantics beyond the reference cases
// ---------------------------------------------------------------------------------------------

fn function(name: &str, options: Value, base_lr: f64) -> Box<dyn schedule::Schedule> {
    match schedule::from_options(name, &options, base_lr).unwrap() {
        LrSchedule::Function(s) => s,
        LrSchedule::Plateau(_) => panic!("{name} is not a step schedule"),
    }
}

#[test]
fn sequential_restarts_each_schedule_at_its_milestone() {
    let options = serde_json::json!({
        "schedules": [
            {"schedule": "constant", "options": {"factor": 0.5, "total_iters": 100}},
            {"schedule": "exponential", "options": {"gamma": 0.5}},
            {"schedule": "step", "options": {"step_size": 2, "gamma": 0.1}},
        ],
        "milestones": [3, 5],
    });
    let s = function("sequential", options, 1.0);
    let lrs: Vec<f64> = (0..9).map(|t| s.lr(t)).collect();
    let want = [0.5, 0.5, 0.5, 1.0, 0.5, 1.0, 1.0, 0.1, 0.1];
    for (got, want) in lrs.iter().zip(want) {
        assert!((got - want).abs() < 1e-12, "{lrs:?}");
    }
}

#[test]
fn cyclic_step_size_down_defaults_to_step_size_up_and_can_differ() {
    let symmetric = function("cyclic", serde_json::json!({"base_lr": 0.0, "max_lr": 1.0, "step_size_up": 4}), 0.1);
    assert_eq!(symmetric.lr(4), 1.0);
    assert!((symmetric.lr(6) - 0.5).abs() < 1e-12);
    assert_eq!(symmetric.lr(8), 0.0);
    let skewed = function(
        "cyclic",
        serde_json::json!({"base_lr": 0.0, "max_lr": 1.0, "step_size_up": 2, "step_size_down": 6}),
        0.1,
    );
    assert_eq!(skewed.lr(2), 1.0);
    assert!((skewed.lr(5) - 0.5).abs() < 1e-12);
    assert_eq!(skewed.lr(8), 0.0);
    // Momentum is cycled inversely by default (PyTorch's cycle_momentum: true).
    assert!((skewed.momentum(2).unwrap() - 0.8).abs() < 1e-12);
    assert!((skewed.momentum(0).unwrap() - 0.9).abs() < 1e-12);
}

#[test]
fn one_cycle_holds_its_final_rate_past_the_end() {
    let s =
        function("one_cycle", serde_json::json!({"max_lr": 1.0, "total_steps": 10, "anneal_strategy": "linear"}), 0.1);
    let last = s.lr(9);
    assert!((last - 1.0 / 25.0 / 1e4).abs() < 1e-15);
    assert_eq!(s.lr(10), last);
    assert_eq!(s.lr(u64::MAX), last);
    assert!((s.momentum(2).unwrap() - 0.85).abs() < 1e-12, "momentum is lowest at the peak");
}

#[test]
fn cosine_warm_restarts_lands_restarts_exactly_for_large_periods() {
    let s = function("cosine_warm_restarts", serde_json::json!({"T_0": 5, "T_mult": 5}), 1.0);
    // Restarts at 5, 30, 155, 780: 5 (5^n - 1) / 4.
    for restart in [5, 30, 155, 780, 3905] {
        assert_eq!(s.lr(restart), 1.0, "restart at {restart}");
        assert!(s.lr(restart - 1) < 0.1, "end of the period before {restart}");
    }
    assert!(s.lr(u64::MAX).is_finite());
}

#[test]
fn inverse_time_follows_its_formula() {
    let s = function("inverse_time", serde_json::json!({"decay": 0.5, "power": 2.0}), 0.3);
    assert_eq!(s.lr(0), 0.3);
    assert!((s.lr(2) - 0.3 / 4.0).abs() < 1e-15);
    let sklearn = function("invscaling", serde_json::json!({"power_t": 0.25}), 1.0);
    assert!((sklearn.lr(15) - 16f64.powf(-0.25)).abs() < 1e-15);
}

#[test]
fn fixed_and_constant_differ_as_in_pytorch() {
    let fixed = function("fixed", Value::Null, 0.3);
    assert_eq!(fixed.lr(0), 0.3);
    let constant = function("constant", serde_json::json!({}), 0.3);
    assert!((constant.lr(4) - 0.1).abs() < 1e-15);
    assert_eq!(constant.lr(5), 0.3);
}

#[test]
fn plateau_in_max_mode_with_absolute_threshold() {
    let config = PlateauConfig {
        mode: schedule::PlateauMode::Max,
        threshold_mode: schedule::ThresholdMode::Abs,
        threshold: 0.1,
        patience: 0,
        factor: 0.5,
        ..PlateauConfig::default()
    };
    let mut p = ReduceOnPlateau::new(1.0, config).unwrap();
    assert_eq!(p.observe(0.5), 1.0); // first metric always improves on -inf
    assert_eq!(p.observe(0.55), 0.5); // not better by more than 0.1
    assert_eq!(p.observe(0.7), 0.5); // better
    assert_eq!(p.observe(f64::NAN), 0.25); // NaN never improves
}

// ---------------------------------------------------------------------------------------------
// State round trips
// ---------------------------------------------------------------------------------------------

fn round_trip(name: &str, options: Value, base_lr: f64, metrics: &[f64]) {
    let mut original = Scheduler::from_options(name, &options, base_lr).unwrap();
    for &m in &metrics[..metrics.len() / 2] {
        original.advance();
        original.observe(m);
    }
    let saved = serde_json::to_string(&original.state()).unwrap();
    let mut restored = Scheduler::from_options(name, &options, base_lr).unwrap();
    restored.load_state(&serde_json::from_str::<ScheduleState>(&saved).unwrap()).unwrap();
    assert_eq!(restored.lr().to_bits(), original.lr().to_bits());
    for &m in &metrics[metrics.len() / 2..] {
        assert_eq!(original.advance().to_bits(), restored.advance().to_bits());
        assert_eq!(original.observe(m).to_bits(), restored.observe(m).to_bits());
    }
}

#[test]
fn schedule_state_round_trips_through_json() {
    let metrics: Vec<f64> = (0..40).map(|i| 1.0 / (1.0 + (i % 7) as f64)).collect();
    round_trip("cosine_warm_restarts", serde_json::json!({"T_0": 3, "T_mult": 2}), 0.1, &metrics);
    round_trip("one_cycle", serde_json::json!({"max_lr": 0.1, "total_steps": 30}), 0.1, &metrics);
    round_trip(
        "sequential",
        serde_json::json!({"schedules": [{"schedule": "linear", "options": {}}, {"schedule": "cosine", "options": {"T_max": 10}}], "milestones": [5]}),
        0.1,
        &metrics,
    );
    round_trip("reduce_on_plateau", serde_json::json!({"patience": 1, "cooldown": 2}), 0.1, &metrics);
}

#[test]
fn fresh_plateau_state_with_infinite_best_survives_json() {
    let scheduler = Scheduler::from_options("reduce_on_plateau", &serde_json::json!({"mode": "max"}), 0.1).unwrap();
    let json = serde_json::to_string(&scheduler.state()).unwrap();
    assert!(json.contains("\"-inf\""), "{json}");
    let back: ScheduleState = serde_json::from_str(&json).unwrap();
    assert_eq!(back, scheduler.state());
}

#[test]
fn state_of_another_schedule_is_refused() {
    let cosine = Scheduler::from_options("cosine", &serde_json::json!({"T_max": 5}), 0.1).unwrap();
    let mut step = Scheduler::from_options("step", &serde_json::json!({"step_size": 5}), 0.1).unwrap();
    assert!(step.load_state(&cosine.state()).is_err());
    let mut plateau = Scheduler::from_options("plateau", &Value::Null, 0.1).unwrap();
    assert!(plateau.load_state(&cosine.state()).is_err());
}

#[test]
fn schedule_specs_round_trip_through_json() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/reference");
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let case: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        if case["kind"] != "schedule" {
            continue;
        }
        let spec = ScheduleSpec::from_options(case["schedule"].as_str().unwrap(), &case["options"]).unwrap();
        let back: ScheduleSpec = serde_json::from_str(&serde_json::to_string(&spec).unwrap()).unwrap();
        assert_eq!(back, spec, "{}", path.display());
    }
}

// ---------------------------------------------------------------------------------------------
// Validation
// ---------------------------------------------------------------------------------------------

fn error_option(name: &str, options: Value) -> String {
    match schedule::from_options(name, &options, 0.1) {
        Ok(s) => panic!("{name} {options} was accepted: {s:?}"),
        Err(e) => e.option,
    }
}

#[test]
fn invalid_schedule_options_are_named() {
    use serde_json::json;
    assert_eq!(error_option("warp", json!({})), "schedule");
    assert_eq!(error_option("step", json!({"step_size": 0})), "step_size");
    assert_eq!(error_option("exponential", json!({"gamma": -1.0})), "gamma");
    assert_eq!(error_option("cosine", json!({"T_max": 0})), "T_max");
    assert_eq!(error_option("cosine", json!({"T_max": 5, "eta_min": -1.0})), "eta_min");
    assert_eq!(error_option("cosine_warm_restarts", json!({"T_0": 2, "T_mult": 0})), "T_mult");
    assert_eq!(error_option("linear", json!({"start_factor": 0.0})), "start_factor");
    assert_eq!(error_option("linear", json!({"end_factor": 1.5})), "end_factor");
    assert_eq!(error_option("constant", json!({"factor": 2.0})), "factor");
    assert_eq!(error_option("polynomial", json!({"total_iters": 0})), "total_iters");
    assert_eq!(error_option("inverse_time", json!({"power": -0.5})), "power");
    assert_eq!(error_option("one_cycle", json!({"max_lr": 1.0})), "total_steps");
    assert_eq!(error_option("one_cycle", json!({"max_lr": 1.0, "total_steps": 10, "pct_start": 1.5})), "pct_start");
    assert_eq!(error_option("one_cycle", json!({"max_lr": 1.0, "total_steps": 10, "div_factor": 0.0})), "div_factor");
    assert_eq!(error_option("cyclic", json!({"max_lr": 1.0, "step_size_up": 0})), "step_size_up");
    assert_eq!(error_option("cyclic", json!({"max_lr": 1.0, "step_size_down": -2})), "step_size_down");
    assert_eq!(error_option("reduce_on_plateau", json!({"factor": 1.0})), "factor");
    assert_eq!(error_option("reduce_on_plateau", json!({"threshold": -1.0})), "threshold");
    assert_eq!(error_option("sequential", json!({"schedules": [], "milestones": []})), "schedules");
    assert_eq!(
        error_option(
            "sequential",
            json!({"schedules": [{"schedule": "linear", "options": {}}, {"schedule": "reduce_on_plateau", "options": {}}], "milestones": [3]})
        ),
        "schedules"
    );
    assert_eq!(
        error_option(
            "sequential",
            json!({"schedules": [{"schedule": "linear", "options": {}}, {"schedule": "cosine", "options": {"T_max": 0}}], "milestones": [3]})
        ),
        "T_max"
    );
    assert_eq!(
        error_option("sequential", json!({"schedules": [{"schedule": "linear", "options": {}}], "milestones": [3]})),
        "milestones"
    );
    // Unknown or mistyped options: the error names the schedule's options and serde's message the field.
    let unknown = schedule::from_options("step", &json!({"step_size": 3, "gama": 0.5}), 0.1).unwrap_err();
    assert_eq!(unknown.option, "step options");
    assert!(unknown.value.contains("gama"), "{unknown}");
    let missing = schedule::from_options("cosine", &json!({}), 0.1).unwrap_err();
    assert!(missing.value.contains("T_max"), "{missing}");
    // A bad base learning rate is named too.
    assert_eq!(schedule::from_options("cosine", &json!({"T_max": 3}), -0.1).unwrap_err().option, "lr");
}

#[test]
fn invalid_transform_options_are_named() {
    assert_eq!(ClipGradNorm::new(-1.0).unwrap_err().option, "max_norm");
    assert_eq!(ClipGradNorm::new(f64::NAN).unwrap_err().option, "max_norm");
    assert_eq!(ClipGradNorm::with_norm_type(1.0, 0.0).unwrap_err().option, "norm_type");
    assert_eq!(ClipGradValue::new(-0.5).unwrap_err().option, "clip_value");
    assert_eq!(ClipGradValue::new(f64::NAN).unwrap_err().option, "clip_value");
    assert_eq!(GradAccumulator::new(0).unwrap_err().option, "accumulation_steps");
    assert_eq!(Ema::new(1.0).unwrap_err().option, "decay");
    assert_eq!(Ema::new(-0.1).unwrap_err().option, "decay");
    assert!(ClipGradValue::new(f64::INFINITY).is_ok());
}

// ---------------------------------------------------------------------------------------------
// Gradient transforms
// ---------------------------------------------------------------------------------------------

fn l2(values: &[f32]) -> f64 {
    values.iter().map(|&v| (v as f64) * (v as f64)).sum::<f64>().sqrt()
}

fn gradient() -> impl Strategy<Value = Vec<f32>> {
    prop::collection::vec(-1e3f32..1e3, 0..300)
}

proptest! {
    #[test]
    fn clip_by_global_norm_bounds_the_norm_and_returns_the_old_one(mut g in gradient(), max_norm in 0.0f64..100.0) {
        let before = l2(&g);
        let original = g.clone();
        let returned = clip_grad_norm(&mut g, max_norm);
        prop_assert!((returned - before).abs() <= 1e-9 * (1.0 + before));
        let after = l2(&g);
        prop_assert!(after <= max_norm * (1.0 + 1e-6) + 1e-9, "norm {after} > {max_norm}");
        if before + 1e-6 <= max_norm {
            prop_assert_eq!(&g, &original, "a gradient within the bound is left alone");
        } else {
            // Clipping keeps the direction.
            let scale = max_norm / (before + 1e-6);
            for (a, b) in g.iter().zip(&original) {
                prop_assert!((*a as f64 - *b as f64 * scale).abs() <= 1e-6 * b.abs() as f64 + 1e-30);
            }
        }
    }

    #[test]
    fn clip_by_value_bounds_every_element(mut g in gradient(), clip in 0.0f32..10.0) {
        let original = g.clone();
        clip_grad_value(&mut g, clip);
        for (a, b) in g.iter().zip(&original) {
            prop_assert!(a.abs() <= clip);
            if b.abs() <= clip { prop_assert_eq!(a, b); } else { prop_assert_eq!(*a, clip.copysign(*b)); }
        }
    }

    #[test]
    fn accumulating_k_equal_micro_batches_gives_the_gradient(g in gradient(), k in 1u64..9) {
        let mut acc = GradAccumulator::new(k).unwrap();
        for i in 1..k {
            prop_assert!(acc.accumulate(&g).is_none(), "update due after {i} of {k}");
            prop_assert_eq!(acc.pending(), i);
        }
        let mean = acc.accumulate(&g).expect("update due after k micro-batches").to_vec();
        prop_assert_eq!(mean, g.clone());
        prop_assert_eq!(acc.pending(), 0);
    }

    #[test]
    fn accumulation_averages_different_micro_batches(a in prop::collection::vec(-10f32..10.0, 16), b in prop::collection::vec(-10f32..10.0, 16)) {
        let mut acc = GradAccumulator::new(2).unwrap();
        prop_assert!(acc.accumulate(&a).is_none());
        let mean = acc.accumulate(&b).unwrap().to_vec();
        for ((m, x), y) in mean.iter().zip(&a).zip(&b) {
            prop_assert_eq!(*m, ((*x as f64 + *y as f64) / 2.0) as f32);
        }
    }

    #[test]
    fn ema_converges_to_constant_parameters(target in prop::collection::vec(-10f32..10.0, 1..20), decay in 0.5f64..0.95) {
        let start: Vec<f32> = target.iter().map(|t| t + 5.0).collect();
        for bias_correction in [false, true] {
            let mut ema = Ema::with_config(EmaConfig { decay, bias_correction }).unwrap();
            ema.update(&start);
            prop_assert_eq!(ema.shadow(), &start[..], "the first update gives the parameters");
            for _ in 0..400 {
                ema.update(&target);
            }
            for (s, t) in ema.shadow().iter().zip(&target) {
                prop_assert!((s - t).abs() <= 1e-3, "{s} vs {t} (bias_correction {bias_correction})");
            }
        }
    }
}

#[test]
fn ema_follows_its_recurrence() {
    let mut ema = Ema::new(0.5).unwrap();
    ema.update(&[0.0, 4.0]);
    ema.update(&[2.0, 0.0]);
    assert_eq!(ema.shadow(), &[1.0, 2.0]);
    ema.update(&[3.0, 2.0]);
    assert_eq!(ema.shadow(), &[2.0, 2.0]);
    // Bias-corrected: m = [0.5·2, ...], s = m / (1 − 0.25): the normalized weighted mean.
    let mut corrected = Ema::with_config(EmaConfig { decay: 0.5, bias_correction: true }).unwrap();
    corrected.update(&[0.0]);
    corrected.update(&[3.0]);
    assert!((corrected.shadow()[0] - 2.0).abs() < 1e-6, "(0.5·0 + 1·3) / 1.5 = 2");
    let mut params = [9.0f32];
    corrected.copy_to(&mut params);
    assert_eq!(params, [corrected.shadow()[0]]);
}

#[test]
fn clip_grad_norm_matches_pytorch_on_a_small_case() {
    // torch.nn.utils.clip_grad_norm_ on [3, 4] with max_norm 1: norm 5, scale 1 / (5 + 1e-6).
    let mut g = [3.0f32, 4.0];
    assert_eq!(clip_grad_norm(&mut g, 1.0), 5.0);
    let scale = (1.0 / (5.0 + 1e-6)) as f32;
    assert_eq!(g, [3.0 * scale, 4.0 * scale]);
    assert_eq!(grad_norm(&[3.0, -4.0], f64::INFINITY), 4.0);
    assert_eq!(grad_norm(&[3.0, -4.0], 1.0), 7.0);
}

#[test]
fn clip_grad_norm_is_identical_across_thread_counts() {
    let len = 3_000_017;
    let grads: Vec<f32> = (0..len).map(|i| ((i as f32 * 0.618_034).sin() * 1e3) / (1.0 + (i % 97) as f32)).collect();
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        pool.install(|| {
            let mut g = grads.clone();
            let norm = clip_grad_norm(&mut g, 1.0);
            (norm.to_bits(), g)
        })
    };
    let (norm1, clipped1) = run(1);
    let (norm2, clipped2) = run(2);
    let (norm4, clipped4) = run(4);
    assert_eq!(norm1, norm2);
    assert_eq!(norm1, norm4);
    assert!(clipped1 == clipped2 && clipped1 == clipped4);
    assert!((f64::from_bits(norm1) - l2(&grads)).abs() <= 1e-9 * l2(&grads));
}

#[test]
fn non_finite_gradients_are_skipped_and_counted() {
    let mut sgd = Sgd::new(SgdConfig { lr: 0.1, ..SgdConfig::default() }).unwrap();
    let mut guard = NonFiniteGuard::new();
    let mut params = vec![1.0f32; 4];
    assert_eq!(guard.step(&mut sgd, &mut params, &[1.0; 4]), StepOutcome::Applied);
    let after_good = params.clone();
    assert_eq!(guard.step(&mut sgd, &mut params, &[1.0, f32::NAN, 0.0, 0.0]), StepOutcome::Skipped);
    assert_eq!(guard.step(&mut sgd, &mut params, &[f32::INFINITY, 0.0, 0.0, 0.0]), StepOutcome::Skipped);
    assert_eq!(params, after_good, "a skipped step leaves the parameters alone");
    assert_eq!(sgd.steps(), 1);
    assert_eq!((guard.skipped(), guard.consecutive_skipped(), guard.applied()), (2, 2, 1));
    assert_eq!(guard.step(&mut sgd, &mut params, &[0.0; 4]), StepOutcome::Applied);
    assert_eq!((guard.skipped(), guard.consecutive_skipped(), guard.applied()), (2, 0, 2));
    // Large buffers take the parallel path.
    let mut big = vec![0.0f32; 1 << 18];
    assert!(guard.check(&big));
    big[200_000] = f32::NEG_INFINITY;
    assert!(!guard.check(&big));
    assert_eq!(guard.skipped(), 3);
}
