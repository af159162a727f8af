//! Streaming training ([`fit_stream`]) and the one-pass standardizer ([`fit_standardizer`]) on
//! small generated files, checked against the in-memory engine.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use gradus::data::{
    read_csv, read_libsvm, CsvOptions, DataError, Dataset, Standardizer, StreamFormat, StreamingReader,
};
use gradus::linear::{LinearModel, Penalty};
use gradus::model::{Model, Rows};
use gradus::optim::adam::{Adam, AdamConfig};
use gradus::optim::sgd::{Sgd, SgdConfig};
use gradus::optim::Optimizer;
use gradus::train::stream::{fit_standardizer, fit_stream};
use gradus::train::{BatchMode, EarlyStopping, Observer, StepInfo, Termination, TrainConfig, TrainError, Trainer};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A file in the temp folder, removed when dropped.
struct TempFile(PathBuf);

impl TempFile {
    fn new(name: &str, contents: &str) -> Self {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let unique = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("gradus-stream-train-{}-{unique}-{name}", std::process::id()));
        std::fs::write(&path, contents).expect("write temp file");
        Self(path)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

const COLS: usize = 4;
const TRUE_WEIGHTS: [f64; COLS] = [1.5, -2.0, 0.5, 3.0];

/// `rows` rows of `COLS` features with different means and scales and a noisy linear target.
fn table(rows: usize, seed: u64) -> Vec<[f64; COLS + 1]> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let means = [10.0, -3.0, 0.0, 100.0];
    let scales = [2.0, 0.5, 1.0, 20.0];
    (0..rows)
        .map(|_| {
            let mut row = [0.0; COLS + 1];
            let mut y = 1.0;
            for j in 0..COLS {
                // Three decimals: the file holds exactly the values the target was computed from.
                row[j] = ((means[j] + scales[j] * rng.random_range(-1.0..1.0)) * 1e3_f64).round() / 1e3;
                y += TRUE_WEIGHTS[j] * (row[j] - means[j]) / scales[j];
            }
            row[COLS] = y + 0.01 * rng.random_range(-1.0..1.0);
            row
        })
        .collect()
}

fn csv_text(rows: &[[f64; COLS + 1]]) -> String {
    let mut text = String::from("a,b,c,d,y\n");
    for row in rows {
        let cells: Vec<String> = row.iter().map(|v| format!("{v}")).collect();
        writeln!(text, "{}", cells.join(",")).unwrap();
    }
    text
}

fn libsvm_text(rows: &[[f64; COLS + 1]]) -> String {
    let mut text = String::new();
    for row in rows {
        write!(text, "{}", row[COLS]).unwrap();
        for (j, v) in row[..COLS].iter().enumerate() {
            write!(text, " {}:{v}", j + 1).unwrap();
        }
        text.push('\n');
    }
    text
}

fn csv_reader(file: &TempFile, batch: usize) -> StreamingReader {
    StreamingReader::open(file.path(), StreamFormat::Csv(CsvOptions::default()), batch).unwrap()
}

fn adam(lr: f64) -> Box<dyn Optimizer> {
    Box::new(Adam::new(AdamConfig { lr, ..AdamConfig::default() }).unwrap())
}

fn sgd(lr: f64, momentum: f64) -> Box<dyn Optimizer> {
    Box::new(Sgd::new(SgdConfig { lr, momentum, ..SgdConfig::default() }).unwrap())
}

fn config(epochs: usize, batch: usize) -> TrainConfig {
    TrainConfig { epochs, batch: BatchMode::MiniBatch(batch), shuffle: false, ..TrainConfig::default() }
}

fn model() -> LinearModel {
    LinearModel::linear(COLS, Penalty { l2: 1e-3, l1: 0.0 }).unwrap()
}

fn bits(values: &[f32]) -> Vec<u32> {
    values.iter().map(|v| v.to_bits()).collect()
}

/// In-memory training of `data`, standardized with `standardizer`, without shuffling.
fn train_in_memory(
    data: &Dataset,
    standardizer: &Standardizer,
    config: TrainConfig,
    optimizer: Box<dyn Optimizer>,
) -> Vec<f32> {
    let mut features = data.features.clone();
    standardizer.transform_rows(&mut features).unwrap();
    let model = model();
    let mut params = model.init_params(0);
    let mut trainer = Trainer::new(config, optimizer).unwrap();
    trainer.fit(&model, &mut params, Rows::new(&features, &data.target, data.cols), None, &mut []).unwrap();
    params
}

fn train_streaming(
    reader: &mut StreamingReader,
    standardizer: &Standardizer,
    config: TrainConfig,
    optimizer: Box<dyn Optimizer>,
) -> Vec<f32> {
    let model = model();
    let mut params = model.init_params(0);
    let mut trainer = Trainer::new(config, optimizer).unwrap();
    fit_stream(&mut trainer, &model, &mut params, reader, Some(standardizer), &mut []).unwrap();
    params
}

// ---------------------------------------------------------------- agreement with the in-memory engine

/// With the shuffle buffer off and the same batch size, the batches are the in-memory engine's
/// unshuffled ones (the last one smaller: 203 = 12·16 + 11), so every update is the same
/// computation on the same numbers and the parameters agree bit for bit.
#[test]
fn csv_streaming_matches_in_memory_bit_for_bit() {
    let file = TempFile::new("agree.csv", &csv_text(&table(203, 1)));
    let data = read_csv(file.path(), &CsvOptions::default()).unwrap();
    let all: Vec<usize> = (0..data.rows).collect();
    let standardizer = Standardizer::fit(&data, &all).unwrap();
    let clipped = TrainConfig { clip_norm: Some(5.0), ..config(4, 16) };

    let memory = train_in_memory(&data, &standardizer, clipped.clone(), adam(0.05));
    let streamed = train_streaming(&mut csv_reader(&file, 16), &standardizer, clipped.clone(), adam(0.05));
    assert_eq!(bits(&streamed), bits(&memory));

    let memory = train_in_memory(&data, &standardizer, config(3, 7), sgd(0.05, 0.9));
    let streamed = train_streaming(&mut csv_reader(&file, 7), &standardizer, config(3, 7), sgd(0.05, 0.9));
    assert_eq!(bits(&streamed), bits(&memory));

    // The comparison is sharp: other batch boundaries give other parameters.
    let other = train_streaming(&mut csv_reader(&file, 17), &standardizer, clipped, adam(0.05));
    assert_ne!(bits(&other), bits(&train_in_memory(&data, &standardizer, config(4, 16), adam(0.05))));
}

#[test]
fn libsvm_streaming_matches_in_memory_bit_for_bit() {
    let file = TempFile::new("agree.svm", &libsvm_text(&table(150, 2)));
    let data = read_libsvm(file.path(), None).unwrap();
    let all: Vec<usize> = (0..data.rows).collect();
    let standardizer = Standardizer::fit(&data, &all).unwrap();
    let mut reader = StreamingReader::open(file.path(), StreamFormat::Libsvm { width: None }, 32).unwrap();
    let memory = train_in_memory(&data, &standardizer, config(3, 32), adam(0.02));
    let streamed = train_streaming(&mut reader, &standardizer, config(3, 32), adam(0.02));
    assert_eq!(bits(&streamed), bits(&memory));
}

// ---------------------------------------------------------------- training behaviour

#[test]
fn loss_decreases_with_a_shuffle_buffer_and_memory_stays_bounded() {
    let file = TempFile::new("decrease.csv", &csv_text(&table(500, 3)));
    let mut reader = csv_reader(&file, 20).with_shuffle(50, 9);
    let (standardizer, rows) = fit_standardizer(&reader).unwrap();
    assert_eq!(rows, 500);
    let model = model();
    let mut params = model.init_params(0);
    let mut trainer = Trainer::new(config(12, 20), sgd(0.02, 0.0)).unwrap();
    let report = fit_stream(&mut trainer, &model, &mut params, &mut reader, Some(&standardizer), &mut []).unwrap();

    assert_eq!(report.report.termination, Termination::MaxEpochs);
    assert_eq!(report.epochs.len(), 12);
    let losses: Vec<f64> = report.epochs.iter().map(|e| e.mean_loss).collect();
    // Strictly down while far from the noise floor (about 0.0025 here), then flat at it.
    for pair in losses[..8].windows(2) {
        assert!(pair[1] < pair[0], "running loss did not decrease: {losses:?}");
    }
    assert!(losses[8..].iter().all(|&loss| loss < 1.01 * losses[7]), "{losses:?}");
    assert!(losses[11] < 0.01 * losses[0], "{losses:?}");
    for (epoch, record) in report.epochs.iter().zip(&report.report.history) {
        assert_eq!(epoch.rows, 500);
        assert_eq!(epoch.batches, 25);
        assert_eq!(record.train["loss"], epoch.mean_loss);
        assert!(epoch.peak_buffered_rows > 20 && epoch.peak_buffered_rows <= reader.max_buffered_rows());
    }
    // y = 1 + Σ t_j·(x_j − m_j)/s_j, so on standardized features the weights are t_j·std_j/s_j.
    let scales = [2.0, 0.5, 1.0, 20.0];
    for j in 0..COLS {
        let expected = TRUE_WEIGHTS[j] * f64::from(standardizer.stds[j]) / scales[j];
        assert!((f64::from(params[j]) - expected).abs() < 0.01, "weight {j}: {} vs {expected}", params[j]);
    }
}

#[test]
fn tol_stops_on_the_running_loss_and_observers_see_every_step() {
    struct Count(u64, Vec<u64>);
    impl Observer for Count {
        fn on_step(&mut self, info: &StepInfo) -> bool {
            self.0 += 1;
            self.1.push(info.steps_per_epoch);
            true
        }
    }
    let file = TempFile::new("tol.csv", &csv_text(&table(100, 4)));
    let mut reader = csv_reader(&file, 10);
    let (standardizer, _) = fit_standardizer(&reader).unwrap();
    let model = model();
    let mut params = model.init_params(0);
    let mut trainer = Trainer::new(TrainConfig { tol: Some(1e-3), ..config(200, 10) }, adam(0.1)).unwrap();
    let mut count = Count(0, Vec::new());
    let report =
        fit_stream(&mut trainer, &model, &mut params, &mut reader, Some(&standardizer), &mut [&mut count]).unwrap();
    assert_eq!(report.report.termination, Termination::Converged);
    let epochs = report.epochs.len() as u64;
    assert!(epochs < 200);
    assert_eq!(count.0, 10 * epochs);
    // Unknown during the first epoch, then the previous epoch's count.
    assert!(count.1[..10].iter().all(|&s| s == 0) && count.1[10..].iter().all(|&s| s == 10));
}

// ---------------------------------------------------------------- errors

#[test]
fn a_malformed_row_mid_file_is_a_data_error_naming_line_and_column() {
    let mut text = csv_text(&table(100, 5));
    // Line 1 is the header; spoil the second cell of line 61 (data row 60).
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    let mut cells: Vec<&str> = lines[60].split(',').collect();
    cells[1] = "4.2x";
    lines[60] = cells.join(",");
    text = lines.join("\n") + "\n";
    let file = TempFile::new("bad.csv", &text);

    match fit_standardizer(&csv_reader(&file, 8)) {
        Err(DataError::NotNumeric { line, column, name, cell, .. }) => {
            assert_eq!((line, column, name.as_str(), cell.as_str()), (61, 2, "b", "4.2x"));
        }
        other => panic!("expected a NotNumeric error, got {other:?}"),
    }

    let model = model();
    let mut params = model.init_params(0);
    // The bad file cannot be fitted on: standardize with the generator's known means and scales.
    let known = Standardizer { means: vec![10.0, -3.0, 0.0, 100.0], stds: vec![2.0, 0.5, 1.0, 20.0] };
    let mut trainer = Trainer::new(config(3, 8), sgd(0.01, 0.0)).unwrap();
    let error =
        fit_stream(&mut trainer, &model, &mut params, &mut csv_reader(&file, 8), Some(&known), &mut []).unwrap_err();
    let TrainError::Data(message) = &error else { panic!("expected a data error, got {error:?}") };
    for part in ["epoch 1", "after 56 rows", "bad.csv", "line 61", "column 2 (`b`)", "4.2x"] {
        assert!(message.contains(part), "{message:?} lacks {part:?}");
    }
    // The 7 batches before the bad one were trained on.
    assert_eq!(trainer.optimizer().steps(), 7);
    assert!(params.iter().all(|p| p.is_finite()) && params.iter().any(|&p| p != 0.0));
}

#[test]
fn divergence_restores_the_parameters_before_the_bad_step() {
    let file = TempFile::new("diverge.csv", &csv_text(&table(200, 6)));
    let model = model();
    // Raw (unstandardized) features with a large rate: the loss explodes within a few steps.
    let run = |observer: &mut dyn Observer| {
        let mut params = model.init_params(0);
        let mut trainer = Trainer::new(config(2, 10), sgd(1e-3, 0.0)).unwrap();
        let result = fit_stream(&mut trainer, &model, &mut params, &mut csv_reader(&file, 10), None, &mut [observer]);
        (result, params)
    };
    struct Nothing;
    impl Observer for Nothing {}
    let (result, diverged_params) = run(&mut Nothing);
    let Err(TrainError::Diverged { epoch, step, loss_before, loss_after, .. }) = result else {
        panic!("expected divergence, got {result:?}")
    };
    assert_eq!(epoch, 1);
    assert!(step >= 3, "diverged at step {step}");
    assert!(
        loss_before.is_finite() && (!loss_after.is_finite() || loss_after > 10.0 * loss_before),
        "{loss_before} -> {loss_after}"
    );
    assert!(diverged_params.iter().all(|p| p.is_finite()));

    // The loss at step `step` is computed after `step − 1` updates; the parameters are restored to
    // those before the last of them, i.e. after `step − 2` updates.
    struct StopAt(u64);
    impl Observer for StopAt {
        fn on_step(&mut self, info: &StepInfo) -> bool {
            info.step < self.0
        }
    }
    let (result, stopped_params) = run(&mut StopAt(step - 2));
    assert_eq!(result.unwrap().report.termination, Termination::Interrupted);
    assert_eq!(bits(&diverged_params), bits(&stopped_params));
}

#[test]
fn mismatched_widths_and_unsupported_options_are_rejected() {
    let file = TempFile::new("width.csv", &csv_text(&table(20, 7)));
    let mut params = vec![0.0; 4];
    let narrow = LinearModel::linear(3, Penalty::default()).unwrap();
    let mut trainer = Trainer::new(config(1, 4), sgd(0.01, 0.0)).unwrap();
    let error = fit_stream(&mut trainer, &narrow, &mut params, &mut csv_reader(&file, 4), None, &mut []).unwrap_err();
    assert!(matches!(&error, TrainError::Data(m) if m.contains("4 feature columns") && m.contains("3 inputs")));

    let model = model();
    let mut params = model.init_params(0);
    let wrong = Standardizer { means: vec![0.0; 3], stds: vec![1.0; 3] };
    let error =
        fit_stream(&mut trainer, &model, &mut params, &mut csv_reader(&file, 4), Some(&wrong), &mut []).unwrap_err();
    assert!(matches!(&error, TrainError::Data(m) if m.contains("standardizer was fitted on 3")));

    let early = TrainConfig {
        early_stopping: Some(EarlyStopping { patience: 2, metric: None, min_delta: 0.0 }),
        ..config(1, 4)
    };
    let mut trainer = Trainer::new(early, sgd(0.01, 0.0)).unwrap();
    let error = fit_stream(&mut trainer, &model, &mut params, &mut csv_reader(&file, 4), None, &mut []).unwrap_err();
    assert!(matches!(&error, TrainError::Config(c) if c.option == "early_stopping"));
}

// ---------------------------------------------------------------- the one-pass standardizer

#[test]
fn streaming_standardizer_equals_the_in_memory_one() {
    let mut rows = table(1000, 8);
    for row in &mut rows {
        row[2] = 7.25; // a constant column gets std 1
    }
    let file = TempFile::new("std.csv", &csv_text(&rows));
    let data = read_csv(file.path(), &CsvOptions::default()).unwrap();
    let all: Vec<usize> = (0..data.rows).collect();
    let expected = Standardizer::fit(&data, &all).unwrap();

    // A shuffled reader: the fit reads a file-order copy and leaves the reader's epochs alone.
    let reader = csv_reader(&file, 64).with_shuffle(100, 3);
    let (fitted, count) = fit_standardizer(&reader).unwrap();
    assert_eq!(count, 1000);
    assert_eq!(reader.epochs_started(), 0);
    assert_eq!(fitted.stds[2], 1.0);
    assert_eq!(fitted.means, expected.means, "means are the same f64 sums divided by the count");
    for (j, (a, b)) in fitted.stds.iter().zip(&expected.stds).enumerate() {
        assert!((a - b).abs() <= 1e-6 * b.abs().max(1.0), "column {j}: std {a} vs {b}");
    }
    assert!(fitted.stds[3] > 5.0, "the d column's scale is 20 (uniform: std ≈ 11.5)");
}
