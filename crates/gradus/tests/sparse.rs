//! Sparse gradients: the engine's sparse path for embedding tables gives the dense path's
//! parameters bit for bit with SGD and Adagrad, `sparse_adam` follows `torch.optim.SparseAdam`'s
//! formula, and checkpoints resume it exactly.

use std::ops::Range;
use std::sync::atomic::{AtomicUsize, Ordering};

use gradus::loss::Loss;
use gradus::model::{Model, Rows, SparseSegment};
use gradus::nn::{BagMode, LayerSpec, Network, NetworkSpec, Shape};
use gradus::optim::{from_options, Adam, AdamConfig, Optimizer, SparseAdam, SparseAdamConfig, SparseGrad, SparseRows};
use gradus::params::ParamLayout;
use gradus::train::{BatchMode, Checkpoint, CheckpointConfig, Task, TrainConfig, TrainError, TrainReport, Trainer};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::json;

const VOCAB: usize = 3000;
const DIM: usize = 6;
const CLASSES: usize = 4;

/// A bag-of-tokens classifier: `embedding_bag(VOCAB, DIM)`, tanh, a linear head.
fn network(mode: BagMode) -> Network {
    let layers = vec![
        LayerSpec::EmbeddingBag { num_embeddings: VOCAB, embedding_dim: DIM, mode },
        LayerSpec::Tanh,
        LayerSpec::Linear { out_features: Some(CLASSES), bias: true },
    ];
    Network::new(NetworkSpec::new(Shape(Vec::new()), layers, Loss::cross_entropy(0.0).unwrap())).unwrap()
}

/// `rows` bags of 0 to 7 tokens (empty bags included) drawn mostly from the first 300 tokens, so
/// that batches share rows, with a class each.
fn bags(rows: usize, seed: u64) -> (Vec<u32>, Vec<usize>, Vec<f32>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (mut ids, mut offsets, mut targets) = (Vec::new(), vec![0], Vec::new());
    for _ in 0..rows {
        for _ in 0..rng.random_range(0..8) {
            let hot = rng.random::<f32>() < 0.7;
            ids.push(rng.random_range(0..if hot { 300 } else { VOCAB as u32 }));
        }
        offsets.push(ids.len());
        targets.push(rng.random_range(0..CLASSES) as f32);
    }
    (ids, offsets, targets)
}

/// The model with its row-sparse segments hidden (the engine takes its dense path), or shown, with
/// the sparse passes counted.
struct Wrapped<'a> {
    model: &'a dyn Model,
    sparse: bool,
    sparse_passes: AtomicUsize,
}

fn dense(model: &dyn Model) -> Wrapped<'_> {
    Wrapped { model, sparse: false, sparse_passes: AtomicUsize::new(0) }
}

fn counted(model: &dyn Model) -> Wrapped<'_> {
    Wrapped { model, sparse: true, sparse_passes: AtomicUsize::new(0) }
}

impl Model for Wrapped<'_> {
    fn sparse_segments(&self) -> Vec<SparseSegment> {
        if self.sparse {
            self.model.sparse_segments()
        } else {
            Vec::new()
        }
    }
    fn train_step_sparse(
        &self,
        params: &[f32],
        data: Rows<'_>,
        indices: Option<&[usize]>,
        seed: u64,
        step: u64,
        grad: &mut [f32],
        touched: &mut [Vec<u32>],
    ) -> f64 {
        self.sparse_passes.fetch_add(1, Ordering::Relaxed);
        self.model.train_step_sparse(params, data, indices, seed, step, grad, touched)
    }
    fn task(&self) -> Task {
        self.model.task()
    }
    fn layout(&self) -> &ParamLayout {
        self.model.layout()
    }
    fn inputs(&self) -> usize {
        self.model.inputs()
    }
    fn outputs(&self) -> usize {
        self.model.outputs()
    }
    fn init_params(&self, seed: u64) -> Vec<f32> {
        self.model.init_params(seed)
    }
    fn check_targets(&self, targets: &[f32], rows: usize) -> Result<(), gradus::loss::TargetError> {
        self.model.check_targets(targets, rows)
    }
    fn loss_and_gradient(&self, params: &[f32], x: &[f32], y: &[f32], rows: usize, grad: &mut [f32]) -> f64 {
        self.model.loss_and_gradient(params, x, y, rows, grad)
    }
    fn train_step(
        &self,
        params: &[f32],
        data: Rows<'_>,
        indices: Option<&[usize]>,
        seed: u64,
        step: u64,
        grad: &mut [f32],
    ) -> f64 {
        self.model.train_step(params, data, indices, seed, step, grad)
    }
    fn forward(&self, params: &[f32], x: &[f32], rows: usize, out: &mut [f32]) {
        self.model.forward(params, x, rows, out)
    }
    fn forward_rows(&self, params: &[f32], data: Rows<'_>, out: &mut [f32]) {
        self.model.forward_rows(params, data, out)
    }
    fn forward_and_loss_rows(&self, params: &[f32], data: Rows<'_>, out: &mut [f32]) -> f64 {
        self.model.forward_and_loss_rows(params, data, out)
    }
    fn diagnostic_segments(&self) -> Vec<(String, Range<usize>)> {
        self.model.diagnostic_segments()
    }
}

fn bits(values: &[f32]) -> Vec<u32> {
    values.iter().map(|v| v.to_bits()).collect()
}

fn train(
    model: &dyn Model,
    optimizer: &str,
    options: serde_json::Value,
    config: TrainConfig,
) -> (Vec<f32>, TrainReport) {
    let (ids, offsets, targets) = bags(700, 5);
    let rows = Rows::with_ids(&ids, &offsets, &targets);
    let mut params = model.init_params(11);
    let mut trainer = Trainer::new(config, from_options(optimizer, &options).unwrap()).unwrap();
    let report = trainer.fit(model, &mut params, rows, None, &mut []).unwrap();
    (params, report)
}

fn config(clip_norm: Option<f64>, clip_value: Option<f64>) -> TrainConfig {
    // Batches of 100 rows are two blocks of the network's pass: the blocks' table rows are summed.
    TrainConfig { epochs: 3, batch: BatchMode::MiniBatch(100), clip_norm, clip_value, ..Default::default() }
}

/// SGD (plain, maximizing, with per-step clipping) and Adagrad on the sparse path end where the
/// dense path does, bit for bit, with the same gradient norms.
#[test]
fn sparse_sgd_and_adagrad_equal_the_dense_updates_bit_for_bit() {
    let cases = [
        ("sgd", json!({"lr": 0.5}), None, None),
        ("sgd", json!({"lr": 0.3}), Some(0.05), None),
        ("sgd", json!({"lr": 0.3}), None, Some(0.004)),
        ("adagrad", json!({"lr": 0.1}), None, None),
        ("adagrad", json!({"lr": 0.1, "lr_decay": 0.01, "initial_accumulator_value": 0.1}), Some(0.1), None),
    ];
    for mode in [BagMode::Mean, BagMode::Sum] {
        let net = network(mode);
        assert_eq!(net.sparse_segments().len(), 1);
        for (name, options, clip_norm, clip_value) in &cases {
            let counted = counted(&net);
            let (sparse, sparse_report) = train(&counted, name, options.clone(), config(*clip_norm, *clip_value));
            assert_eq!(counted.sparse_passes.load(Ordering::Relaxed), 3 * 7, "the sparse path was not taken");
            let (dense, dense_report) = train(&dense(&net), name, options.clone(), config(*clip_norm, *clip_value));
            assert_eq!(bits(&sparse), bits(&dense), "{name} {options} {mode:?}");
            let norms = |r: &TrainReport| r.history.iter().map(|e| e.grad_norm.to_bits()).collect::<Vec<_>>();
            assert_eq!(norms(&sparse_report), norms(&dense_report), "{name} {options}");
            let losses = |r: &TrainReport| r.history.iter().map(|e| e.train["loss"].to_bits()).collect::<Vec<_>>();
            assert_eq!(losses(&sparse_report), losses(&dense_report));
            // The table trained: some rows moved, and rows no bag holds did not.
            let init = net.init_params(11);
            assert_ne!(bits(&sparse), bits(&init));
        }
    }
}

/// Momentum and weight decay move every row in the dense update: those configurations take the
/// dense path, so that sparse gradients never change what they compute.
#[test]
fn momentum_and_weight_decay_keep_the_dense_update() {
    let net = network(BagMode::Mean);
    for (name, options) in [
        ("sgd", json!({"lr": 0.2, "momentum": 0.9})),
        ("sgd", json!({"lr": 0.2, "weight_decay": 0.01})),
        ("adagrad", json!({"lr": 0.1, "weight_decay": 0.01})),
        ("adam", json!({"lr": 0.01})),
    ] {
        assert!(!from_options(name, &options).unwrap().updates_sparse(), "{name} {options}");
        let counted = counted(&net);
        let (sparse, _) = train(&counted, name, options.clone(), config(None, None));
        assert_eq!(counted.sparse_passes.load(Ordering::Relaxed), 0);
        let (dense, _) = train(&dense(&net), name, options.clone(), config(None, None));
        assert_eq!(bits(&sparse), bits(&dense), "{name} {options}");
    }
}

/// SparseAdam's update in `f64`, written from `torch.optim.SparseAdam`'s documented formula: for
/// each touched element, `m += (1 − β₁)(g − m)`, `v += (1 − β₂)(g² − v)`,
/// `θ −= lr √(1 − β₂ᵗ)/(1 − β₁ᵗ) · m / (√v + ε)`, with t the global step count.
struct Reference {
    m: Vec<f64>,
    v: Vec<f64>,
    t: u64,
}

impl Reference {
    fn step(&mut self, params: &mut [f64], grads: &[f64], touched: &[usize], lr: f64, betas: [f64; 2], eps: f64) {
        self.t += 1;
        let t = self.t as f64;
        let step_size = lr * (1.0 - betas[1].powf(t)).sqrt() / (1.0 - betas[0].powf(t));
        for &i in touched {
            self.m[i] += (1.0 - betas[0]) * (grads[i] - self.m[i]);
            self.v[i] += (1.0 - betas[1]) * (grads[i] * grads[i] - self.v[i]);
            params[i] -= step_size * self.m[i] / (self.v[i].sqrt() + eps);
        }
    }
}

/// A table of 8 rows of 3 between two dense segments, stepped with different touched rows.
#[test]
fn sparse_adam_follows_the_formula_on_touched_rows_and_adam_on_dense_segments() {
    let (rows, row_len) = (8usize, 3usize);
    let table = 4..4 + rows * row_len;
    let len = table.end + 5;
    let dense = [0..4, table.end..len];
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let init: Vec<f32> = (0..len).map(|_| rng.random_range(-1.0..1.0)).collect();
    let (lr, betas, eps) = (0.05, [0.8, 0.99], 1e-6);
    let mut sparse_adam = SparseAdam::new(SparseAdamConfig { lr, betas, eps, maximize: false }).unwrap();
    let mut adam = Adam::new(AdamConfig { lr, betas, eps, ..Default::default() }).unwrap();
    let mut params = init.clone();
    let mut adam_params = init.clone();
    let mut reference_params: Vec<f64> = init.iter().map(|&p| f64::from(p)).collect();
    let mut reference = Reference { m: vec![0.0; len], v: vec![0.0; len], t: 0 };
    let touched_rows: [&[u32]; 5] = [&[1, 4], &[4], &[], &[0, 4, 7], &[2, 3]];
    for rows_now in touched_rows {
        let mut grad = vec![0.0f32; len];
        for range in &dense {
            grad[range.clone()].iter_mut().for_each(|g| *g = rng.random_range(-1.0..1.0));
        }
        for &row in rows_now {
            let start = table.start + row as usize * row_len;
            grad[start..start + row_len].iter_mut().for_each(|g| *g = rng.random_range(-1.0..1.0));
        }
        let segments = [SparseRows { range: table.clone(), row_len, rows: rows_now }];
        sparse_adam.step_sparse(&mut params, &grad, &SparseGrad { dense: &dense, segments: &segments });
        adam.step(&mut adam_params, &grad);

        let touched: Vec<usize> = rows_now
            .iter()
            .flat_map(|&row| {
                let start = table.start + row as usize * row_len;
                start..start + row_len
            })
            .collect();
        let grad64: Vec<f64> = grad.iter().map(|&g| f64::from(g)).collect();
        reference.step(&mut reference_params, &grad64, &touched, lr, betas, eps);
        for &i in &touched {
            let (got, want) = (f64::from(params[i]), reference_params[i]);
            assert!((got - want).abs() <= 1e-5 * want.abs().max(1.0), "element {i}: {got} vs {want}");
        }
        // Dense segments: Adam's update bit for bit (the same step count and moments).
        for range in &dense {
            assert_eq!(bits(&params[range.clone()]), bits(&adam_params[range.clone()]));
        }
    }
    // Rows never touched (5 and 6) kept their values; Adam moved them (decayed momentum).
    for row in [5usize, 6] {
        let r = table.start + row * row_len..table.start + (row + 1) * row_len;
        assert_eq!(bits(&params[r.clone()]), bits(&init[r.clone()]));
    }
    assert_eq!(sparse_adam.steps(), 5);

    // A dense step is Adam's, bit for bit.
    let mut sparse_adam = SparseAdam::new(SparseAdamConfig { lr, betas, eps, maximize: false }).unwrap();
    let mut adam = Adam::new(AdamConfig { lr, betas, eps, ..Default::default() }).unwrap();
    let (mut a, mut b) = (init.clone(), init.clone());
    for _ in 0..3 {
        let grad: Vec<f32> = (0..len).map(|_| rng.random_range(-1.0..1.0)).collect();
        sparse_adam.step(&mut a, &grad);
        adam.step(&mut b, &grad);
        let everything = 0..len;
        let all = std::slice::from_ref(&everything);
        let (mut c, mut sa) = (a.clone(), sparse_adam.clone());
        sa.step_sparse(&mut c, &grad, &SparseGrad { dense: all, segments: &[] });
        let mut ad = adam.clone();
        let mut d = b.clone();
        ad.step(&mut d, &grad);
        assert_eq!(bits(&c), bits(&d));
    }
    assert_eq!(bits(&a), bits(&b));
}

/// sparse_adam trains the table through the engine, leaves the rows no bag holds alone, and a run
/// resumed from a checkpoint ends where the uninterrupted one does, bit for bit.
#[test]
fn sparse_adam_trains_through_the_engine_and_resumes_bit_for_bit() {
    let net = network(BagMode::Mean);
    let (ids, offsets, targets) = bags(500, 21);
    let rows = Rows::with_ids(&ids, &offsets, &targets);
    let dir = std::env::temp_dir().join(format!("gradus-sparse-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("run.ckpt");
    let trainer = |epochs: usize| {
        let config = TrainConfig {
            epochs,
            batch: BatchMode::MiniBatch(128),
            clip_norm: Some(1.0),
            checkpoint: Some(CheckpointConfig { every: 2, path: path.clone() }),
            ..Default::default()
        };
        Trainer::new(config, from_options("sparse_adam", &json!({"lr": 0.01})).unwrap()).unwrap()
    };
    let init = net.init_params(4);
    let mut whole = init.clone();
    let full = trainer(4).fit(&net, &mut whole, rows, None, &mut []).unwrap();
    assert!(full.history.last().unwrap().train["loss"] < full.history[0].train["loss"]);
    let (table, dim) = (net.sparse_segments()[0].range.clone(), DIM);
    let seen: std::collections::BTreeSet<u32> = ids.iter().copied().collect();
    for row in 0..VOCAB as u32 {
        let r = table.start + row as usize * dim..table.start + (row as usize + 1) * dim;
        assert_eq!(bits(&whole[r.clone()]) == bits(&init[r]), !seen.contains(&row), "row {row}");
    }

    // Adam moves the rows it saw once at every later step; sparse_adam does not.
    let mut with_adam = init.clone();
    let config =
        TrainConfig { epochs: 4, batch: BatchMode::MiniBatch(128), clip_norm: Some(1.0), ..Default::default() };
    Trainer::new(config, from_options("adam", &json!({"lr": 0.01})).unwrap())
        .unwrap()
        .fit(&net, &mut with_adam, rows, None, &mut [])
        .unwrap();
    assert_ne!(bits(&with_adam[table.clone()]), bits(&whole[table.clone()]));

    let mut first = init.clone();
    trainer(2).fit(&net, &mut first, rows, None, &mut []).unwrap();
    let checkpoint = Checkpoint::load(&path).unwrap();
    assert_eq!(checkpoint.epoch, 2);
    let mut resumed = vec![0.0; init.len()];
    trainer(4).fit_from(&net, &mut resumed, rows, None, &mut [], Some(checkpoint)).unwrap();
    assert_eq!(bits(&resumed), bits(&whole));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A run that diverges on the sparse path is rolled back to the parameters before the update that
/// diverged, as on the dense path: the rows the last update changed are put back as they were.
#[test]
fn divergence_rolls_back_the_sparse_path_as_the_dense_one() {
    let net = network(BagMode::Sum);
    let (ids, offsets, targets) = bags(700, 5);
    let rows = Rows::with_ids(&ids, &offsets, &targets);
    let run = |model: &dyn Model, lr: f64| {
        let config =
            TrainConfig { epochs: 3, batch: BatchMode::MiniBatch(50), divergence_factor: 2.0, ..Default::default() };
        let mut trainer = Trainer::new(config, from_options("sgd", &json!({ "lr": lr })).unwrap()).unwrap();
        let mut params = model.init_params(2);
        let diverged_at = match trainer.fit(model, &mut params, rows, None, &mut []) {
            Ok(_) => None,
            Err(TrainError::Diverged { step, .. }) => Some(step),
            Err(err) => panic!("{err}"),
        };
        (params, diverged_at)
    };
    let mut latest = 0;
    for lr in [0.5, 1.0, 2.0, 4.0, 8.0, 16.0] {
        let counted = counted(&net);
        let (sparse, sparse_step) = run(&counted, lr);
        let (dense, dense_step) = run(&dense(&net), lr);
        assert!(counted.sparse_passes.load(Ordering::Relaxed) > 0);
        assert_eq!(sparse_step, dense_step, "lr {lr}");
        assert!(bits(&sparse) == bits(&dense), "lr {lr}: the parameters differ");
        latest = latest.max(sparse_step.unwrap_or(0));
    }
    // Some run diverged after an update had gone through: the rollback then had to undo that
    // update's rows only, the earlier updates' rows staying as they were.
    assert!(latest >= 2, "the latest divergence was at step {latest}");
}

/// At the scale of a real text classifier (a table of 60,000 rows, batches of thousands of
/// tokens), the embedding pass, the gradient norm, the rollback record and the optimizer's step
/// run on several threads: the parameters and norms are the same bits on one thread and on four,
/// and the sparse path still gives the dense path's parameters with SGD.
#[test]
fn large_tables_give_the_same_bits_on_any_thread_count() {
    const BIG_VOCAB: usize = 60_000;
    let layers = vec![
        LayerSpec::EmbeddingBag { num_embeddings: BIG_VOCAB, embedding_dim: 32, mode: BagMode::Mean },
        LayerSpec::Linear { out_features: Some(3), bias: true },
    ];
    let net = Network::new(NetworkSpec::new(Shape(Vec::new()), layers, Loss::cross_entropy(0.0).unwrap())).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let (mut ids, mut offsets, mut targets) = (Vec::new(), vec![0], Vec::new());
    for _ in 0..600 {
        for _ in 0..rng.random_range(0..60) {
            // Zipf-like: most tokens from the first thousand rows, the rest anywhere.
            let hot = rng.random::<f32>() < 0.6;
            ids.push(rng.random_range(0..if hot { 1000 } else { BIG_VOCAB as u32 }));
        }
        offsets.push(ids.len());
        targets.push(rng.random_range(0..3) as f32);
    }
    let rows = Rows::with_ids(&ids, &offsets, &targets);
    let run = |model: &dyn Model, optimizer: &str, options: serde_json::Value, threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        pool.install(|| {
            let config = TrainConfig { epochs: 2, batch: BatchMode::MiniBatch(200), ..Default::default() };
            let mut trainer = Trainer::new(config, from_options(optimizer, &options).unwrap()).unwrap();
            let mut params = model.init_params(4);
            let report = trainer.fit(model, &mut params, rows, None, &mut []).unwrap();
            let norms: Vec<u64> = report.history.iter().map(|e| e.grad_norm.to_bits()).collect();
            (bits(&params), norms)
        })
    };
    for (optimizer, options) in [("sparse_adam", json!({"lr": 0.01})), ("sgd", json!({"lr": 0.5}))] {
        let counted = counted(&net);
        let one = run(&counted, optimizer, options.clone(), 1);
        let four = run(&counted, optimizer, options.clone(), 4);
        assert!(counted.sparse_passes.load(Ordering::Relaxed) > 0);
        assert!(one == four, "{optimizer}: one thread and four differ");
        if optimizer == "sgd" {
            assert!(run(&dense(&net), optimizer, options, 4) == one, "the sparse path left the dense one");
        }
    }
}
