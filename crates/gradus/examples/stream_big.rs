//! Linear regression on a CSV file larger than memory, streamed epoch by epoch.
//!
//! ```text
//! cargo run --release -p gradus --example stream_big -- [DIR] [--gb 2.2] [--epochs 2] [--batch 512]
//!     [--shuffle-buffer 10000] [--optimizer sgd|adam] [--lr 0.05] [--delete]
//! ```
//!
//! Writes `DIR/gradus_stream_big.csv` (default DIR `/tmp`) unless it is already there: rows of 100
//! features `x_j = m_j + s_j·z` (z standard normal, each column with its own mean and scale) and
//! a target `y = b + Σ w_j·x_j + ε` (ε ~ N(0, 0.1²)) from a known model, until the file holds
//! `--gb` gigabytes (10⁹ bytes). Then fits a [`Standardizer`] in one pass and trains linear
//! regression on the standardized batches with [`fit_stream`], printing each epoch's running
//! loss, rows per second and time, how far the recovered weights are from the true ones, and the
//! process's peak resident memory (Linux). `--delete` removes the file at the end.

use std::error::Error;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::time::Instant;

use gradus::data::{CsvOptions, Standardizer, StreamFormat, StreamingReader};
use gradus::linear::{LinearModel, Penalty};
use gradus::model::Model;
use gradus::optim::adam::{Adam, AdamConfig};
use gradus::optim::sgd::{Sgd, SgdConfig};
use gradus::optim::Optimizer;
use gradus::train::stream::{fit_standardizer, fit_stream};
use gradus::train::{EpochRecord, Observer, TrainConfig, Trainer};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

const FEATURES: usize = 100;
const NOISE: f64 = 0.1;
const BIAS: f64 = 3.0;

struct Options {
    dir: PathBuf,
    gigabytes: f64,
    epochs: usize,
    batch: usize,
    shuffle_buffer: usize,
    optimizer: String,
    lr: f64,
    delete: bool,
}

fn parse_options() -> Result<Options, Box<dyn Error>> {
    let mut options = Options {
        dir: PathBuf::from("/tmp"),
        gigabytes: 2.2,
        epochs: 2,
        batch: 512,
        shuffle_buffer: 10_000,
        optimizer: "sgd".into(),
        lr: 0.05,
        delete: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--gb" => options.gigabytes = value()?.parse()?,
            "--epochs" => options.epochs = value()?.parse()?,
            "--batch" => options.batch = value()?.parse()?,
            "--shuffle-buffer" => options.shuffle_buffer = value()?.parse()?,
            "--optimizer" => options.optimizer = value()?,
            "--lr" => options.lr = value()?.parse()?,
            "--delete" => options.delete = true,
            other if !other.starts_with("--") => options.dir = PathBuf::from(other),
            other => return Err(format!("unknown option {other}").into()),
        }
    }
    Ok(options)
}

/// The true model: per-column means and scales of the features, weights and bias.
struct Truth {
    means: Vec<f64>,
    scales: Vec<f64>,
    weights: Vec<f64>,
}

impl Truth {
    fn new(seed: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        Self {
            means: (0..FEATURES).map(|_| rng.random_range(-5.0..5.0)).collect(),
            scales: (0..FEATURES).map(|_| rng.random_range(0.5..5.0)).collect(),
            weights: (0..FEATURES).map(|_| rng.random_range(-1.0..1.0)).collect(),
        }
    }
}

/// Appends `value` rounded to 4 decimals, without going through `format!` (several times faster).
fn push_fixed4(line: &mut Vec<u8>, value: f64) -> f64 {
    let scaled = (value * 1e4).round() as i64;
    if scaled < 0 {
        line.push(b'-');
    }
    let magnitude = scaled.unsigned_abs();
    let (whole, frac) = (magnitude / 10_000, magnitude % 10_000);
    let mut digits = [0u8; 20];
    let mut n = 0;
    let mut rest = whole;
    loop {
        digits[n] = b'0' + (rest % 10) as u8;
        n += 1;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    line.extend(digits[..n].iter().rev());
    line.push(b'.');
    line.extend_from_slice(&[
        b'0' + (frac / 1000) as u8,
        b'0' + (frac / 100 % 10) as u8,
        b'0' + (frac / 10 % 10) as u8,
        b'0' + (frac % 10) as u8,
    ]);
    scaled as f64 / 1e4
}

/// Writes rows until the file holds `bytes` bytes; returns the number of rows.
fn generate(path: &PathBuf, truth: &Truth, bytes: u64, seed: u64) -> Result<u64, Box<dyn Error>> {
    let temporary = path.with_extension("csv.partial");
    let mut out = BufWriter::with_capacity(1 << 20, File::create(&temporary)?);
    let header: Vec<String> = (1..=FEATURES).map(|j| format!("x{j}")).chain(["y".to_string()]).collect();
    writeln!(out, "{}", header.join(","))?;
    let mut written = header.join(",").len() as u64 + 1;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut line = Vec::with_capacity(2048);
    let mut rows = 0u64;
    while written < bytes {
        line.clear();
        let mut y = BIAS;
        for j in 0..FEATURES {
            let z: f64 = StandardNormal.sample(&mut rng);
            // The target uses the value as written, so the file holds an exact linear model plus noise.
            let x = push_fixed4(&mut line, truth.means[j] + truth.scales[j] * z);
            line.push(b',');
            y += truth.weights[j] * x;
        }
        let noise: f64 = StandardNormal.sample(&mut rng);
        push_fixed4(&mut line, y + NOISE * noise);
        line.push(b'\n');
        out.write_all(&line)?;
        written += line.len() as u64;
        rows += 1;
    }
    out.flush()?;
    drop(out);
    std::fs::rename(&temporary, path)?;
    Ok(rows)
}

/// Prints each epoch as it ends.
struct Progress;

impl Observer for Progress {
    fn on_epoch(&mut self, record: &EpochRecord) -> bool {
        println!(
            "  epoch {} done: running loss {:.6}, lr {}, {:.1} s since start",
            record.epoch, record.train["loss"], record.lr, record.seconds
        );
        true
    }
}

/// The process's peak resident set size in kB, from `/proc/self/status` (Linux only).
fn peak_rss_kb() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Maps weights learned on standardized features back to the raw features:
/// `w·(x − m)/s + b = (w/s)·x + (b − Σ w·m/s)`.
fn unstandardize(params: &[f32], standardizer: &Standardizer) -> (Vec<f64>, f64) {
    let weights: Vec<f64> =
        params[..FEATURES].iter().zip(&standardizer.stds).map(|(&w, &s)| f64::from(w) / f64::from(s)).collect();
    let shift: f64 = weights.iter().zip(&standardizer.means).map(|(w, &m)| w * f64::from(m)).sum();
    (weights, f64::from(params[FEATURES]) - shift)
}

fn main() -> Result<(), Box<dyn Error>> {
    let options = parse_options()?;
    let truth = Truth::new(7);
    let path = options.dir.join("gradus_stream_big.csv");
    if path.exists() {
        println!("using existing {}", path.display());
    } else {
        let started = Instant::now();
        let rows = generate(&path, &truth, (options.gigabytes * 1e9) as u64, 11)?;
        println!("wrote {} rows to {} in {:.1} s", rows, path.display(), started.elapsed().as_secs_f64());
    }
    let size = std::fs::metadata(&path)?.len();
    println!("file: {} bytes ({:.2} GB, {:.2} GiB)", size, size as f64 / 1e9, size as f64 / (1u64 << 30) as f64);

    let mut reader = StreamingReader::open(&path, StreamFormat::Csv(CsvOptions::default()), options.batch)?
        .with_shuffle(options.shuffle_buffer, 42);
    println!(
        "reader: {} features, batches of {}, shuffle buffer {} rows (at most {} rows held)",
        reader.cols(),
        reader.batch_size(),
        options.shuffle_buffer,
        reader.max_buffered_rows()
    );

    let started = Instant::now();
    let (standardizer, rows) = fit_standardizer(&reader)?;
    let seconds = started.elapsed().as_secs_f64();
    println!("standardizer pass: {rows} rows in {seconds:.1} s ({:.0} rows/s)", rows as f64 / seconds);

    let model = LinearModel::linear(reader.cols(), Penalty::default())?;
    let mut params = model.init_params(0);
    let optimizer: Box<dyn Optimizer> = match options.optimizer.as_str() {
        "sgd" => Box::new(Sgd::new(SgdConfig { lr: options.lr, ..SgdConfig::default() })?),
        "adam" => Box::new(Adam::new(AdamConfig { lr: options.lr, ..AdamConfig::default() })?),
        other => return Err(format!("unknown optimizer {other} (sgd or adam)").into()),
    };
    let config = TrainConfig { epochs: options.epochs, ..TrainConfig::default() };
    // Divide the rate by 10 each epoch: the first epoch gets close, the next ones shrink the noise.
    let schedule =
        gradus::schedule::from_options("step", &serde_json::json!({"step_size": 1, "gamma": 0.1}), options.lr)?;
    let mut trainer = Trainer::new(config, optimizer)?.with_lr_control(schedule);
    println!(
        "training linear regression with {} (lr {}, ÷10 per epoch) for {} epochs",
        options.optimizer, options.lr, options.epochs
    );
    let mut progress = Progress;
    let report = fit_stream(&mut trainer, &model, &mut params, &mut reader, Some(&standardizer), &mut [&mut progress])?;
    for epoch in &report.epochs {
        println!(
            "epoch {}: {} rows in {} batches, running MSE {:.6}, {:.1} s, {:.0} rows/s, {:.1} MB/s, peak {} rows buffered",
            epoch.epoch,
            epoch.rows,
            epoch.batches,
            epoch.mean_loss,
            epoch.seconds,
            epoch.rows_per_second(),
            size as f64 / epoch.seconds / 1e6,
            epoch.peak_buffered_rows
        );
    }

    let (weights, bias) = unstandardize(&params, &standardizer);
    let max_error = weights.iter().zip(&truth.weights).map(|(w, t)| (w - t).abs()).fold(0.0, f64::max);
    let rms_error =
        (weights.iter().zip(&truth.weights).map(|(w, t)| (w - t).powi(2)).sum::<f64>() / FEATURES as f64).sqrt();
    println!("recovered weights vs true: max |error| {max_error:.2e}, RMS error {rms_error:.2e}");
    println!("recovered bias {bias:.4} (true {BIAS}); noise variance {:.4}", NOISE * NOISE);
    if let Some(kb) = peak_rss_kb() {
        println!("peak resident memory (VmHWM): {kb} kB ({:.1} MB)", kb as f64 / 1024.0);
    }
    if options.delete {
        std::fs::remove_file(&path)?;
        println!("deleted {}", path.display());
    }
    Ok(())
}
