//! Adam, AdamW, NAdam, RAdam and Lion against plain scalar references written straight from their
//! update equations, against PyTorch's reference cases, across thread counts and across a state
//! save and restore.

use gradus::optim::adam::{Adam, AdamConfig};
use gradus::optim::adamw::{AdamW, AdamWConfig};
use gradus::optim::from_options;
use gradus::optim::lion::{Lion, LionConfig};
use gradus::optim::nadam::{NAdam, NAdamConfig};
use gradus::optim::radam::{RAdam, RAdamConfig};
use gradus::{ConfigError, Optimizer, OptimizerState, ParamGroup, ParamGroups, ParamLayout};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};

// ---------------------------------------------------------------------------------------------
// Scalar references: one element at a time, written from the published update equations (the
// algorithm boxes of the PyTorch documentation; Lion from Chen et al. 2023), sharing nothing with
// the library. Scalars are computed in f64 and element arithmetic is f32, as in PyTorch.
// ---------------------------------------------------------------------------------------------

/// Every option of the family, with the PyTorch (or paper) defaults of optimizer `name`.
#[derive(Debug, Clone)]
struct Opts {
    lr: f64,
    beta1: f64,
    beta2: f64,
    eps: f64,
    weight_decay: f64,
    amsgrad: bool,
    maximize: bool,
    decoupled: bool,
    momentum_decay: f64,
}

fn opts(name: &str, options: &Value) -> Opts {
    let (lr, betas, weight_decay) = match name {
        "adam" | "radam" => (1e-3, [0.9, 0.999], 0.0),
        "adamw" => (1e-3, [0.9, 0.999], 1e-2),
        "nadam" => (2e-3, [0.9, 0.999], 0.0),
        "lion" => (1e-4, [0.9, 0.99], 0.0),
        _ => panic!("no reference for {name}"),
    };
    let num = |key: &str, default: f64| options.get(key).map_or(default, |v| v.as_f64().unwrap());
    let flag = |key: &str| options.get(key).is_some_and(|v| v.as_bool().unwrap());
    let betas = options.get("betas").map_or(betas, |b| [b[0].as_f64().unwrap(), b[1].as_f64().unwrap()]);
    Opts {
        lr: num("lr", lr),
        beta1: betas[0],
        beta2: betas[1],
        eps: num("eps", 1e-8),
        weight_decay: num("weight_decay", weight_decay),
        amsgrad: flag("amsgrad"),
        maximize: flag("maximize"),
        decoupled: name == "adamw" || name == "lion" || flag("decoupled_weight_decay"),
        momentum_decay: num("momentum_decay", 4e-3),
    }
}

/// Per-element group options: learning-rate factor and weight-decay override.
type ElementOptions = Vec<(f64, Option<f64>)>;

struct Reference {
    name: String,
    o: Opts,
    t: u64,
    m: Vec<f32>,
    v: Vec<f32>,
    vmax: Vec<f32>,
    /// NAdam's running product of momentum factors, a float32 tensor in PyTorch.
    mu_product: f32,
}

impl Reference {
    fn new(name: &str, options: &Value, len: usize) -> Self {
        Self {
            name: name.to_string(),
            o: opts(name, options),
            t: 0,
            m: vec![0.0; len],
            v: vec![0.0; len],
            vmax: vec![0.0; len],
            mu_product: 1.0,
        }
    }

    fn step(&mut self, params: &mut [f32], grads: &[f32], elements: &ElementOptions) {
        self.t += 1;
        let o = self.o.clone();
        let t = self.t as f64;
        let (b1, b2) = (o.beta1, o.beta2);
        let bc1 = 1.0 - b1.powf(t);
        let bc2 = 1.0 - b2.powf(t);
        let mu = b1 * (1.0 - 0.5 * 0.96f64.powf(t * o.momentum_decay));
        let mu_next = b1 * (1.0 - 0.5 * 0.96f64.powf((t + 1.0) * o.momentum_decay));
        if self.name == "nadam" {
            self.mu_product *= mu as f32;
        }
        for i in 0..params.len() {
            let (lr_scale, wd) = elements[i];
            let lr = o.lr * lr_scale;
            let wd = wd.unwrap_or(o.weight_decay);
            let mut p = params[i];
            let mut g = if o.maximize { -grads[i] } else { grads[i] };
            let (m, v) = (&mut self.m[i], &mut self.v[i]);
            if self.name == "lion" {
                let c = b1 as f32 * *m + (1.0 - b1) as f32 * g;
                let sign = if c > 0.0 {
                    1.0
                } else if c < 0.0 {
                    -1.0
                } else {
                    0.0
                };
                p -= lr as f32 * (sign + wd as f32 * p);
                *m = b2 as f32 * *m + (1.0 - b2) as f32 * g;
                params[i] = p;
                continue;
            }
            if wd != 0.0 {
                if o.decoupled {
                    p *= (1.0 - lr * wd) as f32;
                } else {
                    g += wd as f32 * p;
                }
            }
            *m = b1 as f32 * *m + (1.0 - b1) as f32 * g;
            *v = b2 as f32 * *v + (1.0 - b2) as f32 * g * g;
            match self.name.as_str() {
                "adam" | "adamw" => {
                    let mut v_hat = *v;
                    if o.amsgrad {
                        self.vmax[i] = self.vmax[i].max(*v);
                        v_hat = self.vmax[i];
                    }
                    let m_hat = *m / bc1 as f32;
                    let v_hat = v_hat / bc2 as f32;
                    p -= lr as f32 * m_hat / (v_hat.sqrt() + o.eps as f32);
                }
                "nadam" => {
                    let mu_product = self.mu_product as f64;
                    let v_hat = *v / bc2 as f32;
                    let denom = v_hat.sqrt() + o.eps as f32;
                    let g_coeff = (lr * (1.0 - mu) / (1.0 - mu_product)) as f32;
                    let m_coeff = (lr * mu_next / (1.0 - mu_product * mu_next)) as f32;
                    p -= (g_coeff * g + m_coeff * *m) / denom;
                }
                "radam" => {
                    let m_hat = *m / bc1 as f32;
                    let rho_inf = 2.0 / (1.0 - b2) - 1.0;
                    let rho_t = rho_inf - 2.0 * t * b2.powf(t) / bc2;
                    if rho_t > 5.0 {
                        let l = bc2.sqrt() as f32 / (v.sqrt() + o.eps as f32);
                        let r = ((rho_t - 4.0) * (rho_t - 2.0) * rho_inf / ((rho_inf - 4.0) * (rho_inf - 2.0) * rho_t))
                            .sqrt();
                        p -= lr as f32 * m_hat * l * r as f32;
                    } else {
                        p -= lr as f32 * m_hat;
                    }
                }
                other => panic!("no reference for {other}"),
            }
            params[i] = p;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

const NAMES: [&str; 5] = ["adam", "adamw", "lion", "nadam", "radam"];

/// Option sets for each optimizer: defaults, weight decay, AMSGrad, maximize, decoupled decay,
/// and β₁ ≤ 0.5 (which takes the other branch of PyTorch's `lerp`).
fn configs(name: &str) -> Vec<Value> {
    match name {
        "adam" => vec![
            json!({}),
            json!({"lr": 0.01, "weight_decay": 0.1, "amsgrad": true}),
            json!({"lr": 0.05, "betas": [0.3, 0.9], "eps": 1e-6, "maximize": true}),
            json!({"lr": 0.02, "betas": [0.5, 0.99], "amsgrad": true, "maximize": true, "weight_decay": 0.01}),
        ],
        "adamw" => vec![
            json!({}),
            json!({"lr": 0.02, "weight_decay": 0.1, "amsgrad": true}),
            json!({"lr": 0.01, "betas": [0.3, 0.9], "maximize": true, "weight_decay": 0.0}),
        ],
        "nadam" => vec![
            json!({}),
            json!({"lr": 0.01, "weight_decay": 0.05, "decoupled_weight_decay": true}),
            json!({"lr": 0.01, "weight_decay": 0.05, "betas": [0.3, 0.9], "maximize": true, "momentum_decay": 0.01}),
        ],
        "radam" => vec![
            json!({}),
            json!({"lr": 0.01, "betas": [0.9, 0.9], "weight_decay": 0.05}),
            json!({"lr": 0.01, "betas": [0.3, 0.95], "weight_decay": 0.1, "decoupled_weight_decay": true, "maximize": true}),
        ],
        "lion" => vec![
            json!({}),
            json!({"lr": 0.01, "betas": [0.95, 0.98], "weight_decay": 0.1}),
            json!({"lr": 0.003, "maximize": true, "weight_decay": 0.5}),
        ],
        _ => unreachable!(),
    }
}

fn build(name: &str, options: &Value) -> Box<dyn Optimizer> {
    from_options(name, options).unwrap_or_else(|e| panic!("{name} {options}: {e}"))
}

fn random_params(rng: &mut ChaCha8Rng, len: usize) -> Vec<f32> {
    (0..len).map(|_| rng.random_range(-2.0f32..2.0)).collect()
}

/// Gradients over several orders of magnitude, with some exact zeros.
fn random_grads(rng: &mut ChaCha8Rng, len: usize) -> Vec<f32> {
    (0..len)
        .map(|_| {
            let scale = [0.0f32, 1e-3, 0.1, 1.0, 10.0][rng.random_range(0..5)];
            scale * rng.random_range(-1.0f32..1.0)
        })
        .collect()
}

fn assert_close(got: &[f32], want: &[f32], abs: f64, rel: f64, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: lengths differ");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let (g, w) = (g as f64, w as f64);
        assert!((g - w).abs() <= abs + rel * w.abs(), "{what}: element {i}: got {g}, want {w} (diff {:e})", g - w);
    }
}

fn assert_bits_equal(got: &[f32], want: &[f32], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: lengths differ");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert_eq!(g.to_bits(), w.to_bits(), "{what}: element {i}: {g} vs {w}");
    }
}

// ---------------------------------------------------------------------------------------------
// (a) Lengths 0..1000, several steps, every option set.
// ---------------------------------------------------------------------------------------------

#[test]
fn matches_scalar_reference_for_every_length() {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    for name in NAMES {
        for options in configs(name) {
            for len in [0usize, 1, 3, 7, 17, 1000] {
                let mut params = random_params(&mut rng, len);
                let mut want = params.clone();
                let mut optimizer = build(name, &options);
                let mut reference = Reference::new(name, &options, len);
                let elements = vec![(1.0, None); len];
                for step in 0..8 {
                    let grads = random_grads(&mut rng, len);
                    optimizer.step(&mut params, &grads);
                    reference.step(&mut want, &grads, &elements);
                    assert_close(&params, &want, 1e-6, 1e-6, &format!("{name} {options} len {len} step {step}"));
                }
                assert_eq!(optimizer.steps(), 8);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// (b) Parameter groups, including an empty segment.
// ---------------------------------------------------------------------------------------------

#[test]
fn parameter_groups_scale_lr_and_override_weight_decay() {
    let mut layout = ParamLayout::new();
    for (name, len) in [("a", 5), ("empty", 0), ("b", 7), ("c", 3), ("d", 11), ("e", 4)] {
        layout.push(name, len);
    }
    let groups = vec![
        ParamGroup::new(["a", "d"]).lr_scale(0.5).weight_decay(0.1),
        ParamGroup::new(["b"]).lr_scale(2.0),
        ParamGroup::new(["empty", "c"]).weight_decay(0.0),
    ];
    // Each element's options, worked out from the groups by hand ("e" is in no group).
    let mut elements: ElementOptions = Vec::new();
    for (len, options) in [(5, (0.5, Some(0.1))), (7, (2.0, None)), (3, (1.0, Some(0.0))), (11, (0.5, Some(0.1)))] {
        elements.extend(std::iter::repeat_n(options, len));
    }
    elements.extend(std::iter::repeat_n((1.0, None), 4));
    assert_eq!(elements.len(), layout.len());

    let mut rng = ChaCha8Rng::seed_from_u64(11);
    for name in NAMES {
        for options in configs(name) {
            // Give every configuration some weight decay so that the overrides matter.
            let mut options = options;
            if options.get("weight_decay").is_none_or(|w| w.as_f64() == Some(0.0)) {
                options["weight_decay"] = json!(0.02);
            }
            let mut params = random_params(&mut rng, layout.len());
            let mut want = params.clone();
            let mut optimizer = build(name, &options);
            optimizer.set_groups(ParamGroups::new(&layout, &groups).unwrap());
            let mut reference = Reference::new(name, &options, layout.len());
            for step in 0..8 {
                let grads = random_grads(&mut rng, layout.len());
                optimizer.step(&mut params, &grads);
                reference.step(&mut want, &grads, &elements);
                assert_close(&params, &want, 1e-6, 1e-6, &format!("{name} {options} with groups, step {step}"));
            }
            // The groups did change the result: without them the parameters differ.
            let mut plain = build(name, &options);
            let mut rng_again = ChaCha8Rng::seed_from_u64(0);
            let mut p1 = random_params(&mut rng_again, layout.len());
            let mut p2 = p1.clone();
            let grads = random_grads(&mut rng_again, layout.len());
            plain.step(&mut p1, &grads);
            let mut grouped = build(name, &options);
            grouped.set_groups(ParamGroups::new(&layout, &groups).unwrap());
            grouped.step(&mut p2, &grads);
            assert_ne!(p1, p2, "{name}: groups had no effect");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// (c) A buffer long enough to be split across threads: the same bits for 1, 2 and 3 threads.
// ---------------------------------------------------------------------------------------------

#[test]
fn large_buffer_is_identical_across_thread_counts() {
    const LEN: usize = 300_000;
    const { assert!(LEN > gradus::parallel::PARALLEL_THRESHOLD) };
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let params0 = random_params(&mut rng, LEN);
    let grads: Vec<Vec<f32>> = (0..3).map(|_| random_grads(&mut rng, LEN)).collect();
    for name in NAMES {
        for options in configs(name) {
            let run = |threads: usize| {
                let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
                pool.install(|| {
                    let mut optimizer = build(name, &options);
                    let mut params = params0.clone();
                    for g in &grads {
                        optimizer.step(&mut params, g);
                    }
                    (params, optimizer.state())
                })
            };
            let (one, state_one) = run(1);
            for threads in [2, 3] {
                let (many, state_many) = run(threads);
                assert_bits_equal(&many, &one, &format!("{name} {options}: {threads} threads vs 1"));
                for (key, buffer) in &state_one.buffers {
                    assert_bits_equal(&state_many.buffers[key], buffer, &format!("{name} `{key}`, {threads} threads"));
                }
            }
            let mut want = params0.clone();
            let mut reference = Reference::new(name, &options, LEN);
            let elements = vec![(1.0, None); LEN];
            for g in &grads {
                reference.step(&mut want, g, &elements);
            }
            // Relative 1e-6, with an absolute floor for parameters that cancel to near zero (θ ≈ γ·update
            // leaves a few ulps of the update). With an L2 term the gradient depends on θ, and where it
            // nearly cancels (g ≈ −λθ) an ulp of difference in θ is amplified: those runs get the floor
            // of the small tests.
            let o = opts(name, &options);
            let abs = if o.weight_decay != 0.0 && !o.decoupled { 1e-6 } else { 1e-7 };
            assert_close(&one, &want, abs, 1e-6, &format!("{name} {options}: large buffer vs reference"));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// (d) Save, serialize, restore, continue: the same bits as an uninterrupted run.
// ---------------------------------------------------------------------------------------------

#[test]
fn state_round_trip_continues_bit_for_bit() {
    let len = 1000;
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    for name in NAMES {
        for options in configs(name) {
            let params0 = random_params(&mut rng, len);
            let grads: Vec<Vec<f32>> = (0..10).map(|_| random_grads(&mut rng, len)).collect();

            let mut uninterrupted = build(name, &options);
            let mut want = params0.clone();
            for g in &grads {
                uninterrupted.step(&mut want, g);
            }

            let mut first = build(name, &options);
            let mut got = params0.clone();
            for g in &grads[..5] {
                first.step(&mut got, g);
            }
            let saved = serde_json::to_string(&first.state()).unwrap();
            drop(first);
            let state: OptimizerState = serde_json::from_str(&saved).unwrap();
            assert_eq!(state.optimizer, name);
            assert_eq!(state.step, 5);
            let mut second = build(name, &options);
            second.load_state(&state).unwrap();
            assert_eq!(second.steps(), 5);
            for g in &grads[5..] {
                second.step(&mut got, g);
            }
            assert_eq!(second.steps(), 10);
            assert_bits_equal(&got, &want, &format!("{name} {options}: resumed vs uninterrupted"));
        }
    }
}

#[test]
fn load_state_rejects_other_kinds_and_bad_buffers() {
    let mut adam = build("adam", &json!({}));
    let mut params = vec![1.0f32; 4];
    adam.step(&mut params, &[0.1, 0.2, 0.3, 0.4]);
    let state = adam.state();

    let mut adamw = build("adamw", &json!({}));
    assert!(adamw.load_state(&state).is_err(), "adamw loaded adam's state");

    let mut fresh = build("adam", &json!({}));
    let mut missing = state.clone();
    missing.buffers.remove("exp_avg_sq");
    assert!(fresh.load_state(&missing).is_err(), "loaded a state without exp_avg_sq");
    let mut short = state.clone();
    short.buffers.insert("exp_avg_sq".into(), vec![0.0; 3]);
    assert!(fresh.load_state(&short).is_err(), "loaded buffers of different lengths");

    let mut nadam = build("nadam", &json!({}));
    nadam.step(&mut params, &[0.1, 0.2, 0.3, 0.4]);
    let mut no_mu = nadam.state();
    assert!(no_mu.scalars.contains_key("mu_product"));
    no_mu.scalars.clear();
    assert!(build("nadam", &json!({})).load_state(&no_mu).is_err(), "loaded NAdam state without mu_product");
}

// ---------------------------------------------------------------------------------------------
// (e) Validation.
// ---------------------------------------------------------------------------------------------

fn config_error(name: &str, options: Value) -> ConfigError {
    match from_options(name, &options) {
        Ok(_) => panic!("{name} accepted {options}"),
        Err(e) => e,
    }
}

#[test]
fn bad_options_are_rejected_naming_the_option() {
    for name in NAMES {
        let mut cases = vec![
            (json!({"lr": -0.1}), "lr"),
            (json!({"betas": [1.0, 0.99]}), "betas"),
            (json!({"betas": [0.9, 1.5]}), "betas"),
            (json!({"betas": [-0.1, 0.99]}), "betas"),
            (json!({"weight_decay": -0.01}), "weight_decay"),
        ];
        if name != "lion" {
            cases.push((json!({"eps": -1e-8}), "eps"));
        }
        if name == "nadam" {
            cases.push((json!({"momentum_decay": -0.004}), "momentum_decay"));
        }
        for (options, option) in cases {
            let error = config_error(name, options.clone());
            assert_eq!(error.option, option, "{name} {options}: {error}");
        }
        // Unknown options and options of another optimizer are refused, not ignored.
        let error = config_error(name, json!({"momentum": 0.9}));
        assert_eq!(error.option, format!("{name} options"));
        // Valid edge values are accepted.
        assert!(from_options(name, &json!({"lr": 0.0, "betas": [0.0, 0.0], "weight_decay": 0.0})).is_ok());
    }
    assert_eq!(config_error("adams", json!({})).option, "optimizer");
    assert_eq!(config_error("lion", json!({"eps": 1e-8})).option, "lion options");
    assert_eq!(config_error("adam", json!({"decoupled_weight_decay": true})).option, "adam options");

    // Values JSON cannot carry are checked by the typed constructors.
    assert_eq!(Adam::new(AdamConfig { lr: f64::NAN, ..Default::default() }).unwrap_err().option, "lr");
    assert_eq!(AdamW::new(AdamWConfig { eps: f64::INFINITY, ..Default::default() }).unwrap_err().option, "eps");
    assert_eq!(NAdam::new(NAdamConfig { betas: [0.9, f64::NAN], ..Default::default() }).unwrap_err().option, "betas");
    assert_eq!(
        RAdam::new(RAdamConfig { weight_decay: f64::NEG_INFINITY, ..Default::default() }).unwrap_err().option,
        "weight_decay"
    );
    assert_eq!(Lion::new(LionConfig { lr: -1.0, ..Default::default() }).unwrap_err().option, "lr");
}

#[test]
fn defaults_are_pytorchs() {
    let expected_lr = [("adam", 1e-3), ("adamw", 1e-3), ("lion", 1e-4), ("nadam", 2e-3), ("radam", 1e-3)];
    for (name, lr) in expected_lr {
        let optimizer = build(name, &json!({}));
        assert_eq!(optimizer.name(), name);
        assert_eq!(optimizer.lr(), lr, "{name}");
    }
    let adam = AdamConfig::default();
    assert_eq!((adam.betas, adam.eps, adam.weight_decay, adam.amsgrad), ([0.9, 0.999], 1e-8, 0.0, false));
    assert_eq!(AdamWConfig::default().weight_decay, 1e-2);
    let nadam = NAdamConfig::default();
    assert_eq!((nadam.momentum_decay, nadam.decoupled_weight_decay), (4e-3, false));
    assert_eq!(LionConfig::default().betas, [0.9, 0.99]);
    // Deserializing `{}` gives the defaults.
    let parsed: RAdamConfig = serde_json::from_value(json!({})).unwrap();
    assert_eq!(parsed, RAdamConfig::default());
}

// ---------------------------------------------------------------------------------------------
// Lion by hand: the paper's update written out for three steps on three elements.
// ---------------------------------------------------------------------------------------------

#[test]
fn lion_matches_hand_computed_steps() {
    // γ = 0.1, β₁ = 0.9, β₂ = 0.99, λ = 0.5, m₀ = 0.
    let mut lion = Lion::new(LionConfig { lr: 0.1, betas: [0.9, 0.99], weight_decay: 0.5, maximize: false }).unwrap();
    let mut params = vec![1.0f32, -2.0, 0.5];
    // Step 1, g = (0.5, −1, 0): c = 0.1 g = (0.05, −0.1, 0), sign (1, −1, 0).
    //   θ = (1 − 0.1 (1 + 0.5),  −2 − 0.1 (−1 − 1),  0.5 − 0.1 (0 + 0.25)) = (0.85, −1.8, 0.475)
    //   m = 0.01 g = (0.005, −0.01, 0)
    lion.step(&mut params, &[0.5, -1.0, 0.0]);
    assert_close(&params, &[0.85, -1.8, 0.475], 1e-6, 0.0, "lion step 1");
    // Step 2, g = (−0.2, 0.3, 0): c = 0.9 m + 0.1 g = (−0.0155, 0.021, 0), sign (−1, 1, 0).
    //   θ = (0.85 − 0.1 (−1 + 0.425),  −1.8 − 0.1 (1 − 0.9),  0.475 − 0.1 · 0.2375)
    //     = (0.9075, −1.81, 0.45125)
    //   m = 0.99 m + 0.01 g = (0.00295, −0.0069, 0)
    lion.step(&mut params, &[-0.2, 0.3, 0.0]);
    assert_close(&params, &[0.9075, -1.81, 0.45125], 1e-6, 0.0, "lion step 2");
    // Step 3, g = (0.01, 0.05, −1): c = (0.003655, −0.00121, −0.1), sign (1, −1, −1).
    //   θ = (0.9075 − 0.1 (1 + 0.45375),  −1.81 − 0.1 (−1 − 0.905),  0.45125 − 0.1 (−1 + 0.225625))
    //     = (0.762125, −1.6195, 0.5286875)
    //   m = (0.0030205, −0.006331, −0.01)
    lion.step(&mut params, &[0.01, 0.05, -1.0]);
    assert_close(&params, &[0.762125, -1.6195, 0.5286875], 1e-6, 0.0, "lion step 3");
    assert_close(&lion.state().buffers["exp_avg"], &[0.0030205, -0.006331, -0.01], 1e-8, 0.0, "lion momentum");

    // Maximizing −f is minimizing f: negated gradients with maximize give the same parameters.
    let mut max = Lion::new(LionConfig { lr: 0.1, betas: [0.9, 0.99], weight_decay: 0.5, maximize: true }).unwrap();
    let mut params = vec![1.0f32, -2.0, 0.5];
    for g in [[0.5f32, -1.0, 0.0], [-0.2, 0.3, 0.0], [0.01, 0.05, -1.0]] {
        max.step(&mut params, &g.map(|x| -x));
    }
    assert_close(&params, &[0.762125, -1.6195, 0.5286875], 1e-6, 0.0, "lion maximize");
}
