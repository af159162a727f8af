//! Mutation fuzzing of every reader: CSV, LIBSVM, ratings, IDX (plain and gzip), the streaming
//! reader, saved model JSON and checkpoint JSON.
//!
//! Each target starts from valid seed files and applies a few random mutations (bit flips,
//! truncations, insertions of huge numbers, NaN, negative numbers, separators and deep nesting,
//! deletions, duplicated spans such as a repeated field or line), then reads the result. The
//! property: the reader returns `Ok` or its typed error, never panics, never asks for an absurd
//! allocation (the test binary's allocator refuses any single allocation above 256 MB, so an
//! infallible one aborts the run) and finishes in bounded time. What a reader accepts is used
//! further (predictions from a loaded model, training resumed from a loaded checkpoint), which
//! must not panic either.
//!
//! `GRADUS_FUZZ_CASES` sets the number of cases per target (default 200, which keeps the file
//! well under a minute); set it high for a longer campaign. Crashes found by campaigns are kept
//! below as named regression tests.

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::Write as _;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use gradus::data::{read_csv, read_libsvm, read_ratings, CsvOptions, LabelMap, RatingsOptions, Standardizer};
use gradus::data::{StreamFormat, StreamingReader};
use gradus::linear::{LinearKind, Penalty};
use gradus::loss::Loss;
use gradus::mf::{MatrixFactorization, MfConfig};
use gradus::mlp::{Activation, Mlp};
use gradus::model::{Model, Rows};
use gradus::optim::{Sgd, SgdConfig};
use gradus::saved::{ModelSpec, SavedModel, TargetScale};
use gradus::train::{Checkpoint, CheckpointConfig, Task, TrainConfig, Trainer};
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

/// Refuses any single allocation above this: an absurd size from a file must be checked (or
/// reserved fallibly) before it is allocated.
const MAX_ALLOCATION: usize = 256 << 20;

struct Bounded;

// SAFETY: forwards to the system allocator, or returns null (a refused allocation) above the bound.
unsafe impl GlobalAlloc for Bounded {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.size() > MAX_ALLOCATION {
            return std::ptr::null_mut();
        }
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if layout.size() > MAX_ALLOCATION {
            return std::ptr::null_mut();
        }
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size > MAX_ALLOCATION {
            return std::ptr::null_mut();
        }
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Bounded = Bounded;

/// The longest one case may take (a hang is a finding too); generous for a loaded CI machine.
const MAX_CASE_TIME: Duration = Duration::from_secs(20);

fn cases() -> u32 {
    std::env::var("GRADUS_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(200)
}

/// Text spliced into the inputs: numbers at and beyond every limit, non-numbers, separators,
/// byte-order marks, invalid UTF-8, and JSON fragments that duplicate or replace fields.
const TOKENS: &[&str] = &[
    "NaN",
    "nan",
    "inf",
    "-inf",
    "1e39",
    "-1e39",
    "1e999",
    "-1",
    "-0",
    "0",
    "0.5",
    "3.4028236e38",
    "4294967296",
    "4294967295",
    "18446744073709551615",
    "18446744073709551616",
    "2305843009213693960",
    "9223372036854775807",
    "99999999999999999999999999999999",
    "30000000",
    "10000001",
    "-2147483649",
    ",",
    ";",
    "\t",
    "\n",
    "\r\n",
    "\"",
    "'",
    ":",
    "1:",
    ":1",
    "#",
    "qid:3",
    " ",
    "\u{feff}",
    "\u{1f600}",
    "\u{0}",
    "null",
    "true",
    "{}",
    "[]",
    "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[",
    "{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":",
    "\"sizes\":[4,2305843009213693960,3],",
    "\"sizes\":[1,1000000000000,1],",
    "\"params\":[1e39,NaN],",
    "\"params\":[],",
    "\"classes\":[1.0,1.0],",
    "\"classes\":[2.0,1.0],",
    "\"means\":[1.0],",
    "\"stds\":[0.0,0.0,0.0,0.0],",
    "\"n_factors\":4000000000,",
    "\"n_users\":18446744073709551615,",
    "\"epoch\":18446744073709551615,",
    "\"best\":[1,0.5,[1.0]],",
    "\"buffers\":[1.0],",
    "\"exp_avg\":[1.0,2.0],",
    "\"lr\":-1,",
    "\"history_size\":1000000000000,",
    "\"task\":\"ratings\",",
    "\"kind\":\"matrix_factorization\",",
];

#[derive(Debug, Clone)]
enum Mutation {
    FlipBit(Index, u8),
    SetByte(Index, u8),
    Truncate(Index),
    Insert(Index, Index),
    Delete(Index, u8),
    Duplicate(Index, u16),
    Nest(Index, u16, bool),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<Index>(), 0u8..8).prop_map(|(at, bit)| Mutation::FlipBit(at, bit)),
        (any::<Index>(), any::<u8>()).prop_map(|(at, byte)| Mutation::SetByte(at, byte)),
        any::<Index>().prop_map(Mutation::Truncate),
        (any::<Index>(), any::<Index>()).prop_map(|(at, token)| Mutation::Insert(at, token)),
        (any::<Index>(), 1u8..32).prop_map(|(at, len)| Mutation::Delete(at, len)),
        (any::<Index>(), 1u16..200).prop_map(|(at, len)| Mutation::Duplicate(at, len)),
        (any::<Index>(), 1u16..300, any::<bool>()).prop_map(|(at, depth, square)| Mutation::Nest(at, depth, square)),
    ]
}

fn apply(mut bytes: Vec<u8>, mutations: &[Mutation]) -> Vec<u8> {
    for m in mutations {
        let at = |index: &Index, len: usize| if len == 0 { 0 } else { index.index(len + 1) };
        match m {
            Mutation::FlipBit(i, bit) if !bytes.is_empty() => {
                let i = i.index(bytes.len());
                bytes[i] ^= 1 << bit;
            }
            Mutation::SetByte(i, byte) if !bytes.is_empty() => {
                let i = i.index(bytes.len());
                bytes[i] = *byte;
            }
            Mutation::Truncate(i) => bytes.truncate(at(i, bytes.len())),
            Mutation::Insert(i, token) => {
                let i = at(i, bytes.len());
                let token = TOKENS[token.index(TOKENS.len())].as_bytes();
                bytes.splice(i..i, token.iter().copied());
            }
            Mutation::Delete(i, len) if !bytes.is_empty() => {
                let i = i.index(bytes.len());
                let end = (i + *len as usize).min(bytes.len());
                bytes.drain(i..end);
            }
            Mutation::Duplicate(i, len) if !bytes.is_empty() => {
                let i = i.index(bytes.len());
                let end = (i + *len as usize).min(bytes.len());
                let copy = bytes[i..end].to_vec();
                bytes.splice(end..end, copy);
            }
            Mutation::Nest(i, depth, square) => {
                let i = at(i, bytes.len());
                let open = if *square { b'[' } else { b'{' };
                bytes.splice(i..i, std::iter::repeat_n(open, *depth as usize));
            }
            _ => {}
        }
    }
    bytes
}

/// A gzip stream of `bytes`.
fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

fn scratch_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("gradus-fuzz-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs `target` on mutations of `seeds`, `cases()` times; `name` names the file each case is
/// written to. Returns the number of executions.
fn fuzz(name: &str, seeds: Vec<Vec<u8>>, target: impl Fn(&Path, &[u8])) -> u32 {
    let file = scratch_dir().join(name);
    let cases = cases();
    let config = Config { cases, max_shrink_iters: 2000, failure_persistence: None, ..Config::default() };
    let mut runner = TestRunner::new(config);
    let strategy = (0..seeds.len(), prop::collection::vec(mutation(), 1..6));
    let result = runner.run(&strategy, |(seed, mutations)| {
        let bytes = apply(seeds[seed].clone(), &mutations);
        std::fs::write(&file, &bytes).unwrap();
        let start = Instant::now();
        let outcome = catch_unwind(AssertUnwindSafe(|| target(&file, &bytes)));
        let elapsed = start.elapsed();
        if outcome.is_err() {
            return Err(TestCaseError::fail(format!("{name}: panicked on {:?}", String::from_utf8_lossy(&bytes))));
        }
        if elapsed > MAX_CASE_TIME {
            return Err(TestCaseError::fail(format!(
                "{name}: took {elapsed:?} on {:?}",
                String::from_utf8_lossy(&bytes)
            )));
        }
        Ok(())
    });
    let _ = std::fs::remove_file(&file);
    if let Err(e) = result {
        panic!("{e}");
    }
    eprintln!("fuzz {name}: {cases} executions, no crash");
    cases
}

const CSV_SEEDS: &[&str] = &[
    "a,b,c,y\n1,2,3,0\n4,5,6,1\n-7.5,8e3,0.25,2\n",
    "x1;x2;label\n1;2;a\n3;4;b\n",
    "\u{feff}\"first, col\",\"second\"\"q\",t\n1,2,3\n\"4\",5,6\r\n",
    "p\tq\ty\n0.1\t0.2\t1\n\n0.3\t0.4\t0\n",
    "one\n1\n2\n3\n",
];

const LIBSVM_SEEDS: &[&str] = &[
    "1 1:0.5 3:1.0\n0 2:-1 4:2.5e1\n",
    "+1 qid:3 1:1 2:2 # comment\n-1 qid:3 5:0.5\n\n# only a comment\n2 10:1\n",
    "3\t1:0.1\t7:0.7\n",
];

const RATINGS_SEEDS: &[&str] = &[
    "userId,movieId,rating,timestamp\n1,31,2.5,1260759144\n1,1029,3.0,1260759179\n2,31,4,1\n",
    "u1\ti7\t5\nu2\ti7\t1\nu1\ti8\t3.5\n",
    "user;item;rating\n\"a b\";x;1\nc;\"y\";2\n",
];

fn seeds(texts: &[&str]) -> Vec<Vec<u8>> {
    let mut seeds: Vec<Vec<u8>> = texts.iter().map(|t| t.as_bytes().to_vec()).collect();
    seeds.push(gzip(texts[0].as_bytes()));
    seeds
}

/// The CSV target: read, prepare, stream.
fn csv_target(path: &Path) {
    {
        if let Ok(data) = read_csv(path, &CsvOptions::default()) {
            assert_eq!(data.features.len(), data.rows * data.cols);
            // What a reader gives, the preparation takes without panicking.
            if let Ok(s) = Standardizer::fit(&data, &(0..data.rows).collect::<Vec<_>>()) {
                let mut features = data.features.clone();
                let _ = s.transform_rows(&mut features);
            }
            let _ = LabelMap::fit(&data.target, &data.source).map(|m| m.encode_all(&data.target, &data.source));
        }
        let _ = read_csv(path, &CsvOptions::default().target("b").delimiter(b';'));
        stream_one_epoch(path, StreamFormat::Csv(CsvOptions::default()));
    }
}

#[test]
fn fuzz_csv() {
    fuzz("data.csv", seeds(CSV_SEEDS), |path, _| csv_target(path));
}

/// The LIBSVM target: read with and without a width, stream.
fn libsvm_target(path: &Path) {
    if let Ok(data) = read_libsvm(path, None) {
        assert_eq!(data.features.len(), data.rows * data.cols);
    }
    let _ = read_libsvm(path, Some(8));
    stream_one_epoch(path, StreamFormat::Libsvm { width: None });
}

#[test]
fn fuzz_libsvm() {
    fuzz("data.svm", seeds(LIBSVM_SEEDS), |path, _| libsvm_target(path));
}

/// The ratings target: read, then train a tiny factorization on what was read.
fn ratings_target(path: &Path) {
    {
        if let Ok(r) = read_ratings(path, &RatingsOptions::default()) {
            let train = gradus::mf::Ratings::new(r.n_users(), r.n_items(), &r.users, &r.items, &r.ratings);
            if let Ok(train) = train {
                let config = MfConfig { n_factors: 2, n_epochs: 1, ..MfConfig::default() };
                let _ = MatrixFactorization::fit(&config, &train);
            }
        }
        let _ = read_ratings(path, &RatingsOptions { header: Some(false), ..RatingsOptions::default() });
    }
}

#[test]
fn fuzz_ratings() {
    fuzz("ratings.csv", seeds(RATINGS_SEEDS), |path, _| ratings_target(path));
}

fn stream_one_epoch(path: &Path, format: StreamFormat) {
    if let Ok(reader) = StreamingReader::open(path, format, 2) {
        let mut reader = reader.with_shuffle(3, 1);
        if let Ok(epoch) = reader.epoch() {
            for batch in epoch {
                if batch.is_err() {
                    break;
                }
            }
        }
    }
}

/// An IDX file of unsigned bytes: its header (dimensions big-endian) and values.
fn idx(dims: &[u32], values: &[u8]) -> Vec<u8> {
    let mut bytes = vec![0, 0, 0x08, dims.len() as u8];
    for d in dims {
        bytes.extend_from_slice(&d.to_be_bytes());
    }
    bytes.extend_from_slice(values);
    bytes
}

fn idx_images() -> Vec<u8> {
    idx(&[3, 2, 2], &[0, 255, 7, 9, 1, 2, 3, 4, 200, 100, 50, 25])
}

fn idx_labels() -> Vec<u8> {
    idx(&[3], &[1, 0, 9])
}

/// The IDX target: the images (mutated here) with valid labels, or the reverse; what loads
/// trains one epoch of a small network.
fn idx_target(images: &Path, labels: &Path) {
    let Ok((data, shape)) = gradus::data::read_idx(images, labels) else { return };
    assert_eq!(data.features.len(), data.rows * data.cols);
    assert_eq!(shape.checked_len(), Some(data.cols));
    if let Ok(map) = LabelMap::fit(&data.target, &data.source) {
        let y: Vec<f32> = map.encode_all(&data.target, &data.source).unwrap().iter().map(|&c| c as f32).collect();
        let model = gradus::linear::LinearModel::softmax(data.cols, map.n_classes(), Penalty::default()).unwrap();
        let mut params = model.init_params(0);
        let _ = trainer(1, None).fit(&model, &mut params, Rows::new(&data.features, &y, data.cols), None, &mut []);
    }
}

#[test]
fn fuzz_idx() {
    let dir = scratch_dir();
    let (labels, images) = (dir.join("good-labels.idx1"), dir.join("good-images.idx3"));
    std::fs::write(&labels, idx_labels()).unwrap();
    std::fs::write(&images, idx_images()).unwrap();
    fuzz("images.idx3", vec![idx_images(), gzip(&idx_images())], |path, _| idx_target(path, &labels));
    fuzz("labels.idx1", vec![idx_labels(), gzip(&idx_labels())], |path, _| idx_target(&images, path));
}

/// Saved models of every kind, as JSON.
fn model_seeds() -> Vec<Vec<u8>> {
    let mlp = ModelSpec::Mlp {
        sizes: vec![3, 4, 3],
        activations: vec![Activation::Tanh, Activation::Identity],
        loss: Loss::CrossEntropy { label_smoothing: 0.0 },
    };
    let multiclass = SavedModel {
        task: Task::Multiclass,
        params: mlp.build().unwrap().init_params(1),
        model: mlp,
        standardizer: Some(Standardizer { means: vec![0.5, -1.0, 2.0], stds: vec![1.5, 0.25, 3.0] }),
        target_scale: None,
        label_map: Some(LabelMap { classes: vec![1.0, 2.0, 7.0] }),
        feature_names: vec!["a".into(), "b".into(), "c".into()],
        target_name: "y".into(),
        buffers: Vec::new(),
        class_names: None,
        text: None,
    };
    let regression = SavedModel {
        task: Task::Regression,
        model: ModelSpec::Linear { linear: LinearKind::Linear, inputs: 2, classes: 1, penalty: Penalty::default() },
        params: vec![0.3, -1.7, 0.1],
        standardizer: None,
        target_scale: Some(TargetScale { mean: 150.0, std: 70.0 }),
        label_map: None,
        feature_names: vec!["u".into(), "v".into()],
        target_name: "t".into(),
        buffers: Vec::new(),
        class_names: None,
        text: None,
    };
    let (users, items, ratings) = ([0u32, 0, 1, 1], [0u32, 1, 0, 1], [4.0f32, 3.0, 5.0, 1.0]);
    let train = gradus::mf::Ratings::new(2, 2, &users, &items, &ratings).unwrap();
    let mf = MatrixFactorization::fit(&MfConfig { n_factors: 2, n_epochs: 2, ..MfConfig::default() }, &train).unwrap();
    let ratings_model = SavedModel {
        task: Task::Ratings,
        model: ModelSpec::MatrixFactorization {
            mf: Box::new(mf),
            user_ids: vec!["a".into(), "b".into()],
            item_ids: vec!["x".into(), "y".into()],
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
    };
    [multiclass, regression, ratings_model].iter().map(|m| m.to_json().into_bytes()).collect()
}

/// Uses a loaded model every way the command line does.
fn exercise_model(model: &SavedModel) {
    let ids = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let (users, items) = (ids(&["a", "b", "zz"]), ids(&["x", "q", "y"]));
    let _ = model.predict_ratings(&users, &items);
    let _ = model.check_ratings_data(&users, &items, Some(&[1.0, 2.0, 3.0]), "r.csv");
    let inputs = model.inputs().min(64);
    let x: Vec<f32> = (0..2 * inputs).map(|i| i as f32 * 0.5 - 1.0).collect();
    if let Ok(out) = model.outputs(&x, 2) {
        let _ = model.probabilities(&out);
    }
    let classes = model.label_map.as_ref().map(|m| m.classes.clone()).unwrap_or_default();
    let targets = [classes.first().copied().unwrap_or(1.0), 0.5];
    let _ = model.evaluate(&x, &targets, "data.csv");
}

/// The saved-model target: parse and check, then use what loaded.
fn model_target(bytes: &[u8]) -> bool {
    match SavedModel::from_json_bytes(bytes, Path::new("model.json")) {
        Ok(model) => {
            exercise_model(&model);
            true
        }
        Err(_) => false,
    }
}

#[test]
fn fuzz_saved_model() {
    fuzz("model.json", model_seeds(), |_, bytes| {
        model_target(bytes);
    });
}

fn checkpoint_model() -> Mlp {
    Mlp::new(&[2, 3, 1], &[Activation::Tanh, Activation::Identity], Loss::Mse).unwrap()
}

fn checkpoint_data() -> (Vec<f32>, Vec<f32>) {
    let x: Vec<f32> = (0..16).map(|i| (i as f32 * 0.37).sin()).collect();
    let y: Vec<f32> = (0..8).map(|i| i as f32 * 0.1).collect();
    (x, y)
}

fn trainer(epochs: usize, checkpoint: Option<CheckpointConfig>) -> Trainer {
    let config = TrainConfig { epochs, checkpoint, ..TrainConfig::default() };
    let sgd = Sgd::new(SgdConfig { lr: 0.01, momentum: 0.9, ..SgdConfig::default() }).unwrap();
    Trainer::new(config, Box::new(sgd)).unwrap()
}

/// Checkpoints written by real runs (with momentum state and early stopping's best parameters).
fn checkpoint_seeds() -> Vec<Vec<u8>> {
    let dir = scratch_dir();
    let model = checkpoint_model();
    let (x, y) = checkpoint_data();
    let rows = Rows::new(&x, &y, 2);
    let mut seeds = Vec::new();
    for (i, early) in [false, true].into_iter().enumerate() {
        let path = dir.join(format!("seed-{i}.ckpt"));
        let mut t = trainer(2, Some(CheckpointConfig { every: 1, path: path.clone() }));
        if early {
            let config = TrainConfig {
                early_stopping: Some(gradus::train::EarlyStopping { patience: 5, metric: None, min_delta: 0.0 }),
                ..t.config().clone()
            };
            let sgd = Sgd::new(SgdConfig { lr: 0.01, momentum: 0.9, ..SgdConfig::default() }).unwrap();
            t = Trainer::new(config, Box::new(sgd)).unwrap();
        }
        let mut params = model.init_params(0);
        t.fit(&model, &mut params, rows, early.then_some(rows), &mut []).unwrap();
        seeds.push(std::fs::read(&path).unwrap());
        std::fs::remove_file(&path).unwrap();
    }
    seeds
}

/// The checkpoint target: load, validate, and resume training from what loaded. Returns whether
/// the resumed run succeeded.
fn checkpoint_target(path: &Path) -> bool {
    let model = checkpoint_model();
    let (x, y) = checkpoint_data();
    let Ok(checkpoint) = Checkpoint::load(path) else { return false };
    let _ = checkpoint.validate(&model);
    // Resuming from whatever loaded must be an error or a run, never a panic.
    let mut params = model.init_params(0);
    let rows = Rows::new(&x, &y, 2);
    trainer(3, None).fit_from(&model, &mut params, rows, Some(rows), &mut [], Some(checkpoint)).is_ok()
}

#[test]
fn fuzz_checkpoint() {
    fuzz("run.ckpt", checkpoint_seeds(), |path, _| {
        checkpoint_target(path);
    });
}

// Regression cases: inputs that panicked, aborted or gave wrong answers before this round (found
// by reproducing the reported failures and by review; the campaigns found none of their own), run
// through the same targets. Each one is an error now.

fn pinned(name: &str, bytes: &[u8]) -> PathBuf {
    let path = scratch_dir().join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// A saved MLP of sizes [4, 2^61 + 8, 3]: the parameter count wrapped and `evaluate` panicked.
#[test]
fn regression_saved_model_whose_parameter_count_wraps() {
    let mut model: serde_json::Value = serde_json::from_slice(&model_seeds()[0]).unwrap();
    model["model"]["sizes"] = serde_json::json!([4, 2305843009213693960u64, 3]);
    assert!(!model_target(model.to_string().as_bytes()));
}

/// A saved classifier whose label map repeats a class or is out of order: classes were looked up
/// by binary search, so predictions named the wrong class.
#[test]
fn regression_saved_model_with_repeated_or_unsorted_classes() {
    for classes in [serde_json::json!([1.0, 1.0, 7.0]), serde_json::json!([7.0, 1.0, 2.0])] {
        let mut model: serde_json::Value = serde_json::from_slice(&model_seeds()[0]).unwrap();
        model["label_map"]["classes"] = classes;
        assert!(!model_target(model.to_string().as_bytes()));
    }
}

/// Nine LIBSVM rows, one with feature 30,000,000: a gigabyte dense matrix (and a model as wide).
#[test]
fn regression_libsvm_feature_index_of_thirty_million() {
    let mut text = "1 1:0.5 3:1.0\n".repeat(8);
    text.push_str("1 1:0.5 30000000:1.0\n");
    let path = pinned("wide.svm", text.as_bytes());
    libsvm_target(&path);
    assert!(matches!(read_libsvm(&path, None), Err(gradus::data::DataError::FeatureIndexTooLarge { line: 9, .. })));
}

/// Checkpoints whose optimizer buffer, best parameters or epoch did not fit: resuming panicked
/// in the optimizer's step, in early stopping's final copy, or on `epoch + 1`.
#[test]
fn regression_checkpoints_that_do_not_fit_the_run() {
    let seed: serde_json::Value = serde_json::from_slice(&checkpoint_seeds()[1]).unwrap();
    let edits: [(&str, serde_json::Value); 4] = [
        ("/optimizer/buffers/momentum_buffer", serde_json::json!([1.0, 2.0])),
        ("/best/2", serde_json::json!([1.0])),
        ("/epoch", serde_json::json!(usize::MAX)),
        ("/params", serde_json::json!([1.0, 2.0])),
    ];
    for (pointer, value) in edits {
        let mut checkpoint = seed.clone();
        *checkpoint.pointer_mut(pointer).unwrap_or_else(|| panic!("{pointer}")) = value;
        let path = pinned("pinned.ckpt", checkpoint.to_string().as_bytes());
        assert!(!checkpoint_target(&path), "{pointer}");
    }
    // The seed itself resumes.
    assert!(checkpoint_target(&pinned("seed.ckpt", seed.to_string().as_bytes())));
}
