//! Losses and the multilayer perceptron (PyTorch's cases are in `reference.rs`) against central finite
//! differences, an independent naive forward pass, and thread-count independence.

use gradus::loss::{Loss, Real};
use gradus::mlp::{Activation, Mlp, BLOCK_ROWS};
use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

// ---------------------------------------------------------------------------------------------
// Loss properties
// ---------------------------------------------------------------------------------------------

fn arb_loss() -> impl Strategy<Value = Loss> {
    prop_oneof![
        Just(Loss::Mse),
        Just(Loss::L1),
        (0.1f64..3.0).prop_map(|delta| Loss::Huber { delta }),
        Just(Loss::BceWithLogits),
        (0.0f64..=1.0).prop_map(|label_smoothing| Loss::CrossEntropy { label_smoothing }),
        Just(Loss::Hinge),
    ]
}

/// Outputs and targets fitting `loss`, drawn from `seed`.
fn loss_batch(loss: Loss, rows: usize, cols: usize, scale: f64, seed: u64) -> (Vec<f64>, Vec<f64>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let outputs: Vec<f64> = (0..rows * cols).map(|_| scale * (2.0 * rng.random::<f64>() - 1.0)).collect();
    let targets = match loss {
        Loss::CrossEntropy { .. } => (0..rows).map(|_| rng.random_range(0..cols) as f64).collect(),
        Loss::BceWithLogits => (0..rows * cols).map(|_| rng.random::<f64>()).collect(),
        Loss::Hinge => (0..rows * cols).map(|_| if rng.random::<bool>() { 1.0 } else { -1.0 }).collect(),
        _ => (0..rows * cols).map(|_| 3.0 * (2.0 * rng.random::<f64>() - 1.0)).collect(),
    };
    (outputs, targets)
}

/// Whether some output lies within `margin` of a kink of `loss`, where finite differences
/// straddle two slopes.
fn near_kink(loss: Loss, outputs: &[f64], targets: &[f64], margin: f64) -> bool {
    match loss {
        Loss::L1 => outputs.iter().zip(targets).any(|(x, y)| (x - y).abs() < margin),
        Loss::Hinge => outputs.iter().zip(targets).any(|(x, y)| (1.0 - x * y).abs() < margin),
        _ => false,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::with_cases(200) })]

    #[test]
    fn loss_gradients_match_central_differences(
        loss in arb_loss(), rows in 1usize..6, cols in 1usize..6, scale in 0.1f64..10.0, seed in any::<u64>()
    ) {
        let (outputs, targets) = loss_batch(loss, rows, cols, scale, seed);
        prop_assume!(!near_kink(loss, &outputs, &targets, 1e-4));
        let mut grad = vec![0.0; outputs.len()];
        let value = loss.value_grad(&outputs, &targets, cols, &mut grad);
        let h = 1e-6;
        for i in 0..outputs.len() {
            let mut shifted = outputs.clone();
            shifted[i] = outputs[i] + h;
            let mut scratch = vec![0.0; outputs.len()];
            let up = loss.value_grad(&shifted, &targets, cols, &mut scratch);
            shifted[i] = outputs[i] - h;
            let down = loss.value_grad(&shifted, &targets, cols, &mut scratch);
            let numeric = (up - down) / (2.0 * h);
            prop_assert!(
                (numeric - grad[i]).abs() <= 1e-6 + 1e-5 * numeric.abs(),
                "{loss:?} element {i}: analytic {} numeric {numeric} (value {value})", grad[i]
            );
        }
    }

    #[test]
    fn f32_losses_agree_with_f64(
        loss in arb_loss(), rows in 1usize..6, cols in 1usize..6, scale in 0.1f64..10.0, seed in any::<u64>()
    ) {
        let (outputs, targets) = loss_batch(loss, rows, cols, scale, seed);
        let outputs32: Vec<f32> = outputs.iter().map(|&v| v as f32).collect();
        let targets32: Vec<f32> = targets.iter().map(|&v| v as f32).collect();
        // Compare against float64 at the float32-rounded inputs, so only the arithmetic differs.
        let rounded: Vec<f64> = outputs32.iter().map(|&v| v as f64).collect();
        let rounded_targets: Vec<f64> = targets32.iter().map(|&v| v as f64).collect();
        prop_assume!(!near_kink(loss, &rounded, &rounded_targets, 1e-5));
        let mut grad = vec![0.0; outputs.len()];
        let mut grad32 = vec![0.0f32; outputs.len()];
        let value = loss.value_grad(&rounded, &rounded_targets, cols, &mut grad);
        let value32 = loss.value_grad(&outputs32, &targets32, cols, &mut grad32);
        prop_assert!((value - value32).abs() <= 1e-5 * (1.0 + value.abs()), "{value} vs {value32}");
        for (g, g32) in grad.iter().zip(&grad32) {
            prop_assert!((g - *g32 as f64).abs() <= 1e-6 + 1e-5 * g.abs(), "{g} vs {g32}");
        }
    }

    #[test]
    fn extreme_logits_stay_finite(
        loss in prop_oneof![Just(Loss::BceWithLogits), Just(Loss::CrossEntropy { label_smoothing: 0.1 })],
        rows in 1usize..5, cols in 2usize..6, scale in 80.0f64..1e30, seed in any::<u64>()
    ) {
        let (outputs, targets) = loss_batch(loss, rows, cols, scale, seed);
        let outputs32: Vec<f32> = outputs.iter().map(|&v| v as f32).collect();
        let targets32: Vec<f32> = targets.iter().map(|&v| v as f32).collect();
        let mut grad = vec![0.0; outputs.len()];
        let mut grad32 = vec![0.0f32; outputs.len()];
        let value = loss.value_grad(&outputs, &targets, cols, &mut grad);
        let value32 = loss.value_grad(&outputs32, &targets32, cols, &mut grad32);
        prop_assert!(value.is_finite() && value >= 0.0 && value32.is_finite() && value32 >= 0.0);
        prop_assert!(grad.iter().all(|g| g.is_finite()) && grad32.iter().all(|g| g.is_finite()));
        // Each gradient entry is bounded by the per-element weight of the mean.
        let bound = 1.0 / loss.mean_denominator(rows, cols) as f64 + 1e-12;
        prop_assert!(grad.iter().all(|g| g.abs() <= bound));
    }
}

#[test]
fn subgradients_at_kinks_follow_pytorch() {
    let mut grad = [1.0f64; 2];
    // l1: sign(0) = 0.
    Loss::L1.value_grad(&[1.5, 2.0], &[1.5, 1.0], 1, &mut grad);
    assert_eq!(grad, [0.0, 0.5]);
    // hinge: y x = 1 is on the flat side, as relu(1 − y x).
    let value = Loss::Hinge.value_grad(&[1.0, -1.0], &[1.0, -1.0], 1, &mut grad);
    assert_eq!(grad, [0.0, 0.0]);
    assert_eq!(value, 0.0);
}

// ---------------------------------------------------------------------------------------------
// MLP properties
// ---------------------------------------------------------------------------------------------

/// A naive float64 forward pass, independent of the library's: returns the outputs and every
/// layer's pre-activations.
fn naive_forward(mlp: &Mlp, params: &[f64], x: &[f64], rows: usize) -> (Vec<f64>, Vec<f64>) {
    let sizes = mlp.sizes();
    let mut h: Vec<f64> = x.to_vec();
    let mut pre_all = Vec::new();
    for (i, &activation) in mlp.activations().iter().enumerate() {
        let (n_in, n_out) = (sizes[i], sizes[i + 1]);
        let w = &params[mlp.layout().segment(&format!("layer{i}.weight")).unwrap().range()];
        let b = &params[mlp.layout().segment(&format!("layer{i}.bias")).unwrap().range()];
        let mut next = vec![0.0; rows * n_out];
        for r in 0..rows {
            for o in 0..n_out {
                let z: f64 = b[o] + (0..n_in).map(|k| h[r * n_in + k] * w[o * n_in + k]).sum::<f64>();
                pre_all.push(z);
                next[r * n_out + o] = match activation {
                    Activation::Relu => z.max(0.0),
                    Activation::LeakyRelu => {
                        if z > 0.0 {
                            z
                        } else {
                            0.01 * z
                        }
                    }
                    Activation::Tanh => z.tanh(),
                    Activation::Sigmoid => 1.0 / (1.0 + (-z).exp()),
                    Activation::Identity => z,
                };
            }
        }
        h = next;
    }
    (h, pre_all)
}

fn arb_activation() -> impl Strategy<Value = Activation> {
    prop_oneof![
        Just(Activation::Relu),
        Just(Activation::LeakyRelu),
        Just(Activation::Tanh),
        Just(Activation::Sigmoid),
        Just(Activation::Identity),
    ]
}

fn arb_mlp() -> impl Strategy<Value = Mlp> {
    (prop::collection::vec(1usize..6, 2..5), arb_loss()).prop_flat_map(|(sizes, loss)| {
        let layers = sizes.len() - 1;
        prop::collection::vec(arb_activation(), layers).prop_map(move |activations| {
            // Loss kinks make finite differences meaningless; test the smooth losses here.
            let loss = match loss {
                Loss::L1 | Loss::Hinge => Loss::Mse,
                other => other,
            };
            Mlp::new(&sizes, &activations, loss).unwrap()
        })
    })
}

/// Random float64 parameters, inputs and targets for `mlp`.
fn mlp_batch(mlp: &Mlp, rows: usize, seed: u64) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let params: Vec<f64> = (0..mlp.num_params()).map(|_| 2.0 * rng.random::<f64>() - 1.0).collect();
    let x: Vec<f64> = (0..rows * mlp.input_size()).map(|_| 2.0 * rng.random::<f64>() - 1.0).collect();
    let (_, targets) = loss_batch(mlp.loss(), rows, mlp.output_size(), 1.0, rng.random());
    (params, x, targets)
}

proptest! {
    #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::with_cases(64) })]

    #[test]
    fn mlp_gradient_matches_central_differences(mlp in arb_mlp(), rows in 1usize..80, seed in any::<u64>()) {
        let (params, x, targets) = mlp_batch(&mlp, rows, seed);
        let (naive_out, pre) = naive_forward(&mlp, &params, &x, rows);
        // Finite differences straddling a relu kink measure neither side.
        let kinked = mlp.activations().iter().any(|a| matches!(a, Activation::Relu | Activation::LeakyRelu));
        prop_assume!(!kinked || pre.iter().all(|z| z.abs() > 1e-4));

        let mut grad = vec![0.0; mlp.num_params()];
        let value = mlp.loss_and_gradient(&params, &x, rows, &targets, &mut grad);
        // The forward pass agrees with the naive one.
        let mut scratch = vec![0.0; naive_out.len()];
        let naive_value = mlp.loss().value_grad(&naive_out, &targets, mlp.output_size(), &mut scratch);
        prop_assert!((value - naive_value).abs() <= 1e-12 * (1.0 + naive_value.abs()), "{value} vs {naive_value}");

        let h = 1e-6;
        let mut shifted = params.clone();
        let mut unused = vec![0.0; mlp.num_params()];
        for i in 0..params.len() {
            shifted[i] = params[i] + h;
            let up = mlp.loss_and_gradient(&shifted, &x, rows, &targets, &mut unused);
            shifted[i] = params[i] - h;
            let down = mlp.loss_and_gradient(&shifted, &x, rows, &targets, &mut unused);
            shifted[i] = params[i];
            let numeric = (up - down) / (2.0 * h);
            prop_assert!(
                (numeric - grad[i]).abs() <= 1e-6 + 1e-5 * numeric.abs(),
                "{:?} {:?} {:?} param {i}: analytic {} numeric {numeric}",
                mlp.sizes(), mlp.activations(), mlp.loss(), grad[i]
            );
        }
    }

    #[test]
    fn predict_matches_naive_forward(mlp in arb_mlp(), rows in 0usize..150, seed in any::<u64>()) {
        let (params, x, _) = mlp_batch(&mlp, rows, seed);
        let (naive_out, _) = naive_forward(&mlp, &params, &x, rows);
        let mut out = vec![f64::NAN; naive_out.len()];
        mlp.predict(&params, &x, rows, &mut out);
        for (got, want) in out.iter().zip(&naive_out) {
            prop_assert!((got - want).abs() <= 1e-12 * (1.0 + want.abs()), "{got} vs {want}");
        }
    }
}

fn classifier() -> Mlp {
    Mlp::new(
        &[20, 16, 8, 5],
        &[Activation::Relu, Activation::Tanh, Activation::Identity],
        Loss::cross_entropy(0.05).unwrap(),
    )
    .unwrap()
}

fn f32_batch(mlp: &Mlp, rows: usize, seed: u64) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let (params, x, targets) = mlp_batch(mlp, rows, seed);
    let to32 = |v: Vec<f64>| v.into_iter().map(|e| e as f32).collect::<Vec<f32>>();
    (to32(params), to32(x), to32(targets))
}

#[test]
fn gradient_is_bit_identical_across_thread_counts() {
    let rows = 300;
    assert!(rows > 4 * BLOCK_ROWS, "the batch must span several blocks");
    for mlp in [classifier(), Mlp::new(&[7, 33, 3], &[Activation::LeakyRelu, Activation::Sigmoid], Loss::Mse).unwrap()]
    {
        let (params, x, targets) = f32_batch(&mlp, rows, 11);
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            pool.install(|| {
                let mut grad = vec![0.0f32; mlp.num_params()];
                let value = mlp.loss_and_gradient(&params, &x, rows, &targets, &mut grad);
                (value.to_bits(), grad.iter().map(|g| g.to_bits()).collect::<Vec<u32>>())
            })
        };
        let single = run(1);
        assert!(single.1.iter().any(|&g| g != 0), "a gradient of zeros proves nothing");
        assert_eq!(run(2), single);
        assert_eq!(run(3), single);
        // And a repeat on the same pool (reused scratch buffers) changes nothing.
        assert_eq!(run(3), single);
    }
}

#[test]
fn f32_gradient_is_close_to_f64() {
    let mlp = classifier();
    let rows = 200;
    let (params, x, targets) = mlp_batch(&mlp, rows, 5);
    let mut grad = vec![0.0f64; mlp.num_params()];
    let value = mlp.loss_and_gradient(&params, &x, rows, &targets, &mut grad);
    let to32 = |v: &[f64]| v.iter().map(|&e| e as f32).collect::<Vec<f32>>();
    let mut grad32 = vec![0.0f32; mlp.num_params()];
    let value32 = mlp.loss_and_gradient(&to32(&params), &to32(&x), rows, &to32(&targets), &mut grad32);
    assert!((value - value32).abs() <= 1e-5 * value.abs(), "{value} vs {value32}");
    let scale = grad.iter().fold(0.0f64, |m, g| m.max(g.abs()));
    for (g, g32) in grad.iter().zip(&grad32) {
        assert!((g - *g32 as f64).abs() <= 1e-4 * scale, "{g} vs {g32}");
    }
}

#[test]
fn empty_batch_gives_nan_and_zero_gradient() {
    let mlp = classifier();
    let params = mlp.init(0);
    let mut grad = vec![1.0f32; mlp.num_params()];
    assert!(mlp.loss_and_gradient(&params, &[], 0, &[], &mut grad).is_nan());
    assert!(grad.iter().all(|&g| g == 0.0));
}

#[test]
fn init_is_reproducible_from_the_seed() {
    let mlp =
        Mlp::new(&[784, 128, 64, 10], &[Activation::Relu, Activation::Tanh, Activation::Identity], Loss::Mse).unwrap();
    let a = mlp.init(42);
    let b = mlp.init(42);
    let c = mlp.init(43);
    assert_eq!(a.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), b.iter().map(|v| v.to_bits()).collect::<Vec<_>>());
    assert_ne!(a, c);
    let mut into = vec![7.0f32; mlp.num_params()];
    mlp.init_into(42, &mut into);
    assert_eq!(into, a);

    let segment = |name: &str| &a[mlp.layout().segment(name).unwrap().range()];
    let std = |v: &[f32]| (v.iter().map(|&w| (w as f64).powi(2)).sum::<f64>() / v.len() as f64).sqrt();
    // He normal for relu: std √(2 / 784).
    let he = std(segment("layer0.weight"));
    assert!((he / (2.0f64 / 784.0).sqrt() - 1.0).abs() < 0.02, "relu layer std {he}");
    // Xavier uniform for tanh and identity: bound √(6 / (fan_in + fan_out)), std bound / √3.
    for (name, fan_in, fan_out) in [("layer1.weight", 128.0, 64.0), ("layer2.weight", 64.0, 10.0)] {
        let bound = (6.0f64 / (fan_in + fan_out)).sqrt();
        let weights = segment(name);
        assert!(weights.iter().all(|&w| (w as f64).abs() <= bound));
        let ratio = std(weights) / (bound / 3.0f64.sqrt());
        assert!((ratio - 1.0).abs() < 0.1, "{name} std ratio {ratio}");
    }
    for layer in 0..3 {
        assert!(segment(&format!("layer{layer}.bias")).iter().all(|&b| b == 0.0));
    }
}

#[test]
fn layer_gradient_norms_are_per_segment_l2_norms() {
    let mlp = classifier();
    let grad: Vec<f32> = (0..mlp.num_params()).map(|i| (i % 7) as f32 - 3.0).collect();
    let norms = mlp.layer_gradient_norms(&grad);
    assert_eq!(norms.len(), 3);
    for (i, norm) in norms.iter().enumerate() {
        let manual = |name: String| {
            grad[mlp.layout().segment(&name).unwrap().range()].iter().map(|&g| (g as f64).powi(2)).sum::<f64>().sqrt()
        };
        assert_eq!(norm.weight, manual(format!("layer{i}.weight")));
        assert_eq!(norm.bias, manual(format!("layer{i}.bias")));
    }
}

/// Training reduces the loss: a few hundred plain gradient steps on a separable problem.
#[test]
fn gradient_descent_learns_a_separable_problem() {
    let mlp =
        Mlp::new(&[2, 16, 2], &[Activation::Tanh, Activation::Identity], Loss::cross_entropy(0.0).unwrap()).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let rows = 256;
    let x: Vec<f32> = (0..rows * 2).map(|_| rng.random::<f32>() * 2.0 - 1.0).collect();
    let targets: Vec<f32> = x.chunks(2).map(|p| if p[0] * p[1] > 0.0 { 1.0 } else { 0.0 }).collect();
    let mut params = mlp.init(1);
    let mut grad = vec![0.0f32; mlp.num_params()];
    let first = mlp.loss_and_gradient(&params, &x, rows, &targets, &mut grad);
    let mut last = first;
    for _ in 0..2000 {
        last = mlp.loss_and_gradient(&params, &x, rows, &targets, &mut grad);
        params.iter_mut().zip(&grad).for_each(|(p, g)| *p -= 0.5 * g);
    }
    assert!(last < 0.25 * first, "loss went from {first} to {last}");
    let mut logits = vec![0.0f32; rows * 2];
    mlp.predict(&params, &x, rows, &mut logits);
    let correct = logits.chunks(2).zip(&targets).filter(|(l, &t)| (if l[1] > l[0] { 1.0 } else { 0.0 }) == t).count();
    assert!(correct as f64 / rows as f64 > 0.9, "accuracy {correct}/{rows}");
}

/// `Real` is implemented for both float types (compile-time check of the public bound).
#[test]
fn real_is_available_for_both_float_types() {
    fn roundtrip<T: Real>(v: f64) -> f64 {
        T::from_f64(v).to_f64()
    }
    assert_eq!(roundtrip::<f64>(0.1), 0.1);
    assert_eq!(roundtrip::<f32>(0.1), 0.1f32 as f64);
}
