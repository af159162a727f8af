//! The training engine: batch modes, reproducible shuffling across thread counts, stopping rules
//! (convergence, early stopping, divergence), diagnostics, checkpoints and resume, gradient
//! accumulation and clipping, cross-validation, evaluation metrics and the linear models'
//! gradients.

use gradus::data::{builtin, Dataset, Standardizer};
use gradus::linear::{LinearModel, Penalty};
use gradus::loss::Loss;
use gradus::mlp::{Activation, Mlp};
use gradus::model::{evaluate, Model, Rows};
use gradus::optim::{Adam, AdamConfig, Optimizer, Sgd, SgdConfig};
use gradus::schedule::{LrSchedule, PlateauConfig, ReduceOnPlateau};
use gradus::train::{
    cross_validate, epoch_order, BatchMode, Checkpoint, CheckpointConfig, EarlyStopping, EpochRecord, Observer,
    StepInfo, Termination, TrainConfig, TrainError, Trainer,
};
use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

fn sgd(lr: f64) -> Box<dyn Optimizer> {
    Box::new(Sgd::new(SgdConfig { lr, ..Default::default() }).unwrap())
}

fn adam(lr: f64) -> Box<dyn Optimizer> {
    Box::new(Adam::new(AdamConfig { lr, ..Default::default() }).unwrap())
}

/// A built-in table with every feature standardized (over all rows: these tests are about the
/// engine, not about generalization).
fn standardized(name: &str) -> Dataset {
    let mut data = builtin::load(name).unwrap().into_table().unwrap();
    let all: Vec<usize> = (0..data.rows).collect();
    Standardizer::fit(&data, &all).unwrap().transform(&mut data).unwrap();
    data
}

fn rows(data: &Dataset) -> Rows<'_> {
    Rows::new(&data.features, &data.target, data.cols)
}

/// `y = 2 x₀ − 3 x₁ + 1 + noise` on 200 rows.
fn synthetic_regression() -> (Vec<f32>, Vec<f32>) {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let mut x = Vec::new();
    let mut y = Vec::new();
    for _ in 0..200 {
        let (a, b): (f32, f32) = (rng.random_range(-1.0..1.0), rng.random_range(-1.0..1.0));
        x.extend([a, b]);
        y.push(2.0 * a - 3.0 * b + 1.0 + 0.05 * rng.random_range(-1.0f32..1.0));
    }
    (x, y)
}

fn bits(params: &[f32]) -> Vec<u32> {
    params.iter().map(|p| p.to_bits()).collect()
}

/// Counts updates and can stop training after a given number of them.
#[derive(Default)]
struct StepCounter {
    steps: u64,
    stop_after: Option<u64>,
    steps_per_epoch: Vec<u64>,
    epochs: Vec<EpochRecord>,
}

impl Observer for StepCounter {
    fn on_step(&mut self, info: &StepInfo) -> bool {
        self.steps = info.step;
        if self.steps_per_epoch.len() < info.epoch {
            self.steps_per_epoch.push(0);
        }
        self.steps_per_epoch[info.epoch - 1] += 1;
        self.stop_after != Some(info.step)
    }

    fn on_epoch(&mut self, record: &EpochRecord) -> bool {
        self.epochs.push(record.clone());
        true
    }
}

fn small_mlp(inputs: usize, hidden: usize, classes: usize) -> Mlp {
    Mlp::new(
        &[inputs, hidden, classes],
        &[Activation::Relu, Activation::Identity],
        Loss::CrossEntropy { label_smoothing: 0.0 },
    )
    .unwrap()
}

// ---------------------------------------------------------------------------------------------
// Batch modes and shuffling
// ---------------------------------------------------------------------------------------------

#[test]
fn every_batch_mode_reduces_the_loss_with_the_expected_number_of_updates() {
    let (x, y) = synthetic_regression();
    let data = Rows::new(&x, &y, 2);
    let model = LinearModel::linear(2, Penalty::default()).unwrap();
    for (mode, lr, updates_per_epoch) in
        [(BatchMode::Full, 0.3, 1), (BatchMode::Stochastic, 0.01, 200), (BatchMode::MiniBatch(16), 0.1, 13)]
    {
        let mut params = model.init_params(0);
        let initial = evaluate(&model, &params, data).unwrap()["loss"];
        let config = TrainConfig { epochs: 20, batch: mode, ..Default::default() };
        let mut counter = StepCounter::default();
        let report = Trainer::new(config, sgd(lr)).unwrap().fit(&model, &mut params, data, None, &mut [&mut counter]);
        let report = report.unwrap();
        let last = report.history.last().unwrap().train["loss"];
        assert!(last < 0.01 * initial, "{mode:?}: loss {initial} -> {last}");
        assert_eq!(report.termination, Termination::MaxEpochs);
        assert_eq!(counter.steps_per_epoch, vec![updates_per_epoch; 20], "{mode:?}");
        // The loss goes down epoch after epoch until it reaches the noise floor (noise variance 8.3e-4).
        let losses: Vec<f64> = report.history.iter().map(|r| r.train["loss"]).collect();
        assert!(losses.windows(2).all(|w| w[1] < w[0] || w[1] < 1.2e-3), "{mode:?}: {losses:?}");
    }
}

#[test]
fn running_train_loss_skips_the_evaluation_pass_but_not_the_training() {
    let (x, y) = synthetic_regression();
    let data = Rows::new(&x, &y, 2);
    let model = LinearModel::linear(2, Penalty::default()).unwrap();
    let run = |evaluate_train: bool| {
        let mut params = model.init_params(0);
        let config = TrainConfig { epochs: 5, batch: BatchMode::MiniBatch(16), evaluate_train, ..Default::default() };
        let report = Trainer::new(config, sgd(0.1)).unwrap().fit(&model, &mut params, data, None, &mut []).unwrap();
        (params, report)
    };
    let (full_params, full) = run(true);
    let (running_params, running) = run(false);
    assert_eq!(bits(&full_params), bits(&running_params), "evaluation must not change training");
    assert!(full.history[0].train.contains_key("r2"));
    for (f, r) in full.history.iter().zip(&running.history) {
        assert_eq!(r.train.keys().collect::<Vec<_>>(), vec!["loss"]);
        // Each batch loss is taken before its update, so the running mean trails the end-of-epoch loss.
        assert!(r.train["loss"] >= f.train["loss"], "epoch {}: {} < {}", f.epoch, r.train["loss"], f.train["loss"]);
    }
}

/// Without the evaluation pass, the starting loss is the first mini-batch's: starting
/// parameters that give a non-finite loss still stop the run before any update.
#[test]
fn a_non_finite_start_stops_the_run_without_an_evaluation_pass() {
    let (x, y) = synthetic_regression();
    let data = Rows::new(&x, &y, 2);
    let model = LinearModel::linear(2, Penalty::default()).unwrap();
    for evaluate_train in [true, false] {
        let mut params = vec![f32::NAN; model.layout().len()];
        let config = TrainConfig { epochs: 2, batch: BatchMode::MiniBatch(16), evaluate_train, ..Default::default() };
        match Trainer::new(config, sgd(0.1)).unwrap().fit(&model, &mut params, data, None, &mut []) {
            Err(TrainError::Diverged { epoch: 0, step: 0, .. }) => {}
            other => panic!("evaluate_train {evaluate_train}: {other:?}"),
        }
        assert!(params.iter().all(|p| p.is_nan()), "no update went through");
    }
}

#[test]
fn epoch_order_is_a_permutation_drawn_from_seed_and_epoch() {
    let a = epoch_order(100, 3, 1, true);
    assert_eq!(a, epoch_order(100, 3, 1, true));
    assert_ne!(a, epoch_order(100, 3, 2, true), "each epoch reshuffles");
    assert_ne!(a, epoch_order(100, 4, 1, true), "the seed matters");
    let mut sorted = a.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, (0..100).collect::<Vec<_>>());
    assert_eq!(epoch_order(5, 3, 1, false), [0, 1, 2, 3, 4]);
}

#[test]
fn training_is_reproducible_and_bit_identical_across_thread_counts() {
    let digits = standardized("digits");
    let model = small_mlp(64, 32, 10);
    // Batches of 200 rows span several 64-row blocks, which run in parallel.
    let train = |threads: usize, seed: u64| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        pool.install(|| {
            let mut params = model.init_params(1);
            let config = TrainConfig { epochs: 3, batch: BatchMode::MiniBatch(200), seed, ..Default::default() };
            Trainer::new(config, adam(1e-2)).unwrap().fit(&model, &mut params, rows(&digits), None, &mut []).unwrap();
            params
        })
    };
    let one = train(1, 5);
    let two = train(2, 5);
    assert_eq!(bits(&one), bits(&two), "1 and 2 threads differ");
    assert_eq!(bits(&one), bits(&train(2, 5)), "same seed, same bits");
    assert_ne!(bits(&one), bits(&train(1, 6)), "another shuffle seed gives other parameters");
}

/// A wider network, whose steps take every parallel path: its first layer is split across the
/// threads, and its 82,610 parameters are past the length from which the gradient's norm, the
/// copy of the last good parameters and the optimizer step run in parallel.
#[test]
fn wide_network_steps_are_bit_identical_across_thread_counts() {
    let digits = standardized("digits");
    let model = small_mlp(64, 1100, 10);
    assert!(model.num_params() > 65_536);
    let train = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        pool.install(|| {
            let mut params = model.init_params(2);
            let config = TrainConfig { epochs: 1, batch: BatchMode::MiniBatch(64), seed: 3, ..Default::default() };
            let mut trainer = Trainer::new(config, adam(1e-3)).unwrap();
            let report = trainer.fit(&model, &mut params, rows(&digits), None, &mut []).unwrap();
            (params, report.history[0].grad_norm.to_bits())
        })
    };
    let (one, one_norm) = train(1);
    for threads in [2, 3] {
        let (other, other_norm) = train(threads);
        assert_eq!(bits(&one), bits(&other), "1 and {threads} threads differ");
        assert_eq!(one_norm, other_norm, "gradient norms on 1 and {threads} threads");
    }
}

// ---------------------------------------------------------------------------------------------
// Stopping rules
// ---------------------------------------------------------------------------------------------

#[test]
fn convergence_stops_when_the_loss_stops_changing() {
    let (x, y) = synthetic_regression();
    let data = Rows::new(&x, &y, 2);
    let model = LinearModel::linear(2, Penalty::default()).unwrap();
    let mut params = model.init_params(0);
    let tol = 1e-7;
    let config = TrainConfig { epochs: 5000, batch: BatchMode::Full, tol: Some(tol), ..Default::default() };
    let report = Trainer::new(config, sgd(0.1)).unwrap().fit(&model, &mut params, data, None, &mut []).unwrap();
    assert_eq!(report.termination, Termination::Converged);
    let n = report.history.len();
    assert!(n > 10 && n < 5000, "stopped after {n} epochs");
    let last = report.history[n - 1].train["loss"];
    let before = report.history[n - 2].train["loss"];
    assert!((before - last).abs() < tol);
    // Every earlier pair of epochs changed by more than tol.
    assert!(report.history.windows(2).take(n - 2).all(|w| (w[0].train["loss"] - w[1].train["loss"]).abs() >= tol));
    // And it converged to the generating weights.
    assert!((params[0] - 2.0).abs() < 0.05 && (params[1] + 3.0).abs() < 0.05 && (params[2] - 1.0).abs() < 0.05);
}

#[test]
fn early_stopping_restores_the_best_epochs_parameters() {
    let digits = standardized("digits");
    // 150 training rows and a large network with a high learning rate: it overfits quickly.
    let train = Rows::new(&digits.features[..150 * 64], &digits.target[..150], 64);
    let validation = Rows::new(&digits.features[1000 * 64..1400 * 64], &digits.target[1000..1400], 64);
    let model = small_mlp(64, 128, 10);
    let config = |epochs, early_stopping| TrainConfig {
        epochs,
        batch: BatchMode::MiniBatch(16),
        early_stopping,
        ..Default::default()
    };
    let stopping = EarlyStopping { patience: 3, metric: Some("loss".into()), min_delta: 0.0 };
    let mut params = model.init_params(2);
    let report = Trainer::new(config(200, Some(stopping)), adam(1e-2))
        .unwrap()
        .fit(&model, &mut params, train, Some(validation), &mut [])
        .unwrap();
    assert_eq!(report.termination, Termination::EarlyStopped);
    let losses: Vec<f64> = report.history.iter().map(|r| r.validation["loss"]).collect();
    let best = report.best_epoch;
    assert_eq!(report.history.len(), best + 3, "stops `patience` epochs after the best one: {losses:?}");
    assert!(best < report.history.len());
    assert!(losses.iter().all(|&l| l >= losses[best - 1]), "epoch {best} is not the best: {losses:?}");
    // The parameters are those at the end of the best epoch: a run of exactly `best` epochs.
    let mut replay = model.init_params(2);
    Trainer::new(config(best, None), adam(1e-2)).unwrap().fit(&model, &mut replay, train, None, &mut []).unwrap();
    assert_eq!(bits(&params), bits(&replay));
    assert_eq!(evaluate(&model, &params, validation).unwrap()["loss"], losses[best - 1]);
}

#[test]
fn early_stopping_rejects_a_metric_the_task_does_not_report() {
    let (x, y) = synthetic_regression();
    let data = Rows::new(&x, &y, 2);
    let model = LinearModel::linear(2, Penalty::default()).unwrap();
    let stopping = EarlyStopping { patience: 2, metric: Some("accuracy".into()), min_delta: 0.0 };
    let config = TrainConfig { early_stopping: Some(stopping), ..Default::default() };
    let mut params = model.init_params(0);
    let err = Trainer::new(config, sgd(0.1)).unwrap().fit(&model, &mut params, data, Some(data), &mut []).unwrap_err();
    assert!(matches!(&err, TrainError::Config(c) if c.option == "early_stopping.metric"), "{err}");
}

/// Linear regression on diabetes: standardized features, raw targets (mean ≈ 152).
fn diabetes_divergence(lr: f64, stop_after: Option<u64>) -> (Result<gradus::train::TrainReport, TrainError>, Vec<f32>) {
    let diabetes = standardized("diabetes"); // features only: the targets stay raw
    let model = LinearModel::linear(10, Penalty::default()).unwrap();
    let mut params = model.init_params(0);
    let config = TrainConfig { epochs: 50, batch: BatchMode::MiniBatch(32), ..Default::default() };
    let mut counter = StepCounter { stop_after, ..Default::default() };
    let result =
        Trainer::new(config, sgd(lr)).unwrap().fit(&model, &mut params, rows(&diabetes), None, &mut [&mut counter]);
    (result, params)
}

#[test]
fn divergence_is_reported_with_its_step_and_a_hint_and_keeps_the_last_good_parameters() {
    for lr in [1e3, 0.6] {
        let (result, params) = diabetes_divergence(lr, None);
        let err = result.unwrap_err();
        let TrainError::Diverged { epoch, step, loss_before, loss_after, .. } = &err else {
            panic!("lr {lr}: expected divergence, got {err}");
        };
        let message = err.to_string();
        assert!(message.contains(&format!("epoch {epoch}, step {step}")), "{message}");
        assert!(message.contains(&format!("{loss_before}")) && message.contains(&format!("{loss_after}")));
        assert!(message.contains(&format!("try {} (ten times lower)", lr / 10.0)), "{message}");
        assert!(loss_before.is_finite() && (loss_after.is_nan() || loss_after > loss_before), "{message}");
        assert!(params.iter().all(|p| p.is_finite()));
        // The parameters are those from before update `step`: a run stopped after `step − 1` updates.
        let (replay, expected) = diabetes_divergence(lr, Some(step - 1));
        if *step > 1 {
            assert_eq!(replay.unwrap().termination, Termination::Interrupted);
        }
        assert_eq!(bits(&params), bits(&expected), "lr {lr}, step {step}");
        if lr == 0.6 {
            assert!(*step > 2, "lr 0.6 should take a few updates to diverge (step {step})");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Diagnostics
// ---------------------------------------------------------------------------------------------

#[derive(Default)]
struct WarningLog(Vec<String>);

impl Observer for WarningLog {
    fn on_warning(&mut self, warning: &gradus::train::Warning) {
        self.0.push(warning.message.clone());
    }
}

#[test]
fn vanishing_gradients_are_reported_for_a_deep_sigmoid_network() {
    let digits = standardized("digits");
    let mut sizes = vec![64];
    sizes.extend([32; 9]);
    sizes.push(10);
    let mut activations = vec![Activation::Sigmoid; 9];
    activations.push(Activation::Identity);
    let model = Mlp::new(&sizes, &activations, Loss::CrossEntropy { label_smoothing: 0.0 }).unwrap();
    let mut params = model.init_params(0);
    let config = TrainConfig { epochs: 3, batch: BatchMode::MiniBatch(128), ..Default::default() };
    let mut log = WarningLog::default();
    let report = Trainer::new(config, sgd(0.01))
        .unwrap()
        .fit(&model, &mut params, rows(&digits), None, &mut [&mut log])
        .unwrap();
    assert!(!report.warnings.is_empty(), "no warning");
    assert_eq!(log.0, report.warnings.iter().map(|w| w.message.clone()).collect::<Vec<_>>());
    let first = &report.warnings[0].message;
    assert!(first.starts_with("vanishing gradients in `layer0.weight`"), "{first}");
    assert!(report.warnings.iter().all(|w| w.epoch == 3 && w.message.contains("vanishing")));

    // A shallow relu network raises none.
    let shallow = small_mlp(64, 32, 10);
    let mut params = shallow.init_params(0);
    let config = TrainConfig { epochs: 3, batch: BatchMode::MiniBatch(128), ..Default::default() };
    let report = Trainer::new(config, sgd(0.01)).unwrap().fit(&shallow, &mut params, rows(&digits), None, &mut []);
    assert!(report.unwrap().warnings.is_empty());
}

// ---------------------------------------------------------------------------------------------
// Checkpoints
// ---------------------------------------------------------------------------------------------

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("gradus-engine-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn plateau(lr: f64) -> LrSchedule {
    // Reduces whenever an epoch improves the loss by less than 20%: several times in 6 epochs.
    let config = PlateauConfig { factor: 0.5, patience: 0, threshold: 0.2, ..Default::default() };
    LrSchedule::Plateau(ReduceOnPlateau::new(lr, config).unwrap())
}

#[test]
fn resuming_from_a_checkpoint_matches_an_uninterrupted_run_bit_for_bit() {
    let digits = standardized("digits");
    let train = Rows::new(&digits.features[..1000 * 64], &digits.target[..1000], 64);
    let validation = Rows::new(&digits.features[1000 * 64..], &digits.target[1000..], 64);
    let model = small_mlp(64, 32, 10);
    for with_plateau in [false, true] {
        let dir = temp_dir(if with_plateau { "plateau" } else { "plain" });
        let path = dir.join("run.ckpt");
        let trainer = |epochs: usize| {
            let config = TrainConfig {
                epochs,
                batch: BatchMode::MiniBatch(100),
                checkpoint: Some(CheckpointConfig { every: 2, path: path.clone() }),
                ..Default::default()
            };
            let trainer = Trainer::new(config, adam(2e-2)).unwrap();
            if with_plateau {
                trainer.with_lr_control(plateau(2e-2))
            } else {
                trainer
            }
        };

        // Uninterrupted: 6 epochs, checkpoints at 2, 4 and 6.
        let mut whole = model.init_params(3);
        let full = trainer(6).fit(&model, &mut whole, train, Some(validation), &mut []).unwrap();
        let last = Checkpoint::load(&path).unwrap();
        assert_eq!((last.epoch, bits(&last.params)), (6, bits(&whole)));
        let entries: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(entries, ["run.ckpt"], "a temporary file was left behind");
        if with_plateau {
            let lrs: Vec<f64> = full.history.iter().map(|r| r.lr).collect();
            assert!(lrs.last().unwrap() < &2e-2, "the plateau controller never reduced: {lrs:?}");
        }

        // Interrupted after 4 epochs (the last checkpoint is epoch 4), then resumed to 6.
        let mut first_part = model.init_params(3);
        trainer(4).fit(&model, &mut first_part, train, Some(validation), &mut []).unwrap();
        let checkpoint = Checkpoint::load(&path).unwrap();
        assert_eq!(checkpoint.epoch, 4);
        let mut resumed = vec![0.0; whole.len()];
        let rest =
            trainer(6).fit_from(&model, &mut resumed, train, Some(validation), &mut [], Some(checkpoint)).unwrap();
        assert_eq!(bits(&resumed), bits(&whole), "plateau: {with_plateau}");
        assert_eq!(rest.history.len(), 6);
        for (a, b) in rest.history.iter().zip(&full.history) {
            assert_eq!((a.epoch, &a.train, &a.validation, a.lr), (b.epoch, &b.train, &b.validation, b.lr));
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

#[test]
fn a_bad_checkpoint_is_an_error_naming_the_file() {
    let dir = temp_dir("bad");
    let path = dir.join("bad.ckpt");
    std::fs::write(&path, "{ not json").unwrap();
    let err = Checkpoint::load(&path).unwrap_err();
    assert!(matches!(err, TrainError::Checkpoint { .. }));
    assert!(err.to_string().contains("bad.ckpt"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

// ---------------------------------------------------------------------------------------------
// Gradient accumulation and clipping
// ---------------------------------------------------------------------------------------------

#[test]
fn accumulating_four_micro_batches_of_8_equals_batches_of_32() {
    let (x, y) = synthetic_regression();
    let data = Rows::new(&x, &y, 2);
    let model = LinearModel::linear(2, Penalty { l2: 0.01, l1: 0.0 }).unwrap();
    let run = |batch, accumulate| {
        let mut params = model.init_params(0);
        // 200 rows: 6 batches of 32 and one of 8; 25 micro-batches of 8 make 6 groups of 4 and one of 1.
        let config = TrainConfig { epochs: 3, batch, accumulate, shuffle: false, ..Default::default() };
        let mut counter = StepCounter::default();
        Trainer::new(config, sgd(0.1)).unwrap().fit(&model, &mut params, data, None, &mut [&mut counter]).unwrap();
        (params, counter.steps_per_epoch)
    };
    let (accumulated, steps) = run(BatchMode::MiniBatch(8), 4);
    let (plain, plain_steps) = run(BatchMode::MiniBatch(32), 1);
    assert_eq!(steps, [7, 7, 7]);
    assert_eq!(steps, plain_steps);
    for (a, b) in accumulated.iter().zip(&plain) {
        assert!((a - b).abs() < 1e-5, "{accumulated:?} vs {plain:?}");
    }
    // Without accumulation, batches of 8 take other steps.
    let (unaccumulated, _) = run(BatchMode::MiniBatch(8), 1);
    assert!(unaccumulated.iter().zip(&plain).any(|(a, b)| (a - b).abs() > 1e-3));
}

#[test]
fn clip_norm_bounds_each_update() {
    let (x, y) = synthetic_regression();
    let data = Rows::new(&x, &y, 2);
    let model = LinearModel::linear(2, Penalty::default()).unwrap();
    let clip = 1e-2;
    let mut params = model.init_params(0);
    let config = TrainConfig { epochs: 1, batch: BatchMode::Full, clip_norm: Some(clip), ..Default::default() };
    let report = Trainer::new(config, sgd(1.0)).unwrap().fit(&model, &mut params, data, None, &mut []).unwrap();
    // One update of lr 1 along a gradient clipped to norm 1e-2.
    let moved = params.iter().map(|p| (*p as f64).powi(2)).sum::<f64>().sqrt();
    assert!((moved - clip).abs() < 1e-6, "moved {moved}");
    // The recorded norm is the one before clipping.
    assert!(report.history[0].grad_norm > 1.0);

    let mut unclipped = model.init_params(0);
    let config = TrainConfig { epochs: 1, batch: BatchMode::Full, ..Default::default() };
    Trainer::new(config, sgd(1.0)).unwrap().fit(&model, &mut unclipped, data, None, &mut []).unwrap();
    let moved = unclipped.iter().map(|p| (*p as f64).powi(2)).sum::<f64>().sqrt();
    assert!((moved - report.history[0].grad_norm).abs() < 1e-4 * moved);
}

// ---------------------------------------------------------------------------------------------
// Cross-validation and evaluation
// ---------------------------------------------------------------------------------------------

#[test]
fn cross_validate_returns_per_fold_and_mean_metrics() {
    let cancer = builtin::load("breast_cancer").unwrap().into_table().unwrap();
    let mut tested = vec![0usize; cancer.rows];
    let cv = cross_validate(cancer.rows, 5, 0, |train_rows, test_rows| {
        for &r in test_rows {
            tested[r] += 1;
        }
        assert!(train_rows.iter().all(|r| test_rows.binary_search(r).is_err()), "a row in both parts");
        assert_eq!(train_rows.len() + test_rows.len(), cancer.rows);
        let scaler = Standardizer::fit(&cancer, train_rows).unwrap();
        let mut train = cancer.select(train_rows).unwrap();
        let mut test = cancer.select(test_rows).unwrap();
        scaler.transform(&mut train).unwrap();
        scaler.transform(&mut test).unwrap();
        let model = LinearModel::logistic(30, Penalty::default()).unwrap();
        let mut params = model.init_params(0);
        let config = TrainConfig { epochs: 10, ..Default::default() };
        Trainer::new(config, sgd(0.1))?.fit(&model, &mut params, rows(&train), None, &mut [])?;
        Ok(evaluate(&model, &params, rows(&test))?)
    })
    .unwrap();
    assert_eq!(tested, vec![1; cancer.rows], "each row is tested exactly once");
    assert_eq!(cv.folds.len(), 5);
    for metric in ["loss", "accuracy"] {
        let mean = cv.folds.iter().map(|f| f[metric]).sum::<f64>() / 5.0;
        assert!((cv.mean[metric] - mean).abs() < 1e-12, "{metric}");
    }
    assert!(cv.mean["accuracy"] > 0.95, "{:?}", cv.mean);
    assert!(cv.folds.iter().any(|f| f["accuracy"] != cv.mean["accuracy"]));

    let err = cross_validate(10, 1, 0, |_, _| Ok(Default::default())).unwrap_err();
    assert!(matches!(err, TrainError::Config(_)), "{err}");
}

#[test]
fn evaluate_matches_hand_computed_metrics() {
    // Regression: ŷ = 2x + 1 on x = 0..3, y = [1, 3, 4, 9]: errors [0, 0, 1, −2].
    let model = LinearModel::linear(1, Penalty::default()).unwrap();
    let m = evaluate(&model, &[2.0, 1.0], Rows::new(&[0.0, 1.0, 2.0, 3.0], &[1.0, 3.0, 4.0, 9.0], 1)).unwrap();
    let close = |a: f64, b: f64| (a - b).abs() < 1e-9;
    assert!(close(m["loss"], 1.25), "{m:?}");
    assert!(close(m["rmse"], 1.25f64.sqrt()));
    assert!(close(m["mae"], 0.75));
    // mean y = 4.25, SS_tot = 3.25² + 1.25² + 0.25² + 4.75² = 34.75, SS_res = 5.
    assert!(close(m["r2"], 1.0 - 5.0 / 34.75));
    assert_eq!(m.len(), 4);

    // A penalty adds to the loss only: l2/2 · 2² + l1 · 2.
    let penalized = LinearModel::linear(1, Penalty { l2: 0.5, l1: 0.25 }).unwrap();
    let p = evaluate(&penalized, &[2.0, 1.0], Rows::new(&[0.0, 1.0, 2.0, 3.0], &[1.0, 3.0, 4.0, 9.0], 1)).unwrap();
    assert!(close(p["loss"], 1.25 + 1.0 + 0.5) && close(p["rmse"], m["rmse"]));

    // Logistic: logit = x on x = [−2, 1, 3], y = [0, 0, 1]: predictions [0, 1, 1].
    let model = LinearModel::logistic(1, Penalty::default()).unwrap();
    let m = evaluate(&model, &[1.0, 0.0], Rows::new(&[-2.0, 1.0, 3.0], &[0.0, 0.0, 1.0], 1)).unwrap();
    let bce = ((1.0 + (-2.0f64).exp()).ln() + (1.0 + 1.0f64.exp()).ln() + (1.0 + (-3.0f64).exp()).ln()) / 3.0;
    assert!((m["loss"] - bce).abs() < 1e-6, "{m:?} vs {bce}");
    assert!(close(m["accuracy"], 2.0 / 3.0));

    // Softmax over 3 classes with logits = W x, W = I (2 inputs → first two classes), b = [0, 0, 0.5].
    let model = LinearModel::softmax(2, 3, Penalty::default()).unwrap();
    let params = [1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.5];
    let x = [2.0, 0.0, 0.0, 2.0, 0.0, 0.0, 1.0, 0.0];
    let y = [0.0, 1.0, 2.0, 2.0];
    let m = evaluate(&model, &params, Rows::new(&x, &y, 2)).unwrap();
    // Predictions: 0, 1, 2 (only the bias), 0 (logits 1, 0, 0.5); three of four right.
    assert!(close(m["accuracy"], 0.75), "{m:?}");
    let ce = |logits: [f64; 3], k: usize| logits.iter().map(|l| l.exp()).sum::<f64>().ln() - logits[k];
    let want =
        (ce([2.0, 0.0, 0.5], 0) + ce([0.0, 2.0, 0.5], 1) + ce([0.0, 0.0, 0.5], 2) + ce([1.0, 0.0, 0.5], 2)) / 4.0;
    assert!((m["loss"] - want).abs() < 1e-6, "{} vs {want}", m["loss"]);

    // Evaluation over more than one 4096-row block.
    let n = 5000;
    let x: Vec<f32> = (0..n).map(|i| i as f32 / n as f32).collect();
    let y: Vec<f32> = x.iter().map(|v| 3.0 * v).collect();
    let model = LinearModel::linear(1, Penalty::default()).unwrap();
    let m = evaluate(&model, &[3.0, 0.5], Rows::new(&x, &y, 1)).unwrap();
    assert!((m["loss"] - 0.25).abs() < 1e-6 && (m["mae"] - 0.5).abs() < 1e-6, "{m:?}");
}

// ---------------------------------------------------------------------------------------------
// Linear model gradients
// ---------------------------------------------------------------------------------------------

fn finite_difference_check(model: &LinearModel, params: &[f32], x: &[f32], y: &[f32], rows: usize) {
    let mut grad = vec![0.0; params.len()];
    let value = model.loss_and_gradient(params, x, y, rows, &mut grad);
    assert!((value - model.loss(params, x, y, rows)).abs() < 1e-5 * (1.0 + value.abs()));
    let h = 1e-3f32;
    for i in 0..params.len() {
        let mut plus = params.to_vec();
        let mut minus = params.to_vec();
        plus[i] += h;
        minus[i] -= h;
        let delta = plus[i] as f64 - minus[i] as f64;
        let numeric = (model.loss(&plus, x, y, rows) - model.loss(&minus, x, y, rows)) / delta;
        let analytic = grad[i] as f64;
        assert!(
            (numeric - analytic).abs() <= 3e-3 + 1e-2 * analytic.abs(),
            "{:?} parameter {i}: analytic {analytic}, numeric {numeric}",
            model.kind()
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn linear_model_gradients_match_finite_differences(
        kind in 0usize..3,
        inputs in 1usize..5,
        rows in 1usize..7,
        l2 in prop_oneof![Just(0.0), 0.0f64..2.0],
        l1 in prop_oneof![Just(0.0), 0.0f64..1.0],
        seed in any::<u64>(),
    ) {
        let classes = 3;
        let penalty = Penalty { l2, l1 };
        let model = match kind {
            0 => LinearModel::linear(inputs, penalty),
            1 => LinearModel::logistic(inputs, penalty),
            _ => LinearModel::softmax(inputs, classes, penalty),
        }.unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let weights = model.layout().segment("layer0.weight").unwrap().range();
        let params: Vec<f32> = (0..model.layout().len())
            .map(|i| if weights.contains(&i) {
                // Away from zero (the L1 kink) by more than the finite-difference step.
                let magnitude: f32 = rng.random_range(0.05..1.0);
                if rng.random::<bool>() { magnitude } else { -magnitude }
            } else {
                rng.random_range(-1.0..1.0)
            })
            .collect();
        let x: Vec<f32> = (0..rows * inputs).map(|_| rng.random_range(-2.0..2.0)).collect();
        let y: Vec<f32> = (0..rows)
            .map(|_| match kind {
                0 => rng.random_range(-3.0..3.0),
                1 => rng.random_range(0..2) as f32,
                _ => rng.random_range(0..classes) as f32,
            })
            .collect();
        finite_difference_check(&model, &params, &x, &y, rows);
    }
}

#[test]
fn l1_subgradient_at_zero_is_zero_and_l2_is_linear() {
    let penalty = Penalty { l2: 0.5, l1: 0.25 };
    let mut grad = vec![0.0; 3];
    let value = penalty.apply(&[0.0, 2.0, -1.0], &mut grad);
    assert_eq!(grad, [0.0, 0.5 * 2.0 + 0.25, -0.5 - 0.25]);
    assert!((value - (0.25 * 4.0 + 0.5 + 0.25 * 1.0 + 0.25)).abs() < 1e-12);
    assert!((penalty.value(&[0.0, 2.0, -1.0]) - value).abs() < 1e-12);
}

#[test]
fn linear_models_agree_with_the_one_layer_mlp_and_ignore_the_thread_count() {
    let digits = standardized("digits");
    let rows = 300; // several 64-row blocks
    let (x, y) = (&digits.features[..rows * 64], &digits.target[..rows]);
    let binary: Vec<f32> = y.iter().map(|&t| f32::from(t >= 5.0)).collect();
    let cases = [
        (LinearModel::softmax(64, 10, Penalty::default()).unwrap(), Loss::CrossEntropy { label_smoothing: 0.0 }, y),
        (LinearModel::logistic(64, Penalty::default()).unwrap(), Loss::BceWithLogits, &binary[..]),
        (LinearModel::linear(64, Penalty::default()).unwrap(), Loss::Mse, y),
    ];
    for (model, loss, targets) in cases {
        let outputs = model.outputs();
        let mlp = Mlp::new(&[64, outputs], &[Activation::Identity], loss).unwrap();
        let params = mlp.init(4);
        let mut want = vec![0.0; params.len()];
        let want_loss = gradus::mlp::Mlp::loss_and_gradient(&mlp, &params, x, rows, targets, &mut want);
        let gradient = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            pool.install(|| {
                let mut grad = vec![0.0; params.len()];
                let loss = model.loss_and_gradient(&params, x, targets, rows, &mut grad);
                (loss, grad)
            })
        };
        let (loss_one, one) = gradient(1);
        let (loss_two, two) = gradient(2);
        assert_eq!((loss_one.to_bits(), bits(&one)), (loss_two.to_bits(), bits(&two)), "{:?}", model.kind());
        assert!((loss_one - want_loss).abs() < 1e-5 * want_loss.abs(), "{:?}: {loss_one} vs {want_loss}", model.kind());
        let scale = want.iter().fold(0.0f32, |m, g| m.max(g.abs()));
        for (a, b) in one.iter().zip(&want) {
            assert!((a - b).abs() <= 1e-4 * scale, "{:?}: {a} vs {b}", model.kind());
        }
        let mut out = vec![0.0; rows * outputs];
        let mut mlp_out = vec![0.0; rows * outputs];
        model.forward(&params, x, rows, &mut out);
        mlp.predict(&params, x, rows, &mut mlp_out);
        assert!(out.iter().zip(&mlp_out).all(|(a, b)| (a - b).abs() <= 1e-4 * (1.0 + b.abs())));
    }
}
