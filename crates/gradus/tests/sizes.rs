//! Absurd sizes from files and flags: each is an error naming the field or what it sizes and the
//! memory it would need, found before anything that large is allocated (never an abort, never a
//! panic, never a wrapped count).

use std::path::{Path, PathBuf};

use gradus::data::{read_libsvm, DataError, StreamFormat, StreamingReader, MAX_FEATURES};
use gradus::loss::Loss;
use gradus::mf::{MatrixFactorization, MfConfig, MfError};
use gradus::mlp::{Activation, Mlp};
use gradus::model::{Model, Rows};
use gradus::optim::{Adam, AdamConfig, LbfgsConfig, Sgd, SgdConfig};
use gradus::saved::{SavedModel, SavedModelError};
use gradus::train::{TrainConfig, TrainError, Trainer};
use serde_json::json;

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("gradus-sizes-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

fn adam_trainer() -> Trainer {
    Trainer::new(TrainConfig::default(), Box::new(Adam::new(AdamConfig::default()).unwrap())).unwrap()
}

#[test]
fn layer_sizes_whose_parameter_count_overflows_are_errors() {
    let relu = [Activation::Relu, Activation::Identity];
    let err = Mlp::new(&[4, 2_305_843_009_213_693_960, 3], &relu, Loss::Mse).unwrap_err();
    assert_eq!(err.option, "sizes");
    let err = Mlp::new(&[usize::MAX, usize::MAX, 1], &relu, Loss::Mse).unwrap_err();
    assert_eq!(err.option, "sizes");
}

#[test]
fn a_model_too_large_for_memory_is_an_error_naming_the_amount() {
    // `--hidden 2000000000` on 64 features and 10 classes: 150 billion parameters.
    let mlp = Mlp::new(
        &[64, 2_000_000_000, 10],
        &[Activation::Relu, Activation::Identity],
        Loss::cross_entropy(0.0).unwrap(),
    )
    .unwrap();
    let trainer = adam_trainer();
    let needed = trainer.memory_needed(&mlp, 1797).unwrap();
    assert!(needed > 150_000_000_000 * 4 * 5, "parameters, gradient, last good copy and Adam's two moments: {needed}");
    let err = trainer.check_memory(&mlp, 1797).unwrap_err();
    let message = err.to_string();
    assert!(message.starts_with("the model (150000000010 parameters) would need "), "{message}");
    assert!(message.contains(" TB for its parameters, optimizer state, gradients and activations"), "{message}");
    if gradus::memory::available().is_some() {
        assert!(message.contains("available"), "{message}");
    }
    // `fit` checks too, before its own buffers, and says so in a typed error.
    let tiny = Mlp::new(&[2, 1], &[Activation::Identity], Loss::Mse).unwrap();
    let mut params = tiny.init_params(0);
    let (x, y) = ([0.0f32, 1.0], [1.0f32]);
    assert!(adam_trainer().fit(&tiny, &mut params, Rows::new(&x, &y, 2), None, &mut []).is_ok());
    // A model whose working memory overflows the count is refused, not wrapped.
    let wide = Mlp::new(&[1, 1 << 40, 1], &[Activation::Relu, Activation::Identity], Loss::Mse).unwrap();
    assert!(trainer.check_memory(&wide, usize::MAX / 2).is_err());
}

#[test]
fn too_many_factors_is_an_error_naming_the_memory() {
    let users: Vec<u32> = (0..610).collect();
    let items: Vec<u32> = (0..610).map(|u| u % 97).collect();
    let ratings = vec![3.5f32; 610];
    let train = gradus::mf::Ratings::new(610, 9724, &users, &items, &ratings).unwrap();
    let config = MfConfig { n_factors: 4_000_000_000, ..MfConfig::default() };
    let err = MatrixFactorization::new(&config, &train).unwrap_err();
    assert!(matches!(err, MfError::Memory(_)), "{err:?}");
    let message = err.to_string();
    assert!(
        message.starts_with(
            "matrix factorization of 610 users and 9724 items with 4000000000 factors would need 330.7 TB"
        ),
        "{message}"
    );
    let config = MfConfig { n_factors: usize::MAX, ..MfConfig::default() };
    let err = MatrixFactorization::new(&config, &train).unwrap_err().to_string();
    assert!(err.contains("would need more than 18 EB"), "{err}");
    // Mini-batch training counts its gradient and optimizer state.
    let small = MatrixFactorization::new(&MfConfig { n_factors: 2, ..MfConfig::default() }, &train).unwrap();
    let mut optimizer = Sgd::new(SgdConfig::default()).unwrap();
    let mut model = small.clone();
    assert!(model.fit_minibatch(&train, &mut optimizer, 32, 1, 0).is_ok());
}

fn write(name: &str, text: &str) -> PathBuf {
    let path = scratch(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn a_huge_libsvm_feature_index_is_an_error_naming_file_line_and_column() {
    // Nine rows, one of them with feature 30,000,000: 1 GB of zeros as a dense matrix.
    let mut text = String::new();
    for i in 0..8 {
        text.push_str(&format!("{} 1:0.5 3:1.0\n", i % 2));
    }
    text.push_str("1 1:0.5 30000000:1.0\n");
    let path = write("wide.svm", &text);
    let err = read_libsvm(&path, None).unwrap_err();
    assert!(matches!(err, DataError::FeatureIndexTooLarge { line: 9, column: 3, index: 30_000_000, .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.contains("wide.svm`, line 9, column 3: feature index 30000000"), "{message}");
    assert!(message.contains(&format!("expected an index <= {MAX_FEATURES}")), "{message}");
    // The streaming reader finds the width with the same parser.
    let err = StreamingReader::open(&path, StreamFormat::Libsvm { width: None }, 4).unwrap_err();
    assert!(matches!(err, DataError::FeatureIndexTooLarge { line: 9, .. }), "{err:?}");
    let err = StreamingReader::open(&path, StreamFormat::Libsvm { width: Some(1 << 40) }, 4).unwrap_err();
    assert!(err.to_string().contains("invalid value 1099511627776 for `width`"), "{err}");
    // An index above usize is not a number the parser takes.
    let path = write("huger.svm", "1 99999999999999999999999:1\n");
    assert!(matches!(read_libsvm(&path, None), Err(DataError::Libsvm { line: 1, column: 2, .. })));
}

#[test]
fn a_dense_matrix_beyond_memory_is_an_error_naming_the_widest_index() {
    // 100,000 rows of 10 million features: 4 TB dense, from a 1.3 MB file.
    let mut text = String::from("0 1:1\n");
    for _ in 1..100_000 {
        text.push_str("1 10000000:1\n");
    }
    let path = write("dense.svm", &text);
    let err = read_libsvm(&path, None).unwrap_err();
    let message = err.to_string();
    assert!(matches!(err, DataError::Memory { widest: Some((2, 2)), .. }), "{err:?}");
    assert!(
        message.contains("dense.svm` (widest at line 2, column 2): a dense 100000 × 10000000 matrix would need 4.0 TB"),
        "{message}"
    );
    // A width given by the caller is checked the same way.
    let path = write("narrow.svm", "1 1:1\n");
    let err = read_libsvm(&path, Some(usize::MAX)).unwrap_err();
    assert!(matches!(err, DataError::Memory { widest: None, .. }), "{err:?}");
}

fn load(text: &str) -> Result<SavedModel, SavedModelError> {
    SavedModel::from_json_bytes(text.as_bytes(), Path::new("huge.json"))
}

#[test]
fn saved_models_with_absurd_sizes_are_corrupt_files() {
    let mlp = json!({
        "format": "gradus-model", "version": 1, "task": "multiclass",
        "model": {"kind": "mlp", "sizes": [4, 2305843009213693960u64, 3], "activations": ["relu", "identity"],
                  "loss": {"loss": "cross_entropy", "label_smoothing": 0.0}},
        "params": [0.5], "standardizer": null, "target_scale": null, "label_map": {"classes": [0.0, 1.0, 2.0]},
        "feature_names": ["a", "b", "c", "d"], "target_name": "y"
    });
    let err = load(&mlp.to_string()).unwrap_err();
    assert!(matches!(err, SavedModelError::Invalid { .. }), "{err:?}");
    let message = err.to_string();
    assert!(
        message.starts_with("`huge.json`: corrupt gradus model file: `sizes` [4, 2305843009213693960, 3]"),
        "{message}"
    );
    // Sizes that do not overflow but no file could hold the parameters of.
    let mut big = mlp.clone();
    big["model"]["sizes"] = json!([4, 1_000_000_000_000u64, 3]);
    let message = load(&big.to_string()).unwrap_err().to_string();
    assert!(message.contains("`params` holds 1 values, the model (mlp 4-1000000000000-3 relu) has"), "{message}");
    let mut linear = mlp.clone();
    linear["task"] = json!("regression");
    linear["label_map"] = json!(null);
    linear["model"] = json!({"kind": "linear", "linear": "linear", "inputs": u64::MAX, "classes": 1,
                             "penalty": {"l2": 0.0, "l1": 0.0}});
    assert!(load(&linear.to_string()).is_err());
}

#[test]
fn saved_matrix_factorizations_with_absurd_sizes_are_corrupt_files() {
    let mf = json!({
        "format": "gradus-model", "version": 1, "task": "ratings",
        "model": {"kind": "matrix_factorization",
                  "mf": {"config": {"n_factors": 4000000000u64}, "n_users": 18446744073709551615u64, "n_items": 2,
                         "global_mean": 3.0, "rating_min": 1.0, "rating_max": 5.0,
                         "user_known": [true], "item_known": [true, true], "params": [0.0]},
                  "user_ids": ["a"], "item_ids": ["x", "y"]},
        "params": [], "standardizer": null, "target_scale": null, "label_map": null,
        "feature_names": ["user", "item"], "target_name": "rating"
    });
    let message = load(&mf.to_string()).unwrap_err().to_string();
    assert!(message.contains("the parameter count overflows"), "{message}");
}

#[test]
fn optimizer_sizes_from_options_are_bounded() {
    let err = LbfgsConfig::from_options(&json!({"history_size": 1_000_000_000_000u64})).unwrap_err();
    assert_eq!(err.option, "history_size");
    let config = LbfgsConfig::from_options(&json!({"max_iter": u64::MAX})).unwrap();
    assert_eq!(config.effective_max_eval(), usize::MAX / 4);
}

#[test]
fn memory_errors_reach_training_as_typed_errors() {
    let err: TrainError =
        gradus::memory::check_against("the model", "its parameters", None, Some(1)).unwrap_err().into();
    assert!(matches!(err, TrainError::Memory(_)));
    assert_eq!(
        err.to_string(),
        "the model would need more than 18 EB for its parameters; this machine has 1 bytes available"
    );
}
