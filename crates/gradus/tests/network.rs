//! Networks of layers against central finite differences (every layer, random shapes: strides,
//! padding, kernels that do not divide the input, batches of one), the `f32` fast paths against
//! the `f64` generic code, thread-count independence, shape errors, and training through the
//! engine (PyTorch's reference cases are in `reference.rs`).

use gradus::loss::Loss;
use gradus::model::{evaluate, Model, Rows};
use gradus::nn::{BagMode, Init, LayerSpec, Network, NetworkSpec, Shape};
use gradus::optim::{Sgd, SgdConfig};
use gradus::train::{BatchMode, Checkpoint, CheckpointConfig, TrainConfig, Trainer};
use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A random image network: convolution, activation, optional batch norm, pooling and dropout,
/// then dense layers.
#[derive(Debug, Clone)]
struct Case {
    input: Shape,
    layers: Vec<LayerSpec>,
    loss: Loss,
    rows: usize,
    seed: u64,
}

fn activation() -> impl Strategy<Value = LayerSpec> {
    prop_oneof![
        Just(LayerSpec::Relu),
        Just(LayerSpec::LeakyRelu { negative_slope: 0.1 }),
        Just(LayerSpec::Tanh),
        Just(LayerSpec::Sigmoid),
        Just(LayerSpec::Gelu),
    ]
}

fn case() -> impl Strategy<Value = Case> {
    (
        (1usize..4, 3usize..10, 3usize..10),
        (1usize..5, 1usize..5, 1usize..4, 0usize..3),
        (activation(), any::<bool>(), 0usize..3, 1usize..4, 1usize..3),
        (any::<bool>(), any::<bool>(), activation(), 1usize..5),
        (1usize..6, any::<bool>(), any::<u64>()),
    )
        .prop_map(
            |(
                (c, h, w),
                (out, k, stride, padding),
                (act, bn2d, pool, pk, ps),
                (dropout, bn1d, act2, hidden),
                (rows, ce, seed),
            )| {
                let mut layers = vec![LayerSpec::Conv2d { out_channels: out, kernel_size: k, stride, padding }];
                if bn2d {
                    layers.push(LayerSpec::BatchNorm2d { eps: 1e-5, momentum: 0.1 });
                }
                layers.push(act);
                match pool {
                    1 => layers.push(LayerSpec::MaxPool2d { kernel_size: pk, stride: Some(ps) }),
                    2 => layers.push(LayerSpec::AvgPool2d { kernel_size: pk, stride: Some(ps) }),
                    _ => {}
                }
                if dropout {
                    layers.push(LayerSpec::Dropout { p: 0.3 });
                }
                layers.push(LayerSpec::Flatten);
                layers.push(LayerSpec::Linear { out_features: Some(hidden), bias: true });
                if bn1d {
                    layers.push(LayerSpec::BatchNorm1d { eps: 1e-5, momentum: 0.1 });
                }
                layers.push(act2);
                layers.push(LayerSpec::Linear { out_features: Some(3), bias: true });
                let loss = if ce { Loss::cross_entropy(0.0).unwrap() } else { Loss::Mse };
                Case { input: Shape::image(c, h, w), layers, loss, rows, seed }
            },
        )
}

/// The network (when the shapes fit), its parameters (perturbed from PyTorch's initialization so
/// that batch norm's scales and shifts are not 1 and 0), inputs and targets.
/// A built case: the network, its parameters, inputs and targets.
type Built = (Network, Vec<f64>, Vec<f64>, Vec<f64>);

fn build(case: &Case) -> Option<Built> {
    let net = Network::new(NetworkSpec::new(case.input.clone(), case.layers.clone(), case.loss)).ok()?;
    let mut rng = ChaCha8Rng::seed_from_u64(case.seed);
    let params: Vec<f64> =
        net.init_params(case.seed).iter().map(|&p| f64::from(p) + 0.3 * (rng.random::<f64>() - 0.5)).collect();
    let x: Vec<f64> = (0..case.rows * net.input_size()).map(|_| 2.0 * rng.random::<f64>() - 1.0).collect();
    let y: Vec<f64> = match case.loss {
        Loss::CrossEntropy { .. } => (0..case.rows).map(|_| rng.random_range(0..3) as f64).collect(),
        _ => (0..case.rows * 3).map(|_| rng.random::<f64>()).collect(),
    };
    Some((net, params, x, y))
}

/// Checks `analytic` against central differences of `f` at the `picked` elements of `point`,
/// skipping elements where the function has a kink (its one-sided slopes disagree).
fn check_differences(
    what: &str,
    point: &[f64],
    analytic: &[f64],
    picked: &[usize],
    f: &dyn Fn(&[f64]) -> f64,
) -> Result<(), TestCaseError> {
    let h = 1e-6;
    let base = f(point);
    let mut moved = point.to_vec();
    for &i in picked {
        moved[i] = point[i] + h;
        let up = f(&moved);
        moved[i] = point[i] - h;
        let down = f(&moved);
        moved[i] = point[i];
        let (forward, backward) = ((up - base) / h, (base - down) / h);
        if (forward - backward).abs() > 1e-3 * (1.0 + forward.abs()) {
            continue; // a kink of relu, max pooling or the like lies within h
        }
        let central = (up - down) / (2.0 * h);
        let g = analytic[i];
        prop_assert!(
            (g - central).abs() <= 1e-5 + 1e-4 * central.abs().max(g.abs()),
            "{what}[{i}]: analytic {g:e}, central difference {central:e}"
        );
    }
    Ok(())
}

proptest! {
    // A fixed seed: the same 96 networks on every run, so that a tolerance met today is met in CI.
    #![proptest_config(ProptestConfig {
        failure_persistence: None,
        rng_seed: proptest::test_runner::RngSeed::Fixed(0x6772_6164),
        ..ProptestConfig::with_cases(96)
    })]

    /// Every layer's parameter and input gradients, in f64, against central differences.
    #[test]
    fn gradients_match_central_differences(case in case()) {
        let Some((net, params, x, y)) = build(&case) else { return Ok(()) };
        let rows = case.rows;
        let mut grad = vec![0.0; params.len()];
        let mut grad_input = vec![0.0; x.len()];
        net.loss_and_gradients(&params, &x, rows, &y, &mut grad, Some(&mut grad_input), false);
        let mut rng = ChaCha8Rng::seed_from_u64(case.seed ^ 1);
        let pick = |n: usize, rng: &mut ChaCha8Rng| -> Vec<usize> { (0..n.min(40)).map(|_| rng.random_range(0..n)).collect() };
        let by_params = |p: &[f64]| {
            let mut g = vec![0.0; p.len()];
            net.loss_and_gradient(p, &x, rows, &y, &mut g)
        };
        check_differences("param", &params, &grad, &pick(params.len(), &mut rng), &by_params)?;
        let by_input = |input: &[f64]| {
            let mut g = vec![0.0; params.len()];
            net.loss_and_gradient(&params, input, rows, &y, &mut g)
        };
        check_differences("input", &x, &grad_input, &pick(x.len(), &mut rng), &by_input)?;
    }

    /// The `f32` passes (hand-written kernels where the CPU has them) agree with the `f64` code.
    #[test]
    fn f32_passes_agree_with_f64(case in case()) {
        let Some((net, params, x, y)) = build(&case) else { return Ok(()) };
        let rows = case.rows;
        let to32 = |v: &[f64]| v.iter().map(|&e| e as f32).collect::<Vec<f32>>();
        let (p32, x32, y32) = (to32(&params), to32(&x), to32(&y));
        let back = |v: &[f32]| v.iter().map(|&e| f64::from(e)).collect::<Vec<f64>>();
        let (p, xs) = (back(&p32), back(&x32));
        let mut g64 = vec![0.0f64; p.len()];
        let mut gi64 = vec![0.0f64; xs.len()];
        let l64 = net.loss_and_gradients(&p, &xs, rows, &y, &mut g64, Some(&mut gi64), false);
        let mut g32 = vec![0.0f32; p.len()];
        let mut gi32 = vec![0.0f32; xs.len()];
        let l32 = net.loss_and_gradients(&p32, &x32, rows, &y32, &mut g32, Some(&mut gi32), false);
        prop_assert!((l32 - l64).abs() <= 1e-4 * (1.0 + l64.abs()), "loss {l32} vs {l64}");
        for (name, got, want) in [("grad", &g32, &g64), ("grad_input", &gi32, &gi64)] {
            let scale = want.iter().fold(1e-3f64, |m, g| m.max(g.abs()));
            for (i, (&a, &b)) in got.iter().zip(want.iter()).enumerate() {
                prop_assert!((f64::from(a) - b).abs() <= 2e-3 * scale, "{name}[{i}]: f32 {a} vs f64 {b}");
            }
        }
        let mut out64 = vec![0.0f64; rows * net.output_size()];
        net.predict(&p, &xs, rows, &mut out64);
        let mut out32 = vec![0.0f32; rows * net.output_size()];
        net.predict(&p32, &x32, rows, &mut out32);
        for (&a, &b) in out32.iter().zip(&out64) {
            prop_assert!((f64::from(a) - b).abs() <= 1e-3 * (1.0 + b.abs()), "output {a} vs {b}");
        }
    }
}

const SMALL_CNN: &str =
    "conv2d(4,3,padding=1),batch_norm2d,relu,max_pool2d(2),dropout(0.25),flatten,linear(16),relu,linear";

fn digits_like(rows: usize, seed: u64) -> (Vec<f32>, Vec<f32>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let y: Vec<f32> = (0..rows).map(|_| rng.random_range(0..3) as f32).collect();
    // Class c lights up row 2c of an 8 × 8 image, plus noise.
    let mut x = Vec::with_capacity(rows * 64);
    for &c in &y {
        for i in 0..64 {
            let signal = if i / 8 == 2 * c as usize || i / 8 == 2 * c as usize + 1 { 1.0 } else { 0.0 };
            x.push(signal + 0.3 * (rng.random::<f32>() - 0.5));
        }
    }
    (x, y)
}

fn small_cnn() -> Network {
    let layers = LayerSpec::parse_list(SMALL_CNN).unwrap();
    let spec =
        NetworkSpec::new(Shape::image(1, 8, 8), layers, Loss::cross_entropy(0.0).unwrap()).with_outputs(3).unwrap();
    Network::new(spec).unwrap()
}

/// A training step (convolution, batch norm, dropout, several blocks) gives the same gradient,
/// loss and running statistics, bit for bit, on 1, 2 and 3 threads.
#[test]
fn training_steps_are_bit_identical_across_thread_counts() {
    let (x, y) = digits_like(53, 1);
    let run = |threads: usize| {
        let net = small_cnn();
        let params = net.init_params(7);
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        pool.install(|| {
            let data = Rows::new(&x, &y, 64);
            let mut grad = vec![0.0f32; net.num_params()];
            let indices: Vec<usize> = (0..45).map(|i| (i * 7) % 53).collect();
            let loss = net.train_step(&params, data, Some(&indices), 3, 11, &mut grad);
            let mut out = vec![0.0f32; 53 * 3];
            net.predict(&params, &x, 53, &mut out);
            (loss.to_bits(), grad, net.buffers(), out)
        })
    };
    let one = run(1);
    assert!(one.1.iter().any(|&g| g != 0.0));
    assert_eq!(run(2), one);
    assert_eq!(run(3), one);
}

/// Dropout draws its masks from the seed and the step: another step, another mask; evaluation
/// drops nothing.
#[test]
fn dropout_masks_follow_seed_and_step() {
    let (x, y) = digits_like(20, 2);
    let net = small_cnn();
    let params = net.init_params(1);
    let data = Rows::new(&x, &y, 64);
    let grad_at = |seed: u64, step: u64| {
        let mut grad = vec![0.0f32; net.num_params()];
        net.train_step(&params, data, None, seed, step, &mut grad);
        grad
    };
    assert_eq!(grad_at(0, 5), grad_at(0, 5));
    assert_ne!(grad_at(0, 5), grad_at(0, 6));
    assert_ne!(grad_at(0, 5), grad_at(1, 5));
}

#[test]
fn shape_errors_name_both_layers() {
    let cases = [
        ("conv2d(4,3),linear(2)", "flat rows"),
        ("flatten,conv2d(4,3)", "images"),
        ("conv2d(4,9)", "at least as large as the kernel"),
        ("max_pool2d(9)", "at least as large as the pooling window"),
        ("flatten,linear(4),batch_norm2d", "images"),
        ("linear,relu,linear(2)", "output features"),
    ];
    for (layers, expected) in cases {
        let spec = NetworkSpec::new(Shape::image(1, 8, 8), LayerSpec::parse_list(layers).unwrap(), Loss::Mse);
        let err = Network::new(spec).unwrap_err();
        assert!(err.to_string().contains(expected), "{layers}: {err}");
    }
    let spec =
        NetworkSpec::new(Shape::image(1, 8, 8), LayerSpec::parse_list("conv2d(4,3),linear(2)").unwrap(), Loss::Mse);
    let message = Network::new(spec).unwrap_err().to_string();
    assert!(message.contains("`linear(2)` (layer 2), whose input is [4, 6, 6] from `conv2d(4,3)`"), "{message}");
    let spec = NetworkSpec::new(Shape::flat(4), LayerSpec::parse_list("linear(3)").unwrap(), Loss::Mse);
    assert!(spec.with_outputs(5).unwrap_err().to_string().contains("linear(3)"));
}

#[test]
fn parameters_are_named_and_initialized_like_pytorch() {
    let net = small_cnn();
    let names: Vec<(&str, usize)> = net.layout().segments().iter().map(|s| (s.name.as_str(), s.len)).collect();
    assert_eq!(
        names,
        [
            ("conv1.weight", 36),
            ("conv1.bias", 4),
            ("bn1.weight", 4),
            ("bn1.bias", 4),
            ("linear1.weight", 64 * 16),
            ("linear1.bias", 16),
            ("linear2.weight", 48),
            ("linear2.bias", 3)
        ]
    );
    let params = net.init_params(3);
    let segment = |name: &str| &params[net.layout().segment(name).unwrap().range()];
    // Kaiming-uniform with a = √5: U(±1/√fan_in), biases too.
    assert!(segment("conv1.weight").iter().all(|w| w.abs() <= 1.0 / 3.0));
    assert!(segment("conv1.weight").iter().any(|w| w.abs() > 0.25));
    assert!(segment("linear1.bias").iter().all(|w| w.abs() <= 1.0 / 8.0));
    assert!(segment("bn1.weight").iter().all(|&w| w == 1.0));
    assert!(segment("bn1.bias").iter().all(|&w| w == 0.0));
    assert_eq!(net.buffers(), [0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0]);
    // Each layer draws from a stream of its own: adding a layer at the end changes no other.
    let longer = Network::new(
        NetworkSpec::new(
            Shape::image(1, 8, 8),
            LayerSpec::parse_list(&format!("{SMALL_CNN}(3),linear(2)")).unwrap(),
            Loss::cross_entropy(0.0).unwrap(),
        )
        .init(Init::Torch),
    )
    .unwrap();
    let longer_params = longer.init_params(3);
    assert_eq!(&longer_params[..params.len()], &params[..]);
    let summary = net.summary();
    assert_eq!(summary[0].name, "conv1");
    assert_eq!(summary[0].output, Shape::image(4, 8, 8));
    assert_eq!(summary[8].layer, "linear(3)");
}

/// A CNN trains through the engine, and a run resumed from a checkpoint (running statistics
/// included) ends with the same parameters and statistics as one never interrupted.
#[test]
fn trains_and_resumes_bit_for_bit() {
    let (x, y) = digits_like(240, 3);
    let data = Rows::new(&x, &y, 64);
    let config = |epochs: usize, checkpoint: Option<CheckpointConfig>| TrainConfig {
        epochs,
        batch: BatchMode::MiniBatch(32),
        checkpoint,
        ..TrainConfig::default()
    };
    let sgd = || Box::new(Sgd::new(SgdConfig { lr: 0.05, momentum: 0.9, ..Default::default() }).unwrap());
    let net = small_cnn();
    let mut params = net.init_params(0);
    let report = Trainer::new(config(6, None), sgd()).unwrap().fit(&net, &mut params, data, None, &mut []).unwrap();
    let accuracy = evaluate(&net, &params, data).unwrap()["accuracy"];
    assert!(accuracy > 0.95, "accuracy {accuracy}");
    assert!(report.history.last().unwrap().train["loss"] < report.history[0].train["loss"]);
    let full = (params.clone(), net.buffers());

    let dir = tempfile_dir();
    let path = dir.join("cnn.ckpt");
    let net = small_cnn();
    let mut params = net.init_params(0);
    let cp = CheckpointConfig { every: 1, path: path.clone() };
    Trainer::new(config(3, Some(cp)), sgd()).unwrap().fit(&net, &mut params, data, None, &mut []).unwrap();
    let net = small_cnn();
    let mut params = net.init_params(0);
    let checkpoint = Checkpoint::load(&path).unwrap();
    assert_eq!(checkpoint.buffers.len(), 8);
    Trainer::new(config(6, None), sgd())
        .unwrap()
        .fit_from(&net, &mut params, data, None, &mut [], Some(checkpoint))
        .unwrap();
    assert_eq!((params, net.buffers()), full);
    std::fs::remove_dir_all(&dir).unwrap();
}

fn tempfile_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("gradus-network-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Batches of several blocks (their gradients added in block order) against central differences,
/// in f64, and the f32 passes against the f64 ones.
#[test]
fn multi_block_batches_match_central_differences() {
    for layers in [SMALL_CNN, "conv2d(3,3),tanh,avg_pool2d(2),flatten,linear(5),sigmoid,linear"] {
        let layers = LayerSpec::parse_list(layers).unwrap();
        let spec =
            NetworkSpec::new(Shape::image(1, 8, 8), layers, Loss::cross_entropy(0.0).unwrap()).with_outputs(3).unwrap();
        let net = Network::new(spec).unwrap();
        let rows = 2 * net.block_rows() + 5;
        let (x32, y32) = digits_like(rows, 9);
        let (x, y): (Vec<f64>, Vec<f64>) =
            (x32.iter().map(|&v| f64::from(v)).collect(), y32.iter().map(|&v| f64::from(v)).collect());
        let params: Vec<f64> = net.init_params(4).iter().map(|&p| f64::from(p)).collect();
        let mut grad = vec![0.0; params.len()];
        net.loss_and_gradient(&params, &x, rows, &y, &mut grad);
        let f = |p: &[f64]| {
            let mut g = vec![0.0; p.len()];
            net.loss_and_gradient(p, &x, rows, &y, &mut g)
        };
        let picked: Vec<usize> = (0..params.len()).step_by(7).collect();
        check_differences("param", &params, &grad, &picked, &f).unwrap();
        let p32: Vec<f32> = params.iter().map(|&p| p as f32).collect();
        let mut g32 = vec![0.0f32; params.len()];
        net.loss_and_gradient(&p32, &x32, rows, &y32, &mut g32);
        let scale = grad.iter().fold(1e-3f64, |m, g| m.max(g.abs()));
        for (i, (&a, &b)) in g32.iter().zip(&grad).enumerate() {
            assert!((f64::from(a) - b).abs() <= 2e-3 * scale, "grad[{i}]: f32 {a} vs f64 {b}");
        }
    }
}

/// A random text network: an embedding of sequences into an LSTM or GRU (one or two layers) and a
/// linear output at every step, or a bag of embeddings (empty bags included) into dense layers.
#[derive(Debug, Clone)]
struct TextCase {
    layers: Vec<LayerSpec>,
    input: Shape,
    ids: Vec<u32>,
    offsets: Vec<usize>,
    targets: Vec<f64>,
    seed: u64,
}

fn text_case() -> impl Strategy<Value = TextCase> {
    (any::<bool>(), any::<bool>(), 1usize..5, 1usize..4, 1usize..3, 2usize..6, 1usize..5, 1usize..4, any::<u64>())
        .prop_map(|(bag, lstm, steps, rows, num_layers, vocab, dim, hidden, seed)| {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let classes = 3;
            if bag {
                let mut offsets = vec![0];
                let mut ids = Vec::new();
                for _ in 0..rows {
                    for _ in 0..rng.random_range(0..4) {
                        ids.push(rng.random_range(0..vocab as u32));
                    }
                    offsets.push(ids.len());
                }
                let mode = if rng.random::<bool>() { BagMode::Mean } else { BagMode::Sum };
                let layers = vec![
                    LayerSpec::EmbeddingBag { num_embeddings: vocab, embedding_dim: dim, mode },
                    LayerSpec::Tanh,
                    LayerSpec::Linear { out_features: Some(classes), bias: true },
                ];
                let targets = (0..rows).map(|_| rng.random_range(0..classes) as f64).collect();
                TextCase { layers, input: Shape(Vec::new()), ids, offsets, targets, seed }
            } else {
                let recurrent = if lstm {
                    LayerSpec::Lstm { hidden_size: hidden, num_layers }
                } else {
                    LayerSpec::Gru { hidden_size: hidden, num_layers }
                };
                let layers = vec![
                    LayerSpec::Embedding { num_embeddings: vocab, embedding_dim: dim },
                    recurrent,
                    LayerSpec::Linear { out_features: Some(vocab), bias: true },
                ];
                let ids = (0..rows * steps).map(|_| rng.random_range(0..vocab as u32)).collect();
                let offsets = (0..=rows).map(|r| r * steps).collect();
                let targets = (0..rows * steps).map(|_| rng.random_range(0..vocab) as f64).collect();
                TextCase { layers, input: Shape(vec![steps]), ids, offsets, targets, seed }
            }
        })
}

proptest! {
    #![proptest_config(ProptestConfig {
        failure_persistence: None,
        rng_seed: proptest::test_runner::RngSeed::Fixed(0x7465_7874),
        ..ProptestConfig::with_cases(64)
    })]

    /// Embedding, bag, LSTM and GRU gradients (sequences of length 1, empty bags, stacked layers)
    /// against central differences, in f64, and the f32 passes against the f64 ones.
    #[test]
    fn text_gradients_match_central_differences(case in text_case()) {
        let spec = NetworkSpec::new(case.input.clone(), case.layers.clone(), Loss::cross_entropy(0.0).unwrap());
        let net = Network::new(spec).unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(case.seed ^ 2);
        let params: Vec<f64> = net.init_params(case.seed).iter().map(|&p| f64::from(p) + 0.2 * (rng.random::<f64>() - 0.5)).collect();
        let mut grad = vec![0.0; params.len()];
        net.loss_and_gradients_tokens(&params, &case.ids, &case.offsets, &case.targets, &mut grad, false);
        let f = |p: &[f64]| {
            let mut g = vec![0.0; p.len()];
            net.loss_and_gradients_tokens(p, &case.ids, &case.offsets, &case.targets, &mut g, false)
        };
        let picked: Vec<usize> = (0..params.len().min(60)).map(|_| rng.random_range(0..params.len())).collect();
        check_differences("param", &params, &grad, &picked, &f)?;
        let p32: Vec<f32> = params.iter().map(|&p| p as f32).collect();
        let t32: Vec<f32> = case.targets.iter().map(|&t| t as f32).collect();
        let back: Vec<f64> = p32.iter().map(|&p| f64::from(p)).collect();
        let mut g64 = vec![0.0; params.len()];
        net.loss_and_gradients_tokens(&back, &case.ids, &case.offsets, &case.targets, &mut g64, false);
        let mut g32 = vec![0.0f32; params.len()];
        net.loss_and_gradients_tokens(&p32, &case.ids, &case.offsets, &t32, &mut g32, false);
        let scale = g64.iter().fold(1e-3f64, |m, g| m.max(g.abs()));
        for (i, (&a, &b)) in g32.iter().zip(&g64).enumerate() {
            prop_assert!((f64::from(a) - b).abs() <= 1e-3 * scale, "grad[{i}]: f32 {a} vs f64 {b}");
        }
    }
}

#[test]
fn token_rows_are_checked() {
    let layers = LayerSpec::parse_list("embedding(5,3),lstm(4),linear(5)").unwrap();
    let net = Network::new(NetworkSpec::new(Shape(vec![2]), layers, Loss::cross_entropy(0.0).unwrap())).unwrap();
    assert!(net.takes_tokens());
    assert!(net.check_tokens(&[1, 2, 3, 4], &[0, 2, 4]).is_ok());
    assert!(net.check_tokens(&[1, 2, 3], &[0, 2, 3]).unwrap_err().contains("row 1 holds 1 tokens"));
    assert!(net.check_tokens(&[1, 5], &[0, 2]).unwrap_err().contains("token index 5"));
    assert!(net.check_tokens(&[1, 2], &[0, 2, 1]).unwrap_err().contains("non-decreasing"));
    let names: Vec<&str> = net.layout().segments().iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "embedding1.weight",
            "lstm1.weight_ih_l0",
            "lstm1.weight_hh_l0",
            "lstm1.bias_ih_l0",
            "lstm1.bias_hh_l0",
            "linear1.weight",
            "linear1.bias"
        ]
    );
    assert_eq!(net.output_shape(), &Shape(vec![2, 5]));
}
