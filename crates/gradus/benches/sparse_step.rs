//! Criterion benchmark of the engine's update for a batch that touches 1 % of a 100,000 × 100
//! embedding table: the sparse path against the dense one.
//!
//! The network is `embedding_bag(100000, 100, sum)` into a linear head of 10 classes. Each batch
//! holds 100 bags of 10 distinct tokens, so it touches exactly 1,000 rows of the table; batches
//! do not share rows, and an epoch of 10 batches touches 10 % of it. What is timed is the work
//! the engine does per batch inside [`gradus::train::Trainer::fit`] — the model's pass (forward,
//! backward, and on the dense path zeroing the whole table's gradient), the gradient norm,
//! clipping, the rollback copy, the optimizer's step and, on the sparse path, zeroing the touched
//! rows — measured between consecutive steps of the same epoch, from the second epoch on (so that
//! neither an epoch's start nor the first touch of fresh buffers is counted). The dense path is
//! the same network with its row-sparse segment hidden from the engine.
//!
//! `cargo bench -p gradus --bench sparse_step -- --measurement-time 3` prints one figure per
//! optimizer and path; the acceptance target is sparse ≤ 5 % of dense.

use std::ops::Range;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use gradus::loss::Loss;
use gradus::model::{Model, Rows};
use gradus::nn::{BagMode, LayerSpec, Network, NetworkSpec, Shape};
use gradus::params::ParamLayout;
use gradus::train::{BatchMode, Observer, StepInfo, Task, TrainConfig, Trainer};
use serde_json::json;

const VOCAB: usize = 100_000;
const DIM: usize = 100;
const BAG: usize = 10;
const BATCH: usize = 100;
const BATCHES_PER_EPOCH: usize = 10;

/// The model with its row-sparse segments hidden: the engine takes its dense path.
struct Dense<'a>(&'a dyn Model);

impl Model for Dense<'_> {
    fn task(&self) -> Task {
        self.0.task()
    }
    fn layout(&self) -> &ParamLayout {
        self.0.layout()
    }
    fn inputs(&self) -> usize {
        self.0.inputs()
    }
    fn outputs(&self) -> usize {
        self.0.outputs()
    }
    fn init_params(&self, seed: u64) -> Vec<f32> {
        self.0.init_params(seed)
    }
    fn check_targets(&self, targets: &[f32], rows: usize) -> Result<(), gradus::loss::TargetError> {
        self.0.check_targets(targets, rows)
    }
    fn loss_and_gradient(&self, params: &[f32], x: &[f32], y: &[f32], rows: usize, grad: &mut [f32]) -> f64 {
        self.0.loss_and_gradient(params, x, y, rows, grad)
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
        self.0.train_step(params, data, indices, seed, step, grad)
    }
    fn forward(&self, params: &[f32], x: &[f32], rows: usize, out: &mut [f32]) {
        self.0.forward(params, x, rows, out)
    }
    fn forward_rows(&self, params: &[f32], data: Rows<'_>, out: &mut [f32]) {
        self.0.forward_rows(params, data, out)
    }
    fn forward_and_loss_rows(&self, params: &[f32], data: Rows<'_>, out: &mut [f32]) -> f64 {
        self.0.forward_and_loss_rows(params, data, out)
    }
    fn diagnostic_segments(&self) -> Vec<(String, Range<usize>)> {
        self.0.diagnostic_segments()
    }
}

/// Sums the time between consecutive steps of the same epoch, from epoch 2 on, and stops the run
/// once it has `wanted` of them.
struct StepClock {
    wanted: u64,
    measured: u64,
    total: Duration,
    last: Option<(usize, Instant)>,
}

impl Observer for StepClock {
    fn on_step(&mut self, info: &StepInfo) -> bool {
        let now = Instant::now();
        if let Some((epoch, at)) = self.last {
            if epoch == info.epoch && epoch >= 2 {
                self.total += now - at;
                self.measured += 1;
            }
        }
        self.last = Some((info.epoch, now));
        self.measured < self.wanted
    }
}

fn sparse_step(c: &mut Criterion) {
    let layers = vec![
        LayerSpec::EmbeddingBag { num_embeddings: VOCAB, embedding_dim: DIM, mode: BagMode::Sum },
        LayerSpec::Linear { out_features: Some(10), bias: true },
    ];
    let net = Network::new(NetworkSpec::new(Shape(Vec::new()), layers, Loss::cross_entropy(0.0).unwrap())).unwrap();
    // Row r holds tokens 10r .. 10r + 9: batch b (rows 100b ..) touches rows 1000b .. 1000b + 999.
    let rows = BATCH * BATCHES_PER_EPOCH;
    let ids: Vec<u32> = (0..(rows * BAG) as u32).collect();
    let offsets: Vec<usize> = (0..=rows).map(|r| r * BAG).collect();
    let targets: Vec<f32> = (0..rows).map(|r| (r % 10) as f32).collect();
    let data = Rows::with_ids(&ids, &offsets, &targets);
    let init = net.init_params(0);
    let dense = Dense(&net);

    let mut group = c.benchmark_group("sparse_step");
    group.sample_size(10);
    for (optimizer, options, paths) in [
        ("sgd", json!({"lr": 0.01}), [("sparse", &net as &dyn Model), ("dense", &dense)]),
        ("adagrad", json!({"lr": 0.01}), [("sparse", &net), ("dense", &dense)]),
        ("sparse_adam", json!({"lr": 0.001}), [("sparse", &net), ("dense", &dense)]),
    ] {
        for (path, model) in paths {
            group.bench_function(format!("{optimizer}/{path}"), |b| {
                b.iter_custom(|iters| {
                    let mut clock = StepClock { wanted: iters, measured: 0, total: Duration::ZERO, last: None };
                    while clock.measured < iters {
                        let left = (iters - clock.measured) as usize;
                        let config = TrainConfig {
                            epochs: 1 + left.div_ceil(BATCHES_PER_EPOCH - 1),
                            batch: BatchMode::MiniBatch(BATCH),
                            shuffle: false,
                            evaluate_train: false,
                            ..Default::default()
                        };
                        let optimizer = gradus::optim::from_options(optimizer, &options).unwrap();
                        let mut params = init.clone();
                        let mut trainer = Trainer::new(config, optimizer).unwrap();
                        clock.last = None;
                        trainer.fit(model, &mut params, data, None, &mut [&mut clock]).unwrap();
                    }
                    clock.total
                })
            });
        }
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1));
    targets = sparse_step
}
criterion_main!(benches);
