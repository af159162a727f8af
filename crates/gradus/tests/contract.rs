//! The library's contract: anything that comes from data is a `Result`, never a panic and never
//! a silently wrong number. One test per item of the contract.

use std::path::Path;

use gradus::data::{DataError, LabelMap, Standardizer, StreamFormat, StreamingReader};
use gradus::linear::{LinearKind, LinearModel, Penalty};
use gradus::loss::Loss;
use gradus::lr_find::{range_test, RangeTestConfig, RangeTestError};
use gradus::mf::{MatrixFactorization, MfConfig};
use gradus::mlp::{Activation, Mlp};
use gradus::model::{check_rows, evaluate, Model, Rows, RowsError};
use gradus::optim::{from_options, Optimizer, Sgd, SgdConfig};
use gradus::saved::{ModelSpec, SavedModel, SavedModelError};
use gradus::surfaces::by_name;
use gradus::train::metrics::{accuracy, argmax_rows, regression_metrics, MetricsError};
use gradus::train::stream::fit_stream;
use gradus::train::{Checkpoint, CheckpointConfig, Task, TrainConfig, TrainError, Trainer};
use serde_json::json;

fn sgd() -> Box<dyn Optimizer> {
    Box::new(Sgd::new(SgdConfig { lr: 0.05, ..SgdConfig::default() }).unwrap())
}

fn trainer(epochs: usize) -> Trainer {
    Trainer::new(TrainConfig { epochs, ..TrainConfig::default() }, sgd()).unwrap()
}

fn softmax(inputs: usize, classes: usize) -> LinearModel {
    LinearModel::new(LinearKind::Softmax, inputs, classes, Penalty::default()).unwrap()
}

/// Two features, three classes, six rows.
fn classes() -> (Vec<f32>, Vec<f32>) {
    let x = vec![0.0, 1.0, 1.0, 0.0, 0.5, 0.5, -1.0, 0.2, 0.3, -0.4, 2.0, 1.0];
    let y = vec![0.0, 1.0, 2.0, 0.0, 1.0, 2.0];
    (x, y)
}

fn data_error(result: Result<gradus::train::TrainReport, TrainError>) -> String {
    match result {
        Err(TrainError::Data(message)) => message,
        other => panic!("expected TrainError::Data, got {other:?}"),
    }
}

#[test]
fn fit_with_parameters_of_the_wrong_length_is_an_error() {
    let model = softmax(2, 3);
    let (x, y) = classes();
    let mut params = vec![0.0; model.layout().len() + 1];
    let message = data_error(trainer(1).fit(&model, &mut params, Rows::new(&x, &y, 2), None, &mut []));
    assert!(message.contains("holds 10 values, the model has 9 parameters"), "{message}");
}

#[test]
fn fit_with_rows_whose_features_are_not_rows_times_cols_is_an_error() {
    let model = softmax(2, 3);
    let (x, y) = classes();
    let mut params = model.init_params(0);
    // `Rows` has public fields: a view built by hand may lie about its shape.
    let bad = Rows { x: &x[..11], y: &y, rows: 6, cols: 2, ids: None };
    let message = data_error(trainer(1).fit(&model, &mut params, bad, None, &mut []));
    assert!(
        message.contains("the training rows: 11 feature values and 6 targets do not make 6 rows of 2"),
        "{message}"
    );
    let short_targets = Rows { x: &x, y: &y[..5], rows: 6, cols: 2, ids: None };
    assert!(trainer(1).fit(&model, &mut params, short_targets, None, &mut []).is_err());
    let overflow = Rows { x: &x, y: &y, rows: usize::MAX, cols: 2, ids: None };
    assert!(trainer(1).fit(&model, &mut params, overflow, None, &mut []).is_err());
    assert!(Rows::try_new(&x[..11], &y, 2, "rows").is_err());
}

#[test]
fn fit_with_rows_of_another_width_than_the_model_is_an_error() {
    let model = softmax(3, 3);
    let (x, y) = classes();
    let mut params = model.init_params(0);
    let message = data_error(trainer(1).fit(&model, &mut params, Rows::new(&x, &y, 2), None, &mut []));
    assert_eq!(message, "the training rows: 2 columns, the model takes 3 inputs");
}

#[test]
fn fit_with_validation_rows_of_another_width_is_an_error() {
    let model = softmax(2, 3);
    let (x, y) = classes();
    let mut params = model.init_params(0);
    let validation_x = [0.0f32; 9];
    let validation = Rows::new(&validation_x, &y[..3], 3);
    let message = data_error(trainer(1).fit(&model, &mut params, Rows::new(&x, &y, 2), Some(validation), &mut []));
    assert_eq!(message, "the validation rows: 3 columns, the model takes 2 inputs");
}

#[test]
fn a_class_index_outside_the_models_classes_is_a_data_error_not_divergence() {
    let model = softmax(2, 3);
    let (x, mut y) = classes();
    y[4] = 3.0;
    let mut params = model.init_params(0);
    let message = data_error(trainer(1).fit(&model, &mut params, Rows::new(&x, &y, 2), None, &mut []));
    assert_eq!(message, "the training rows: target 3 of row 4 is not a class index in 0..3");
    y[4] = f32::NAN;
    let message = data_error(trainer(1).fit(&model, &mut params, Rows::new(&x, &y, 2), None, &mut []));
    assert!(message.contains("target NaN of row 4"), "{message}");
    // The same through an MLP, a streaming run and the range test.
    let mlp =
        Mlp::new(&[2, 4, 3], &[Activation::Relu, Activation::Identity], Loss::cross_entropy(0.0).unwrap()).unwrap();
    let mut mlp_params = mlp.init_params(0);
    y[4] = -1.0;
    let message = data_error(trainer(1).fit(&mlp, &mut mlp_params, Rows::new(&x, &y, 2), None, &mut []));
    assert!(message.contains("target -1 of row 4"), "{message}");
    let test = range_test(&mlp, &mlp_params, Rows::new(&x, &y, 2), sgd(), &RangeTestConfig::default());
    assert!(matches!(test, Err(RangeTestError::Rows(RowsError::Targets { .. }))), "{test:?}");
}

#[test]
fn regression_targets_that_are_not_finite_and_binary_targets_out_of_range_are_errors() {
    let linear = LinearModel::new(LinearKind::Linear, 1, 1, Penalty::default()).unwrap();
    let x = [0.0f32, 1.0, 2.0];
    let mut params = linear.init_params(0);
    let y = [1.0, f32::INFINITY, 2.0];
    let message = data_error(trainer(1).fit(&linear, &mut params, Rows::new(&x, &y, 1), None, &mut []));
    assert!(message.contains("target inf of row 1 is not a finite number"), "{message}");
    let logistic = LinearModel::new(LinearKind::Logistic, 1, 2, Penalty::default()).unwrap();
    let y = [0.0, 1.0, 2.0];
    let mut params = logistic.init_params(0);
    let message = data_error(trainer(1).fit(&logistic, &mut params, Rows::new(&x, &y, 1), None, &mut []));
    assert!(message.contains("target 2 of row 2 is outside what `bce_with_logits` takes"), "{message}");
    let hinge = Mlp::new(&[1, 1], &[Activation::Identity], Loss::Hinge).unwrap();
    let y = [1.0, 0.0, -1.0];
    assert!(matches!(
        check_rows(&hinge, &hinge.init_params(0), Rows::new(&x, &y, 1), "rows"),
        Err(RowsError::Targets { .. })
    ));
}

#[test]
fn a_multi_output_regression_network_is_an_error_for_one_target_per_row() {
    let net = Mlp::new(&[2, 3], &[Activation::Identity], Loss::Mse).unwrap();
    let (x, y) = classes();
    let mut params = net.init_params(0);
    let message = data_error(trainer(1).fit(&net, &mut params, Rows::new(&x, &y, 2), None, &mut []));
    assert!(message.contains("expected 18 targets for 6 rows of 3 outputs, got 6"), "{message}");
}

#[test]
fn evaluate_checks_what_it_is_given() {
    let model = softmax(2, 3);
    let (x, y) = classes();
    let params = model.init_params(0);
    assert!(evaluate(&model, &params, Rows::new(&x, &y, 2)).is_ok());
    assert!(matches!(evaluate(&model, &params[1..], Rows::new(&x, &y, 2)), Err(RowsError::Params { .. })));
    let mut bad = y.clone();
    bad[0] = 5.0;
    assert!(matches!(evaluate(&model, &params, Rows::new(&x, &bad, 2)), Err(RowsError::Targets { .. })));
    assert!(evaluate(&model, &params, Rows::new(&[], &[], 2)).unwrap().is_empty());
}

fn checkpoint_after_one_epoch(dir: &Path) -> (Mlp, Vec<f32>, Vec<f32>, Checkpoint) {
    let model = Mlp::new(&[2, 3, 1], &[Activation::Tanh, Activation::Identity], Loss::Mse).unwrap();
    let x: Vec<f32> = (0..16).map(|i| (i as f32 * 0.37).sin()).collect();
    let y: Vec<f32> = (0..8).map(|i| i as f32 * 0.1).collect();
    let path = dir.join("run.ckpt");
    let config = TrainConfig {
        epochs: 1,
        checkpoint: Some(CheckpointConfig { every: 1, path: path.clone() }),
        ..TrainConfig::default()
    };
    let momentum = Sgd::new(SgdConfig { lr: 0.01, momentum: 0.9, ..SgdConfig::default() }).unwrap();
    let mut params = model.init_params(0);
    Trainer::new(config, Box::new(momentum))
        .unwrap()
        .fit(&model, &mut params, Rows::new(&x, &y, 2), None, &mut [])
        .unwrap();
    let checkpoint = Checkpoint::load(&path).unwrap();
    (model, x, y, checkpoint)
}

#[test]
fn checkpoints_that_do_not_fit_are_errors_before_anything_is_changed() {
    let dir = std::env::temp_dir().join(format!("gradus-contract-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (model, x, y, good) = checkpoint_after_one_epoch(&dir);
    assert_eq!(good.validate(&model), Ok(()));
    let n = good.params.len();
    let mut cases: Vec<(Checkpoint, &str)> = Vec::new();
    let mut c = good.clone();
    c.params.push(0.0);
    cases.push((c, "parameters, the model has"));
    let mut c = good.clone();
    c.params[2] = f32::NAN;
    cases.push((c, "the parameters: value 2 is NaN"));
    let mut c = good.clone();
    c.optimizer.buffers.insert("momentum_buffer".into(), vec![0.0; n + 3]);
    cases.push((c, "optimizer buffer `momentum_buffer` holds"));
    let mut c = good.clone();
    c.optimizer.lr = f64::INFINITY;
    cases.push((c, "learning rate is inf"));
    let mut c = good.clone();
    c.best = Some((1, 0.5, vec![0.0; n - 1]));
    cases.push((c, "the best parameters hold"));
    let mut c = good.clone();
    c.epoch = usize::MAX;
    cases.push((c, "epochs done"));
    let mut c = good.clone();
    c.initial_loss = f64::NAN;
    cases.push((c, "starting loss is NaN"));
    let mut c = good.clone();
    c.buffers = vec![1.0];
    cases.push((c, "running statistics"));
    for (checkpoint, expected) in cases {
        let message = checkpoint.validate(&model).unwrap_err();
        assert!(message.contains(expected), "{expected}: {message}");
        let mut params = vec![7.0f32; n];
        let resumed = Trainer::new(TrainConfig { epochs: 3, ..TrainConfig::default() }, sgd()).unwrap().fit_from(
            &model,
            &mut params,
            Rows::new(&x, &y, 2),
            None,
            &mut [],
            Some(checkpoint),
        );
        match resumed {
            Err(TrainError::Checkpoint { message, .. }) => assert!(message.contains(expected), "{message}"),
            other => panic!("{expected}: {other:?}"),
        }
        assert!(params.iter().all(|&p| p == 7.0), "the parameters are untouched");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn streaming_training_checks_parameters_and_targets() {
    let dir = std::env::temp_dir().join(format!("gradus-contract-stream-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("rows.csv");
    std::fs::write(&path, "a,b,y\n0,1,0\n1,0,1\n0.5,0.5,4\n").unwrap();
    let model = softmax(2, 3);
    let open = || StreamingReader::open(&path, StreamFormat::Csv(Default::default()), 2).unwrap();
    let mut short = vec![0.0f32; 3];
    let result = fit_stream(&mut trainer(1), &model, &mut short, &mut open(), None, &mut []);
    assert!(matches!(result, Err(TrainError::Data(ref m)) if m.contains("holds 3 values")), "{result:?}");
    let mut params = model.init_params(0);
    let result = fit_stream(&mut trainer(1), &model, &mut params, &mut open(), None, &mut []);
    match result {
        Err(TrainError::Data(message)) => {
            assert!(message.contains("target 4 of row 0 is not a class index in 0..3"), "{message}")
        }
        other => panic!("{other:?}"),
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn argmax_of_zero_columns_or_partial_rows_is_an_error() {
    assert_eq!(argmax_rows(&[1.0, 2.0], 0), Err(MetricsError::NoColumns));
    assert_eq!(argmax_rows(&[], 0), Err(MetricsError::NoColumns));
    assert_eq!(argmax_rows(&[1.0, 2.0, 3.0], 2), Err(MetricsError::PartialRow { values: 3, cols: 2 }));
    assert_eq!(argmax_rows(&[1.0, 2.0, 3.0, 0.0], 2), Ok(vec![1, 0]));
    assert_eq!(argmax_rows(&[-1.0, 2.0], 1), Ok(vec![0, 1]));
}

#[test]
fn metrics_of_mismatched_or_meaningless_targets_are_errors() {
    assert_eq!(regression_metrics(&[1.0, 2.0], &[1.0]), Err(MetricsError::Length { predicted: 2, targets: 1 }));
    assert_eq!(regression_metrics(&[], &[]), Err(MetricsError::Empty));
    assert!(matches!(regression_metrics(&[1.0], &[f32::NAN]), Err(MetricsError::NonFiniteTarget { row: 0, .. })));
    let m = regression_metrics(&[1.0, 3.0], &[1.0, 2.0]).unwrap();
    assert!((m["mae"] - 0.5).abs() < 1e-12);

    assert_eq!(accuracy(&[0, 1], &[0.0]), Err(MetricsError::Length { predicted: 2, targets: 1 }));
    assert_eq!(accuracy(&[], &[]), Err(MetricsError::Empty));
    assert!(matches!(accuracy(&[0], &[f32::NAN]), Err(MetricsError::NonFiniteTarget { .. })));
    assert_eq!(accuracy(&[0, 0], &[0.0, -1.0]), Err(MetricsError::NotAClass { row: 1, value: -1.0 }));
    assert_eq!(accuracy(&[0], &[0.5]), Err(MetricsError::NotAClass { row: 0, value: 0.5 }));
    assert_eq!(accuracy(&[0, 1, 2], &[0.0, 1.0, 1.0]), Ok(2.0 / 3.0));

    // The ratings metrics of matrix factorization alike.
    assert_eq!(gradus::mf::rmse(&[1.0, 2.0], &[1.0]), Err(MetricsError::Length { predicted: 2, targets: 1 }));
    assert_eq!(gradus::mf::mae(&[], &[]), Err(MetricsError::Empty));
    assert!(matches!(gradus::mf::rmse(&[1.0], &[f32::NAN]), Err(MetricsError::NonFiniteTarget { .. })));
    assert_eq!(gradus::mf::mae(&[1.0, 4.0], &[2.0, 2.0]), Ok(1.5));
    let model = saved_ratings_model();
    let ModelSpec::MatrixFactorization { mf, .. } = &model.model else { unreachable!() };
    assert!(mf.rmse(&[0, 1], &[0], &[4.0, 3.0]).is_err(), "users and items differ in number");
    assert!(mf.mae(&[0, 1], &[0, 1], &[4.0, 3.0]).is_ok());
}

#[test]
fn a_standardizer_whose_means_and_deviations_differ_is_an_error() {
    let mut rows = vec![1.0f32, 2.0, 3.0, 4.0];
    let uneven = Standardizer { means: vec![0.0, 0.0], stds: vec![1.0] };
    assert!(matches!(uneven.transform_rows(&mut rows), Err(DataError::InvalidStandardizer { .. })));
    let zero = Standardizer { means: vec![0.0, 0.0], stds: vec![1.0, 0.0] };
    let err = zero.transform_rows(&mut rows).unwrap_err();
    assert!(err.to_string().contains("standard deviation of column 2 is 0"), "{err}");
    assert_eq!(rows, [1.0, 2.0, 3.0, 4.0], "nothing was changed");
}

#[test]
fn label_maps_never_keep_nan_or_duplicates() {
    let err = LabelMap::fit(&[1.0, f32::NAN, 2.0], "t.csv").unwrap_err();
    assert_eq!(err.to_string(), "`t.csv`, row 2: target NaN is not a finite number");
    assert!(LabelMap::fit(&[1.0, f32::INFINITY], "t.csv").is_err());
    let duplicate = LabelMap { classes: vec![0.0, -0.0, 1.0] };
    assert!(duplicate.validate().unwrap_err().to_string().contains("appears twice"));
    let unsorted = LabelMap { classes: vec![2.0, 1.0] };
    assert!(unsorted.encode_all(&[1.0], "t").is_err(), "an unsorted map would encode wrongly");
    assert_eq!(LabelMap::fit(&[2.0, 1.0, 2.0], "t").unwrap().encode_all(&[2.0, 1.0], "t").unwrap(), [1, 0]);
}

#[test]
fn surfaces_check_points_from_users() {
    let beale = by_name("beale", 2).unwrap();
    let err = beale.try_value(&[1.0]).unwrap_err();
    assert_eq!(err.to_string(), "`beale` takes 2 coordinates, found a point of 1");
    let mut grad = [0.0; 3];
    assert!(beale.try_gradient(&[1.0, 2.0], &mut grad).is_err());
    assert!(beale.try_value_and_gradient(&[1.0, 2.0, 3.0], &mut grad).is_err());
    let sphere = by_name("sphere", 3).unwrap();
    assert!(sphere.try_value(&[1.0, 1.0]).is_err(), "a sphere would silently sum the shorter point");
    assert_eq!(sphere.try_value(&[1.0, 1.0, 1.0]), Ok(3.0));
    let mut grad = [0.0; 3];
    assert_eq!(sphere.try_value_and_gradient(&[1.0, 2.0, 3.0], &mut grad), Ok(14.0));
    assert_eq!(grad, [2.0, 4.0, 6.0]);
}

fn saved_classifier() -> SavedModel {
    let spec = ModelSpec::Mlp {
        sizes: vec![2, 3, 3],
        activations: vec![Activation::Relu, Activation::Identity],
        loss: Loss::CrossEntropy { label_smoothing: 0.0 },
    };
    SavedModel {
        task: Task::Multiclass,
        params: spec.build().unwrap().init_params(3),
        model: spec,
        standardizer: Some(Standardizer { means: vec![0.0, 1.0], stds: vec![1.0, 2.0] }),
        target_scale: None,
        label_map: Some(LabelMap { classes: vec![1.0, 2.0, 5.0] }),
        feature_names: vec!["a".into(), "b".into()],
        target_name: "y".into(),
        buffers: Vec::new(),
        class_names: None,
        text: None,
    }
}

fn load_error(model: &SavedModel) -> String {
    SavedModel::from_json_bytes(model.to_json().as_bytes(), Path::new("m.json")).unwrap_err().to_string()
}

#[test]
fn saved_models_are_checked_as_a_whole() {
    let good = saved_classifier();
    assert!(SavedModel::from_json_bytes(good.to_json().as_bytes(), Path::new("m.json")).is_ok());
    // NaN and infinities are not JSON: a file holds them as numbers beyond `f32`.
    let mut m = good.clone();
    m.params[0] = 12345.0;
    let text = m.to_json().replace("12345.0", "1e39");
    let err = SavedModel::from_json_bytes(text.as_bytes(), Path::new("m.json")).unwrap_err();
    assert!(err.to_string().contains("parameter 0 is not a finite number"), "{err}");
    let mut m = good.clone();
    m.params.pop();
    assert!(load_error(&m).contains("`params` holds"));
    let mut m = good.clone();
    m.label_map = Some(LabelMap { classes: vec![1.0, 1.0, 5.0] });
    assert!(load_error(&m).contains("class 1 appears twice"), "{}", load_error(&m));
    let mut m = good.clone();
    m.label_map = Some(LabelMap { classes: vec![1.0, 5.0, 2.0] });
    assert!(load_error(&m).contains("ascending"));
    let mut m = good.clone();
    m.standardizer = Some(Standardizer { means: vec![0.0, 1.0], stds: vec![1.0] });
    assert!(load_error(&m).contains("2 means and 1 stds"));
    let mut m = good.clone();
    m.standardizer = Some(Standardizer { means: vec![0.0, 1.0], stds: vec![1.0, -2.0] });
    assert!(load_error(&m).contains("standard deviation of column 2 is -2"));
    let text = good.to_json().replace("\"classes\":[1.0,2.0,5.0]", "\"classes\":[1.0,2.0,1e39]");
    let err = SavedModel::from_json_bytes(text.as_bytes(), Path::new("m.json")).unwrap_err();
    assert!(err.to_string().contains("class 2 is inf"), "{err}");
    // A model put together in memory is checked before it runs.
    let mut m = good.clone();
    m.params.truncate(3);
    assert!(matches!(m.outputs(&[0.0, 0.0], 1), Err(SavedModelError::Inconsistent(_))));
    assert!(matches!(m.evaluate(&[0.0, 0.0], &[1.0], "d.csv"), Err(SavedModelError::Inconsistent(_))));
}

fn saved_ratings_model() -> SavedModel {
    let (users, items, ratings) = ([0u32, 0, 1, 1], [0u32, 1, 0, 1], [4.0f32, 3.0, 5.0, 1.0]);
    let train = gradus::mf::Ratings::new(2, 2, &users, &items, &ratings).unwrap();
    let mf = MatrixFactorization::fit(&MfConfig { n_factors: 2, n_epochs: 2, ..MfConfig::default() }, &train).unwrap();
    SavedModel {
        task: Task::Ratings,
        model: ModelSpec::MatrixFactorization {
            mf: Box::new(mf),
            user_ids: vec!["1".into(), "2".into()],
            item_ids: vec!["10".into(), "20".into()],
        },
        params: Vec::new(),
        standardizer: None,
        target_scale: None,
        label_map: None,
        feature_names: vec!["user".into(), "item".into()],
        target_name: "rating".into(),
        buffers: Vec::new(),
        class_names: None,
        text: None,
    }
}

#[test]
fn a_model_given_data_of_the_other_kind_is_an_error() {
    let ids = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let mf = saved_ratings_model();
    // Features for a matrix-factorization model.
    let err = mf.evaluate(&[5.1, 3.5], &[1.0], "iris.csv").unwrap_err();
    assert!(matches!(err, SavedModelError::WrongData { .. }));
    assert!(err.to_string().contains("expected a ratings file"), "{err}");
    assert!(mf.outputs(&[5.1, 3.5], 1).is_err());
    // Feature rows read as ratings: ids the model does not know, ratings far off its scale.
    let err = mf.check_ratings_data(&ids(&["5.1", "4.9"]), &ids(&["3.5", "3.0"]), Some(&[1.4, 1.4]), "`iris.csv`");
    assert!(err.unwrap_err().to_string().contains("none of its users (`5.1`, `4.9`, ...)"));
    let err = mf.check_ratings_data(&ids(&["1", "4.9", "5.1"]), &ids(&["3.5", "10", "3"]), None, "`iris.csv`");
    assert!(err.unwrap_err().to_string().contains("its user ids are numbers with fractions"));
    let err = mf.check_ratings_data(&ids(&["1", "2"]), &ids(&["10", "20"]), Some(&[0.0, 16.0]), "`digits.csv`");
    assert!(err.unwrap_err().to_string().contains("rating 16 of row 2 is far outside"));
    assert!(mf
        .check_ratings_data(&ids(&["1", "2", "9"]), &ids(&["10", "20", "20"]), Some(&[4.0, 2.0, 3.0]), "r")
        .is_ok());
    // Users and items the model does not know get its fallbacks: not an error.
    assert!(mf.check_ratings_data(&ids(&["new", "1"]), &ids(&["20", "new"]), Some(&[4.0, 2.0]), "r").is_ok());
    assert!(mf.predict_ratings(&ids(&["1", "2"]), &ids(&["10"])).is_err(), "lengths differ");
    let mut twice = mf.clone();
    if let ModelSpec::MatrixFactorization { user_ids, .. } = &mut twice.model {
        user_ids[1] = "1".into();
    }
    let err = SavedModel::from_json_bytes(twice.to_json().as_bytes(), Path::new("mf.json")).unwrap_err();
    assert!(err.to_string().contains("user id `1` appears twice"), "{err}");
    // Ratings for a model of features.
    let classifier = saved_classifier();
    let err = classifier.check_ratings_data(&ids(&["1"]), &ids(&["10"]), Some(&[4.0]), "`ratings.csv`").unwrap_err();
    assert!(err.to_string().contains("expected rows of those features, not ratings"), "{err}");
    assert!(classifier.predict_ratings(&ids(&["1"]), &ids(&["10"])).is_err());
}

#[test]
fn range_tests_and_optimizers_report_sizes() {
    let model = softmax(2, 3);
    let (x, y) = classes();
    let wide = vec![0.0f32; 18];
    let test = range_test(&model, &model.init_params(0), Rows::new(&wide, &y, 3), sgd(), &RangeTestConfig::default());
    assert!(matches!(test, Err(RangeTestError::Rows(RowsError::Width { .. }))));
    assert!(range_test(&model, &model.init_params(0), Rows::new(&x, &y, 2), sgd(), &RangeTestConfig::default()).is_ok());
    let count = |name: &str, options: serde_json::Value| from_options(name, &options).unwrap().state_buffers();
    assert_eq!(count("sgd", json!({})), 0);
    assert_eq!(count("sgd", json!({"momentum": 0.9})), 1);
    assert_eq!(count("adam", json!({})), 2);
    assert_eq!(count("adam", json!({"amsgrad": true})), 3);
    assert_eq!(count("rmsprop", json!({"momentum": 0.9, "centered": true})), 3);
    assert_eq!(count("lion", json!({})), 1);
}
