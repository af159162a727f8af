//! Matrix factorization: gradient, training on low-rank data, fallbacks, reproducibility, serde.

use gradus::mf::{MatrixFactorization, MfConfig, MfError, Ratings};
use gradus::optim::{Optimizer, Sgd, SgdConfig};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};

/// Triples of a synthetic data set, split into training and held-out parts.
struct Synthetic {
    n_users: usize,
    n_items: usize,
    train: (Vec<u32>, Vec<u32>, Vec<f32>),
    test: (Vec<u32>, Vec<u32>, Vec<f32>),
}

impl Synthetic {
    fn train(&self) -> Ratings<'_> {
        Ratings::new(self.n_users, self.n_items, &self.train.0, &self.train.1, &self.train.2).unwrap()
    }

    fn test_rmse(&self, model: &MatrixFactorization) -> f64 {
        model.rmse(&self.test.0, &self.test.1, &self.test.2).unwrap()
    }

    /// RMSE of predicting the training mean for every held-out rating.
    fn baseline_rmse(&self) -> f64 {
        let mean = self.train.2.iter().map(|&r| f64::from(r)).sum::<f64>() / self.train.2.len() as f64;
        let predicted = vec![mean as f32; self.test.2.len()];
        gradus::mf::rmse(&predicted, &self.test.2).unwrap()
    }
}

/// Ratings `3 + a_u + c_i + x_u · y_i + noise` of rank 3 with biases, observed for a random 30% of
/// the pairs; a fifth of those are held out.
fn low_rank(seed: u64) -> Synthetic {
    let (n_users, n_items, rank) = (120, 90, 3);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let unit = Normal::new(0.0f64, 1.0).unwrap();
    let user_bias: Vec<f64> = (0..n_users).map(|_| 0.4 * unit.sample(&mut rng)).collect();
    let item_bias: Vec<f64> = (0..n_items).map(|_| 0.4 * unit.sample(&mut rng)).collect();
    let x: Vec<f64> = (0..n_users * rank).map(|_| 0.7 * unit.sample(&mut rng)).collect();
    let y: Vec<f64> = (0..n_items * rank).map(|_| 0.7 * unit.sample(&mut rng)).collect();
    let mut data = Synthetic {
        n_users,
        n_items,
        train: (Vec::new(), Vec::new(), Vec::new()),
        test: (Vec::new(), Vec::new(), Vec::new()),
    };
    for u in 0..n_users {
        for i in 0..n_items {
            if rng.random::<f64>() >= 0.3 {
                continue;
            }
            let interaction: f64 = (0..rank).map(|f| x[u * rank + f] * y[i * rank + f]).sum();
            let rating = 3.0 + user_bias[u] + item_bias[i] + interaction + 0.1 * unit.sample(&mut rng);
            let part = if rng.random::<f64>() < 0.2 { &mut data.test } else { &mut data.train };
            part.0.push(u as u32);
            part.1.push(i as u32);
            part.2.push(rating as f32);
        }
    }
    data
}

fn small_config() -> MfConfig {
    MfConfig { n_factors: 8, n_epochs: 60, lr_all: 0.02, reg_all: 0.02, seed: 7, ..MfConfig::default() }
}

#[test]
fn minibatch_gradient_matches_finite_differences() {
    let users = [0u32, 1, 1, 3, 0, 2];
    let items = [0u32, 2, 1, 2, 2, 0];
    let ratings = [4.0f32, 2.5, 3.0, 5.0, 1.0, 3.5];
    let train = Ratings::new(5, 4, &users, &items, &ratings).unwrap();
    let config = MfConfig { n_factors: 3, init_std_dev: 0.5, reg_all: 0.3, seed: 3, ..MfConfig::default() };
    let mut model = MatrixFactorization::new(&config, &train).unwrap();
    // Non-zero biases, so that their terms in the loss are exercised too.
    for (k, p) in model.params_mut()[..9].iter_mut().enumerate() {
        *p = 0.25 * k as f32 - 0.8;
    }
    // A batch with a user and an item that repeat, and user 4 / item 3 that it never touches.
    let batch: Vec<(u32, u32, f32)> = (0..users.len()).map(|k| train.get(k).unwrap()).collect();
    let params = model.params().to_vec();
    let mut grad = vec![f32::NAN; params.len()];
    let loss = model.loss_and_gradient(&params, &batch, &mut grad);
    assert!(loss.is_finite() && loss > 0.0);

    let eps = 1e-2f32;
    let mut scratch = vec![0.0f32; params.len()];
    for j in 0..params.len() {
        let (plus, minus) = (params[j] + eps, params[j] - eps);
        let mut shifted = params.clone();
        shifted[j] = plus;
        let up = model.loss_and_gradient(&shifted, &batch, &mut scratch);
        shifted[j] = minus;
        let down = model.loss_and_gradient(&shifted, &batch, &mut scratch);
        let numeric = (up - down) / (f64::from(plus) - f64::from(minus));
        let analytic = f64::from(grad[j]);
        assert!(
            (numeric - analytic).abs() <= 2e-3 + 1e-2 * analytic.abs(),
            "parameter {j}: finite difference {numeric}, gradient {analytic}"
        );
    }
    let layout = model.layout();
    for (name, row) in [("user_bias", 4), ("item_bias", 3)] {
        assert_eq!(grad[layout.segment(name).unwrap().offset + row], 0.0, "{name} {row} is untouched");
    }
    let user_factors = layout.segment("user_factors").unwrap();
    assert!(grad[user_factors.offset + 4 * 3..user_factors.offset + 5 * 3].iter().all(|&g| g == 0.0));
}

#[test]
fn sgd_fit_beats_the_global_mean_on_held_out_low_rank_data() {
    let data = low_rank(1);
    let model = MatrixFactorization::fit(&small_config(), &data.train()).unwrap();
    let (baseline, fitted) = (data.baseline_rmse(), data.test_rmse(&model));
    assert!(baseline > 0.8, "the synthetic ratings should vary: baseline RMSE {baseline}");
    assert!(fitted < 0.5 * baseline, "held-out RMSE {fitted}, baseline {baseline}");
}

#[test]
fn minibatch_fit_beats_the_global_mean_on_held_out_low_rank_data() {
    let data = low_rank(2);
    let train = data.train();
    let config = MfConfig { n_factors: 8, reg_all: 0.02, seed: 11, ..MfConfig::default() };
    let mut model = MatrixFactorization::new(&config, &train).unwrap();
    let mut optimizer: Box<dyn Optimizer> =
        Box::new(Sgd::new(SgdConfig { lr: 0.5, momentum: 0.9, ..SgdConfig::default() }).unwrap());
    let losses = model.fit_minibatch(&train, &mut *optimizer, 32, 60, 5).unwrap();
    assert_eq!(losses.len(), 60);
    assert!(losses[59] < 0.25 * losses[0], "training loss went from {} to {}", losses[0], losses[59]);
    let (baseline, fitted) = (data.baseline_rmse(), data.test_rmse(&model));
    assert!(fitted < 0.5 * baseline, "held-out RMSE {fitted}, baseline {baseline}");
}

#[test]
fn minibatch_sgd_on_single_ratings_is_the_per_rating_update() {
    let data = low_rank(3);
    let train = data.train();
    let config = MfConfig { n_factors: 5, n_epochs: 3, seed: 21, ..MfConfig::default() };
    let per_rating = MatrixFactorization::fit(&config, &train).unwrap();
    let mut minibatch = MatrixFactorization::new(&config, &train).unwrap();
    let mut sgd = Sgd::new(SgdConfig { lr: config.lr_all, ..SgdConfig::default() }).unwrap();
    minibatch.fit_minibatch(&train, &mut sgd, 1, config.n_epochs, config.seed).unwrap();
    let differing = per_rating.params().iter().zip(minibatch.params()).filter(|(a, b)| a.to_bits() != b.to_bits());
    assert_eq!(differing.count(), 0);
    assert_ne!(per_rating.params(), MatrixFactorization::new(&config, &train).unwrap().params());
}

#[test]
fn unknown_users_and_items_fall_back_to_the_known_biases() {
    // User 2 and item 3 are within the counts but have no training rating.
    let users = [0u32, 0, 1, 1, 3];
    let items = [0u32, 1, 1, 2, 0];
    let ratings = [4.0f32, 3.0, 2.0, 5.0, 1.0];
    let train = Ratings::new(4, 4, &users, &items, &ratings).unwrap();
    let config = MfConfig { n_factors: 4, n_epochs: 50, lr_all: 0.05, ..MfConfig::default() };
    let model = MatrixFactorization::fit(&config, &train).unwrap();
    let mu = model.global_mean();
    assert_eq!(mu, 3.0);
    let (b_u1, b_i2) = (model.user_bias(1).unwrap(), model.item_bias(2).unwrap());
    assert!(b_u1 != 0.0 && b_i2 != 0.0, "biases should have been trained");
    for unknown_user in [2u32, 4, 1000] {
        assert!(!model.is_known_user(unknown_user));
        assert_eq!(model.predict(unknown_user, 2), (mu + b_i2).clamp(1.0, 5.0));
    }
    for unknown_item in [3u32, 4, u32::MAX] {
        assert_eq!(model.predict(1, unknown_item), (mu + b_u1).clamp(1.0, 5.0));
    }
    assert_eq!(model.predict(2, 3), mu);
    assert_eq!(model.predict(u32::MAX, u32::MAX), mu);
    // A known pair uses the factors, and every prediction stays in the training range.
    let full = mu + b_u1 + b_i2 + dot(model.user_factors(1).unwrap(), model.item_factors(2).unwrap());
    assert!((model.predict(1, 2) - full.clamp(1.0, 5.0)).abs() < 1e-5);
    for u in 0..6 {
        for i in 0..6 {
            let p = model.predict(u, i);
            assert!((1.0..=5.0).contains(&p), "prediction {p} for ({u}, {i})");
        }
    }
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[test]
fn predictions_are_clamped_to_the_training_range() {
    let users = [0u32, 1, 2];
    let items = [0u32, 1, 2];
    let ratings = [2.0f32, 3.0, 4.0];
    let train = Ratings::new(3, 3, &users, &items, &ratings).unwrap();
    let mut model = MatrixFactorization::new(&MfConfig::default(), &train).unwrap();
    assert_eq!(model.rating_range(), (2.0, 4.0));
    model.params_mut()[0] = 10.0; // b_0
    model.params_mut()[1] = -10.0; // b_1
    assert_eq!(model.predict(0, 0), 4.0);
    assert_eq!(model.predict(1, 1), 2.0);
}

#[test]
fn same_seed_gives_a_bit_identical_model() {
    let data = low_rank(4);
    let train = data.train();
    let config = MfConfig { n_factors: 6, n_epochs: 5, seed: 99, ..MfConfig::default() };
    let bits = |m: &MatrixFactorization| m.params().iter().map(|p| p.to_bits()).collect::<Vec<u32>>();
    let a = MatrixFactorization::fit(&config, &train).unwrap();
    let b = MatrixFactorization::fit(&config, &train).unwrap();
    assert_eq!(bits(&a), bits(&b));
    let c = MatrixFactorization::fit(&MfConfig { seed: 100, ..config.clone() }, &train).unwrap();
    assert_ne!(bits(&a), bits(&c));

    let minibatch = |seed: u64| {
        let mut model = MatrixFactorization::new(&config, &train).unwrap();
        let mut sgd = Sgd::new(SgdConfig { lr: 0.3, momentum: 0.5, ..SgdConfig::default() }).unwrap();
        let losses = model.fit_minibatch(&train, &mut sgd, 16, 3, seed).unwrap();
        (bits(&model), losses)
    };
    assert_eq!(minibatch(5), minibatch(5));
    assert_ne!(minibatch(5).0, minibatch(6).0);
}

#[test]
fn serde_round_trip_predicts_identically() {
    let data = low_rank(5);
    let model = MatrixFactorization::fit(&MfConfig { n_epochs: 3, ..small_config() }, &data.train()).unwrap();
    let json = serde_json::to_string(&model).unwrap();
    let restored: MatrixFactorization = serde_json::from_str(&json).unwrap();
    assert_eq!(restored, model);
    for u in 0..data.n_users as u32 + 2 {
        for i in (0..data.n_items as u32 + 2).step_by(7) {
            assert_eq!(restored.predict(u, i).to_bits(), model.predict(u, i).to_bits());
        }
    }

    // A model whose buffers do not fit its shape is refused, not loaded.
    let mut value: serde_json::Value = serde_json::from_str(&json).unwrap();
    value["params"].as_array_mut().unwrap().pop();
    assert!(serde_json::from_value::<MatrixFactorization>(value).is_err());
}

#[test]
fn bad_data_and_options_are_reported() {
    let (users, items, ratings) = ([0u32, 1], [0u32, 5], [1.0f32, 2.0]);
    assert!(matches!(Ratings::new(2, 6, &users, &items[..1], &ratings), Err(MfError::LengthMismatch { .. })));
    assert!(matches!(
        Ratings::new(2, 5, &users, &items, &ratings),
        Err(MfError::ItemOutOfRange { index: 1, id: 5, n_items: 5 })
    ));
    assert!(matches!(Ratings::new(1, 6, &users, &items, &ratings), Err(MfError::UserOutOfRange { index: 1, .. })));
    assert!(matches!(
        Ratings::new(2, 6, &users, &items, &[1.0, f32::NAN]),
        Err(MfError::NonFiniteRating { index: 1, .. })
    ));
    let empty = Ratings::new(2, 2, &[], &[], &[]).unwrap();
    assert!(matches!(MatrixFactorization::new(&MfConfig::default(), &empty), Err(MfError::Empty)));

    let train = Ratings::new(2, 6, &users, &items, &ratings).unwrap();
    let bad = MfConfig { reg_all: -0.1, ..MfConfig::default() };
    match MatrixFactorization::fit(&bad, &train) {
        Err(MfError::Config(e)) => assert_eq!(e.option, "reg_all"),
        other => panic!("expected a config error, got {other:?}"),
    }
    let mut model = MatrixFactorization::new(&MfConfig::default(), &train).unwrap();
    let mut sgd = Sgd::new(SgdConfig::default()).unwrap();
    match model.fit_minibatch(&train, &mut sgd, 0, 1, 0) {
        Err(MfError::Config(e)) => assert_eq!(e.option, "batch_size"),
        other => panic!("expected a config error, got {other:?}"),
    }
    let other_shape = Ratings::new(3, 6, &users, &items, &ratings).unwrap();
    assert!(matches!(model.fit_sgd(&other_shape, 1, 0), Err(MfError::ShapeMismatch { .. })));
}

/// The sequential trainer too (its factors are drawn, and its next epoch shuffled, on other
/// threads when there are some) gives the same model on any number of threads.
#[test]
fn sequential_sgd_is_independent_of_the_thread_count() {
    let data = low_rank(7);
    let train = data.train();
    // 210 rows of 100 factors: the factors are drawn in several blocks.
    let config = MfConfig { n_factors: 100, n_epochs: 5, ..small_config() };
    let on_threads = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        pool.install(|| MatrixFactorization::fit(&config, &train).unwrap())
    };
    let bits = |m: &MatrixFactorization| m.params().iter().map(|p| p.to_bits()).collect::<Vec<u32>>();
    let one = bits(&on_threads(1));
    assert_eq!(one, bits(&on_threads(2)));
    assert_eq!(one, bits(&on_threads(3)));
}

/// Stratified parallel SGD: the model is the same bit for bit on pools of 1, 2 and 3 threads (and
/// on the global pool), differs from the sequential trainer's, and learns as well.
#[test]
fn stratified_sgd_is_independent_of_the_thread_count() {
    let data = low_rank(6);
    let train = data.train();
    let config = MfConfig { parallel: true, ..small_config() };
    let bits = |m: &MatrixFactorization| m.params().iter().map(|p| p.to_bits()).collect::<Vec<u32>>();
    let on_threads = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        pool.install(|| MatrixFactorization::fit(&config, &train).unwrap())
    };
    let one = on_threads(1);
    for threads in [2, 3] {
        let other = on_threads(threads);
        let differing = bits(&one).iter().zip(&bits(&other)).filter(|(a, b)| a != b).count();
        assert_eq!(differing, 0, "{threads} threads");
    }
    assert_eq!(bits(&one), bits(&MatrixFactorization::fit(&config, &train).unwrap()));

    let mut direct = MatrixFactorization::new(&config, &train).unwrap();
    direct.fit_dsgd(&train, config.n_epochs, config.seed).unwrap();
    assert_eq!(bits(&one), bits(&direct));
    let sequential = MatrixFactorization::fit(&MfConfig { parallel: false, ..config.clone() }, &train).unwrap();
    assert_ne!(bits(&one), bits(&sequential));
    let reseeded = MatrixFactorization::fit(&MfConfig { seed: 8, ..config.clone() }, &train).unwrap();
    assert_ne!(bits(&one), bits(&reseeded));

    let (stratified, plain, baseline) = (data.test_rmse(&one), data.test_rmse(&sequential), data.baseline_rmse());
    assert!(stratified < 0.5 * baseline, "stratified {stratified}, global mean {baseline}");
    assert!(stratified < 1.1 * plain, "stratified {stratified}, sequential {plain}");
}

/// Fewer users or items than strata leaves some ranges empty; training must still work.
#[test]
fn stratified_sgd_handles_fewer_users_than_strata() {
    let users = [0u32, 1, 2, 0, 1];
    let items = [0u32, 1, 0, 1, 0];
    let ratings = [4.0f32, 2.0, 3.5, 1.0, 5.0];
    let train = Ratings::new(3, 2, &users, &items, &ratings).unwrap();
    let config = MfConfig { n_factors: 3, n_epochs: 50, lr_all: 0.05, parallel: true, ..MfConfig::default() };
    let model = MatrixFactorization::fit(&config, &train).unwrap();
    assert!(model.params().iter().all(|p| p.is_finite()));
    let error = model.rmse(&users, &items, &ratings).unwrap();
    let mean = ratings.iter().sum::<f32>() / ratings.len() as f32;
    let baseline = gradus::mf::rmse(&vec![mean; ratings.len()], &ratings).unwrap();
    assert!(error < 0.5 * baseline, "training RMSE {error}, global mean {baseline}");
}

/// `evaluate` gives `loss_and_gradient`'s loss and the RMSE and MAE of `predict` (unknown users and
/// items included, which fall back to the biases), the same bits on any number of threads.
#[test]
fn evaluate_matches_the_loss_and_the_predictions() {
    let data = low_rank(9);
    // User 0 and item 0 keep no training rating: the model does not know them.
    let kept: Vec<usize> = (0..data.train.0.len()).filter(|&k| data.train.0[k] != 0 && data.train.1[k] != 0).collect();
    let pick = |column: &[u32]| kept.iter().map(|&k| column[k]).collect::<Vec<u32>>();
    let (users, items) = (pick(&data.train.0), pick(&data.train.1));
    let ratings: Vec<f32> = kept.iter().map(|&k| data.train.2[k]).collect();
    let train = Ratings::new(data.n_users, data.n_items, &users, &items, &ratings).unwrap();
    let model = MatrixFactorization::fit(&MfConfig { n_factors: 6, n_epochs: 5, ..small_config() }, &train).unwrap();
    assert!(!model.is_known_user(0) && !model.is_known_item(0));
    let mut triples: Vec<(u32, u32, f32)> =
        (0..data.test.0.len()).map(|k| (data.test.0[k], data.test.1[k], data.test.2[k])).collect();
    // Many copies, so that the pass is cut into several chunks.
    triples = triples.repeat(40);
    triples.extend([(0, 3, 3.0), (5, 0, 4.5), (0, 0, 1.0)]);

    let evaluated = model.evaluate(&triples);
    let mut grad = vec![0.0; model.params().len()];
    let loss = model.loss_and_gradient(model.params(), &triples, &mut grad);
    assert!((evaluated.loss - loss).abs() <= 1e-12 * loss, "{} vs {loss}", evaluated.loss);
    let (users, items, ratings): (Vec<u32>, Vec<u32>, Vec<f32>) = (
        triples.iter().map(|t| t.0).collect(),
        triples.iter().map(|t| t.1).collect(),
        triples.iter().map(|t| t.2).collect(),
    );
    let (rmse, mae) = (model.rmse(&users, &items, &ratings).unwrap(), model.mae(&users, &items, &ratings).unwrap());
    assert!((evaluated.rmse - rmse).abs() <= 1e-12 * rmse, "{} vs {rmse}", evaluated.rmse);
    assert!((evaluated.mae - mae).abs() <= 1e-12 * mae, "{} vs {mae}", evaluated.mae);

    let on_threads = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        let m = pool.install(|| model.evaluate(&triples));
        [m.loss.to_bits(), m.rmse.to_bits(), m.mae.to_bits()]
    };
    assert_eq!(on_threads(1), on_threads(3));
    let empty = model.evaluate(&[]);
    assert!(empty.loss.is_nan() && empty.rmse.is_nan() && empty.mae.is_nan());
}

/// Matrix factorization through the training engine: each per-rating epoch is exactly
/// `fit_sgd` (or `fit_dsgd`) for one epoch shuffled from the seed plus the epoch's number, the
/// reported loss is that pass's half mean squared error, and a second run on other ratings of the
/// same shape (the model's cache of the first run's ratings must not be reused) is as a fresh one.
#[test]
fn engine_epochs_are_the_library_passes() {
    use gradus::mf::{MfModel, MfPass};
    use gradus::model::{Model, Rows};
    use gradus::train::{BatchMode, TrainConfig, Trainer};

    let data = low_rank(11);
    let train = data.train();
    let config = MfConfig { n_factors: 20, n_epochs: 4, ..small_config() };
    let pairs = |users: &[u32], items: &[u32]| -> (Vec<u32>, Vec<usize>) {
        (users.iter().zip(items).flat_map(|(&u, &i)| [u, i]).collect(), (0..=users.len()).map(|k| 2 * k).collect())
    };
    let bits = |p: &[f32]| p.iter().map(|v| v.to_bits()).collect::<Vec<u32>>();
    for (pass, parallel) in [(MfPass::Sequential, false), (MfPass::Stratified, true)] {
        let config = MfConfig { parallel, ..config.clone() };
        let template = MatrixFactorization::new(&config, &train).unwrap();
        let model = MfModel::new(template.clone(), pass);
        let run = |model: &MfModel, ratings: &(Vec<u32>, Vec<u32>, Vec<f32>)| {
            let (ids, offsets) = pairs(&ratings.0, &ratings.1);
            let rows = Rows::with_ids(&ids, &offsets, &ratings.2);
            let mut params = model.init_params(config.seed);
            let sgd = Box::new(Sgd::new(SgdConfig { lr: config.lr_all, ..SgdConfig::default() }).unwrap());
            let train_config = TrainConfig {
                epochs: config.n_epochs,
                batch: BatchMode::Stochastic,
                seed: config.seed,
                evaluate_train: false,
                ..TrainConfig::default()
            };
            let report = Trainer::new(train_config, sgd).unwrap().fit(model, &mut params, rows, None, &mut []).unwrap();
            (params, report.history.iter().map(|r| r.train["loss"]).collect::<Vec<f64>>())
        };
        let (params, losses) = run(&model, &data.train);

        let mut direct = template.clone();
        assert_eq!(bits(direct.params()), bits(&model.init_params(config.seed)), "{pass:?}: initial factors");
        let mut expected = Vec::new();
        for epoch in 1..=config.n_epochs {
            let seed = config.seed.wrapping_add(epoch as u64);
            let loss = if parallel { direct.dsgd_epoch(&train, seed) } else { direct.sgd_epoch(&train, seed) };
            expected.push(loss.unwrap());
        }
        assert_eq!(bits(&params), bits(direct.params()), "{pass:?}: parameters");
        assert_eq!(losses, expected, "{pass:?}: losses");
        assert!(losses[3] < losses[0], "{pass:?}: {losses:?}");

        // Other ratings of the same shape through the same model: trained from scratch.
        let (u, i, r) = &data.train;
        let shifted = (u.clone(), i.clone(), r.iter().map(|v| v + 0.5).collect::<Vec<f32>>());
        let (again, _) = run(&model, &shifted);
        let fresh = MfModel::new(template.clone(), pass);
        assert_eq!(bits(&again), bits(&run(&fresh, &shifted).0), "{pass:?}: a second run");
        assert_ne!(bits(&again), bits(&params));
        assert_eq!(bits(&run(&model, &data.train).0), bits(&params), "{pass:?}: the first data again");
    }
}

/// A per-rating pass that diverges through the engine stops with the parameters of the last good
/// epoch, bit for bit, and every one of them finite.
#[test]
fn a_diverging_engine_pass_keeps_the_last_good_epoch() {
    use gradus::mf::{MfModel, MfPass};
    use gradus::model::{Model, Rows};
    use gradus::train::{BatchMode, TrainConfig, TrainError, Trainer};

    let data = low_rank(12);
    let train = data.train();
    let (users, items, ratings) = &data.train;
    let ids: Vec<u32> = users.iter().zip(items).flat_map(|(&u, &i)| [u, i]).collect();
    let offsets: Vec<usize> = (0..=users.len()).map(|k| 2 * k).collect();
    for (pass, parallel) in [(MfPass::Sequential, false), (MfPass::Stratified, true)] {
        // A rate just past the stable ones: the first epochs train, a later one blows up.
        let config = MfConfig { n_factors: 20, lr_all: 0.28, parallel, ..small_config() };
        let model = MfModel::new(MatrixFactorization::new(&config, &train).unwrap(), pass);
        let run = |epochs: usize| {
            let mut params = model.init_params(config.seed);
            let sgd = Box::new(Sgd::new(SgdConfig { lr: config.lr_all, ..SgdConfig::default() }).unwrap());
            let train_config =
                TrainConfig { epochs, batch: BatchMode::Stochastic, seed: config.seed, ..TrainConfig::default() };
            let rows = Rows::with_ids(&ids, &offsets, ratings);
            let result = Trainer::new(train_config, sgd).unwrap().fit(&model, &mut params, rows, None, &mut []);
            (params, result)
        };
        let (params, result) = run(50);
        let diverged_at = match result {
            Err(TrainError::Diverged { epoch, .. }) => epoch,
            other => panic!("{pass:?}: expected divergence, got {:?}", other.map(|r| r.termination)),
        };
        assert!(diverged_at > 1, "{pass:?}: diverged at once");
        assert!(params.iter().all(|p| p.is_finite()), "{pass:?}");
        let (good, result) = run(diverged_at - 1);
        assert!(result.is_ok(), "{pass:?}");
        let bits = |p: &[f32]| p.iter().map(|v| v.to_bits()).collect::<Vec<u32>>();
        assert_eq!(bits(&params), bits(&good), "{pass:?}: diverged at epoch {diverged_at}");
    }
}
