//! The learning-rate range test on a small real problem: logistic regression on separable data.

use gradus::linear::{LinearModel, Penalty};
use gradus::lr_find::{range_test, RangeTest, RangeTestConfig, RangeTestError};
use gradus::model::{Model, Rows};
use gradus::optim::{from_options, Optimizer};
use gradus::train::epoch_order;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::json;

const FEATURES: usize = 5;

/// `rows` points with standard-ish features, labelled by a fixed hyperplane (linearly separable).
fn separable_data(rows: usize) -> (Vec<f32>, Vec<f32>) {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let normal = [1.5f32, -2.0, 0.5, 1.0, -0.75];
    let mut x = Vec::with_capacity(rows * FEATURES);
    let mut y = Vec::with_capacity(rows);
    for _ in 0..rows {
        let row: Vec<f32> = (0..FEATURES).map(|_| rng.random_range(-2.0f32..2.0)).collect();
        let side: f32 = row.iter().zip(normal).map(|(a, b)| a * b).sum::<f32>() + 0.3;
        y.push(if side > 0.0 { 1.0 } else { 0.0 });
        x.extend(row);
    }
    (x, y)
}

fn sgd(lr: f64) -> Box<dyn Optimizer> {
    from_options("sgd", &json!({ "lr": lr })).unwrap()
}

fn config(seed: u64) -> RangeTestConfig {
    RangeTestConfig { start_lr: 1e-5, end_lr: 1e3, num_steps: 100, batch_size: 32, seed, ..Default::default() }
}

fn full_loss(model: &dyn Model, params: &[f32], data: Rows<'_>) -> f64 {
    model.loss(params, data.x, data.y, data.rows)
}

/// Two epochs of mini-batch training from `params` at a constant `lr`; returns the final full loss.
fn train(model: &dyn Model, params: &[f32], data: Rows<'_>, lr: f64) -> f64 {
    let mut params = params.to_vec();
    let mut grads = vec![0.0; params.len()];
    let mut optimizer = sgd(lr);
    let (mut bx, mut by) = (Vec::new(), Vec::new());
    for epoch in 1..=2 {
        for batch in epoch_order(data.rows, 3, epoch, true).chunks(32) {
            data.gather(batch, &mut bx, &mut by);
            model.loss_and_gradient(&params, &bx, &by, batch.len(), &mut grads);
            optimizer.step(&mut params, &grads);
        }
    }
    full_loss(model, &params, data)
}

fn run(seed: u64) -> (RangeTest, f64, f64, f64) {
    let (x, y) = separable_data(600);
    let data = Rows::new(&x, &y, FEATURES);
    let model = LinearModel::logistic(FEATURES, Penalty::default()).unwrap();
    let params = model.init_params(1);
    let result = range_test(&model, &params, data, sgd(1e-3), &config(seed)).unwrap();
    let initial = full_loss(&model, &params, data);
    let at_suggestion = train(&model, &params, data, result.suggestion);
    let at_start = train(&model, &params, data, 1e-5);
    (result, initial, at_suggestion, at_start)
}

#[test]
fn the_suggestion_lies_in_range_and_trains_well() {
    let (result, initial, at_suggestion, at_start) = run(0);
    let n = result.lrs.len();
    assert!(n >= 10, "the test recorded only {n} mini-batches");
    assert_eq!(result.losses.len(), n);
    assert_eq!(result.smoothed.len(), n);
    assert!(result.lrs.windows(2).all(|w| w[1] > w[0]), "learning rates must grow");
    assert!(result.losses.iter().chain(&result.smoothed).all(|v| v.is_finite()));

    let s = result.suggestion;
    assert!(s.is_finite() && (1e-5..=1e3).contains(&s), "suggestion {s} outside [1e-5, 1e3]");
    assert!(result.rule.starts_with("steepest"), "rule: {}", result.rule);
    assert!((result.min_loss_suggestion - result.min_loss_lr / 10.0).abs() <= 1e-12 * result.min_loss_lr);

    // A learning rate of 1e3 makes SGD on logistic regression blow up, so the test must stop early.
    assert!(result.stopped_early, "the loss never blew up up to lr {}", result.lrs[n - 1]);
    assert!(*result.lrs.last().unwrap() < 1e3);
    let best = result.smoothed.iter().copied().fold(f64::INFINITY, f64::min);
    assert!(*result.smoothed.last().unwrap() > 4.0 * best);

    // Training at the suggestion reduces the loss a lot; at the start of the range it barely moves.
    assert!(at_suggestion < 0.5 * initial, "loss {initial} -> {at_suggestion} at lr {s}");
    assert!(at_start > 0.95 * initial, "loss {initial} -> {at_start} at lr 1e-5");
}

#[test]
fn the_test_is_reproducible_from_its_seed() {
    let (first, ..) = run(5);
    let (again, ..) = run(5);
    assert_eq!(first, again);
    let (other, ..) = run(6);
    assert_ne!(first.losses, other.losses, "another seed must draw other mini-batches");
}

#[test]
fn the_callers_parameters_are_left_alone() {
    let (x, y) = separable_data(100);
    let model = LinearModel::logistic(FEATURES, Penalty::default()).unwrap();
    let params = model.init_params(1);
    let before = params.clone();
    range_test(&model, &params, Rows::new(&x, &y, FEATURES), sgd(1e-3), &config(0)).unwrap();
    assert_eq!(params, before);
}

#[test]
fn bad_input_is_reported() {
    let (x, y) = separable_data(10);
    let model = LinearModel::logistic(FEATURES, Penalty::default()).unwrap();
    let params = model.init_params(1);
    let rows = Rows::new(&x, &y, FEATURES);

    let empty = Rows::new(&[], &[], FEATURES);
    assert_eq!(range_test(&model, &params, empty, sgd(1e-3), &config(0)).unwrap_err(), RangeTestError::NoRows);

    let short = range_test(&model, &params[..2], rows, sgd(1e-3), &config(0)).unwrap_err();
    assert_eq!(short, RangeTestError::ParamsLength { expected: params.len(), found: 2 });

    let inverted = RangeTestConfig { start_lr: 1.0, end_lr: 0.1, ..Default::default() };
    match range_test(&model, &params, rows, sgd(1e-3), &inverted).unwrap_err() {
        RangeTestError::Config(e) => assert_eq!(e.option, "end_lr"),
        other => panic!("expected a configuration error, got {other:?}"),
    }

    let nan_params = vec![f32::NAN; params.len()];
    assert!(matches!(
        range_test(&model, &nan_params, rows, sgd(1e-3), &config(0)).unwrap_err(),
        RangeTestError::NoFiniteLoss { .. }
    ));
}
