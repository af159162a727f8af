//! Adagrad, RMSprop, Adadelta, Adamax and SGD checked against plain scalar references.
//!
//! Each reference below is written straight from the optimizer's update equations, one element at
//! a time, with per-element learning rates and weight decays resolved from the layout and groups
//! by hand (not through `ParamGroups`' runs). Element-wise arithmetic is `f32`, as in the library
//! and in PyTorch; only per-step scalar factors are `f64`. Moving averages are written in their
//! textbook form `β m + (1 − β) g` where PyTorch (and the library) use `lerp`, so the comparisons
//! allow a few ulps.

use gradus::optim::adadelta::{Adadelta, AdadeltaConfig};
use gradus::optim::adagrad::{Adagrad, AdagradConfig};
use gradus::optim::adamax::{Adamax, AdamaxConfig};
use gradus::optim::rmsprop::{RmsProp, RmsPropConfig};
use gradus::optim::{from_options, Optimizer, OptimizerState, Sgd, SgdConfig};
use gradus::{ConfigError, ParamGroup, ParamGroups, ParamLayout, StateError};
use serde_json::{json, Value};

// ---------------------------------------------------------------------------------------------
// Cases

#[derive(Debug, Clone)]
enum Case {
    Sgd(SgdConfig),
    Adagrad(AdagradConfig),
    RmsProp(RmsPropConfig),
    Adadelta(AdadeltaConfig),
    Adamax(AdamaxConfig),
}

impl Case {
    fn build(&self) -> Box<dyn Optimizer> {
        match self {
            Case::Sgd(c) => Box::new(Sgd::new(c.clone()).unwrap()),
            Case::Adagrad(c) => Box::new(Adagrad::new(c.clone()).unwrap()),
            Case::RmsProp(c) => Box::new(RmsProp::new(c.clone()).unwrap()),
            Case::Adadelta(c) => Box::new(Adadelta::new(c.clone()).unwrap()),
            Case::Adamax(c) => Box::new(Adamax::new(c.clone()).unwrap()),
        }
    }

    fn lr(&self) -> f64 {
        match self {
            Case::Sgd(c) => c.lr,
            Case::Adagrad(c) => c.lr,
            Case::RmsProp(c) => c.lr,
            Case::Adadelta(c) => c.lr,
            Case::Adamax(c) => c.lr,
        }
    }

    fn weight_decay(&self) -> f64 {
        match self {
            Case::Sgd(c) => c.weight_decay,
            Case::Adagrad(c) => c.weight_decay,
            Case::RmsProp(c) => c.weight_decay,
            Case::Adadelta(c) => c.weight_decay,
            Case::Adamax(c) => c.weight_decay,
        }
    }
}

/// Every variant under test: each optimizer plain and with its options switched on.
fn cases() -> Vec<(&'static str, Case)> {
    vec![
        ("sgd plain", Case::Sgd(SgdConfig { lr: 0.1, ..Default::default() })),
        ("sgd momentum", Case::Sgd(SgdConfig { lr: 0.05, momentum: 0.9, ..Default::default() })),
        (
            "sgd dampening wd",
            Case::Sgd(SgdConfig { lr: 0.05, momentum: 0.9, dampening: 0.1, weight_decay: 0.01, ..Default::default() }),
        ),
        ("sgd nesterov", Case::Sgd(SgdConfig { lr: 0.05, momentum: 0.9, nesterov: true, ..Default::default() })),
        (
            "sgd nesterov wd maximize",
            Case::Sgd(SgdConfig {
                lr: 0.02,
                momentum: 0.8,
                nesterov: true,
                weight_decay: 0.05,
                maximize: true,
                ..Default::default()
            }),
        ),
        ("sgd maximize", Case::Sgd(SgdConfig { lr: 0.03, maximize: true, ..Default::default() })),
        ("adagrad default", Case::Adagrad(AdagradConfig::default())),
        (
            "adagrad decay init wd maximize",
            Case::Adagrad(AdagradConfig {
                lr: 0.1,
                lr_decay: 0.01,
                initial_accumulator_value: 0.1,
                weight_decay: 0.02,
                eps: 1e-10,
                maximize: true,
            }),
        ),
        ("rmsprop default", Case::RmsProp(RmsPropConfig::default())),
        ("rmsprop centered", Case::RmsProp(RmsPropConfig { alpha: 0.9, centered: true, ..Default::default() })),
        ("rmsprop momentum", Case::RmsProp(RmsPropConfig { momentum: 0.9, eps: 1e-6, ..Default::default() })),
        (
            "rmsprop centered momentum wd maximize",
            Case::RmsProp(RmsPropConfig {
                lr: 0.005,
                alpha: 0.95,
                momentum: 0.9,
                centered: true,
                weight_decay: 0.01,
                maximize: true,
                ..Default::default()
            }),
        ),
        ("adadelta default", Case::Adadelta(AdadeltaConfig::default())),
        (
            "adadelta rho eps wd maximize",
            Case::Adadelta(AdadeltaConfig { lr: 0.5, rho: 0.8, eps: 1e-5, weight_decay: 0.01, maximize: true }),
        ),
        ("adamax default", Case::Adamax(AdamaxConfig::default())),
        (
            "adamax betas wd maximize",
            Case::Adamax(AdamaxConfig {
                lr: 0.01,
                betas: [0.85, 0.995],
                weight_decay: 0.05,
                maximize: true,
                ..Default::default()
            }),
        ),
        // A small beta1 makes PyTorch's lerp take its other branch.
        ("adamax small beta1", Case::Adamax(AdamaxConfig { betas: [0.3, 0.9], ..Default::default() })),
    ]
}

// ---------------------------------------------------------------------------------------------
// Scalar references

/// One element's update for `case` at step `t` (counted from 1), with the element's own learning
/// rate and weight decay. `s` holds the element's state buffers.
fn reference_update(case: &Case, t: u64, lr: f64, wd: f64, p: &mut f32, g: f32, s: &mut [f32; 3]) {
    let wd = wd as f32;
    match case {
        Case::Sgd(c) => {
            let mut d = if c.maximize { -g } else { g };
            if wd != 0.0 {
                d += wd * *p;
            }
            if c.momentum != 0.0 {
                let momentum = c.momentum as f32;
                s[0] = if t == 1 { d } else { momentum * s[0] + (1.0 - c.dampening) as f32 * d };
                d = if c.nesterov { d + momentum * s[0] } else { s[0] };
            }
            *p -= lr as f32 * d;
        }
        Case::Adagrad(c) => {
            let mut g = if c.maximize { -g } else { g };
            if wd != 0.0 {
                g += wd * *p;
            }
            let clr = lr / (1.0 + (t - 1) as f64 * c.lr_decay);
            s[0] += g * g;
            *p -= clr as f32 * g / (s[0].sqrt() + c.eps as f32);
        }
        Case::RmsProp(c) => {
            let mut g = if c.maximize { -g } else { g };
            if wd != 0.0 {
                g += wd * *p;
            }
            let (alpha, eps) = (c.alpha as f32, c.eps as f32);
            let one_minus_alpha = (1.0 - c.alpha) as f32;
            s[0] = alpha * s[0] + one_minus_alpha * g * g;
            let denominator = if c.centered {
                s[1] = alpha * s[1] + one_minus_alpha * g;
                (s[0] - s[1] * s[1]).sqrt() + eps
            } else {
                s[0].sqrt() + eps
            };
            if c.momentum > 0.0 {
                s[2] = c.momentum as f32 * s[2] + g / denominator;
                *p -= lr as f32 * s[2];
            } else {
                *p -= lr as f32 * g / denominator;
            }
        }
        Case::Adadelta(c) => {
            let mut g = if c.maximize { -g } else { g };
            if wd != 0.0 {
                g += wd * *p;
            }
            let (rho, eps) = (c.rho as f32, c.eps as f32);
            let one_minus_rho = (1.0 - c.rho) as f32;
            s[0] = rho * s[0] + one_minus_rho * g * g;
            let delta = (s[1] + eps).sqrt() / (s[0] + eps).sqrt() * g;
            s[1] = rho * s[1] + one_minus_rho * delta * delta;
            *p -= lr as f32 * delta;
        }
        Case::Adamax(c) => {
            let mut g = if c.maximize { -g } else { g };
            if wd != 0.0 {
                g += wd * *p;
            }
            let [beta1, beta2] = c.betas;
            s[0] = beta1 as f32 * s[0] + (1.0 - beta1) as f32 * g;
            s[1] = (beta2 as f32 * s[1]).max(g.abs() + c.eps as f32);
            let clr = lr / (1.0 - beta1.powi(t as i32));
            *p -= clr as f32 * s[0] / s[1];
        }
    }
}

/// A scalar reference optimizer over a whole buffer.
struct Reference {
    case: Case,
    step: u64,
    lr: f64,
    lr_scale: Vec<f64>,
    weight_decay: Vec<f64>,
    state: Vec<[f32; 3]>,
}

impl Reference {
    /// A reference for `len` parameters with the optimizer's own options everywhere.
    fn new(case: &Case, len: usize) -> Self {
        Self::with_options(case, vec![1.0; len], vec![case.weight_decay(); len])
    }

    /// A reference for parameters in `groups` over `layout`, resolved element by element.
    fn grouped(case: &Case, layout: &ParamLayout, groups: &[ParamGroup]) -> Self {
        let mut lr_scale = vec![1.0; layout.len()];
        let mut weight_decay = vec![case.weight_decay(); layout.len()];
        for group in groups {
            for name in &group.segments {
                let segment = layout.segment(name).unwrap();
                for i in segment.offset..segment.offset + segment.len {
                    lr_scale[i] = group.lr_scale;
                    weight_decay[i] = group.weight_decay.unwrap_or(case.weight_decay());
                }
            }
        }
        Self::with_options(case, lr_scale, weight_decay)
    }

    fn with_options(case: &Case, lr_scale: Vec<f64>, weight_decay: Vec<f64>) -> Self {
        let initial = match case {
            Case::Adagrad(c) => c.initial_accumulator_value as f32,
            _ => 0.0,
        };
        let state = vec![[initial, 0.0, 0.0]; lr_scale.len()];
        Self { case: case.clone(), step: 0, lr: case.lr(), lr_scale, weight_decay, state }
    }

    fn step(&mut self, params: &mut [f32], grads: &[f32]) {
        self.step += 1;
        for i in 0..params.len() {
            let lr = self.lr * self.lr_scale[i];
            reference_update(
                &self.case,
                self.step,
                lr,
                self.weight_decay[i],
                &mut params[i],
                grads[i],
                &mut self.state[i],
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers

/// A small deterministic generator (64-bit LCG, high bits out).
struct Lcg(u64);

impl Lcg {
    fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in [-1, 1).
    fn uniform(&mut self) -> f32 {
        self.0 = self.0.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }

    fn vec(&mut self, len: usize, scale: f32) -> Vec<f32> {
        (0..len).map(|_| scale * self.uniform()).collect()
    }

    /// Gradients of varying scale, with a few exact zeros.
    fn grads(&mut self, len: usize, step: usize) -> Vec<f32> {
        let scale = [1.0, 0.1, 3.0, 0.01, 0.5, 2.0][step % 6];
        let mut g = self.vec(len, scale);
        g.iter_mut().skip(3).step_by(7).for_each(|g| *g = 0.0);
        g
    }
}

/// `|got − want| <= rel·|want| + abs`, element by element, and both finite.
fn assert_close(got: &[f32], want: &[f32], rel: f64, abs: f64, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: lengths differ");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert!(w.is_finite(), "{what}: reference value {i} is {w}");
        let (g, w) = (g as f64, w as f64);
        assert!((g - w).abs() <= rel * w.abs() + abs, "{what}: element {i} is {g}, expected {w} (diff {:e})", g - w);
    }
}

fn assert_bits_equal(got: &[f32], want: &[f32], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: lengths differ");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert_eq!(g.to_bits(), w.to_bits(), "{what}: element {i} is {g}, expected {w}");
    }
}

const REL: f64 = 1e-6;
const ABS: f64 = 1e-7;

// ---------------------------------------------------------------------------------------------
// (a) Lengths

#[test]
fn matches_reference_across_lengths() {
    for (name, case) in cases() {
        for len in [0usize, 1, 3, 7, 17, 1000] {
            let mut rng = Lcg::new(len as u64 + 1);
            let start = rng.vec(len, 2.0);
            let (mut params, mut expected) = (start.clone(), start.clone());
            let mut optimizer = case.build();
            let mut reference = Reference::new(&case, len);
            for step in 0..8 {
                let grads = rng.grads(len, step);
                optimizer.step(&mut params, &grads);
                reference.step(&mut expected, &grads);
                assert_close(&params, &expected, REL, ABS, &format!("{name}, len {len}, step {}", step + 1));
            }
            assert_eq!(optimizer.steps(), 8);
            if len > 0 {
                assert_ne!(params, start, "{name}: the parameters did not move");
            }
        }
    }
}

/// The references must be able to tell optimizers apart: a wrong option changes the result.
#[test]
fn reference_detects_a_wrong_option() {
    for (name, case) in cases() {
        let wrong = match &case {
            Case::Sgd(c) => Case::Sgd(SgdConfig { maximize: !c.maximize, ..c.clone() }),
            Case::Adagrad(c) => Case::Adagrad(AdagradConfig { lr_decay: c.lr_decay + 0.5, ..c.clone() }),
            Case::RmsProp(c) => Case::RmsProp(RmsPropConfig { centered: !c.centered, ..c.clone() }),
            Case::Adadelta(c) => Case::Adadelta(AdadeltaConfig { rho: c.rho * 0.5, ..c.clone() }),
            Case::Adamax(c) => Case::Adamax(AdamaxConfig { betas: [c.betas[0] * 0.5, c.betas[1]], ..c.clone() }),
        };
        let mut rng = Lcg::new(7);
        let mut params = rng.vec(17, 1.0);
        let mut expected = params.clone();
        let mut optimizer = wrong.build();
        let mut reference = Reference::new(&case, 17);
        for step in 0..3 {
            let grads = rng.grads(17, step);
            optimizer.step(&mut params, &grads);
            reference.step(&mut expected, &grads);
        }
        let differs = params.iter().zip(&expected).any(|(g, w)| ((g - w).abs() as f64) > REL * w.abs() as f64 + ABS);
        assert!(differs, "{name}: a changed option went unnoticed");
    }
}

// ---------------------------------------------------------------------------------------------
// (b) Parameter groups

fn grouped_layout() -> (ParamLayout, Vec<ParamGroup>) {
    let mut layout = ParamLayout::new();
    layout.push("w0", 11);
    layout.push("empty", 0);
    layout.push("b0", 5);
    layout.push("w1", 33);
    layout.push("also_empty", 0);
    layout.push("b1", 4);
    layout.push("rest", 20);
    let groups = vec![
        ParamGroup::new(["w0", "w1"]).lr_scale(0.5).weight_decay(0.1),
        ParamGroup::new(["b0", "b1", "empty"]).weight_decay(0.0),
        ParamGroup::new(["also_empty"]).lr_scale(3.0),
        ParamGroup::new(["rest"]).lr_scale(2.0),
    ];
    (layout, groups)
}

#[test]
fn matches_reference_with_groups() {
    let (layout, groups) = grouped_layout();
    for (name, case) in cases() {
        let mut rng = Lcg::new(99);
        let mut params = rng.vec(layout.len(), 1.5);
        let mut expected = params.clone();
        let mut optimizer = case.build();
        optimizer.set_groups(ParamGroups::new(&layout, &groups).unwrap());
        let mut reference = Reference::grouped(&case, &layout, &groups);
        for step in 0..8 {
            if step == 4 {
                // A schedule changes the base rate; every group follows by its factor.
                optimizer.set_lr(case.lr() * 0.3);
                reference.lr = case.lr() * 0.3;
            }
            let grads = rng.grads(layout.len(), step);
            optimizer.step(&mut params, &grads);
            reference.step(&mut expected, &grads);
            assert_close(&params, &expected, REL, ABS, &format!("{name} with groups, step {}", step + 1));
        }
    }
}

/// Groups must matter: running the grouped problem without groups gives another answer.
#[test]
fn groups_change_the_result() {
    let (layout, groups) = grouped_layout();
    for (name, case) in cases() {
        let mut rng = Lcg::new(5);
        let start = rng.vec(layout.len(), 1.5);
        let grads: Vec<Vec<f32>> = (0..3).map(|s| rng.grads(layout.len(), s)).collect();
        let (mut grouped, mut plain) = (start.clone(), start);
        let mut with_groups = case.build();
        with_groups.set_groups(ParamGroups::new(&layout, &groups).unwrap());
        let mut without = case.build();
        for g in &grads {
            with_groups.step(&mut grouped, g);
            without.step(&mut plain, g);
        }
        assert_ne!(grouped, plain, "{name}: groups had no effect");
    }
}

// ---------------------------------------------------------------------------------------------
// (c) Thread counts

#[test]
fn large_buffers_are_identical_for_any_thread_count() {
    const LEN: usize = 300_000;
    // Each of the two runs is long enough to be split across threads.
    const _: () = assert!(LEN - 100_001 > gradus::parallel::PARALLEL_THRESHOLD);
    const _: () = assert!(100_001 > gradus::parallel::PARALLEL_THRESHOLD);
    // Runs that start off chunk boundaries, and an empty one between them.
    let mut layout = ParamLayout::new();
    layout.push("first", 100_001);
    layout.push("empty", 0);
    layout.push("second", LEN - 100_001);
    let groups = vec![ParamGroup::new(["second"]).lr_scale(0.7).weight_decay(0.03)];
    for (name, case) in cases() {
        let mut rng = Lcg::new(2024);
        let start = rng.vec(LEN, 1.0);
        let grads: Vec<Vec<f32>> = (0..3).map(|s| rng.grads(LEN, s)).collect();
        let mut results: Vec<Vec<f32>> = Vec::new();
        for threads in [1, 2, 3] {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            let params = pool.install(|| {
                let mut params = start.clone();
                let mut optimizer = case.build();
                optimizer.set_groups(ParamGroups::new(&layout, &groups).unwrap());
                for g in &grads {
                    optimizer.step(&mut params, g);
                }
                params
            });
            results.push(params);
        }
        assert_bits_equal(&results[1], &results[0], &format!("{name}: 2 threads against 1"));
        assert_bits_equal(&results[2], &results[0], &format!("{name}: 3 threads against 1"));
        let mut expected = start;
        let mut reference = Reference::grouped(&case, &layout, &groups);
        for g in &grads {
            reference.step(&mut expected, g);
        }
        assert_close(&results[2], &expected, REL, ABS, &format!("{name}: large buffer"));
    }
}

// ---------------------------------------------------------------------------------------------
// (d) State round trip

#[test]
fn state_round_trip_continues_bit_for_bit() {
    const LEN: usize = 257;
    for (name, case) in cases() {
        let mut rng = Lcg::new(31);
        let start = rng.vec(LEN, 1.0);
        let grads: Vec<Vec<f32>> = (0..10).map(|s| rng.grads(LEN, s)).collect();

        let mut uninterrupted = start.clone();
        let mut optimizer = case.build();
        for (step, g) in grads.iter().enumerate() {
            if step == 3 {
                optimizer.set_lr(case.lr() * 0.5);
            }
            optimizer.step(&mut uninterrupted, g);
        }

        let mut resumed = start;
        let mut first = case.build();
        for (step, g) in grads[..5].iter().enumerate() {
            if step == 3 {
                first.set_lr(case.lr() * 0.5);
            }
            first.step(&mut resumed, g);
        }
        let saved = serde_json::to_string(&first.state()).unwrap();
        let loaded: OptimizerState = serde_json::from_str(&saved).unwrap();
        assert_eq!(loaded, first.state(), "{name}: the state survives JSON");
        // The fresh optimizer starts at the configured rate: the state must restore the changed one.
        let mut second = case.build();
        second.load_state(&loaded).unwrap();
        assert_eq!(second.steps(), 5, "{name}");
        assert_eq!(second.lr(), case.lr() * 0.5, "{name}");
        for g in &grads[5..] {
            second.step(&mut resumed, g);
        }
        assert_bits_equal(&resumed, &uninterrupted, &format!("{name}: resumed run"));
        assert_eq!(second.state(), optimizer.state(), "{name}: final states");
    }
}

#[test]
fn state_of_another_optimizer_is_refused() {
    let mut adagrad = Adagrad::new(AdagradConfig::default()).unwrap();
    let rmsprop_state = RmsProp::new(RmsPropConfig::default()).unwrap().state();
    assert!(matches!(adagrad.load_state(&rmsprop_state), Err(StateError::WrongKind { .. })));
    let mut missing = Adamax::new(AdamaxConfig::default()).unwrap().state();
    missing.buffers.remove("exp_inf");
    let err = Adamax::new(AdamaxConfig::default()).unwrap().load_state(&missing).unwrap_err();
    assert!(matches!(err, StateError::BadBuffer { ref name, .. } if name == "exp_inf"), "{err}");
}

#[test]
fn state_buffers_have_pytorch_names() {
    let names = |mut optimizer: Box<dyn Optimizer>| {
        let mut params = vec![1.0f32; 3];
        optimizer.step(&mut params, &[0.1, -0.2, 0.3]);
        optimizer.state().buffers.into_iter().filter(|(_, b)| !b.is_empty()).map(|(n, _)| n).collect::<Vec<_>>()
    };
    assert_eq!(names(Box::new(Adagrad::new(AdagradConfig::default()).unwrap())), ["sum"]);
    assert_eq!(names(Box::new(RmsProp::new(RmsPropConfig::default()).unwrap())), ["square_avg"]);
    let full = RmsPropConfig { centered: true, momentum: 0.5, ..Default::default() };
    assert_eq!(names(Box::new(RmsProp::new(full).unwrap())), ["grad_avg", "momentum_buffer", "square_avg"]);
    assert_eq!(names(Box::new(Adadelta::new(AdadeltaConfig::default()).unwrap())), ["acc_delta", "square_avg"]);
    assert_eq!(names(Box::new(Adamax::new(AdamaxConfig::default()).unwrap())), ["exp_avg", "exp_inf"]);
}

// ---------------------------------------------------------------------------------------------
// (e) Validation and options

fn config_error(name: &str, options: Value) -> ConfigError {
    match from_options(name, &options) {
        Ok(_) => panic!("{name} accepted {options}"),
        Err(e) => e,
    }
}

#[test]
fn bad_options_are_refused_naming_the_option() {
    let bad = [
        ("sgd", json!({"lr": -0.1}), "lr"),
        ("sgd", json!({"momentum": -0.5}), "momentum"),
        ("sgd", json!({"dampening": -0.1}), "dampening"),
        ("sgd", json!({"weight_decay": -1.0}), "weight_decay"),
        ("sgd", json!({"nesterov": true}), "nesterov"),
        ("adagrad", json!({"lr": -0.1}), "lr"),
        ("adagrad", json!({"lr_decay": -0.1}), "lr_decay"),
        ("adagrad", json!({"weight_decay": -0.1}), "weight_decay"),
        ("adagrad", json!({"initial_accumulator_value": -0.1}), "initial_accumulator_value"),
        ("adagrad", json!({"eps": -1e-10}), "eps"),
        ("rmsprop", json!({"lr": -0.1}), "lr"),
        ("rmsprop", json!({"alpha": -0.1}), "alpha"),
        ("rmsprop", json!({"alpha": 1.01}), "alpha"),
        ("rmsprop", json!({"eps": -1e-8}), "eps"),
        ("rmsprop", json!({"weight_decay": -0.1}), "weight_decay"),
        ("rmsprop", json!({"momentum": -0.9}), "momentum"),
        ("adadelta", json!({"lr": -1.0}), "lr"),
        ("adadelta", json!({"rho": -0.1}), "rho"),
        ("adadelta", json!({"rho": 1.5}), "rho"),
        ("adadelta", json!({"eps": -1e-6}), "eps"),
        ("adadelta", json!({"weight_decay": -0.1}), "weight_decay"),
        ("adamax", json!({"lr": -0.002}), "lr"),
        ("adamax", json!({"betas": [1.0, 0.999]}), "betas"),
        ("adamax", json!({"betas": [0.9, 1.0]}), "betas"),
        ("adamax", json!({"betas": [-0.1, 0.999]}), "betas"),
        ("adamax", json!({"betas": [0.9, -0.5]}), "betas"),
        ("adamax", json!({"eps": -1e-8}), "eps"),
        ("adamax", json!({"weight_decay": -0.1}), "weight_decay"),
    ];
    for (name, options, option) in bad {
        let err = config_error(name, options.clone());
        assert_eq!(err.option, option, "{name} {options}: {err}");
        assert!(err.to_string().contains(option), "{err}");
    }
}

#[test]
fn non_finite_options_are_refused() {
    for value in [f64::NAN, f64::INFINITY] {
        assert_eq!(Adagrad::new(AdagradConfig { lr: value, ..Default::default() }).unwrap_err().option, "lr");
        assert_eq!(Adagrad::new(AdagradConfig { eps: value, ..Default::default() }).unwrap_err().option, "eps");
        assert_eq!(RmsProp::new(RmsPropConfig { alpha: value, ..Default::default() }).unwrap_err().option, "alpha");
        let momentum = RmsPropConfig { momentum: value, ..Default::default() };
        assert_eq!(RmsProp::new(momentum).unwrap_err().option, "momentum");
        assert_eq!(Adadelta::new(AdadeltaConfig { rho: value, ..Default::default() }).unwrap_err().option, "rho");
        let wd = AdadeltaConfig { weight_decay: value, ..Default::default() };
        assert_eq!(Adadelta::new(wd).unwrap_err().option, "weight_decay");
        let betas = AdamaxConfig { betas: [0.9, value], ..Default::default() };
        assert_eq!(Adamax::new(betas).unwrap_err().option, "betas");
        assert_eq!(Adamax::new(AdamaxConfig { lr: value, ..Default::default() }).unwrap_err().option, "lr");
    }
}

#[test]
fn boundary_options_are_accepted() {
    for (name, options) in [
        ("adagrad", json!({"lr": 0.0, "eps": 0.0, "lr_decay": 0.0})),
        ("rmsprop", json!({"alpha": 0.0})),
        ("rmsprop", json!({"alpha": 1.0, "momentum": 0.0, "centered": true})),
        ("adadelta", json!({"rho": 0.0})),
        ("adadelta", json!({"rho": 1.0})),
        ("adamax", json!({"betas": [0.0, 0.0]})),
    ] {
        assert!(from_options(name, &options).is_ok(), "{name} {options}");
    }
}

#[test]
fn unknown_and_mistyped_options_are_refused() {
    for name in ["adagrad", "rmsprop", "adadelta", "adamax"] {
        let err = config_error(name, json!({"learning_rate": 0.1}));
        assert!(err.to_string().contains("learning_rate"), "{err}");
        config_error(name, json!({"lr": "fast"}));
    }
    config_error("adamax", json!({"betas": [0.9]}));
    config_error("rmsprop", json!({"centered": 1}));
}

#[test]
fn defaults_are_pytorchs() {
    let adagrad = AdagradConfig::default();
    assert_eq!(
        (adagrad.lr, adagrad.lr_decay, adagrad.weight_decay, adagrad.initial_accumulator_value, adagrad.eps),
        (1e-2, 0.0, 0.0, 0.0, 1e-10)
    );
    assert!(!adagrad.maximize);
    let rmsprop = RmsPropConfig::default();
    assert_eq!(
        (rmsprop.lr, rmsprop.alpha, rmsprop.eps, rmsprop.weight_decay, rmsprop.momentum),
        (1e-2, 0.99, 1e-8, 0.0, 0.0)
    );
    assert!(!rmsprop.centered && !rmsprop.maximize);
    let adadelta = AdadeltaConfig::default();
    assert_eq!((adadelta.lr, adadelta.rho, adadelta.eps, adadelta.weight_decay), (1.0, 0.9, 1e-6, 0.0));
    assert!(!adadelta.maximize);
    let adamax = AdamaxConfig::default();
    assert_eq!((adamax.lr, adamax.betas, adamax.eps, adamax.weight_decay), (2e-3, [0.9, 0.999], 1e-8, 0.0));
    assert!(!adamax.maximize);
    // Absent options take the defaults.
    assert_eq!(serde_json::from_value::<AdagradConfig>(json!({})).unwrap(), adagrad);
    assert_eq!(serde_json::from_value::<RmsPropConfig>(json!({})).unwrap(), rmsprop);
    assert_eq!(serde_json::from_value::<AdadeltaConfig>(json!({})).unwrap(), adadelta);
    assert_eq!(serde_json::from_value::<AdamaxConfig>(json!({})).unwrap(), adamax);
    for (name, lr) in [("adagrad", 1e-2), ("rmsprop", 1e-2), ("adadelta", 1.0), ("adamax", 2e-3), ("sgd", 1e-3)] {
        let optimizer = from_options(name, &json!({})).unwrap();
        assert_eq!((optimizer.name(), optimizer.lr()), (name, lr));
    }
}

#[test]
fn adamax_propagates_nan_as_torch_maximum_does() {
    let mut optimizer = Adamax::new(AdamaxConfig::default()).unwrap();
    let mut params = vec![1.0f32, 2.0];
    optimizer.step(&mut params, &[f32::NAN, 0.5]);
    optimizer.step(&mut params, &[0.5, 0.5]);
    assert!(params[0].is_nan() && params[1].is_finite(), "{params:?}");
    assert!(optimizer.state().buffers["exp_inf"][0].is_nan());
}
